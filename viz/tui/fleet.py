"""The dashboard's fleet view: thousands of nodes as groups, the worst few and a histogram.

``v`` switches the main screen between the node table and this view; ``c`` picks the
field the worst-nodes list and the histogram show (and the group summary shows first).
The view has three parts, each from :mod:`viz.fleet_stats`:

* the groups: each group's node count, nodes in alarm and in warning, and the minimum,
  mean and maximum of the key fields (those with operating limits);
* the worst nodes for the chosen field, worst first (which end is worst comes from the
  field's limits, see ``viz.fleet_stats``); Enter opens a node's detail as in the table;
* a histogram of the chosen field over the whole fleet, bars coloured by the limits.

Values read as in the table: each field's column scale (``viz.tui.model.Column.unit``),
coloured by its limit levels. The view works only while it is shown, at most
``1 / FLEET_INTERVAL_S`` times a second and only after a new state, so following a
fleet of 4,428 nodes at 10 Hz costs it a few milliseconds a second.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.coordinate import Coordinate
from textual.widget import Widget
from textual.widgets import DataTable

from twin.protocol.ranking import LimitBand
from viz.fleet_stats import (
    HIGHEST,
    NEAREST,
    ORDERS,
    GroupIndex,
    group_summary,
    histogram,
    worst_nodes,
    worst_rule,
)
from viz.quantity import Scale
from viz.tui.levels import ALARM, WARN, limit_levels
from viz.tui.model import Column, FleetModel
from viz.tui.screens import DetailScreen

if TYPE_CHECKING:
    from textual.timer import Timer

FLEET_INTERVAL_S = 0.5
"""Most often the view is worked out again (seconds), whatever the stream's rate."""
TOP_N = 25
"""How many worst nodes the list holds (it scrolls)."""


class PacedTicks:
    """Calls ``callback`` every ``interval_s`` counted from the end of its last call.

    Textual's `set_interval` keeps its schedule: after a tick a loaded machine ran late,
    the next comes on time, a fraction of the interval later, and the view would be
    worked out twice in a row. Here a late tick only delays the ones after it.
    """

    def __init__(self, owner: Any, interval_s: float, callback: Callable[[], Any]) -> None:
        self._owner, self._interval_s, self._callback = owner, interval_s, callback
        self._stopped = False
        self._timer: Timer | None = owner.set_timer(interval_s, self._tick)

    def _tick(self) -> None:
        self._timer = None
        if not self._owner.is_running:  # the app is closing: its views are being taken
            self._stopped = True        # down, and a view worked out now finds no parts
            return
        try:
            self._callback()
        finally:
            if not self._stopped:
                self._timer = self._owner.set_timer(self._interval_s, self._tick)

    def stop(self) -> None:
        self._stopped = True
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
SHORT_ROWS = 32
"""Below this many terminal rows the fleet view takes the events and alarms' room."""
MAX_BINS = 24
LEVEL_TEXT_STYLE = {0: "", WARN: "bold yellow", ALARM: "bold white on red"}
BAR_STYLE = {0: "green", WARN: "yellow", ALARM: "red"}
EIGHTHS = " ▏▎▍▌▋▊▉█"


def key_fields(model: FleetModel) -> list[Column]:
    """Number columns with operating limits, in table order (the groups' summary);
    the first three number columns when no field has limits."""
    numbers = [c for c in model.columns if c.kind == "quantity"]
    limited = [c for c in numbers if c.limits]
    return limited or numbers[:3]


def field_choices(model: FleetModel) -> list[Column]:
    """What ``c`` cycles through: the key fields first, then every other number column."""
    keys = key_fields(model)
    return keys + [c for c in model.columns if c.kind == "quantity" and c not in keys]


def numbers_text(values: np.ndarray, column: Column, min_decimals: int = 0) -> list[Text]:
    """Each value in the column's scale (at least ``min_decimals`` places: a mean of
    whole numbers has some), coloured by its limit level."""
    unit = column.unit
    if 0 <= unit.decimals < min_decimals:
        unit = Scale(unit.unit, unit.factor, unit.offset, min_decimals)
    texts = unit.numbers(np.asarray(values, dtype=np.float64).tolist())
    levels = limit_levels(np.asarray(values, dtype=np.float64), column.limits).tolist()
    return [Text(t, style=LEVEL_TEXT_STYLE[level], justify="right")
            for t, level in zip(texts, levels, strict=True)]


def compact_limits(column: Column) -> str:
    """``warn <5.0 >80.0  alarm <0.0 >85.0 °C``: a field's limits in its column's unit."""
    parts = []
    for level in ("warn", "alarm"):
        bounds = [f"{sign}{column.unit.number(column.limits[f'{level}_{side}'])}"
                  for side, sign in (("low", "<"), ("high", ">"))
                  if f"{level}_{side}" in column.limits]
        if bounds:
            parts.append(f"{level} {' '.join(bounds)}")
    return "  ".join(parts) + column.unit.suffix if parts else "no limits"


def order_words(column: Column, order: str) -> str:
    """How a worst list is ordered, in a title's words: ``nearest a limit``, ``hottest``
    (a temperature's highest), ``lowest``..."""
    if order == NEAREST:
        return "nearest a limit"
    hot = column.key.startswith("temp_") or column.unit.unit in ("°C", "K", "°F")
    if order == HIGHEST:
        return "hottest" if hot else "highest"
    return "coldest" if hot else "lowest"


def worst_title(count: int, column: Column, order: str) -> str:
    """``25 nearest a limit by T comp``, ``25 hottest by T comp``; a field without limits
    in the default order: ``25 highest Compute (it has no limits)``."""
    if not count:
        return f"Worst nodes: none with a {column.label} value"
    if order == NEAREST and LimitBand.from_limits(column.limits) is None:
        return f"{count} highest {column.label} (it has no limits)"
    return f"{count} {order_words(column, order)} by {column.label}"


def worst_subtitle(column: Column | None, order: str) -> str:
    """The worst list's keys, and the order ``s`` brings next (``s hottest``)."""
    following = ORDERS[(ORDERS.index(order) + 1) % len(ORDERS)]
    words = order_words(column, following) if column is not None else following
    return f"Enter detail · c field · s {words}"  # fits 80 columns


def margin_texts(values: np.ndarray, band: LimitBand, column: Column) -> list[str]:
    """Each value's margin to its nearer limit in the column's unit: ``19.8 °C to low``,
    ``3.0 °C past high`` (a temperature difference: the scale's factor, no offset)."""
    unit = column.unit
    difference = Scale(unit.unit, abs(unit.factor), 0.0, unit.decimals)
    margins = band.margin(values) * band.scale
    nearer_low = band.nearer_low(values)
    texts = []
    for margin, low in zip(margins.tolist(), nearer_low.tolist(), strict=True):
        side = "low" if low else "high"
        texts.append(f"{difference.number(abs(margin))}{difference.suffix} "
                     f"{'to' if margin >= 0 else 'past'} {side}")
    return texts


def bin_labels(edges: np.ndarray, unit: Scale, whole: bool) -> list[str]:
    """Each bin's range in the display unit: ``41.2–43.0``; with ``whole`` (bins of whole
    numbers) the numbers it holds: ``3`` or ``3–5``.

    A bin narrower than the column's decimals can show gets more of them, so neighbouring
    bins never read the same.
    """
    if whole:
        firsts, lasts = (edges[:-1] + 0.5).round(), (edges[1:] - 0.5).round()
        return [f"{a:.0f}" if a == b else f"{a:.0f}–{b:.0f}"
                for a, b in zip(firsts.tolist(), lasts.tolist(), strict=True)]
    step = abs(float(edges[1] - edges[0]) * unit.factor) if edges.size > 1 else 0.0
    decimals = unit.decimals
    if decimals >= 0 and 0.0 < step < 10.0 ** -decimals:
        decimals = min(math.ceil(-math.log10(step)), 6)
    bounds = Scale(unit.unit, unit.factor, unit.offset, decimals).numbers(edges.tolist())
    return [f"{a}–{b}" for a, b in itertools.pairwise(bounds)]


class StatsTable(DataTable):
    """A data table filled whole from rows of cells; only the changed cells are redrawn,
    so the cursor and the scroll stay where the operator left them."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._headings: tuple = ()
        self._cells: list[tuple] = []

    def fill(self, headings: Sequence[str | Text], rows: Sequence[Sequence[str | Text]]) -> None:
        headings = tuple(headings)
        if headings != self._headings or len(rows) != len(self._cells):
            row, column = self.cursor_coordinate
            self.clear(columns=headings != self._headings)
            if headings != self._headings:
                self.add_columns(*headings)
            self.add_rows(rows)
            self._headings, self._cells = headings, [tuple(r) for r in rows]
            if rows:
                self.move_cursor(row=min(row, len(rows) - 1), column=column, animate=False)
            return
        for y, (old, new) in enumerate(zip(self._cells, rows, strict=True)):
            for x, (before, cell) in enumerate(zip(old, new, strict=True)):
                if before != cell:  # widened to fit: the first fill may have had "—" there
                    self.update_cell_at(Coordinate(y, x), cell, update_width=True)
            self._cells[y] = tuple(new)


class FieldHistogram(Widget):
    """A field's histogram over the fleet: a bar per bin, its range and its count."""

    DEFAULT_CSS = """
    FieldHistogram { text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.values: np.ndarray | None = None
        self.column: Column | None = None
        self.counts = np.zeros(0, np.intp)
        self.edges = np.zeros(0)
        self.missing = 0
        self.fixed: tuple[np.ndarray, np.ndarray, str] | None = None

    def show(self, values: np.ndarray | None, column: Column | None) -> None:
        self.values, self.column, self.fixed = values, column, None
        self.refresh()

    def show_counts(self, counts: np.ndarray, edges: np.ndarray, note: str,
                    column: Column) -> None:
        """Bars already counted (the twin's ``aggregate``), with a note under them."""
        self.values, self.column, self.fixed = None, column, (counts, edges, note)
        self.refresh()

    def on_resize(self) -> None:
        self.refresh()

    def render(self) -> Text:
        column, values = self.column, self.values
        if column is not None and self.fixed is not None:
            counts, edges, note = self.fixed
            rows = max(self.size.height - (1 if note else 0), 1)
            merge = math.ceil(len(counts) / rows)  # neighbouring bins share a row to fit
            if merge > 1:
                starts = np.arange(0, len(counts), merge)
                counts = np.add.reduceat(counts, starts)
                edges = np.concatenate((edges[starts], edges[-1:]))
            self.counts, self.edges, self.missing = counts, edges, 0
            text = self._bars(counts, edges, column, whole=False)
            if note:
                text.append(f"\n{note}", style="dim")
            return text
        if column is None or values is None:
            return Text("no values yet", style="dim")
        bins = int(np.clip(self.size.height - 1, 1, MAX_BINS))
        unit = column.unit
        whole = bool(column.quantity and column.quantity.integer) and \
            (unit.factor, unit.offset) == (1.0, 0.0)
        result = histogram(values, bins, integer=whole)
        self.counts, self.edges, self.missing = result.counts, result.edges, result.missing
        if result.missing == values.size:
            return Text(f"no value to plot: {result.missing:,} without a value", style="dim")
        text = self._bars(result.counts, result.edges, column, whole)
        if result.missing:
            text.append(f"\n{result.missing:,} without a value", style="dim")
        return text

    def _bars(self, counts: np.ndarray, edges: np.ndarray, column: Column, whole: bool
              ) -> Text:
        """A bar per bin, highest values on top, coloured by the field's limits."""
        bins = len(counts)
        labels = bin_labels(edges, column.unit, whole)
        width = max(len(label) for label in labels)
        count_width = max(len(str(int(counts.max(initial=0)))), 1)
        room = max(self.size.width - width - count_width - 3, 4)
        peak = max(int(counts.max(initial=0)), 1)
        middles = 0.5 * (edges[:-1] + edges[1:])
        levels = limit_levels(middles, column.limits).tolist()
        text = Text(no_wrap=True, overflow="ellipsis")
        for i in range(bins - 1, -1, -1):  # highest values on top, like the worst list
            count = int(counts[i])
            eighths = round(count / peak * room * 8)
            if count and not eighths:
                eighths = 1  # a bin with nodes is never drawn empty
            bar = "█" * (eighths // 8) + (EIGHTHS[eighths % 8] if eighths % 8 else "")
            text.append(f"{labels[i]:>{width}} ", style="dim")
            text.append(f"{bar:<{room}}", style=BAR_STYLE[levels[i]])
            text.append(f" {count:>{count_width}}")
            if i:
                text.append("\n")
        return text


class FleetView(Vertical):
    """The groups' summary on top; the worst nodes and the histogram side by side."""

    DEFAULT_CSS = """
    FleetView { display: none; height: 1fr; }
    FleetView StatsTable, FleetView FieldHistogram {
        border: round $primary 50%;
        border-title-color: $text;
        border-subtitle-color: $text-muted;
    }
    FleetView StatsTable:focus { border: round $accent; }
    FleetView #fleet-groups { height: auto; max-height: 10; overflow-x: hidden; }
    FleetView #fleet-lower { height: 1fr; }
    FleetView #fleet-worst { width: 3fr; }
    FleetView #fleet-histogram { width: 2fr; padding: 0 1; }
    """

    def __init__(self, model: FleetModel, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.field = ""
        # The worst list's order: nearest a limit (default), highest or lowest (`s`).
        self.order = NEAREST
        # Where v goes next, in words (the cluster view's actions set it: viz.tui.cluster).
        self.next_view = "v node table"
        self.worst_sats = np.zeros(0, np.intp)
        self._index: tuple[tuple[int, int], GroupIndex | None] = ((0, 0), None)

    def compose(self) -> ComposeResult:
        yield StatsTable(id="fleet-groups", cursor_type="none", zebra_stripes=True)
        with Horizontal(id="fleet-lower"):
            yield StatsTable(id="fleet-worst", cursor_type="row")
            yield FieldHistogram(id="fleet-histogram")

    def on_mount(self) -> None:
        self.groups_table = self.query_one("#fleet-groups", StatsTable)
        self.worst_table = self.query_one("#fleet-worst", StatsTable)
        self.histogram = self.query_one("#fleet-histogram", FieldHistogram)
        self.groups_table.can_focus = False
        self.worst_table.border_subtitle = worst_subtitle(None, self.order)

    def group_index(self) -> GroupIndex:
        """Each node's group, worked out again only when ``meta`` brought new groups."""
        model = self.model
        key = (id(model.groups), model.n)
        if self._index[0] != key or self._index[1] is None:
            self._index = (key, GroupIndex(model.groups, model.n))
        return self._index[1]

    def chosen(self) -> Column | None:
        """The field shown, the first choice if none was picked (or it went away)."""
        choices = field_choices(self.model)
        column = next((c for c in choices if c.key == self.field), None)
        if column is None and choices:
            column = choices[0]
            self.field = column.key
        return column

    def update_view(self) -> None:
        """Work out and show everything from the model's newest state."""
        model = self.model
        column = self.chosen()
        values = model.values(column.key) if column is not None else None
        if values is None and column is not None and \
                column.key in model.aggregate.get("fields", {}):
            from viz.tui.fleet_aggregate import show_aggregate  # it draws with this module's

            show_aggregate(self, column)  # a large fleet: the twin's summary, no arrays
            return
        self._show_groups(column)
        self._show_worst(column, values)
        self.histogram.show(values, column)
        if column is not None:
            self.histogram.border_title = f"{column.heading} over {model.n:,} nodes"
            self.histogram.border_subtitle = compact_limits(column)

    def _show_groups(self, chosen: Column | None) -> None:
        model = self.model
        keys = key_fields(model)
        if chosen is not None and chosen in keys:
            keys.remove(chosen)
        if chosen is not None:
            keys.insert(0, chosen)
        index = self.group_index()
        in_alarm = model.in_alarm
        summary = group_summary(index, model.arrays, [c.key for c in keys], in_alarm,
                                model.worst >= WARN)
        by_key = {c.key: c for c in keys}
        headings: list[str | Text] = ["Group", Text("Nodes", justify="right"),
                                      Text("Alarm", justify="right"),
                                      Text("Warn", justify="right")]
        # Only the fields that fit show (a table scrolled sideways hides what it cuts);
        # the title says how many more there are, and `c` brings any of them first.
        # Each column is its widest text plus a cell's padding (one each side).
        room = self.groups_table.size.width - 2 - sum(len(str(t)) + 2 for t in (
            max([*summary.names, "Group", "(none)"], key=len),
            max(f"{int(summary.counts.max(initial=0)):,}", "Nodes", key=len), "Alarm", "Warn"))
        cells: list[list[Text]] = []
        for field in summary.fields:
            column = by_key[field.name]
            heading = Text(f"{column.heading}  min · mean · max", justify="center")
            lows, highs = numbers_text(field.low, column), numbers_text(field.high, column)
            means = numbers_text(field.mean, column, min_decimals=1)
            texts = [Text(" · ").join([low, mean, high]) for low, mean, high
                     in zip(lows, means, highs, strict=True)]
            room -= max(len(heading), *(len(t) for t in texts)) + 2
            if room < 0 and cells:
                break
            headings.append(heading)
            cells.append(texts)
        hidden = len(summary.fields) - len(cells)
        rows = []
        for g, name in enumerate(summary.names):
            alarm, warning = int(summary.alarm[g]), int(summary.warning[g])
            rows.append([name or "(none)", Text(f"{int(summary.counts[g]):,}", justify="right"),
                         Text(str(alarm), style="bold white on red" if alarm else "dim",
                              justify="right"),
                         Text(str(warning), style="bold yellow" if warning else "dim",
                              justify="right"),
                         *(cell[g] for cell in cells)])
        self.groups_table.fill(headings, rows)
        noun = "group" if len(summary.names) == 1 else "groups"
        self.groups_table.border_title = (
            f"Fleet · {self.model.n:,} nodes in {len(summary.names)} {noun}")
        self.groups_table.border_subtitle = (
            f"{hidden} more field{'s' if hidden > 1 else ''} with limits: c · {self.next_view}"
            if hidden else self.next_view)

    def _show_worst(self, column: Column | None, values: np.ndarray | None) -> None:
        model = self.model
        table = self.worst_table
        if column is None or values is None:
            self.worst_sats = np.zeros(0, np.intp)
            table.fill(["Node"], [])
            table.border_title = "Worst nodes (no values yet)"
            return
        rule = worst_rule(column.limits, self.order)
        sats = worst_nodes(values, rule, TOP_N)
        self.worst_sats = sats
        texts = numbers_text(values[sats], column)
        levels = model.worst[sats].tolist() if model.worst.shape == (model.n,) else \
            [0] * len(sats)
        rows = [[Text(str(rank), style="dim", justify="right"),
                 Text(model.name(sat), style=LEVEL_TEXT_STYLE[level]), text, model.group(sat)]
                for rank, (sat, text, level) in enumerate(
                    zip(sats.tolist(), texts, levels, strict=True), start=1)]
        headings: list[str | Text] = ["#", "Node", Text(column.heading, justify="right"),
                                      "Group"]
        if rule.order == NEAREST and rule.band is not None and len(sats):
            # Each node's margin to the limit it is nearer: a cool idle chip can rank above
            # a hot busy one, and the reader should see why.
            for row, margin in zip(rows, margin_texts(values[sats], rule.band, column),
                                   strict=True):
                row.append(margin)
            headings.append("Margin")
        table.fill(headings, rows)
        table.border_title = worst_title(len(sats), column, self.order)
        table.border_subtitle = worst_subtitle(column, self.order)

    def selected_sat(self) -> int | None:
        """The node under the worst list's cursor."""
        row = self.worst_table.cursor_row
        return int(self.worst_sats[row]) if 0 <= row < len(self.worst_sats) else None


class FleetViewActions:
    """``v`` and ``c`` for ``DashboardApp``, and the timer that keeps the view current.

    The host app provides ``model``, ``fleet_table``, ``_draw`` and textual's ``App``.
    """

    model: FleetModel
    fleet_view_shown: bool = False
    _fleet_timer: PacedTicks | None = None
    _fleet_drawn: tuple = ()
    fleet_view_seconds: float = 0.0
    """Wall seconds spent working out the fleet view (for bench/tui.py's curiosity)."""

    @property
    def fleet_view(self) -> FleetView:
        # Held from mount: a query would search whichever screen is on top (or none while
        # the app closes) and miss the main screen's view.
        return self.held_fleet_view  # type: ignore[attr-defined]

    def action_next_view(self) -> None:
        """Switch between the node table and the fleet view."""
        if self.screen is not self.screen_stack[0]:  # type: ignore[attr-defined]
            return  # a node's detail or a prompt is on top: the view under it stays
        self.fleet_view_shown = not self.fleet_view_shown
        view, table = self.fleet_view, self.fleet_table  # type: ignore[attr-defined]
        view.display, table.display = self.fleet_view_shown, not self.fleet_view_shown
        self._fit_fleet_view()
        if self._fleet_timer is not None:
            self._fleet_timer.stop()
            self._fleet_timer = None
        if self.fleet_view_shown:
            self._fleet_drawn = ()
            self.update_fleet_view()
            self._fleet_timer = PacedTicks(self, FLEET_INTERVAL_S, self.update_fleet_view)
            view.worst_table.focus()
            sat = table.selected_sat
            if sat is not None and sat in view.worst_sats:
                view.worst_table.move_cursor(row=int(np.flatnonzero(view.worst_sats == sat)[0]))
        else:
            table.focus()
            self._draw()  # type: ignore[attr-defined]

    def _fit_fleet_view(self) -> None:
        """On a short terminal, the fleet view hides the events and alarms (the header
        still counts the alarms, the groups count the nodes in alarm)."""
        view = self.fleet_view
        short = self.fleet_view_shown and self.size.height < SHORT_ROWS  # type: ignore[attr-defined]
        view.screen.set_class(short, "-fleet-short")

    def on_resize(self) -> None:
        self._fit_fleet_view()

    def action_next_field(self) -> None:
        """The next field for the worst list and the histogram (the fleet view's)."""
        view = self.fleet_view
        choices = field_choices(self.model)
        if not choices:
            return
        keys = [c.key for c in choices]
        view.field = keys[(keys.index(view.field) + 1) % len(keys)] if view.field in keys \
            else keys[0]
        if self.fleet_view_shown:
            self.update_fleet_view(force=True)
        else:
            column = self.model.column(view.field)
            self.notify(f"The fleet view (v) shows {column.heading if column else view.field}",
                        title="Field")  # type: ignore[attr-defined]

    def next_worst_order(self) -> None:
        """``s`` in the fleet view: the worst list nearest a limit, highest, lowest first."""
        view = self.fleet_view
        view.order = ORDERS[(ORDERS.index(view.order) + 1) % len(ORDERS)]
        self.update_fleet_view(force=True)
        view.worst_table.move_cursor(row=0, animate=False)

    def update_fleet_view(self, force: bool = False) -> None:
        """Work the view out again if it shows and something it draws from changed."""
        if not self.fleet_view_shown or not self.is_running:  # type: ignore[attr-defined]
            return
        view = self.fleet_view
        model = self.model
        key = (model.states_seen, id(model.arrays), id(model.meta), len(model.alarms),
               view.field, view.order, view.size)
        if key == self._fleet_drawn and not force:
            return
        start = time.perf_counter()
        view.update_view()
        self._fleet_drawn = (model.states_seen, id(model.arrays), id(model.meta),
                             len(model.alarms), view.field, view.order, view.size)
        self.fleet_view_seconds += time.perf_counter() - start

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id != "fleet-worst":
            return
        sat = self.fleet_view.selected_sat()
        if sat is not None:
            self.fleet_table.select_sat(sat)  # type: ignore[attr-defined]
            self.open_detail(sat)

    def open_detail(self, sat: int) -> None:
        """The node's detail screen, as Enter in the table opens it."""
        self.push_screen(DetailScreen(self.model, sat))  # type: ignore[attr-defined]

"""Widgets of the dashboard: the fleet table (Line API, virtual), the header bar and trends.

The fleet table draws only the rows on screen, straight from the model's arrays, so 4,428
nodes cost no more per update than forty: no per-cell widgets, no copies of the fleet.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widget import Widget

from viz.tui.model import (
    ALARM,
    MIRROR_MARK,
    WARN,
    Column,
    FleetModel,
    MirrorBinding,
    Unit,
    human_unit,
    limit_levels,
)

LEVEL_STYLE = {0: Style(), WARN: Style(color="yellow", bold=True),
               ALARM: Style(color="white", bgcolor="red", bold=True)}
SUN_STYLE = {"sun": Style(color="bright_yellow"), "pen": Style(color="magenta"),
             "ecl": Style(color="bright_blue", bold=True)}
# A mirrored node's name, and the header's mirror badge (live, lost). Violet, in true
# colour: the theme renders ANSI magenta close to the alarm red.
MIRROR_STYLE = Style(color="#c77dff", bold=True)
MIRROR_BADGE = {True: "bold white on #7b2cbf", False: "bold black on dark_orange",
                None: "bold black on grey70"}
HEADER_STYLE = Style(bold=True, color="black", bgcolor="grey70")
SORTED_STYLE = Style(bold=True, color="black", bgcolor="bright_cyan")
CURSOR_STYLE = Style(bgcolor="grey35")
SEPARATOR = " "
LEFT_ALIGNED = ("text", "station", "code", "bits")


class FleetTable(ScrollView, can_focus=True):
    """One row per node, drawn from :class:`FleetModel` on demand; sortable by header click."""

    BINDINGS: ClassVar[list[Binding]] = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "ends(-1)", "Top", show=False),
        Binding("end", "ends(1)", "Bottom", show=False),
        Binding("enter", "choose", "Detail"),
    ]

    cursor_row: reactive[int] = reactive(0)

    class Chosen(Message):
        """The operator asked for a node's detail (Enter or double click)."""

        def __init__(self, sat: int) -> None:
            self.sat = sat
            super().__init__()

    class SortRequested(Message):
        """A column header was clicked."""

        def __init__(self, key: str) -> None:
            self.key = key
            super().__init__()

    def __init__(self, model: FleetModel, **kwargs) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.order = np.zeros(0, np.intp)
        self._offsets: list[tuple[int, int, Column]] = []
        self._styles: dict[tuple[bool, int, str | None], Style] = {}
        self._prepared: list[tuple[int, int, Column, np.ndarray | None, np.ndarray | None]] = []

    # -- data -------------------------------------------------------------------------

    def refresh_data(self) -> None:
        """Recompute the row order (filter and sort) and redraw the visible rows."""
        self.order = self.model.view_order()
        x = 0
        self._offsets = []
        for column in self.model.columns:
            self._offsets.append((x, x + column.width, column))
            x += column.width + len(SEPARATOR)
        model = self.model
        self._prepared = [(start, end, column, model.values(column.key),
                           model.levels.get(column.key)) for start, end, column in self._offsets]
        self.virtual_size = Size(max(x, 1), len(self.order) + 1)
        if self.cursor_row >= len(self.order):
            self.cursor_row = max(len(self.order) - 1, 0)
        self.refresh()

    @property
    def selected_sat(self) -> int | None:
        """The satellite index under the cursor, or None for an empty table."""
        if 0 <= self.cursor_row < len(self.order):
            return int(self.order[self.cursor_row])
        return None

    def select_sat(self, sat: int) -> None:
        """Move the cursor to ``sat`` if it is shown."""
        rows = np.flatnonzero(self.order == sat)
        if rows.size:
            self.cursor_row = int(rows[0])

    # -- drawing ----------------------------------------------------------------------

    def _header_strip(self) -> Strip:
        segments = []
        model = self.model
        for _, _, column in self._offsets:
            heading = column.heading
            style = HEADER_STYLE
            if column.key == model.sort_key:
                heading = f"{heading}{'▼' if model.sort_descending else '▲'}"
                style = SORTED_STYLE
            if column.kind in LEFT_ALIGNED:
                text = heading[: column.width].ljust(column.width)
            else:
                text = heading[-column.width:].rjust(column.width)
            segments.append((text, style))
            segments.append((SEPARATOR, HEADER_STYLE))
        return Strip([Segment(t, s) for t, s in segments])

    def _style(self, cursor: bool, level: int, sun: str | None) -> Style:
        """Cell style for a cursor state, limit level and sun text, built once and kept."""
        key = (cursor, level, sun)
        style = self._styles.get(key)
        if style is None:
            base = (CURSOR_STYLE if self.has_focus else Style(bgcolor="grey23")) if cursor \
                else Style()
            if level:
                cell = LEVEL_STYLE[level]
            elif sun == "mirror":
                cell = MIRROR_STYLE
            else:
                cell = SUN_STYLE.get(sun or "", Style())
            style = self._styles[key] = base + cell
        return style

    def _row_strip(self, row: int, x0: int, x1: int) -> tuple[Strip, int]:
        """Row ``row`` for the columns between cells ``x0`` and ``x1`` only (4,428 rows,
        dozens of columns: format only what shows). Returns the strip and its first cell."""
        sat = int(self.order[row])
        cursor = row == self.cursor_row
        segments: list[Segment] = []
        first = None
        model = self.model
        for start, end, column, values, levels in self._prepared:
            if end + len(SEPARATOR) <= x0 or start >= x1:
                continue
            first = start if first is None else first
            if column.kind == "number" and values is not None:
                # The common case inline: no model.cell call per cell.
                text = column.unit.format(float(values[sat]))
                level = int(levels[sat]) if levels is not None else 0
            else:
                text, level = model.cell(column, sat)
            mark = text if column.kind == "sun" else None
            if column.key == "name" and sat in model.mirror_of:
                mark = "mirror"
            style = self._style(cursor, level, mark)
            if column.kind in LEFT_ALIGNED:
                text = text[: column.width].ljust(column.width)
            else:
                text = text[-column.width:].rjust(column.width)
            # The separator rides in the cell's segment: half the segments to crop and
            # style, which is most of the cost of a line.
            segments.append(Segment(text + SEPARATOR, style))
        return Strip(segments), first or 0

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        if y == 0:
            strip = self._header_strip()
            return strip.crop_extend(scroll_x, scroll_x + width, HEADER_STYLE)
        row = scroll_y + y - 1
        if row >= len(self.order):
            return Strip.blank(width, self.rich_style)
        strip, first = self._row_strip(row, scroll_x, scroll_x + width)
        style = CURSOR_STYLE if row == self.cursor_row else self.rich_style
        return strip.crop_extend(scroll_x - first, scroll_x - first + width, style)

    # -- cursor -----------------------------------------------------------------------

    def watch_cursor_row(self, old: int, new: int) -> None:
        visible = max(self.size.height - 1, 1)
        top = int(self.scroll_y)
        if new < top:
            self.scroll_to(y=new, animate=False)
        elif new >= top + visible:
            self.scroll_to(y=new - visible + 1, animate=False)
        self.refresh()

    def action_cursor(self, delta: int) -> None:
        self.cursor_row = int(np.clip(self.cursor_row + delta, 0, max(len(self.order) - 1, 0)))

    def action_page(self, direction: int) -> None:
        self.action_cursor(direction * max(self.size.height - 2, 1))

    def action_ends(self, direction: int) -> None:
        self.cursor_row = 0 if direction < 0 else max(len(self.order) - 1, 0)

    def action_choose(self) -> None:
        sat = self.selected_sat
        if sat is not None:
            self.post_message(self.Chosen(sat))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        if offset.y == 0:
            x = offset.x + int(self.scroll_x)
            for start, end, column in self._offsets:
                if start <= x < end + len(SEPARATOR):
                    self.post_message(self.SortRequested(column.key))
                    return
            return
        row = int(self.scroll_y) + offset.y - 1
        if 0 <= row < len(self.order):
            self.cursor_row = row
            if event.chain >= 2:
                self.action_choose()

    def on_focus(self) -> None:
        self._styles.clear()
        self.refresh()

    def on_blur(self) -> None:
        self._styles.clear()
        self.refresh()

    def scroll_to_cursor(self) -> None:
        self.scroll_to_region(Region(0, self.cursor_row, 1, 1), animate=False)


class Trend(Widget):
    """A small bar chart of one field's recent values with its limits drawn across it."""

    DEFAULT_CSS = """
    Trend { height: 6; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def __init__(self, title: str, unit: Unit, limits: dict[str, float], **kwargs) -> None:
        super().__init__(**kwargs)
        self.title = title
        self.unit = unit
        self.limits = limits
        self.samples = np.zeros(0, np.float32)

    def set_samples(self, samples: np.ndarray) -> None:
        self.samples = samples
        self.refresh()

    def render(self) -> Text:
        width = max(self.size.width - 9, 4)
        rows = max(self.size.height - 1, 1)
        data = self.samples[-width:].astype(np.float64)
        finite = data[np.isfinite(data)]
        current = self.unit.format(float(data[-1])) if data.size else "—"
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"{self.title} ", style="bold")
        text.append(f"{current} {self.unit.label}".rstrip())
        if self.limits:
            text.append(f"   {limits_text(self.limits, self.unit)}", style="dim")
        if not finite.size:
            text.append("\n(no samples yet)", style="dim")
            return text
        shown = self.unit.convert(data)
        limits = {k: float(self.unit.convert(v)) for k, v in self.limits.items()}
        low = min([float(np.nanmin(shown)), *limits.values()])
        high = max([float(np.nanmax(shown)), *limits.values()])
        if math.isclose(low, high):
            low, high = low - 1.0, high + 1.0
        low -= 0.1 * (high - low)  # the lowest sample still shows as a sliver
        eighths = np.where(np.isfinite(shown), (shown - low) / (high - low) * rows * 8, 0)
        eighths = np.clip(np.round(eighths), 0, rows * 8).astype(int)
        levels = limit_levels(data, self.limits)
        limit_rows = {}
        for key, value in limits.items():
            limit_rows[rows - 1 - min(int((value - low) / (high - low) * rows), rows - 1)] = (
                "red" if key.startswith("alarm") else "yellow")
        blocks = " ▁▂▃▄▅▆▇█"
        for r in range(rows):
            text.append("\n")
            axis = high if r == 0 else low if r == rows - 1 else None
            text.append(f"{axis:8.1f} " if axis is not None else " " * 9, style="dim")
            floor = (rows - 1 - r) * 8
            for i, e in enumerate(eighths):
                fill = int(min(max(e - floor, 0), 8))
                colour = "red" if levels[i] == ALARM else "yellow" if levels[i] == WARN else "green"
                if fill == 0 and r in limit_rows:
                    text.append("╌", style=limit_rows[r])
                else:
                    text.append(blocks[fill], style=colour)
        return text


class HeaderBar(Widget):
    """Scenario, simulation time, warp, connection and fleet totals, three lines."""

    DEFAULT_CSS = """
    HeaderBar { height: 3; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._text = Text()

    def render(self) -> Text:
        return self._text

    def show(self, model: FleetModel, connection: str, missed: int, restarts: int,
             paused: bool, warp: float | None) -> None:
        scenario = (model.meta.get("scenario") or {}).get("name") or model.header.get("scenario")
        text = Text()
        text.append(" ODC Twin ", style="bold black on bright_cyan")
        text.append(f" {scenario or '—'} ", style="bold")
        text.append(f" {model.sim_time()} ")
        text.append(f" warp {warp:g}× " if warp else " warp — ")
        if paused:
            text.append(" PAUSED ", style="bold black on yellow")
        colour = {"LIVE": "bold black on green", "STALE": "bold white on red"}.get(
            connection, "bold black on yellow")
        text.append(" ")
        text.append(f" {connection} ", style=colour)
        for binding in model.mirrors:
            text.append(" ")
            text.append(mirror_badge(model, binding),
                        style=MIRROR_BADGE[model.mirror_live(binding)])
        text.append(f"  nodes {model.n}  missed {missed}", style="dim")
        if restarts:
            text.append(f"  restarts {restarts}", style="dim")
        n_alarm_nodes = int(np.count_nonzero(model.worst >= ALARM)) if model.n else 0
        text.append("   active alarms ", style="dim")
        text.append(f" {len(model.alarms)} ", style="bold white on red" if model.alarms else "bold")
        text.append(f" nodes over alarm limit {n_alarm_nodes}",
                    style="bold red" if n_alarm_nodes else "dim")
        text.append("\n")
        headline, rest = model.fleet_items()
        for label, value in headline:
            text.append(f" {label} ", style="dim")
            text.append(f"{value} ", style="bold")
        text.append("\n")
        for label, value in rest:
            text.append(f" {label} ", style="dim")
            text.append(f"{value}")
        if text.plain != self._text.plain or text.spans != self._text.spans:
            # A plain refresh, not a Static.update: the header's size never changes, so
            # the screen needs no new layout on every frame.
            self._text = text
            self.refresh()


def mirror_badge(model: FleetModel, binding: MirrorBinding) -> str:
    """`` ◉ MIRROR flatsat LIVE `` (``LOST`` once its telemetry stopped)."""
    live = model.mirror_live(binding)
    state = "LIVE" if live else "LOST" if live is False else "WAITING"
    return f" {MIRROR_MARK} MIRROR {binding.testbed} {state} "


def limits_text(limits: dict[str, float], unit: Unit) -> str:
    """``{"warn_high": 353.15}`` in °C as ``warn >80.0``, lowest bound first."""
    parts = []
    for key, value in sorted(limits.items(), key=lambda item: item[1]):
        level, _, side = key.partition("_")
        parts.append(f"{level} {'<' if side == 'low' else '>'}{unit.format(float(value))}")
    return "  ".join(parts)


def unit_for(model: FleetModel, name: str) -> Unit:
    """The display unit of field ``name`` (the table column's, else from its name)."""
    column = model.column(name)
    if column is not None and column.kind == "number":
        return column.unit
    entry = model.catalog.get(name, {})
    return human_unit(name, str(entry.get("unit", "")))

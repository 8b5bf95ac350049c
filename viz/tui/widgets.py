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

from viz.quantity import Scale, fit, typical_of
from viz.tui.header import HeaderBar  # noqa: F401  (moved there; kept importable here)
from viz.tui.levels import ALARM, WARN, limit_levels
from viz.tui.model import COLUMN_PRIORITY, Column, FleetModel

LEVEL_STYLE = {0: Style(), WARN: Style(color="yellow", bold=True),
               ALARM: Style(color="white", bgcolor="red", bold=True)}
SUN_STYLE = {"sun": Style(color="bright_yellow"), "pen": Style(color="magenta"),
             "ecl": Style(color="bright_blue", bold=True)}
# A mirrored node's name. Violet, in true colour: the theme renders ANSI magenta close
# to the alarm red.
MIRROR_STYLE = Style(color="#c77dff", bold=True)
HEADER_STYLE = Style(bold=True, color="black", bgcolor="grey70")
SORTED_STYLE = Style(bold=True, color="black", bgcolor="bright_cyan")
CURSOR_STYLE = Style(bgcolor="grey35")
SEPARATOR = " "
LEFT_ALIGNED = ("text", "station", "enum", "bitmask")


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

    class PageTurn(Message):
        """The cursor went past the first or last row of a reduced stream's rows (the
        twin sends only some nodes: the app asks for the next or previous ones)."""

        def __init__(self, direction: int) -> None:
            self.direction = direction
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
        # The node the operator put the cursor on, followed through re-sorts (None: the
        # cursor keeps its row).
        self.picked: int | None = None
        self._offsets: list[tuple[int, int, Column]] = []
        self._styles: dict[tuple[bool, int, str | None], Style] = {}
        # What each line of the widget showed when textual last drew it, and the lines of
        # the current data: (the view they were worked out for, lines by y).
        self._drawn: dict[int, tuple] = {}
        self._frame: tuple[tuple | None, dict[int, tuple]] = (None, {})
        self._pad = Style()
        # Columns that fit the width, most needed first (the rest lie past the right edge).
        self.columns_fitted = 0

    # -- data -------------------------------------------------------------------------

    def refresh_data(self) -> None:
        """Recompute the row order (filter and sort) and redraw the visible rows.

        Once the operator has picked a node (moved the cursor, clicked, ``]``), the cursor
        stays on that node, not on its row: the table re-sorts at every state (hottest
        first moves nodes up and down), and Enter must open the node they picked, not
        whichever one slid under the cursor meanwhile. Before that, and after a new sort,
        the cursor stays on the top row: the hottest node, whichever it is now.
        """
        self.order = self.model.view_order()
        if self.picked is not None:
            rows = np.flatnonzero(self.order == self.picked)
            if rows.size:
                self.cursor_row = int(rows[0])
            else:
                self.picked = None  # filtered out: the cursor keeps its row
        x = 0
        self._offsets = []
        columns, self.columns_fitted = fit_columns(self.model.columns,
                                                   self.scrollable_content_region.width)
        for column in columns:
            self._offsets.append((x, x + column.width, column))
            x += column.width + len(SEPARATOR)
        self.virtual_size = Size(max(x, 1), len(self.order) + 1)
        if self.cursor_row >= len(self.order):
            self.cursor_row = max(len(self.order) - 1, 0)
        self._frame = (None, {})
        self._repaint_changed()

    def _repaint_changed(self) -> None:
        """Repaint only the lines whose content differs from what the terminal shows.

        At the stream's 10 states/s most rows on screen read the same as a frame ago
        (one decimal of a temperature or a latitude moves every second or so), and a
        repainted line costs textual far more than working out its text: styling,
        cropping, compositing and writing it out. So every visible row is formatted each
        frame, but only the changed ones go to the screen.
        """
        width, height = self.size
        lines, drawn = self._lines(), self._drawn
        dirty = [y for y in range(height) if lines[y] != drawn.get(y)]
        if len(dirty) == height:
            self.refresh()
            return
        regions: list[Region] = []
        for y in dirty:  # runs of adjacent lines as one region each
            if regions and regions[-1].bottom == y:
                last = regions.pop()
                regions.append(Region(0, last.y, width, last.height + 1))
            else:
                regions.append(Region(0, y, width, 1))
        if regions:
            self.refresh(*regions)

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
            self.picked = sat

    def to_top(self) -> None:
        """The cursor on the first row, following no node (after a new sort)."""
        self.picked = None
        self.cursor_row = 0
        self.scroll_to(y=0, animate=False)

    def _pick_row(self, row: int) -> None:
        self.cursor_row = row
        self.picked = self.selected_sat

    # -- drawing ----------------------------------------------------------------------

    def _header_strip(self, scroll_x: int = 0, width: int | None = None) -> Strip:
        """The headings that show whole from ``scroll_x`` over ``width`` cells (None: all)."""
        width = 1 << 30 if width is None else width
        segments = []
        model = self.model
        first = None
        for start, end, column in self._offsets:
            if start < scroll_x or end > scroll_x + width:
                continue  # whole headings only, as the cells
            if first is None:
                first = start
                if start > scroll_x:
                    segments.append((" " * (start - scroll_x), HEADER_STYLE))
            heading = column.heading
            style = HEADER_STYLE
            if column.key == model.sort_key:
                heading = f"{heading}{'▼' if model.sort_descending else '▲'}"
                style = SORTED_STYLE
            if column.kind in LEFT_ALIGNED:
                text = fit(heading, column.width).ljust(column.width)
            else:
                text = fit(heading, column.width).rjust(column.width)
            segments.append((text, style))
            segments.append((SEPARATOR, HEADER_STYLE))
        return Strip([Segment(t, s) for t, s in segments])

    def _style(self, cursor: bool, code: int | tuple[int, str]) -> Style:
        """Cell style for a cursor state and a cell's code, built once and kept.

        ``code`` is the cell's limit level, or (level, mark) for a cell whose look also
        depends on its text or node: the sun column (``sun``, ``pen``, ``ecl``) and a
        mirrored node's name (``mirror``).
        """
        level, mark = (code, None) if isinstance(code, int) else code
        key = (cursor, level, mark)
        style = self._styles.get(key)
        if style is None:
            base = (CURSOR_STYLE if self.has_focus else Style(bgcolor="grey23")) if cursor \
                else Style()
            if level:
                cell = LEVEL_STYLE[level]
            elif mark == "mirror":
                cell = MIRROR_STYLE
            else:
                cell = SUN_STYLE.get(mark or "", Style())
            style = self._styles[key] = base + cell
        return style

    def _view(self) -> tuple:
        scroll_x, scroll_y = self.scroll_offset
        return (scroll_x, scroll_y, *self.size, self.cursor_row, self.has_focus)

    def _lines(self) -> dict[int, tuple]:
        """Every line on screen, by y, kept until the data or the view changes.

        A line is everything its drawing depends on, so two lines compare equal exactly
        when they look the same: ``("header", sort, headings, scroll, width)``,
        ``("row", cell texts, cell style codes, cursor, first cell, scroll, width, pad
        style)`` or ``("blank", width, pad style)``. The rows are worked out a column at a
        time (a few dozen cells per column), only for the columns that show (4,428 rows,
        dozens of columns).
        """
        view = self._view()
        if self._frame[0] == view:
            return self._frame[1]
        scroll_x, scroll_y, width, height, cursor_row, _ = view
        model = self.model
        # The widget's own colours, past the last column and on empty lines (textual
        # works them out from every ancestor's styles on each call: once per frame here).
        pad = self._pad = self.rich_style
        lines: dict[int, tuple] = {}
        if height > 0:
            lines[0] = ("header", model.sort_key, model.sort_descending,
                        tuple((a, b, c.heading, c.kind) for a, b, c in self._offsets),
                        scroll_x, width)
        sats = self.order[scroll_y:scroll_y + max(height - 1, 0)]
        # Whole columns only: a column the edge would cut shows blank, never a cut number.
        shown = [(start, column) for start, end, column in self._offsets
                 if start >= scroll_x and end <= scroll_x + width]
        first = shown[0][0] if shown else 0
        texts, codes = [], []
        for _, column in shown:
            column_texts, levels = model.cells(column, sats)
            w = column.width
            if column.kind == "sun":
                codes.append(list(zip(levels, column_texts, strict=True)))
            elif column.key == "name" and model.mirror_of:
                mirrored = model.mirror_of
                codes.append([(level, "mirror") if sat in mirrored else level
                              for level, sat in zip(levels, sats.tolist(), strict=True)])
            else:
                codes.append(levels)
            # A text wider than its column ends in "…": never cut silently.
            if column.kind in LEFT_ALIGNED:
                texts.append([fit(t, w).ljust(w) + SEPARATOR for t in column_texts])
            else:
                texts.append([fit(t, w).rjust(w) + SEPARATOR for t in column_texts])
        rows = zip(zip(*texts, strict=True), zip(*codes, strict=True), strict=True) if shown \
            else (((), ()) for _ in sats)
        # 0 off the cursor; 1 or 2 on it, without or with focus (its colour differs).
        on_cursor = 1 + self.has_focus
        for y, (row_texts, row_codes) in enumerate(rows, start=1):
            cursor = on_cursor if scroll_y + y - 1 == cursor_row else 0
            lines[y] = ("row", row_texts, row_codes, cursor, first, scroll_x, width, pad)
        for y in range(len(sats) + 1, height):
            lines[y] = ("blank", width, pad)
        self._frame = (view, lines)
        return lines

    def render_line(self, y: int) -> Strip:
        scroll_x = self.scroll_offset.x
        width = self.size.width
        line = self._lines().get(y, ("blank", width, self._pad))
        self._drawn[y] = line
        if line[0] == "header":
            strip = self._header_strip(scroll_x, width)
            return strip.crop_extend(0, width, HEADER_STYLE)
        if line[0] == "blank":
            return Strip.blank(width, line[2])
        _, texts, codes, cursor, first, *_, pad = line
        # Neighbouring cells of one style (most of a row) share a segment: textual's cost
        # per line (cropping, colour filters, compositing, output) grows with segments.
        segments: list[Segment] = []
        run: list[str] = []
        run_style = None
        for text, code in zip(texts, codes, strict=True):
            style = self._style(cursor > 0, code)
            if style is not run_style and run:
                segments.append(Segment("".join(run), run_style))
                run = []
            run.append(text)
            run_style = style
        if run:
            segments.append(Segment("".join(run), run_style))
        pad = CURSOR_STYLE if cursor else pad
        if first > scroll_x:  # the first whole column starts right of the edge
            segments.insert(0, Segment(" " * (first - scroll_x), pad))
        return Strip(segments).crop_extend(0, width, pad)

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
        target = self.cursor_row + delta
        if self.model.selected is not None and not 0 <= target < len(self.order):
            self.post_message(self.PageTurn(1 if delta > 0 else -1))
        self._pick_row(int(np.clip(self.cursor_row + delta, 0, max(len(self.order) - 1, 0))))

    def action_page(self, direction: int) -> None:
        self.action_cursor(direction * max(self.size.height - 2, 1))

    def action_ends(self, direction: int) -> None:
        self._pick_row(0 if direction < 0 else max(len(self.order) - 1, 0))

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
            self._pick_row(row)
            if event.chain >= 2:
                self.action_choose()

    def notify_style_update(self) -> None:
        self._frame = (None, {})  # new colours (a theme change): work the lines out again
        super().notify_style_update()

    def on_resize(self) -> None:
        # Which columns fit depends on the width; the app's draw also retitles the table.
        draw = getattr(self.app, "_schedule_draw", None)
        if draw is not None and self.model.n:
            draw()
        else:
            self.refresh_data()

    def on_focus(self) -> None:
        self._styles.clear()
        self.refresh()

    def on_blur(self) -> None:
        self._styles.clear()
        self.refresh()


def fit_columns(columns: list[Column], width: int) -> tuple[list[Column], int]:
    """The columns in drawing order, and how many of them fit ``width`` cells.

    The most needed (``COLUMN_PRIORITY``, then table order) that fit come first, in table
    order, so a narrow terminal shows the temperatures and SOC rather than the latitude;
    the others follow, past the right edge (scroll right). ``width`` 0: all, as they are.
    """
    if width <= 0:
        return list(columns), len(columns)
    rank = {key: i for i, key in enumerate(COLUMN_PRIORITY)}
    by_need = sorted(range(len(columns)), key=lambda i: (rank.get(columns[i].key, len(rank)), i))
    used, kept = 0, set()
    for i in by_need:
        need = columns[i].width + len(SEPARATOR)
        if used + need <= width + len(SEPARATOR):
            kept.add(i)
            used += need
    fitted = [c for i, c in enumerate(columns) if i in kept]
    return fitted + [c for i, c in enumerate(columns) if i not in kept], len(fitted)


class Trend(Widget):
    """A small bar chart of one field's recent values with its limits drawn across it."""

    DEFAULT_CSS = """
    Trend { height: 6; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def __init__(self, title: str, unit: Scale, limits: dict[str, float], **kwargs) -> None:
        super().__init__(**kwargs)
        self.title = title
        self.unit = unit
        self.limits = limits
        self.samples = np.zeros(0, np.float32)
        self.fit = False

    def set_samples(self, samples: np.ndarray, fit: bool = False) -> None:
        """Show ``samples``: the newest that fit (live), or with ``fit`` all of them,
        spread evenly over the width (a whole recording)."""
        self.samples = samples
        self.fit = fit
        self.refresh()

    def render(self) -> Text:
        width = max(self.size.width - 9, 4)
        rows = max(self.size.height - 1, 1)
        data = self.samples[-width:]
        if self.fit and self.samples.size > width:
            data = self.samples[np.linspace(0, self.samples.size - 1, width).round().astype(int)]
        data = data.astype(np.float64)
        finite = data[np.isfinite(data)]
        current = self.unit.text(float(data[-1])) if data.size else "—"
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"{self.title} ", style="bold")
        text.append(current)
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


def limits_text(limits: dict[str, float], unit: Scale) -> str:
    """``{"warn_high": 353.15}`` in °C as ``warn >80.0 °C``, lowest bound first."""
    parts = []
    for key, value in sorted(limits.items(), key=lambda item: item[1]):
        level, _, side = key.partition("_")
        parts.append(f"{level} {'<' if side == 'low' else '>'}{unit.text(float(value))}")
    return "  ".join(parts)


def unit_for(model: FleetModel, name: str) -> Scale:
    """The display scale of field ``name``: its table column's, else one from its values."""
    column = model.column(name)
    if column is not None and column.kind == "quantity":
        return column.unit
    array = model.arrays.get(name)
    return model.quantities.field(name).scale_for(typical_of(array) if array is not None
                                                  else float("nan"))

"""The fleet table's rows: which nodes pass the filters, in what order, and each cell's text.

A mixin of ``viz.tui.model.FleetModel``. The view asks for ``view_order`` and formats only
the rows it shows with ``cells``, so 4,428 rows cost a few dozen formats.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from viz.mirror import MirrorBinding
from viz.tui.levels import ALARM, OK
from viz.tui.mirror_rows import MIRROR_MARK

if TYPE_CHECKING:
    from viz.tui.model import Column
    from viz.tui.table_subscription import SelectedRows


class TableRows:
    """Filter, sort and cell text of a ``FleetModel``'s table.

    The host class provides the fleet (size, names, groups, stations), its columns, each
    node's limit levels and ``values`` (a field's per-node array), and the flags
    ``in_alarm`` and ``in_eclipse``.
    """

    n: int
    names: list[str]
    groups: list[str]
    stations: list[str]
    station_labels: list[str]
    columns: list[Column]
    levels: dict[str, np.ndarray]
    worst: np.ndarray
    mirror_of: dict[int, list[MirrorBinding]]
    sort_key: str
    sort_descending: bool
    text_filter: str
    only_alarm: bool
    only_eclipse: bool
    alarms: dict
    header: dict
    _text_mask: np.ndarray | None
    in_alarm: np.ndarray
    in_eclipse: np.ndarray
    values: Callable[[str], np.ndarray | None]
    selected: SelectedRows | None
    """The rows of the table's selective stream (a reduced stream), else None: the table
    lists only these nodes, with their values (viz.tui.table_subscription)."""

    # -- filter and sort ----------------------------------------------------------------

    def set_text_filter(self, text: str) -> None:
        self.text_filter = text.strip().lower()
        self._text_mask = None

    def _text(self) -> np.ndarray:
        if self._text_mask is None or self._text_mask.shape != (self.n,):
            if not self.text_filter:
                self._text_mask = np.ones(self.n, bool)
            else:
                words = self.text_filter
                self._text_mask = np.array(
                    [words in self.name(i).lower() or words in self.group(i).lower()
                     for i in range(self.n)], bool).reshape(self.n)
        return self._text_mask

    def set_sort(self, key: str, descending: bool | None = None) -> None:
        """Sort by column ``key``; the same key again flips the direction.

        Numbers sort high-first on first choice (the hottest node on top), names A to Z.
        """
        if descending is None:
            if key == self.sort_key:
                descending = not self.sort_descending
            else:
                column = self.column(key)
                descending = bool(column and column.numeric)
        self.sort_key, self.sort_descending = key, descending

    def column(self, key: str) -> Column | None:
        return next((c for c in self.columns if c.key == key), None)

    def _sort_values(self, key: str, index: np.ndarray | None = None) -> np.ndarray | None:
        """The sort key of every node (of ``index``'s nodes, where given)."""
        sats = range(self.n) if index is None else index.tolist()
        if key == "name":
            return np.array([self.name(i).lower() for i in sats])
        if key == "group":
            return np.array([self.group(i).lower() for i in sats])
        if index is not None:  # the selective stream's rows
            values = self.selected.values(key, index) if self.selected is not None else None
        else:
            values = self.values(key)
        if values is None:
            return None
        values = values.astype(np.float64)
        if self.column(key) and self.column(key).kind == "station":
            values = np.where(values < 0, np.nan, values)
        return values

    def view_order(self) -> np.ndarray:
        """Satellite indices that pass the filters, in sort order (missing values last)."""
        if self.selected is not None:
            return self._selected_order(self.selected)
        if self.header.get("reduced") is True:  # no node rows on this stream (yet)
            return np.zeros(0, np.intp)
        mask = self._text()
        if self.only_alarm:
            mask = mask & self.in_alarm
        if self.only_eclipse:
            mask = mask & self.in_eclipse
        index = np.flatnonzero(mask)
        if not self.sort_key:
            return index
        values = self._sort_values(self.sort_key)
        if values is None:
            return index
        return self._sorted(index, values[index])

    def _selected_order(self, rows: SelectedRows) -> np.ndarray:
        """The selective stream's nodes that pass the filters, sorted among themselves
        (the twin's order where values tie: its rank, ties by node index)."""
        index = rows.sats
        keep = np.ones(index.size, bool)
        if self.text_filter:
            words = self.text_filter
            keep &= np.array([words in self.name(i).lower() or words in self.group(i).lower()
                              for i in index.tolist()], bool).reshape(index.size)
        if self.only_alarm:  # past an alarm limit, or an alarm event on the node
            keep &= (rows.worst >= ALARM) | np.isin(index, [sat for _, sat in self.alarms])
        if self.only_eclipse:
            sunlit = rows.arrays.get("sunlit_frac")
            keep &= sunlit < 0.5 if sunlit is not None else False
        index = index[keep]
        if not self.sort_key:
            return index
        values = self._sort_values(self.sort_key, index)
        return index if values is None else self._sorted(index, values)

    def _sorted(self, index: np.ndarray, values: np.ndarray) -> np.ndarray:
        """``index`` ordered by ``values`` (one per node of ``index``)."""
        if values.dtype.kind in "US":
            order = np.argsort(values, kind="stable")
            return index[order[::-1] if self.sort_descending else order]
        missing = ~np.isfinite(values)
        keyed = -values if self.sort_descending else values
        keyed = np.where(missing, np.inf, keyed)
        return index[np.argsort(keyed, kind="stable")]

    # -- formatting -------------------------------------------------------------------

    def name(self, sat: int) -> str:
        return self.names[sat] if 0 <= sat < len(self.names) else f"#{sat}"

    def group(self, sat: int) -> str:
        return self.groups[sat] if 0 <= sat < len(self.groups) else ""

    def station(self, index: int) -> str:
        """The table's name of station ``index`` (short: ``Wallops``)."""
        if index < 0:
            return "—"
        labels = self.station_labels
        return labels[index] if index < len(labels) else f"#{index}"

    def cell(self, column: Column, sat: int) -> tuple[str, int]:
        """The text of one cell and its limit level (0 ok, 1 warn, 2 alarm)."""
        texts, levels = self.cells(column, np.array([sat], np.intp))
        return texts[0], levels[0]

    def cells(self, column: Column, sats: np.ndarray) -> tuple[list[str], list[int]]:
        """The texts and limit levels of one column for many nodes (the rows on screen).

        Args:
            column: The column.
            sats: (k,) satellite indices, in row order.
        """
        index = sats.tolist()
        if column.key in ("name", "group"):
            if column.key == "group":
                return [self.group(sat) for sat in index], [OK] * len(index)
            mirrored = self.mirror_of
            texts = [f"{MIRROR_MARK} {self.name(sat)}" if sat in mirrored else self.name(sat)
                     for sat in index]
            if self.selected is not None:  # the selective stream's rows: their own levels
                positions = self.selected.rows_of(sats).tolist()
                worst = self.selected.worst
                return texts, [int(worst[p]) if p >= 0 else OK for p in positions]
            worst = self.worst
            return texts, [int(worst[sat]) if sat < len(worst) else OK for sat in index]
        values = self.values(column.key)
        if values is None and self.selected is not None and len(index):
            return self._selected_cells(column, sats)
        if values is None or (len(index) and not 0 <= min(index) <= max(index) < self.n):
            return [""] * len(index), [OK] * len(index)
        levels = self.levels.get(column.key)
        level_list = levels[sats].tolist() if levels is not None else [OK] * len(index)
        return self._texts(column, values[sats]), level_list

    def _selected_cells(self, column: Column, sats: np.ndarray) -> tuple[list[str], list[int]]:
        """Cells of the selective stream's rows (a field it did not bring: blank)."""
        rows = self.selected
        values = rows.values(column.key, sats)
        if values is None:
            return [""] * len(sats), [OK] * len(sats)
        positions = rows.rows_of(sats)
        levels = rows.levels.get(column.key)
        level_list = [int(levels[p]) if p >= 0 else OK for p in positions.tolist()] \
            if levels is not None else [OK] * len(sats)
        return self._texts(column, values), level_list

    def _texts(self, column: Column, values: np.ndarray) -> list[str]:
        """A number column's texts for ``values`` (one per row)."""
        shown = values.tolist()
        if column.kind == "sun":
            texts = ["sun" if v >= 0.999 else "ecl" if v <= 0.001 else "pen" for v in shown]
        elif column.kind == "station":
            texts = [self.station(int(v)) if math.isfinite(v) else "—" for v in shown]
        elif column.quantity is not None:
            texts = column.quantity.format_array(values, scale=column.unit)
            if column.kind == "enum":  # "heat: chip thermally throttled": the word; the
                texts = [t.partition(":")[0] for t in texts]  # detail says the rest
        else:
            texts = column.unit.numbers(shown)
        return texts

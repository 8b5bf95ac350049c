"""The dashboard's data model: the newest state and meta, the table's columns, fleet totals.

Pure numpy and the standard library, no textual, so it is unit-tested on its own. The
table is built from ``meta``'s field catalog (falling back to a ``state`` header's field
list before ``meta`` arrives), so a field the twin adds later appears without code
changes. Values stay in their wire units on the model; each column formats them through
its :class:`viz.quantity.Quantity`, as the catalog says (K to °C, W to kW, fractions to
%, codes to their names), the same way the 3D viewer does.

``FleetModel`` gathers its parts as mixins: the alarm book (``viz.tui.alarms``), the
trends (``viz.tui.trends``), the mirrored nodes' rows (``viz.tui.mirror_rows``) and the
table's filter, sort and cells (``viz.tui.rows``).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from twin.protocol.codec import Message
from viz.checks import check_meta, check_state
from viz.mirror import MirrorBinding, mirror_bindings
from viz.quantity import Catalog, Quantity, Scale, fit, typical_of
from viz.tui.alarms import ActiveAlarm, AlarmBook
from viz.tui.levels import ALARM, limit_levels
from viz.tui.mirror_rows import MIRROR_MARK, MirrorReadings
from viz.tui.rows import TableRows
from viz.tui.trends import TREND_SAMPLES, TrendHistory
from viz.tui.words import short_names

# Per-satellite fields shown first, in this order, when the twin publishes them (exact
# names: a preference, never a reading of units). Everything else follows in catalog order.
PREFERRED = (
    "lat_deg", "lon_deg", "alt_km", "sunlit_frac",
    "temp_compute_k", "temp_radiator_k", "temp_battery_k",
    "soc_frac", "utilization_frac", "delivered_flop_s", "throttle_code", "limit_reason",
    "compute_cap_w", "power_cap_w", "upsets", "contact_station", "fault_flags",
    "limit_level", "temp_array_k", "temp_bus_k",
)
# Which columns a narrow terminal keeps, most needed first (exact names; the rest follow in
# table order). The kept ones show in table order; the others wait past the right edge.
COLUMN_PRIORITY = (
    "name", "temp_compute_k", "soc_frac", "utilization_frac", "delivered_flop_s",
    "limit_reason", "sunlit_frac", "throttle_code", "limit_level", "contact_station",
    "fault_flags", "temp_radiator_k", "temp_battery_k", "group", "lat_deg", "lon_deg",
    "alt_km",
)
# Fields the table leaves to the detail screen: bulky or of no use at a glance.
TABLE_SKIP = {"status", "pos_gcrs_km", "vel_gcrs_km_s", "pos_itrs_km", "vel_itrs_km_s"}
# Widest a column of names (an enum's labels, a bitmask's bits) gets; longer ones end in …
NAMES_WIDTH = 12
# Fleet totals that lead the header, by exact name, in this order; the rest follow.
HEADLINE_TOTALS = ("delivered_pflop_s", "goodput_frac", "p_solar_total_w", "p_load_total_w",
                   "n_in_eclipse", "n_in_contact", "queue_length", "temp_compute_max_k",
                   "soc_min_frac", "n_limit_alarm", "n_limit_warning")
# The table starts sorted by this column, highest first (the hottest node on top), as the
# footer says; a twin without it leaves the table in the twin's order.
DEFAULT_SORT = ("temp_compute_k", True)


@dataclass
class Column:
    """One column of the fleet table.

    Attributes:
        key: Field name, or ``name``/``group`` for the identity columns.
        label: Header text (without the unit).
        unit: The display scale of a ``quantity`` column (unit, factor, decimals), one
            for the whole column, picked from its values.
        kind: ``text``, ``sun``, ``station``, or the catalog's kind: ``quantity``,
            ``enum``, ``bitmask``, ``flag``, ``index``.
        limits: Operating limits in the field's wire unit (``warn_high``, ...).
        width: Cells wide, header and values.
        description: One line from the catalog.
        quantity: The catalog entry the cells are formatted from.
        provisional: The scale was picked before any finite value: pick again.
    """

    key: str
    label: str
    unit: Scale = field(default_factory=Scale)
    kind: str = "quantity"
    limits: dict[str, float] = field(default_factory=dict)
    width: int = 8
    description: str = ""
    quantity: Quantity | None = None
    provisional: bool = False

    @property
    def heading(self) -> str:
        return f"{self.label} {self.unit.unit}" if self.unit.unit else self.label

    @property
    def numeric(self) -> bool:
        return self.kind != "text"


def utc_text(t_utc: float) -> str:
    """POSIX seconds as ``YYYY-MM-DD HH:MM:SS``."""
    try:
        return datetime.fromtimestamp(t_utc, UTC).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return "—"


class FleetModel(AlarmBook, TrendHistory, MirrorReadings, TableRows):
    """What the dashboard knows: the newest state, meta, the columns and the trends.

    The view asks for :meth:`view_order` (sat indices after filter and sort) and formats
    only the rows it shows with :meth:`cell`, so 4,428 rows cost a few dozen formats.
    """

    def __init__(self, trend_samples: int = TREND_SAMPLES) -> None:
        self.meta: dict[str, Any] = {}
        self.header: dict[str, Any] = {}
        self.arrays: dict[str, np.ndarray] = {}
        self.n = 0
        self.names: list[str] = []
        self.groups: list[str] = []
        self.stations: list[str] = []
        self.station_labels: list[str] = []
        self.catalog: dict[str, dict[str, Any]] = {}
        # How every field and fleet total reads (meta's catalogs; bare before meta).
        self.quantities = Catalog()
        self.columns: list[Column] = []
        self.levels: dict[str, np.ndarray] = {}
        self.worst = np.zeros(0, np.uint8)
        self.sort_key, self.sort_descending = DEFAULT_SORT
        self.text_filter = ""
        self.only_alarm = False
        self.only_eclipse = False
        self._text_mask: np.ndarray | None = None
        self.trend_samples = self.max_trend_samples = trend_samples
        self.trend_fields: list[str] = []
        self.trend: np.ndarray = np.zeros((0, 0, 0), np.float32)
        self.trend_t: deque[float] = deque(maxlen=trend_samples)
        self._trend_next = 0
        self.trend_count = 0
        self.alarms: dict[tuple[str, int], ActiveAlarm] = {}
        self.aggregate: dict[str, Any] = {}
        """The newest ``aggregate`` header (viz.aggregate): the fleet view reads it where
        the state has no per-node values (a large fleet's default ``state``)."""
        self.selected = None
        """The node table's rows from the twin's selective stream on a reduced stream
        (viz.tui.table_subscription.SelectedRows), else None."""
        self.events_seen = 0
        self.states_seen = 0
        self._layout_key: tuple = ()
        self._fleet_layout: tuple[Any, Any] = (None, ([], []))
        self.mirrors: list[MirrorBinding] = []
        self.mirror_of: dict[int, list[MirrorBinding]] = {}

    # -- input ------------------------------------------------------------------------

    def apply_meta(self, meta: Message | dict[str, Any]) -> None:
        """Take names, groups, stations and the field catalog from a ``meta`` message."""
        body = meta.header if isinstance(meta, Message) else meta
        if body is self.meta:  # a repeat the stream recognised (viz.meta_repeat): taken
            return             # already (at a million: a million names not read again)
        check_meta(body)  # raises before anything changes: a bad meta is never half-taken
        self.meta = body
        sats = body.get("sats") or {}
        n = int(sats.get("n", len(sats.get("names", [])) or self.n))
        self.names = [str(x) for x in sats.get("names", [])][:n]
        self.groups = [str(x) for x in sats.get("groups", [])][:n]
        self.stations = [str(s.get("name", "?")) for s in body.get("stations", [])
                         if isinstance(s, dict)]
        self.station_labels = short_names(self.stations)  # the table's (the names in full
        # are the detail's and the events')
        self.catalog = {e["name"]: e for e in body.get("fields", [])
                        if isinstance(e, dict) and "name" in e}
        self.quantities = Catalog(body)
        self.mirrors = [b for b in mirror_bindings(body) if 0 <= b.sat < n]
        self.mirror_of = {}
        for binding in self.mirrors:
            self.mirror_of.setdefault(binding.sat, []).append(binding)
        self._text_mask = None
        self._resize(n)
        self._layout_key = ()
        self._relayout()

    def apply_state(self, state: Message) -> None:
        """Take a ``state`` message: arrays, header, limit levels and a trend sample.

        The stream has checked it (`viz.checks.check_state`); arrays whose shape does not
        fit ``n_sats`` are kept but shown nowhere (`values` gives None for them).
        """
        check_state(state)  # raises before anything changes
        n = state.header["n_sats"]
        self.header = state.header
        self.arrays = state.arrays
        self.states_seen += 1
        if state.header.get("reduced") is not True:
            self.selected = None  # every node's row is in the state again
        if n != self.n:
            self._resize(n)
        self._relayout()
        for column in self.columns:
            if column.provisional:  # zeros at the start: a unit for real values now
                self._scale_column(column)
        self._update_levels()
        self._sample_trends(state.t_utc)

    def forget_state(self) -> None:
        """Drop the newest state (one that could not be taken): blank cells, not stale ones."""
        self.header, self.arrays = {}, {}
        self.worst = np.zeros(self.n, np.uint8)
        self.levels = {}

    def _resize(self, n: int) -> None:
        if n == self.n and self.trend.shape[-1:] == (n,):
            return
        self.n = n
        self.selected = None  # rows of another fleet
        self.worst = np.zeros(n, np.uint8)
        self.trend = np.zeros((0, 0, n), np.float32)
        self.trend_fields = []
        self._text_mask = None

    # -- columns ----------------------------------------------------------------------

    def _entries(self) -> list[dict[str, Any]]:
        """Field entries, from the catalog where known, else from the state header."""
        entries = []
        for entry in self.header.get("fields", []) or self.catalog.values():
            name = entry.get("name")
            entries.append(self.catalog.get(name, entry))
        if not entries:
            entries = list(self.catalog.values())
        return entries

    def _per_sat_scalar(self, entry: dict[str, Any]) -> bool:
        shape = entry.get("shape") or []
        return len(shape) == 1 and int(shape[0]) == self.n and entry.get("per_sat", True)

    def _relayout(self) -> None:
        entries = [e for e in self._entries() if self._per_sat_scalar(e)]
        key = (tuple(e["name"] for e in entries), len(self.catalog), self.n, len(self.stations))
        if key == self._layout_key:
            return
        self._layout_key = key
        # Fields the header lists before meta describes them read as bare numbers.
        self.quantities = Catalog(self.meta, entries)
        name_width = max([len(x) for x in self.names[:5000]] + [6])
        if self.mirrors:
            name_width += len(MIRROR_MARK) + 1
        columns = [Column("name", "Node", kind="text", width=min(name_width + 1, 24))]
        if self.groups:
            columns.append(Column("group", "Group", kind="text",
                                  width=min(max(len(g) for g in self.groups), 14)))
        chosen = [e for e in entries if e["name"] not in TABLE_SKIP]
        rank = {name: i for i, name in enumerate(PREFERRED)}
        ordered = sorted(chosen, key=lambda e: rank.get(e["name"], len(rank)))  # stable
        for entry in ordered:
            column = self._column(entry)
            if column.label in {c.label for c in columns}:  # two alike: say which is which
                column.label = fit(column.key.replace("_", " "), 14)
                column.width = max(column.width, len(column.heading) + 1)
            columns.append(column)
        self.columns = columns
        if self.selected is not None:  # a reduced stream: scales from the rows received
            self.scale_from_rows(self.selected.arrays)
        self._plan_trends(columns)
        if self.sort_key and entries and self.sort_key not in {c.key for c in columns}:
            # Gone, or (the default) never there: the twin's order, said as unsorted. (No
            # field at all yet, a reduced state before meta: the sort waits for meta.)
            self.sort_key, self.sort_descending = "", False

    def _column(self, entry: dict[str, Any]) -> Column:
        name = entry["name"]
        q = self.quantities.field(name)
        limits, description = dict(q.limits), q.description
        if name == "sunlit_frac":
            return Column(name, "Sun", Scale(), "sun", limits, 5, description, q)
        if name == "contact_station":
            width = min(max([len(s) for s in self.station_labels] + [7]), NAMES_WIDTH)
            return Column(name, "Contact", Scale(), "station", limits, width, description, q)
        label = q.label()
        if q.kind in ("enum", "bitmask"):
            names = list(q.labels.values())
            longest = len("+".join(names)) if q.kind == "bitmask" else \
                max([len(n) for n in names] + [3])
            width = max(len(label), min(longest, NAMES_WIDTH))
            return Column(name, label, Scale(), q.kind, limits, width, description, q)
        if q.kind == "flag":
            return Column(name, label, Scale(), "flag", limits, max(len(label), 3),
                          description, q)
        column = Column(name, label, Scale(), q.kind, limits, 7, description, q)
        self._scale_column(column)
        return column

    def _scale_column(self, column: Column, array: np.ndarray | None = None) -> None:
        """Pick a number column's scale (its SI prefix, its decimals) from its values
        (``array``: some nodes' values, where the state has none: a reduced stream)."""
        array = self.arrays.get(column.key) if array is None else array
        typical = typical_of(array) if array is not None else math.nan
        column.unit = column.quantity.scale_for(typical)
        column.provisional = not math.isfinite(typical) or typical == 0.0
        column.width = max(len(column.heading) + 1, 7)  # room for the sort arrow

    # -- per state ---------------------------------------------------------------------

    def scale_from_rows(self, arrays: dict[str, np.ndarray]) -> None:
        """Scale the columns still without one from some nodes' values (a reduced
        stream's selected rows)."""
        for column in self.columns:
            if column.provisional and column.key in arrays:
                self._scale_column(column, arrays[column.key])

    def values(self, key: str) -> np.ndarray | None:
        """The raw per-satellite array for a column key (SI), or None."""
        array = self.arrays.get(key)
        if array is None or array.shape != (self.n,):
            return None
        return array

    def _update_levels(self) -> None:
        worst = np.zeros(self.n, np.uint8)
        self.levels = {}
        for column in self.columns:
            if not column.limits:
                continue
            values = self.values(column.key)
            if values is None:
                continue
            levels = limit_levels(values.astype(np.float64, copy=False), column.limits)
            self.levels[column.key] = levels
            np.maximum(worst, levels, out=worst)
        # The twin's own limit monitor (with hysteresis) counts too, where it publishes one.
        twin_levels = self.values("limit_level")
        if twin_levels is not None:
            own = np.clip(twin_levels, 0, ALARM).astype(np.uint8)
            self.levels["limit_level"] = own
            np.maximum(worst, own, out=worst)
        self.worst = worst

    @property
    def in_eclipse(self) -> np.ndarray:
        """(n,) bool: less than half the solar disk visible."""
        sunlit = self.values("sunlit_frac")
        return np.zeros(self.n, bool) if sunlit is None else sunlit < 0.5

    # -- fleet totals and time ----------------------------------------------------------

    def fleet_items(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """The state header's fleet totals as (label, text): the headline ones, the rest."""
        fleet = self.header.get("fleet") or {}
        names = tuple(fleet)
        if self._fleet_layout[0] != (names, id(self.meta)):
            self._fleet_layout = ((names, id(self.meta)), self._plan_fleet(names))
        headline, rest = self._fleet_layout[1]

        def items(keys: list[str]) -> list[tuple[str, str]]:
            total = self.quantities.total
            return [(total(key).label(24), total(key).format(fleet[key])) for key in keys]

        return items(headline), items(rest)

    @staticmethod
    def _plan_fleet(names: tuple[str, ...]) -> tuple[list[str], list[str]]:
        """Which fleet totals lead the header, in order, and the rest (once per key set)."""
        keys = [k for k in HEADLINE_TOTALS if k in names]
        return keys, [k for k in names if k not in keys and k != "n_sats"]

    def policy(self) -> str | None:
        """The scheduling policy in force (the ``scheduler_policy_code`` fleet total, named
        by meta's labels), or None when the twin does not publish it."""
        code = (self.header.get("fleet") or {}).get("scheduler_policy_code")
        if code is None:
            return None
        return self.quantities.total("scheduler_policy_code").label_of(code)

    def sim_time(self) -> str:
        t = self.header.get("t_utc")
        return utc_text(float(t)) + " UTC" if t is not None else "—"

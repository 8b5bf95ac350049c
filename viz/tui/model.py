"""The dashboard's data model: columns from the field catalog, human units, sort, filter, trends.

Pure numpy and the standard library, no textual, so it is unit-tested on its own. The
table is built from ``meta``'s field catalog (falling back to a ``state`` header's field
list before ``meta`` arrives), so a field the twin adds later appears without code
changes. Values stay in their wire units on the model; each column formats them through
its :class:`viz.quantity.Quantity`, as the catalog says (K to °C, W to kW, fractions to
%, codes to their names), the same way the 3D viewer does.
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

OK, WARN, ALARM = 0, 1, 2
SEVERITY_LEVEL = {"info": OK, "warning": WARN, "alarm": ALARM}

# Per-satellite fields shown first, in this order, when the twin publishes them (exact
# names: a preference, never a reading of units). Everything else follows in catalog order.
PREFERRED = (
    "lat_deg", "lon_deg", "alt_km", "sunlit_frac",
    "temp_compute_k", "temp_radiator_k", "temp_battery_k",
    "soc_frac", "utilization_frac", "delivered_flop_s", "throttle_code", "limit_reason",
    "compute_cap_w", "power_cap_w", "upsets", "contact_station", "fault_flags",
    "limit_level", "temp_array_k", "temp_bus_k",
)
# Fields the table leaves to the detail screen: bulky or of no use at a glance.
TABLE_SKIP = {"status", "pos_gcrs_km", "vel_gcrs_km_s", "pos_itrs_km", "vel_itrs_km_s"}
# Fields drawn as trends on the detail screen besides every quantity the catalog gives
# limits (those the twin says to watch), by exact name.
TREND_FIELDS = ("temp_compute_k", "temp_radiator_k", "temp_battery_k", "temp_bus_k",
                "temp_array_k", "soc_frac", "utilization_frac", "delivered_flop_s")
TREND_SAMPLES = 180  # 180 x ~10 fields x 4,428 nodes x 4 B = 32 MB at most
# Fewer samples where a fleet is bigger (or a catalog has more trend fields) than that.
TREND_MAX_BYTES = 64 * 2**20
# Widest a column of names (an enum's labels, a bitmask's bits) gets; longer ones end in …
NAMES_WIDTH = 12
# Fleet totals that lead the header, by exact name, in this order; the rest follow.
HEADLINE_TOTALS = ("delivered_pflop_s", "goodput_frac", "p_solar_total_w", "p_load_total_w",
                   "n_in_eclipse", "n_in_contact", "queue_length", "temp_compute_max_k",
                   "soc_min_frac", "n_limit_alarm", "n_limit_warning")


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


def limit_levels(values: np.ndarray, limits: dict[str, float]) -> np.ndarray:
    """Per value: 0 within limits, 1 past a warning limit, 2 past an alarm limit.

    Args:
        values: Any shape, in the limits' unit; NaN counts as within limits.
        limits: ``warn_low``, ``warn_high``, ``alarm_low``, ``alarm_high`` (any subset).
    """
    levels = np.zeros(values.shape, np.uint8)
    if not limits:
        return levels
    with np.errstate(invalid="ignore"):
        for key, level in (("warn_low", WARN), ("warn_high", WARN),
                           ("alarm_low", ALARM), ("alarm_high", ALARM)):
            if key not in limits:
                continue
            bound = float(limits[key])
            past = values < bound if key.endswith("low") else values > bound
            np.maximum(levels, np.where(past, level, 0).astype(np.uint8), out=levels)
    return levels


# Marks a mirrored node (a hardware testbed drives it) in names and headers.
MIRROR_MARK = "◉"


@dataclass(frozen=True)
class MirrorRow:
    """One quantity of a mirrored node: SI values, NaN where absent.

    ``level`` colours the residual: ALARM past its threshold (the twin raises
    ``mirror_residual`` there), WARN past half of it, OK within.
    """

    quantity: str
    role: str  # "state" (compared) or "driver" (measured, drives the model)
    measured: float
    predicted: float
    residual: float
    threshold: float
    level: int


@dataclass
class ActiveAlarm:
    """An alarm event the operator has not acknowledged yet (repeats are counted)."""

    kind: str
    sat: int
    message: str
    t_utc: float
    count: int = 1


# Most active (unacknowledged) alarms kept; one per kind and node.
MAX_ALARMS = 10_000


def _index(value: Any, default: int) -> int:
    """``value`` if it is an int (not a bool), else ``default``: for indices from the stream."""
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _seconds(value: Any, default: float) -> float:
    """``value`` as a finite float, else ``default``."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return default


def utc_text(t_utc: float) -> str:
    """POSIX seconds as ``YYYY-MM-DD HH:MM:SS``."""
    try:
        return datetime.fromtimestamp(t_utc, UTC).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return "—"


class FleetModel:
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
        self.catalog: dict[str, dict[str, Any]] = {}
        # How every field and fleet total reads (meta's catalogs; bare before meta).
        self.quantities = Catalog()
        self.columns: list[Column] = []
        self.levels: dict[str, np.ndarray] = {}
        self.worst = np.zeros(0, np.uint8)
        self.sort_key = ""
        self.sort_descending = False
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
        check_meta(body)  # raises before anything changes: a bad meta is never half-taken
        self.meta = body
        sats = body.get("sats") or {}
        n = int(sats.get("n", len(sats.get("names", [])) or self.n))
        self.names = [str(x) for x in sats.get("names", [])][:n]
        self.groups = [str(x) for x in sats.get("groups", [])][:n]
        self.stations = [str(s.get("name", "?")) for s in body.get("stations", [])
                         if isinstance(s, dict)]
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

    def apply_event(self, event: Message | dict[str, Any]) -> dict[str, Any]:
        """Record an event; alarms become active until acknowledged. Returns the event map."""
        body = event.header if isinstance(event, Message) else event
        self.events_seen += 1
        if body.get("severity") == "alarm":
            key = (str(body.get("kind", "?")), _index(body.get("sat"), -1))
            active = self.alarms.get(key)
            if active is None:
                if len(self.alarms) >= MAX_ALARMS:  # a flood of distinct alarms: oldest go
                    self.alarms.pop(min(self.alarms, key=lambda k: self.alarms[k].t_utc))
                self.alarms[key] = ActiveAlarm(key[0], key[1], self.event_text(body),
                                               _seconds(body.get("t_utc"), 0.0))
            else:
                active.count += 1
                active.message = self.event_text(body)
                active.t_utc = _seconds(body.get("t_utc"), active.t_utc)
        return body

    def event_text(self, body: dict[str, Any]) -> str:
        """An event's text, its values in the field's display unit (the table's)."""
        return self.quantities.event_text(body)

    def acknowledge(self, key: tuple[str, int] | None = None) -> int:
        """Acknowledge one active alarm (or all with ``None``); returns how many."""
        if key is None:
            count = len(self.alarms)
            self.alarms.clear()
            return count
        return 1 if self.alarms.pop(key, None) is not None else 0

    def _resize(self, n: int) -> None:
        if n == self.n and self.trend.shape[-1:] == (n,):
            return
        self.n = n
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
        # Trends in the table's order: compute, radiator and battery temperatures first.
        self.trend_fields = [c.key for c in columns if c.key in TREND_FIELDS or (
            c.kind == "quantity" and c.limits)]
        per_sample = 4 * len(self.trend_fields) * self.n
        self.trend_samples = int(min(self.max_trend_samples,
                                     max(TREND_MAX_BYTES // max(per_sample, 1), 2)))
        self.trend_t = deque(maxlen=self.trend_samples)
        self.trend = np.full((self.trend_samples, len(self.trend_fields), self.n), np.nan,
                             np.float32)
        self.trend_t.clear()
        self._trend_next = 0
        self.trend_count = 0
        if self.sort_key and self.sort_key not in {c.key for c in columns}:
            self.sort_key = ""

    def _column(self, entry: dict[str, Any]) -> Column:
        name = entry["name"]
        q = self.quantities.field(name)
        limits, description = dict(q.limits), q.description
        if name == "sunlit_frac":
            return Column(name, "Sun", Scale(), "sun", limits, 5, description, q)
        if name == "contact_station":
            width = min(max([len(s) for s in self.stations] + [7]), 12)
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

    def _scale_column(self, column: Column) -> None:
        """Pick a number column's scale (its SI prefix, its decimals) from its values."""
        array = self.arrays.get(column.key)
        typical = typical_of(array) if array is not None else math.nan
        column.unit = column.quantity.scale_for(typical)
        column.provisional = not math.isfinite(typical) or typical == 0.0
        column.width = max(len(column.heading) + 1, 7)  # room for the sort arrow

    # -- per state ---------------------------------------------------------------------

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

    def _sample_trends(self, t_utc: float) -> None:
        if not self.trend_fields or self.trend.shape[2] != self.n:
            return
        row = self.trend[self._trend_next]
        for i, name in enumerate(self.trend_fields):
            values = self.values(name)
            with np.errstate(over="ignore"):  # beyond float32: inf, drawn as no data
                row[i] = values if values is not None else np.nan
        self.trend_t.append(t_utc)
        self._trend_next = (self._trend_next + 1) % self.trend_samples
        self.trend_count = min(self.trend_count + 1, self.trend_samples)

    def trend_of(self, name: str, sat: int) -> np.ndarray:
        """Oldest-first samples of field ``name`` for satellite ``sat`` (SI), may be empty."""
        if name not in self.trend_fields or not 0 <= sat < self.n:
            return np.zeros(0, np.float32)
        i = self.trend_fields.index(name)
        series = np.roll(self.trend[:, i, sat], -self._trend_next)
        return series[self.trend_samples - self.trend_count:]

    # -- state of each node ------------------------------------------------------------

    @property
    def in_eclipse(self) -> np.ndarray:
        """(n,) bool: less than half the solar disk visible."""
        sunlit = self.values("sunlit_frac")
        return np.zeros(self.n, bool) if sunlit is None else sunlit < 0.5

    @property
    def in_alarm(self) -> np.ndarray:
        """(n,) bool: a field past an alarm limit, or an unacknowledged alarm event."""
        flags = self.worst >= ALARM if self.worst.shape == (self.n,) else np.zeros(self.n, bool)
        for _, sat in self.alarms:
            if 0 <= sat < self.n:
                flags[sat] = True
        return flags

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

    def _sort_values(self, key: str) -> np.ndarray | None:
        if key == "name":
            return np.array([self.name(i).lower() for i in range(self.n)])
        if key == "group":
            return np.array([self.group(i).lower() for i in range(self.n)])
        values = self.values(key)
        if values is None:
            return None
        values = values.astype(np.float64)
        if self.column(key) and self.column(key).kind == "station":
            values = np.where(values < 0, np.nan, values)
        return values

    def view_order(self) -> np.ndarray:
        """Satellite indices that pass the filters, in sort order (missing values last)."""
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
        values = values[index]
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
        if index < 0:
            return "—"
        return self.stations[index] if index < len(self.stations) else f"#{index}"

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
            worst = self.worst
            return texts, [int(worst[sat]) if sat < len(worst) else OK for sat in index]
        values = self.values(column.key)
        if values is None or (len(index) and not 0 <= min(index) <= max(index) < self.n):
            return [""] * len(index), [OK] * len(index)
        shown = values[sats].tolist()
        levels = self.levels.get(column.key)
        level_list = levels[sats].tolist() if levels is not None else [OK] * len(index)
        if column.kind == "sun":
            texts = ["sun" if v >= 0.999 else "ecl" if v <= 0.001 else "pen" for v in shown]
        elif column.kind == "station":
            texts = [self.station(int(v)) if math.isfinite(v) else "—" for v in shown]
        elif column.quantity is not None:
            texts = column.quantity.format_array(values[sats], scale=column.unit)
        else:
            texts = column.unit.numbers(shown)
        return texts, level_list

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

    # -- mirror -------------------------------------------------------------------------

    def _mirror_value(self, name: str, j: int) -> float:
        array = self.arrays.get(name)
        if array is None or array.ndim != 1 or not 0 <= j < len(array):
            return float("nan")
        return float(array[j])

    def mirror_live(self, binding: MirrorBinding) -> bool | None:
        """Whether the binding's telemetry is arriving; None before a state says."""
        array = self.arrays.get("mirror_live")
        if array is None or array.ndim != 1 or not 0 <= binding.index < len(array):
            return None
        return bool(array[binding.index])

    def mirror_age_s(self, binding: MirrorBinding) -> float:
        """Wall seconds since the binding's newest applied sample (NaN before the first)."""
        return self._mirror_value("mirror_age_s", binding.index)

    def mirror_rows(self, binding: MirrorBinding) -> list[MirrorRow]:
        """Compared states (measured, predicted, residual, threshold), then drivers."""
        j, rows = binding.index, []
        for q in binding.states:
            residual = self._mirror_value(f"mirror_residual_{q}", j)
            threshold = binding.thresholds.get(q, float("nan"))
            level = OK
            if math.isfinite(residual) and math.isfinite(threshold):
                level = ALARM if abs(residual) > threshold else \
                    WARN if abs(residual) > 0.5 * threshold else OK
            rows.append(MirrorRow(q, "state", self._mirror_value(f"mirror_measured_{q}", j),
                                  self._mirror_value(f"mirror_predicted_{q}", j), residual,
                                  threshold, level))
        for q in binding.drivers:
            rows.append(MirrorRow(q, "driver", self._mirror_value(f"mirror_measured_{q}", j),
                                  float("nan"), float("nan"), float("nan"), OK))
        return rows

    def sim_time(self) -> str:
        t = self.header.get("t_utc")
        return utc_text(float(t)) + " UTC" if t is not None else "—"

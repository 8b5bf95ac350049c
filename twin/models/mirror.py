"""The mirror: a twin node driven by a live hardware testbed, measured beside predicted.

A scenario's ``[mirror]`` table binds each testbed (by the name its bridge sends) to one
node and maps its parameters onto the node's quantities:

- drivers (``compute_power_w``, ``utilization_frac``, ...) REPLACE the model's inputs for
  that node. ``MirrorDrivers`` steps before compute, power and thermal and publishes the
  measured values (``DriverOutputs``); each model applies those of its own inputs (compute
  derives the node's clock, delivered FLOP/s and power from a measured utilization and
  takes a measured power; power takes measured bus and heater power), so the physics of
  that node runs on measured inputs and no model writes another's arrays;
- states (``temp_compute_k``, ``soc_frac``, ...) are only COMPARED: after every model has
  stepped, ``Mirror`` publishes measured, predicted and ``residual = measured - predicted``
  per state, and raises ``mirror_residual`` when ``|residual|`` passes its threshold.

Telemetry arrives between steps through ``Mirror.ingest`` (the server's ingest handler, the
``tm`` message of docs/protocol.md, checked by ``twin.protocol.telemetry``). Samples are
judged in wall-clock time (mirror runs at warp 1): older than ``max_sample_age_s`` is
``late``, not newer than the newest applied one of its packet is ``out_of_order`` or
``duplicate``, outside the physical bounds of its quantity (``QUANTITY_BOUNDS``, SI,
overridable per binding) ``out_of_bounds``; all are dropped and counted, never applied.
With no applied sample for ``lost_after_s`` the node falls back to the model (event
``mirror_lost``) until telemetry returns (``mirror_regained``).

Ingest is an edge facing any client: every message is counted exactly once (applied,
ignored or dropped by reason), nothing a client sends raises out of ``ingest`` or reaches
the log whole (``twin.core.ratelog``), and nothing kept between messages is keyed by a name a
client chose without a cap (docs/reliability.md, "Telemetry ingest").
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from twin.core.constants import KELVIN_PER_CELSIUS
from twin.core.interfaces import DriverOutputs
from twin.core.ratelog import RateLimitedLog, shorten
from twin.core.subsystem import CommandHandler, Field, StepContext, make_field, only_keys
from twin.protocol.codec import WireError, ok
from twin.protocol.commands import CommandSpec
from twin.protocol.telemetry import MAX_NAME_CHARS, decode_telemetry, quote
from twin.scenario import InvalidField, Scenario, parse_section

log = logging.getLogger("odc.twin.mirror")

# Unit suffix of a testbed parameter -> (SI suffix, scale, offset): si = raw * scale + offset.
UNIT_SUFFIXES = {
    "_k": ("_k", 1.0, 0.0), "_c": ("_k", 1.0, KELVIN_PER_CELSIUS),
    "_w": ("_w", 1.0, 0.0), "_mw": ("_w", 1e-3, 0.0), "_kw": ("_w", 1e3, 0.0),
    "_frac": ("_frac", 1.0, 0.0), "_pct": ("_frac", 0.01, 0.0),
    "_hz": ("_hz", 1.0, 0.0), "_s": ("_s", 1.0, 0.0),
}
# Quantities a testbed may drive (model inputs) and compare (model states), by name
# (twin.core.interfaces).
DRIVER_KEYS = ("compute_power_w", "utilization_frac", "heater_power_w", "bus_power_w")
STATE_KEYS = ("temp_compute_k", "temp_radiator_k", "temp_bus_k", "temp_battery_k", "soc_frac")
SAMPLE_REASONS = ("late", "future", "out_of_order", "duplicate", "not_finite", "out_of_bounds")
MESSAGE_REASONS = ("bad_message", "unknown_testbed", "too_many_packets")
MAX_FUTURE_S = 5.0

# Physical bounds of a measured quantity by its SI unit suffix, inclusive. A sample outside
# them is a broken sensor, a unit mistake or a hostile client, never a measurement: it is
# dropped as ``out_of_bounds``. A binding may set its own per quantity (``bounds``).
QUANTITY_BOUNDS: dict[str, tuple[float, float]] = {
    "_k": (3.0, 1000.0),     # above the 2.7 K sky; above aluminium's melting point (933 K)
    "_w": (0.0, 1.0e5),      # loads draw, never give; 100 kW: 16 eight-GPU nodes, ~ISS arrays
    "_frac": (0.0, 1.0),
    "_hz": (0.0, 1.0e12),
    "_s": (0.0, 1.0e9),
}
MAX_BOUND_ABS = 1.0e9
"""Largest magnitude a binding's own bound may have: keeps every product finite in f4 fields."""
# Caps on what a client can make the mirror keep or work on (docs/reliability.md); the caps
# on one message (MAX_SAMPLES, MAX_NAME_CHARS) are the decoder's, in twin.protocol.telemetry.
MAX_PACKETS_PER_BINDING = 64
"""Packet names whose ordering one binding remembers; a new one past this is dropped."""
MAX_BRIDGE_ENTRIES = 32
"""Entries kept of each client-keyed map in a bridge's counters (reasons, packets)."""
JUDGE_CHUNK = 65_536
"""Samples judged at a time: working memory stays ~10 MB whatever ``n`` is."""


def conversion(param: str, target: str) -> tuple[float, float]:
    """(scale, offset) turning parameter ``param`` into quantity ``target`` by unit suffix.

    Raises:
        ValueError: The suffixes are unknown or measure different things.
    """
    for suffix in sorted(UNIT_SUFFIXES, key=len, reverse=True):
        if param.endswith(suffix):
            si, scale, offset = UNIT_SUFFIXES[suffix]
            if target.endswith(si):
                return scale, offset
            raise ValueError(f"parameter {param!r} ({suffix[1:]}) cannot feed {target!r}")
    raise ValueError(f"parameter {param!r} has no known unit suffix "
                     f"({', '.join(s[1:] for s in UNIT_SUFFIXES)})")


@dataclass(frozen=True)
class MirrorBinding:
    """One ``[[mirror.testbed]]``: a testbed mirrored on one node.

    Attributes:
        name: The testbed name its bridge sends (``flatsat``, ``host``).
        node: Satellite name or index in the scenario.
        drivers: Parameter -> driven quantity (``{compute_power_w = "compute_power_w"}``).
        states: Parameter -> compared quantity (``{cold_plate_temp_c = "temp_compute_k"}``).
        thresholds: Compared quantity -> residual magnitude that raises an event (its unit).
        bounds: Mapped quantity -> ``[low, high]`` (SI, inclusive) replacing its physical
            bounds (``QUANTITY_BOUNDS``); samples outside are dropped as ``out_of_bounds``.
    """

    name: str
    node: str | int
    drivers: dict[str, str] = field(default_factory=dict)
    states: dict[str, str] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    bounds: dict[str, list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for table, allowed in (("drivers", DRIVER_KEYS), ("states", STATE_KEYS)):
            for param, target in getattr(self, table).items():
                if target not in allowed:
                    raise InvalidField(table, f"{param} -> {target!r}: {table} may map to "
                                       f"{', '.join(allowed)}")
                try:
                    conversion(param, target)
                except ValueError as exc:
                    raise InvalidField(table, str(exc)) from None
        for key, value in self.thresholds.items():
            if key not in self.states.values():
                raise InvalidField("thresholds", f"{key!r} is not one of the mapped states")
            if not isinstance(value, int | float) or not value > 0:
                raise InvalidField("thresholds", f"{key} = {value!r}: expected a number > 0")
        mapped = {*self.drivers.values(), *self.states.values()}
        for key, pair in self.bounds.items():
            if key not in mapped:
                raise InvalidField("bounds", f"{key!r} is not one of the mapped quantities")
            if not (isinstance(pair, list) and len(pair) == 2
                    and all(_is_number(x) and abs(x) <= MAX_BOUND_ABS for x in pair)
                    and pair[0] < pair[1]):
                raise InvalidField("bounds", f"{key} = {pair!r}: expected [low, high], two "
                                   f"numbers with low < high, each within ±{MAX_BOUND_ABS:g}")

    def bounds_of(self, quantity: str) -> tuple[float, float]:
        """Inclusive SI bounds of a mapped quantity: this binding's own, else physical."""
        if quantity in self.bounds:
            low, high = self.bounds[quantity]
            return float(low), float(high)
        return default_bounds(quantity)


def default_bounds(quantity: str) -> tuple[float, float]:
    """Physical bounds of ``quantity`` by its unit suffix (``QUANTITY_BOUNDS``)."""
    for suffix, pair in QUANTITY_BOUNDS.items():
        if quantity.endswith(suffix):
            return pair
    raise ValueError(f"{quantity!r} has no known unit suffix")


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class MirrorParams:
    """The ``[mirror]`` table."""

    lost_after_s: float = field(default=3.0, metadata={"gt": 0.0, "max": 3600.0, "unit": "s"})
    max_sample_age_s: float = field(default=30.0, metadata={"gt": 0.0, "max": 86400.0,
                                                            "unit": "s"})
    default_threshold_k: float = field(default=5.0, metadata={"gt": 0.0, "unit": "K"})
    default_threshold_frac: float = field(default=0.05, metadata={"gt": 0.0, "unit": "1"})
    testbed: tuple[MirrorBinding, ...] = ()


@dataclass
class _Live:
    """Run-time state of one binding."""

    sat: int
    convert: dict[str, tuple[str, float, float]]  # param -> (quantity, scale, offset)
    bounds: dict[str, tuple[float, float]]  # quantity -> inclusive SI bounds
    measured: dict[str, float] = field(default_factory=dict)  # quantity -> SI value
    # packet -> (time, sequence count) of the newest applied sample
    newest_t: dict[str, tuple[float, float]] = field(default_factory=dict)
    last_applied_wall: float = -math.inf
    newest_sample_utc: float = math.nan
    applied: int = 0
    live: bool = False
    ever_live: bool = False
    lost_count: int = 0
    over: dict[str, bool] = field(default_factory=dict)


COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("mirror_status", "the mirror's counters and bindings", "informational"),
)
"""The commands this model answers (meta.commands; docs/protocol.md)."""


FLEET_TOTALS: dict[str, tuple[str, str]] = {
    "mirror_live_n": ("count", "mirrors with live telemetry"),
    "mirror_samples_applied": ("count", "telemetry samples applied"),
    "mirror_samples_dropped": ("count", "telemetry samples dropped"),
}
"""The fleet totals this model publishes: name -> (unit, description) (meta.totals)."""


class Mirror:
    """Mirrors testbeds onto twin nodes (the states half; see ``MirrorDrivers``).

    Args:
        scenario: The scenario (``[mirror]`` table, satellite names).
        clock: The sim clock, to warn when not at warp 1 (optional).
        wall_clock: Wall time source, POSIX s (injectable for tests).
    """

    name = "mirror"
    reads: tuple[str, ...] = ("power", "thermal")  # the states it compares (STATE_KEYS)
    publishes = None

    def __init__(self, scenario: Scenario, clock: Any = None,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.params = parse_section(MirrorParams, scenario, "mirror")
        self.clock = clock
        self.wall_clock = wall_clock
        self.n_sats = len(scenario.satellites)
        names = {s.name: s.sat_id for s in scenario.satellites}
        self.bindings = list(self.params.testbed)
        self.live: list[_Live] = []
        for i, b in enumerate(self.bindings):
            sat = self._resolve_node(b.node, names, scenario.source, i)
            convert = {p: (q, *conversion(p, q)) for p, q in {**b.drivers, **b.states}.items()}
            self.live.append(_Live(sat, convert, {q: b.bounds_of(q) for q, *_ in
                                                  convert.values()}))
        self.by_testbed: dict[str, list[int]] = {}
        for i, b in enumerate(self.bindings):
            self.by_testbed.setdefault(b.name, []).append(i)
        self.driver_keys = sorted({q for b in self.bindings for q in b.drivers.values()})
        self.state_keys = sorted({q for b in self.bindings for q in b.states.values()})
        # messages = messages_applied + messages_ignored + sum(messages_dropped), and
        # samples_received = samples_applied + samples_ignored + sum(samples_dropped).
        self.counters: dict[str, Any] = {
            "messages": 0, "messages_applied": 0, "messages_ignored": 0,
            "samples_received": 0, "samples_applied": 0, "samples_ignored": 0,
            "messages_dropped": dict.fromkeys(MESSAGE_REASONS, 0),
            "samples_dropped": dict.fromkeys(SAMPLE_REASONS, 0),
        }
        # Keyed by testbed name, but only bound testbeds are kept (at most one per binding).
        self.bridge_counters: dict[str, Any] = {}
        self.rejections = RateLimitedLog(log)
        self._warned_warp = False
        self._fields = self._make_fields()
        self._f = {f.spec.name: f.array for f in self._fields}

    @staticmethod
    def _resolve_node(node: str | int, names: dict[str, int], source: str, i: int) -> int:
        from twin.scenario import ScenarioError

        if isinstance(node, int) and 0 <= node < len(names):
            return node
        if isinstance(node, str) and node in names:
            return names[node]
        close = [n for n in names if str(node).lower() in n.lower()][:5] or list(names)[:3]
        raise ScenarioError(source, f"mirror.testbed[{i}].node", f"{node!r} is not a satellite"
                            f" name or index (0..{len(names) - 1}); e.g. {', '.join(close)}")

    def _make_fields(self) -> list[Field]:
        m = len(self.bindings)
        if m == 0:
            return []
        out = [
            make_field("mirror_sat", "<i4", (m,), "index", "satellite index of each mirror",
                       per_sat=False),
            make_field("mirror_live", "|b1", (m,), "bool", "telemetry is arriving", per_sat=False),
            make_field("mirror_age_s", "<f4", (m,), "s", "wall seconds since the newest "
                       "applied sample", per_sat=False, fill=np.nan),
        ]
        out[0].array[:] = [lv.sat for lv in self.live]
        for q in self.driver_keys:
            out.append(make_field(f"mirror_measured_{q}", "<f4", (m,), _unit(q),
                                  f"measured {q} driving the node (NaN: not mapped or lost)",
                                  per_sat=False, fill=np.nan))
        for q in self.state_keys:
            for kind, text in (("measured", "measured"), ("predicted", "model's"),
                               ("residual", "measured minus predicted")):
                out.append(make_field(f"mirror_{kind}_{q}", "<f4", (m,), _unit(q),
                                      f"{text} {q} of the mirrored node", per_sat=False,
                                      fill=np.nan))
        return out

    # -- subsystem contract -----------------------------------------------------------

    def fields(self) -> list[Field]:
        return self._fields

    def apply_drivers(self, ctx: StepContext, out: DriverOutputs) -> None:
        """Publish measured drivers of live mirrors in ``out`` (before compute and power).

        Each model applies the measured values of its own inputs (compute its utilization
        and power, power its bus and heater power): the mirror writes no model's arrays.
        """
        now = self.wall_clock()
        for lv in self.live:
            self._update_liveness(lv, now, ctx)
        pairs = [(lv, b) for lv, b in zip(self.live, self.bindings, strict=True) if lv.live]
        out.mirror_sat = np.array([lv.sat for lv, _ in pairs], dtype=np.int64)
        out.measured_drivers = {
            q: np.array([lv.measured.get(q, np.nan) if q in b.drivers.values() else np.nan
                         for lv, b in pairs])
            for q in self.driver_keys} if pairs else {}

    def step(self, ctx: StepContext) -> None:
        """Publish measured, predicted and residual states; raise threshold events."""
        self.rejections.tick()
        if not self.bindings:
            return
        if self.clock is not None and self.clock.warp != 1.0 and not self._warned_warp:
            self._warned_warp = True
            ctx.events.raise_event("mirror_warp", "warning", f"mirror compares against wall "
                                   f"time but the clock runs at warp {self.clock.warp:g}; "
                                   "set warp 1 for meaningful residuals")
        now = self.wall_clock()
        f = self._f
        f["mirror_live"][:] = [lv.live for lv in self.live]
        f["mirror_age_s"][:] = [now - lv.last_applied_wall if lv.ever_live else np.nan
                                for lv in self.live]
        for j, (lv, b) in enumerate(zip(self.live, self.bindings, strict=True)):
            for q in self.driver_keys:
                live_q = lv.live and q in b.drivers.values() and q in lv.measured
                f[f"mirror_measured_{q}"][j] = lv.measured[q] if live_q else np.nan
            for q in self.state_keys:
                self._compare(j, lv, b, q, ctx)

    def _compare(self, j: int, lv: _Live, b: MirrorBinding, q: str, ctx: StepContext) -> None:
        f = self._f
        model = ctx.quantity(q)
        predicted = float(model[lv.sat]) if isinstance(model, np.ndarray) else np.nan
        f[f"mirror_predicted_{q}"][j] = predicted
        measured = lv.measured.get(q, np.nan) if lv.live and q in b.states.values() else np.nan
        f[f"mirror_measured_{q}"][j] = measured
        residual = measured - predicted
        f[f"mirror_residual_{q}"][j] = residual
        threshold = b.thresholds.get(q, self.params.default_threshold_k if q.endswith("_k")
                                     else self.params.default_threshold_frac)
        over = bool(abs(residual) > threshold)  # NaN compares False: lost is never "over"
        if over and not lv.over.get(q, False):
            ctx.events.raise_event(
                "mirror_residual", "warning", f"{b.name}: measured {q} {measured:.3g} differs "
                f"from the model's {predicted:.3g} by {residual:+.3g} (threshold {threshold:g})",
                sat=lv.sat, field=q, residual=residual, threshold=threshold, testbed=b.name)
        elif not over and lv.over.get(q, False) and lv.live:
            ctx.events.raise_event("mirror_residual_cleared", "info", f"{b.name}: {q} residual"
                                   f" back within {threshold:g}", sat=lv.sat, field=q,
                                   testbed=b.name)
        lv.over[q] = over

    def _update_liveness(self, lv: _Live, now: float, ctx: StepContext) -> None:
        live = now - lv.last_applied_wall <= self.params.lost_after_s
        name = self.bindings[self.live.index(lv)].name
        if live and not lv.live:
            kind = "mirror_regained" if lv.ever_live else "mirror_acquired"
            ctx.events.raise_event(kind, "info", f"testbed {name!r} is live on node {lv.sat}; "
                                   "measured drivers replace the model's", sat=lv.sat,
                                   testbed=name)
            lv.ever_live = True
        elif lv.live and not live:
            lv.lost_count += 1
            ctx.events.raise_event("mirror_lost", "warning", f"no telemetry from {name!r} for "
                                   f"{self.params.lost_after_s:g} s; node {lv.sat} falls back "
                                   "to the model", sat=lv.sat, testbed=name)
        lv.live = live

    def fleet(self) -> dict[str, float]:
        if not self.bindings:
            return {}
        dropped = sum(self.counters["samples_dropped"].values())
        return {"mirror_live_n": float(sum(lv.live for lv in self.live)),
                "mirror_samples_applied": float(self.counters["samples_applied"]),
                "mirror_samples_dropped": float(dropped)}

    def meta(self) -> dict[str, Any]:
        return {
            "bindings": [
                {"testbed": b.name, "sat": lv.sat, "drivers": dict(b.drivers),
                 "states": dict(b.states), "thresholds": {q: b.thresholds.get(
                     q, self.params.default_threshold_k if q.endswith("_k")
                     else self.params.default_threshold_frac) for q in b.states.values()}}
                for b, lv in zip(self.bindings, self.live, strict=True)],
            "mirrored_sats": [lv.sat for lv in self.live],
            "lost_after_s": self.params.lost_after_s,
            "max_sample_age_s": self.params.max_sample_age_s,
            "time_base": "wall clock (warp 1)",
            "counters": self.status()["counters"],
        }

    def commands(self) -> dict[str, CommandHandler]:
        return {"mirror_status": self._cmd_status}

    def _cmd_status(self, request: dict[str, Any]) -> dict[str, Any]:
        only_keys(request, set())
        return ok(**self.status())

    def status(self) -> dict[str, Any]:
        """Counters (twin side and the bridges' own) and each binding's state."""
        now = self.wall_clock()
        c = self.counters
        return {
            "counters": {**c, "messages_dropped": dict(c["messages_dropped"]),
                         "samples_dropped": dict(c["samples_dropped"])},
            "bridges": dict(self.bridge_counters),
            "bindings": [
                {"testbed": b.name, "sat": lv.sat, "live": lv.live, "applied": lv.applied,
                 "lost_count": lv.lost_count, "age_s": now - lv.last_applied_wall
                 if lv.ever_live else None, "newest_sample_utc": lv.newest_sample_utc,
                 "measured": dict(lv.measured)}
                for b, lv in zip(self.bindings, self.live, strict=True)],
        }

    # -- ingest -----------------------------------------------------------------------

    def ingest(self, frames: list[Any]) -> None:
        """Judge and apply one ``tm`` message (the server's ingest handler); never raises.

        The message is counted exactly once: ``messages_applied`` (a sample of it was
        applied), ``messages_ignored`` (none was: no mapped parameter, or every sample
        dropped, see ``samples_dropped``) or ``messages_dropped[reason]``.

        Memory: the columns are read in place from the frames; judging works through
        ``JUDGE_CHUNK`` samples at a time, so a message costs a bounded ~10 MB beyond its own
        bytes (which the server's socket caps), and nothing kept grows with it.
        """
        c = self.counters
        c["messages"] += 1
        try:
            header, columns = decode_telemetry(frames)
        except Exception as exc:  # whatever fails here, the sender's bytes did
            self._drop_message("bad_message", "telemetry message dropped (bad_message): %s",
                               _why(exc))
            return
        testbed, n = header["testbed"], header["n"]
        packet = header.get("packet", "")
        targets = self.by_testbed.get(testbed)
        if not targets:
            self._drop_message("unknown_testbed", "telemetry from testbed %s dropped "
                               "(unknown_testbed): no [[mirror.testbed]] has that name",
                               quote(testbed), samples=n)
            return
        summary = bridge_summary(header.get("bridge"))
        if summary is not None:
            self.bridge_counters[testbed] = summary
        if any(packet not in self.live[i].newest_t
               and len(self.live[i].newest_t) >= MAX_PACKETS_PER_BINDING for i in targets):
            self._drop_message("too_many_packets", "telemetry from testbed %s dropped "
                               "(too_many_packets): packet %s would be past the %d packet "
                               "names remembered", quote(testbed), quote(packet),
                               MAX_PACKETS_PER_BINDING, samples=n)
            return
        now = self.wall_clock()
        try:
            judged = [self._judge(i, packet, columns, n, now) for i in targets]
        except Exception as exc:  # a bug of ours on odd input drops only it
            self._drop_message("bad_message", "telemetry message from testbed %s dropped "
                               "(bad_message) while judging: %s", quote(testbed), _why(exc))
            return
        for i, verdict in zip(targets, judged, strict=True):
            self._commit(i, packet, verdict, now)
        # One binding's verdict counts the samples (the first that maps any parameter).
        verdict = next((v for v in judged if not v.ignored), judged[0])
        c["samples_received"] += n
        if verdict.ignored:
            c["samples_ignored"] += n
        for reason, count in verdict.drops.items():
            c["samples_dropped"][reason] += count
        c["samples_applied"] += verdict.applied
        c["messages_applied" if verdict.applied else "messages_ignored"] += 1
        if verdict.out_of_bounds is not None:
            q, value, (low, high) = verdict.out_of_bounds
            unit = _unit(q)
            self.rejections.log("out_of_bounds", "testbed %s: %d sample(s) dropped "
                                "(out_of_bounds), e.g. %s = %.6g %s outside %g..%g %s",
                                quote(testbed), verdict.drops["out_of_bounds"], q, value,
                                unit, low, high, unit)

    def _drop_message(self, reason: str, message: str, *args: object, samples: int = 0) -> None:
        c = self.counters
        c["messages_dropped"][reason] += 1
        c["samples_received"] += samples
        c["samples_ignored"] += samples
        self.rejections.log(reason, message, *args)

    def _judge(self, i: int, packet: str, columns: dict[str, np.ndarray], n: int,
               now: float) -> _Verdict:
        """Judge one message's samples for binding ``i``; changes nothing (see ``_commit``)."""
        lv = self.live[i]
        mapped = [p for p in columns if p in lv.convert and p != "seq_count"]
        if not mapped:
            return _Verdict(ignored=True)
        verdict = _Verdict(drops=dict.fromkeys(SAMPLE_REASONS, 0))
        newest = lv.newest_t.get(packet, (-math.inf, -math.inf))
        seq_column = columns.get("seq_count")
        for start in range(0, n, JUDGE_CHUNK):
            chunk = slice(start, min(n, start + JUDGE_CHUNK))
            t = columns["t_utc"][chunk].astype(np.float64)
            seq = (np.zeros(len(t)) if seq_column is None
                   else seq_column[chunk].astype(np.float64))
            finite = np.isfinite(t) & np.isfinite(seq)
            inside = np.ones(len(t), dtype=bool)
            si: dict[str, np.ndarray] = {}
            with np.errstate(all="ignore"):  # raw * scale + offset may overflow: inf is outside
                for p in mapped:
                    q, scale, offset = lv.convert[p]
                    raw = columns[p][chunk].astype(np.float64)
                    finite &= np.isfinite(raw)
                    si[p] = value = raw * scale + offset
                    low, high = lv.bounds[q]
                    inside &= (value >= low) & (value <= high)
            outside = finite & ~inside
            good = finite & inside
            late = good & (t < now - self.params.max_sample_age_s)
            future = good & ~late & (t > now + MAX_FUTURE_S)
            usable = good & ~late & ~future
            rank, newest_rank = _order_ranks(newest, np.where(usable, t, -math.inf),
                                             np.where(usable, seq, -math.inf))
            before = np.maximum.accumulate(np.concatenate(([newest_rank], rank[:-1])))
            accept = usable & (rank > before)
            drops = verdict.drops
            drops["not_finite"] += int((~finite).sum())
            drops["out_of_bounds"] += int(outside.sum())
            drops["late"] += int(late.sum())
            drops["future"] += int(future.sum())
            drops["duplicate"] += int((usable & (rank == before)).sum())
            drops["out_of_order"] += int((usable & (rank < before)).sum())
            if verdict.out_of_bounds is None and outside.any():
                j = int(np.flatnonzero(outside)[0])
                p = next(p for p in mapped if not lv.bounds[lv.convert[p][0]][0] <= si[p][j]
                         <= lv.bounds[lv.convert[p][0]][1])
                q = lv.convert[p][0]
                verdict.out_of_bounds = (q, float(si[p][j]), lv.bounds[q])
            n_ok = int(accept.sum())
            if n_ok:
                k = int(np.flatnonzero(accept)[-1])
                newest = (float(t[k]), float(seq[k]) if seq_column is not None else 0.0)
                verdict.applied += n_ok
                verdict.newest = newest
                verdict.measured = {lv.convert[p][0]: float(si[p][k]) for p in mapped}
        return verdict

    def _commit(self, i: int, packet: str, verdict: _Verdict, now: float) -> None:
        """Apply binding ``i``'s newest accepted sample, if any (nothing here can fail)."""
        if not verdict.applied or verdict.newest is None:
            return
        lv = self.live[i]
        lv.newest_t[packet] = verdict.newest
        lv.measured.update(verdict.measured)
        lv.applied += verdict.applied
        lv.last_applied_wall = now
        lv.newest_sample_utc = verdict.newest[0]


@dataclass
class _Verdict:
    """What judging one message found for one binding (applied later by ``_commit``)."""

    ignored: bool = False  # no parameter of the message is mapped by the binding
    drops: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SAMPLE_REASONS, 0))
    applied: int = 0
    newest: tuple[float, float] | None = None  # (time, sequence count) of the newest accepted
    measured: dict[str, float] = field(default_factory=dict)  # its SI values by quantity
    out_of_bounds: tuple[str, float, tuple[float, float]] | None = None  # first, for the log


class MirrorDrivers:
    """The drivers half of the mirror, stepped before the models whose inputs it drives."""

    name = "mirror_drivers"
    reads: tuple[str, ...] = ()
    publishes = "drivers"

    def __init__(self, mirror: Mirror) -> None:
        self.mirror = mirror
        self.outputs = DriverOutputs()

    def fields(self) -> list[Field]:
        return []

    def step(self, ctx: StepContext) -> None:
        if self.mirror.bindings:
            self.mirror.apply_drivers(ctx, self.outputs)

    def fleet(self) -> dict[str, float]:
        return {}

    def meta(self) -> dict[str, Any]:
        return {"drives": self.mirror.driver_keys}

    def commands(self) -> dict[str, CommandHandler]:
        return {}


def _order_ranks(newest: tuple[float, float], t: np.ndarray, seq: np.ndarray
                 ) -> tuple[np.ndarray, int]:
    """Dense ranks of the samples' (time, sequence count) keys, and the newest one's rank.

    Samples are ordered by time, and by the bridge's unwrapped packet count where times tie
    (a 1 ms timestamp holds many packets at high rates). Equal keys get equal ranks.
    """
    keys_t = np.concatenate(([newest[0]], t))
    keys_s = np.concatenate(([newest[1]], seq))
    order = np.lexsort((keys_s, keys_t))
    st, ss = keys_t[order], keys_s[order]
    new_key = np.concatenate(([0], (st[1:] != st[:-1]) | (ss[1:] != ss[:-1])))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.cumsum(new_key)
    return rank[1:], int(rank[0])


def _unit(quantity: str) -> str:
    for suffix, unit in (("_k", "K"), ("_w", "W"), ("_frac", "1"), ("_hz", "Hz"), ("_s", "s")):
        if quantity.endswith(suffix):
            return unit
    return ""


def _why(exc: BaseException) -> str:
    """An exception as a short log text (ours name the problem; others add their type)."""
    text = str(exc) if isinstance(exc, WireError) else f"{type(exc).__name__}: {exc}"
    return shorten(text, 200)


# -- the bridge's own counters, kept for mirror_status --------------------------------------

BRIDGE_PUSH_KEYS = ("sent_messages", "sent_samples", "dropped_messages", "dropped_samples")
BRIDGE_DECODER_KEYS = ("received", "accepted", "rejected_total", "bytes_received",
                       "bytes_skipped")
BRIDGE_SEQ_KEYS = ("gaps", "skipped", "restarts")
BRIDGE_SOURCE_KEYS = ("open", "accepted", "refused_full", "accept_errors", "bytes_received")
BRIDGE_CLOSED_KEYS = ("peer", "idle", "error")


def bridge_summary(raw: Any) -> dict[str, Any] | None:
    """The known counters of a header's ``bridge`` map, the rest left out; None if not a map.

    Keeps ``push{sent_messages, sent_samples, dropped_messages, dropped_samples}`` and
    ``decoder{received, accepted, rejected_total, bytes_received, bytes_skipped,
    rejected{reason}, seq{packet: {gaps, skipped, restarts}}}`` and the TCP source's
    ``source{open, accepted, refused_full, accept_errors, bytes_received, closed{peer, idle,
    error}}`` (docs/protocol.md), finite
    numbers only, at most ``MAX_BRIDGE_ENTRIES`` reasons and packets with names of at most
    ``MAX_NAME_CHARS``: what a client sends here can never grow what the twin keeps.
    """
    if not isinstance(raw, dict):
        return None
    out: dict[str, Any] = {}
    push = raw.get("push")
    if isinstance(push, dict):
        out["push"] = _numbers(push, BRIDGE_PUSH_KEYS)
    decoder = raw.get("decoder")
    if isinstance(decoder, dict):
        kept = _numbers(decoder, BRIDGE_DECODER_KEYS)
        rejected = _named(decoder.get("rejected"), lambda v: v if _is_number(v) else None)
        if rejected is not None:
            kept["rejected"] = rejected
        seq = _named(decoder.get("seq"), lambda v: _numbers(v, BRIDGE_SEQ_KEYS)
                     if isinstance(v, dict) else None)
        if seq is not None:
            kept["seq"] = seq
        out["decoder"] = kept
    source = raw.get("source")
    if isinstance(source, dict):
        kept = _numbers(source, BRIDGE_SOURCE_KEYS)
        if isinstance(source.get("closed"), dict):
            kept["closed"] = _numbers(source["closed"], BRIDGE_CLOSED_KEYS)
        out["source"] = kept
    return out


def _numbers(table: dict[Any, Any], keys: tuple[str, ...]) -> dict[str, float | int]:
    return {k: table[k] for k in keys if _is_number(table.get(k))}


def _named(table: Any, value: Callable[[Any], Any]) -> dict[str, Any] | None:
    if not isinstance(table, dict):
        return None
    out = {}
    for key, item in itertools.islice(table.items(), MAX_BRIDGE_ENTRIES):
        kept = value(item)
        if isinstance(key, str) and len(key) <= MAX_NAME_CHARS and kept is not None:
            out[key] = kept
    return out

"""The mirror: a twin node driven by a live hardware testbed, measured beside predicted.

A scenario's ``[mirror]`` table binds each testbed (by the name its bridge sends) to one
node and maps its parameters onto the node's quantities:

- drivers (``compute_power_w``, ``utilization_frac``, ...) REPLACE the model's inputs for
  that node. ``MirrorDrivers`` steps right after compute and before power and thermal, so
  the physics of that node runs on measured inputs. It hands them first to the driver
  sinks models registered in ``ctx.shared[DRIVER_SINKS]`` (compute derives the node's
  clock, delivered FLOP/s and power from a measured utilization), then writes the
  quantities no sink took into their ``ctx.shared`` arrays in place;
- states (``temp_compute_k``, ``soc_frac``, ...) are only COMPARED: after every model has
  stepped, ``Mirror`` publishes measured, predicted and ``residual = measured - predicted``
  per state, and raises ``mirror_residual`` when ``|residual|`` passes its threshold.

Telemetry arrives between steps through ``Mirror.ingest`` (the server's ingest handler, the
``tm`` message of docs/protocol.md). Samples are judged in wall-clock time (mirror runs at
warp 1): older than ``max_sample_age_s`` is ``late``, not newer than the newest applied one
of its packet is ``out_of_order`` or ``duplicate``; all are dropped and counted. With no
applied sample for ``lost_after_s`` the node falls back to the model (event ``mirror_lost``)
until telemetry returns (``mirror_regained``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from twin.scenario import InvalidField, Scenario, parse_section
from twin.subsystem import CommandHandler, Field, StepContext, make_field, only_keys
from twin.wire import PROTOCOL_VERSION, TOPIC_TELEMETRY, WIRE_DTYPES, WireError, ok, unpack

log = logging.getLogger("odc.twin.mirror")

KELVIN_PER_CELSIUS = 273.15
# Unit suffix of a testbed parameter -> (SI suffix, scale, offset): si = raw * scale + offset.
UNIT_SUFFIXES = {
    "_k": ("_k", 1.0, 0.0), "_c": ("_k", 1.0, KELVIN_PER_CELSIUS),
    "_w": ("_w", 1.0, 0.0), "_mw": ("_w", 1e-3, 0.0), "_kw": ("_w", 1e3, 0.0),
    "_frac": ("_frac", 1.0, 0.0), "_pct": ("_frac", 0.01, 0.0),
    "_hz": ("_hz", 1.0, 0.0), "_s": ("_s", 1.0, 0.0),
}
# Quantities a testbed may drive (model inputs) and compare (model states), by shared key.
DRIVER_KEYS = ("compute_power_w", "utilization_frac", "heater_power_w", "bus_power_w")
# Drivers the mirror provides in ctx.shared even when no model put them there.
PROVIDED_IF_ABSENT = ("compute_power_w",)
DRIVER_SINKS = "driver_sinks"
"""``ctx.shared`` key: model name -> ``sink(sats, measured) -> set of quantities taken``,
``sats`` the (m,) nodes of live mirrors, ``measured`` driver quantity -> (m,) SI values
(NaN where that mirror does not measure it). A model registers its sink in its own step
each step; the mirror calls it the same step, after that model and before power."""
STATE_KEYS = ("temp_compute_k", "temp_radiator_k", "temp_bus_k", "temp_battery_k", "soc_frac")
SAMPLE_REASONS = ("late", "future", "out_of_order", "duplicate", "not_finite")
MESSAGE_REASONS = ("bad_message", "unknown_testbed")
MAX_FUTURE_S = 5.0


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
    """

    name: str
    node: str | int
    drivers: dict[str, str] = field(default_factory=dict)
    states: dict[str, str] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)

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


class Mirror:
    """Mirrors testbeds onto twin nodes (the states half; see ``MirrorDrivers``).

    Args:
        scenario: The scenario (``[mirror]`` table, satellite names).
        clock: The sim clock, to warn when not at warp 1 (optional).
        wall_clock: Wall time source, POSIX s (injectable for tests).
    """

    name = "mirror"

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
            self.live.append(_Live(sat, convert))
        self.by_testbed: dict[str, list[int]] = {}
        for i, b in enumerate(self.bindings):
            self.by_testbed.setdefault(b.name, []).append(i)
        self.driver_keys = sorted({q for b in self.bindings for q in b.drivers.values()})
        self.state_keys = sorted({q for b in self.bindings for q in b.states.values()})
        self.counters: dict[str, Any] = {
            "messages": 0, "samples_received": 0, "samples_applied": 0, "samples_ignored": 0,
            "messages_dropped": dict.fromkeys(MESSAGE_REASONS, 0),
            "samples_dropped": dict.fromkeys(SAMPLE_REASONS, 0),
        }
        self.bridge_counters: dict[str, Any] = {}
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

    def apply_drivers(self, ctx: StepContext) -> None:
        """Write measured drivers of live mirrors into ``ctx.shared`` (before power/thermal)."""
        now = self.wall_clock()
        for lv in self.live:
            self._update_liveness(lv, now, ctx)
        pairs = [(lv, b) for lv, b in zip(self.live, self.bindings, strict=True) if lv.live]
        taken: set[str] = set()
        sinks = ctx.shared.get(DRIVER_SINKS)
        if pairs and sinks:
            sats = np.array([lv.sat for lv, _ in pairs], dtype=np.int64)
            measured = {q: np.array([lv.measured.get(q, np.nan) if q in b.drivers.values()
                                     else np.nan for lv, b in pairs])
                        for q in self.driver_keys}
            for sink in sinks.values():
                taken |= sink(sats, measured)
        for lv, b in pairs:
            for q in b.drivers.values():
                if q in taken or q not in lv.measured:
                    continue
                array = ctx.shared.get(q)
                if not isinstance(array, np.ndarray) or array.shape != (self.n_sats,):
                    if q not in PROVIDED_IF_ABSENT:
                        continue  # published as measured only; no model reads it
                    array = np.zeros(self.n_sats)
                    ctx.shared[q] = array
                # In place: compute's published field shows the measured value too.
                array[lv.sat] = lv.measured[q]
        ctx.shared["mirror_sat"] = np.array([lv.sat for lv in self.live if lv.live], dtype=int)

    def step(self, ctx: StepContext) -> None:
        """Publish measured, predicted and residual states; raise threshold events."""
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
        shared = ctx.shared.get(q)
        predicted = float(shared[lv.sat]) if isinstance(shared, np.ndarray) else np.nan
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
        """Judge and apply one ``tm`` message (the server's ingest handler); never raises."""
        c = self.counters
        c["messages"] += 1
        try:
            header, columns = decode_telemetry(frames)
        except WireError as exc:
            c["messages_dropped"]["bad_message"] += 1
            log.warning("telemetry message dropped: %s", exc)
            return
        testbed = header["testbed"]
        n = header["n"]
        c["samples_received"] += n
        if isinstance(header.get("bridge"), dict):
            self.bridge_counters[testbed] = header["bridge"]
        targets = self.by_testbed.get(testbed)
        if not targets:
            c["messages_dropped"]["unknown_testbed"] += 1
            c["samples_ignored"] += n
            return
        t = columns.pop("t_utc")
        for i in targets:
            self._apply(i, str(header.get("packet", "")), t, columns, n, first=i == targets[0])

    def _apply(self, i: int, packet: str, t: np.ndarray, columns: dict[str, np.ndarray],
               n: int, first: bool) -> None:
        lv = self.live[i]
        mapped = [p for p in columns if p in lv.convert and p != "seq_count"]
        c = self.counters
        if not mapped:
            if first:
                c["samples_ignored"] += n
            return
        now = self.wall_clock()
        drop = c["samples_dropped"] if first else dict.fromkeys(SAMPLE_REASONS, 0)
        finite = np.isfinite(t)
        for p in mapped:
            finite &= np.isfinite(columns[p])
        with np.errstate(invalid="ignore"):
            late = finite & (t < now - self.params.max_sample_age_s)
            future = finite & ~late & (t > now + MAX_FUTURE_S)
        usable = finite & ~late & ~future
        seq = columns.get("seq_count")
        rank, newest_rank = _order_ranks(lv.newest_t.get(packet, (-math.inf, -math.inf)),
                                         np.where(usable, t, -math.inf),
                                         np.zeros(n) if seq is None else seq)
        before = np.maximum.accumulate(np.concatenate(([newest_rank], rank[:-1])))
        accept = usable & (rank > before)
        drop["not_finite"] += int((~finite).sum())
        drop["late"] += int(late.sum())
        drop["future"] += int(future.sum())
        drop["duplicate"] += int((usable & (rank == before)).sum())
        drop["out_of_order"] += int((usable & (rank < before)).sum())
        n_ok = int(accept.sum())
        if first:
            c["samples_applied"] += n_ok
        if n_ok == 0:
            return
        k = int(np.flatnonzero(accept)[-1])
        lv.newest_t[packet] = (float(t[k]), 0.0 if seq is None else float(seq[k]))
        for p in mapped:
            q, scale, offset = lv.convert[p]
            lv.measured[q] = float(columns[p][k]) * scale + offset
        lv.applied += n_ok
        lv.last_applied_wall = now
        lv.newest_sample_utc = float(t[k])


class MirrorDrivers:
    """The drivers half of the mirror, stepped after compute and before power and thermal."""

    name = "mirror_drivers"

    def __init__(self, mirror: Mirror) -> None:
        self.mirror = mirror

    def fields(self) -> list[Field]:
        return []

    def step(self, ctx: StepContext) -> None:
        if self.mirror.bindings:
            self.mirror.apply_drivers(ctx)

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


def decode_telemetry(frames: list[Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Check a ``tm`` message against docs/protocol.md and return (header, columns).

    Raises:
        WireError: Naming what is wrong.
    """
    frames = [f.buffer if hasattr(f, "buffer") else f for f in frames]
    if len(frames) < 3:
        raise WireError(f"expected [b'tm', header, t_utc, ...], got {len(frames)} frame(s)")
    if bytes(frames[0]) != TOPIC_TELEMETRY:
        raise WireError(f"topic {bytes(frames[0])[:16]!r} is not 'tm'")
    header = unpack(frames[1])
    if not isinstance(header, dict):
        raise WireError("header is not a msgpack map")
    if header.get("v") != PROTOCOL_VERSION:
        raise WireError(f"protocol version {header.get('v')!r}, expected {PROTOCOL_VERSION}")
    testbed, n, specs = header.get("testbed"), header.get("n"), header.get("fields")
    if not isinstance(testbed, str) or not testbed:
        raise WireError("header needs a non-empty string 'testbed'")
    if not isinstance(n, int) or isinstance(n, bool) or not 0 < n <= 10_000_000:
        raise WireError(f"header 'n' must be a positive sample count, got {n!r}")
    if not isinstance(specs, list) or len(specs) != len(frames) - 2:
        raise WireError(f"header lists {len(specs) if isinstance(specs, list) else 'no'} "
                        f"fields but {len(frames) - 2} buffers follow")
    columns: dict[str, np.ndarray] = {}
    for spec, buffer in zip(specs, frames[2:], strict=True):
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise WireError(f"field entry {spec!r} lacks a name")
        name, dtype = spec["name"], spec.get("dtype")
        if dtype not in WIRE_DTYPES or spec.get("shape") != [n]:
            raise WireError(f"field {name}: dtype {dtype!r} shape {spec.get('shape')!r}, "
                            f"expected a wire dtype and [{n}]")
        if len(buffer) != n * np.dtype(dtype).itemsize:
            raise WireError(f"field {name}: {len(buffer)} bytes, {dtype}[{n}] needs "
                            f"{n * np.dtype(dtype).itemsize}")
        columns[name] = np.frombuffer(buffer, dtype=dtype).astype(np.float64)
    if "t_utc" not in columns:
        raise WireError("no 't_utc' column")
    return header, columns

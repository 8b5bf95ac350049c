"""The mirror's states half: measured beside predicted, and the residual events.

``Mirror`` owns the bindings and their run-time state. Telemetry reaches it between steps
through ``Mirror.ingest`` (``twin.models.mirror.ingest`` judges and applies it); its drivers
step (``twin.models.mirror.drivers``) runs before the models it drives; and its own step,
after every model, publishes measured, predicted and ``residual = measured - predicted``
per compared state and raises ``mirror_residual`` when ``|residual|`` passes its threshold.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from twin.core.subsystem import CommandHandler, Field, StepContext, make_field, only_keys
from twin.models.mirror.bindings import (
    BindingState,
    MirrorBinding,
    MirrorParams,
    conversion,
    unit_of,
)
from twin.models.mirror.ingest import TelemetryIngest
from twin.protocol.codec import ok
from twin.protocol.commands import CommandSpec
from twin.protocol.telemetry import quote
from twin.scenario import Scenario, ScenarioError, parse_section

COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("mirror_status", "the mirror's counters and bindings", "informational",
                role="viewer"),
)
"""The commands this model answers (meta.commands; docs/protocol.md)."""


FLEET_TOTALS: dict[str, tuple[str, str]] = {
    "mirror_live_n": ("count", "mirrors with live telemetry"),
    "mirror_samples_applied": ("count", "telemetry samples applied"),
    "mirror_samples_dropped": ("count", "telemetry samples dropped"),
}
"""The fleet totals this model publishes: name -> (unit, description) (meta.totals)."""


UNKNOWN_EVENT_INTERVAL_S = 10.0
"""Wall seconds between two ``mirror_unknown_testbed`` events (each sums what it dropped)."""


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
        self.live: list[BindingState] = []
        mirrored: dict[int, str] = {}  # node -> the testbed that mirrors it
        for i, b in enumerate(self.bindings):
            sat = self._resolve_node(b.node, names, scenario.source, i)
            if sat in mirrored:  # two testbeds would drive one node's inputs at once
                raise ScenarioError(scenario.source, f"mirror.testbed[{i}].node", f"node "
                                    f"{b.node!r} already mirrors testbed {mirrored[sat]!r}: "
                                    "each testbed needs its own node")
            mirrored[sat] = b.name
            convert = {p: (q, *conversion(p, q)) for p, q in {**b.drivers, **b.states}.items()}
            self.live.append(BindingState(sat, convert, {q: b.bounds_of(q) for q, *_ in
                                                         convert.values()}))
        # Judges telemetry and writes the measurements into self.live, between steps.
        self.telemetry = TelemetryIngest(self.bindings, self.live, self.params)
        self.driver_keys = sorted({q for b in self.bindings for q in b.drivers.values()})
        self.state_keys = sorted({q for b in self.bindings for q in b.states.values()})
        self._warned_warp = False
        self._unknown_event_wall = -np.inf  # wall time of the last mirror_unknown_testbed
        self._fields = self._make_fields()
        self._f = {f.spec.name: f.array for f in self._fields}

    @staticmethod
    def _resolve_node(node: str | int, names: dict[str, int], source: str, i: int) -> int:
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
            out.append(make_field(f"mirror_measured_{q}", "<f4", (m,), unit_of(q),
                                  f"measured {q} driving the node (NaN: not mapped or lost)",
                                  per_sat=False, fill=np.nan))
        for q in self.state_keys:
            for kind, text in (("measured", "measured"), ("predicted", "model's"),
                               ("residual", "measured minus predicted")):
                out.append(make_field(f"mirror_{kind}_{q}", "<f4", (m,), unit_of(q),
                                      f"{text} {q} of the mirrored node", per_sat=False,
                                      fill=np.nan))
        return out

    # -- subsystem contract -----------------------------------------------------------

    def fields(self) -> list[Field]:
        return self._fields

    def step(self, ctx: StepContext) -> None:
        """Publish measured, predicted and residual states; raise threshold events."""
        self.telemetry.rejections.tick()
        self._report_unknown(ctx)
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

    def _compare(self, j: int, lv: BindingState, b: MirrorBinding, q: str,
                 ctx: StepContext) -> None:
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

    def _report_unknown(self, ctx: StepContext) -> None:
        """``mirror_unknown_testbed``: telemetry came from a testbed no binding uses (at most
        one event every ``UNKNOWN_EVENT_INTERVAL_S`` of wall time, with what it dropped)."""
        unknown = self.telemetry.unknown
        now = self.wall_clock()
        if not unknown.pending_messages or now - self._unknown_event_wall < \
                UNKNOWN_EVENT_INTERVAL_S:
            return
        self._unknown_event_wall = now
        bound = ", ".join(sorted({b.name for b in self.bindings})) or "none"
        ctx.events.raise_event(
            "mirror_unknown_testbed", "warning",
            f"telemetry from testbed {quote(unknown.newest_name)} dropped: "
            f"{unknown.pending_messages} message(s), {unknown.pending_samples} sample(s); no "
            f"[[mirror.testbed]] has that name (bound: {bound})",
            testbed=unknown.newest_name, messages=unknown.pending_messages,
            samples=unknown.pending_samples)
        unknown.pending_messages = unknown.pending_samples = 0

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
        c = self.telemetry.counters
        return {
            "counters": {**c, "messages_dropped": dict(c["messages_dropped"]),
                         "samples_dropped": dict(c["samples_dropped"])},
            "bridges": dict(self.telemetry.bridge_counters),
            "unknown_testbed": self.telemetry.unknown.status(),
            "bindings": [
                {"testbed": b.name, "sat": lv.sat, "live": lv.live, "applied": lv.applied,
                 "lost_count": lv.lost_count, "age_s": now - lv.last_applied_wall
                 if lv.ever_live else None, "newest_sample_utc": lv.newest_sample_utc,
                 "measured": dict(lv.measured)}
                for b, lv in zip(self.bindings, self.live, strict=True)],
        }

    # -- ingest -----------------------------------------------------------------------

    @property
    def counters(self) -> dict[str, Any]:
        """Ingest counters: messages and samples applied, ignored and dropped by reason."""
        return self.telemetry.counters

    @property
    def bridge_counters(self) -> dict[str, Any]:
        """The bridges' own counters (``bridge_summary``), by bound testbed name."""
        return self.telemetry.bridge_counters

    def ingest(self, frames: list[Any], may_feed: Callable[[str], bool] | None = None
               ) -> None:
        """Judge and apply one ``tm`` message (the server's ingest handler); never raises.

        See ``TelemetryIngest.ingest``; the wall clock is read through ``self.wall_clock``
        at the call, so a test may swap it after construction.
        """
        self.telemetry.ingest(frames, self.wall_clock, may_feed)

"""The engine: one clock, one random generator, and the models stepped in order.

The engine knows nothing of sockets. It steps, it describes its fields, and it answers
commands; ``twin.runtime.server`` moves what it produces onto the wire.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC
from typing import Any

import numpy as np

from twin import __version__
from twin.core.clock import SimClock
from twin.core.ratelog import RateLimitedLog
from twin.core.subsystem import CommandHandler, EventLog, Field, StepContext, Subsystem
from twin.models import scheduler
from twin.models.compute import ComputeModel
from twin.models.faults import FaultModel
from twin.models.limits import LimitsModel
from twin.models.mirror import Mirror, MirrorDrivers
from twin.models.orbit import OrbitModel
from twin.models.power import PowerModel
from twin.models.thermal import ThermalModel
from twin.protocol.catalog import TOTALS, total_entry
from twin.protocol.codec import PROTOCOL_VERSION, FieldSpec
from twin.scenario import Scenario

log = logging.getLogger("odc.twin.engine")


class Engine:
    """Composes the subsystems of one twin and steps them together.

    Args:
        scenario: The loaded scenario.
        clock: The simulation clock (the engine advances it).
        seed: Overrides the scenario's seed when given.
    """

    def __init__(self, scenario: Scenario, clock: SimClock, seed: int | None = None) -> None:
        self.scenario = scenario
        self.clock = clock
        self.seed = scenario.seed if seed is None else seed
        self.rng = np.random.default_rng(self.seed)
        self.events = EventLog(t_utc=clock.t_utc)
        self.orbit = OrbitModel(scenario, clock)
        # Not ``self.compute``: that is the engine's step method.
        self.compute_model = ComputeModel(scenario)
        self.faults = FaultModel(scenario, self.compute_model.params.accelerators_per_node)
        # Step order matters: each subsystem reads what earlier ones put in ctx.shared.
        # The mirror is two steps: measured drivers overwrite the model's inputs right after
        # compute (before power and thermal read them); measured states are compared last.
        self.mirror = Mirror(scenario, clock)
        self.ingest_handler = self.mirror.ingest
        self.power = PowerModel.from_scenario(scenario)
        self.thermal = ThermalModel.from_scenario(scenario)
        before_limits: list[Subsystem] = [self.orbit, self.faults, self.compute_model,
                                          MirrorDrivers(self.mirror), self.power, self.thermal]
        # Limits watches every field with limits of the subsystems stepped before it.
        self.limits = LimitsModel([f for s in before_limits for f in s.fields()], scenario)
        self.subsystems: list[Subsystem] = [*before_limits, self.limits, self.mirror]
        self._fields: list[Field] = [f for s in self.subsystems for f in s.fields()]
        self.shared: dict[str, Any] = {}
        # Models whose step raised, by name -> how many steps it has raised in all. A model
        # that raises is a bug, never bad input; the others step on around it.
        self.subsystem_errors: dict[str, int] = {}
        self.failing: set[str] = set()
        self._nonfinite_totals: set[str] = set()
        self._nan_fields: set[str] = set()
        self._failure_log = RateLimitedLog(log)
        # Step 0 is the state at the epoch, so the first frame published is complete (a
        # model that fails here fails the load, with its traceback).
        self.compute(0.0, isolate=False)
        self._totals = self._declared_totals()
        self._checked_fields = [
            f for f in self._fields
            if f.spec.per_sat and f.array.dtype.kind == "f" and f.array.ndim >= 1
            and f.array.shape[0] == self.n_sats and not f.spec.name.startswith("mirror_")]

    @property
    def n_sats(self) -> int:
        return len(self.scenario.satellites)

    @property
    def fields(self) -> list[Field]:
        """Every wire field, in publish order."""
        return self._fields

    @property
    def field_specs(self) -> list[FieldSpec]:
        return [f.spec for f in self._fields]

    def step(self) -> None:
        """Advance the clock one step and every subsystem with it."""
        dt_s = self.clock.advance()
        self.compute(dt_s)
        self._check_fields()

    def context(self, dt_s: float) -> StepContext:
        """The context for a step ending at the clock's current time."""
        self.events.t_utc = self.clock.t_utc
        return StepContext(self.clock.t_utc, dt_s, self.events, self.rng, self.shared)

    def compute(self, dt_s: float, *, isolate: bool = True) -> None:
        """Bring every subsystem to the clock's current time (``dt_s`` after the last).

        With ``isolate``, an exception inside one model's step does not end the step: it
        becomes an alarm (``subsystem_error``, once until the model steps cleanly again,
        then ``subsystem_recovered``), the model's fields keep their last values, and the
        models after it step on what they have. The server keeps serving commands.
        """
        ctx = self.context(dt_s)
        if not isolate:
            for subsystem in self.subsystems:
                subsystem.step(ctx)
            return
        for subsystem in self.subsystems:
            try:
                subsystem.step(ctx)
            except Exception as exc:
                self._subsystem_failed(subsystem.name, exc, ctx)
            else:
                if self.failing and subsystem.name in self.failing:
                    self.failing.discard(subsystem.name)
                    ctx.events.raise_event(
                        "subsystem_recovered", "info", f"model {subsystem.name!r} steps "
                        "cleanly again", model=subsystem.name)

    def flush_logs(self) -> None:
        """Write the summaries of rate-limited log lines still held back (at shutdown)."""
        self._failure_log.flush()
        self.mirror.rejections.flush()

    def _subsystem_failed(self, name: str, exc: Exception, ctx: StepContext) -> None:
        self.subsystem_errors[name] = self.subsystem_errors.get(name, 0) + 1
        self._failure_log.log(f"step:{name}", "model %r failed in step %d", name,
                              self.clock.steps, level=logging.ERROR, exc_info=True)
        if name not in self.failing:
            self.failing.add(name)
            ctx.events.raise_event(
                "subsystem_error", "alarm", f"model {name!r} failed this step "
                f"({type(exc).__name__}); its fields hold their last values and the twin "
                "steps on (traceback in the twin's log)", model=name,
                error=type(exc).__name__)

    def _declared_totals(self) -> dict[str, dict[str, Any]]:
        """The totals catalog of every key the models put in ``fleet``; checked at start-up.

        Raises:
            ValueError: A model publishes a total twin.catalog does not declare, or two
                models publish the same one.
        """
        owner: dict[str, str] = {}
        for subsystem in self.subsystems:
            for key in subsystem.fleet():
                if key in owner:
                    raise ValueError(f"fleet total {key!r} is published by both "
                                     f"{owner[key]!r} and {subsystem.name!r}")
                if key not in TOTALS:
                    raise ValueError(f"model {subsystem.name!r} publishes fleet total {key!r},"
                                     " which twin/protocol/catalog.py does not declare "
                                     "(unit, meaning)")
                owner[key] = subsystem.name
        policies = {code: name for name, code in scheduler.POLICIES.items()}
        return {key: total_entry(key, policies if key == "scheduler_policy_code" else None)
                for key in owner}

    def _check_totals(self, fleet: dict[str, float]) -> None:
        """Alarm, once until it is finite again, on each non-finite fleet total."""
        bad = {k for k, v in fleet.items() if not math.isfinite(v)}
        for key in sorted(bad - self._nonfinite_totals):
            self.events.raise_event("total_not_finite", "alarm",
                                    f"fleet total {key} is not finite", field=key)
        self._nonfinite_totals = bad

    def _check_fields(self) -> None:
        """Alarm, once per field until it is clean again, on NaN in a published field.

        One reduction per float field (~60 µs a step for the 4,428-satellite catalog): a
        NaN anywhere makes the sum NaN. Fields that are NaN by design are left out: the
        mirror's (no measurement) and, for satellites SGP4 failed, every field (the orbit
        already raised ``orbit_error`` for them). +inf is a value (no power cap), not NaN.
        """
        bad_now: set[str] = set()
        for f in self._checked_fields:
            if math.isnan(np.add.reduce(f.array, axis=None)):
                nodes = self._nan_nodes(f.array)
                if nodes.size:
                    bad_now.add(f.spec.name)
                    if f.spec.name not in self._nan_fields:
                        shown = ", ".join(str(int(k)) for k in nodes[:5])
                        more = f" and {nodes.size - 5} more" if nodes.size > 5 else ""
                        self.events.raise_event(
                            "state_not_finite", "alarm", f"{f.spec.name} is NaN on node(s) "
                            f"{shown}{more}", sat=int(nodes[0]), field=f.spec.name,
                            n_sats=int(nodes.size))
        for name in sorted(self._nan_fields - bad_now):
            self.events.raise_event("state_finite_again", "info", f"{name} is finite again",
                                    field=name)
        self._nan_fields = bad_now

    def _nan_nodes(self, array: np.ndarray) -> np.ndarray:
        """Indices of nodes with NaN in ``array`` (axis 0 the nodes), SGP4 failures left out."""
        nan = np.isnan(array.reshape(array.shape[0], -1)).any(axis=1)
        nan &= self.orbit.status.array == 0
        return np.flatnonzero(nan)

    def header(self) -> dict[str, Any]:
        """Per-step facts for the ``state`` header besides the framing keys."""
        fleet: dict[str, float] = {}
        for subsystem in self.subsystems:
            fleet.update(subsystem.fleet())
        if self._nonfinite_totals or not math.isfinite(sum(fleet.values())):
            self._check_totals(fleet)
        return {
            "step": self.clock.steps,
            "dt_s": self.clock.dt_s,
            "warp": self.clock.warp,
            "paused": self.clock.paused,
            "n_sats": self.n_sats,
            "fleet": fleet,
            **self.orbit.header(),
            **({"models_failing": sorted(self.failing)} if self.failing else {}),
        }

    def meta(self) -> dict[str, Any]:
        """What a viewer needs to draw before the first frame (the ``meta`` body)."""
        scenario = self.scenario
        sats = scenario.satellites
        subsystems = {s.name: s.meta() for s in self.subsystems}
        return {
            "twin_version": __version__,
            "protocol": PROTOCOL_VERSION,
            "scenario": {
                "name": scenario.name,
                "description": scenario.description,
                "source": scenario.source,
                "epoch_utc": scenario.epoch_utc.astimezone(UTC).isoformat(),
                "epoch_t_utc": scenario.epoch_utc.timestamp(),
                "seed": self.seed,
            },
            "clock": {"rate_hz": self.clock.rate_hz, "warp": self.clock.warp},
            "sats": {
                "n": len(sats),
                "ids": [s.sat_id for s in sats],
                "names": [s.name for s in sats],
                "groups": [s.group for s in sats],
                "norad_ids": [s.norad_id for s in sats],
            },
            "stations": [
                {
                    "name": st.name, "lat_deg": st.lat_deg, "lon_deg": st.lon_deg,
                    "alt_m": st.alt_m, "min_elevation_deg": st.min_elevation_deg,
                    "downlink_bps": st.downlink_bps,
                }
                for st in scenario.stations
            ],
            "fields": [spec.catalog_entry() for spec in self.field_specs],
            "totals": self._totals,
            "subsystems": subsystems,
        }

    def commands(self) -> dict[str, CommandHandler]:
        """Commands contributed by subsystems (the server adds the clock's own)."""
        handlers: dict[str, CommandHandler] = {}
        for subsystem in self.subsystems:
            handlers.update(subsystem.commands())
        return handlers


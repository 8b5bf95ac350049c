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
from twin.astro.shards import ShardError
from twin.core.clock import SimClock
from twin.core.interfaces import find_quantity
from twin.core.ratelog import RateLimitedLog
from twin.core.registry import (
    ModelEntry,
    RegistryError,
    build_models,
    check_written,
    context_outputs,
)
from twin.core.slices import SlicePool
from twin.core.subsystem import (
    CommandHandler,
    CommandRejected,
    EventLog,
    Field,
    StepContext,
    Subsystem,
)
from twin.protocol.alarms import AlarmKind
from twin.protocol.catalog import total_entry
from twin.protocol.codec import PROTOCOL_VERSION, FieldSpec
from twin.protocol.commands import SERVER_COMMANDS, CommandSpec, SatelliteNames, check_request
from twin.scenario import Scenario

log = logging.getLogger("odc.twin.engine")

ENGINE_ALARMS: dict[str, AlarmKind] = {
    "subsystem_error": AlarmKind("subsystem_recovered", "model", per_node=False),
    "state_not_finite": AlarmKind("state_finite_again", "field", per_node=False),
    "total_not_finite": AlarmKind(None, "field", per_node=False),
}
"""The engine's own events that are alarms (twin.protocol.alarms)."""


class Engine:
    """Composes the subsystems of one twin and steps them together.

    Args:
        scenario: The loaded scenario.
        clock: The simulation clock (the engine advances it).
        seed: Overrides the scenario's seed when given.
        models: The models in step order (default: twin.models.registry.MODELS).
        control_period_s: Overrides the scenario's ``[clock] control_period_s`` when given
            (tests of one model step's relations set it to their step).
        workers: Processes the per-satellite work runs on (``run_on_workers`` of each model
            that offers it: the orbit's SGP4); 1, the default, keeps it in this process.
            The frames are the same for any number (docs/architecture.md, "Every core").
            Call `close` to end them.

    Raises:
        RegistryError: Two models claim the same name, table, field, command, total or
            outputs, or a model reads outputs nobody publishes or leaves a published
            quantity unset (twin.core.registry).
    """

    def __init__(self, scenario: Scenario, clock: SimClock, seed: int | None = None,
                 models: tuple[ModelEntry, ...] | None = None,
                 control_period_s: float | None = None, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        if models is None:
            from twin.models.registry import MODELS  # the models import the core

            models = MODELS
        self.scenario = scenario
        self.clock = clock
        self.seed = scenario.seed if seed is None else seed
        self.rng = np.random.default_rng(self.seed)
        # A mass change (a first step's contacts) is one summary event per kind, counted
        # per group and station (twin.core.events).
        self.events = EventLog(t_utc=clock.t_utc,
                               names={"station": [st.name for st in scenario.stations]},
                               groups=lambda: node_groups(scenario))
        self.entries = models
        self.subsystems: list[Subsystem] = build_models(
            models, scenario, clock, reserved_commands=[s.name for s in SERVER_COMMANDS],
            workers=workers)
        self.models: dict[str, Subsystem] = {m.name: m for m in self.subsystems}
        self.workers = workers
        # The engine's own per-satellite pass (the NaN check) in row slices on threads.
        self._slices = SlicePool(len(scenario.satellites), workers)
        if workers > 1:
            for model in self.subsystems:
                shard = getattr(model, "run_on_workers", None)
                if shard is not None:
                    shard(workers)
        # Conveniences for tests, benches and the server; nothing in the step uses them.
        get = self.models.get
        self.orbit, self.faults, self.compute_model = get("orbit"), get("faults"), get("compute")
        self.power, self.thermal, self.limits = get("power"), get("thermal"), get("limits")
        self.mirror = get("mirror")
        self.ingest_handler = getattr(self.mirror, "ingest", None)
        self._outputs = context_outputs(self.subsystems)
        # The control loop the step cuts into sub-steps (ModelEntry.substep): models
        # [loop_start, loop_stop) in step order, and the longest sub-step, s.
        self._loop = _control_loop(models)
        self.control_period_s = float(
            control_period_s if control_period_s is not None
            else getattr(getattr(scenario, "clock", None), "control_period_s",
                         DEFAULT_CONTROL_PERIOD_S))
        self.substeps = 1  # sub-steps of the control loop in the last step
        # The loop's fields that describe the step (FieldSpec.over): averaged (counted) over
        # its sub-steps.
        self._step_fields = [] if self._loop is None else [
            f for model in self.subsystems[self._loop[0]:self._loop[1]] for f in model.fields()
            if f.spec.over == "step"]
        self._fields: list[Field] = [f for s in self.subsystems for f in s.fields()]
        self._command_specs: dict[str, CommandSpec] = {
            spec.name: spec for entry in models for spec in entry.commands}
        # How commands name a satellite (index, name or NORAD id), resolved once.
        self.satellites = SatelliteNames([s.name for s in scenario.satellites],
                                         [s.norad_id for s in scenario.satellites])
        # Models whose step raised, by name -> how many steps it has raised in all. A model
        # that raises is a bug, never bad input; the others step on around it.
        self.subsystem_errors: dict[str, int] = {}
        self.failing: set[str] = set()
        self._nonfinite_totals: set[str] = set()
        self._nan_fields: set[str] = set()
        self._failure_log = RateLimitedLog(log)
        self._last_context: StepContext | None = None
        # Step 0 is the state at the epoch, so the first frame published is complete (a
        # model that fails here fails the load, with its traceback).
        self.compute(0.0, isolate=False)
        check_written(self.subsystems)
        self._totals = self._declared_totals()
        status = getattr(self.orbit, "status", None)
        self._orbit_status = None if status is None else status.array
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
        if self.orbit is not None:  # the next step's SGP4 starts on the workers now
            self.orbit.prefetch()

    def context(self, dt_s: float) -> StepContext:
        """The context for a step ending at the clock's current time."""
        self.events.close_step()  # a mass change is summarised per step
        self.events.t_utc = self.clock.t_utc
        ctx = StepContext(self.clock.t_utc, dt_s, self.events, self.rng, **self._outputs)
        self._last_context = ctx
        return ctx

    def quantity(self, name: str) -> Any:
        """A quantity the models publish to each other (twin.core.interfaces), by name, as
        of the last step: for tests, benches and diagnostics."""
        return find_quantity(self._last_context, name)

    def compute(self, dt_s: float, *, isolate: bool = True) -> None:
        """Bring every subsystem to the clock's current time (``dt_s`` after the last).

        With ``isolate``, an exception inside one model's step does not end the step: it
        becomes an alarm (``subsystem_error``, once until the model steps cleanly again,
        then ``subsystem_recovered``), the model's fields keep their last values, and the
        models after it step on what they have. The server keeps serving commands.

        A step longer than ``control_period_s`` steps the control loop (the models whose
        registry entry says ``substep``: compute, power, thermal) over ``substeps`` equal
        sub-steps, each no longer than the control period, on one orbit and environment
        step (docs/models.md, "Step-size independence"); the models after the loop see
        the step's end.
        """
        ctx = self.context(dt_s)
        parts = substep_count(dt_s, self.control_period_s) if self._loop else 1
        self.substeps = parts
        if parts == 1:
            for subsystem in self.subsystems:
                self._step_one(subsystem, ctx, isolate)
            return
        start, stop = self._loop
        for subsystem in self.subsystems[:start]:
            self._step_one(subsystem, ctx, isolate)
        t_end = ctx.t_utc
        part_s = dt_s / parts
        # The outputs of the models stepped once over each part of the step, where they
        # offer them (``outputs_parts``: the environment's sunlight), by context slot.
        over_parts: dict[str, list[Any]] = {}
        for subsystem in self.subsystems[:start]:
            split = getattr(subsystem, "outputs_parts", None)
            if split is not None:
                slot = next(key for key, value in self._outputs.items()
                            if value is subsystem.outputs)
                try:
                    over_parts[slot] = split(ctx, parts)
                except Exception as exc:  # a bug: the loop sees the step's outputs whole
                    if not isolate:
                        raise
                    self._subsystem_failed(subsystem.name, exc, ctx)
        over_step = StepFields(self._step_fields)
        for k in range(parts):  # a handful of sub-steps, each vectorized over the nodes
            t_part = t_end - dt_s + (k + 1) * part_s
            self.events.t_utc = t_part
            outputs = {**self._outputs, **{slot: split[k] for slot, split in over_parts.items()}}
            part = StepContext(t_part, part_s, self.events, self.rng, **outputs,
                               step_dt_s=dt_s, substep=k)
            for subsystem in self.subsystems[start:stop]:
                self._step_one(subsystem, part, isolate)
            over_step.add()
        # The loop's fields that describe the step describe all of it, not its last part.
        over_step.write(parts)
        for subsystem in self.subsystems[start:stop]:
            rewritten = getattr(subsystem, "fields_rewritten", None)
            if rewritten is not None:
                rewritten()
        self.events.t_utc = t_end
        for subsystem in self.subsystems[stop:]:
            self._step_one(subsystem, ctx, isolate)

    def _step_one(self, subsystem: Subsystem, ctx: StepContext, isolate: bool) -> None:
        """Step one model; with ``isolate``, its exception is an alarm (``compute``)."""
        if not isolate:
            subsystem.step(ctx)
            return
        try:
            subsystem.step(ctx)
        except ShardError:
            raise  # the workers are gone for good: the twin stops, with the reason
        except Exception as exc:
            self._subsystem_failed(subsystem.name, exc, ctx)
        else:
            if self.failing and subsystem.name in self.failing:
                self.failing.discard(subsystem.name)
                ctx.events.raise_event(
                    "subsystem_recovered", "info", f"model {subsystem.name!r} steps "
                    "cleanly again", model=subsystem.name)

    def close(self) -> None:
        """End the models' worker processes and free their shared memory, and the row
        slices' threads (idempotent)."""
        self._slices.close()
        for subsystem in self.subsystems:
            close = getattr(subsystem, "close", None)
            if close is not None:
                close()

    def flush_logs(self) -> None:
        """Write the summaries of rate-limited log lines still held back (at shutdown)."""
        self._failure_log.flush()
        for subsystem in self.subsystems:
            rejections = getattr(subsystem, "rejections", None)
            if isinstance(rejections, RateLimitedLog):
                rejections.flush()

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
            RegistryError: A model publishes a total its registry entry does not declare.
        """
        catalog: dict[str, dict[str, Any]] = {}
        declared_by = {key: entry.name for entry in self.entries for key in entry.totals}
        for entry, model in zip(self.entries, self.subsystems, strict=True):
            for key in model.fleet():
                if key in declared_by and declared_by[key] != entry.name:
                    raise RegistryError(f"fleet total {key!r} is published by both "
                                        f"{declared_by[key]!r} and {model.name!r}; only "
                                        f"{declared_by[key]!r} declares it")
                if key not in entry.totals:
                    raise RegistryError(f"model {model.name!r} publishes fleet total {key!r}"
                                        ", which its registry entry does not declare (unit, "
                                        "meaning)")
                unit, description = entry.totals[key]
                catalog[key] = total_entry(unit, description, entry.total_labels.get(key))
        return catalog

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
        The reductions run in the row slices (twin.core.slices); a slice finds a NaN as
        the whole array does.
        """
        bad_now: set[str] = set()
        suspects = set().union(*self._slices.run(self._nan_sums))
        for k, f in enumerate(self._checked_fields):
            if k in suspects:
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

    def _nan_sums(self, start: int, stop: int) -> list[int]:
        """The checked fields (by position) whose rows [start, stop) sum to NaN: a NaN
        among them, or +inf and -inf (which ``_nan_nodes`` then finds to be no NaN)."""
        return [k for k, f in enumerate(self._checked_fields)
                if math.isnan(np.add.reduce(f.array[start:stop], axis=None))]

    def _nan_nodes(self, array: np.ndarray) -> np.ndarray:
        """Indices of nodes with NaN in ``array`` (axis 0 the nodes), SGP4 failures left out."""
        nan = np.isnan(array.reshape(array.shape[0], -1)).any(axis=1)
        if self._orbit_status is not None:
            nan &= self._orbit_status == 0
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
            "substeps": self.substeps,
            "warp": self.clock.warp,
            "paused": self.clock.paused,
            "n_sats": self.n_sats,
            "fleet": fleet,
            **(self.orbit.header() if self.orbit is not None else {}),
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
            "clock": {"rate_hz": self.clock.rate_hz, "warp": self.clock.warp,
                      "control_period_s": self.control_period_s},
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
        """Commands the models answer (the server adds its own); names are unique (checked
        at start-up)."""
        return {name: handler for subsystem in self.subsystems
                for name, handler in subsystem.commands().items()}

    def run_command(self, request: dict[str, Any]) -> dict[str, Any]:
        """Check a model's command against its declaration and run it, as the server does
        (twin.runtime.dispatch), for callers in this process (tests, benches, scripts).

        Raises:
            CommandRejected: The command is unknown to the models, or its request is wrong.
        """
        name = request.get("cmd")
        spec = self._command_specs.get(name) if isinstance(name, str) else None
        if spec is None:
            raise CommandRejected(f"no model answers {str(name)[:60]!r}")
        return self.commands()[spec.name](check_request(spec, request, self.satellites))

    def command_specs(self) -> dict[str, CommandSpec]:
        """The models' command declarations, by name (the server adds its own)."""
        return dict(self._command_specs)


class StepFields:
    """The fields that describe a step (``over="step"``) through its sub-steps: the mean of
    each quantity, the largest of each count (every job or accelerator that took part)."""

    def __init__(self, fields: list[Field]) -> None:
        self.fields = fields
        self.totals = [np.zeros(f.array.shape, dtype=np.float64 if f.array.dtype.kind == "f"
                                else f.array.dtype) for f in fields]

    def add(self) -> None:
        """Take in the fields' values after a sub-step."""
        for f, total in zip(self.fields, self.totals, strict=True):
            if total.dtype.kind == "f":
                total += f.array
            else:
                np.maximum(total, f.array, out=total)

    def write(self, parts: int) -> None:
        """Write the step's values (``parts`` sub-steps taken in) into the fields."""
        for f, total in zip(self.fields, self.totals, strict=True):
            if total.dtype.kind == "f":
                total /= parts
            np.copyto(f.array, total, casting="unsafe")


DEFAULT_CONTROL_PERIOD_S = 6.0
"""The control period of a scenario that gives none (``[clock] control_period_s``)."""


MAX_SUBSTEPS = 100
"""Most sub-steps in one step: the 600 s longest step at the default 6 s period. A shorter
period than ``dt_s / MAX_SUBSTEPS`` is lengthened to it, so a step's work stays bounded."""


def node_groups(scenario: Scenario) -> tuple[np.ndarray, list[str]]:
    """Each node's group code (index = node) and the group names, for event summaries."""
    names = list(scenario.groups)
    code = {name: k for k, name in enumerate(names)}
    sats = scenario.satellites
    return np.fromiter((code[s.group] for s in sats), dtype=np.int32, count=len(sats)), names


def substep_count(dt_s: float, control_period_s: float) -> int:
    """Equal sub-steps of a ``dt_s`` step, none longer than ``control_period_s``: 1 for a
    step no longer than it (and for the epoch's, dt 0), at most ``MAX_SUBSTEPS``."""
    if not dt_s > control_period_s:
        return 1
    # A hair of slack, so 60 s at a 10 s period is 6 parts, not 7 by rounding.
    return min(MAX_SUBSTEPS, max(1, math.ceil(dt_s / control_period_s * (1.0 - 1e-12))))


def _control_loop(models: tuple[ModelEntry, ...]) -> tuple[int, int] | None:
    """[start, stop) of the sub-stepped models in step order, or None when none is.

    Raises:
        RegistryError: They are not consecutive.
    """
    flagged = [i for i, entry in enumerate(models) if entry.substep]
    if not flagged:
        return None
    start, stop = flagged[0], flagged[-1] + 1
    if len(flagged) != stop - start:
        names = ", ".join(models[i].name for i in flagged)
        raise RegistryError(f"the sub-stepped models ({names}) must be consecutive in step "
                            "order: the control loop is one block")
    return start, stop

"""The models of the twin, in step order: the one declaration the rest is derived from.

The engine steps them in this order; the scenario loader accepts their tables; the
parameter reference in docs/scenarios.md is generated from their parameter dataclasses;
``meta.commands`` and ``meta.totals`` are their commands and totals. Adding a model is a
line here (docs/architecture.md, "Adding a model"); twin.core.registry checks that nothing
two models claim clashes and that everything a model reads is published.

Order matters where a model reads another's outputs of this step (twin.core.interfaces):
the mirror's measured drivers come before the models they drive, orbit before everything
that needs geometry, power before thermal (its heat), the lifecycle after thermal (it ages
what the step used; orbit, faults, power and thermal read its outputs a step later), and
limits after every model whose fields it watches. Compute, power and thermal are the
control loop (``substep``): the engine steps them several times in a step longer than the
control period, over the environment's sunlight of each part of the step.
"""

from __future__ import annotations

from typing import Any

from twin.core.registry import Built, ModelEntry
from twin.models import compute, faults, limits, links, mirror, orbit, power, thermal
from twin.models.compute import (
    ComputeModel,
    ComputeParams,
    RadiationParams,
    WorkloadParams,
    scheduler,
)
from twin.models.environment import EnvironmentModel
from twin.models.estimation import model as estimation
from twin.models.estimation.params import EstimationParams
from twin.models.faults import FaultModel
from twin.models.formation import model as formation
from twin.models.formation.model import FormationModel
from twin.models.lifecycle import COMMANDS as LIFECYCLE_COMMANDS
from twin.models.lifecycle import FLEET_TOTALS as LIFECYCLE_TOTALS
from twin.models.lifecycle import LifecycleModel, LifecycleParams
from twin.models.limits import LimitsModel
from twin.models.links import LinksModel, LinksParams
from twin.models.mirror import Mirror, MirrorDrivers, MirrorParams
from twin.models.orbit import OrbitModel
from twin.models.power import PowerModel, PowerParams
from twin.models.thermal import ThermalModel, ThermalParams
from twin.protocol.alarms import AlarmKind
from twin.protocol.catalog import total_entry
from twin.protocol.commands import SERVER_COMMANDS, CommandSpec
from twin.scenario import parse_section


def _faults(b: Built) -> FaultModel:
    # Faults step before compute, but fail the accelerators compute's table installs.
    installed = parse_section(ComputeParams, b.scenario, "compute").accelerators_per_node
    return FaultModel(b.scenario, installed)


def _estimation(b: Built) -> estimation.Estimation:
    # The estimator reads the mirror's bindings and their newest readings.
    mirror = b.models["mirror"]
    assert isinstance(mirror, Mirror)
    return estimation.Estimation(b.scenario, mirror)


def _formation(b: Built) -> FormationModel:
    # The members fly in the orbit model; this model watches them.
    flown = b.models["orbit"]
    assert isinstance(flown, OrbitModel)
    return FormationModel(b.scenario, flown.formation)


def _lifecycle(b: Built) -> LifecycleModel:
    # Ages what compute and power install; off (no fields, no totals) without [lifecycle].
    installed = parse_section(ComputeParams, b.scenario, "compute").accelerators_per_node
    capacity_wh = parse_section(PowerParams, b.scenario, "power").battery_capacity_wh
    return LifecycleModel(b.scenario, installed, capacity_wh)


def _mirror_states(b: Built) -> Mirror:
    # The mirror is two steps of one object: its drivers early, its comparison last.
    drivers = b.models["mirror_drivers"]
    assert isinstance(drivers, MirrorDrivers)
    return drivers.mirror


MODELS: tuple[ModelEntry, ...] = (
    ModelEntry("orbit", lambda b: OrbitModel(b.scenario, b.clock, b.workers),
               sections=(("orbit", orbit.OrbitParams),), totals=orbit.FLEET_TOTALS,
               alarms={"orbit_error": AlarmKind("orbit_recovered", ""),
                       "worker_restarted": AlarmKind(None, "shard", per_node=False)}),
    ModelEntry("formation", _formation, totals=formation.FLEET_TOTALS,
               alarms={"closest_approach": AlarmKind(None, "")}),
    ModelEntry("faults", _faults, commands=faults.COMMANDS, totals=faults.FLEET_TOTALS),
    ModelEntry("mirror_drivers", lambda b: MirrorDrivers(Mirror(b.scenario, b.clock))),
    # After the orbit (geometry, contacts), before compute (relay_bps) and power (its load).
    ModelEntry("links", lambda b: LinksModel(b.scenario), sections=(("links", LinksParams),),
               totals=links.FLEET_TOTALS),
    # Reads the orbit alone; stepped once a step, before the sub-stepped control loop,
    # which reads its outputs over each part of the step (outputs_over).
    ModelEntry("environment", lambda b: EnvironmentModel(len(b.scenario.satellites))),
    ModelEntry("compute", lambda b: ComputeModel(b.scenario),
               sections=(("compute", ComputeParams), ("workload", WorkloadParams),
                         ("radiation", RadiationParams)),
               commands=compute.COMMANDS, totals=compute.FLEET_TOTALS,
               total_labels={"scheduler_policy_code": {
                   code: name for name, code in scheduler.POLICIES.items()}},
               # Dose past a device limit: permanent, so momentary (no clearing event).
               alarms={"hbm_degraded": AlarmKind(None, ""), "tid_failure": AlarmKind(None, "")},
               substep=True),
    ModelEntry("power", lambda b: PowerModel.from_scenario(b.scenario),
               sections=(("power", PowerParams),), totals=power.FLEET_TOTALS,
               alarms={"input_not_finite": AlarmKind(None, "field")}, substep=True),
    ModelEntry("thermal", lambda b: ThermalModel.from_scenario(
                   b.scenario, parse_section(ComputeParams, b.scenario, "compute")),
               sections=(("thermal", ThermalParams),), commands=thermal.COMMANDS,
               totals=thermal.FLEET_TOTALS, substep=True),
    # Reads this step's orbit, power and thermal; orbit, faults, power and thermal read its
    # ageing and decay one step later.
    ModelEntry("lifecycle", _lifecycle, sections=(("lifecycle", LifecycleParams),),
               commands=LIFECYCLE_COMMANDS, totals=LIFECYCLE_TOTALS),
    # Watches the fields with limits of every model before it.
    ModelEntry("limits", lambda b: LimitsModel(b.fields(), b.scenario),
               sections=(("limits", None),), totals=limits.FLEET_TOTALS,
               alarms={"limit": AlarmKind("limit_clear", "field")}),
    ModelEntry("mirror", _mirror_states, sections=(("mirror", MirrorParams),),
               commands=mirror.COMMANDS, totals=mirror.FLEET_TOTALS,
               alarms={"mirror_residual": AlarmKind("mirror_residual_cleared", "field"),
                       "mirror_lost": AlarmKind("mirror_regained", "testbed")}),
    ModelEntry("estimation", _estimation, sections=(("estimation", EstimationParams),),
               totals=estimation.FLEET_TOTALS,
               alarms={"estimation_drift": AlarmKind("estimation_drift_cleared", "parameter"),
                       "diagnosis": AlarmKind(None, "cause")}),
)


def scenario_sections() -> tuple[str, ...]:
    """Every model's scenario table, in step order."""
    return tuple(name for entry in MODELS for name, _ in entry.sections)


def parameter_sections() -> tuple[tuple[str, type], ...]:
    """(table, parameters dataclass) of every table documented from its dataclass."""
    return tuple((name, cls) for entry in MODELS for name, cls in entry.sections
                 if cls is not None)


def command_catalog() -> dict[str, CommandSpec]:
    """Every command a twin answers, the server's own first, by name (meta.commands)."""
    return {spec.name: spec for spec in (*SERVER_COMMANDS, *(
        spec for entry in MODELS for spec in entry.commands))}


def totals_catalog() -> dict[str, dict[str, Any]]:
    """The catalog entry of every fleet total a model declares, by name (meta.totals)."""
    return {name: total_entry(unit, description, entry.total_labels.get(name))
            for entry in MODELS for name, (unit, description) in entry.totals.items()}

"""One ordered declaration of the models, and the checks that make it the only one.

``twin.models.registry.MODELS`` lists a ``ModelEntry`` per model in step order. From it come
the engine's step order, the scenario tables and their schemas (the loader's known tables,
the parameter docs), the command catalog and the fleet totals catalog. ``build_models``
constructs the models and refuses, with a message naming both sides, anything that two
models would claim or that nothing provides:

- two models with the same name, scenario table, field, command or fleet total;
- a model answering a command it does not declare, or declaring one it does not answer;
- two models publishing the same outputs (twin.core.interfaces), or a model reading
  outputs no model publishes;
- a published quantity its publisher leaves unset after its first step (``check_written``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from twin.core.interfaces import OUTPUTS, quantity_names
from twin.core.subsystem import Field, Subsystem
from twin.protocol.alarms import AlarmKind
from twin.protocol.commands import CommandSpec

Total = tuple[str, str]
"""A fleet total's (unit, description)."""


@dataclass
class Built:
    """What a model's ``build`` gets: the scenario, the clock, the engine's worker count
    (a model that forks processes does so as it is built, while the twin's process is
    small: docs/architecture.md, "Every core") and the models built so far."""

    scenario: Any
    clock: Any
    models: dict[str, Subsystem] = field(default_factory=dict)
    workers: int = 1

    def fields(self) -> list[Field]:
        """Every field of the models built so far, in step order."""
        return [f for model in self.models.values() for f in model.fields()]


@dataclass(frozen=True)
class ModelEntry:
    """One model of the registry.

    Attributes:
        name: The model's name (``Subsystem.name``; ``meta.subsystems`` key).
        build: Makes the model from the scenario, clock and the models before it.
        sections: The scenario tables it reads, each with its frozen parameters dataclass
            (documented by twin.scenario.paramdoc), or None for a table it parses itself.
        commands: The commands it answers (meta.commands).
        totals: The fleet totals it publishes, name -> (unit, description) (meta.totals).
        total_labels: Names of the codes of its enum totals, by total.
        alarms: The event kinds it raises that are alarms (twin.protocol.alarms).
        substep: The model is part of the control loop the engine sub-steps when a step is
            longer than the control period (``Engine.compute``; docs/models.md, "Step-size
            independence"). The sub-stepped models must be consecutive in step order.
    """

    name: str
    build: Callable[[Built], Subsystem]
    sections: tuple[tuple[str, type | None], ...] = ()
    commands: tuple[CommandSpec, ...] = ()
    totals: Mapping[str, Total] = field(default_factory=dict)
    total_labels: Mapping[str, dict[int, str]] = field(default_factory=dict)
    alarms: Mapping[str, AlarmKind] = field(default_factory=dict)
    substep: bool = False


class RegistryError(ValueError):
    """Two models claim the same name, or a model needs what no model provides."""


def _claim(owners: dict[str, str], kind: str, key: str, owner: str) -> None:
    if key in owners:
        raise RegistryError(f"{kind} {key!r} is claimed by both model {owners[key]!r} and "
                            f"model {owner!r}: names must be unique across models")
    owners[key] = owner


def check_entries(entries: Iterable[ModelEntry],
                  reserved_commands: Iterable[str] = ()) -> None:
    """The declarations alone: unique model names, tables, commands and totals.

    Args:
        reserved_commands: Commands answered outside the models (the server's own).
    """
    names: dict[str, str] = {}
    tables: dict[str, str] = {}
    commands = dict.fromkeys(reserved_commands, "the server")
    totals: dict[str, str] = {}
    for entry in entries:
        _claim(names, "model name", entry.name, entry.name)
        for table, _ in entry.sections:
            _claim(tables, "scenario table", table, entry.name)
        for spec in entry.commands:
            _claim(commands, "command", spec.name, entry.name)
        for total in entry.totals:
            _claim(totals, "fleet total", total, entry.name)


def build_models(entries: tuple[ModelEntry, ...], scenario: Any, clock: Any,
                 reserved_commands: Iterable[str] = (), workers: int = 1) -> list[Subsystem]:
    """Construct the models in step order and check what they claim and need.

    Raises:
        RegistryError: Naming the clash or the missing provider.
    """
    check_entries(entries, reserved_commands)
    built = Built(scenario, clock, workers=workers)
    try:
        for entry in entries:
            model = entry.build(built)
            built.models[entry.name] = model
            if model.name != entry.name:
                raise RegistryError(f"registry entry {entry.name!r} built a model named "
                                    f"{model.name!r}")
        models = list(built.models.values())
        _check_fields(models)
        _check_commands(entries, models)
        _check_outputs(models)
    except BaseException:
        # A model built before the failure may hold processes (the SGP4 workers): end them
        # now rather than whenever the garbage collector finds it.
        for model in built.models.values():
            close = getattr(model, "close", None)
            if close is not None:
                close()
        raise
    return models


def _check_fields(models: list[Subsystem]) -> None:
    owners: dict[str, str] = {}
    for model in models:
        for f in model.fields():
            _claim(owners, "field", f.spec.name, model.name)


def _check_commands(entries: tuple[ModelEntry, ...], models: list[Subsystem]) -> None:
    for entry, model in zip(entries, models, strict=True):
        answered, declared = set(model.commands()), {spec.name for spec in entry.commands}
        if answered - declared:
            raise RegistryError(f"model {entry.name!r} answers command(s) "
                                f"{', '.join(sorted(answered - declared))} that its registry "
                                "entry does not declare (arguments, significance)")
        if declared - answered:
            raise RegistryError(f"model {entry.name!r} declares command(s) "
                                f"{', '.join(sorted(declared - answered))} that it does not "
                                "answer")


def _check_outputs(models: list[Subsystem]) -> None:
    publishers: dict[str, str] = {}
    for model in models:
        slot = model.publishes
        if slot is None:
            continue
        if slot not in OUTPUTS:
            raise RegistryError(f"model {model.name!r} publishes {slot!r}, which "
                                "twin/core/interfaces.py does not declare")
        _claim(publishers, "outputs", slot, model.name)
        outputs = getattr(model, "outputs", None)
        if not isinstance(outputs, OUTPUTS[slot]):
            raise RegistryError(f"model {model.name!r} publishes {slot!r} but its "
                                f"'outputs' is not a {OUTPUTS[slot].__name__}")
    for model in models:
        for slot in model.reads:
            if slot not in publishers:
                raise RegistryError(f"model {model.name!r} reads the {slot!r} outputs, "
                                    "which no model publishes")


def check_written(models: list[Subsystem]) -> None:
    """After the first step: every quantity a model publishes has been set.

    Quantities that may legitimately be unset (``metadata={"optional": True}``) aside.

    Raises:
        RegistryError: Naming the model and the quantity it left unset.
    """
    for model in models:
        if model.publishes is None:
            continue
        outputs = model.outputs  # type: ignore[attr-defined]
        for spec in dataclasses.fields(outputs):
            if spec.metadata.get("optional"):
                continue
            if getattr(outputs, spec.name) is None:
                raise RegistryError(f"model {model.name!r} publishes {spec.name!r} "
                                    f"({type(outputs).__name__}) but left it unset after "
                                    "its first step: a reader would get nothing")


def context_outputs(models: list[Subsystem]) -> dict[str, Any]:
    """The step context's outputs attributes: each publisher's own instance."""
    return {model.publishes: model.outputs  # type: ignore[attr-defined]
            for model in models if model.publishes is not None}


def quantities_of(slot: str) -> tuple[str, ...]:
    """The quantity names of the outputs published as ``slot``."""
    return quantity_names(OUTPUTS[slot])

"""The model registry refuses, at start-up, what two models claim and what nobody provides."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from twin.core.clock import SimClock
from twin.core.engine import Engine
from twin.core.interfaces import QUANTITY_OWNERS, ComputeOutputs
from twin.core.registry import ModelEntry, RegistryError
from twin.core.subsystem import CommandHandler, Field, StepContext, make_field
from twin.models import registry
from twin.protocol.codec import ok
from twin.protocol.commands import CommandSpec
from twin.scenario import load_scenario, parse_section
from twin.scenario.loader import all_sections
from twin.scenario.paramdoc import SECTIONS


class Toy:
    """A model with one field, one command and one total, all named by the test."""

    def __init__(self, name: str, n: int, *, field_name: str = "", command: str = "",
                 total: str = "", reads: tuple[str, ...] = (),
                 publishes: str | None = None, writes: bool = True) -> None:
        self.name = name
        self.reads = reads
        self.publishes = publishes
        self._fields = [make_field(field_name, "<f4", (n,), "W", "a toy field")
                        ] if field_name else []
        self._command, self._total = command, total
        self.outputs = ComputeOutputs() if publishes == "compute" else None
        self._writes = writes

    def fields(self) -> list[Field]:
        return self._fields

    def step(self, ctx: StepContext) -> None:
        if self.outputs is not None and self._writes:
            self.outputs.compute_power_w = np.zeros(1)

    def fleet(self) -> dict[str, float]:
        return {self._total: 1.0} if self._total else {}

    def meta(self) -> dict[str, Any]:
        return {}

    def commands(self) -> dict[str, CommandHandler]:
        return {self._command: lambda request: ok()} if self._command else {}


def entry(name: str, **toy: Any) -> ModelEntry:
    command, total = toy.get("command", ""), toy.get("total", "")
    return ModelEntry(
        name, lambda b: Toy(name, len(b.scenario.satellites), **toy),
        commands=(CommandSpec(command, "a toy command", "operational"),) if command else (),
        totals={total: ("count", "a toy total")} if total else {})


def start(*entries: ModelEntry) -> Engine:
    scenario = load_scenario("default")
    return Engine(scenario, SimClock(scenario.epoch_utc, 1.0, 1.0), models=entries)


@pytest.mark.parametrize(("claim", "message"), [
    ("command", "command 'toggle' is claimed by both model 'first' and model 'second'"),
    ("field_name", "field 'toggle' is claimed by both model 'first' and model 'second'"),
    ("total", "fleet total 'toggle' is claimed by both model 'first' and model 'second'"),
])
def test_two_models_claiming_one_name_stop_the_twin(claim: str, message: str) -> None:
    with pytest.raises(RegistryError, match=message):
        start(entry("first", **{claim: "toggle"}), entry("second", **{claim: "toggle"}))


def test_a_command_of_the_server_cannot_be_a_models() -> None:
    with pytest.raises(RegistryError, match="command 'pause' is claimed by both model "
                                            "'the server' and model 'first'"):
        start(entry("first", command="pause"))


def test_a_model_reading_what_nobody_publishes_stops_the_twin() -> None:
    with pytest.raises(RegistryError, match="model 'reader' reads the 'thermal' outputs, "
                                            "which no model publishes"):
        start(entry("reader", reads=("thermal",)))


def test_a_published_quantity_left_unset_stops_the_twin() -> None:
    with pytest.raises(RegistryError, match="model 'lazy' publishes 'compute_power_w' "
                                            r"\(ComputeOutputs\) but left it unset"):
        start(entry("lazy", publishes="compute", writes=False))
    # Written, and read by a model after it: the twin starts.
    engine = start(entry("writer", publishes="compute"),
                   entry("reader", reads=("compute",)))
    assert engine.quantity("compute_power_w") is not None


def test_two_publishers_of_one_outputs_stop_the_twin() -> None:
    with pytest.raises(RegistryError, match="outputs 'compute' is claimed by both model "
                                            "'one' and model 'two'"):
        start(entry("one", publishes="compute"), entry("two", publishes="compute"))


def test_every_quantity_has_one_declared_writer() -> None:
    # quantity_owners raises at import on a name two outputs declare; here: the real set.
    assert QUANTITY_OWNERS["sun_along_km"] == "orbit"
    assert QUANTITY_OWNERS["temp_compute_k"] == "thermal"
    assert "relay_bps" not in QUANTITY_OWNERS  # read by nothing until a relay model exists


def test_the_registry_is_the_one_list_of_tables_docs_commands_and_totals() -> None:
    scenario = load_scenario("default")
    for name, cls in SECTIONS:  # the parameter docs are the registry's tables
        assert name in registry.scenario_sections()
        parse_section(cls, scenario, name)
    assert set(registry.scenario_sections()) <= set(all_sections())
    engine = Engine(scenario, SimClock(scenario.epoch_utc, 1.0, 1.0))
    assert [m.name for m in engine.subsystems] == [e.name for e in registry.MODELS]
    assert set(engine.meta()["totals"]) <= set(registry.totals_catalog())
    assert set(engine.commands()) | {"status", "meta", "pause", "resume", "step", "warp",
                                     "rate", "commands"} == set(registry.command_catalog())

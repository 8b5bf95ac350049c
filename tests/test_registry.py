"""The model registry refuses, at start-up, what two models claim and what nobody provides."""

from __future__ import annotations

from dataclasses import dataclass, field
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
from twin.protocol.commands import SERVER_COMMANDS, CommandSpec, sat_arg
from twin.scenario import ScenarioError, load_scenario, paramdoc, parse_scenario, parse_section
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
    assert QUANTITY_OWNERS["relay_bps"] == "links"  # the relay hook compute's downlink reads


def test_the_registry_is_the_one_list_of_tables_docs_commands_and_totals() -> None:
    scenario = load_scenario("default")
    for name, cls in SECTIONS:  # the parameter docs are the registry's tables
        assert name in registry.scenario_sections()
        parse_section(cls, scenario, name)
    assert set(registry.scenario_sections()) <= set(all_sections())
    engine = Engine(scenario, SimClock(scenario.epoch_utc, 1.0, 1.0))
    assert [m.name for m in engine.subsystems] == [e.name for e in registry.MODELS]
    assert set(engine.meta()["totals"]) <= set(registry.totals_catalog())
    assert set(engine.commands()) | {s.name for s in SERVER_COMMANDS} == set(
        registry.command_catalog())


@dataclass(frozen=True)
class BeaconParams:
    """A toy beacon: one table, one field, one command, one total."""

    power_w: float = field(default=2.0, metadata={"unit": "W", "min": 0.0, "max": 100.0})


class Beacon:
    """A model added the documented way: its module and one registry entry."""

    name = "beacon"
    reads: tuple[str, ...] = ("orbit",)
    publishes = None

    def __init__(self, scenario: Any) -> None:
        self.params = parse_section(BeaconParams, scenario, "beacon")
        n = len(scenario.satellites)
        self.power = make_field("beacon_power_w", "<f4", (n,), "W", "beacon transmit power")

    def fields(self) -> list[Field]:
        return [self.power]

    def step(self, ctx: StepContext) -> None:
        # Transmits in sunlight only: reads orbit's outputs, typed.
        np.multiply(ctx.orbit.sunlit_frac, self.params.power_w, out=self.power.array)

    def fleet(self) -> dict[str, float]:
        return {"beacon_total_w": float(self.power.array.sum())}

    def meta(self) -> dict[str, Any]:
        return {}

    def commands(self) -> dict[str, CommandHandler]:
        return {"beacon_off": lambda request: ok(sat=request["sat"])}


def test_a_model_added_to_the_registry_alone_gets_table_docs_command_total_and_field(
        monkeypatch) -> None:
    beacon = ModelEntry(
        "beacon", lambda b: Beacon(b.scenario), sections=(("beacon", BeaconParams),),
        commands=(CommandSpec("beacon_off", "silence a node's beacon", "operational",
                              (sat_arg("the node"),)),),
        totals={"beacon_total_w": ("W", "beacon power of the fleet")})
    monkeypatch.setattr(registry, "MODELS", (*registry.MODELS, beacon))
    with open(load_scenario("default").source, encoding="utf-8") as handle:
        text = handle.read() + "\n[beacon]\npower_w = 5.0\n"
    scenario = parse_scenario(text, "beacon.toml")  # the loader knows the table now
    assert "### `[beacon]`" in paramdoc.reference()  # and the parameter docs
    engine = Engine(scenario, SimClock(scenario.epoch_utc, 1.0, 60.0, fast=True))
    engine.step()
    assert "beacon_power_w" in [f["name"] for f in engine.meta()["fields"]]
    assert engine.meta()["totals"]["beacon_total_w"]["unit"] == "W"
    assert engine.header()["fleet"]["beacon_total_w"] > 0.0
    assert engine.command_specs()["beacon_off"].significance == "operational"
    name = scenario.satellites[2].name
    assert engine.run_command({"cmd": "beacon_off", "sat": name})["sat"] == 2
    # Its table is checked against its dataclass when the model is built.
    bad = parse_scenario(text.replace("power_w = 5.0", "power_w = -1.0"), "beacon.toml")
    with pytest.raises(ScenarioError, match=r"beacon\.power_w"):
        Engine(bad, SimClock(bad.epoch_utc, 1.0, 60.0, fast=True))

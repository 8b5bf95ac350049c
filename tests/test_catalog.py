"""The catalogs in meta: every field and fleet total says how to read and show it."""

from __future__ import annotations

import pytest

from twin.core.clock import SimClock
from twin.core.engine import Engine
from twin.protocol.catalog import display_of, kind_of
from twin.scenario import load_scenario


@pytest.fixture(scope="module", params=["default", "starlink"])
def engine(request) -> Engine:
    scenario = load_scenario(request.param)
    return Engine(scenario, SimClock(scenario.epoch_utc, 1.0, 1.0))


def test_every_field_and_total_has_a_complete_entry(engine: Engine) -> None:
    meta = engine.meta()
    for entry in meta["fields"]:
        assert {"unit", "kind", "labels", "display"} <= set(entry), entry["name"]
        if entry["kind"] in ("enum", "bitmask"):
            assert entry["labels"], f"{entry['name']}: an {entry['kind']} needs labels"
    assert set(meta["totals"]) == set(engine.header()["fleet"])
    for name, entry in meta["totals"].items():
        assert entry["unit"] and entry["description"], name
        assert entry["display"]["scale"] > 0, name


def test_labels_name_what_the_twin_publishes(engine: Engine) -> None:
    fields = {f["name"]: f for f in engine.meta()["fields"]}
    assert fields["throttle_code"]["labels"]["1"] == "thermal"
    assert fields["fault_flags"]["labels"] == {"1": "accelerator", "2": "radiator",
                                               "4": "battery", "8": "solar"}
    assert fields["status"]["labels"]["0"]
    assert engine.meta()["totals"]["scheduler_policy_code"]["labels"] == {
        "0": "first_fit", "1": "sun_aware", "2": "network_aware"}


def test_display_rules() -> None:
    assert display_of("K") == {"unit": "°C", "scale": 1.0, "offset": -273.15, "prefix": False}
    assert display_of("1")["unit"] == "%" and display_of("1")["scale"] == 100.0
    assert display_of("W")["prefix"] and not display_of("km")["prefix"]
    assert display_of("PFLOP/s") == {"unit": "FLOP/s", "scale": 1e15, "offset": 0.0,
                                     "prefix": True}
    assert kind_of("code") == "enum" and kind_of("K") == "quantity"


def test_a_total_nobody_declared_stops_the_twin_at_start(monkeypatch) -> None:
    from twin.models.limits import LimitsModel

    original = LimitsModel.fleet
    monkeypatch.setattr(LimitsModel, "fleet", lambda self: {**original(self), "n_mystery": 1.0})
    scenario = load_scenario("default")
    with pytest.raises(ValueError, match=r"n_mystery.*does not declare"):
        Engine(scenario, SimClock(scenario.epoch_utc, 1.0, 1.0))


def test_a_total_two_models_publish_stops_the_twin_at_start(monkeypatch) -> None:
    from twin.models.limits import LimitsModel

    original = LimitsModel.fleet
    monkeypatch.setattr(LimitsModel, "fleet", lambda self: {**original(self), "n_sats": 1.0})
    scenario = load_scenario("default")
    with pytest.raises(ValueError, match="'n_sats' is published by both 'orbit' and 'limits'"):
        Engine(scenario, SimClock(scenario.epoch_utc, 1.0, 1.0))


"""``odc.client.Twin`` and the ``twin`` fixture against a real twin on loopback ports:
methods made from the command catalog (a command added to it is a method with no code
change), arguments refused before sending with the catalog's rule, the twin's refusals
raised with its words, the stream as states, waiting, and keys."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pytest

from odc.client import (
    CommandArgumentError,
    ConfirmationRequired,
    State,
    Twin,
    TwinCommandError,
)
from odc.local_twin import LocalTwin, local_twin
from twin.core.registry import ModelEntry
from twin.core.subsystem import Field, StepContext
from twin.models.registry import MODELS
from twin.protocol.codec import ok
from twin.protocol.commands import Arg, CommandSpec, sat_arg

FAST = {"warp": 3000.0, "rate_hz": 100.0}  # 30 s steps, 100 a wall second


def rejected(twin: Twin) -> int:
    return twin.status()["counters"]["commands_rejected"]


@pytest.mark.twin_scenario("default", **FAST)
def test_every_catalog_command_is_a_method_with_the_catalogs_arguments(twin: Twin) -> None:
    assert {"inject_fault", "set_power_cap", "ack_alarm", "rule_list"} <= set(twin.catalog)
    for name, entry in twin.catalog.items():
        method = getattr(twin, name)
        if name in ("status", "confirm"):  # the class's own, with the same effect
            continue
        if name == "subscribe":  # the class's own reads the stream; the command is call()'s
            assert "fields" in inspect.signature(method).parameters
            continue
        params = inspect.signature(method).parameters
        assert list(params) == [*entry["args"], "confirmed"], name
        for arg, declared in entry["args"].items():
            assert (params[arg].default is inspect.Parameter.empty) == declared["required"]
        assert entry["summary"] in method.__doc__
    doc = twin.set_power_cap.__doc__
    assert "power_w (number, in [0" in doc and "W" in doc and "None clears it" in doc


class Beacon:
    """A model that exists only in this test: no table, no field, one command."""

    name = "beacon"
    reads: tuple[str, ...] = ()
    publishes = None

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def fields(self) -> list[Field]:
        return []

    def step(self, ctx: StepContext) -> None:
        pass

    def fleet(self) -> dict[str, float]:
        return {}

    def meta(self) -> dict[str, Any]:
        return {}

    def commands(self) -> dict[str, Any]:
        def beacon_ping(request: dict[str, Any]) -> dict[str, Any]:
            self.sent.append(request)
            return ok(sat=request["sat"], times=request.get("times", 1))
        return {"beacon_ping": beacon_ping}


BEACON = ModelEntry("beacon", lambda built: Beacon(), commands=(CommandSpec(
    "beacon_ping", "ping a node's beacon a few times", "operational", (
        sat_arg("the node"), Arg("times", "integer", "pings", min=1, max=5, default=1)),
    role="operator"),))


def test_a_command_added_to_the_catalog_is_a_method_with_no_code_change() -> None:
    with local_twin("default", models=(*MODELS, BEACON), **FAST) as served, \
            served.client() as twin:
        assert "beacon_ping" in twin.catalog
        assert "ping a node's beacon" in twin.beacon_ping.__doc__
        assert "times (integer, in [1, 5]" in twin.beacon_ping.__doc__
        name = twin.twin_meta["sats"]["names"][2]
        assert twin.beacon_ping(sat=name, times=3) == {"ok": True, "sat": 2, "times": 3}
        before = rejected(twin)
        with pytest.raises(CommandArgumentError, match=r"beacon_ping: 'times' = 9 out of "
                                                       r"range \[1, 5\]"):
            twin.beacon_ping(sat=2, times=9)
        assert rejected(twin) == before  # refused here, never sent
    with local_twin("default", **FAST) as served, served.client() as twin:
        assert not hasattr(twin, "beacon_ping")  # a twin without it: no such method
        with pytest.raises(CommandArgumentError, match="no such command"):
            twin.call("beacon_ping", sat=2)


@pytest.mark.twin_scenario("default", **FAST)
def test_bad_arguments_are_refused_before_sending_with_the_catalogs_rule(twin: Twin) -> None:
    before = rejected(twin)
    cases = [
        (dict(sat=3, power_w=-5.0), r"'power_w' = -5 out of range \[0, "),
        (dict(sat=3, power_kw=5.0), r"takes no argument 'power_kw'.*power_w"),
        (dict(sat="no-such-node", power_w=5.0), r"no satellite named 'no-such-node'"),
        (dict(power_w=5.0), r"needs 'sat'"),
        (dict(sat=True, power_w=5.0), r"'sat' must be a satellite index"),
    ]
    for arguments, message in cases:
        with pytest.raises(CommandArgumentError, match=message):
            twin.set_power_cap(**arguments)
    with pytest.raises(TypeError, match="keyword arguments only"):
        twin.set_power_cap(3, 5.0)
    with pytest.raises(CommandArgumentError, match="did you mean 'set_power_cap'"):
        twin.call("set_power_cal", sat=3)
    assert rejected(twin) == before
    # numpy values are sent as plain numbers
    assert twin.set_power_cap(sat=np.int64(3), power_w=np.float32(4000.0))["ok"]


@pytest.mark.twin_scenario("default", **FAST)
def test_the_twins_refusal_raises_with_its_error_text(twin: Twin) -> None:
    with pytest.raises(TwinCommandError) as refused:
        twin.cancel_job(job_id=987654)
    assert refused.value.cmd == "cancel_job" and refused.value.reply["ok"] is False
    assert refused.value.error and refused.value.error in str(refused.value)
    with pytest.raises(ConfirmationRequired) as held:
        twin.inject_fault(sat=3, kind="radiator", health_frac=0.5)
    assert "3" in held.value.summary or "node" in held.value.summary
    assert twin.confirm(held.value.token)["ok"] is True
    with pytest.raises(TwinCommandError, match="token"):
        twin.call("confirm", token=held.value.token)  # used once


@pytest.mark.twin_scenario("default", **FAST)
def test_subscribe_yields_states_with_only_the_fields_asked_for(twin: Twin) -> None:
    states = twin.subscribe(["soc_frac", "temp_junction_k"])
    first, second = next(states), next(states)
    assert len(twin.subscriptions()["subscriptions"]) == 1
    again = twin.subscribe(["soc_frac", "temp_junction_k"])  # the same, a second reader
    next(again)
    states.close()  # the other iterator still reads it: kept
    assert len(twin.subscriptions()["subscriptions"]) == 1
    next(again)
    again.close()  # the last: let go at once
    assert twin.subscriptions()["subscriptions"] == []
    assert isinstance(first, State) and set(first.values) == {"soc_frac", "temp_junction_k"}
    assert first["soc_frac"].shape == (twin.twin_meta["sats"]["n"],)
    assert second.t_utc > first.t_utc and "n_sats" in first.fleet
    with pytest.raises(KeyError, match="subscribe to it"):
        first["alt_km"]
    with pytest.raises(ValueError, match="did you mean 'soc_frac'"):
        next(twin.subscribe(["soc_frc"]))
    with Twin(twin.command_address) as commands_only, \
            pytest.raises(ValueError, match=r"Twin\(address, stream=\.\.\.\)"):
        commands_only.wait_for("soc_frac", ">", 0.5)


@pytest.mark.twin_scenario("default", **FAST)
def test_wait_for_a_callable_or_a_field_condition_and_its_timeouts(twin: Twin) -> None:
    start = twin.status()["t_utc"]
    later = twin.wait_for(lambda state: state.t_utc >= start + 600.0, timeout_s=10.0)
    assert later.t_utc >= start + 600.0
    node3 = twin.twin_meta["sats"]["names"][3]
    state = twin.wait_for("soc_frac", ">=", 0.0, unit="%", sat=node3, timeout_s=10.0)
    assert state["soc_frac"][3] >= 0.0
    with pytest.raises(TimeoutError, match=r"temp_junction_k > 500 degC on node 3 did not "
                                           r"hold within 120 simulated s.*temp_junction_k ="):
        twin.wait_for("temp_junction_k", ">", 500.0, unit="degC", sat=3, within_s=120.0)
    for bad, message in [(("alt_kms", ">", 1.0), "did you mean 'alt_km'"),
                         (("alt_km", "=>", 1.0), "not an operator"),
                         (("alt_km", ">", 1.0, "degC"), "does not convert")]:
        with pytest.raises(ValueError, match=message):
            twin.wait_for(*bad[:3], unit=bad[3] if len(bad) > 3 else None)


@pytest.mark.parametrize("twin", [{"scenario": "default", "paused": True, **FAST}],
                         indirect=True)
def test_the_fixture_takes_its_options_by_parametrization(twin: Twin,
                                                          twin_server: LocalTwin) -> None:
    assert twin.status()["paused"] is True
    assert twin_server.audit_path is not None and twin_server.audit_path.exists()


@pytest.mark.twin_scenario("default", keys={"eve": ["operator"]}, **FAST)
def test_with_keys_the_client_speaks_curve_and_the_twin_checks_its_role(
        twin: Twin, twin_server: LocalTwin) -> None:
    assert twin.keys is not None and twin.status()["scenario"] == "default"
    with pytest.raises(TwinCommandError, match="needs role 'engineer'; key 'eve'"):
        twin.set_power_cap(sat=3, power_w=4000.0)
    # without a key the twin refuses the handshake: no catalog, a clear error
    with pytest.raises(TwinCommandError, match="meta"):
        Twin(twin_server.addresses.command, timeout_s=1.0)

"""``retire_node``: an engineer takes a node out of service before its end of life (issue
20's lifecycle, commanded): it is hazardous (confirmed), done at the next step as at end of
life, and refused with a clear reason where it cannot apply."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zmq

from tests.computeutil import command
from tests.twinutil import connected, request, running_twin, subscribed, wait_event
from twin.core.clock import SimClock
from twin.core.engine import Engine
from twin.core.subsystem import CommandRejected
from twin.models.lifecycle.model import DERELICT, DISPOSED, OPERATING
from twin.scenario import parse_scenario

DEFAULT = Path(__file__).resolve().parent.parent / "assets" / "scenarios" / "default.toml"
LIFECYCLE = "\n[lifecycle]\ndensity_model = \"table\"\n"


def _engine(lifecycle: bool = True) -> Engine:
    scenario = parse_scenario(DEFAULT.read_text() + (LIFECYCLE if lifecycle else ""))
    return Engine(scenario, SimClock(scenario.epoch_utc, 1.0, 60.0, fast=True),
                  control_period_s=60.0)


def test_a_retired_node_leaves_service_at_the_next_step_and_draws_nothing() -> None:
    eng = _engine()
    lc = eng.models["lifecycle"]
    eng.step()
    eng.events.drain()
    reply = command(eng, "retire_node", sat=5)
    assert reply == {"ok": True, "sat": 5, "effective": "next step"}
    assert lc.state.array[5] == OPERATING  # not before the step
    eng.step()
    assert lc.state.array[5] in (DISPOSED, DERELICT)
    assert np.all(np.delete(lc.state.array, 5) == OPERATING)
    events = eng.events.drain()
    retired = [e for e in events if e["kind"] == "retired"]
    assert len(retired) == 1 and retired[0]["sat"] == 5
    assert "retired by command" in retired[0]["message"]
    (disposal,) = [e for e in events if e["kind"] in ("disposal", "disposal_failed")]
    assert disposal["sat"] == 5
    if disposal["kind"] == "disposal":  # default nodes at 550-650 km, the FCC's 5 years
        burned = lc.alt0_km[5] > lc.alt.array[5]
        assert ("disposal burn towards" in disposal["message"]) == burned, disposal
        assert ("no burn needed" in disposal["message"]) == (not burned), disposal
        assert " to " not in disposal["message"].split("predicted in")[1]  # one node
        assert disposal["message"].endswith(" yr")
    assert lc.lost.array[5] == lc.installed  # its accelerators are out of service for good
    eng.step()  # compute and power read the lifecycle's last step
    wire = {f.spec.name: f.array for f in eng.fields}
    assert wire["compute_power_w"][5] == 0.0 and wire["p_load_w"][5] == 0.0
    assert wire["compute_power_w"][4] > 0.0 and wire["p_load_w"][4] > 0.0


def test_retire_node_is_refused_where_it_cannot_apply() -> None:
    eng = _engine()
    eng.step()
    command(eng, "retire_node", sat=2)
    name = eng.scenario.satellites[2].name
    with pytest.raises(CommandRejected, match=f"{name}: its retirement is already commanded"):
        command(eng, "retire_node", sat=2)
    eng.step()
    with pytest.raises(CommandRejected, match=rf"{name} is already out of service \("):
        command(eng, "retire_node", sat=2)
    with pytest.raises(CommandRejected, match="'sat' must be one satellite here, not \"all\""):
        command(eng, "retire_node", sat="all")  # one node at a time
    without = _engine(lifecycle=False)
    with pytest.raises(CommandRejected, match=r"no \[lifecycle\] table"):
        command(without, "retire_node", sat=2)


def test_retire_node_over_the_wire_is_confirmed_then_done() -> None:
    scenario = parse_scenario(DEFAULT.read_text() + LIFECYCLE)
    name = scenario.satellites[7].name
    with running_twin(scenario, paused=True) as twin, \
            connected(zmq.REQ, twin.addresses.command) as req, \
            connected(zmq.SUB, twin.addresses.pub) as sub:
        sub.setsockopt(zmq.SUBSCRIBE, b"event")
        subscribed(sub, req)
        assert "retire_node" in request(req, {"cmd": "commands"})["commands"]
        catalog = twin.server.command_specs["retire_node"].entry()  # meta.commands
        assert catalog["significance"] == "hazardous" and catalog["role"] == "engineer"
        first = request(req, {"cmd": "retire_node", "sat": name})
        assert first["ok"] is False and first["confirm_required"] is True, first
        assert name in first["summary"]
        done = request(req, {"cmd": "confirm", "token": first["token"]})
        assert done == {"ok": True, "sat": 7, "effective": "next step"}, done
        assert request(req, {"cmd": "step"})["ok"]
        event = wait_event(sub, "retired")
        assert event.header["sat"] == 7 and name in event.header["message"]
        assert twin.engine.models["lifecycle"].state.array[7] != OPERATING
        # What would be refused anyway is refused at once: nothing held to confirm.
        again = request(req, {"cmd": "retire_node", "sat": name})
        assert again["ok"] is False and "confirm_required" not in again, again
        assert f"{name} is already out of service" in again["error"]
    without = parse_scenario(DEFAULT.read_text())
    with running_twin(without, paused=True) as twin, \
            connected(zmq.REQ, twin.addresses.command) as req:
        refused = request(req, {"cmd": "retire_node", "sat": 3})
        assert refused["ok"] is False and "confirm_required" not in refused, refused
        assert "no [lifecycle] table" in refused["error"]

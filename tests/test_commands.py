"""The command catalog: every command declared once, checked before its handler runs."""

from __future__ import annotations

import pytest
from twinutil import make_server

from twin.models.registry import command_catalog
from twin.protocol.codec import pack, unpack
from twin.protocol.commands import ARG_TYPES, SIGNIFICANCE, check_catalog


@pytest.fixture(scope="module")
def server():
    twin = make_server("default", paused=True)
    yield twin
    twin.close()


def test_every_command_is_declared_and_meta_carries_the_catalog(server) -> None:
    catalog = unpack(server.handle_command_bytes(pack({"cmd": "meta"}))["meta"])["commands"]
    assert set(catalog) == set(server.command_specs) == set(server.handlers) | {"confirm"}
    for name, entry in catalog.items():
        assert entry["significance"] in SIGNIFICANCE, name
        assert entry["summary"], name
        for arg, spec in entry["args"].items():
            assert spec["type"] in ARG_TYPES, (name, arg)
    assert catalog["inject_fault"]["significance"] == "hazardous"
    assert catalog["status"]["significance"] == "informational"
    assert catalog["warp"]["args"]["value"] == {
        "type": "number", "description": "the new warp", "required": True, "unit": "s/s",
        "min": 1e-3, "max": 1e5}


@pytest.mark.parametrize(("request_map", "expected"), [
    ({"cmd": "submit_job", "priority": 1.5}, "'priority' must be an integer in [-1000, 1000]"),
    ({"cmd": "submit_job", "kind": {"a": 1}}, "'kind' must be one of training, inference"),
    ({"cmd": "set_power_cap", "sat": True}, "'sat' must be a satellite index, name or NORAD"),
    ({"cmd": "inject_upset", "sat": 0, "reset": 1}, "'reset' must be true or false"),
    ({"cmd": "warp"}, "needs 'value': a number in [0.001, 100000] s/s"),
    ({"cmd": "step", "n": 2**63 - 1}, "'n' = 9223372036854775807 out of range [1, 100000]"),
    ({"cmd": "step", "n": 2.0}, "'n' must be an integer in [1, 100000], got 2.0"),
    ({"cmd": "pause", "now": True}, "unexpected argument(s) 'now'; takes no arguments"),
])
def test_the_catalog_refuses_before_the_handler_runs(server, request_map, expected) -> None:
    reply = server.handle_command_bytes(pack(request_map))
    assert reply["ok"] is False
    assert expected in reply["error"], reply["error"]


def test_a_command_nobody_declared_stops_the_twin_at_start() -> None:
    with pytest.raises(ValueError, match="frobnicate"):
        catalog = command_catalog()
        check_catalog(catalog, {*catalog, "frobnicate"})


def test_a_satellite_is_named_one_way_everywhere(server) -> None:
    sats = server.engine.scenario.satellites
    target = sats[3]
    for name in (3, target.name, str(target.norad_id)):
        reply = server.handle_command_bytes(pack({"cmd": "clear_fault", "sat": name}))
        assert reply["ok"] is True and reply["sat"] == 3, (name, reply)
    for bad, expected in ((len(sats), f"index {len(sats)} out of range"),
                          ("no-such-node", "no satellite named 'no-such-node'"),
                          (-1, "'sat' must be a satellite index, name or NORAD id")):
        reply = server.handle_command_bytes(pack({"cmd": "clear_fault", "sat": bad}))
        assert reply["ok"] is False and expected in reply["error"], (bad, reply)
    # Where "all" is declared, it is a value (and every node at once needs confirming).
    reply = server.handle_command_bytes(pack({"cmd": "set_power_cap", "sat": "all",
                                              "power_w": None}))
    assert reply["ok"] is False and reply["confirm_required"] is True, reply
    assert "on every node" in reply["summary"]

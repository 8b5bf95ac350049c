"""The worked procedure of docs/procedures.md, run against a real twin over its command
socket: a radiator fault on node 3, the default rule junction_hot caps it, the alarm is
raised and acknowledged, and the audit names the rule."""

from __future__ import annotations

import json
import time
from pathlib import Path

import zmq

from tests.twinutil import connected, request, running_twin


def test_radiator_fault_procedure(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    with running_twin("default", fast=True, audit_path=audit) as twin, \
            connected(zmq.REQ, twin.addresses.command) as sock:
        reply = request(sock, {"cmd": "inject_fault", "sat": 3, "kind": "radiator",
                               "health_frac": 0.5})
        assert reply["confirm_required"], reply
        assert request(sock, {"cmd": "confirm", "token": reply["token"]})["ok"]
        deadline = time.monotonic() + 60.0  # wall; a fast twin covers hours in that
        fired = 0
        while time.monotonic() < deadline and not fired:
            rules = request(sock, {"cmd": "rule_list"})["rules"]
            fired = next(r["firings"] for r in rules if r["name"] == "junction_hot")
            time.sleep(0.1)
        assert fired >= 1, "junction_hot never fired on the faulted node"
        alarms = request(sock, {"cmd": "alarms"})["alarms"]
        ours = [a for a in alarms if a["kind"] == "rule_fired" and a["sat"] == 3
                and a["parameter"] == "junction_hot"]
        assert ours, alarms
        acked = request(sock, {"cmd": "ack_alarm", "parameter": "junction_hot", "sat": 3,
                               "comment": "radiator fault rehearsal"})
        assert acked["ok"] and acked["acknowledged"] >= 1
        request(sock, {"cmd": "pause"})
    lines = [json.loads(x) for x in audit.read_text().splitlines()]
    by_rule = [a for a in lines if a["key"] == "rule:junction_hot"]
    assert by_rule[0]["cmd"] == "set_power_cap" and by_rule[0]["args"] == {
        "sat": 3, "power_w": 8000.0} and by_rule[0]["peer"] == "on-board"
    assert {a["args"]["sat"] for a in by_rule} == {3}  # only the faulted node

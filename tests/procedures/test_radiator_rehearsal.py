"""Procedure: a radiator of node 3 degrades; within a minute of its junction passing 83 degC
the on-board rule junction_hot caps the node at 8 kW; the alarm is seen and acknowledged."""

import json

import pytest

from odc.client import Twin
from odc.local_twin import LocalTwin


@pytest.mark.twin_scenario("default", warp=3000.0, rate_hz=100.0)  # 30 s steps, fast
def test_radiator_fault_is_capped_by_the_rule_and_acknowledged(
        twin: Twin, twin_server: LocalTwin) -> None:
    # inject_fault is hazardous: confirmed=True confirms it with the twin's token
    twin.inject_fault(sat=3, kind="radiator", health_frac=0.5, confirmed=True)

    # the junction passes junction_hot's threshold (83 degC) ...
    hot = twin.wait_for("temp_junction_k", ">", 83.0, unit="degC", sat=3, timeout_s=20.0)
    # ... and within 60 s of simulated time the rule has capped the node at 8 kW
    capped = twin.wait_for("compute_cap_w", "<=", 8000.0, sat=3,
                           since_t_utc=hot.t_utc, within_s=60.0)
    assert capped["compute_cap_w"][3] == 8000.0

    # the firing is an event and an alarm of node 3 ...
    fired = twin.wait_for_event("rule_fired", sat=3, rule="junction_hot")
    assert fired["t_utc"] - hot.t_utc <= 60.0
    alarm = twin.wait_for_alarm(kind="rule_fired", sat=3, parameter="junction_hot")
    assert alarm["state"] == "active_unack"
    # ... which the operator acknowledges
    twin.ack_alarm(ids=[alarm["id"]], comment="radiator fault rehearsal")
    assert twin.wait_for_alarm(id=alarm["id"])["state"] == "active_ack"

    # the audit names the rule as the actor of the cap
    audit = [json.loads(line) for line in twin_server.audit_path.read_text().splitlines()]
    by_rule = [line for line in audit if line["key"] == "rule:junction_hot"]
    assert by_rule[0]["args"] == {"sat": 3, "power_w": 8000.0}

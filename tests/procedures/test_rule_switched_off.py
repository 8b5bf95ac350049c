"""Procedure: with junction_hot switched off a hot node runs uncapped; switched on again,
the rule caps it."""

import pytest

from odc.client import Twin


@pytest.mark.twin_scenario("default", warp=3000.0, rate_hz=100.0)
def test_a_switched_off_rule_does_not_act_until_switched_on(twin: Twin) -> None:
    twin.rule_disable(rule="junction_hot")
    twin.inject_fault(sat=3, kind="radiator", health_frac=0.5, confirmed=True)
    hot = twin.wait_for("temp_junction_k", ">", 83.0, unit="degC", sat=3, timeout_s=20.0)

    # ten simulated minutes hot, and no cap: wait_for gives up with a TimeoutError
    with pytest.raises(TimeoutError, match="did not hold within 600 simulated s"):
        twin.wait_for("compute_cap_w", "<=", 8000.0, sat=3,
                      since_t_utc=hot.t_utc, within_s=600.0)

    twin.rule_enable(rule="junction_hot")
    rules = {rule["name"]: rule for rule in twin.rule_list()["rules"]}
    assert rules["junction_hot"]["enabled"]
    twin.wait_for("compute_cap_w", "<=", 8000.0, sat=3, timeout_s=20.0)

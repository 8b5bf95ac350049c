"""Procedure: cap node 3 at 4 kW at its next eclipse entry, with a timeline entry added at
run time, and see it run within one step of the entry."""

import pytest

from odc.client import Twin


@pytest.mark.twin_scenario("default", warp=3000.0, rate_hz=100.0)
def test_a_cap_scheduled_at_the_next_eclipse_entry(twin: Twin) -> None:
    entry = twin.timeline_add(
        name="cap node 3 in eclipse", event="eclipse_entry", sat=3,
        command={"cmd": "set_power_cap", "sat": 3, "power_w": 4000.0})
    assert entry["ok"]

    # node 3 is (or comes) out in the sun, then enters eclipse (less than half the Sun's
    # disc visible) ...
    lit = twin.wait_for("sunlit_frac", ">=", 0.5, sat=3, timeout_s=20.0)
    dark = twin.wait_for("sunlit_frac", "<", 0.5, sat=3, since_t_utc=lit.t_utc,
                         timeout_s=20.0)
    # ... and the entry runs at most one step (30 s here) after it
    capped = twin.wait_for("compute_cap_w", "<=", 4000.0, sat=3,
                           since_t_utc=dark.t_utc, within_s=30.0)
    assert capped["compute_cap_w"][3] == 4000.0
    assert twin.timeline_list()["entries"] == []  # it ran: nothing pending

"""Downlink: results leave only during contacts, oldest first, at the station's rate."""

from __future__ import annotations

import numpy as np
import pytest

from twin.core.clock import SimClock
from twin.core.engine import Engine
from twin.models.compute.downlink import ResultStore
from twin.scenario import ASSETS_DIR, parse_scenario

ONE_BYTE = 1.0


def test_fifo_within_a_node_at_the_link_rate() -> None:
    store = ResultStore(2, np.array([8.0e6]))  # 1 MB/s
    store.add(0, 3.0e6, ready_t=10.0, job_id=2)
    store.add(0, 1.0e6, ready_t=5.0, job_id=1)  # older: goes first
    store.add(1, 1.0e6, ready_t=1.0, job_id=3)  # node 1 never in contact
    contact = np.array([0, -1], dtype=np.int16)
    delivered = store.step(20.0, 2.0, contact, None)
    assert delivered.tolist() == [2.0e6, 0.0]
    assert store.delivered_results == 1
    assert store.backlog.array.tolist() == [2.0e6, 1.0e6]
    assert store.oldest_age.array[0] == pytest.approx(10.0)  # job 2, ready at 10 s
    assert store.oldest_age.array[1] == pytest.approx(19.0)
    delivered = store.step(22.0, 2.0, np.array([-1, -1], dtype=np.int16), None)
    assert delivered.tolist() == [0.0, 0.0]  # no contact, nothing leaves
    relay = np.array([0.0, 8.0e6])
    delivered = store.step(24.0, 1.0, np.array([0, -1], dtype=np.int16), relay)
    assert delivered.tolist() == [1.0e6, 1.0e6]  # a relay link adds to the station link
    assert store.fleet(24.0)["results_delivered"] == 2


def test_results_reach_the_ground_only_in_contact_and_at_the_link_rate() -> None:
    """Full twin on the default scenario: a big result on one node, stepped over passes."""
    # No jobs at all, so the only result in the store is the one placed below.
    path = ASSETS_DIR / "scenarios" / "default.toml"
    text = path.read_text() + "\n[workload]\narrivals_per_node_h = 0.0\ninitial_backlog_h = 0.0\n"
    scenario = parse_scenario(text, source=str(path), base_dir=path.parent)
    clock = SimClock(scenario.epoch_utc, rate_hz=1.0, warp=10.0, fast=True)
    eng = Engine(scenario, clock)
    store = eng.compute_model.results
    node = 30  # a dawn-dusk node: passes over Svalbard, Kiruna and Fairbanks
    store.add(node, 5.0e12, ready_t=clock.t_utc, job_id=999)
    rates = np.array([s.downlink_bps for s in scenario.stations])
    sent_steps = 0
    for _ in range(1200):  # 200 min: two orbits
        before = store.backlog.array[node]
        eng.step()
        sent = before - store.backlog.array[node]
        station = int(eng.quantity("contact_station")[node])
        expected = 0.0 if station < 0 else rates[station] * 10.0 / 8.0
        assert sent == pytest.approx(expected, abs=ONE_BYTE)
        sent_steps += station >= 0
    assert sent_steps > 10, "no contact in two orbits: the test proves nothing"
    assert store.fleet(clock.t_utc)["results_pending"] == 1

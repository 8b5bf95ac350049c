"""The twin's cluster-health summaries (docs/protocol.md, "Cluster health summaries"):
each per-cluster, per-group and per-job number against numpy over the per-node and
per-terminal rows of the same frame, on the bundled suncatcher scenario with one member
pushed out of its box and out of its links' range."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from twin.core.clock import SimClock
from twin.core.engine import Engine
from twin.models.compute.multinode import JOB_STATE_LABELS
from twin.scenario import load_scenario, parse_scenario

PUSHED = 40  # a member (not the chief) moved 20 km off its place: links lost, box left


@functools.cache
def stepped() -> tuple[Engine, dict[str, np.ndarray], list[dict]]:
    scenario = load_scenario("suncatcher")
    engine = Engine(scenario, SimClock(scenario.epoch_utc, 1.0, 60.0, fast=True))
    events: list[dict] = []
    for _ in range(4):
        engine.step()
    flown = engine.models["orbit"].formation
    row = int(np.flatnonzero(flown.sats == PUSHED)[0])
    flown.rel_pos_m[row] += 20e3 * flown.chief_pos_m[0] / np.linalg.norm(flown.chief_pos_m[0])
    for _ in range(3):
        engine.step()
        events += engine.events.drain()
    arrays = {f.spec.name: f.array.copy() for f in engine.fields}
    return engine, arrays, events


def test_formation_summaries_match_the_members_rows() -> None:
    engine, a, _ = stepped()
    cluster = engine.scenario.clusters[0]
    members = np.array(cluster.sat_ids)
    first, second = a["cluster_closest_pair"][0]
    assert a["nn_dist_m"][first] == a["cluster_min_dist_m"][0] == a["nn_dist_m"][members].min()
    assert a["nn_sat"][first] == second and first != second
    assert a["cluster_dv_max_m_s"][0] == a["dv_used_m_s"][members].max() > 0.0
    assert a["cluster_propellant_kg"][0] == pytest.approx(
        a["propellant_kg"][members].astype(np.float64).sum(), rel=1e-6)
    outside = a["box_error_m"][members[1:]] > cluster.spec.box_m
    assert a["cluster_box_violations"][0] == outside.sum() >= 1
    assert outside[PUSHED - 1]


def test_group_link_summaries_match_the_terminals_rows() -> None:
    engine, a, events = stepped()
    peer, state = a["link_peer"], a["link_state"]
    # Each link once: the row of its lower-numbered end (every node is in group SC).
    ends = (peer >= 0) & (peer > np.arange(peer.shape[0])[:, None])
    up = ends & (state == 2)
    assert a["group_links_up"][0] == up.sum() > 100
    assert a["group_links_acquiring"][0] == (ends & (state == 1)).sum()
    assert a["group_capacity_bps"][0] == pytest.approx(
        a["link_capacity_bps"][up].astype(np.float64).sum(), rel=1e-6)
    util = a["link_utilization_frac"][up].astype(np.float64)
    assert a["group_link_util_mean_frac"][0] == pytest.approx(util.mean(), abs=1e-6)
    assert a["group_link_util_max_frac"][0] == pytest.approx(util.max(initial=0.0), abs=1e-6)
    assert a["group_bisection_bps"][0] == engine.header()["fleet"]["isl_bisection_bps"]
    # The pushed member's links went: counted as lost, once each (the events list up to
    # 8 a step by name, then a count).
    lost = sum(e.get("n_links", 1) for e in events if e["kind"] == "link_lost")
    assert a["group_links_lost"][0] == lost >= 1
    assert not (peer[PUSHED] >= 0).any()


def test_job_summaries_match_the_members_rows() -> None:
    engine, a, _ = stepped()
    fleet = engine.header()["fleet"]
    state = a["multi_node_job_state"]
    assert state.shape == (1,)
    assert JOB_STATE_LABELS[int(state[0])] == ("stalled" if fleet["multi_node_stalled"]
                                               else "running")
    members = np.flatnonzero(a["multi_node_job"] == 1)
    assert a["multi_node_job_nodes"][0] == members.size == 16
    assert a["multi_node_job_first_sat"][0] == members[0]
    assert a["multi_node_job_comm_frac"][0] == a["multi_node_comm_frac"][members[0]] > 0.0
    assert a["multi_node_job_progress_frac"][0] == pytest.approx(
        fleet["multi_node_progress_frac"], rel=1e-6)
    assert a["multi_node_job_rollbacks"][0] == fleet["multi_node_rollbacks"]
    assert a["multi_node_job_bottleneck_bps"][0] == pytest.approx(
        engine.models["compute"].multinode.jobs[0].bottleneck_bps, rel=1e-6)


def test_a_scenario_without_clusters_or_jobs_has_none_of_them() -> None:
    scenario = load_scenario("default")
    engine = Engine(scenario, SimClock(scenario.epoch_utc, 1.0, 60.0, fast=True))
    names = {f.spec.name for f in engine.fields}
    assert not {n for n in names if n.startswith(("cluster_", "multi_node_job_", "group_l"))}


def test_group_link_summaries_per_group_with_two_clusters() -> None:
    from tests.test_formation import SMALL_CLUSTER

    second = SMALL_CLUSTER.split("[[cluster]]")[1].replace('name = "C"', 'name = "D"').replace(
        "ltan_h = 18.0", "inclination_deg = 53.0\nraan_deg = 40.0").replace(
        "members = 7", "members = 19")
    links = '\n[links]\npreset = "suncatcher"\nterminals_per_sat = 4\n'
    scenario = parse_scenario(SMALL_CLUSTER + "\n[[cluster]]" + second + links)
    engine = Engine(scenario, SimClock(scenario.epoch_utc, 1.0, 60.0, fast=True))
    for _ in range(3):
        engine.step()
    model = engine.models["links"]
    table = model.table
    group = np.repeat([0, 1], [7, 19])
    inside = group[table.a] == group[table.b]
    # Relay traffic seldom loads links within a cluster (all members see the same
    # stations): a made-up utilization per link exercises the per-group mean and maximum.
    util = np.random.default_rng(5).random(table.size)
    model._group_totals(util)
    for g in (0, 1):
        mine = inside & (group[table.a] == g)
        up = mine & model._up
        assert up.sum() == model.group_links.array[g] > 0
        assert model.group_acquiring.array[g] == (mine & ~model._up).sum()
        assert model.group_capacity.array[g] == pytest.approx(model._cap_bps[up].sum(), rel=1e-6)
        assert model.group_util_mean.array[g] == pytest.approx(util[up].mean(), rel=1e-6)
        assert model.group_util_max.array[g] == pytest.approx(util[up].max(), rel=1e-6)

"""Multi-node jobs pay for their checkpoints, and share their links with the relay traffic
of results (docs/models.md, "Checkpoint cost and shared links")."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from computeutil import QUIET, STATION, engine
from test_compute_multinode import (
    COMPUTE_S,
    GRADIENT_B,
    LATENCY_S,
    N_SATS,
    SIX,
    K,
    Stepper,
    ring_links,
    set_link,
)

from twin.models.compute import ComputeModel
from twin.models.links.routing import relay_tree
from twin.models.links.sharing import relay_capacity_bps, shared_utilization
from twin.scenario import ScenarioError, load_scenario

EXACT = 1e-9  # relative: the same float arithmetic as the hand formula
INTERVAL_S = 600.0  # tau, SIX's multi_node_checkpoint_interval_s
WRITE_S = 30.0  # C: 240 GB over 4 members, each writing 60 GB at 2 GB/s
CKPT = SIX.replace(f"multi_node_checkpoint_interval_s = {INTERVAL_S}",
                   f"multi_node_checkpoint_interval_s = {INTERVAL_S}\n"
                   "multi_node_checkpoint_bytes = 240.0e9\n"
                   "multi_node_checkpoint_write_bytes_s = 2.0e9")
CAP_BPS = 8e11  # ring_links' capacity


def iteration_s(bps: float) -> float:
    """One iteration by hand: compute, then Patarasuk & Yuan's ring over k members."""
    return COMPUTE_S + 2 * (K - 1) / K * GRADIENT_B * 8 / bps + 2 * (K - 1) * LATENCY_S


def training_s(run_s: float) -> float:
    """Training time in ``run_s`` of running: every period tau trains tau - C, then writes."""
    periods, into = divmod(run_s, INTERVAL_S)
    return periods * (INTERVAL_S - WRITE_S) + min(into, INTERVAL_S - WRITE_S)


def test_checkpoint_overhead_is_write_time_over_interval() -> None:
    run = Stepper(CKPT)
    links = ring_links()
    assert run.model.multinode.write_s == WRITE_S
    dt = 47.0  # steps that do not divide the interval: writes begin and end inside them
    steps = 256  # 12,032 s: 20 periods and 32 s of a 21st
    for _ in range(steps):
        run.step(dt, links)
    job = run.job
    total_s = steps * dt
    assert job.running_s == pytest.approx(total_s, rel=EXACT)
    # The time spent writing, by hand, and the overhead C / tau within one partial period.
    assert job.writing_s == pytest.approx(total_s - training_s(total_s), rel=EXACT)
    assert abs(job.writing_s / job.running_s - WRITE_S / INTERVAL_S) <= WRITE_S / total_s
    assert job.checkpoints == math.floor(total_s / INTERVAL_S) == 20
    # No training while writing: the iterations are the training time's.
    assert job.iterations == pytest.approx(training_s(total_s) / iteration_s(CAP_BPS),
                                           rel=EXACT)
    # The last checkpoint holds the state as its write began (20 tau - C).
    assert job.checkpoint_iterations == pytest.approx(
        training_s(20 * INTERVAL_S - WRITE_S) / iteration_s(CAP_BPS), rel=EXACT)
    fleet = run.model.fleet()
    assert fleet["multi_node_checkpoints"] == 20
    assert fleet["multi_node_checkpoint_frac"] == pytest.approx(job.writing_s / total_s)


@pytest.mark.parametrize("stall_at_s", [
    1290.0,  # training in the third period: 90 s since the second checkpoint's write began
    1785.0,  # writing the third checkpoint: that write never completes
])
def test_a_long_stall_loses_exactly_the_work_since_the_last_completed_checkpoint(
        stall_at_s: float) -> None:
    run = Stepper(CKPT)
    links = ring_links()
    dt = 15.0  # divides tau and tau - C: the stall begins exactly at stall_at_s
    for _ in range(round(stall_at_s / dt)):
        run.step(dt, links)
    job = run.job
    per_s = 1.0 / iteration_s(CAP_BPS)
    assert job.iterations == pytest.approx(training_s(stall_at_s) * per_s, rel=EXACT)
    assert job.checkpoints == 2
    cut = int(job.members[-1])
    isolated = ring_links()
    for other in isolated["link_peer"][cut]:
        set_link(isolated, cut, int(other), link_up=False)
    for _ in range(round(INTERVAL_S / dt) - 1):  # rides through up to the interval
        run.step(dt, isolated)
    assert job.stalled and job.rollbacks == 0
    run.step(dt, isolated)  # the stall reaches the interval: back to the checkpoint
    assert job.rollbacks == 1
    completed_s = 2 * (INTERVAL_S - WRITE_S)  # training in the two completed checkpoints
    assert job.iterations == pytest.approx(completed_s * per_s, rel=EXACT)
    assert job.lost_iterations == pytest.approx(
        (training_s(stall_at_s) - completed_s) * per_s, rel=EXACT)


def relay_on(links: dict[str, np.ndarray], a: int, b: int, bps: float) -> dict[str, object]:
    """The links with ``bps`` of relay traffic offered to the link a - b."""
    relay = np.zeros(links["link_peer"].shape)
    relay_links = {**links, "link_relay_bps": relay}
    set_link(relay_links, a, b, link_relay_bps=bps)
    return relay_links


@pytest.mark.parametrize(("relay_bps", "allreduce_bps"), [
    (0.0, CAP_BPS),
    (3e11, CAP_BPS - 3e11),  # relay flows: the all-reduce gets c - r
    (6e11, 0.5 * CAP_BPS),  # more than (1 - w) c: the all-reduce keeps w c (w = 0.5)
    (2e12, 0.5 * CAP_BPS),  # relay offered beyond the link: still w c
])
def test_relay_on_the_bottleneck_slows_the_job_by_the_sharing_rule(
        relay_bps: float, allreduce_bps: float) -> None:
    run = Stepper()
    links = ring_links()
    run.step(60.0, links)
    job = run.job
    members = job.members
    tree = job.tree_terminals
    assert tree.size == 2 * (K - 1)  # a path of k - 1 links, both ends of each
    a = int(tree[0] // 2)
    b = int(links["link_peer"].reshape(-1)[tree[0]])
    before = job.iterations
    run.step(60.0, links)
    free = job.iterations - before
    loaded = relay_on(links, a, b, relay_bps)
    run.step(60.0, loaded)  # its bottleneck is found from this step's relay
    before = job.iterations
    run.step(60.0, loaded)
    shared = job.iterations - before
    assert job.bottleneck_bps == allreduce_bps
    assert free == pytest.approx(60.0 / iteration_s(CAP_BPS), rel=EXACT)
    assert shared / free == pytest.approx(iteration_s(CAP_BPS) / iteration_s(allreduce_bps),
                                          rel=EXACT)
    # The all-reduce's mean load on each tree link, published for the links model, and
    # nowhere else: 2 (k - 1)/k 8 B per iteration.
    load = run.model.outputs.link_allreduce_bps
    expected = 2 * (K - 1) / K * 8 * GRADIENT_B / iteration_s(allreduce_bps)
    assert load.reshape(-1)[tree] == pytest.approx(np.full(tree.size, expected), rel=EXACT)
    assert np.count_nonzero(load) == tree.size
    assert set((tree // 2).tolist()) <= set(members.tolist())


def test_relay_off_the_job_links_does_not_slow_it() -> None:
    run = Stepper()
    links = ring_links()
    run.step(60.0, links)
    members = set(run.job.members.tolist())
    a = next(i for i in range(N_SATS) if i not in members)
    b = int(links["link_peer"][a, 1])
    before = run.job.iterations
    run.step(60.0, links)
    free = run.job.iterations - before
    before = run.job.iterations
    run.step(60.0, relay_on(links, a, b, 7e11))
    assert run.job.iterations - before == pytest.approx(free, rel=EXACT)


def test_shared_utilization_is_the_sum_and_never_exceeds_one() -> None:
    rng = np.random.default_rng(3)
    cap = rng.choice([0.0, 2.5e9, 8e11], size=4000)
    relay = rng.uniform(0.0, 2.0, size=4000) * cap
    allreduce = rng.uniform(0.0, 1.2, size=4000) * cap  # a is last step's: may exceed c now
    util = shared_utilization(cap, relay, allreduce)
    assert ((util >= 0.0) & (util <= 1.0)).all()
    assert (util[cap == 0.0] == 0.0).all()
    fits = (cap > 0.0) & (relay + allreduce <= cap)
    assert util[fits] == pytest.approx((relay[fits] + allreduce[fits]) / cap[fits], rel=1e-12)
    squeezed = (cap > 0.0) & (relay + allreduce > cap) & (allreduce <= cap)
    assert util[squeezed] == pytest.approx(np.ones(np.count_nonzero(squeezed)), rel=1e-12)
    # Relay alone: its share, up to the whole link.
    alone = shared_utilization(cap, relay, None)
    carrying = cap > 0.0
    assert alone[carrying] == pytest.approx(np.minimum(relay / np.where(carrying, cap, 1.0),
                                                       1.0)[carrying], rel=1e-12)


def test_relay_routes_get_what_the_all_reduce_leaves() -> None:
    """A chain 2 - 1 - 0 to a gateway (node 0, 10 Gb/s down): 2.5 Gb/s links, a job's
    all-reduce loading the link 1 - 0 with 2 Gb/s on average. Node 1 and node 2 relay at
    most c - a = 0.5 Gb/s; without the all-reduce, at the links' 2.5 Gb/s."""
    a, b = np.array([1, 2]), np.array([0, 1])
    cap = np.array([2.5e9, 2.5e9])
    gateway = np.array([10e9, 0.0, 0.0])
    latency = np.array([1e-3, 1e-3])
    alone = relay_tree(3, a, b, latency, relay_capacity_bps(cap, None), gateway)
    assert alone.relay_bps.tolist() == [0.0, 2.5e9, 2.5e9]
    shared = relay_tree(3, a, b, latency, relay_capacity_bps(cap, np.array([2e9, 0.0])),
                        gateway)
    assert shared.relay_bps.tolist() == [0.0, 0.5e9, 0.5e9]


# A Walker shell of 2.5 Gb/s SDA-class links, an 8-node job of a 125M-parameter model.
WALKER_JOB = """
[scenario]
name = "shell-job"
epoch = "2026-03-20T12:00:00Z"
seed = 7

[[walker]]
name = "w"
altitude_km = 550.0
inclination_deg = 53.0
planes = 6
sats_per_plane = 12
phasing = 1

[links]
terminals_per_sat = 4
preset = "sda"

[[station]]
name = "Wallops"
lat_deg = 37.94
lon_deg = -75.46
min_elevation_deg = 5.0
downlink_bps = 8.0e8
""" + STATION + QUIET.replace("[workload]\n", """[workload]
policy = "first_fit"
multi_node_jobs = 1
multi_node_nodes = 8
multi_node_gradient_bytes = 0.25e9
multi_node_compute_s = 2.0
""")


def test_a_running_job_and_stored_results_share_the_links_in_the_twin() -> None:
    """The whole twin: the job's all-reduce shows in its links' utilization, relayed results
    load the links too, and no link is ever more than fully used."""
    eng = engine(WALKER_JOB, dt_s=60.0)
    for _ in range(3):
        eng.step()
    multinode = eng.compute_model.multinode
    job = multinode.jobs[0]
    assert job.state == "running" and not job.stalled
    links = eng.models["links"]
    for node in range(len(eng.scenario.satellites)):  # 2 GB of results waiting everywhere
        eng.compute_model.results.add(node, 2.0e9, eng.clock.t_utc, job_id=10_000 + node)
    shared = False
    for _ in range(4):
        allreduce_before = job.allreduce_bps  # the links model reads compute's last step
        eng.step()
        util = links.utilization.array
        assert (util >= 0.0).all() and (util <= 1.0).all()
        if job.state != "running" or job.stalled:
            continue
        tree = job.tree_terminals
        cap = links.capacity.array.reshape(-1)[tree].astype(float)
        relay = links.outputs.link_relay_bps.reshape(-1)[tree]
        # The all-reduce got what the relay left it, and its load shows on its links.
        assert job.bottleneck_bps == pytest.approx(
            float(np.min(np.maximum(cap - relay, 0.5 * cap))), rel=1e-6)
        assert (util.reshape(-1)[tree] >= allreduce_before / cap * (1 - 1e-6)).all()
        shared |= bool(relay.max() > 0.0) and bool(allreduce_before > 0.0)
    assert shared  # relay and all-reduce on the same links in one step at least
    assert multinode.link_load_bps is eng.compute_model.outputs.link_allreduce_bps


@pytest.mark.parametrize(("extra", "key", "words"), [
    ("multi_node_min_link_share = 1.5", "workload.multi_node_min_link_share", "out of range"),
    ("multi_node_checkpoint_write_bytes_s = 0.0",
     "workload.multi_node_checkpoint_write_bytes_s", "out of range"),
    ("multi_node_checkpoint_bytes = -1.0", "workload.multi_node_checkpoint_bytes",
     "out of range"),
    ("multi_node_checkpoint_bytes = 5.0e12", "workload.multi_node_checkpoint_interval_s",
     "not longer than writing a checkpoint"),
])
def test_bad_checkpoint_and_sharing_keys_name_file_and_key(tmp_path: Path, extra: str,
                                                            key: str, words: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(SIX.replace("multi_node_jobs = 1", f"multi_node_jobs = 1\n{extra}"))
    with pytest.raises(ScenarioError) as err:
        ComputeModel(load_scenario(str(path)))
    message = str(err.value)
    assert str(path) in message and key in message and words in message, message

"""Multi-node jobs over the optical links: the ring all-reduce's cost, stalls, rollbacks,
connected placement and the scenario keys (docs/models.md, "Multi-node jobs over the
links")."""

from __future__ import annotations

import itertools
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from computeutil import STATION
from procutil import ANY_PORT, odc_process

from twin.core.clock import SimClock
from twin.core.engine import Engine
from twin.core.subsystem import EventLog, StepContext
from twin.models.compute import ComputeModel
from twin.models.compute.multinode import (
    MultiNodeJob,
    choose_group,
    link_graph,
    ring_allreduce_s,
    ring_bottleneck_bps,
)
from twin.scenario import ASSETS_DIR, ScenarioError, load_scenario, parse_scenario

RATE_TOL = 1e-9  # relative: the same float arithmetic as the hand formula
N_SATS = 6
K = 4
GRADIENT_B = 20e9
COMPUTE_S = 2.0
LATENCY_S = 1e-5
CHECKPOINT_S = 600.0

# Six nodes, multi-node jobs of four, arrivals and radiation off: the hand-checkable case.
SIX = f"""
[scenario]
name = "six"
epoch = "2026-03-20T12:00:00Z"
seed = 7

[[sun_synchronous]]
name = "dd"
altitude_km = 650.0
ltan_h = 18.0
planes = 1
sats_per_plane = {N_SATS}

[workload]
arrivals_per_node_h = 0.0
policy = "first_fit"
multi_node_jobs = 1
multi_node_nodes = {K}
multi_node_gradient_bytes = {GRADIENT_B}
multi_node_compute_s = {COMPUTE_S}
multi_node_step_latency_s = {LATENCY_S}
multi_node_checkpoint_interval_s = {CHECKPOINT_S}

[radiation]
see_scale = 0.0

[links]
preset = "suncatcher"
terminals_per_sat = 2
""" + STATION


def ring_links(capacity_bps: float = 8e11) -> dict[str, np.ndarray]:
    """A hand-made topology: the six nodes in a ring, two terminals each."""
    i = np.arange(N_SATS)
    peer = np.stack([(i - 1) % N_SATS, (i + 1) % N_SATS], axis=1).astype(np.int32)
    return {"link_peer": peer, "link_capacity_bps": np.full(peer.shape, capacity_bps),
            "link_up": np.ones(peer.shape, dtype=bool)}


def set_link(links: dict[str, np.ndarray], a: int, b: int, **values: object) -> None:
    """Change one link's value at both of its ends."""
    peer = links["link_peer"]
    for x, y in ((a, b), (b, a)):
        for name, value in values.items():
            links[name][x, peer[x] == y] = value


class Stepper:
    """Steps compute alone with given links, 60 s a step, and keeps the events."""

    def __init__(self, text: str = SIX, links: dict[str, np.ndarray] | None = None) -> None:
        self.model = ComputeModel(parse_scenario(text))
        self.rng = np.random.default_rng(1)
        self.t = self.model.scenario.epoch_utc.timestamp()
        self.events: list[dict] = []
        self.step(0.0, ring_links() if links is None else links)  # the epoch: places the job

    def step(self, dt: float, links: dict[str, np.ndarray]) -> None:
        self.t += dt
        log = EventLog(t_utc=self.t)
        self.model.step(StepContext.with_quantities(self.t, dt, log, self.rng, **links))
        self.events += log.pending

    @property
    def job(self) -> MultiNodeJob:
        return self.model.multinode.jobs[0]

    def kinds(self) -> list[str]:
        return [e["kind"] for e in self.events if e["kind"].startswith("multi_node")]


def test_ring_allreduce_time_by_hand() -> None:
    # 16 members, 20 GB, 800 Gb/s: 2 * 15/16 * 1.6e11 bit / 8e11 bit/s + 30 steps x 10 us.
    assert ring_allreduce_s(16, 20e9, 8e11, 1e-5) == pytest.approx(0.375 + 3e-4, rel=1e-12)
    assert ring_allreduce_s(1, 20e9, 8e11, 1e-5) == 0.0
    assert ring_allreduce_s(4, 20e9, 0.0, 1e-5) == float("inf")


def test_halving_the_bottleneck_link_slows_the_job_by_the_formula() -> None:
    run = Stepper()
    links = ring_links()
    members = run.job.members
    assert members.size == K
    run.step(60.0, links)
    before = run.job.iterations
    run.step(60.0, links)
    per_step_full = run.job.iterations - before
    # Halve one link of the members' spanning tree (a path: every one is on it).
    a, b = (int(x) for x in members[:2]) if members[1] - members[0] == 1 else (0, 1)
    set_link(links, a, b, link_capacity_bps=4e11)
    before = run.job.iterations
    run.step(60.0, links)
    per_step_half = run.job.iterations - before
    assert run.job.bottleneck_bps == 4e11

    def iteration_s(bps: float) -> float:  # by hand, Patarasuk & Yuan's ring
        return COMPUTE_S + 2 * (K - 1) / K * GRADIENT_B * 8 / bps + 2 * (K - 1) * LATENCY_S

    assert per_step_full == pytest.approx(60.0 / iteration_s(8e11), rel=RATE_TOL)
    assert per_step_half / per_step_full == pytest.approx(
        iteration_s(8e11) / iteration_s(4e11), rel=RATE_TOL)
    comm = run.model.multinode.comm_field.array
    expected = (iteration_s(4e11) - COMPUTE_S) / iteration_s(4e11)
    assert comm[members] == pytest.approx(np.full(K, expected), rel=1e-6)
    assert (run.model.multinode.job_field.array[members] == 1).all()
    assert (np.delete(run.model.multinode.job_field.array, members) == -1).all()


def test_a_short_link_outage_stalls_then_the_job_rides_through() -> None:
    run = Stepper()
    links = ring_links()
    run.step(60.0, links)
    members = run.job.members
    cut = int(members[-1])
    isolated = ring_links()
    isolated["link_up"][cut, :] = False
    for other in isolated["link_peer"][cut]:
        set_link(isolated, cut, int(other), link_up=False)
    held = run.job.iterations
    run.step(60.0, isolated)
    run.step(60.0, isolated)  # 120 s < the 600 s checkpoint interval
    assert run.job.stalled and run.job.iterations == held
    assert run.model.fleet()["multi_node_stalled"] == 1
    run.step(60.0, links)
    assert not run.job.stalled and run.job.iterations > held
    assert run.kinds() == ["multi_node_start", "multi_node_stall", "multi_node_resume"]
    assert run.job.rollbacks == 0 and (run.job.members == members).all()


def test_a_long_outage_rolls_back_to_the_checkpoint_and_replaces_the_job() -> None:
    run = Stepper()
    links = ring_links()
    for _ in range(12):  # 720 s: one checkpoint at 600 s
        run.step(60.0, links)
    checkpoint = run.job.checkpoint_iterations
    assert 0.0 < checkpoint < run.job.iterations
    cut = int(run.job.members[-1])
    isolated = ring_links()
    for other in isolated["link_peer"][cut]:
        set_link(isolated, cut, int(other), link_up=False)
    for _ in range(10):  # 600 s stalled: the checkpoint interval
        run.step(60.0, isolated)
    assert run.job.rollbacks == 1
    assert run.job.iterations == checkpoint  # the work since the checkpoint is lost
    assert "multi_node_rollback" in run.kinds()
    run.step(60.0, isolated)  # placed again, without the cut-off node
    members = run.job.members
    assert run.job.state == "running" and members.size == K and cut not in members
    graph = nx.Graph((int(a), int(b)) for a, row in enumerate(isolated["link_peer"])
                     for b, up in zip(row, isolated["link_up"][a], strict=True) if up)
    assert nx.is_connected(graph.subgraph(members.tolist()))
    # The members' shares of the job are the only jobs running, one per member.
    jobs = run.model.jobs
    assert sorted(jobs.node[jobs.running()].tolist()) == sorted(members.tolist())


def random_graph(rng: np.random.Generator, n: int, p: float) -> tuple[np.ndarray, np.ndarray]:
    """Peers and capacities of a random graph, up to n - 1 terminals a node."""
    peer = np.full((n, n - 1), -1, dtype=np.int32)
    cap = np.zeros((n, n - 1))
    fill = np.zeros(n, dtype=int)
    for a, b in itertools.combinations(range(n), 2):
        if rng.random() < p:
            c = float(rng.choice([1e9, 2e9, 5e9, 1e10]))
            for x, y in ((a, b), (b, a)):
                peer[x, fill[x]], cap[x, fill[x]] = y, c
                fill[x] += 1
    return peer, cap


@pytest.mark.parametrize("seed", range(20))
def test_groups_are_connected_and_network_aware_finds_the_best_bottleneck(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, k = 9, 4
    peer, cap = random_graph(rng, n, 0.35)
    graph = link_graph(peer, cap, peer >= 0, n)
    eligible = rng.random(n) < 0.8
    reference = nx.Graph()
    reference.add_nodes_from(range(n))
    for a in range(n):
        for b, c in zip(peer[a], cap[a], strict=True):
            if b >= 0:
                reference.add_edge(a, int(b), capacity=c)
    # Brute force: every connected k-subset of eligible nodes and its best spanning tree.
    best = 0.0
    for subset in itertools.combinations(np.flatnonzero(eligible).tolist(), k):
        sub = reference.subgraph(subset)
        if nx.is_connected(sub):
            tree = nx.maximum_spanning_tree(sub, weight="capacity")
            best = max(best, min(d["capacity"] for *_, d in tree.edges(data=True)))
    for policy in ("first_fit", "sun_aware", "network_aware"):
        group = choose_group(graph, eligible, k, policy)
        if best == 0.0:
            assert group is None
            continue
        assert group is not None and group.size == k and eligible[group].all()
        assert nx.is_connected(reference.subgraph(group.tolist()))
        if policy == "network_aware":
            assert ring_bottleneck_bps(graph, group) == best


def test_suncatcher_halved_transceivers_slow_the_job_by_the_formula() -> None:
    """The issue's test on the real cluster: every Suncatcher link is capped at its
    transceivers' rate (8 x 100 Gb/s at 100-200 m), so four channels halve each one."""
    text = (ASSETS_DIR / "scenarios" / "suncatcher.toml").read_text()
    assert "multi_node_jobs" in text  # the bundled scenario trains one
    rates = []
    for extra in ("", "channels = 4\n"):
        scenario = parse_scenario(text.replace("terminals_per_sat = 4\n",
                                               "terminals_per_sat = 4\n" + extra),
                                  base_dir=ASSETS_DIR / "scenarios")
        eng = Engine(scenario, SimClock(scenario.epoch_utc, rate_hz=1.0, warp=30.0, fast=True))
        for _ in range(3):
            eng.step()
        job = eng.compute_model.multinode.jobs[0]
        before = job.iterations
        eng.step()
        delivered = eng.compute_model.delivered.array[job.members]
        assert delivered.min() == pytest.approx(
            8 * eng.compute_model.params.peak_flop_s, rel=1e-6)  # full clock: speed 1
        rates.append((job.iterations - before, job.bottleneck_bps, job.members.size))
    (full, bps, k), (half, bps_half, _) = rates
    assert bps_half == pytest.approx(bps / 2, rel=1e-6)
    w = eng.compute_model.workload

    def iteration_s(c: float) -> float:
        return (w.multi_node_compute_s + 2 * (k - 1) / k * w.multi_node_gradient_bytes * 8 / c
                + 2 * (k - 1) * w.multi_node_step_latency_s)

    assert half / full == pytest.approx(iteration_s(bps) / iteration_s(bps_half), rel=1e-6)


@pytest.mark.parametrize(("replace", "extra", "key", "words"), [
    ("multi_node_nodes = 4", "multi_node_nodes = 1", "workload.multi_node_nodes", "2 <="),
    ("multi_node_nodes = 4", "multi_node_nodes = 7", "workload.multi_node_nodes",
     "scenario has 6 satellites"),
    ("multi_node_jobs = 1", "multi_node_jobs = -1", "workload.multi_node_jobs", "out of range"),
    ("multi_node_compute_s = 2.0", "multi_node_compute_s = 0.0",
     "workload.multi_node_compute_s", "out of range"),
    ("multi_node_jobs = 1", "multi_node_job = 1", "workload.multi_node_job", "unknown key"),
    ('preset = "suncatcher"\nterminals_per_sat = 2\n', "", "workload.multi_node_jobs",
     "[links] table"),
])
def test_bad_multi_node_keys_name_file_and_key(tmp_path: Path, replace: str, extra: str,
                                                key: str, words: str) -> None:
    text = SIX.replace(replace, extra)
    if not extra:
        text = text.replace("[links]\n", "")
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as err:
        ComputeModel(load_scenario(str(path)))
    message = str(err.value)
    assert str(path) in message and key in message and words in message, message


def test_network_aware_regroups_after_its_links_part() -> None:
    """Under network_aware a job whose links part restarts from its checkpoint on another
    connected group after multi_node_regroup_s, not after the checkpoint interval."""
    run = Stepper(SIX.replace('policy = "first_fit"', 'policy = "network_aware"\n'
                                                       "multi_node_regroup_s = 120.0"))
    links = ring_links()
    run.step(60.0, links)
    cut = int(run.job.members[-1])
    isolated = ring_links()
    for other in isolated["link_peer"][cut]:
        set_link(isolated, cut, int(other), link_up=False)
    run.step(60.0, isolated)
    assert run.job.stalled and run.job.rollbacks == 0  # 60 s: rides through
    run.step(60.0, isolated)  # 120 s: regroups (the checkpoint interval is 600 s) at once
    assert run.job.rollbacks == 1 and "multi_node_rollback" in run.kinds()
    assert run.job.state == "running" and cut not in run.job.members


def test_odc_run_suncatcher_shows_the_cluster_training_over_its_links() -> None:
    """The issue's "done when": `odc run --scenario suncatcher` trains a multi-node job."""
    with odc_process("run", "--scenario", "suncatcher", "--fast", "--steps", "30",
                     "--pub", ANY_PORT, "--cmd", ANY_PORT, "--ingest", ANY_PORT) as proc:
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    text = err.decode()
    assert "multi-node 0 running" in text or "multi-node 1 running" in text
    assert "multi-node job 1 running:" in text and "on 16 nodes, bottleneck 800 Gb/s" in text


def test_a_queued_job_holds_a_connected_group_until_it_drains() -> None:
    """Every node busy with a single-node job: the multi-node job holds a connected group,
    single-node jobs are not placed there, and it starts there once those end."""
    down = ring_links()
    down["link_up"][:] = False
    run = Stepper(links=down)
    assert run.job.state == "queued"  # no links up: no group
    submit = run.model.commands()["submit_job"]
    for node in range(N_SATS):  # one whole-node job each, ending 10, 20, ... 60 min on
        submit({"kind": "training", "accelerators": 8, "size_accel_h": 8 * (node + 1) / 6,
                "result_bytes": 0.0})
    run.step(60.0, down)
    jobs = run.model.jobs
    assert jobs.n_running == N_SATS
    links = ring_links()
    run.step(60.0, links)
    held = run.job.held
    assert held.size == K and run.job.state == "queued"
    later = [submit({"kind": "training", "accelerators": 8, "size_accel_h": 8.0,
                     "result_bytes": 0.0})["job_id"] for _ in range(N_SATS)]
    for _ in range(70):  # the held group drains in 60 min at most
        run.step(60.0, links)
        if run.job.state == "running":
            break
        on_held = np.isin(jobs.node[jobs.running()], held)
        assert not np.isin(jobs.job_id[jobs.running()][on_held], later).any()
    assert run.job.state == "running" and run.t - run.model.scenario.epoch_utc.timestamp() <= (
        2 * 60.0 + 60 * 60.0)
    assert sum(e["kind"] == "multi_node_start" for e in run.events) == 1
    # Its members are connected by the ring's links, and no later single-node job shares them.
    assert np.isin(run.job.members, held).sum() >= K - 1
    assert not np.isin(jobs.node[jobs.running()][np.isin(jobs.job_id[jobs.running()], later)],
                       run.job.members).any()


def test_network_aware_prefers_links_that_have_held() -> None:
    """Links just come up (faster here) lose to links up for multi_node_settle_s."""
    fast = [(0, 1), (1, 2), (2, 3)]
    partial = ring_links(4e11)
    for a, b in fast:
        set_link(partial, a, b, link_up=False)
    run = Stepper(SIX.replace('policy = "first_fit"', 'policy = "network_aware"'),
                  links=partial)
    for _ in range(11):  # 660 s: the others have held past the 600 s default
        run.step(60.0, partial)
    full = ring_links(4e11)
    for a, b in fast:
        set_link(full, a, b, link_capacity_bps=8e11)
    run.step(60.0, full)
    mn = run.model.multinode
    ctx = StepContext.with_quantities(run.t, 0.0, EventLog(t_utc=run.t), run.rng, **full)
    graphs = mn._graphs(ctx, "network_aware", run.t)
    everyone = np.ones(N_SATS, dtype=bool)
    assert choose_group(graphs[-1], everyone, K, "network_aware").tolist() == [0, 1, 2, 3]
    assert mn._choose(graphs, everyone, "network_aware").tolist() == [0, 3, 4, 5]
    later = run.t + 600.0  # once the fast links have held too, they win
    assert mn._choose(mn._graphs(ctx, "network_aware", later), everyone,
                      "network_aware").tolist() == [0, 1, 2, 3]


def test_the_dashboard_node_screen_shows_the_node_multi_node_job() -> None:
    """`odc tui`'s node detail lists every catalog field: a member shows its job and the
    job's all-reduce share (screenshot in $ODC_SHOTS, default /tmp/shots/jobs)."""
    import asyncio
    import os

    from tuiutil import detail_fields

    from twin.protocol.codec import (
        PROTOCOL_VERSION,
        TOPIC_META,
        decode,
        encode_map,
        encode_state,
    )
    from viz.stream import LIVE
    from viz.tui.app import DashboardApp, StreamUpdate
    from viz.tui.screens import DetailScreen

    scenario = load_scenario("suncatcher")
    clock = SimClock(scenario.epoch_utc, rate_hz=1.0, warp=30.0, fast=True)
    engine = Engine(scenario, clock)
    for _ in range(4):
        engine.step()
    member = int(engine.compute_model.multinode.jobs[0].members[0])
    header = {"v": PROTOCOL_VERSION, "seq": 1, "t_utc": clock.t_utc, **engine.header()}
    state = decode([bytes(f) for f in encode_state(header, engine.field_specs,
                                                   [f.array for f in engine.fields])])
    meta = engine.meta()
    shots = Path(os.environ.get("ODC_SHOTS", "/tmp/shots/jobs"))

    async def scenario_run() -> None:
        app = DashboardApp("tcp://127.0.0.1:1", "tcp://127.0.0.1:1", connect=False)
        async with app.run_test(size=(140, 45)) as pilot:
            body = {"v": PROTOCOL_VERSION, "seq": 0, "t_utc": state.header["t_utc"], **meta}
            app.feed(StreamUpdate(meta=decode(encode_map(TOPIC_META, body)).header,
                                  connection=LIVE))
            app.feed(StreamUpdate(state=state, connection=LIVE))
            await pilot.pause(0.3)
            app.push_screen(DetailScreen(app.model, member))  # as Enter on its row does
            table = await detail_fields(pilot, app)
            rows = {str(table.get_cell(key, "field")): str(table.get_cell(key, "value"))
                    for key in table.rows}
            assert rows["multi_node_job"].startswith("1")
            assert rows["multi_node_comm_frac"] == "15.8 %"  # t_comm / t_iter, 0.3753 / 2.3753
            # The operator scrolls down to the job's rows (catalog order: compute's last).
            table.move_cursor(row=list(rows).index("multi_node_job"))
            await pilot.pause(0.3)
            shots.mkdir(parents=True, exist_ok=True)
            app.save_screenshot(str(shots / "tui_node_multi_node_job.svg"))

    asyncio.run(scenario_run())


def test_sub_steps_give_the_same_progress() -> None:
    """The control loop cut into 6 s sub-steps moves the job as 30 s steps do (at full
    clock the iteration time is the same in every part of the step)."""
    scenario = load_scenario("suncatcher")
    progress = []
    for period_s in (30.0, 6.0):
        eng = Engine(scenario, SimClock(scenario.epoch_utc, rate_hz=1.0, warp=30.0, fast=True),
                     control_period_s=period_s)
        for _ in range(12):
            eng.step()
        assert eng.substeps == 30.0 / period_s
        job = eng.compute_model.multinode.jobs[0]
        progress.append((job.iterations, job.members.tolist()))
    (whole, members), (cut, members_cut) = progress
    assert members == members_cut and whole > 0.0
    assert cut == pytest.approx(whole, rel=1e-9)


def test_a_capped_member_slows_the_job_and_a_failed_one_stalls_it() -> None:
    """Synchronous iterations: the slowest member sets the compute time; a member whose
    accelerator fails loses its share and the job stalls, then rolls back and moves."""
    run = Stepper()
    links = ring_links()
    run.step(60.0, links)
    members = run.job.members
    capped = int(members[1])
    cap_w = np.full(N_SATS, np.inf)
    cap_w[capped] = 6000.0  # an eclipse-like cap: that member's clock drops
    before = run.job.iterations
    run.step(60.0, {**links, "power_cap_w": cap_w})
    peak = 8 * run.model.params.peak_flop_s
    speed = run.model.delivered.array[capped] / peak
    assert 0.3 < speed < 1.0
    comm_s = ring_allreduce_s(K, GRADIENT_B, 8e11, LATENCY_S)
    assert run.job.iterations - before == pytest.approx(
        60.0 / (COMPUTE_S / float(np.float32(speed)) + comm_s), rel=1e-6)
    assert not run.job.stalled
    failed = int(members[0])
    working = np.full(N_SATS, 8, dtype=np.int64)
    working[failed] = 7
    run.step(60.0, {**links, "accelerators_ok": working})
    assert run.job.stalled and "multi_node_stall" in run.kinds()
    assert run.model.jobs.n_queued == 0  # the evicted share does not run elsewhere
    for _ in range(10):  # the 600 s checkpoint interval
        run.step(60.0, {**links, "accelerators_ok": working})
    assert run.job.rollbacks == 1 and run.job.state == "running"
    assert failed not in run.job.members  # 7 working accelerators: not a whole free node

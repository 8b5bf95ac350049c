"""Multi-node jobs: data-parallel training over the optical links (docs/models.md,
"Multi-node jobs over the links").

A multi-node job holds every accelerator of ``multi_node_nodes`` nodes that form a
connected sub-graph of the links that are up. Each iteration computes for
``multi_node_compute_s`` at full clock on every member, then all-reduces
``multi_node_gradient_bytes`` of gradients with a ring all-reduce (Patarasuk & Yuan
2009) laid on a spanning tree of the members' links:

    t_comm = 2 (k - 1) / k * B * 8 / c_min + 2 (k - 1) * alpha

with k members, B bytes, c_min the lowest capacity on the tree (bit/s; the maximum
spanning tree, so the best bottleneck the members' links allow) and alpha the latency of
one ring step. The ring visits the tree's nodes in depth-first order: each tree link
carries one ring hop each way, so on full-duplex links the slowest tree link sets the
pace. Iterations are synchronous, so the slowest member sets the compute time:

    t_iter = t_compute / s_min + t_comm,   s_min = min over members of delivered / peak

The communication fraction is t_comm / t_iter; the job's useful FLOP/s are
(1 - comm_frac) x k x s_min x the node's peak.

The links carry the relay traffic of results to the ground too (the links model's
``link_relay_bps``, offered load r): the all-reduce gets c_ar = max(c - r, w c) of a link
of capacity c (w = ``multi_node_min_link_share``), and c_min is the tree's lowest c_ar. Its
mean load on each tree link, 2 (k - 1)/k * 8 B per iteration, is published back
(``link_allreduce_bps``): the links model gives relay what that leaves.

Checkpoints cost time: every ``multi_node_checkpoint_interval_s`` (tau) of running time the
job writes its state (each member ``multi_node_checkpoint_bytes`` / k at
``multi_node_checkpoint_write_bytes_s``: C seconds) and trains not while it writes, so a
share C / tau of its running time goes to checkpoints. The checkpoint holds the state as the
write began, and counts once the write completes.

``network_aware`` places on links up for ``multi_node_settle_s`` or more first, then on
every link up (the fastest links of a Walker shell are the short ones between planes that
have just met, and part again within minutes).

A queued job that finds no k whole free nodes joined by links holds a connected group of
usable nodes (chosen by the same policy): single-node jobs are not placed there, so the
group drains as their jobs end, and the job starts there (or on any group free first).

A job stalls (no progress) while its members are not one connected sub-graph, a member
lost its accelerators (a fault evicted its share) or a member delivers nothing. It rides
through a stall shorter than its checkpoint interval; a longer one rolls it back to its
last checkpoint and sends it back to the queue, to be placed again on a connected group.
Under the ``network_aware`` policy a job whose links part (its members healthy) does not
wait that long: after ``multi_node_regroup_s`` it restarts from its checkpoint on the best
connected group there is then (links between moving planes part for good more often than
they come back).

Each member's share of the job sits in compute's job table as an ordinary running job
(all the node's accelerators, no end): power, heat, clock, radiation and faults treat the
member like any busy node. This module keeps the job's own progress.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from twin.core.subsystem import Field, StepContext, make_field
from twin.models.compute.jobs import JobRunner
from twin.models.compute.ringgraph import (  # noqa: F401 (tree_bottleneck_bps: public)
    NETWORK_AWARE,
    choose_group,
    link_graph,
    member_graph,
    ring_allreduce_s,
    ring_bottleneck_bps,
    ring_tree,
    tree_bottleneck_bps,
)
from twin.models.compute.workload import KIND_CODES, RUNNING, WorkloadParams

QUEUED, ACTIVE, DONE = "queued", "running", "done"
JOB_STATE_LABELS = {0: "queued", 1: "running", 2: "stalled", 3: "done"}
"""``multi_node_job_state`` codes (a running job with no progress is ``stalled``)."""
JOB_STATE_CODES = {label: code for code, label in JOB_STATE_LABELS.items()}


@dataclass
class MultiNodeJob:
    """One multi-node job's state."""

    number: int  # 1, 2, ... (the per-node field's value)
    total_iterations: float
    state: str = QUEUED
    members: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    shard_slots: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    shard_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    iterations: float = 0.0
    checkpoint_iterations: float = 0.0
    since_checkpoint_s: float = 0.0
    stalled_s: float = 0.0
    stalled: bool = False
    comm_frac: float = 0.0
    bottleneck_bps: float = 0.0
    rollbacks: int = 0
    lost_iterations: float = 0.0
    # Checkpoints: the state being written (iterations as the write began), the running
    # time and the part of it spent writing, the checkpoints completed.
    snapshot_iterations: float = 0.0
    running_s: float = 0.0
    writing_s: float = 0.0
    checkpoints: int = 0
    allreduce_bps: float = 0.0  # mean all-reduce load on each tree link over the last step
    # Kept from the links' last change (MultiNodeJobs._bottleneck_bps): the link_up array
    # they were found from, whether the members' links join them, their flat terminals.
    links_seen: Any = None
    held: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    joined: bool = False
    member_terminals: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # The ring's tree, kept while the all-reduce's capacities on the members' terminals are
    # the same: those capacities (None: find it again), its bottleneck, its terminals.
    tree_caps: np.ndarray | None = None
    tree_bps: float = 0.0
    tree_terminals: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


class MultiNodeJobs:
    """The scenario's multi-node jobs: placement on connected groups, progress, stalls.

    Args:
        workload: ``[workload]`` (the ``multi_node_*`` keys).
        runner: Compute's job runner (members' shares live in its table).
        accelerators_per_node: Accelerators a member gives the job (all of them).
        node_peak_flop_s: One node's peak FLOP/s at full clock.
        names: Satellite names (events).
    """

    def __init__(self, workload: WorkloadParams, runner: JobRunner, accelerators_per_node: int,
                 node_peak_flop_s: float, names: list[str]) -> None:
        w = self.workload = workload
        self.runner = runner
        self.accelerators = accelerators_per_node
        self.node_peak_flop_s = node_peak_flop_s
        self.names = names
        n = self.n_sats = len(names)
        self.k = w.multi_node_nodes
        self.jobs = [MultiNodeJob(number=i + 1, total_iterations=float(w.multi_node_iterations))
                     for i in range(w.multi_node_jobs)]
        self.job_field = make_field("multi_node_job", "<i2", (n,), "index",
                                    "Multi-node job the node works for (1, 2, ...; -1 none)",
                                    fill=-1)
        self.comm_field = make_field("multi_node_comm_frac", "<f4", (n,), "1",
                                     "Its job's share of an iteration spent in all-reduce")
        # Per job (docs/protocol.md, "Cluster health summaries"): what a viewer lists for
        # each job without the members' rows.
        j = len(self.jobs)
        self.state_field = make_field("multi_node_job_state", "|u1", (j,), "code",
                                      "Each multi-node job's state", per_sat=False,
                                      labels=JOB_STATE_LABELS)
        self.progress_field = make_field("multi_node_job_progress_frac", "<f4", (j,), "1",
                                         "Each multi-node job's iterations done over asked",
                                         per_sat=False)
        self.job_comm_field = make_field("multi_node_job_comm_frac", "<f4", (j,), "1",
                                         "Each running job's share of an iteration in "
                                         "all-reduce", per_sat=False)
        self.nodes_field = make_field("multi_node_job_nodes", "<i4", (j,), "count",
                                      "Nodes each multi-node job runs on now (0 unplaced)",
                                      per_sat=False)
        self.first_field = make_field("multi_node_job_first_sat", "<i4", (j,), "index",
                                      "Each multi-node job's first member, -1 unplaced",
                                      per_sat=False, fill=-1)
        self.bottleneck_field = make_field("multi_node_job_bottleneck_bps", "<f4", (j,),
                                           "bit/s", "Lowest link capacity on each job's ring, "
                                           "0 unplaced or parted", per_sat=False)
        self.rollbacks_field = make_field("multi_node_job_rollbacks", "<i4", (j,), "count",
                                          "Rollbacks to a checkpoint of each job so far",
                                          per_sat=False)
        self.graph: csr_matrix | None = None
        # Checkpoint write time C (s): each member writes its 1/k share of the state.
        self.write_s = (w.multi_node_checkpoint_bytes / self.k
                        / w.multi_node_checkpoint_write_bytes_s)
        # (n, T) mean all-reduce load on each terminal's link over the last step (bit/s),
        # for the links model (ComputeOutputs.link_allreduce_bps); None until links exist.
        self.link_load_bps: np.ndarray | None = None
        self._loaded = np.zeros(0, dtype=np.int64)  # its flat terminals now nonzero
        self._load_key: list[tuple[np.ndarray, float]] = []  # what it holds: (tree, load)
        # When each terminal's present link came up (Unix s; inf: none), followed from the
        # links' outputs: network_aware prefers links that have held (track_links).
        self.up_since_t = np.full(0, np.inf)
        self._up_seen: Any = None
        self._peer_seen = np.zeros(0, dtype=np.int64)

    def fields(self) -> list[Field]:
        return [self.job_field, self.comm_field, self.state_field, self.progress_field,
                self.job_comm_field, self.nodes_field, self.first_field,
                self.bottleneck_field, self.rollbacks_field]

    def read_links(self, ctx: StepContext) -> csr_matrix:
        """This step's graph of links that are up (empty without links)."""
        links = ctx.links
        peer = getattr(links, "link_peer", None)
        if peer is None:
            self.graph = csr_matrix((self.n_sats, self.n_sats))
        else:
            self.graph = link_graph(np.asarray(peer), np.asarray(links.link_capacity_bps),
                                    np.asarray(links.link_up), self.n_sats)
        return self.graph

    def track_links(self, ctx: StepContext, t: float) -> None:
        """Follow when each terminal's link came up: kept where the same peer stays up
        since the links last changed (they publish a new ``link_up`` array then)."""
        links = ctx.links
        up = getattr(links, "link_up", None)
        if up is None or up is self._up_seen:
            return
        peer = np.asarray(links.link_peer)
        up = np.asarray(up)
        since = np.where(up, t, np.inf)
        if self._peer_seen.shape == peer.shape:
            kept = up & np.asarray(self._up_seen) & (peer == self._peer_seen)
            since[kept] = self.up_since_t[kept]
        self.up_since_t, self._up_seen, self._peer_seen = since, links.link_up, peer.copy()

    def _graphs(self, ctx: StepContext, policy: str, t: float) -> list[csr_matrix]:
        """The graphs a policy places on, in order of preference: for network_aware the
        links up for ``multi_node_settle_s`` or more first (links between planes that have
        just met part again soon), then every link up."""
        graph = self.read_links(ctx)
        if policy != NETWORK_AWARE or self._up_seen is None:
            return [graph]
        links = ctx.links
        settled = np.asarray(links.link_up) & (
            t - self.up_since_t >= self.workload.multi_node_settle_s)
        return [link_graph(np.asarray(links.link_peer), np.asarray(links.link_capacity_bps),
                           settled, self.n_sats), graph]

    def _choose(self, graphs: list[csr_matrix], eligible: np.ndarray,
                policy: str) -> np.ndarray | None:
        for graph in graphs:
            members = choose_group(graph, eligible, self.k, policy)
            if members is not None:
                return members
        return None

    # ----------------------------------------------------------------------------------
    # Placement (before the single-node jobs of a pass)

    def place(self, ctx: StepContext, policy: str, free_accels: np.ndarray,
              usable: np.ndarray, power_room_w: np.ndarray, accel_full_w: float,
              t: float) -> None:
        """Place queued multi-node jobs on whole free nodes of a connected group; the nodes
        taken leave ``free_accels`` and ``power_room_w`` (updated in place)."""
        queued = [job for job in self.jobs if job.state == QUEUED]
        if not queued:
            return
        self.track_links(ctx, t)
        graphs = self._graphs(ctx, policy, t)
        graph = graphs[-1]  # every link up
        a = self.accelerators
        eligible = (free_accels >= a) & usable & (power_room_w >= a * accel_full_w)
        holdable = usable.copy()
        for job in queued:  # a handful of jobs
            members = self._choose(graphs, eligible, policy)
            if members is not None:
                self._start(ctx, job, members, t)
                eligible[members] = False
                holdable[members] = False
                free_accels[members] -= a
                power_room_w[members] -= a * accel_full_w
                continue
            # No k whole free nodes joined by links: hold a connected group of usable nodes
            # (busy or not) so that single-node jobs do not refill it; it drains as their
            # jobs end. The same group while it stays connected and usable.
            held = job.held
            if (held.size == 0 or not holdable[held].all()
                    or ring_bottleneck_bps(graph, held) <= 0.0):
                held = self._choose(graphs, holdable, policy)
                job.held = np.zeros(0, dtype=np.int64) if held is None else held
            eligible[job.held] = False
            holdable[job.held] = False
            free_accels[job.held] = 0

    def _start(self, ctx: StepContext, job: MultiNodeJob, members: np.ndarray,
               t: float) -> None:
        table = self.runner.jobs
        w = self.workload
        slots = np.array([table.add(kind=KIND_CODES["training"], accels=self.accelerators,
                                    size_accel_s=np.inf, priority=9,
                                    ckpt_interval_s=w.multi_node_checkpoint_interval_s,
                                    result_bytes=0.0, submit_t=t)
                          for _ in members], dtype=np.int64)
        slots = np.array([table.slot_of(int(i)) for i in slots], dtype=np.int64)
        table.start(slots, members, t)
        job.members, job.shard_slots, job.links_seen = members, slots, None
        job.tree_caps, job.snapshot_iterations = None, job.iterations
        job.held = np.zeros(0, dtype=np.int64)
        job.shard_ids = table.job_id[slots].copy()
        job.state, job.stalled, job.stalled_s, job.since_checkpoint_s = ACTIVE, False, 0.0, 0.0
        job.bottleneck_bps = ring_bottleneck_bps(self.graph, members)
        ctx.events.raise_event(
            "multi_node_start", "info", f"multi-node job {job.number} started on"
            f" {members.size} nodes ({self.names[int(members[0])]} ...), bottleneck"
            f" {job.bottleneck_bps / 1e9:.3g} Gb/s", sat=int(members[0]),
            multi_node_job=job.number)

    # ----------------------------------------------------------------------------------
    # Progress (after the single-node jobs progressed)

    def step(self, ctx: StepContext, delivered_flop_s: np.ndarray, dt: float,
             policy: str = "") -> bool:
        """Advance the running jobs by ``dt`` under scheduling ``policy``; returns whether
        one went back to the queue (the model then schedules at once)."""
        self.track_links(ctx, ctx.t_utc)
        requeued = False
        for job in self.jobs:  # a handful of jobs
            if job.state == ACTIVE:
                requeued |= self._advance(ctx, job, delivered_flop_s, dt, policy)
        self._publish()
        self._publish_loads(ctx)
        return requeued

    def _bottleneck_bps(self, ctx: StepContext, job: MultiNodeJob) -> float:
        """This step's ring bottleneck of the job's members from the links' outputs: the
        lowest all-reduce capacity on the maximum spanning tree of their links (bit/s).

        Which links join the members changes only when the links' set or states do (the
        links model then publishes a new ``link_up`` array): kept until then, with whether
        they join them all. The tree is kept while the all-reduce's capacities on those
        links stay the same (formation links at their transceivers' cap, relay unchanged).
        """
        links = ctx.links
        if getattr(links, "link_peer", None) is None:
            return 0.0
        if job.links_seen is not links.link_up:
            sub = member_graph(links.link_peer, np.ones(links.link_peer.shape), links.link_up,
                               job.members, self.n_sats)
            job.links_seen, job.tree_caps = links.link_up, None
            job.joined = connected_components(sub, directed=False)[0] == 1
            terminals = np.asarray(links.link_peer)[job.members]
            inside = np.isin(terminals, job.members) & np.asarray(links.link_up)[job.members]
            t_count = terminals.shape[1]
            flat = job.members[:, None] * t_count + np.arange(t_count)
            job.member_terminals = flat[inside]  # the members' terminals linked among them
        if not job.joined:
            job.tree_terminals = np.zeros(0, dtype=np.int64)
            return 0.0
        caps = self._allreduce_caps(links, job.member_terminals)
        if job.tree_caps is not None and np.array_equal(caps, job.tree_caps):
            return job.tree_bps
        t_count = links.link_peer.shape[1]
        position = np.full(self.n_sats, -1, dtype=np.int64)
        position[job.members] = np.arange(job.members.size)
        mine = position[job.member_terminals // t_count]
        theirs = position[np.asarray(links.link_peer).reshape(-1)[job.member_terminals]]
        k = job.members.size
        sub = csr_matrix((caps, (mine, theirs)), shape=(k, k))
        bottleneck, rows, cols = ring_tree(sub)
        on_tree = np.zeros((k, k), dtype=bool)  # k is a job's members: tens
        on_tree[rows, cols] = on_tree[cols, rows] = True
        job.tree_terminals = job.member_terminals[on_tree[mine, theirs]]
        job.tree_caps, job.tree_bps = caps, bottleneck
        return bottleneck

    def _allreduce_caps(self, links: Any, terminals: np.ndarray) -> np.ndarray:
        """What the all-reduce gets of each of ``terminals``' links (flat indices, bit/s):
        c_ar = max(c - r, w c) with r the relay traffic offered to the link (the relay
        flows while it leaves the all-reduce its least share w); 0 where c is."""
        cap = np.take(links.link_capacity_bps, terminals).astype(float)
        relay = getattr(links, "link_relay_bps", None)
        if relay is None:
            return cap
        offered = np.take(relay, terminals)
        if not offered.any():
            return cap
        return np.maximum(cap - offered, self.workload.multi_node_min_link_share * cap)

    def _train(self, job: MultiNodeJob, dt: float, iteration_s: float) -> float:
        """Run the job for ``dt`` seconds: training, then writing a checkpoint for the last
        C of every interval; returns the seconds spent training."""
        period = self.workload.multi_node_checkpoint_interval_s
        train_s = period - self.write_s
        left, trained = dt, 0.0
        while left > 0.0 and job.iterations < job.total_iterations:  # a few passes a step
            if job.since_checkpoint_s < train_s:
                run = train_s - job.since_checkpoint_s
                if left < run:
                    run, job.since_checkpoint_s = left, job.since_checkpoint_s + left
                else:
                    job.since_checkpoint_s = train_s
                job.iterations = min(job.iterations + run / iteration_s, job.total_iterations)
                trained += run
                left -= run
                if job.since_checkpoint_s >= train_s:  # the write begins: this state
                    job.snapshot_iterations = job.iterations
                continue
            run = period - job.since_checkpoint_s
            if left < run:
                run, job.since_checkpoint_s = left, job.since_checkpoint_s + left
            else:
                job.since_checkpoint_s = period
            job.writing_s += run
            left -= run
            if job.since_checkpoint_s >= period:  # written: the checkpoint counts
                job.checkpoint_iterations = job.snapshot_iterations
                job.since_checkpoint_s = 0.0
                job.checkpoints += 1
        job.running_s += dt
        return trained

    def _advance(self, ctx: StepContext, job: MultiNodeJob, delivered_flop_s: np.ndarray,
                 dt: float, policy: str) -> bool:
        w = self.workload
        table = self.runner.jobs
        shards_ok = bool(np.all((table.state[job.shard_slots] == RUNNING)
                                & (table.job_id[job.shard_slots] == job.shard_ids)))
        job.bottleneck_bps = self._bottleneck_bps(ctx, job) if shards_ok else 0.0
        speed = float(np.min(delivered_flop_s[job.members])) / self.node_peak_flop_s
        why = ("a member lost its accelerators" if not shards_ok
               else "its members' links no longer join them" if job.bottleneck_bps <= 0.0
               else "a member delivers nothing" if speed <= 0.0 else "")
        if not why:
            comm_s = ring_allreduce_s(job.members.size, w.multi_node_gradient_bytes,
                                      job.bottleneck_bps, w.multi_node_step_latency_s)
            iteration_s = w.multi_node_compute_s / speed + comm_s
            job.comm_frac = comm_s / iteration_s
            trained_s = self._train(job, dt, iteration_s)
            k = job.members.size
            job.allreduce_bps = (2.0 * (k - 1) / k * 8.0 * w.multi_node_gradient_bytes
                                 / iteration_s * trained_s / dt) if dt > 0.0 else 0.0
            if job.stalled:
                ctx.events.raise_event(
                    "multi_node_resume", "info", f"multi-node job {job.number} resumed after"
                    f" {job.stalled_s:.0f} s", sat=int(job.members[0]),
                    multi_node_job=job.number)
            job.stalled, job.stalled_s = False, 0.0
            if job.iterations >= job.total_iterations:
                job.state = DONE
                self._release(job)
                ctx.events.raise_event("multi_node_done", "info",
                                       f"multi-node job {job.number} finished",
                                       multi_node_job=job.number)
            return False
        if not job.stalled:
            ctx.events.raise_event(
                "multi_node_stall", "warning", f"multi-node job {job.number} stalled:"
                f" {why}", sat=int(job.members[0]), multi_node_job=job.number)
        job.stalled = True
        job.stalled_s += dt
        job.allreduce_bps = 0.0
        job.comm_frac = 1.0 if shards_ok and speed > 0.0 else job.comm_frac
        limit_s = w.multi_node_checkpoint_interval_s
        if policy == NETWORK_AWARE and shards_ok and speed > 0.0:  # its links parted
            limit_s = min(limit_s, w.multi_node_regroup_s)
        if job.stalled_s < limit_s:
            return False  # rides through
        lost = job.iterations - job.checkpoint_iterations
        job.lost_iterations += lost
        job.iterations = job.checkpoint_iterations
        job.rollbacks += 1
        ctx.events.raise_event(
            "multi_node_rollback", "warning", f"multi-node job {job.number} rolled back to"
            f" its checkpoint after a {job.stalled_s:.0f} s stall ({why}), lost {lost:.0f}"
            " iterations; queued again", sat=int(job.members[0]), multi_node_job=job.number)
        self._release(job)
        job.state, job.stalled, job.stalled_s = QUEUED, False, 0.0
        return True

    def _release(self, job: MultiNodeJob) -> None:
        """Free the members' shares still held (an evicted one is already queued: drop it)."""
        table = self.runner.jobs
        for slot, job_id in zip(job.shard_slots.tolist(), job.shard_ids.tolist(), strict=True):
            if table.job_id[slot] == job_id and table.state[slot] != 0:
                table.release(slot)
        job.members = job.shard_slots = job.shard_ids = np.zeros(0, dtype=np.int64)
        job.tree_terminals = np.zeros(0, dtype=np.int64)
        job.comm_frac = job.allreduce_bps = 0.0

    def drop_evicted(self) -> None:
        """Members' shares a fault sent back to the queue leave it: a share runs only on
        its member (the job stalls instead, ``step``)."""
        table = self.runner.jobs
        for job in self.jobs:
            if job.state != ACTIVE:
                continue
            for slot, job_id in zip(job.shard_slots.tolist(), job.shard_ids.tolist(),
                                    strict=True):
                if table.job_id[slot] == job_id and table.state[slot] not in (0, RUNNING):
                    table.release(slot)

    def _publish(self) -> None:
        job_of, comm = self.job_field.array, self.comm_field.array
        job_of.fill(-1)
        comm.fill(0.0)
        for job in self.jobs:
            if job.state == ACTIVE:
                job_of[job.members] = job.number
                comm[job.members] = job.comm_frac
        jobs = self.jobs  # a handful
        self.state_field.array[:] = [JOB_STATE_CODES["stalled" if j.state == ACTIVE and j.stalled
                                                     else j.state] for j in jobs]
        self.progress_field.array[:] = [j.iterations / j.total_iterations for j in jobs]
        self.job_comm_field.array[:] = [j.comm_frac for j in jobs]
        self.nodes_field.array[:] = [j.members.size for j in jobs]
        self.first_field.array[:] = [int(j.members[0]) if j.members.size else -1 for j in jobs]
        self.bottleneck_field.array[:] = [j.bottleneck_bps if j.state == ACTIVE else 0.0
                                          for j in jobs]
        self.rollbacks_field.array[:] = [j.rollbacks for j in jobs]

    def _publish_loads(self, ctx: StepContext) -> None:
        """Each running job's mean all-reduce load on its tree's terminals (bit/s); the
        same array untouched while the trees and loads are."""
        peer = getattr(ctx.links, "link_peer", None)
        if peer is None:
            return
        key = [(job.tree_terminals, job.allreduce_bps) for job in self.jobs
               if job.state == ACTIVE and job.allreduce_bps > 0.0]
        if (self.link_load_bps is not None and self.link_load_bps.shape == peer.shape
                and len(key) == len(self._load_key)
                and all(t is t0 and a == a0 for (t, a), (t0, a0) in zip(key, self._load_key,
                                                                       strict=True))):
            return
        if self.link_load_bps is None or self.link_load_bps.shape != peer.shape:
            self.link_load_bps = np.zeros(peer.shape)
        flat = self.link_load_bps.reshape(-1)
        flat[self._loaded] = 0.0
        for terminals, load_bps in key:  # a handful of jobs
            flat[terminals] = load_bps
        self._loaded = np.concatenate([np.zeros(0, dtype=np.int64)] + [t for t, _ in key])
        self._load_key = key

    def checkpoint_frac(self) -> float:
        """Share of the jobs' running time spent writing checkpoints so far."""
        running = sum(j.running_s for j in self.jobs)
        return sum(j.writing_s for j in self.jobs) / running if running > 0.0 else 0.0

    def fleet(self) -> dict[str, float]:
        return {
            "multi_node_running": sum(j.state == ACTIVE and not j.stalled for j in self.jobs),
            "multi_node_stalled": sum(j.state == ACTIVE and j.stalled for j in self.jobs),
            "multi_node_queued": sum(j.state == QUEUED for j in self.jobs),
            "multi_node_done": sum(j.state == DONE for j in self.jobs),
            "multi_node_rollbacks": sum(j.rollbacks for j in self.jobs),
            "multi_node_progress_frac": float(np.mean([j.iterations / j.total_iterations
                                                       for j in self.jobs])),
            "multi_node_checkpoints": sum(j.checkpoints for j in self.jobs),
            "multi_node_checkpoint_frac": self.checkpoint_frac(),
        }

    def describe(self) -> list[dict[str, Any]]:
        return [{"job": j.number, "state": j.state, "stalled": j.stalled,
                 "members": j.members.tolist(), "iterations": j.iterations,
                 "total_iterations": j.total_iterations, "comm_frac": j.comm_frac,
                 "bottleneck_bps": j.bottleneck_bps, "rollbacks": j.rollbacks,
                 "checkpoint_iterations": j.checkpoint_iterations,
                 "checkpoints": j.checkpoints, "checkpoint_write_s": self.write_s,
                 "allreduce_bps": j.allreduce_bps}
                for j in self.jobs]

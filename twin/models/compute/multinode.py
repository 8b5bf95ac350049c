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
from scipy.sparse.csgraph import breadth_first_order, connected_components, minimum_spanning_tree

from twin.core.subsystem import Field, StepContext, make_field
from twin.models.compute.jobs import JobRunner
from twin.models.compute.workload import KIND_CODES, RUNNING, WorkloadParams

QUEUED, ACTIVE, DONE = "queued", "running", "done"
JOB_STATE_LABELS = {0: "queued", 1: "running", 2: "stalled", 3: "done"}
"""``multi_node_job_state`` codes (a running job with no progress is ``stalled``)."""
JOB_STATE_CODES = {label: code for code, label in JOB_STATE_LABELS.items()}
NETWORK_AWARE = "network_aware"


def ring_allreduce_s(k: int, gradient_bytes: float, bottleneck_bps: float,
                     step_latency_s: float) -> float:
    """Ring all-reduce time (s) of ``gradient_bytes`` over ``k`` members whose slowest
    link carries ``bottleneck_bps`` (Patarasuk & Yuan 2009: 2 (k-1) steps of B/k bytes)."""
    if k < 2:
        return 0.0
    if bottleneck_bps <= 0.0:
        return float("inf")
    steps = 2 * (k - 1)
    return steps / k * gradient_bytes * 8.0 / bottleneck_bps + steps * step_latency_s


def link_graph(peer: np.ndarray, capacity_bps: np.ndarray, up: np.ndarray,
               n: int) -> csr_matrix:
    """(n, n) symmetric sparse matrix of the capacity of each link that is up (bit/s).

    Args:
        peer: (n, T) each terminal's peer node, -1 for none.
        capacity_bps: (n, T) each terminal's link capacity.
        up: (n, T) bool, the terminal's link is up.
    """
    t_count = peer.shape[1]
    a = np.repeat(np.arange(n), t_count)
    b = peer.reshape(-1)
    cap = np.asarray(capacity_bps, dtype=float).reshape(-1)
    keep = (b >= 0) & np.asarray(up).reshape(-1) & (cap > 0.0)
    return csr_matrix((cap[keep], (a[keep], b[keep])), shape=(n, n))


def _restricted(graph: csr_matrix, nodes: np.ndarray) -> csr_matrix:
    return graph[nodes][:, nodes]


def choose_group(graph: csr_matrix, eligible: np.ndarray, k: int,
                 policy: str) -> np.ndarray | None:
    """``k`` eligible nodes that form a connected sub-graph of ``graph``, or None.

    ``network_aware``: the group whose lowest link capacity is highest: the largest
    threshold c at which the links of capacity >= c join k eligible nodes (a binary search
    over the capacities, one connected-components pass each). Other policies: the first
    eligible node (lowest index) in a component of k or more. Either way the group is the
    first k nodes of a breadth-first order from that node: a connected set.
    """
    nodes = np.flatnonzero(eligible)
    if nodes.size < k:
        return None
    sub = _restricted(graph, nodes)
    if policy == NETWORK_AWARE and sub.nnz:
        levels = np.unique(sub.data)
        lo, hi = -1, levels.size - 1  # levels[lo] feasible (lo = -1: none found yet)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if _seed(_at_least(sub, levels[mid]), k) >= 0:
                lo = mid
            else:
                hi = mid - 1
        if lo >= 0:
            sub = _at_least(sub, levels[lo])
    seed = _seed(sub, k)
    if seed < 0:
        return None
    order = breadth_first_order(sub, seed, directed=False, return_predecessors=False)
    return nodes[np.sort(order[:k])]


def _at_least(sub: csr_matrix, threshold: float) -> csr_matrix:
    kept = sub.copy()
    kept.data = np.where(kept.data >= threshold, kept.data, 0.0)
    kept.eliminate_zeros()
    return kept


def _seed(sub: csr_matrix, k: int) -> int:
    """The lowest node in a connected component of ``k`` or more nodes, or -1."""
    _, labels = connected_components(sub, directed=False)
    big = np.bincount(labels)[labels] >= k
    return int(np.argmax(big)) if big.any() else -1


def ring_bottleneck_bps(graph: csr_matrix, members: np.ndarray) -> float:
    """The lowest capacity on the members' maximum spanning tree (bit/s); 0 when the
    members' links do not join them all."""
    return tree_bottleneck_bps(_restricted(graph, members))


def member_graph(peer: np.ndarray, capacity_bps: np.ndarray, up: np.ndarray,
                 members: np.ndarray, n: int) -> csr_matrix:
    """(k, k) capacities of the links that are up among ``members`` alone (bit/s): what
    ``link_graph`` restricted to them gives, without the (n, n) graph."""
    k = members.size
    position = np.full(n, -1, dtype=np.int64)
    position[members] = np.arange(k)
    peers = np.asarray(peer)[members]
    other = np.where(peers >= 0, position[peers], -1)
    cap = np.asarray(capacity_bps, dtype=float)[members]
    keep = (other >= 0) & np.asarray(up)[members] & (cap > 0.0)
    rows = np.broadcast_to(np.arange(k)[:, None], peers.shape)
    return csr_matrix((cap[keep], (rows[keep], other[keep])), shape=(k, k))


def tree_bottleneck_bps(sub: csr_matrix) -> float:
    """The lowest capacity on the maximum spanning tree of ``sub`` (bit/s); 0 when it is
    not connected, inf for a single node."""
    if sub.shape[0] < 2:
        return float("inf")
    n_comp, _ = connected_components(sub, directed=False)
    if n_comp > 1:
        return 0.0
    top = float(sub.data.max())
    flipped = sub.copy()
    flipped.data = (top + 1.0) - flipped.data  # minimum spanning tree of this: maximum of c
    tree = minimum_spanning_tree(flipped)
    return float(top + 1.0 - tree.data.max())


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
    # Kept from the links' last change (MultiNodeJobs._bottleneck_bps): the link_up array
    # they were found from, whether the members' links join them, their flat terminals.
    links_seen: Any = None
    held: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    joined: bool = False
    member_terminals: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


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
        return requeued

    def _bottleneck_bps(self, ctx: StepContext, job: MultiNodeJob) -> float:
        """This step's ring bottleneck of the job's members from the links' outputs (bit/s).

        Which links join the members changes only when the links' set or states do (the
        links model then publishes a new ``link_up`` array): kept until then, with whether
        they join them all. Where every one of them runs at the same capacity (formation
        links at their transceivers' cap) that capacity is the bottleneck of any spanning
        tree; otherwise the maximum spanning tree is worked out afresh.
        """
        links = ctx.links
        if getattr(links, "link_peer", None) is None:
            return 0.0
        if job.links_seen is not links.link_up:
            sub = member_graph(links.link_peer, np.ones(links.link_peer.shape), links.link_up,
                               job.members, self.n_sats)
            job.links_seen = links.link_up
            job.joined = connected_components(sub, directed=False)[0] == 1
            terminals = np.asarray(links.link_peer)[job.members]
            inside = np.isin(terminals, job.members) & np.asarray(links.link_up)[job.members]
            t_count = terminals.shape[1]
            flat = job.members[:, None] * t_count + np.arange(t_count)
            job.member_terminals = flat[inside]  # the members' terminals linked among them
        if not job.joined:
            return 0.0
        caps = np.asarray(links.link_capacity_bps).reshape(-1)[job.member_terminals]
        low = float(caps.min()) if caps.size else 0.0
        if low > 0.0 and low == float(caps.max()):
            return low
        return tree_bottleneck_bps(member_graph(links.link_peer, links.link_capacity_bps,
                                                links.link_up, job.members, self.n_sats))

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
            job.iterations = min(job.iterations + dt / iteration_s, job.total_iterations)
            if job.stalled:
                ctx.events.raise_event(
                    "multi_node_resume", "info", f"multi-node job {job.number} resumed after"
                    f" {job.stalled_s:.0f} s", sat=int(job.members[0]),
                    multi_node_job=job.number)
            job.stalled, job.stalled_s = False, 0.0
            job.since_checkpoint_s += dt
            interval = w.multi_node_checkpoint_interval_s
            if job.since_checkpoint_s >= interval:
                job.checkpoint_iterations = job.iterations
                job.since_checkpoint_s %= interval
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
        job.comm_frac = 0.0

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

    def fleet(self) -> dict[str, float]:
        return {
            "multi_node_running": sum(j.state == ACTIVE and not j.stalled for j in self.jobs),
            "multi_node_stalled": sum(j.state == ACTIVE and j.stalled for j in self.jobs),
            "multi_node_queued": sum(j.state == QUEUED for j in self.jobs),
            "multi_node_done": sum(j.state == DONE for j in self.jobs),
            "multi_node_rollbacks": sum(j.rollbacks for j in self.jobs),
            "multi_node_progress_frac": float(np.mean([j.iterations / j.total_iterations
                                                       for j in self.jobs])),
        }

    def describe(self) -> list[dict[str, Any]]:
        return [{"job": j.number, "state": j.state, "stalled": j.stalled,
                 "members": j.members.tolist(), "iterations": j.iterations,
                 "total_iterations": j.total_iterations, "comm_frac": j.comm_frac,
                 "bottleneck_bps": j.bottleneck_bps, "rollbacks": j.rollbacks}
                for j in self.jobs]

"""The fleet's job queue: job kinds, seeded arrivals, and the job table compute runs.

Jobs are few next to satellites but not negligible (a 4,428-node fleet at half load runs
thousands at once), so the table is a struct of numpy arrays, grown by doubling, and every
per-step operation on it is vectorized. A job is gang-scheduled on one node: all its
accelerators run together at the node's clock. Multi-node jobs (``multi_node_*`` keys) are
kept by ``multinode.MultiNodeJobs``, each member's share a job of this table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from twin.core.constants import SECONDS_PER_HOUR

# Job states in the table.
EMPTY, QUEUED, RUNNING = 0, 1, 2


@dataclass(frozen=True)
class JobKind:
    """Defaults of one kind of job (arrivals draw sizes around them; commands may override).

    Attributes:
        name: Kind name (``training``, ``inference``).
        accelerators: Choices of accelerators wanted, drawn uniformly.
        median_size_accel_h: Median job size, accelerator-hours at full clock.
        size_sigma: Log-normal shape of the size distribution (natural-log standard dev).
        priority: Higher runs first.
        checkpoint_interval_s: Run time between checkpoints (s).
        result_bytes: Size of the result to downlink (bytes).
    """

    name: str
    accelerators: tuple[int, ...]
    median_size_accel_h: float
    size_sigma: float
    priority: int
    checkpoint_interval_s: float
    result_bytes: float


JOB_KINDS: tuple[JobKind, ...] = (
    # Fine-tuning / training shard: whole node, hours long, checkpoints every 30 min, ships
    # a ~20 GB model checkpoint (a 10B-parameter BF16 model).
    JobKind("training", (8,), 24.0, 0.5, 1, 1800.0, 20e9),
    # Batch inference / embedding over a data set: a few accelerators, ~1-2 h, results of a
    # few GB.
    JobKind("inference", (1, 2, 4), 2.0, 0.7, 2, 600.0, 4e9),
)
KIND_CODES: dict[str, int] = {kind.name: code for code, kind in enumerate(JOB_KINDS)}


@dataclass(frozen=True)
class WorkloadParams:
    """``[workload]``: the seeded arrival process and the scheduler's settings.

    Attributes:
        arrivals_per_node_h: Poisson arrival rate per node (1/h); scales with the fleet.
        training_frac: Fraction of arrivals that are training jobs (the rest inference).
        policy: Scheduler policy at start (``sun_aware`` or ``first_fit``).
        schedule_interval_s: Sim time between scheduling passes (s); commands trigger one.
        max_jobs_per_pass: Queued jobs considered per pass (bounds the pass cost).
        eclipse_runway_s: Sun-aware: a job starts only where the node stays sunlit for
            min(expected run time, this) (s).
        max_hold_s: Sun-aware: a job held longer than this starts anywhere with headroom (s).
        radiator_cool_k: Sun-aware: radiators at or below this count as cool (K).
        max_queue: Arrivals beyond this many queued jobs are dropped (and counted).
        initial_backlog_h: Jobs queued at the epoch: as many as arrive in this many hours.
        multi_node_jobs: Multi-node training jobs queued at the epoch (0: none).
        multi_node_nodes: Nodes each multi-node job holds (all their accelerators).
        multi_node_gradient_bytes: Gradient bytes all-reduced every iteration (B).
        multi_node_compute_s: Compute time of one iteration at full clock (s).
        multi_node_iterations: Iterations to finish a multi-node job.
        multi_node_checkpoint_interval_s: Run time between a multi-node job's checkpoints;
            it rides through a shorter stall and rolls back beyond (s).
        multi_node_step_latency_s: Latency of one ring all-reduce step (s).
        multi_node_regroup_s: ``network_aware``: a job whose links part restarts from its
            checkpoint on another connected group after this long (s).
        multi_node_settle_s: ``network_aware``: links up at least this long are preferred
            when placing a multi-node job (s).
        multi_node_checkpoint_bytes: A multi-node job's whole training state, written at
            each checkpoint, each member its 1/k share (B).
        multi_node_checkpoint_write_bytes_s: Rate a member writes its share to its local
            storage; the job trains not while it writes (B/s).
        multi_node_min_link_share: Share of a link's capacity the all-reduce keeps however
            much relay traffic the link carries (1).
    """

    arrivals_per_node_h: float = field(default=0.45, metadata={"min": 0.0, "max": 100.0,
                                                                 "unit": "1/h"})
    training_frac: float = field(default=0.3, metadata={"min": 0.0, "max": 1.0, "unit": "1"})
    policy: str = field(default="sun_aware", metadata={
        "choices": ("sun_aware", "first_fit", "network_aware")})
    schedule_interval_s: float = field(default=60.0, metadata={"gt": 0.0, "max": 86400.0,
                                                                 "unit": "s"})
    max_jobs_per_pass: int = field(default=256, metadata={"min": 1, "max": 100000})
    eclipse_runway_s: float = field(default=1200.0, metadata={"min": 0.0, "max": 86400.0,
                                                               "unit": "s"})
    max_hold_s: float = field(default=3600.0, metadata={"min": 0.0, "max": 864000.0,
                                                         "unit": "s"})
    radiator_cool_k: float = field(default=300.0, metadata={"gt": 0.0, "max": 1000.0,
                                                             "unit": "K"})
    max_queue: int = field(default=100000, metadata={"min": 1, "max": 1_000_000})
    initial_backlog_h: float = field(default=2.0, metadata={"min": 0.0, "max": 1000.0,
                                                             "unit": "h"})
    multi_node_jobs: int = field(default=0, metadata={"min": 0, "max": 64})
    multi_node_nodes: int = field(default=16, metadata={"min": 2, "max": 100000})
    multi_node_gradient_bytes: float = field(default=20e9, metadata={"min": 0.0, "max": 1e15,
                                                                     "unit": "B"})
    multi_node_compute_s: float = field(default=2.0, metadata={"gt": 0.0, "max": 86400.0,
                                                               "unit": "s"})
    multi_node_iterations: int = field(default=100000, metadata={"min": 1, "max": 10**12})
    multi_node_checkpoint_interval_s: float = field(default=1800.0, metadata={
        "gt": 0.0, "max": 864000.0, "unit": "s"})
    multi_node_step_latency_s: float = field(default=1e-5, metadata={"min": 0.0, "max": 10.0,
                                                                     "unit": "s"})
    multi_node_regroup_s: float = field(default=300.0, metadata={"min": 0.0, "max": 864000.0,
                                                                 "unit": "s"})
    multi_node_settle_s: float = field(default=600.0, metadata={"min": 0.0, "max": 864000.0,
                                                                "unit": "s"})
    # 10B parameters (the 20 GB of BF16 gradients) trained with mixed-precision Adam keep
    # 12 B a parameter (FP32 master weights, momentum and variance: Rajbhandari et al.,
    # ZeRO, SC 2020), 120 GB, sharded over the members as distributed checkpoints write it.
    multi_node_checkpoint_bytes: float = field(default=120e9, metadata={
        "min": 0.0, "max": 1e16, "unit": "B"})
    # One data-centre PCIe 4 NVMe drive's sustained sequential write (2-4 GB/s on vendor
    # sheets), the low end for storage flown in a radiation environment.
    multi_node_checkpoint_write_bytes_s: float = field(default=2e9, metadata={
        "gt": 0.0, "max": 1e12, "unit": "B/s"})
    # Two traffic classes with equal weights: the max-min fair share of two backlogged flows.
    multi_node_min_link_share: float = field(default=0.5, metadata={"min": 0.0, "max": 1.0,
                                                                     "unit": "1"})


class JobTable:
    """Every queued and running job, as parallel arrays indexed by slot.

    Finished and cancelled jobs leave the table (their slot is reused); their totals are
    kept by the compute model. A job changes state only through `add`, `start`, `requeue`
    and `release`: they keep the counts, the running set and the oldest queued submit time
    current, so the per-step reads (`running`, `n_queued`, ...) cost no pass over the table.
    """

    _COLUMNS: ClassVar[dict[str, tuple[str, float]]] = {
        "job_id": ("<i8", -1), "kind": ("|u1", 0), "state": ("|u1", EMPTY),
        "priority": ("<i2", 0), "accels": ("<i2", 0), "size_accel_s": ("<f8", 0.0),
        "done_accel_s": ("<f8", 0.0), "ckpt_accel_s": ("<f8", 0.0),
        "ckpt_interval_s": ("<f8", 0.0), "since_ckpt_s": ("<f8", 0.0),
        "result_bytes": ("<f8", 0.0), "submit_t": ("<f8", 0.0), "start_t": ("<f8", np.nan),
        "node": ("<i4", -1), "lost_accel_s": ("<f8", 0.0), "stall_until_t": ("<f8", -np.inf),
        "commanded": ("|b1", False), "upsets": ("<i4", 0),
    }
    # The columns add() does not set itself: a reused slot is cleared to their fill.
    _CLEARED_BY_ADD: ClassVar[tuple[str, ...]] = (
        "done_accel_s", "ckpt_accel_s", "since_ckpt_s", "start_t", "node", "lost_accel_s",
        "stall_until_t", "upsets")

    def __init__(self, capacity: int = 64) -> None:
        self.capacity = 0
        for name, (dtype, fill) in self._COLUMNS.items():
            setattr(self, name, np.full(0, fill, dtype=dtype))
        self._grow(capacity)
        self.next_id = 1
        self.n_queued = 0
        self.n_running = 0
        self.running_version = 0
        """Counts changes of the running set (a job started, requeued or released)."""
        self._running: np.ndarray | None = None
        self._oldest_queued_t = np.inf  # min submit_t over queued jobs; NaN: find it again

    # The columns, declared for type checkers (set in __init__ through _COLUMNS).
    job_id: np.ndarray
    kind: np.ndarray
    state: np.ndarray
    priority: np.ndarray
    accels: np.ndarray
    size_accel_s: np.ndarray
    done_accel_s: np.ndarray
    ckpt_accel_s: np.ndarray
    ckpt_interval_s: np.ndarray
    since_ckpt_s: np.ndarray
    result_bytes: np.ndarray
    submit_t: np.ndarray
    start_t: np.ndarray
    node: np.ndarray
    lost_accel_s: np.ndarray
    stall_until_t: np.ndarray
    commanded: np.ndarray
    upsets: np.ndarray

    def _grow(self, capacity: int) -> None:
        for name, (dtype, fill) in self._COLUMNS.items():
            old = getattr(self, name)
            new = np.full(capacity, fill, dtype=dtype)
            new[: len(old)] = old
            setattr(self, name, new)
        self.capacity = capacity

    def add(self, *, kind: int, accels: int, size_accel_s: float, priority: int,
            ckpt_interval_s: float, result_bytes: float, submit_t: float,
            commanded: bool = False) -> int:
        """Queue a job; returns its id (ids count from 1 and are never reused)."""
        slot = int(self.state.argmin())  # the first EMPTY slot: EMPTY is the lowest state
        if self.state[slot] != EMPTY:
            slot = self.capacity
            self._grow(2 * self.capacity)
        for name in self._CLEARED_BY_ADD:
            getattr(self, name)[slot] = self._COLUMNS[name][1]
        job_id = self.next_id
        self.next_id += 1
        self.job_id[slot] = job_id
        self.kind[slot] = kind
        self.state[slot] = QUEUED
        self.accels[slot] = accels
        self.size_accel_s[slot] = size_accel_s
        self.priority[slot] = priority
        self.ckpt_interval_s[slot] = ckpt_interval_s
        self.result_bytes[slot] = result_bytes
        self.submit_t[slot] = submit_t
        self.commanded[slot] = commanded
        self._joined_queue(submit_t)
        return job_id

    def slot_of(self, job_id: int) -> int:
        """The slot holding ``job_id``, or -1 when it is not queued or running."""
        found = np.flatnonzero((self.job_id == job_id) & (self.state != EMPTY))
        return int(found[0]) if found.size else -1

    def release(self, slot: int) -> None:
        """Take a job (queued or running) out of the table: finished or cancelled."""
        state = self.state[slot]
        if state == QUEUED:
            self.n_queued -= 1
            self._oldest_queued_t = np.nan
        elif state == RUNNING:
            self.n_running -= 1
            self._running_changed()
        self.state[slot] = EMPTY
        self.node[slot] = -1

    def start(self, slots: np.ndarray, nodes: np.ndarray, t_utc: float) -> None:
        """Start queued jobs ``slots`` (k,) on ``nodes`` (k,) at ``t_utc``."""
        self.state[slots] = RUNNING
        self.node[slots] = nodes
        self.start_t[slots] = t_utc
        self.since_ckpt_s[slots] = 0.0
        self.stall_until_t[slots] = -np.inf
        self.n_queued -= len(slots)
        self.n_running += len(slots)
        self._oldest_queued_t = np.nan
        self._running_changed()

    def requeue(self, slot: int) -> None:
        """Put a running job back in the queue (its node failed under it)."""
        self.state[slot] = QUEUED
        self.node[slot] = -1
        self.n_running -= 1
        self._joined_queue(float(self.submit_t[slot]))
        self._running_changed()

    def _joined_queue(self, submit_t: float) -> None:
        self.n_queued += 1
        oldest = self._oldest_queued_t
        if submit_t < oldest:
            self._oldest_queued_t = submit_t
        elif not submit_t >= oldest:  # NaN on either side: find it again when asked
            self._oldest_queued_t = np.nan

    def forget_kept(self) -> None:
        """Drop the kept running set and oldest submit time (found again when asked)."""
        self._running = None
        self._oldest_queued_t = np.nan

    def _running_changed(self) -> None:
        self.running_version += 1
        self._running = None

    def oldest_queued_submit_t(self) -> float:
        """The earliest submit time of a queued job (Unix s); inf when none is queued."""
        if np.isnan(self._oldest_queued_t):
            queued = self.waiting()
            self._oldest_queued_t = float(self.submit_t[queued].min()) if queued.size else np.inf
        return self._oldest_queued_t

    def queued(self) -> np.ndarray:
        """Slots of queued jobs in service order: priority (high first), then submit time."""
        slots = np.flatnonzero(self.state == QUEUED)
        order = np.lexsort((self.job_id[slots], self.submit_t[slots], -self.priority[slots]))
        return slots[order]

    def waiting(self) -> np.ndarray:
        """Slots of queued jobs in slot order (counts and minima: no sort needed)."""
        return np.flatnonzero(self.state == QUEUED)

    def running(self) -> np.ndarray:
        """Slots of running jobs in slot order (read-only; kept until the set changes)."""
        if self._running is None:
            self._running = np.flatnonzero(self.state == RUNNING)
            self._running.flags.writeable = False
        return self._running

    def describe(self, slot: int, now_t: float) -> dict[str, Any]:
        """One job as a plain map (command replies)."""
        state = {QUEUED: "queued", RUNNING: "running"}.get(int(self.state[slot]), "empty")
        return {
            "job_id": int(self.job_id[slot]), "kind": JOB_KINDS[int(self.kind[slot])].name,
            "state": state, "node": int(self.node[slot]), "accelerators": int(self.accels[slot]),
            "priority": int(self.priority[slot]),
            "size_accel_h": float(self.size_accel_s[slot] / SECONDS_PER_HOUR),
            "done_accel_h": float(self.done_accel_s[slot] / SECONDS_PER_HOUR),
            "checkpoint_accel_h": float(self.ckpt_accel_s[slot] / SECONDS_PER_HOUR),
            "lost_accel_h": float(self.lost_accel_s[slot] / SECONDS_PER_HOUR),
            "checkpoint_interval_s": float(self.ckpt_interval_s[slot]),
            "result_bytes": float(self.result_bytes[slot]),
            "submit_t_utc": float(self.submit_t[slot]),
            "start_t_utc": None if np.isnan(self.start_t[slot]) else float(self.start_t[slot]),
            "wait_s": float(now_t - self.submit_t[slot]),
            "upsets": int(self.upsets[slot]),
        }


def draw_arrivals(rng: np.random.Generator, params: WorkloadParams, n_nodes: int,
                  dt_s: float, max_accels: int, room: int | None = None
                  ) -> tuple[list[dict[str, Any]], int]:
    """Jobs arriving in one step from the seeded Poisson process.

    The number of draws from ``rng`` depends only on the scenario, the step count and the
    queue (itself seeded), so the same seed gives the same jobs at the same times.

    Args:
        room: Jobs the queue can still take; arrivals past it are dropped before they are
            built, so an extreme scenario (a long initial backlog at a high rate) never
            holds more than the queue does.

    Returns:
        Keyword maps for :meth:`JobTable.add` (without ``submit_t``), and the number of
        arrivals dropped for want of room.
    """
    rate = params.arrivals_per_node_h * n_nodes * dt_s / SECONDS_PER_HOUR
    if rate <= 0.0:
        return [], 0
    count = int(rng.poisson(rate))
    dropped = 0
    if room is not None and count > room:
        count, dropped = max(room, 0), count - max(room, 0)
    if count == 0:
        return [], dropped
    is_training = rng.random(count) < params.training_frac
    normals = rng.standard_normal(count)
    picks = rng.random(count)
    jobs = []
    for k in range(count):
        kind = JOB_KINDS[0] if is_training[k] else JOB_KINDS[1]
        choices = kind.accelerators
        accels = min(choices[int(picks[k] * len(choices))], max_accels)
        size_h = kind.median_size_accel_h * float(np.exp(kind.size_sigma * normals[k]))
        jobs.append({
            "kind": KIND_CODES[kind.name], "accels": accels,
            "size_accel_s": size_h * SECONDS_PER_HOUR, "priority": kind.priority,
            "ckpt_interval_s": kind.checkpoint_interval_s, "result_bytes": kind.result_bytes,
        })
    return jobs, dropped

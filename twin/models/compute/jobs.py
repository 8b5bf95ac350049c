"""Running jobs: arrivals, progress and checkpoints, finishes, rollbacks, evictions, starts.

``JobRunner`` owns the job table and everything that changes a job's state in a step; the
scheduler (``scheduler.plan``) only decides where queued jobs go, and the runner books its
placements. The runner also keeps the job counters of compute's fleet totals (the shared
``totals`` dict: work done and lost, jobs done, started, dropped, evicted, the wait sum)
and the recently finished jobs the ``job`` command answers for.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from twin.core.subsystem import StepContext
from twin.models.compute.downlink import ResultStore
from twin.models.compute.params import ComputeParams
from twin.models.compute.power_clock import NodeLoad
from twin.models.compute.workload import (
    SECONDS_PER_HOUR,
    JobTable,
    WorkloadParams,
    draw_arrivals,
)
from twin.scenario import Scenario

# Finished jobs kept for the `job` command, oldest dropped first.
MAX_FINISHED_KEPT = 1000


class Finished(NamedTuple):
    """The jobs that finished within a step: what of the step they left unused."""

    index: np.ndarray
    """(f,) positions in the step's running set (``run``) of the jobs that finished."""
    unused_s: np.ndarray
    """(f,) seconds from each one's finish to the step's end: its accelerators neither
    computed nor held a job then (they sleep)."""


class JobRunner:
    """The fleet's jobs through a step: from arrival to checkpoint, finish or rollback.

    Args:
        params: One node's payload (``[compute]``).
        workload: Arrivals and queue bounds (``[workload]``).
        scenario: The scenario (node count, satellite names for events).
        results: Where finished jobs leave their results.
        totals: Compute's running counters, shared with the model (updated in place).

    Attributes:
        jobs: The job table.
        finished: job id -> finish time, start time, node and work lost, for the most
            recent ``MAX_FINISHED_KEPT`` finished jobs.
    """

    def __init__(self, params: ComputeParams, workload: WorkloadParams, scenario: Scenario,
                 results: ResultStore, totals: dict[str, float]) -> None:
        self.params = params
        self.workload = workload
        self.scenario = scenario
        self.n_sats = len(scenario.satellites)
        self.results = results
        self.totals = totals
        self.jobs = JobTable()
        self.finished: dict[int, dict[str, Any]] = {}

    def rollback(self, slot: int) -> float:
        """Return a job to its last checkpoint; returns the work lost (accelerator-s)."""
        jobs = self.jobs
        lost = float(jobs.done_accel_s[slot] - jobs.ckpt_accel_s[slot])
        jobs.lost_accel_s[slot] += lost
        jobs.done_accel_s[slot] = jobs.ckpt_accel_s[slot]
        jobs.since_ckpt_s[slot] = 0.0
        self.totals["lost_accel_s"] += lost
        return lost

    def evict_failed(self, ctx: StepContext, n_ok: np.ndarray) -> bool:
        """Jobs whose accelerators failed go back to the queue from their checkpoint.

        Returns:
            Whether some node had more accelerators busy than working (and so lost jobs
            to the queue): the model then schedules again at once.
        """
        jobs = self.jobs
        run = jobs.running()
        busy = np.bincount(jobs.node[run], jobs.accels[run], minlength=self.n_sats)
        failed = np.flatnonzero(busy > n_ok)
        if failed.size == 0:
            return False
        for node in failed:  # loops over the few nodes just failed
            on_node = run[jobs.node[run] == node][::-1]  # newest slots first
            for slot in on_node:
                if busy[node] <= n_ok[node]:
                    break
                lost = self.rollback(slot)
                busy[node] -= jobs.accels[slot]
                jobs.requeue(slot)
                self.totals["jobs_evicted"] += 1
                ctx.events.raise_event(
                    "job_evicted", "warning", f"job {jobs.job_id[slot]} requeued: accelerator"
                    f" failure on {self.scenario.satellites[node].name}, lost"
                    f" {lost / SECONDS_PER_HOUR:.2f} accel-h", sat=int(node))
        return True

    def arrivals(self, ctx: StepContext, t: float) -> None:
        """Seeded arrivals of the step join the queue (those past ``max_queue`` dropped)."""
        # The epoch step (dt 0) opens with a backlog, so a run starts with busy nodes at
        # their working temperatures instead of spending hours filling an empty fleet.
        window_s = ctx.dt_s if ctx.dt_s > 0.0 else self.workload.initial_backlog_h * 3600.0
        new, dropped = draw_arrivals(ctx.rng, self.workload, self.n_sats, window_s,
                                     self.params.accelerators_per_node,
                                     room=self.workload.max_queue - self.jobs.n_queued)
        for spec in new:
            self.jobs.add(submit_t=t, **spec)
        self.totals["jobs_dropped"] += dropped

    def progress(self, ctx: StepContext, run: np.ndarray, load: NodeLoad, rate: np.ndarray,
                 active_s: float | np.ndarray, t: float) -> Finished | None:
        """Advance the running jobs, checkpoint them and finish those done.

        Args:
            run: (r,) slots of the running jobs.
            load: The step's load (built from ``run``).
            rate: (r,) accelerator-seconds of work per second.
            active_s: Seconds of this step each job computed, (r,) or one for all.
            t: End of the step (Unix s).

        Returns:
            The jobs that finished within the step and what of the step they did not use
            (``Finished``), or None when none finished (the usual step).
        """
        jobs = self.jobs
        if run.size == 0:
            return None
        work = rate * active_s
        done = jobs.done_accel_s[run]
        remaining = load.size_s - done
        computing = rate > 0.0
        all_computing = np.count_nonzero(computing) == computing.size
        finishing = work >= remaining
        if not all_computing:
            finishing &= computing
        advance = np.minimum(work, remaining)
        done += advance
        jobs.done_accel_s[run] = done
        self.totals["work_done_accel_s"] += float(advance.sum())
        since = jobs.since_ckpt_s[run]
        since += active_s if all_computing else np.where(computing, active_s, 0.0)
        jobs.since_ckpt_s[run] = since
        interval = load.interval_s
        due = since >= interval
        n_finishing = np.count_nonzero(finishing)
        if n_finishing:
            due &= ~finishing
        if np.count_nonzero(due):
            slots = run[due]
            jobs.ckpt_accel_s[slots] = done[due]
            jobs.since_ckpt_s[slots] = np.mod(since[due], interval[due])
        if not n_finishing:
            return None
        which = np.flatnonzero(finishing)
        # Seconds of the step each finishing job's accelerators no longer computed, and no
        # longer held it: from its finish to the step's end.
        unused_s = np.empty(which.size)
        for i, k in enumerate(which):  # the few jobs finishing this step
            slot = int(run[k])
            # Work starts when the stall (if any) ends, at t - active_s.
            started = active_s if np.ndim(active_s) == 0 else active_s[k]
            finish_t = t - started + remaining[k] / rate[k]
            unused_s[i] = max(t - finish_t, 0.0)
            self._finish(ctx, slot, finish_t)
        return Finished(which, unused_s)

    def _finish(self, ctx: StepContext, slot: int, finish_t: float) -> None:
        """One job done: its result to storage, its record kept, its slot freed."""
        jobs = self.jobs
        node = int(jobs.node[slot])
        job_id = int(jobs.job_id[slot])
        self.results.add(node, float(jobs.result_bytes[slot]), finish_t, job_id)
        self.totals["jobs_done"] += 1
        self.finished[job_id] = {"finish_t_utc": finish_t, "start_t_utc": float(jobs.start_t[slot]),
                                 "node": node, "lost_accel_s": float(jobs.lost_accel_s[slot])}
        if len(self.finished) > MAX_FINISHED_KEPT:  # keep the recent ones for `job`
            self.finished.pop(next(iter(self.finished)))
        if jobs.commanded[slot]:
            ctx.events.raise_event(
                "job_done", "info", f"job {job_id} finished on"
                f" {self.scenario.satellites[node].name}", sat=node, job_id=job_id)
        jobs.release(slot)

    def start(self, placements: list[tuple[int, int]], t: float) -> None:
        """Start the scheduler's placements, (slot, node) pairs, at ``t``; they run from the
        next step."""
        if not placements:
            return
        jobs = self.jobs
        slots, nodes = np.array(placements, dtype=np.int64).T
        jobs.start(slots, nodes, t)
        self.totals["jobs_started"] += len(placements)
        wait_sum_s = self.totals["wait_sum_s"]
        for wait_s in (t - jobs.submit_t[slots]).tolist():  # in order: same rounding
            wait_sum_s += wait_s
        self.totals["wait_sum_s"] = wait_sum_s

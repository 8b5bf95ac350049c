"""The scheduling pass: what each node has free, where queued jobs go, why the rest wait.

Every ``schedule_interval_s`` (or on the next step after a command or an eviction) the
model runs a pass: ``Placement`` works out each node's free accelerators, free result
storage, power room under the cap in force and whether it is usable (orbit, heat), hands
them to ``scheduler.plan`` (the policies), has the job runner start what it placed, and
records why each node's free accelerators stay free (its idle reason, which the model's
``limit_reason`` field starts from).

``scheduler.plan`` is called through its module, not imported by name, so that
bench/compute.py can time it by replacing the module's attribute.
"""

from __future__ import annotations

import numpy as np

from twin.core.subsystem import StepContext
from twin.models.compute import scheduler
from twin.models.compute.downlink import ResultStore
from twin.models.compute.jobs import JobRunner
from twin.models.compute.multinode import MultiNodeJobs
from twin.models.compute.params import (
    ECLIPSE_AHEAD,
    FAULT,
    HEAT,
    POWER,
    QUEUE,
    STORAGE,
    ComputeParams,
)
from twin.models.compute.power_clock import ThermalThrottle
from twin.models.compute.workload import WorkloadParams


class Placement:
    """The scheduling pass of every node, and its outcome.

    Args:
        params: One node's payload (``[compute]``).
        workload: The scheduler's parameters (``[workload]``).
        runner: The jobs: the queue to place, and who starts the placements.
        results: Result storage (its backlog takes storage a new job's result needs).
        throttle: The thermal throttle (a throttled chip takes no new work).

    Attributes:
        idle_reason: (n,) uint8 limit-reason code of each node's free accelerators after
            the last pass (``QUEUE`` ... ``ECLIPSE_AHEAD``).
        idle_reason_version: Counts the passes: the idle reasons may have changed when it
            has (the model's published fields follow from them).
        to_eclipse_s: (n,) predicted time to each node's next eclipse (s), from the last
            sun-aware pass.
        last_pass: The scheduler's refusal counts of the last pass.
    """

    def __init__(self, params: ComputeParams, workload: WorkloadParams, runner: JobRunner,
                 results: ResultStore, throttle: ThermalThrottle) -> None:
        n = runner.n_sats
        self.params = params
        self.workload = workload
        self.runner = runner
        self.results = results
        self.throttle = throttle
        self.n_sats = n
        self.idle_reason = np.full(n, QUEUE, dtype=np.uint8)
        self.idle_reason_version = 0
        self.to_eclipse_s = np.full(n, np.inf)
        self.last_pass: dict[str, int] = {}
        self.multinode: MultiNodeJobs | None = None  # set by the model when configured

    def run(self, ctx: StepContext, policy: str, n_ok: np.ndarray, idle_resetting: np.ndarray,
            cap: np.ndarray, orbit_ok: np.ndarray, t: float) -> None:
        """One pass: place what fits under ``policy``, start it, and note why the rest waits.

        Args:
            policy: ``first_fit``, ``sun_aware`` or ``network_aware``
                (``scheduler.POLICIES``).
            n_ok: (n,) working accelerators.
            idle_resetting: (n,) accelerators without a job still resetting.
            cap: (n,) power cap in force (W; inf: none).
            orbit_ok: (n,) nodes with a usable orbit.
            t: End of the step (Unix s): placed jobs start then.
        """
        p = self.params
        n = self.n_sats
        jobs = self.runner.jobs
        run = jobs.running()
        rnode = jobs.node[run]
        busy = np.bincount(rnode, jobs.accels[run], minlength=n)
        reserved = np.bincount(rnode, jobs.result_bytes[run], minlength=n)
        free_accels = np.clip(n_ok - busy - idle_resetting, 0, None)
        free_storage = p.storage_bytes - self.results.backlog.array - reserved
        sleeping = np.clip(n_ok - busy, 0, None)
        full_draw = (p.host_power_w + busy * p.full_power_w + sleeping * p.sleep_power_w)
        power_room = cap - full_draw
        # No new work on a die or HBM within the throttle's hysteresis of its limit.
        junction, hbm = ctx.thermal.temp_junction_k, ctx.thermal.temp_hbm_k
        cool_enough = ~self.throttle.on
        if junction is not None:
            cool_enough &= np.asarray(junction) < p.throttle_temp_k - p.throttle_hysteresis_k
        if hbm is not None:
            cool_enough &= np.asarray(hbm) < p.hbm_throttle_temp_k - p.throttle_hysteresis_k
        usable = orbit_ok & cool_enough
        orbit = ctx.orbit
        sunlit = np.asarray(np.ones(n) if orbit.sunlit_frac is None else orbit.sunlit_frac)
        if orbit.pos_gcrs_km is not None and policy != "first_fit":  # first-fit ignores it
            _, to_eclipse, _ = scheduler.eclipse_lookahead(
                orbit.pos_gcrs_km, orbit.vel_gcrs_km_s, orbit.sun_gcrs_km,
                orbit.polar_axis_gcrs, orbit.shadow_stretch or 1.0,
                orbit.shadow_radius_km or scheduler.SHADOW_RADIUS_KM)
            self.to_eclipse_s = to_eclipse
        if self.multinode is not None:  # whole nodes for multi-node jobs first
            self.multinode.place(ctx, policy, free_accels, usable, power_room,
                                 p.full_power_w - p.sleep_power_w, t)
        radiator_k = ctx.thermal.temp_radiator_k
        radiator = np.asarray(np.zeros(n) if radiator_k is None else radiator_k)
        placements, why = scheduler.plan(
            policy, self.workload, jobs, t, free_accels=free_accels,
            free_storage_b=free_storage, power_room_w=power_room,
            accel_full_w=p.full_power_w - p.sleep_power_w, usable=usable, sunlit_frac=sunlit,
            to_eclipse_s=self.to_eclipse_s, radiator_k=radiator)
        self.last_pass = why
        self.runner.start(placements, t)
        self._idle_reasons(policy, free_accels, free_storage, power_room, usable, orbit_ok,
                           p.full_power_w - p.sleep_power_w)

    def _idle_reasons(self, policy: str, free_accels: np.ndarray, free_storage: np.ndarray,
                      power_room: np.ndarray, usable: np.ndarray, orbit_ok: np.ndarray,
                      accel_full_w: float) -> None:
        """Why each node's free accelerators stay free after a pass (checked in order)."""
        jobs = self.runner.jobs
        queued = jobs.waiting()
        reason = self.idle_reason
        self.idle_reason_version += 1
        if queued.size == 0:
            reason[:] = QUEUE
            return
        smallest = int(jobs.accels[queued].min())
        least_storage = float(jobs.result_bytes[queued].min())
        reason[:] = QUEUE if policy == "first_fit" else ECLIPSE_AHEAD
        reason[power_room < smallest * accel_full_w] = POWER
        reason[free_storage < least_storage] = STORAGE
        reason[~usable] = HEAT
        reason[~orbit_ok] = FAULT
        reason[free_accels < smallest] = QUEUE

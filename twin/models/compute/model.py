"""The compute subsystem: each node a small data center, coupled to heat, power and radiation.

Per node: accelerators (count, peak BF16 FLOP/s, idle / full power, a DVFS curve), result
storage, the jobs it runs. Each step, in order:

1. jobs on accelerators that failed (faults) roll back to their checkpoint and requeue;
2. radiation upsets roll jobs back to their last checkpoint, some with a device reset;
3. seeded arrivals join the queue;
4. the node clock: the DVFS point that keeps the payload under the power cap in force
   (power's ``power_cap_w`` from the previous step, or the operator's, the lower), capped
   again while the chip is thermally throttled (``temp_compute_k``, with hysteresis);
5. jobs progress, checkpoint and finish; results go to storage;
6. the scheduler places queued jobs (every ``schedule_interval_s``, or at once after a
   command); they run from the next step;
7. results downlink over ground contacts;
8. per-node "why not more" reasons and fleet totals.

Publishes ``compute_power_w`` (n,) for power and thermal: everything the payload draws,
which is also the heat it puts into the compute thermal node.

Most steps change little for compute: no job starts or ends, no cap, no throttle, no
fault. What follows only from the running set and the working accelerators (each node's
load, and at full clock its power and delivered FLOP/s) is kept until one of them
changes, and the per-node fields are rewritten only when something they follow from has
changed; the numbers are those a full recomputation gives, bit for bit (docs/performance.md).

A node mirrored by a live testbed (twin/models/mirror.py) takes its measured drivers (the
mirror's ``DriverOutputs``) at the end of this step through ``take_measured``: measured
utilization sets the node's busy accelerators, and from them its DVFS clock, delivered
FLOP/s and (unless measured too) its power; measured power replaces the power.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from twin.core.interfaces import ComputeOutputs
from twin.core.subsystem import (
    CommandHandler,
    Field,
    StepContext,
    make_field,
)
from twin.models.compute import scheduler
from twin.models.compute.commands import ComputeCommands
from twin.models.compute.downlink import ResultStore
from twin.models.compute.jobs import JobRunner
from twin.models.compute.params import (
    ECLIPSE_AHEAD,
    FAULT,
    HEAT,
    LIMIT_REASONS,
    NONE,
    PFLOP,
    POWER,
    QUEUE,
    RADIATION,
    STORAGE,
    THROTTLE_CODES,
    ComputeParams,
)
from twin.models.compute.power_clock import NodeLoad, dvfs_clock, dynamic_w, read_only
from twin.models.compute.radiation import RadiationParams, RadiationState
from twin.models.compute.upsets import Upsets
from twin.models.compute.workload import (
    JOB_KINDS,
    SECONDS_PER_HOUR,
    WorkloadParams,
)
from twin.scenario import Scenario, parse_section


def _same_inputs(key: tuple[Any, ...] | None, last: tuple[Any, ...] | None) -> bool:
    """Whether two ``(load, idle_resetting, *values)`` keys match: the same two objects
    (arrays compare by identity: they are replaced, never changed) and equal values."""
    return (key is not None and last is not None and key[0] is last[0] and key[1] is last[1]
            and key[2:] == last[2:])




class ComputeModel:
    """Accelerators, jobs, radiation and downlink of every node.

    Args:
        scenario: The loaded scenario (``[compute]``, ``[workload]``, ``[radiation]``).
    """

    name = "compute"
    reads: tuple[str, ...] = ("orbit", "faults", "drivers", "power", "thermal")
    publishes = "compute"

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.params = parse_section(ComputeParams, scenario, "compute")
        self.workload = parse_section(WorkloadParams, scenario, "workload")
        self.radiation = RadiationState(parse_section(RadiationParams, scenario, "radiation"),
                                        len(scenario.satellites))
        n = len(scenario.satellites)
        a = self.params.accelerators_per_node
        self.n_sats = n
        self.policy = self.workload.policy
        self.results = ResultStore(n, np.array([s.downlink_bps for s in scenario.stations]))
        self.totals = dict(work_done_accel_s=0.0, lost_accel_s=0.0, energy_j=0.0, jobs_done=0,
                           jobs_started=0, wait_sum_s=0.0, jobs_cancelled=0, jobs_dropped=0,
                           jobs_submitted=0, jobs_evicted=0)
        self.runner = JobRunner(self.params, self.workload, scenario, self.results, self.totals)
        self.jobs = self.runner.jobs
        self.finished = self.runner.finished
        self.upsets = Upsets(self.radiation, self.runner, scenario, a)
        self._commands = ComputeCommands(self)
        self.outputs = ComputeOutputs()  # filled by each step
        f = make_field
        self.utilization = f("utilization_frac", "<f4", (n,), "1",
                             "Working accelerators holding a job")
        self.delivered = f("delivered_flop_s", "<f4", (n,), "FLOP/s",
                           "Job progress rate, BF16 FLOP/s")
        self.clock = f("clock_frac", "<f4", (n,), "1", "DVFS clock of busy accelerators",
                       fill=1.0)
        self.throttle = f("throttle_code", "|u1", (n,), "code",
                          "Why the node runs below full speed", labels=THROTTLE_CODES)
        self.reason = f("limit_reason", "|u1", (n,), "code",
                        "Why not more compute", labels=LIMIT_REASONS)
        self.cap = f("compute_cap_w", "<f4", (n,), "W",
                     "Power cap in force on the payload (inf: none)", fill=np.inf)
        self.power = f("compute_power_w", "<f4", (n,), "W",
                       "Electrical power drawn by the payload (= heat into it)")
        self.jobs_running = f("jobs_running", "<u2", (n,), "count", "Jobs running")
        self.busy = f("accelerators_busy", "|u1", (n,), "count", "Accelerators holding a job")
        self.operator_cap_w = np.full(n, np.inf)
        self.thermal_on = np.zeros(n, dtype=bool)
        self.idle_reason = np.full(n, QUEUE, dtype=np.uint8)
        self.to_eclipse_s = np.full(n, np.inf)
        self._no_resets = self.upsets.no_resets
        self._next_schedule_t = -np.inf
        # Constant arrays the usual step shares instead of building anew.
        self._full_clock = read_only(np.ones(n))
        self._no_cap = read_only(np.full(n, np.inf))
        self._orbit_all_ok = read_only(np.ones(n, dtype=bool))
        # Working accelerators: the source's bytes, the int64 counts (read-only, replaced
        # when they change), which nodes lack some, and whether any does.
        self._ok_key: tuple[str, tuple[int, ...], bytes] | None = None
        self._ok = read_only(np.full(n, a, dtype=np.int64))
        self._ok_short = read_only(np.zeros(n, dtype=bool))
        self._ok_all = True
        self._ok_some = True  # every node has a working accelerator
        self._n_thermal = 0  # nodes thermally throttled (count of thermal_on)
        self._load: NodeLoad | None = None
        self._idle_reason_version = 0
        # What the published fields were computed from, when a later step may skip
        # rewriting them (None: rewrite), and their fleet totals (None: sum them again).
        self._published: tuple[Any, ...] | None = None
        self._field_totals: dict[str, float] | None = None
        self._written: dict[str, np.ndarray] = {}  # field -> the constant array it holds
        # This step's inputs the mirror's measured drivers are derived with (take_measured).
        self._n_ok = self._ok
        self._cap_w = np.full(n, np.inf)
        self._failed = np.zeros(n, dtype=bool)
        self._dt_s = 0.0
        self.last_pass: dict[str, int] = {}
        self.t_utc = scenario.epoch_utc.timestamp()

    # ----------------------------------------------------------------------------------
    # Engine contract

    def fields(self) -> list[Field]:
        return [self.utilization, self.delivered, self.clock, self.throttle, self.reason,
                self.cap, self.power, self.jobs_running, self.busy,
                *self.radiation.fields(), *self.results.fields()]

    def step(self, ctx: StepContext) -> None:
        p = self.params
        n = self.n_sats
        t, dt = ctx.t_utc, ctx.dt_s
        t0 = t - dt
        self.t_utc = t
        n_ok, ok_changed = self._working_accelerators(ctx.faults.accelerators_ok)

        if ok_changed and self.runner.evict_failed(ctx, n_ok):
            self.schedule_now()
        if dt > 0.0:
            self.upsets.step(ctx, n_ok, t0)
        self.runner.arrivals(ctx, t)

        # Node clock from the power cap in force and the chip temperature.
        jobs = self.jobs
        run = jobs.running()
        active_s: float | np.ndarray
        active_frac: float | np.ndarray
        if self.upsets.stall_horizon_t > t0:  # a running job may be stalled by a device reset
            active_s = np.clip(t - np.maximum(t0, jobs.stall_until_t[run]), 0.0, dt)
            active_frac = active_s / dt if dt > 0.0 else np.ones_like(active_s)
        else:  # every job computes from t0: the same numbers, one for all
            active_s = min(max(t - t0, 0.0), dt)
            active_frac = active_s / dt if dt > 0.0 else 1.0
        load = self._load
        if load is None or not load.same(jobs, n_ok, active_frac):
            load = NodeLoad(p, jobs, run, n_ok, active_frac)
            self._load = load if isinstance(active_frac, float) else None
        idle_resetting = self.upsets.idle_resetting(t0)
        # Power's cap of the last step (none before power's first step).
        power_cap_w = ctx.power.power_cap_w
        cap = np.minimum(np.asarray(np.inf if power_cap_w is None else power_cap_w,
                                    dtype=float), self.operator_cap_w)
        # No cap anywhere (the usual case in sunlight): every node has room for full clock.
        uncapped = bool(cap.size == 0 or cap.min() == np.inf)
        if uncapped:
            cap = self._no_cap  # the same numbers, an array the cap field may already hold
        f_cap = (self._full_clock if uncapped
                 else dvfs_clock(p, cap, load.static, load.dynamic_full))
        self._thermal(ctx, ctx.thermal.temp_compute_k)
        full_clock = uncapped and not self._n_thermal
        if full_clock:
            clock = f_cap
            power, power_sum, delivered = load.full_clock()
            rate = load.acc  # acc * clock 1
        else:
            if self._n_thermal:
                clock = np.where(self.thermal_on, np.minimum(f_cap, p.thermal_clock_frac),
                                 f_cap)
            else:
                clock = f_cap
            power = load.static + dynamic_w(load.dynamic_full, clock, p.dvfs_exponent)
            power_sum = float(power.sum())
            rate = load.acc * clock[load.rnode]  # accelerator-seconds of work per second

        # Progress, checkpoints, completions.
        self.runner.progress(ctx, run, load, rate, active_s, t)
        if not full_clock:
            delivered = np.bincount(load.rnode, rate * active_frac, minlength=n) * p.peak_flop_s

        orbit = ctx.orbit
        status = orbit.orbit_status
        orbit_all_ok = status is None or not np.count_nonzero(status)
        orbit_ok = self._orbit_all_ok if orbit_all_ok else np.asarray(status) == 0
        if t >= self._next_schedule_t:
            self._schedule(ctx, n_ok, idle_resetting, cap, orbit_ok, t)
            self._next_schedule_t = t + self.workload.schedule_interval_s

        contact = orbit.contact_station
        # No relay model yet (inter-satellite links, issue 19): ground contacts only.
        self.results.step(t, dt, np.full(n, -1) if contact is None else np.asarray(contact),
                          None)

        # The fields hold the same values as after the last step when nothing they follow
        # from has changed: the load (running set, working accelerators), the idle devices
        # resetting, the running set as the step ends, the queue's emptiness and the idle
        # reasons, with no cap, no throttle and every orbit usable, now as then.
        key = None
        if full_clock and load is self._load and orbit_all_ok:
            key = (load, idle_resetting, jobs.running_version, jobs.n_queued == 0,
                   self._idle_reason_version)
        if not _same_inputs(key, self._published):
            self._publish(n_ok, load, clock, f_cap, cap, power, delivered, idle_resetting,
                          orbit_ok, jobs.n_queued == 0)
            self._published = key
        self.totals["energy_j"] += power_sum * dt
        self.outputs.compute_power_w = self.power.array
        self._n_ok, self._cap_w, self._dt_s = n_ok, cap, dt
        drivers = ctx.drivers
        if drivers.mirror_sat.size:
            self.take_measured(drivers.mirror_sat, drivers.measured_drivers)

    def forget_kept(self) -> None:
        """Drop every value kept from step to step: the next step computes all afresh.

        The kept values are those a fresh computation gives, bit for bit; the tests check
        it against a model made to forget before every step.
        """
        self._load = self._ok_key = None
        self._published = self._field_totals = None
        self._written.clear()
        self.jobs.forget_kept()
        self.upsets.forget_kept()
        self.results.forget_kept()

    def _working_accelerators(self, source: Any) -> tuple[np.ndarray, bool]:
        """Working accelerators per node, and whether they changed since the last step.

        Args:
            source: faults' ``accelerators_ok`` (n,), or None (all installed work).

        Returns:
            (n,) int64 counts, read-only: the same object for as long as they stay the same
            (radiation keeps its rates while they do), and whether they changed.
        """
        if source is None:
            key = None
        else:
            source = np.asarray(source)
            key = (source.dtype.str, source.shape, source.tobytes())
        if key == self._ok_key:  # a byte compare: faults change only by command
            return self._ok, False
        installed = self.params.accelerators_per_node
        n_ok = (np.full(self.n_sats, installed, dtype=np.int64) if source is None
                else source.astype(np.int64))
        changed = not np.array_equal(n_ok, self._ok)
        self._ok_key = key
        if changed:
            self._ok = read_only(n_ok)
            self._ok_short = read_only(n_ok < installed)
            self._ok_all = not np.count_nonzero(self._ok_short)
            self._ok_some = bool(np.count_nonzero(n_ok) == n_ok.size)
        return self._ok, changed

    def fleet(self) -> dict[str, float]:
        tot = self.totals
        p = self.params
        useful_s = tot["work_done_accel_s"] - tot["lost_accel_s"]
        useful_pflop = useful_s * p.peak_flop_s / PFLOP
        jobs = self.jobs
        n_acc = self.n_sats * p.accelerators_per_node
        # Sums over the per-node fields, kept until the fields are written again.
        sums = self._field_totals
        if sums is None:  # written from outside (the mirror): count everything again
            throttle = self.throttle.array
            sums = self._field_totals = {
                "jobs_running": int(self.jobs_running.array.sum()),
                "n_throttled_thermal": int(np.count_nonzero(throttle == 1)),
                "n_throttled_power": int(np.count_nonzero(throttle == 2)),
            }
        if "compute_power_w" not in sums:
            sums["delivered_pflop_s"] = float(self.delivered.array.sum(dtype=np.float64)) / PFLOP
            sums["accelerators_busy"] = float(self.busy.array.sum()) + 0.0
            sums["compute_power_w"] = float(self.power.array.sum(dtype=np.float64))
        upsets, resets = self.radiation.totals()
        return {
            "delivered_pflop_s": sums["delivered_pflop_s"],
            "peak_pflop_s": n_acc * p.peak_flop_s / PFLOP,
            "accelerators_busy": sums["accelerators_busy"],
            "goodput_frac": useful_s / tot["work_done_accel_s"] if tot["work_done_accel_s"]
            else 1.0,
            "useful_work_accel_h": useful_s / SECONDS_PER_HOUR,
            "lost_work_accel_h": tot["lost_accel_s"] / SECONDS_PER_HOUR,
            "compute_power_w": sums["compute_power_w"],
            "compute_energy_j": tot["energy_j"],
            "energy_per_work_j_per_pflop": tot["energy_j"] / useful_pflop if useful_pflop > 0
            else 0.0,
            "queue_length": jobs.n_queued,
            "queue_wait_mean_s": tot["wait_sum_s"] / tot["jobs_started"] if tot["jobs_started"]
            else 0.0,
            "queue_oldest_s": float(self.t_utc - jobs.oldest_queued_submit_t())
            if jobs.n_queued else 0.0,
            "jobs_running": sums["jobs_running"],
            "jobs_done": tot["jobs_done"],
            "jobs_cancelled": tot["jobs_cancelled"],
            "jobs_dropped": tot["jobs_dropped"],
            "jobs_evicted": tot["jobs_evicted"],
            "upsets_total": upsets,
            "device_resets_total": resets,
            "n_throttled_thermal": sums["n_throttled_thermal"],
            "n_throttled_power": sums["n_throttled_power"],
            "scheduler_policy_code": scheduler.POLICIES[self.policy],
            **self.results.fleet(self.t_utc),
        }

    def meta(self) -> dict[str, Any]:
        p = self.params
        return {
            "accelerators_per_node": p.accelerators_per_node,
            "peak_flop_s_per_accelerator": p.peak_flop_s,
            "full_power_w": p.full_power_w, "idle_power_w": p.idle_power_w,
            "sleep_power_w": p.sleep_power_w, "host_power_w": p.host_power_w,
            "dvfs_exponent": p.dvfs_exponent, "min_clock_frac": p.min_clock_frac,
            "throttle_temp_k": p.throttle_temp_k,
            "throttle_hysteresis_k": p.throttle_hysteresis_k,
            "storage_bytes": p.storage_bytes,
            "throttle_codes": {str(k): v for k, v in THROTTLE_CODES.items()},
            "limit_reasons": {str(k): v for k, v in LIMIT_REASONS.items()},
            "scheduler_policies": {name: code for name, code in scheduler.POLICIES.items()},
            "policy": self.policy,
            "job_kinds": [kind.name for kind in JOB_KINDS],
            "radiation": self.radiation.meta(),
            "downlink": self.results.meta(),
            "fleet_units": {
                "delivered_pflop_s": "PFLOP/s", "peak_pflop_s": "PFLOP/s",
                "goodput_frac": "1 (useful work / work done)",
                "energy_per_work_j_per_pflop": "J per useful PFLOP (BF16)",
                "useful_work_accel_h": "accelerator-hours", "queue_wait_mean_s": "s",
                "results_delivered_bytes": "B", "downlink_backlog_bytes": "B",
            },
        }

    def commands(self) -> dict[str, CommandHandler]:
        return self._commands.handlers()

    def schedule_now(self) -> None:
        """Run a scheduling pass on the next step, not ``schedule_interval_s`` after the
        last: what the scheduler would do has changed (a command, an eviction)."""
        self._next_schedule_t = -np.inf

    # ----------------------------------------------------------------------------------
    # Step parts

    def _thermal(self, ctx: StepContext, temp_k: np.ndarray | None) -> None:
        """Hysteresis: cut above the limit, lift below limit - hysteresis."""
        if temp_k is None:
            return
        p = self.params
        temp = np.asarray(temp_k)
        hot = temp > p.throttle_temp_k
        if not self._n_thermal and not np.count_nonzero(hot):
            return  # none throttled and none too hot: nothing changes
        was = self.thermal_on.copy()
        # On above the limit, off below limit - hysteresis, as it was in between (and NaN).
        on = hot | (was & ~(temp < p.throttle_temp_k - p.throttle_hysteresis_k))
        self.thermal_on[:] = on
        self._n_thermal = int(np.count_nonzero(on))
        for node in np.flatnonzero(on != was):  # the few nodes that changed this step
            name = self.scenario.satellites[node].name
            if on[node]:
                ctx.events.raise_event(
                    "thermal_throttle", "warning", f"{name}: chip {temp[node]:.1f} K above"
                    f" {p.throttle_temp_k:.1f} K, clock cut to {p.thermal_clock_frac:.0%}",
                    sat=int(node))
            else:
                ctx.events.raise_event("thermal_throttle_end", "info",
                                       f"{name}: chip {temp[node]:.1f} K, full clock again",
                                       sat=int(node))

    def _schedule(self, ctx: StepContext, n_ok: np.ndarray, idle_resetting: np.ndarray,
                  cap: np.ndarray, orbit_ok: np.ndarray, t: float) -> None:
        p = self.params
        n = self.n_sats
        jobs = self.jobs
        run = jobs.running()
        rnode = jobs.node[run]
        busy = np.bincount(rnode, jobs.accels[run], minlength=n)
        reserved = np.bincount(rnode, jobs.result_bytes[run], minlength=n)
        free_accels = np.clip(n_ok - busy - idle_resetting, 0, None)
        free_storage = p.storage_bytes - self.results.backlog.array - reserved
        sleeping = np.clip(n_ok - busy, 0, None)
        full_draw = (p.host_power_w + busy * p.full_power_w + sleeping * p.sleep_power_w)
        power_room = cap - full_draw
        temp = ctx.thermal.temp_compute_k
        cool_enough = ~self.thermal_on
        if temp is not None:
            cool_enough &= np.asarray(temp) < p.throttle_temp_k - p.throttle_hysteresis_k
        usable = orbit_ok & cool_enough
        orbit = ctx.orbit
        sunlit = np.asarray(np.ones(n) if orbit.sunlit_frac is None else orbit.sunlit_frac)
        if orbit.pos_gcrs_km is not None and self.policy == "sun_aware":  # first-fit ignores it
            _, to_eclipse, _ = scheduler.eclipse_lookahead(
                orbit.pos_gcrs_km, orbit.vel_gcrs_km_s, orbit.sun_gcrs_km)
            self.to_eclipse_s = to_eclipse
        radiator_k = ctx.thermal.temp_radiator_k
        radiator = np.asarray(np.zeros(n) if radiator_k is None else radiator_k)
        placements, why = scheduler.plan(
            self.policy, self.workload, jobs, t, free_accels=free_accels,
            free_storage_b=free_storage, power_room_w=power_room,
            accel_full_w=p.full_power_w - p.sleep_power_w, usable=usable, sunlit_frac=sunlit,
            to_eclipse_s=self.to_eclipse_s, radiator_k=radiator)
        self.last_pass = why
        self.runner.start(placements, t)
        self._idle_reasons(free_accels, free_storage, power_room, usable, orbit_ok,
                           p.full_power_w - p.sleep_power_w)

    def _idle_reasons(self, free_accels: np.ndarray, free_storage: np.ndarray,
                      power_room: np.ndarray, usable: np.ndarray, orbit_ok: np.ndarray,
                      accel_full_w: float) -> None:
        """Why each node's free accelerators stay free after a pass (checked in order)."""
        jobs = self.jobs
        queued = jobs.waiting()
        reason = self.idle_reason
        self._idle_reason_version += 1
        if queued.size == 0:
            reason[:] = QUEUE
            return
        smallest = int(jobs.accels[queued].min())
        least_storage = float(jobs.result_bytes[queued].min())
        reason[:] = ECLIPSE_AHEAD if self.policy == "sun_aware" else QUEUE
        reason[power_room < smallest * accel_full_w] = POWER
        reason[free_storage < least_storage] = STORAGE
        reason[~usable] = HEAT
        reason[~orbit_ok] = FAULT
        reason[free_accels < smallest] = QUEUE

    def _publish(self, n_ok: np.ndarray, load: NodeLoad, clock: np.ndarray, f_cap: np.ndarray,
                 cap: np.ndarray, power: np.ndarray, delivered: np.ndarray,
                 idle_resetting: np.ndarray, orbit_ok: np.ndarray, queue_empty: bool) -> None:
        """Write the step's per-node fields, and the reasons why not more compute.

        The shared constant arrays (full clock, every orbit usable, no idle device
        resetting, no accelerator missing) stand for "nothing here": the terms they would
        add are left out.
        """
        p = self.params
        installed = p.accelerators_per_node
        self.delivered.array[:] = delivered
        self.power.array[:] = power
        # Clock and cap are mostly the constant full-clock and no-cap arrays: written again
        # only when they were not already.
        for out, source in ((self.clock, clock), (self.cap, cap)):
            if self._written.get(out.spec.name) is not source:
                out.array[:] = source
                self._written[out.spec.name] = source
        # Occupancy as the step ends (after finishes and placements).
        jobs = self.jobs
        if jobs.running_version == load.running_version:  # the same jobs as it started
            rnode, jobs_per_node, busy = load.rnode, load.jobs_per_node(), load.busy
        else:
            run = jobs.running()
            rnode = jobs.node[run]
            jobs_per_node = np.bincount(rnode, minlength=self.n_sats)
            busy = np.bincount(rnode, jobs.accels[run], minlength=self.n_sats)
        self.jobs_running.array[:] = jobs_per_node
        self.busy.array[:] = busy
        if self._ok_some:  # busy / n_ok everywhere, rounded once to the field's float32
            np.divide(busy, n_ok, out=self.utilization.array, casting="same_kind")
        else:
            self.utilization.array[:] = np.divide(busy, n_ok, out=np.zeros(self.n_sats),
                                                  where=n_ok > 0)

        thermal_bound = power_bound = None
        if self._n_thermal:
            thermal_bound = self.thermal_on & (p.thermal_clock_frac <= f_cap)
        if f_cap is not self._full_clock:
            power_bound = f_cap < 1.0
            if thermal_bound is not None:
                power_bound &= ~thermal_bound
        failed = self._ok_short  # n_ok < installed
        if idle_resetting is not self._no_resets:
            failed = failed | (idle_resetting > 0)
        if orbit_ok is not self._orbit_all_ok:
            failed = failed | ~orbit_ok
        self._failed = failed
        throttle = self.throttle.array
        throttle[:] = 0
        if failed is not self._ok_short or not self._ok_all:
            throttle[failed] = 3
        if power_bound is not None:
            throttle[power_bound] = 2
        if thermal_bound is not None:
            throttle[thermal_bound] = 1

        # Accelerator-equivalents each cause costs now; the biggest names the node's limit.
        best = np.subtract(n_ok, busy, dtype=float)  # idle devices
        if idle_resetting is not self._no_resets:
            best -= idle_resetting
        np.maximum(best, 0.0, out=best)
        code = self.reason.array
        code[:] = QUEUE if queue_empty else self.idle_reason

        def weigh(loss: np.ndarray, cause: int) -> None:
            worse = loss > best  # ties keep the earlier cause
            code[worse] = cause
            np.maximum(best, loss, out=best)

        # A cause that costs no node anything changes nothing (best >= 0): skip it.
        heat = 0 if thermal_bound is None else int(np.count_nonzero(thermal_bound))
        slow = 0 if power_bound is None else int(np.count_nonzero(power_bound))
        # Fleet totals known here: one job per bincount entry, throttle 1 on the thermally
        # bound nodes and 2 on the (other) power-bound ones; the float sums come when asked.
        self._field_totals = {"jobs_running": int(rnode.size), "n_throttled_thermal": heat,
                              "n_throttled_power": slow}
        if heat or slow:
            slowed = load.running_acc * (1.0 - clock)
            if heat:
                weigh(np.where(thermal_bound, slowed, 0.0), HEAT)
            if slow:
                weigh(np.where(power_bound, slowed, 0.0), POWER)
        if load.running_acc is not load.busy or idle_resetting is not self._no_resets:
            loss = (load.busy - load.running_acc) + idle_resetting
            if np.count_nonzero(loss):
                weigh(loss, RADIATION)
        if not self._ok_all or orbit_ok is not self._orbit_all_ok:
            loss = (installed - n_ok) + np.where(orbit_ok, 0.0, installed)
            if np.count_nonzero(loss):
                weigh(loss, FAULT)
        code[best <= 1e-9] = NONE

    def take_measured(self, sats: np.ndarray, measured: dict[str, np.ndarray]) -> None:
        """Take measured drivers for mirrored nodes (at the end of ``step``).

        ``utilization_frac`` u replaces the model's occupancy: u * n_ok accelerators are
        busy and computing, the node's DVFS clock is found again for that load under the
        cap in force (and the thermal throttle), and ``clock_frac``, ``delivered_flop_s``
        = busy * clock * peak, ``accelerators_busy``, ``throttle_code`` and (unless
        measured too) ``compute_power_w`` follow from it. A measured ``compute_power_w``
        replaces the power. The node's jobs keep their model progress: the testbed runs
        its own work, not the twin's. The next step starts from the model again, so the
        node falls back as soon as the mirror stops calling.

        Args:
            sats: (m,) node indices of live mirrors.
            measured: driver quantity -> (m,) SI values, NaN where that mirror does not
                measure it.

        """
        p = self.params
        # Fields written here: rewrite them all next step, and sum them again.
        self._published = self._field_totals = None
        self._written.clear()
        old_w = self.power.array[sats].astype(np.float64)
        util = measured.get("utilization_frac")
        if util is not None:
            has = np.isfinite(util)
            nodes = sats[has]
            u = np.clip(util[has], 0.0, 1.0)
            n_ok = self._n_ok[nodes]
            busy = u * n_ok
            static = p.host_power_w + busy * p.idle_power_w + (n_ok - busy) * p.sleep_power_w
            dynamic_full = busy * (p.full_power_w - p.idle_power_w)
            f_cap = dvfs_clock(p, self._cap_w[nodes], static, dynamic_full)
            thermal = self.thermal_on[nodes]
            clock = np.where(thermal, np.minimum(f_cap, p.thermal_clock_frac), f_cap)
            self.utilization.array[nodes] = u
            self.busy.array[nodes] = np.rint(busy)
            self.clock.array[nodes] = clock
            self.delivered.array[nodes] = busy * clock * p.peak_flop_s
            self.power.array[nodes] = static + dynamic_w(dynamic_full, clock, p.dvfs_exponent)
            thermal_bound = thermal & (p.thermal_clock_frac <= f_cap)
            power_bound = (f_cap < 1.0) & ~thermal_bound
            self.throttle.array[nodes] = np.where(
                thermal_bound, 1, np.where(power_bound, 2, np.where(self._failed[nodes], 3, 0)))
        power = measured.get("compute_power_w")
        if power is not None:
            has = np.isfinite(power)
            self.power.array[sats[has]] = power[has]
        # The energy ledger counts what the node drew, measured where measured.
        new_w = self.power.array[sats].astype(np.float64)
        self.totals["energy_j"] += float((new_w - old_w).sum()) * self._dt_s

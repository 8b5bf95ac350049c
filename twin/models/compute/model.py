"""``ComputeModel``: compute's step, in order, over the parts the package splits it into.

Per node: accelerators (count, peak BF16 FLOP/s, idle / full power, a DVFS curve), result
storage, the jobs it runs. Each step, in order:

1. jobs on accelerators that failed (faults) roll back to their checkpoint and requeue
   (``jobs.JobRunner``);
2. radiation upsets roll jobs back to their last checkpoint, some with a device reset
   (``upsets.Upsets``);
3. seeded arrivals join the queue (``JobRunner``);
4. the node clock: the DVFS point that keeps the payload under the power cap in force
   (power's ``power_cap_w`` from the previous step, or the operator's, the lower), capped
   again while the die or its HBM is thermally throttled (``temp_junction_k``,
   ``temp_hbm_k``, with hysteresis); every accelerator holding a job leaks more, or less,
   than its datasheet power as its junction is hotter or colder (``power_clock``);
5. jobs progress, checkpoint and finish; results go to storage (``JobRunner``);
6. the scheduler places queued jobs (every ``schedule_interval_s``, or at once after a
   command); they run from the next step (``placement.Placement``);
7. results downlink over ground contacts (``downlink.ResultStore``);
8. per-node "why not more" reasons and fleet totals (``node_fields.NodeFields``).

Publishes ``compute_power_w`` (n,) for power and thermal: everything the payload draws,
leakage included, which is also the heat it puts into the compute thermal node; and
``accelerator_power_w`` (n,), one busy accelerator's share, which heats its die and HBM
above the cold plate (thermal's junction and HBM temperatures).

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

import dataclasses
from typing import Any

import numpy as np

from twin.core.interfaces import ComputeOutputs
from twin.core.slices import SlicePool
from twin.core.subsystem import CommandHandler, Field, StepContext
from twin.models.compute import scheduler
from twin.models.compute.accelerator_power import AcceleratorPower
from twin.models.compute.commands import ComputeCommands
from twin.models.compute.downlink import ResultStore
from twin.models.compute.jobs import Finished, JobRunner
from twin.models.compute.multinode import MultiNodeJobs
from twin.models.compute.node_fields import NodeFields
from twin.models.compute.params import LIMIT_REASONS, PFLOP, THROTTLE_CODES, ComputeParams
from twin.models.compute.placement import Placement
from twin.models.compute.power_clock import (
    NodeLoad,
    ThermalThrottle,
    WorkingAccelerators,
    allowed_accelerator_w,
    dvfs_clock,
    dynamic_w,
    leakage_and_dies_k,
    settle_payload,
)
from twin.models.compute.radiation import RadiationParams, RadiationState
from twin.models.compute.upsets import Upsets
from twin.models.compute.workload import JOB_KINDS, SECONDS_PER_HOUR, WorkloadParams
from twin.scenario import Scenario, ScenarioError, parse_section


def _same_inputs(key: tuple[Any, ...] | None, last: tuple[Any, ...] | None) -> bool:
    """Whether two ``(load, idle_resetting, *values)`` keys match: the same two objects
    (arrays compare by identity: they are replaced, never changed) and equal values."""
    return (key is not None and last is not None and key[0] is last[0] and key[1] is last[1]
            and key[2:] == last[2:])


class ComputeModel:
    """Accelerators, jobs, radiation and downlink of every node.

    The parts hold their own state; the model holds what ties a step together (the load
    it keeps, the power cap the operator set, the next scheduling pass, what the fields
    were last published from) and the same objects under the names the rest of the twin
    reads: ``jobs``, ``finished``, ``totals``, ``thermal_on`` and the per-node fields.

    Args:
        scenario: The loaded scenario (``[compute]``, ``[workload]``, ``[radiation]``).
    """

    name = "compute"
    reads: tuple[str, ...] = ("orbit", "faults", "drivers", "links", "power", "thermal",
                              "lifecycle")
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
        self.accelerators = WorkingAccelerators(n, a)
        self.throttling = ThermalThrottle(self.params, scenario)
        self.thermal_on = self.throttling.on
        self.placement = Placement(self.params, self.workload, self.runner, self.results,
                                   self.throttling)
        # Multi-node jobs over the links, only where the scenario asks for them (the fields
        # and fleet numbers of a scenario without them stay as they were).
        self.multinode: MultiNodeJobs | None = None
        if self.workload.multi_node_jobs:
            if "links" not in scenario.sections:
                raise ScenarioError(scenario.source, "workload.multi_node_jobs",
                                    "multi-node jobs run over optical links: the scenario"
                                    " needs a [links] table")
            if self.workload.multi_node_nodes > n:
                raise ScenarioError(scenario.source, "workload.multi_node_nodes",
                                    f"{self.workload.multi_node_nodes} nodes per job, but the"
                                    f" scenario has {n} satellites")
            self.multinode = MultiNodeJobs(self.workload, self.runner, a,
                                           a * self.params.peak_flop_s,
                                           [s.name for s in scenario.satellites])
            if self.multinode.write_s >= self.workload.multi_node_checkpoint_interval_s:
                raise ScenarioError(
                    scenario.source, "workload.multi_node_checkpoint_interval_s",
                    f"{self.workload.multi_node_checkpoint_interval_s:g} s is not longer than"
                    f" writing a checkpoint ({self.multinode.write_s:g} s: "
                    "multi_node_checkpoint_bytes / multi_node_nodes /"
                    " multi_node_checkpoint_write_bytes_s); the job would never train")
            self.placement.multinode = self.multinode
        out = self.node_fields = NodeFields(self.params, self.jobs, self.accelerators,
                                            self.throttling, self.placement,
                                            self.upsets.no_resets)
        # The per-node fields, under the names the tests and tools read them by.
        self.utilization, self.delivered, self.clock = out.utilization, out.delivered, out.clock
        self.throttle, self.reason, self.cap = out.throttle, out.reason, out.cap
        self.power, self.jobs_running, self.busy = out.power, out.jobs_running, out.busy
        self._commands = ComputeCommands(self)
        self.outputs = ComputeOutputs()  # filled by each step
        self.operator_cap_w = np.full(n, np.inf)
        self._next_schedule_t = -np.inf
        self._load: NodeLoad | None = None
        # The host's power per node: one float while every node is in service, else (n,)
        # with 0 on the lifecycle's out-of-service nodes; kept with the set it follows.
        self._host_every_node_w = self.params.host_power_w
        self._host_w: float | np.ndarray = self._host_every_node_w
        self._host_for: np.ndarray | None = None
        self._accelerator_power = AcceleratorPower(self.params)
        self._n_mirrored = 0  # nodes a live testbed mirrored this step
        # What the published fields were computed from, when a later step may skip
        # rewriting them (None: rewrite).
        self._published: tuple[Any, ...] | None = None
        # This step's inputs the mirror's measured drivers are derived with (take_measured).
        self._n_ok = self.accelerators.counts
        self._cap_w = np.full(n, np.inf)
        self._dt_s = 0.0
        self.t_utc = scenario.epoch_utc.timestamp()
        # The row slices of the per-node die terms and the dose.
        self._slices = self.radiation.pool = SlicePool(n, 1)

    # ----------------------------------------------------------------------------------
    # Engine contract

    def run_on_workers(self, workers: int) -> None:
        """The nodes' leakage and die temperatures in ``workers`` row slices on threads
        (the engine's ``workers``; twin.core.slices): the same bits for any number."""
        self.close()
        self._slices = self.radiation.pool = SlicePool(self.n_sats, workers)

    def close(self) -> None:
        """End the row slices' threads, if any."""
        self._slices.close()

    def fields(self) -> list[Field]:
        extra = [] if self.multinode is None else self.multinode.fields()
        return [*self.node_fields.all(), *self.radiation.fields(), *self.results.fields(),
                *extra]

    def step(self, ctx: StepContext) -> None:
        """One step of every node, in the order of the module's docstring."""
        p = self.params
        n = self.n_sats
        out = self.node_fields
        t, dt = ctx.t_utc, ctx.dt_s
        t0 = t - dt
        self.t_utc = t
        # Faults' working accelerators, less those on nodes total dose has failed.
        n_ok, ok_changed = self.accelerators.update(self.radiation.working(
            ctx.faults.accelerators_ok, self.accelerators.installed))

        if ok_changed and self.runner.evict_failed(ctx, n_ok):
            self.schedule_now()
            if self.multinode is not None:
                self.multinode.drop_evicted()
        if dt > 0.0 and ctx.step_dt_s is None:
            self.upsets.step(ctx, n_ok, t0)
        elif dt > 0.0 and ctx.substep == 0:
            # Cut into sub-steps: the whole step's upsets are drawn once, at its start, as
            # in a step that is not cut (the draw's bound holds per step).
            self.upsets.step(dataclasses.replace(ctx, t_utc=t0 + ctx.step_dt_s,
                                                 dt_s=ctx.step_dt_s, step_dt_s=None),
                             n_ok, t0)
        self.runner.arrivals(ctx, t)

        # Node clock from the power cap in force and the chip temperature.
        jobs = self.jobs
        run = jobs.running()
        active_s: float | np.ndarray
        active_frac: float | np.ndarray
        # A job no reset stalls computes the whole step: dt itself, not t - t0, which at
        # POSIX times rounds a hair below dt and would name radiation as the limit of
        # every busy node while any job in the fleet is stalled.
        if self.upsets.stall_horizon_t > t0:  # a running job may be stalled by a device reset
            stall_until = jobs.stall_until_t[run]
            active_s = np.where(stall_until <= t0, max(dt, 0.0),
                                np.clip(t - np.maximum(t0, stall_until), 0.0, dt))
            active_frac = active_s / dt if dt > 0.0 else np.ones_like(active_s)
        else:  # every job computes from t0: the same numbers, one for all
            active_s = max(dt, 0.0)
            active_frac = active_s / dt if dt > 0.0 else 1.0
        load = self._load
        host_w = self._host_power_w(ctx.lifecycle.out_of_service_nodes)
        if load is None or not load.same(jobs, n_ok, active_frac, host_w):
            load = NodeLoad(p, jobs, run, n_ok, active_frac, host_w)
            self._load = load if isinstance(active_frac, float) else None
        idle_resetting = self.upsets.idle_resetting(t0)
        # Power's cap of the last step (none before power's first step).
        power_cap_w = ctx.power.power_cap_w
        cap = np.minimum(np.asarray(np.inf if power_cap_w is None else power_cap_w,
                                    dtype=float), self.operator_cap_w)
        # No cap anywhere (the usual case in sunlight): every node has room for full clock.
        uncapped = bool(cap.size == 0 or cap.min() == np.inf)
        if uncapped:
            cap = out.no_cap  # the same numbers, an array the cap field may already hold
        # Leakage at last step's junction temperature (none before thermal's first step):
        # part of the static draw the clock must fit under the cap.
        thermal = ctx.thermal
        junction_k = thermal.temp_junction_k
        leak = leak_per_accelerator = None
        if junction_k is None:
            static = load.static
        else:
            leak_per_accelerator, junction_k, hbm_k = leakage_and_dies_k(  # in row slices
                self._slices, p, load.busy, junction_k, thermal.temp_hbm_k,
                thermal.temp_compute_k, thermal.die_resistance_k_w)
            leak = leak_per_accelerator * load.busy
            static = load.static + leak
            self.throttling.update(ctx, junction_k, hbm_k)
        f_cap = (out.full_clock if uncapped
                 else dvfs_clock(p, cap, static, load.dynamic_full))
        full_clock = uncapped and not self.throttling.n_on
        if full_clock:
            clock = f_cap
            power, power_sum, delivered = load.full_clock()
            if leak is not None:
                power = power + leak
                power_sum = float(np.add.reduce(power))
            rate = load.acc  # acc * clock 1
        else:
            if self.throttling.n_on:  # the clock that holds the hot dies at their limits
                allowed_w = allowed_accelerator_w(p, thermal.temp_compute_k,
                                                  thermal.die_resistance_k_w)
                clock = np.minimum(f_cap, self.throttling.clock_limit(
                    static, load.dynamic_full, load.running_acc, allowed_w,
                    leak_per_accelerator))
            else:
                clock = f_cap
            power = static + dynamic_w(load.dynamic_full, clock, p.dvfs_exponent)
            power_sum = float(power.sum())
            rate = load.acc * clock[load.rnode]  # accelerator-seconds of work per second

        # Progress, checkpoints, completions.
        finished = self.runner.progress(ctx, run, load, rate, active_s, t)
        if not full_clock:
            delivered = np.bincount(load.rnode, rate * active_frac, minlength=n) * p.peak_flop_s
        if self.multinode is not None:
            if self.multinode.step(ctx, delivered, dt, self.policy):
                self.schedule_now()  # a job rolled back: place it again at once
            self.outputs.link_allreduce_bps = self.multinode.link_load_bps
        # Accelerators holding a job, averaged over the step: the load's, less what the jobs
        # that finished within it left unused (they are charged only for their part).
        busy_mean = load.busy
        if finished is not None and dt > 0.0:
            power, delivered, busy_mean = _released_early(
                p, finished, load, rate, clock, leak_per_accelerator, power, delivered, dt)
            power_sum = float(np.add.reduce(power))

        orbit = ctx.orbit
        status = orbit.orbit_status
        orbit_all_ok = status is None or not np.count_nonzero(status)
        orbit_ok = out.orbit_all_ok if orbit_all_ok else np.asarray(status) == 0
        if t >= self._next_schedule_t:
            self.placement.run(ctx, self.policy, n_ok, idle_resetting, cap, orbit_ok, t)
            self._next_schedule_t = t + self.workload.schedule_interval_s

        contact = orbit.contact_station
        # Inter-satellite links add what a node can relay to a node in contact (None: none).
        self.results.step(t, dt, np.full(n, -1) if contact is None else np.asarray(contact),
                          ctx.links.relay_bps)
        self.outputs.storage_backlog_bytes = self.results.backlog.array

        # The fields hold the same values as after the last step when nothing they follow
        # from has changed: the load (running set, working accelerators), the idle devices
        # resetting, the running set as the step ends, the queue's emptiness and the idle
        # reasons, with no cap, no throttle and every orbit usable, now as then.
        key = None
        if full_clock and load is self._load and orbit_all_ok:
            key = (load, idle_resetting, jobs.running_version, jobs.n_queued == 0,
                   self.placement.idle_reason_version)
        if not _same_inputs(key, self._published):
            out.publish(n_ok, load, busy_mean, clock, f_cap, cap, power, delivered,
                        idle_resetting, orbit_ok, jobs.n_queued == 0)
            self._published = key
        elif leak is not None:  # the same fields but the power: leakage follows the die
            out.set_power(power)
        self.totals["energy_j"] += power_sum * dt
        self.outputs.compute_power_w = self.power.array
        self.outputs.dose_gy = self.radiation.dose.array  # lifecycle ages arrays on it
        if thermal.die_resistance_k_w is not None:  # for thermal's starting state
            self.outputs.settle_payload_w = settle_payload(p, load, cap,
                                                           thermal.die_resistance_k_w)
        self._n_ok, self._cap_w, self._dt_s = n_ok, cap, dt
        drivers = ctx.drivers
        busy = busy_mean
        self._n_mirrored = drivers.mirror_sat.size
        if drivers.mirror_sat.size:
            self.take_measured(drivers.mirror_sat, drivers.measured_drivers)
            busy = busy.astype(float)  # the mirrors' measured occupancy, where they have it
            busy[drivers.mirror_sat] = self.busy.array[drivers.mirror_sat]
        self.outputs.accelerator_power_w = self._accelerator_power.per_accelerator_w(
            self._slices, self.power.array, busy, n_ok, host_w, clamp=self._n_mirrored > 0)

    def _host_power_w(self, out_of_service: np.ndarray | None) -> float | np.ndarray:
        """The host's power on each node: none on a node out of service (disposed,
        derelict or re-entered; the lifecycle's last step), whose accelerators the
        lifecycle has also taken out. The same object while that set is the same."""
        if out_of_service is not self._host_for:
            self._host_for = out_of_service
            if out_of_service is None or not out_of_service.size:
                self._host_w = self._host_every_node_w
            else:
                host = np.full(self.n_sats, self._host_every_node_w)
                host[out_of_service] = 0.0
                host.flags.writeable = False
                self._host_w = host
        return self._host_w

    def fields_rewritten(self) -> None:
        """The engine wrote the step's means into the fields after sub-steps: sum them
        again for the totals, and write them in full next step."""
        self._published = None
        self.node_fields.forget_kept()

    def forget_kept(self) -> None:
        """Drop every value kept from step to step: the next step computes all afresh.

        The kept values are those a fresh computation gives, bit for bit; the tests check
        it against a model made to forget before every step.
        """
        self._load = self._published = None
        self._accelerator_power.forget_kept()
        self.accelerators.forget_kept()
        self.node_fields.forget_kept()
        self.jobs.forget_kept()
        self.upsets.forget_kept()
        self.results.forget_kept()

    def fleet(self) -> dict[str, float]:
        tot = self.totals
        p = self.params
        useful_s = tot["work_done_accel_s"] - tot["lost_accel_s"]
        useful_pflop = useful_s * p.peak_flop_s / PFLOP
        jobs = self.jobs
        n_acc = self.n_sats * p.accelerators_per_node
        sums = self.node_fields.sums()
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
            **({} if self.multinode is None else self.multinode.fleet()),
        }

    def meta(self) -> dict[str, Any]:
        p = self.params
        return {
            "accelerators_per_node": p.accelerators_per_node,
            "peak_flop_s_per_accelerator": p.peak_flop_s,
            "full_power_w": p.full_power_w, "idle_power_w": p.idle_power_w,
            "sleep_power_w": p.sleep_power_w, "host_power_w": p.host_power_w,
            "host_power_per_accelerator_w": p.host_power_per_accelerator_w,
            "dvfs_exponent": p.dvfs_exponent, "min_clock_frac": p.min_clock_frac,
            "throttle_temp_k": p.throttle_temp_k,
            "hbm_throttle_temp_k": p.hbm_throttle_temp_k,
            "leakage_frac": p.leakage_frac, "leakage_ref_temp_k": p.leakage_ref_temp_k,
            "leakage_temp_coeff_per_k": p.leakage_temp_coeff_per_k,
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

    def take_measured(self, sats: np.ndarray, measured: dict[str, np.ndarray]) -> None:
        """Take measured drivers for mirrored nodes (at the end of ``step``).

        Measured utilization and power overwrite those nodes' fields
        (``NodeFields.take_measured`` says how); their jobs keep their model progress, and
        the next step starts from the model again, so a node falls back as soon as the
        mirror stops calling.

        Args:
            sats: (m,) node indices of live mirrors.
            measured: driver quantity -> (m,) SI values, NaN where that mirror does not
                measure it.
        """
        self._published = None  # fields written there: rewrite them all next step
        # The energy ledger counts what the node drew, measured where measured.
        self.totals["energy_j"] += self.node_fields.take_measured(
            sats, measured, self._n_ok, self._cap_w, self._host_w) * self._dt_s


def _released_early(params: ComputeParams, finished: Finished, load: NodeLoad,
                    rate: np.ndarray, clock: np.ndarray, leak_w: np.ndarray | None,
                    power_w: np.ndarray, delivered: np.ndarray, dt_s: float
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The step's power, delivered FLOP/s and mean busy accelerators, (n,) each, with the
    jobs that finished within it charged only for their part of it.

    From its finish to the step's end, a finished job's accelerators neither compute nor
    hold a job: each draws the sleep power instead of ``P_idle + leak + (P_full - P_idle)
    f^k`` and delivers nothing, for ``unused_s / dt`` of the step.
    """
    p = params
    unused = finished.unused_s / dt_s
    index = finished.index
    nodes = load.rnode[index]
    n = power_w.size
    freed = np.bincount(nodes, load.acc[index] * unused, minlength=n)
    per_accelerator_w = (p.idle_power_w - p.sleep_power_w
                         + (p.full_power_w - p.idle_power_w) * clock ** p.dvfs_exponent)
    if leak_w is not None:
        per_accelerator_w = per_accelerator_w + leak_w
    power = power_w - freed * per_accelerator_w
    lost = np.bincount(nodes, rate[index] * unused, minlength=n) * p.peak_flop_s
    delivered = np.maximum(delivered - lost, 0.0)
    return power, delivered, load.busy - freed

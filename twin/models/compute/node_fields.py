"""Compute's per-node fields: what each node shows, and why it does not compute more.

``NodeFields`` makes the nine per-node fields of compute (utilization, delivered FLOP/s,
clock, throttle code, limit reason, cap, power, jobs running, accelerators busy), writes
them from a step's results (``publish``), and lets a live testbed's measured drivers
overwrite mirrored nodes (``take_measured``). It also keeps their fleet sums until they
are written again.

The usual step shares a few constant arrays (full clock, no cap, every orbit usable, no
idle device resetting) instead of building them anew; ``publish`` recognises them by
identity and leaves out the terms they would add, and writes the clock and cap fields
only when they do not already hold that constant.
"""

from __future__ import annotations

import numpy as np

from twin.core.subsystem import Field, make_field
from twin.models.compute.params import (
    FAULT,
    HEAT,
    LIMIT_REASONS,
    NONE,
    PFLOP,
    POWER,
    QUEUE,
    RADIATION,
    THROTTLE_CODES,
    ComputeParams,
)
from twin.models.compute.placement import Placement
from twin.models.compute.power_clock import (
    NodeLoad,
    ThermalThrottle,
    WorkingAccelerators,
    dvfs_clock,
    dynamic_w,
    read_only,
)
from twin.models.compute.workload import JobTable


class NodeFields:
    """Compute's per-node fields, and how a step and a mirror write them.

    Args:
        params: One node's payload (``[compute]``).
        jobs: The job table (occupancy as the step ends).
        accelerators: The working accelerators (which nodes lack some).
        thermal: The thermal throttle (which nodes it cuts).
        placement: The scheduling pass (each node's idle reason).
        no_resets: The upsets' "no idle device resetting" array, known by identity.

    Attributes:
        full_clock, no_cap, orbit_all_ok: (n,) read-only constants (clock 1, cap inf,
            orbit usable) the model passes for "nothing here".
        failed: (n,) nodes with failed or resetting accelerators or no usable orbit at
            the last publish (``throttle_code`` 3 unless slowed otherwise).
    """

    def __init__(self, params: ComputeParams, jobs: JobTable,
                 accelerators: WorkingAccelerators, thermal: ThermalThrottle,
                 placement: Placement, no_resets: np.ndarray) -> None:
        n = accelerators.n_sats
        self.params = params
        self.jobs = jobs
        self.accelerators = accelerators
        self.thermal = thermal
        self.placement = placement
        self.no_resets = no_resets
        self.n_sats = n
        f = make_field
        self.utilization = f("utilization_frac", "<f4", (n,), "1",
                             "Working accelerators holding a job, mean over the step",
                             over="step")
        self.delivered = f("delivered_flop_s", "<f4", (n,), "FLOP/s",
                           "Job progress rate, BF16 FLOP/s", over="step")
        self.clock = f("clock_frac", "<f4", (n,), "1", "DVFS clock of busy accelerators",
                       fill=1.0, over="step")
        self.throttle = f("throttle_code", "|u1", (n,), "code",
                          "Why the node runs below full speed", labels=THROTTLE_CODES)
        self.reason = f("limit_reason", "|u1", (n,), "code",
                        "Why not more compute", labels=LIMIT_REASONS)
        self.cap = f("compute_cap_w", "<f4", (n,), "W",
                     "Power cap in force on the payload (inf: none)", fill=np.inf,
                     infinite="none")
        self.power = f("compute_power_w", "<f4", (n,), "W",
                       "Electrical power drawn by the payload (= heat into it)", over="step")
        self.jobs_running = f("jobs_running", "<u2", (n,), "count",
                              "Jobs that ran in the step", over="step")
        self.busy = f("accelerators_busy", "|u1", (n,), "count",
                      "Accelerators that held a job in the step", over="step")
        # Constant arrays the usual step shares instead of building anew.
        self.full_clock = read_only(np.ones(n))
        self.no_cap = read_only(np.full(n, np.inf))
        self.orbit_all_ok = read_only(np.ones(n, dtype=bool))
        self.failed = np.zeros(n, dtype=bool)
        # The fields' fleet sums (None: sum them again) and, for the clock and cap fields,
        # the constant array each holds (written again only when it changes).
        self._sums: dict[str, float] | None = None
        self._written: dict[str, np.ndarray] = {}

    def all(self) -> list[Field]:
        """The nine fields, in the order compute publishes them."""
        return [self.utilization, self.delivered, self.clock, self.throttle, self.reason,
                self.cap, self.power, self.jobs_running, self.busy]

    def publish(self, n_ok: np.ndarray, load: NodeLoad, busy_mean: np.ndarray,
                clock: np.ndarray, f_cap: np.ndarray, cap: np.ndarray, power: np.ndarray,
                delivered: np.ndarray, idle_resetting: np.ndarray, orbit_ok: np.ndarray,
                queue_empty: bool) -> None:
        """Write the step's per-node fields, and the reasons why not more compute.

        Every field describes the step, as power and FLOP/s do (docs/protocol.md, "Instant
        or interval"): the jobs and accelerators of the running set the step computed
        (``load``; jobs placed as it ends show from the next step), and utilization the
        mean over the step of the working accelerators holding a job (``busy_mean``: a
        job that finished within the step counts for its part of it).

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
        # Occupancy over the step: the running set it computed.
        rnode, busy = load.rnode, load.busy
        self.jobs_running.array[:] = load.jobs_per_node()
        self.busy.array[:] = busy
        if self.accelerators.every_node_some:
            # busy / n_ok everywhere, rounded once to the field's float32
            np.divide(busy_mean, n_ok, out=self.utilization.array, casting="same_kind")
        else:
            self.utilization.array[:] = np.divide(busy_mean, n_ok, out=np.zeros(self.n_sats),
                                                  where=n_ok > 0)

        thermal_bound = power_bound = None
        if self.thermal.n_on:
            heat_clock = self.thermal.clock  # this step's (ThermalThrottle.clock_limit)
            thermal_bound = self.thermal.on & (heat_clock <= f_cap) & (heat_clock < 1.0)
        if f_cap is not self.full_clock:
            power_bound = f_cap < 1.0
            if thermal_bound is not None:
                power_bound &= ~thermal_bound
        failed = self.accelerators.short  # n_ok < installed
        if idle_resetting is not self.no_resets:
            failed = failed | (idle_resetting > 0)
        if orbit_ok is not self.orbit_all_ok:
            failed = failed | ~orbit_ok
        self.failed = failed
        throttle = self.throttle.array
        throttle[:] = 0
        if failed is not self.accelerators.short or not self.accelerators.all_installed:
            throttle[failed] = 3
        if power_bound is not None:
            throttle[power_bound] = 2
        if thermal_bound is not None:
            throttle[thermal_bound] = 1

        # Accelerator-equivalents each cause costs now; the biggest names the node's limit.
        best = np.subtract(n_ok, busy, dtype=float)  # idle devices
        if idle_resetting is not self.no_resets:
            best -= idle_resetting
        np.maximum(best, 0.0, out=best)
        code = self.reason.array
        code[:] = QUEUE if queue_empty else self.placement.idle_reason

        def weigh(loss: np.ndarray, cause: int) -> None:
            worse = loss > best  # ties keep the earlier cause
            code[worse] = cause
            np.maximum(best, loss, out=best)

        # A cause that costs no node anything changes nothing (best >= 0): skip it.
        heat = 0 if thermal_bound is None else int(np.count_nonzero(thermal_bound))
        slow = 0 if power_bound is None else int(np.count_nonzero(power_bound))
        # Fleet totals known here: one job per bincount entry, throttle 1 on the thermally
        # bound nodes and 2 on the (other) power-bound ones; the float sums come when asked.
        self._sums = {"jobs_running": int(rnode.size), "n_throttled_thermal": heat,
                      "n_throttled_power": slow}
        if heat or slow:
            slowed = load.running_acc * (1.0 - clock)
            if heat:
                weigh(np.where(thermal_bound, slowed, 0.0), HEAT)
            if slow:
                weigh(np.where(power_bound, slowed, 0.0), POWER)
        if load.running_acc is not load.busy or idle_resetting is not self.no_resets:
            loss = (load.busy - load.running_acc) + idle_resetting
            if np.count_nonzero(loss):
                weigh(loss, RADIATION)
        if not self.accelerators.all_installed or orbit_ok is not self.orbit_all_ok:
            loss = (installed - n_ok) + np.where(orbit_ok, 0.0, installed)
            if np.count_nonzero(loss):
                weigh(loss, FAULT)
        code[best <= 1e-9] = NONE

    def take_measured(self, sats: np.ndarray, measured: dict[str, np.ndarray], n_ok: np.ndarray,
                      cap_w: np.ndarray, host_w: float | np.ndarray | None = None) -> float:
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
            n_ok: (n,) working accelerators of this step.
            cap_w: (n,) power cap in force this step (W).
            host_w: The host's power, one for all or (n,) (0 on nodes out of service), W;
                None: ``host_power_w``.

        Returns:
            How much more the mirrored nodes draw than the model had them draw (W), for
            the energy ledger.
        """
        p = self.params
        # Fields written here: sum them again (the model rewrites them all next step).
        self._sums = None
        self._written.clear()
        old_w = self.power.array[sats].astype(np.float64)
        util = measured.get("utilization_frac")
        if util is not None:
            has = np.isfinite(util)
            nodes = sats[has]
            u = np.clip(util[has], 0.0, 1.0)
            node_ok = n_ok[nodes]
            busy = u * node_ok
            host = np.broadcast_to(p.host_power_w if host_w is None else host_w,
                                   n_ok.shape)[nodes]
            static = (host + busy * p.idle_power_w
                      + (node_ok - busy) * p.sleep_power_w)
            dynamic_full = busy * (p.full_power_w - p.idle_power_w)
            f_cap = dvfs_clock(p, cap_w[nodes], static, dynamic_full)
            thermal = self.thermal.on[nodes]
            heat_clock = self.thermal.clock[nodes]  # the model's, from its own load
            clock = np.where(thermal, np.minimum(f_cap, heat_clock), f_cap)
            self.utilization.array[nodes] = u
            self.busy.array[nodes] = np.rint(busy)
            self.clock.array[nodes] = clock
            self.delivered.array[nodes] = busy * clock * p.peak_flop_s
            self.power.array[nodes] = static + dynamic_w(dynamic_full, clock, p.dvfs_exponent)
            thermal_bound = thermal & (heat_clock <= f_cap) & (heat_clock < 1.0)
            power_bound = (f_cap < 1.0) & ~thermal_bound
            self.throttle.array[nodes] = np.where(
                thermal_bound, 1, np.where(power_bound, 2, np.where(self.failed[nodes], 3, 0)))
        power = measured.get("compute_power_w")
        if power is not None:
            has = np.isfinite(power)
            self.power.array[sats[has]] = power[has]
        new_w = self.power.array[sats].astype(np.float64)
        return float((new_w - old_w).sum())

    def set_power(self, power: np.ndarray) -> None:
        """Write the power field alone (the other fields hold): its sum is due again."""
        self.power.array[:] = power
        if self._sums is not None:
            self._sums.pop("compute_power_w", None)

    def sums(self) -> dict[str, float]:
        """Fleet sums over the fields, kept until the fields are written again."""
        sums = self._sums
        if sums is None:  # written from outside (the mirror): count everything again
            throttle = self.throttle.array
            sums = self._sums = {
                "jobs_running": int(self.jobs_running.array.sum()),
                "n_throttled_thermal": int(np.count_nonzero(throttle == 1)),
                "n_throttled_power": int(np.count_nonzero(throttle == 2)),
            }
        if "compute_power_w" not in sums:
            sums["delivered_pflop_s"] = float(self.delivered.array.sum(dtype=np.float64)) / PFLOP
            sums["accelerators_busy"] = float(self.busy.array.sum()) + 0.0
            sums["compute_power_w"] = float(self.power.array.sum(dtype=np.float64))
        return sums

    def forget_kept(self) -> None:
        """Sum the fields again and write the clock and cap in full next time."""
        self._sums = None
        self._written.clear()

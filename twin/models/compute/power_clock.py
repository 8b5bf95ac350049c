"""A node's load and clock: what its jobs ask, and the clock a power cap and heat allow.

- ``WorkingAccelerators``: the accelerators faults leave working on each node;
- ``NodeLoad``: what the running set asks of each node before any cap or throttle (busy
  and computing accelerators, static and full-clock dynamic power);
- ``dvfs_clock``: the highest clock whose draw fits a power cap;
- ``ThermalThrottle``: the clock cut of a hot chip, with hysteresis.

The working accelerators and the load follow from their inputs alone, which is what lets
the model keep them from step to step until those inputs change.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from twin.core.subsystem import StepContext
from twin.models.compute.params import ComputeParams
from twin.models.compute.workload import JobTable
from twin.scenario import Scenario


def dvfs_clock(params: ComputeParams, cap_w: np.ndarray, static_w: np.ndarray,
               dynamic_full_w: np.ndarray) -> np.ndarray:
    """Highest clock (0..1) whose draw ``static + dynamic_full * clock^k`` fits the cap.

    Returns 1 where nothing limits, 0 where even ``min_clock_frac`` does not fit (the
    node suspends its jobs), shape of the inputs.
    """
    room = cap_w - static_w
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(dynamic_full_w > 0.0, room / dynamic_full_w, np.inf)
    # Most nodes have room for full clock (ratio >= 1 gives exactly 1): the fractional
    # power, the costly part, runs only on the others (NaN included, as before).
    clock = np.ones(np.shape(ratio))
    slow = ~(ratio >= 1.0)
    if slow.any():
        part = np.minimum(np.power(np.clip(ratio[slow], 0.0, None),
                                   1.0 / params.dvfs_exponent), 1.0)
        clock[slow] = np.where(part < params.min_clock_frac, 0.0, part)
    return clock


def dynamic_w(dynamic_full_w: np.ndarray, clock: np.ndarray, exponent: float) -> np.ndarray:
    """``dynamic_full * clock**exponent``, the power only where the clock is not full."""
    out = dynamic_full_w.astype(np.float64)  # a copy: x * 1.0**k is x exactly
    slowed = clock != 1.0
    if slowed.any():
        out[slowed] *= clock[slowed] ** exponent
    return out


def read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array



class NodeLoad:
    """What the running jobs ask of each node in a step, before any cap or throttle.

    Built from the running set, the working accelerators and the fraction of the step the
    jobs compute; the compute model keeps it while those stay the same (most steps), with
    the full-clock power and delivered rate derived from it. Arrays are (n,) float64 unless
    said otherwise, read-only.

    Attributes:
        running_version: The job table's running set this was built from.
        n_ok: The working accelerators it was built from (the model's read-only array).
        active_frac: The fraction of the step the jobs compute (a float, or (r,) per job).
        rnode: (r,) node of each running job.
        acc: (r,) accelerators of each running job.
        size_s, interval_s: (r,) size (accelerator-s) and checkpoint interval (s) of each.
        busy: Accelerators holding a job.
        running_acc: Accelerators computing, weighted by the fraction of the step.
        static: Host, idle and sleeping accelerators' power (W).
        dynamic_full: Power the computing accelerators add at full clock (W).
    """

    def __init__(self, params: ComputeParams, jobs: JobTable, run: np.ndarray,
                 n_ok: np.ndarray, active_frac: float | np.ndarray) -> None:
        n = n_ok.size
        self.running_version = jobs.running_version
        self.n_ok = n_ok
        self.active_frac = active_frac
        self.rnode = read_only(jobs.node[run])
        self.acc = read_only(jobs.accels[run].astype(float))
        self.size_s = read_only(jobs.size_accel_s[run])
        self.interval_s = read_only(jobs.ckpt_interval_s[run])
        self.busy = read_only(np.bincount(self.rnode, self.acc, minlength=n))
        if isinstance(active_frac, float) and active_frac == 1.0:
            self.running_acc = self.busy  # the same weights: acc * 1.0 is acc
        else:
            self.running_acc = read_only(np.bincount(self.rnode, self.acc * active_frac,
                                                      minlength=n))
        sleeping = np.clip(n_ok - self.busy, 0, None)
        self.static = read_only(params.host_power_w + self.busy * params.idle_power_w
                                 + sleeping * params.sleep_power_w)
        self.dynamic_full = read_only(self.running_acc
                                       * (params.full_power_w - params.idle_power_w))
        self._peak_flop_s = params.peak_flop_s
        self._full_clock: tuple[np.ndarray, float, np.ndarray] | None = None
        self._jobs_per_node: np.ndarray | None = None

    def same(self, jobs: JobTable, n_ok: np.ndarray, active_frac: float | np.ndarray) -> bool:
        """Whether this load holds for ``jobs``' running set, ``n_ok`` and ``active_frac``."""
        return (self.running_version == jobs.running_version and self.n_ok is n_ok
                and isinstance(active_frac, float) and self.active_frac == active_frac)

    def full_clock(self) -> tuple[np.ndarray, float, np.ndarray]:
        """At full clock everywhere: power (W), its sum (W) and delivered FLOP/s, (n,)."""
        if self._full_clock is None:
            # static + dynamic_full * 1.0**k and bincount(rnode, acc * 1.0 * active_frac):
            # the general expressions, evaluated with the clock at 1.
            power = read_only(self.static + self.dynamic_full)
            delivered = read_only(self.running_acc * self._peak_flop_s)
            self._full_clock = (power, float(power.sum()), delivered)
        return self._full_clock

    def jobs_per_node(self) -> np.ndarray:
        """(n,) int64 running jobs per node."""
        if self._jobs_per_node is None:
            self._jobs_per_node = read_only(np.bincount(self.rnode, minlength=self.n_ok.size))
        return self._jobs_per_node


class WorkingAccelerators:
    """Working accelerators per node, from faults' ``accelerators_ok``.

    Faults change only by command, so most steps find the same bytes as the last and keep
    the same read-only array: radiation keeps its rates, and the model its load, while it
    is the same object.

    Args:
        n: Nodes.
        installed: Accelerators installed per node.

    Attributes:
        counts: (n,) int64 working accelerators, read-only, replaced when they change.
        short: (n,) bool, read-only: nodes with fewer working than installed.
        all_installed: No node lacks an accelerator.
        every_node_some: Every node has a working accelerator.
    """

    def __init__(self, n: int, installed: int) -> None:
        self.n_sats = n
        self.installed = installed
        self._key: tuple[str, tuple[int, ...], bytes] | None = None  # the source's bytes
        self.counts = read_only(np.full(n, installed, dtype=np.int64))
        self.short = read_only(np.zeros(n, dtype=bool))
        self.all_installed = True
        self.every_node_some = True

    def update(self, source: Any) -> tuple[np.ndarray, bool]:
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
        if key == self._key:  # a byte compare: faults change only by command
            return self.counts, False
        installed = self.installed
        n_ok = (np.full(self.n_sats, installed, dtype=np.int64) if source is None
                else source.astype(np.int64))
        changed = not np.array_equal(n_ok, self.counts)
        self._key = key
        if changed:
            self.counts = read_only(n_ok)
            self.short = read_only(n_ok < installed)
            self.all_installed = not np.count_nonzero(self.short)
            self.every_node_some = bool(np.count_nonzero(n_ok) == n_ok.size)
        return self.counts, changed

    def forget_kept(self) -> None:
        """Compare the next source in full, not by its bytes."""
        self._key = None


class ThermalThrottle:
    """The clock cut of a hot chip, with hysteresis (``throttle_temp_k``).

    Args:
        params: One node's payload (the limit, the hysteresis, the throttled clock).
        scenario: The scenario (node count, satellite names for events).

    Attributes:
        on: (n,) bool, nodes throttled now (changed in place).
        n_on: How many are: 0 in the usual step, which then skips the throttle's terms.
    """

    def __init__(self, params: ComputeParams, scenario: Scenario) -> None:
        self.params = params
        self.scenario = scenario
        self.on = np.zeros(len(scenario.satellites), dtype=bool)
        self.n_on = 0

    def update(self, ctx: StepContext, temp_k: np.ndarray | None) -> None:
        """Hysteresis: cut above the limit, lift below limit - hysteresis.

        Args:
            temp_k: (n,) chip temperatures (thermal's ``temp_compute_k`` of the last
                step), or None before thermal's first step (nothing changes).
        """
        if temp_k is None:
            return
        p = self.params
        temp = np.asarray(temp_k)
        hot = temp > p.throttle_temp_k
        if not self.n_on and not np.count_nonzero(hot):
            return  # none throttled and none too hot: nothing changes
        was = self.on.copy()
        # On above the limit, off below limit - hysteresis, as it was in between (and NaN).
        on = hot | (was & ~(temp < p.throttle_temp_k - p.throttle_hysteresis_k))
        self.on[:] = on
        self.n_on = int(np.count_nonzero(on))
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

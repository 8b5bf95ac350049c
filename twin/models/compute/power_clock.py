"""A node's load and clock: what its running jobs ask, and the DVFS clock a power cap allows.

``NodeLoad`` is what the running set asks of each node before any cap or throttle (busy
and computing accelerators, static and full-clock dynamic power); ``dvfs_clock`` is the
highest clock whose draw fits a cap. Both follow from their inputs alone, which is
what lets the model keep a load from step to step until its inputs change.
"""

from __future__ import annotations

import numpy as np

from twin.models.compute.params import ComputeParams
from twin.models.compute.workload import JobTable


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

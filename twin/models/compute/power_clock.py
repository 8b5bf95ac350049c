"""A node's load and clock: what its jobs ask, and the clock a power cap and heat allow.

- ``WorkingAccelerators``: the accelerators faults leave working on each node;
- ``NodeLoad``: what the running set asks of each node before any cap or throttle (busy
  and computing accelerators, static and full-clock dynamic power);
- ``dvfs_clock``: the highest clock whose draw fits a power cap;
- ``leakage_extra_w``: the leakage a die's temperature adds to (or takes from) one
  accelerator's datasheet powers;
- ``full_clock_dies_k``, ``allowed_accelerator_w``: the die and HBM temperatures the
  throttle judges, and the power an accelerator may draw within their limits;
- ``ThermalThrottle``: the clock a hot die or HBM allows, with hysteresis.

The working accelerators and the load follow from their inputs alone, which is what lets
the model keep them from step to step until those inputs change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from twin.core.constants import KELVIN_PER_CELSIUS
from twin.core.slices import SlicePool
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


def leakage_extra_w(params: ComputeParams, junction_k: np.ndarray) -> np.ndarray:
    """(n,) leakage the junction temperature adds to one powered accelerator's datasheet
    power, W (negative below the reference).

    A powered accelerator (one holding a job) leaks ``L_ref exp(b (T_j - T_ref))``,
    ``L_ref = leakage_frac * full_power_w``; the datasheet powers hold at ``T_ref``, so it
    draws ``L_ref (exp(b (T_j - T_ref)) - 1)`` more. Sleeping accelerators are power-gated
    and leak nothing that changes. A non-finite temperature adds nothing. docs/models.md,
    "Junction, HBM and leakage".
    """
    extra = np.subtract(junction_k, params.leakage_ref_temp_k, dtype=float)
    extra *= params.leakage_temp_coeff_per_k
    with np.errstate(over="ignore"):  # an absurd temperature: inf, zeroed below
        np.expm1(extra, out=extra)
    extra *= params.leakage_w
    if not np.isfinite(np.add.reduce(extra)):  # one pass in the usual, finite, case
        extra[~np.isfinite(extra)] = 0.0
    return extra


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
        host_w: The host's power the load was built with: a float, the same for every
            node, or (n,) with 0 on nodes out of service (the model's kept object).
        static: Host, idle and sleeping accelerators' power (W).
        dynamic_full: Power the computing accelerators add at full clock (W).
    """

    def __init__(self, params: ComputeParams, jobs: JobTable, run: np.ndarray,
                 n_ok: np.ndarray, active_frac: float | np.ndarray,
                 host_w: float | np.ndarray | None = None) -> None:
        n = n_ok.size
        self.host_w = params.host_power_w if host_w is None else host_w
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
        self.static = read_only(self.host_w + self.busy * params.idle_power_w
                                 + sleeping * params.sleep_power_w)
        self.dynamic_full = read_only(self.running_acc
                                       * (params.full_power_w - params.idle_power_w))
        self._peak_flop_s = params.peak_flop_s
        self._full_clock: tuple[np.ndarray, float, np.ndarray] | None = None
        self._jobs_per_node: np.ndarray | None = None

    def same(self, jobs: JobTable, n_ok: np.ndarray, active_frac: float | np.ndarray,
             host_w: float | np.ndarray) -> bool:
        """Whether this load holds for ``jobs``' running set, ``n_ok``, ``active_frac``
        and the host power ``host_w`` (compared by identity: the model keeps it)."""
        return (self.running_version == jobs.running_version and self.n_ok is n_ok
                and self.host_w is host_w
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


def full_clock_dies_k(params: ComputeParams, busy: np.ndarray, junction_k: np.ndarray,
                      hbm_k: np.ndarray | None, plate_k: np.ndarray | None,
                      rise_k_w: np.ndarray | None, leak_w: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray | None]:
    """What the throttle decides on: the junction and HBM temperatures, (n,) each, K.

    A die follows its power within milliseconds to a second (quasi-steady over the plate),
    and a real accelerator trims its clock as fast: a throttle that waited a step (up to
    minutes) at full clock would let the die run far past its limit. So a busy node's dies
    are judged at full clock this step, over last step's plate: ``T_plate + R P``,
    ``P = full_power_w`` + leakage at last step's junction, with thermal's resistances
    (``die_resistance_k_w``). Nodes with no job, and a twin whose thermal publishes no
    plate or resistances, are judged on the published temperatures.

    Args:
        busy: (n,) accelerators holding a job.
        junction_k, hbm_k: (n,) last step's junction and HBM temperatures (or None).
        plate_k: (n,) last step's compute node (cold plate) temperature, or None.
        rise_k_w: (2,) kelvin over the plate per watt of one accelerator, [junction,
            HBM], or None.
        leak_w: (n,) one powered accelerator's leakage above its datasheet power, W.
    """
    if plate_k is None or rise_k_w is None:
        return np.asarray(junction_k), None if hbm_k is None else np.asarray(hbm_k)
    full_w = leak_w + params.full_power_w
    has_job = busy > 0
    junction = full_w * float(rise_k_w[0])
    junction += plate_k
    np.copyto(junction, junction_k, where=~has_job)
    hbm = None
    if hbm_k is not None:
        hbm = np.multiply(full_w, float(rise_k_w[1]), out=full_w)
        hbm += plate_k
        np.copyto(hbm, hbm_k, where=~has_job)
    return junction, hbm


def leakage_and_dies_k(pool: SlicePool, params: ComputeParams, busy: np.ndarray,
                       junction_k: np.ndarray, hbm_k: np.ndarray | None,
                       plate_k: np.ndarray | None, rise_k_w: np.ndarray | None
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``leakage_extra_w`` at ``junction_k``, then ``full_clock_dies_k`` with it, in
    ``pool``'s row slices on threads (twin.core.slices): both are elementwise per node (a
    non-finite leakage is zeroed node by node), so any slicing gives the same bits. One
    slice calls them once on the whole arrays.

    Returns:
        (n,) one powered accelerator's extra leakage, W, and the junction and HBM
        temperatures the throttle decides on, K (``full_clock_dies_k``).
    """
    if len(pool.bounds) == 1 or plate_k is None or rise_k_w is None:
        leak = leakage_extra_w(params, junction_k)
        return leak, *full_clock_dies_k(params, busy, junction_k, hbm_k, plate_k, rise_k_w,
                                        leak)
    n = len(busy)
    leak, junction = np.empty(n), np.empty(n)
    hbm = None if hbm_k is None else np.empty(n)

    def one_slice(start: int, stop: int) -> None:
        rows = slice(start, stop)
        leak[rows] = leak_part = leakage_extra_w(params, junction_k[rows])
        junction[rows], hbm_part = full_clock_dies_k(
            params, busy[rows], junction_k[rows], None if hbm_k is None else hbm_k[rows],
            plate_k[rows], rise_k_w, leak_part)
        if hbm is not None:
            hbm[rows] = hbm_part

    pool.run(one_slice)
    return leak, junction, hbm


def allowed_accelerator_w(params: ComputeParams, plate_k: np.ndarray | None,
                          rise_k_w: np.ndarray | None) -> np.ndarray | None:
    """(n,) the power one accelerator may draw with its junction and HBM within their
    limits over the plate, ``(T_limit - T_plate) / R``, the lower of the two, W; None
    without a plate temperature or resistances (thermal publishes none)."""
    if plate_k is None or rise_k_w is None:
        return None
    allowed = np.full(np.shape(plate_k), np.inf)
    for limit_k, r_k_w in ((params.throttle_temp_k, float(rise_k_w[0])),
                           (params.hbm_throttle_temp_k, float(rise_k_w[1]))):
        if r_k_w > 0.0:  # a die with no resistance over its plate never limits
            np.minimum(allowed, (limit_k - np.asarray(plate_k, dtype=float)) / r_k_w,
                       out=allowed)
    return allowed


def settle_payload(params: ComputeParams, load: NodeLoad, cap_w: np.ndarray,
                   rise_k_w: np.ndarray | None
                   ) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Thermal's starting state's view of the payload: a function of the plate.

    The starting state is the steady state of the working loads; a load that would heat
    its dies past their limits does not run at full clock, so the payload it draws
    depends on the plate the steady state finds. Given plate temperatures, this returns
    what ``load`` draws with the throttle holding its dies there (no hysteresis: only the
    limits), under ``cap_w``, with leakage at the junction that results (two passes), and
    one busy accelerator's power, (n,) W each.
    """
    def payload_w(plate_k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = params
        limit_k = p.throttle_temp_k
        r_j = 0.0 if rise_k_w is None else float(rise_k_w[0])
        plate = np.asarray(plate_k, dtype=float)
        # The junction at full clock, at most its limit (where the throttle holds it).
        junction = np.minimum(plate + r_j * p.full_power_w, limit_k)
        leak = leakage_extra_w(p, junction)
        junction = np.minimum(plate + r_j * (p.full_power_w + leak), limit_k)
        leak = leakage_extra_w(p, junction)
        static = load.static + leak * load.busy
        clock = dvfs_clock(p, cap_w, static, load.dynamic_full)
        allowed = allowed_accelerator_w(p, plate, rise_k_w)
        if allowed is not None:
            room = (allowed - p.idle_power_w - leak) * load.running_acc
            np.minimum(clock, dvfs_clock(p, static + room, static, load.dynamic_full),
                       out=clock)
        power = static + dynamic_w(load.dynamic_full, clock, p.dvfs_exponent)
        with np.errstate(invalid="ignore", divide="ignore"):
            per = np.where(load.busy > 0, (power - static) / load.busy + p.idle_power_w
                           + leak, p.sleep_power_w)
        return power, per

    return payload_w


class ThermalThrottle:
    """The clock a hot die or HBM allows (``throttle_temp_k`` on the junction,
    ``hbm_throttle_temp_k`` on the HBM), switched on and off with hysteresis.

    While on, a node runs at the highest clock that holds its junction and HBM at their
    limits (``clock_limit``), as a real accelerator trims its clock: a fixed cut would
    cool the die far below its limit, lift, and heat it past it again every few steps.

    Args:
        params: One node's payload (the limits, the hysteresis, the fallback clock).
        scenario: The scenario (node count, satellite names for events).

    Attributes:
        on: (n,) bool, nodes throttled now (changed in place).
        n_on: How many are: 0 in the usual step, which then skips the throttle's terms.
        clock: (n,) the clock heat allows this step (1 where off), set by
            ``clock_limit``.
    """

    def __init__(self, params: ComputeParams, scenario: Scenario) -> None:
        self.params = params
        self.scenario = scenario
        n = len(scenario.satellites)
        self.on = np.zeros(n, dtype=bool)
        self.n_on = 0
        self.clock = np.ones(n)

    def clock_limit(self, static_w: np.ndarray, dynamic_full_w: np.ndarray,
                    running_acc: np.ndarray, allowed_w: np.ndarray | None,
                    leak_w: np.ndarray | None) -> np.ndarray:
        """Set and return ``clock``: on the nodes throttled, the highest clock at which a
        computing accelerator draws at most ``allowed_w``; 1 elsewhere.

        A computing accelerator draws ``P_idle + leak + (P_full - P_idle) f^k``, so the
        node may draw ``static + running_acc (allowed - P_idle - leak)``: ``dvfs_clock``
        under that cap (0 where even ``min_clock_frac`` would pass the limit: the jobs
        suspend). Without an allowed power (thermal publishes no plate or resistances)
        the clock is cut to ``thermal_clock_frac``.

        Args:
            static_w, dynamic_full_w: (n,) the node's static draw (leakage included) and
                full-clock dynamic power, W.
            running_acc: (n,) accelerators computing.
            allowed_w: (n,) one accelerator's allowed power (``full_clock_dies_k``), W.
            leak_w: (n,) one powered accelerator's leakage above its datasheet power, W.
        """
        p = self.params
        if allowed_w is None or leak_w is None:
            self.clock = np.where(self.on, p.thermal_clock_frac, 1.0)
            return self.clock
        room_w = allowed_w - p.idle_power_w
        room_w -= leak_w
        room_w *= running_acc
        cap_w = np.where(self.on, static_w + room_w, np.inf)
        self.clock = dvfs_clock(p, cap_w, static_w, dynamic_full_w)
        return self.clock

    def update(self, ctx: StepContext, junction_k: np.ndarray | None,
               hbm_k: np.ndarray | None = None) -> None:
        """Hysteresis: cut when the junction or the HBM is above its limit, lift once both
        are ``throttle_hysteresis_k`` below theirs.

        Args:
            junction_k: (n,) junction temperatures, or None before thermal's first step
                (nothing changes): in the twin, those a busy node's dies would reach at
                full clock this step over last step's plate (``full_clock_dies_k``).
            hbm_k: (n,) HBM temperatures, the same way, or None (the junction alone).
        """
        if junction_k is None:
            return
        p = self.params
        junction = np.asarray(junction_k)
        hot = junction > p.throttle_temp_k
        hbm = None if hbm_k is None else np.asarray(hbm_k)
        if hbm is not None:
            hot |= hbm > p.hbm_throttle_temp_k
        if not self.n_on and not np.count_nonzero(hot):
            return  # none throttled and none too hot: nothing changes
        was = self.on.copy()
        # On above a limit, off once both are below limit - hysteresis, as it was in
        # between (and NaN).
        cool = junction < p.throttle_temp_k - p.throttle_hysteresis_k
        if hbm is not None:
            cool &= hbm < p.hbm_throttle_temp_k - p.throttle_hysteresis_k
        on = hot | (was & ~cool)
        self.on[:] = on
        self.n_on = int(np.count_nonzero(on))
        for node in np.flatnonzero(on != was):  # the few nodes that changed this step
            name = self.scenario.satellites[node].name
            # Event text is for people: degrees Celsius (the fields stay in kelvin).
            junction_c = junction[node] - KELVIN_PER_CELSIUS
            hbm_text = "" if hbm is None else f", HBM {hbm[node] - KELVIN_PER_CELSIUS:.1f} °C"
            if on[node]:
                ctx.events.raise_event(
                    "thermal_throttle", "warning",
                    f"{name}: junction {junction_c:.1f} °C{hbm_text} at full clock, above its "
                    f"limit ({p.throttle_temp_k - KELVIN_PER_CELSIUS:.1f} °C junction, "
                    f"{p.hbm_throttle_temp_k - KELVIN_PER_CELSIUS:.1f} °C HBM): clock held down",
                    sat=int(node))
            else:
                ctx.events.raise_event("thermal_throttle_end", "info",
                                       f"{name}: junction {junction_c:.1f} °C{hbm_text}, "
                                       "full clock again", sat=int(node))

"""The pumped coolant loop between the compute node and the radiator, and its bypass valve.

The loop's conductance follows from its flow (ε-NTU, one exchanger); a mixing valve on the
radiator bypass sends part of the flow past the radiator to hold the chips at the loop
setpoint, within a minimum radiator flow (freeze protection) and the whole flow.
``CoolantLoop`` works out that conductance per satellite, for a timed step and for the
steady state. Equations: docs/models.md, "Thermal".
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from twin.core.interfaces import BUS, COMPUTE, RADIATOR
from twin.core.slices import rows_of
from twin.models.thermal.params import ThermalParams


def loop_conductance_w_k(flow_kg_s: np.ndarray, cp_j_kg_k: float, ua_w_k: float) -> np.ndarray:
    """Pumped-loop conductance G = ṁ c_p (1 - exp(-UA / ṁ c_p)), W/K (ε-NTU, one exchanger)."""
    capacity_rate = np.asarray(flow_kg_s, dtype=np.float64) * cp_j_kg_k
    with np.errstate(divide="ignore", over="ignore"):
        return np.where(capacity_rate > 0.0,
                        capacity_rate * -np.expm1(-ua_w_k / capacity_rate), 0.0)


def _column_pair(first: float | np.ndarray, second: float | np.ndarray) -> np.ndarray:
    """(2, 1) of two numbers, or (2, n) where either is per node."""
    return np.stack(np.broadcast_arrays(np.atleast_1d(first), np.atleast_1d(second)))


class CoolantLoop:
    """The loop's conductance between radiator and compute node, per satellite, W/K.

    Args:
        n_sats: Satellites.
        params: The ``[thermal]`` parameters.
        compute_capacity_j_k: Heat capacity of the compute node, J/K (the valve's lag); (n,)
            when a node class sets it.
        scratch: (2, n) or larger float64 rows the valve may overwrite while it works.
        masks: Two (n,) bool arrays the valve may overwrite while it works.
    """

    def __init__(self, n_sats: int, params: ThermalParams,
                 compute_capacity_j_k: float | np.ndarray,
                 scratch: np.ndarray, masks: tuple[np.ndarray, np.ndarray]) -> None:
        self.params = params
        self.n_sats = n_sats
        self._compute_capacity_j_k = compute_capacity_j_k
        self._scratch = scratch
        self._masks = masks
        self.g_open = np.empty(n_sats)  # valve fully open, W/K
        self.g_min = np.empty(n_sats)  # valve at its minimum radiator flow, W/K
        # The valve's range, (min, open): numbers when the whole fleet has one flow.
        self.bounds: tuple[Any, Any] = (self.g_min, self.g_open)
        self._valve_numbers: tuple[float, np.ndarray, np.ndarray] | None = None

    def set_flow(self, flow_frac: np.ndarray) -> None:
        """Set the loop's conductances for ``flow_frac`` ((n,) flow over design flow)."""
        p = self.params
        flow_kg_s = flow_frac * p.coolant_flow_kg_s
        self.g_open[:] = loop_conductance_w_k(flow_kg_s, p.coolant_cp_j_kg_k, p.loop_ua_w_k)
        self.g_min[:] = loop_conductance_w_k(flow_kg_s * p.min_radiator_flow_frac,
                                             p.coolant_cp_j_kg_k, p.loop_ua_w_k)
        # One flow for the whole fleet (the usual case): the valve's bounds are numbers.
        uniform = self.n_sats > 0 and (self.g_open == self.g_open[0]).all() and (
            self.g_min == self.g_min[0]).all()
        self.bounds = ((float(self.g_min[0]), float(self.g_open[0])) if uniform
                       else (self.g_min, self.g_open))

    def valve_w_k(self, compute_heat_w: np.ndarray, dt_s: float, temps_k: np.ndarray,
                  out: np.ndarray | None = None, rows: slice | None = None) -> np.ndarray:
        """Loop conductance after the radiator bypass valve, (n,) W/K, for a step of dt_s.

        The valve (a mixing valve on the radiator bypass) brings the compute node to
        ``loop_setpoint_k`` with the first-order time constant ``valve_time_constant_s``:
        it aims the step's end at T* = T_c + (T_set - T_c) dt / (τ + dt) and lets through the
        radiator the conductance that lands there, G = (P + C (T_c - T_set) / (τ + dt)) /
        (T* - T_rad), from the step's start temperatures. dt = inf gives the steady setting
        P / (T_set - T_rad). G stays between ``min_radiator_flow_frac`` of the flow (freeze
        protection: coolant keeps moving through the radiator) and all of it; with a
        radiator at or above the setpoint it is fully open. Below
        ``radiator_freeze_guard_k`` the radiator nears freezing: the valve then never
        passes less than the heat the compute node takes in (P / (T_c - T_rad)), so chips
        below the setpoint hold their temperature instead of warming on heat the radiator
        needs (the loop heater's, when power turns it on for freeze protection).

        Args:
            compute_heat_w: (n,) heat into the compute node, W.
            dt_s: The step, s.
            temps_k: (4, n) temperatures at the step's start, K.
            out: (n,) array for the result; allocated when None.
            rows: Only these satellites' columns (of every array above and of the
                scratch): a row slice on a thread (twin.core.slices); elementwise, so the
                same bits for any slicing. Returns ``out[rows]`` then.
        """
        p = self.params
        if out is None:
            out = np.empty_like(temps_k[RADIATOR])
        cut = slice(None) if rows is None else rows
        compute_heat_w, temps_k, out = compute_heat_w[cut], temps_k[:, cut], out[cut]
        scratch, masks = self._scratch[:2, cut], (self._masks[0][cut], self._masks[1][cut])
        t_rad = temps_k[RADIATOR]
        t_set = p.loop_setpoint_k
        g_min, g_max = (rows_of(bound, cut) for bound in self.bounds)
        if math.isinf(dt_s):
            need_w = compute_heat_w
            gap = t_set - t_rad
        else:
            # Heat the loop must carry, P + C (T_c - T_set) / (τ + dt), W, and the gap to the
            # target, T* - T_rad = T_set + (T_c - T_set) τ / (τ + dt) - T_rad, K: both
            # linear in T_c, one (2, n) pass.
            terms = self.valve_terms(dt_s)
            need_gap = np.multiply(temps_k[COMPUTE], rows_of(terms[1], cut), out=scratch)
            need_gap += rows_of(terms[2], cut)
            need_w, gap = need_gap
            need_w += compute_heat_w
            gap -= t_rad
        with np.errstate(divide="ignore", invalid="ignore"):  # and the freeze guard's
            wanted = np.divide(need_w, gap, out=out)
            # gap <= 0: the radiator is at least as warm as the target. A node that needs
            # cooling then gets all the flow there is (inf, clipped below); one that needs
            # heat gets what it asked (both < 0).
            settable, below = masks
            np.greater(gap, 0.0, out=settable)
            settable |= np.less(need_w, 0.0, out=below)
            settable &= np.less(t_rad, t_set, out=below)
            if np.count_nonzero(settable) < settable.size:  # any valve at a stop?
                np.putmask(wanted, np.logical_not(settable, out=settable), np.inf)
            self._freeze_guard(wanted, compute_heat_w, temps_k, scratch[0], masks)
        np.maximum(wanted, g_min, out=wanted)
        return np.minimum(wanted, g_max, out=wanted)

    def steady_valve_w_k(self, compute_heat_w: np.ndarray, temps_k: np.ndarray,
                         freeze_mode: np.ndarray) -> np.ndarray:
        """The valve's steady setting, (n,) W/K, at temperatures ``temps_k`` ((4, n) K).

        Normal mode: G = P / (T_set - T_rad), fully open with the radiator at or above the
        setpoint. Freeze mode (``freeze_mode`` (n,) bool): the stepped valve passes at least
        P / (T_c - T_rad), so in steady state the mount to the bus carries nothing and the
        chips sit at the bus temperature: G >= P / (T_bus - T_rad). That is the fixed point
        of the stepped rule, solved for directly (iterating P / (T_c - T_rad) converges to
        it only by ~25 % an iteration, and not at all with no mount). Clipped to the valve's
        range.
        """
        t_rad = temps_k[RADIATOR]
        with np.errstate(divide="ignore", invalid="ignore"):
            wanted = np.where(t_rad < self.params.loop_setpoint_k,
                              compute_heat_w / (self.params.loop_setpoint_k - t_rad), np.inf)
            if freeze_mode.any():
                gap = temps_k[BUS] - t_rad
                through = np.where(freeze_mode & (gap > 0.0), compute_heat_w / gap, 0.0)
                wanted = np.fmax(wanted, through)
        g_min, g_max = self.bounds
        return np.clip(wanted, g_min, g_max)

    def valve_terms(self, dt_s: float) -> tuple[float, np.ndarray, np.ndarray]:
        """dt_s, then the (2, 1) slopes in T_c and offsets of the valve's [heat to carry,
        gap to target] for a step of dt_s ((2, n) when a node class sets the compute node's
        capacity), kept as ``_valve_numbers`` (made before slices read them)."""
        if self._valve_numbers is not None and self._valve_numbers[0] == dt_s:
            return self._valve_numbers
        p = self.params
        tau, t_set = p.valve_time_constant_s, p.loop_setpoint_k
        per_k = self._compute_capacity_j_k / (tau + dt_s)  # W/K of lag behind the setpoint
        share = tau / (tau + dt_s)
        self._valve_numbers = (dt_s, _column_pair(per_k, share),
                               _column_pair(-t_set * per_k, t_set * (1.0 - share)))
        return self._valve_numbers

    def _freeze_guard(self, wanted: np.ndarray, compute_heat_w: np.ndarray,
                      temps: np.ndarray, scratch: np.ndarray,
                      masks: tuple[np.ndarray, np.ndarray]) -> None:
        """Below ``radiator_freeze_guard_k`` pass at least the heat the compute node takes
        in, P / (T_c - T_rad), W/K: ``wanted`` (n,) is raised in place. Divides by zero
        where T_c = T_rad: the caller ignores floating-point errors.

        Dense over the fleet: a cold radiator is common (an idle node in eclipse), and a
        masked write costs less than gathering and scattering the cold ones.
        """
        t_rad = temps[RADIATOR]
        cold, warmer = masks
        if not np.count_nonzero(np.less(t_rad, self.params.radiator_freeze_guard_k, out=cold)):
            return
        gap = np.subtract(temps[COMPUTE], t_rad, out=scratch)
        cold &= np.greater(gap, 0.0, out=warmer)  # chips warmer than the radiator
        through = np.divide(compute_heat_w, gap, out=gap)  # (errors ignored by the caller)
        np.fmax(wanted, through, out=through)
        np.putmask(wanted, cold, through)

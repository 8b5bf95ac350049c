"""The battery balance: how each node's supply is shared among its loads and its battery
over a step, and the rows of the step's float64 block that it fills.

The arrays feed the loads first; a surplus charges the battery, a deficit discharges it,
within its charge and discharge limits and its state of charge; what neither can give is
shed. A step that crosses the shadow edge is balanced as two segments. Equations:
docs/models.md, "Power".
"""

from __future__ import annotations

import numpy as np

from twin.core.slices import SlicePool
from twin.models.environment import SunlitStep
from twin.models.power.params import PowerParams

# Rows of the step's float64 block: the four published fields first, then the balance's
# (``BatteryBalance.balance``), then the ledger's scratch.
# The rows from ``served`` to ``loss`` are the nodes' internal heat that thermal takes
# (``internal_heat_w``): into the compute node, the bus (its loads and the regulation loss)
# and the battery (its losses), while every heater is off.
STEP_ROWS = ("p_avail", "soc", "load", "flow", "served", "bus_internal", "loss", "d_soc",
             "used", "dissipated")
P_AVAIL, SOC, LOAD, FLOW, SERVED, BUS_INTERNAL, LOSS, D_SOC, USED, DISSIPATED = range(
    len(STEP_ROWS))


class BatteryBalance:
    """Shares supply among loads and battery, per satellite, for the ``[power]`` parameters.

    Args:
        params: The ``[power]`` parameters.
    """

    def __init__(self, params: PowerParams) -> None:
        p = self.params = params
        # The balance's per-row constants (see balance_numbers), (2, 1) each: the
        # [charge, -discharge] limits per J of capacity per unit of state of charge per s,
        # their scale for the last (capacity, dt) (W per unit of state of charge), their
        # clip bounds (W), and the [loss, storage] factors of the terminal flow.
        self._limit_per_j = np.array([[1.0 / p.charge_efficiency_frac],
                                      [-p.discharge_efficiency_frac]])
        # ((capacity, dt), their (2, 1) scale), one object: a slice's thread reading it
        # never sees one's key with another's rows.
        self._limit_scale_kept: tuple[tuple[float, float], np.ndarray] | None = None
        self._limit_floor = np.array([[0.0], [-p.max_discharge_w]])
        self._limit_ceiling = np.array([[p.max_charge_w], [0.0]])
        self._charge_factors = np.array([[1.0 - p.charge_efficiency_frac],
                                         [p.charge_efficiency_frac]])
        self._discharge_change = np.array([[p.charge_efficiency_frac
                                            - 1.0 / p.discharge_efficiency_frac],
                                           [1.0 / p.discharge_efficiency_frac
                                            - p.charge_efficiency_frac]])

    def _limit_scale(self, capacity_j: float, dt: float) -> np.ndarray:
        """(2, 1) ``_limit_per_j`` capacity / dt, kept while both stay."""
        kept = self._limit_scale_kept
        if kept is None or kept[0] != (capacity_j, dt):
            kept = (capacity_j, dt), self._limit_per_j * (capacity_j / dt)
            self._limit_scale_kept = kept
        return kept[1]

    def balance_in_slices(self, pool: SlicePool, supply: np.ndarray, base: float | np.ndarray,
                          payload: np.ndarray, soc: np.ndarray, capacity_j: float, dt: float,
                          out: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """``balance_numbers`` of a timed step and one capacity > 0 for all (the usual
        case), in ``pool``'s row slices on threads (twin.core.slices).

        Every node's balance reads and writes its own column alone, so the slices' rows are
        the whole's bits. What is unserved comes back per slice, None where the slice has
        none; it is joined here, zeros where a slice had none (what the whole computes
        there: the deficit max(flow - net, 0) is 0 wherever the battery covers the net).
        """
        if len(pool.bounds) == 1:
            return self.balance_numbers(supply, base, payload, soc, capacity_j, dt, out, True)
        self._limit_scale(capacity_j, dt)  # kept here, before the threads only read it
        parts = pool.run(self._balance_slice, supply, base, payload, soc, capacity_j, dt, out)
        joined: list[np.ndarray | None] = []
        for which in range(2):  # (all, base loads), in slice order
            if all(part[which] is None for part in parts):
                joined.append(None)
                continue
            whole = np.zeros(soc.size)
            for (start, stop), part in zip(pool.bounds, parts, strict=True):
                if part[which] is not None:
                    whole[start:stop] = part[which]
            joined.append(whole)
        return joined[0], joined[1]

    def _balance_slice(self, start: int, stop: int, supply: np.ndarray,
                       base: float | np.ndarray, payload: np.ndarray, soc: np.ndarray,
                       capacity_j: float, dt: float, out: np.ndarray
                       ) -> tuple[np.ndarray | None, np.ndarray | None]:
        cols = slice(start, stop)
        return self.balance_numbers(supply[cols], base if isinstance(base, float)
                                    else base[cols], payload[cols], soc[cols], capacity_j, dt,
                                    out[:, cols], True)

    def split_at_shadow_edge(self, rows: np.ndarray, soc_state: np.ndarray,
                             unit_w: np.ndarray, sun: SunlitStep, base: float | np.ndarray,
                             payload: np.ndarray, capacity_j: float | np.ndarray, dt: float,
                             unserved: tuple[np.ndarray | None, np.ndarray | None]
                             ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Redo the balance of the few satellites that crossed the shadow edge in the step
        as two segments and write their step means into the balance rows in place.

        Args:
            rows: The step's (len(STEP_ROWS), n) block, whose balance rows are rewritten.
            soc_state: (n,) state of charge at the step's start (not written).
            unit_w: (n,) array output per unit visible Sun, W.
            sun: The step's sunlight, with its shadow-edge crossings.
            base: Bus and heater load, W, (n,) or one for all.
            payload: (n,) compute load, W.
            capacity_j: Battery capacity, J, (n,) or one for all.
            dt: The step, s.
            unserved: What ``balance`` left unserved over the whole step.

        Returns:
            ``unserved`` (all, base loads; (n,) W or None) with the crossings' step means.
        """
        cross, weight = sun.crossed, sun.weights
        base_x = base if isinstance(base, float) else base[cross]
        cap_x = capacity_j if isinstance(capacity_j, float) else capacity_j[cross]
        payload_x = payload[cross]
        # Each segment's (rows) supply after regulation, W, and duration, s, (2, m).
        supply = unit_w[cross]
        supply *= self.params.regulation_efficiency_frac
        supply = supply * sun.crossed_ends
        seconds = weight * dt
        segments = np.zeros((2, DISSIPATED - LOAD, cross.size))  # (bus_internal: unused)
        first, second = segments
        soc = soc_state[cross]
        if isinstance(cap_x, float) and cap_x > 0.0 and np.minimum.reduce(
                seconds, axis=None) > 0.0:  # the usual case: ``balance``'s timed branch
            # Both segments' per-interval factors in one pass each: the limits' scale
            # [1 / η_c, -η_d] capacity / dt, (segment, 2, m), and dt / capacity, (2, m).
            scales = np.divide(cap_x, seconds)
            scales = np.multiply(self._limit_per_j, scales[:, None, :])
            per_j = np.divide(seconds, cap_x)
            short_1 = self.balance_numbers(supply[0], base_x, payload_x, soc, cap_x,
                                            seconds[0], first, True, scales[0], per_j[0])
            soc += first[D_SOC - LOAD]
            short_2 = self.balance_numbers(supply[1], base_x, payload_x, soc, cap_x,
                                            seconds[1], second, True, scales[1], per_j[1])
        else:
            short_1 = self.balance(supply[0], base_x, payload_x, soc, cap_x, seconds[0], first)
            soc += first[D_SOC - LOAD]
            short_2 = self.balance(supply[1], base_x, payload_x, soc, cap_x, seconds[1],
                                    second)
        # Step means of the powers; the state of charge changes by both segments' sum.
        d_soc = first[D_SOC - LOAD] + second[D_SOC - LOAD]
        segments *= weight[:, None, :]
        first += second
        first[D_SOC - LOAD] = d_soc
        rows[LOAD:DISSIPATED, cross] = first
        merged = []
        for whole, one, two in zip(unserved, short_1, short_2, strict=True):
            if whole is None and (one is not None or two is not None):
                whole = np.zeros(soc_state.size)
            if whole is not None:
                whole[cross] = weight[0] * _or_zero(one) + weight[1] * _or_zero(two)
            merged.append(whole)
        return merged[0], merged[1]

    def balance(self, supply: np.ndarray, base: float | np.ndarray, payload: np.ndarray,
                soc: np.ndarray, capacity_j: float | np.ndarray, dt: float | np.ndarray,
                out: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Share supply among loads and battery over an interval; all (m,), W, J, s.

        The arrays feed the loads first; a surplus charges the battery (up to its charge
        limit and ``soc_max_frac``), a deficit discharges it (down to empty and its discharge
        limit). What neither can give is not drawn: compute is shed first, then the bus.
        The battery's terminal power is the net clipped between the discharge and charge
        limits; the rest of the arithmetic follows from its sign (one of charge and
        discharge is always zero).

        Args:
            out: (7, m) filled in place with the interval's mean powers, W, and the change
                of state of charge, in the order of ``STEP_ROWS`` from ``load``: load, battery
                terminal flow (+ charging), compute served, (bus_internal: not touched),
                battery loss, d_soc (the change of state of charge), array power used before
                regulation.

        Returns:
            Power not served, in all and of the base loads (bus and heaters), (m,) W each,
            or None when nothing is unserved.
        """
        shortest = dt if isinstance(dt, float) else np.minimum.reduce(dt, axis=None)
        if shortest > 0.0 and (capacity_j > 0.0 if isinstance(capacity_j, float)
                               else np.minimum.reduce(capacity_j, axis=None) > 0.0):
            return self.balance_numbers(supply, base, payload, soc, capacity_j, dt, out, True)
        timed = dt > 0.0 if isinstance(dt, float) else np.maximum.reduce(dt, axis=None) > 0.0
        with np.errstate(divide="ignore", invalid="ignore"):  # a zero interval or capacity
            return self.balance_numbers(supply, base, payload, soc, capacity_j, dt, out,
                                         bool(timed))

    def balance_numbers(self, supply: np.ndarray, base: float | np.ndarray,
                        payload: np.ndarray, soc: np.ndarray, capacity_j: float | np.ndarray,
                        dt: float | np.ndarray, out: np.ndarray, timed: bool,
                        scale: np.ndarray | None = None, soc_per_w: np.ndarray | None = None
                        ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """``balance``'s arithmetic, without its floating-point error state; ``timed``:
        whether any interval is longer than zero (else the epoch's flows). ``scale`` (2, m)
        and ``soc_per_w`` (m,), when given, are the limits' factors ``_limit_per_j``
        capacity / dt and dt / capacity of an array ``dt`` and a number ``capacity_j`` > 0,
        computed by the caller for several intervals at once.

        The rows of ``out`` hold scratch before their own values: the net power in ``used``,
        the charge and (negated) discharge limits in ``loss`` and ``d_soc`` (adjacent, so
        one pass clips both), the flow's negative part in ``served``.
        """
        p = self.params
        load, flow, served, _, _, d_soc, used = out
        limits = out[LOSS - LOAD:D_SOC - LOAD + 1]
        hi, lo = limits
        np.add(payload, base, out=load)
        net = np.subtract(supply, load, out=used)
        if timed:
            # Charge limit: room to soc_max_frac over the interval; discharge limit, negated:
            # the charge left over the interval. Then the rate limits.
            np.subtract(p.soc_max_frac, soc, out=hi)
            np.copyto(lo, soc)
            if isinstance(capacity_j, float) and isinstance(dt, float):
                limits *= self._limit_scale(capacity_j, dt)
            elif scale is not None:
                limits *= scale
            else:  # [1 / η_c, -η_d] capacity / dt, (2, m)
                limits *= np.multiply(self._limit_per_j, np.divide(capacity_j, dt))
            np.maximum(limits, self._limit_floor, out=limits)
            np.minimum(limits, self._limit_ceiling, out=limits)
        else:  # the epoch: show the flows, change nothing
            hi[...] = 0.0
            lo[...] = np.where(np.greater(capacity_j, 0.0), -p.max_discharge_w, 0.0)
        np.maximum(net, lo, out=flow)
        np.minimum(flow, hi, out=flow)
        unserved = unserved_base = shed = None
        if np.count_nonzero(np.less(net, lo)):  # rare: a deficit the battery cannot give
            unserved = np.maximum(flow - net, 0.0)
            shed = np.minimum(unserved, payload)
            unserved_base = unserved - shed
            load -= unserved
        np.add(load, flow, out=used)
        used /= p.regulation_efficiency_frac
        # Battery loss and the power into storage per watt at the terminals, by the flow's
        # sign: charging 1 - η_c and η_c, discharging 1 - 1/η_d and 1/η_d. A masked multiply
        # or a ``where`` costs several plain passes: both rows take the charging factor,
        # then the discharge's difference on the flow's negative part.
        negative = np.minimum(flow, 0.0, out=served)
        into = out[LOSS - LOAD:D_SOC - LOAD + 1]  # [loss, d_soc]
        np.multiply(flow, self._charge_factors, out=into)
        into += negative * self._discharge_change
        if isinstance(capacity_j, float):
            if capacity_j > 0.0:
                d_soc *= dt / capacity_j if soc_per_w is None else soc_per_w
            else:
                d_soc[...] = 0.0
        else:
            d_soc *= dt
            d_soc /= capacity_j
            np.putmask(d_soc, np.less_equal(capacity_j, 0.0), 0.0)
        if shed is None:
            np.copyto(served, payload)
        else:
            np.subtract(payload, shed, out=served)
        return unserved, unserved_base


def _or_zero(values: np.ndarray | None) -> np.ndarray | float:
    return 0.0 if values is None else values

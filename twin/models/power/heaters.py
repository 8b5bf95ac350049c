"""The heaters and their thermostats: the battery heater, and the loop heater on the compute
cold plate, which two thermostats drive (the chips' and the radiator's freeze guard).

Each thermostat switches on the previous step's temperatures with hysteresis; while
thermal settles its starting state they only switch on (docs/models.md, "Starting state").
"""

from __future__ import annotations

from typing import Any

import numpy as np

from twin.core.interfaces import BATTERY, COMPUTE, RADIATOR, ThermalOutputs
from twin.models.power.params import PowerParams


def thermostat(on: np.ndarray, cold: np.ndarray, warm: np.ndarray) -> np.ndarray:
    """On/off with hysteresis: on where ``cold``, off where ``warm``, else as it was; (n,)."""
    return (on | cold) & ~(warm & ~cold)


class Heaters:
    """The battery heaters and loop heaters of n satellites: which are on, and their power.

    ``heater_w`` and ``loop_w`` are rewritten in place only when a thermostat may have
    changed, which ``changed`` then says (for the caller to publish and clear).

    Args:
        n_sats: Satellites.
        params: The ``[power]`` parameters.
    """

    def __init__(self, n_sats: int, params: PowerParams) -> None:
        self.params = params
        self.n_sats = n_sats
        self.heater_on = np.zeros(n_sats, dtype=bool)  # battery heaters
        self.loop_heater_on = np.zeros(n_sats, dtype=bool)
        self.n_heaters_on = self.n_loop_on = 0  # counts of the two
        self.changed = False  # whether the heater fields need rewriting
        self.settle_cycling = np.zeros(0, dtype=np.intp)  # see settle
        # Battery heater and loop heater power, W.
        self.heater_w = np.zeros(n_sats)
        self.loop_w = np.zeros(n_sats)

    def update(self, thermal: ThermalOutputs) -> None:
        """Battery heater and loop heater thermostats on the previous step's temperatures.

        The battery heater is on below ``heater_on_k``, off above ``heater_off_k``. Two
        thermostats drive the one loop heater on the compute cold plate: the chips'
        (``loop_heater_on_k`` / ``loop_heater_off_k``) and the radiator's freeze guard
        (``freeze_guard_on_k`` / ``freeze_guard_off_k``), whose heat the bypass valve passes
        on to the radiator once the chips are at the loop setpoint. NaN (unknown) keeps a
        heater as it is. While every heater is off and nothing is cold (the usual case), a
        minimum per temperature settles it.
        """
        p = self.params
        temp_b = thermal.temp_battery_k
        temp_c = thermal.temp_compute_k
        temp_r = thermal.temp_radiator_k
        coldest = _coldest_k(thermal, temp_r, temp_c, temp_b)
        if temp_b is not None and (self.n_heaters_on
                                   or _any_below(temp_b, p.heater_on_k, coldest[BATTERY])):
            self.heater_on = thermostat(self.heater_on, temp_b < p.heater_on_k,
                                        temp_b > p.heater_off_k)
            np.multiply(self.heater_on, p.heater_power_w, out=self.heater_w)
            self.n_heaters_on = int(np.count_nonzero(self.heater_on))
            self.changed = True
        if temp_c is None:
            return
        if not (self.n_loop_on or _any_below(temp_c, p.loop_heater_on_k, coldest[COMPUTE])
                or (temp_r is not None
                    and _any_below(temp_r, p.freeze_guard_on_k, coldest[RADIATOR]))):
            return
        cold = temp_c < p.loop_heater_on_k
        warm = temp_c > p.loop_heater_off_k
        if temp_r is not None:
            cold |= temp_r < p.freeze_guard_on_k
            warm &= temp_r > p.freeze_guard_off_k
        self.loop_heater_on = thermostat(self.loop_heater_on, cold, warm)
        np.multiply(self.loop_heater_on, p.loop_heater_power_w, out=self.loop_w)
        self.n_loop_on = int(np.count_nonzero(self.loop_heater_on))
        self.changed = True

    def settle(self, temps_k: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The heaters' part of thermal's starting state (docs/models.md, "Starting state").

        Thermal calls it while it settles: first with None, which switches every heater
        off, then with each settled state, (4, n) K in thermal's node order, which switches
        on (never off) each heater whose thermostat reads cold there: the battery heater
        below ``heater_on_k``, the loop heater below ``loop_heater_on_k`` (chips) or
        ``freeze_guard_on_k`` (radiator). The next step's thermostats start from that state.
        ``settle_cycling`` then lists the satellites with a heater on whose state reads warm
        enough to switch it off: no steady state agrees with their thermostat, which cycles.

        Returns:
            Loop heater and battery heater power, (n,) W each (this object's arrays).
        """
        p = self.params
        if temps_k is None:
            self.heater_on = np.zeros(self.n_sats, dtype=bool)
            self.loop_heater_on = np.zeros(self.n_sats, dtype=bool)
            self.settle_cycling = np.zeros(0, dtype=np.intp)
        else:  # NaN reads warm for the cold test: a satellite with bad inputs stays off
            t_r, t_c, t_b = temps_k[RADIATOR], temps_k[COMPUTE], temps_k[BATTERY]
            self.heater_on |= t_b < p.heater_on_k
            self.loop_heater_on |= (t_c < p.loop_heater_on_k) | (t_r < p.freeze_guard_on_k)
            warm_loop = (t_c > p.loop_heater_off_k) & (t_r > p.freeze_guard_off_k)
            self.settle_cycling = np.flatnonzero((self.loop_heater_on & warm_loop)
                                                 | (self.heater_on & (t_b > p.heater_off_k)))
        np.multiply(self.heater_on, p.heater_power_w, out=self.heater_w)
        np.multiply(self.loop_heater_on, p.loop_heater_power_w, out=self.loop_w)
        self.n_heaters_on = int(np.count_nonzero(self.heater_on))
        self.n_loop_on = int(np.count_nonzero(self.loop_heater_on))
        return self.loop_w, self.heater_w


def _any_below(values: np.ndarray, limit: float, coldest: float | None = None) -> bool:
    """Whether any value (NaN aside) is below ``limit``: one reduction over (n,), or none
    with the values' minimum (NaN aside) ``coldest`` known."""
    if coldest is None:
        return bool(values.size) and bool(np.fmin.reduce(values, axis=None) < limit)
    return bool(coldest < limit)


def _coldest_k(thermal: ThermalOutputs, *temps: np.ndarray | None) -> list[Any]:
    """Thermal's minima (NaN aside, node order) of its temperature fields, when ``temps``
    (radiator, compute, battery) are those fields; else Nones. Thermal publishes them as
    ``temp_min_k``, of ``temp_block_k``, the (4, n) block the fields are rows of."""
    block, minima = thermal.temp_block_k, thermal.temp_min_k
    if block is None or not all(t is None or t.base is block for t in temps):
        return [None] * 4
    return list(minima)  # float32 scalars: compared as the fields' own values

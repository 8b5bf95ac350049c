"""The accelerators' die (junction) and HBM temperatures over the compute node's cold plate.

The compute node is one lumped mass (chips, cold plates, coolant) with a time constant of
minutes; a die and its HBM stacks sit above it through a thermal resistance each (TIM,
lid, cold-plate base and the convective film) and hold a few grams of silicon: their time
constants (milliseconds to about a second) are far below the step, so each is taken at
its steady state over the plate, every step:

    T_junction = T_plate + R_j P        T_hbm = T_plate + R_hbm f_hbm P

with P the power one busy accelerator draws (compute's ``accelerator_power_w``, scaled
down where power served less than compute asked). The heat itself goes into the compute
node with the rest of the payload's: these temperatures store none, and the energy ledger
is the network's. Values and sources: docs/models.md, "Junction, HBM and leakage".
"""

from __future__ import annotations

import numpy as np

from twin.core.slices import rows_of
from twin.core.subsystem import Field, make_field
from twin.models.thermal.params import ThermalParams, die_limits_k

DEFAULT_DIE_THROTTLE_K = (358.15, 368.15)
"""compute's default ``throttle_temp_k`` and ``hbm_throttle_temp_k`` (K)."""


class DieTemperatures:
    """The ``temp_junction_k`` and ``temp_hbm_k`` fields, set from the plate each step.

    Args:
        n: Nodes.
        params: The ``[thermal]`` parameters (the two resistances, the HBM's share).
        throttle_k: compute's ``throttle_temp_k`` and ``hbm_throttle_temp_k`` (K): each
            field warns 2 K and alarms 5 K past its throttle (``die_limits_k``).
    """

    def __init__(self, n: int, params: ThermalParams,
                 throttle_k: tuple[float, float] = DEFAULT_DIE_THROTTLE_K) -> None:
        self.params = params
        f = make_field
        self.junction = f("temp_junction_k", "<f4", (n,), "K",
                          "Hottest accelerator die (junction), over its cold plate",
                          limits=die_limits_k(throttle_k[0]))
        self.hbm = f("temp_hbm_k", "<f4", (n,), "K",
                     "Hottest accelerator's HBM stacks, over its cold plate",
                     limits=die_limits_k(throttle_k[1]))
        # Kelvin over the plate per watt of one accelerator: [junction, HBM] (published,
        # so that compute's throttle judges the dies at the clock it would choose).
        self.rise_k_w = np.array([params.junction_resistance_k_w,
                                  params.hbm_resistance_k_w * params.hbm_power_frac])
        self.rise_k_w.flags.writeable = False
        self._power = np.zeros(n)  # one accelerator's heat this step, W
        self._temp = np.zeros(n)  # float64 scratch before the float32 fields

    def fields(self) -> list[Field]:
        return [self.junction, self.hbm]

    def update(self, plate_k: np.ndarray, accelerator_w: np.ndarray | None,
               demand_w: np.ndarray | None, served_w: np.ndarray | None,
               rows: slice | None = None) -> None:
        """Set both fields for this step.

        Args:
            plate_k: (n,) the compute node's temperature, K (float64 state).
            accelerator_w: (n,) compute's ``accelerator_power_w``, W, or None (no heat).
            demand_w: (n,) compute's ``compute_power_w``, W, or None.
            served_w: (n,) power's ``payload_power_w``, W, or None (all served).
            rows: Only these satellites (a row slice on a thread, twin.core.slices;
                elementwise: the same bits for any slicing); None: all.
        """
        cut = slice(None) if rows is None else rows
        power = self._power[cut]
        if accelerator_w is None:
            power[:] = 0.0
        else:
            np.copyto(power, rows_of(accelerator_w, cut))
            if demand_w is not None and served_w is not None:
                # Where power served less than asked (a shed load), each part drew less.
                served_w, demand_w = rows_of(served_w, cut), rows_of(demand_w, cut)
                short = served_w < demand_w
                if np.count_nonzero(short):
                    power[short] *= (np.broadcast_to(served_w, power.shape)[short]
                                     / np.broadcast_to(demand_w, power.shape)[short])
        plate_k = plate_k[cut]
        temp = self._temp[cut]
        np.multiply(power, self.rise_k_w[0], out=temp)
        temp += plate_k
        np.copyto(self.junction.array[cut], temp, casting="same_kind")
        np.multiply(power, self.rise_k_w[1], out=temp)
        temp += plate_k
        np.copyto(self.hbm.array[cut], temp, casting="same_kind")

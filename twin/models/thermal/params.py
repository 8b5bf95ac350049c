"""Thermal's parameters and the node layout: the ``[thermal]`` table, the four nodes in the
order they are published (``twin.core.interfaces.THERMAL_NODES``) and their default
operating limits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from twin.astro.attitude import ATTITUDE_LAWS
from twin.core.interfaces import THERMAL_NODES

NODE_NAMES = THERMAL_NODES  # the node order thermal publishes its temperatures in

# Default operating limits (K) published in FieldSpec.limits; [limits] in a scenario overrides.
COMPUTE_LIMITS_K = {"alarm_low": 273.15, "warn_low": 278.15,  # chips: 0..85 °C operating
                    "warn_high": 353.15, "alarm_high": 358.15}
BATTERY_LIMITS_K = {"alarm_low": 273.15, "warn_low": 278.15,  # Li-ion: 0..45 °C operating
                    "warn_high": 313.15, "alarm_high": 318.15}
BUS_LIMITS_K = {"alarm_low": 253.15, "warn_low": 263.15,  # electronics: -20..+60 °C
                "warn_high": 323.15, "alarm_high": 333.15}
RADIATOR_LIMITS_K = {"alarm_low": 200.0, "warn_low": 205.0}  # ammonia freezes at 195.4 K
# Die and HBM (docs/models.md, "Junction, HBM and leakage"). The throttle holds a hot
# die at its limit ([compute] throttle_temp_k 85 °C, hbm_throttle_temp_k 95 °C), give or
# take what the plate moves in a step (under 2 K): a die held there is throttled
# (throttle_code), not out of limits. Warning 2 K past the limit (the hold is slipping),
# alarm 5 K past it (it has failed).
DIE_WARN_PAST_THROTTLE_K = 2.0
DIE_ALARM_PAST_THROTTLE_K = 5.0


def die_limits_k(throttle_k: float) -> dict[str, float]:
    """Limits of a die or HBM temperature field whose throttle holds it at ``throttle_k``:
    warning 2 K past it, alarm 5 K past it; 0 and 5 °C below."""
    return {"alarm_low": 273.15, "warn_low": 278.15,
            "warn_high": throttle_k + DIE_WARN_PAST_THROTTLE_K,
            "alarm_high": throttle_k + DIE_ALARM_PAST_THROTTLE_K}


JUNCTION_LIMITS_K = die_limits_k(358.15)  # at compute's default throttle_temp_k
HBM_LIMITS_K = die_limits_k(368.15)  # at compute's default hbm_throttle_temp_k


def _m(unit: str, **bounds: float | bool) -> dict[str, Any]:
    return {"unit": unit, **bounds}


@dataclass(frozen=True)
class ThermalParams:
    """The ``[thermal]`` table. Defaults are the design point sized in docs/models.md.

    Areas are per face; capacities J/K; conductances W/K; optical properties 0..1. Keys
    with ``per_node`` metadata may also be set for a class of nodes (``[[node_class]]``,
    twin.scenario.node_class): the model then holds an (n,) array for that key.
    """

    attitude: str = field(default="yaw_steering", metadata={"choices": ATTITUDE_LAWS})
    albedo_frac: float = field(default=0.30, metadata=_m("1", min=0.0, max=1.0))
    earth_ir_w_m2: float = field(default=237.0, metadata=_m("W/m2", min=0.0, max=500.0))
    sink_temp_k: float = field(default=2.7, metadata=_m("K", min=0.0, max=400.0))
    radiator_area_m2: float = field(
        default=13.5,
        metadata=_m("m2", min=0.0, max=1.0e4, per_node=True))
    radiator_emissivity: float = field(
        default=0.90,
        metadata=_m("1", min=0.0, max=1.0, per_node=True))
    radiator_absorptivity: float = field(default=0.15, metadata=_m("1", min=0.0, max=1.0))
    radiator_heat_capacity_j_k: float = field(
        default=112.0e3,
        metadata=_m("J/K", gt=0.0, per_node=True))
    compute_heat_capacity_j_k: float = field(
        default=80.0e3,
        metadata=_m("J/K", gt=0.0, per_node=True))
    coolant_flow_kg_s: float = field(default=0.15, metadata=_m("kg/s", min=0.0, max=100.0))
    coolant_cp_j_kg_k: float = field(default=4700.0, metadata=_m("J/(kg K)", gt=0.0))
    loop_ua_w_k: float = field(
        default=1500.0,
        metadata=_m("W/K", min=0.0, max=1.0e7, per_node=True))
    loop_setpoint_k: float = field(default=298.15, metadata=_m("K", min=0.0, max=500.0))
    min_radiator_flow_frac: float = field(default=0.005, metadata=_m("1", min=0.0, max=1.0))
    valve_time_constant_s: float = field(default=300.0, metadata=_m("s", min=0.0, max=1.0e6))
    radiator_freeze_guard_k: float = field(default=211.15, metadata=_m("K", min=0.0,
                                                                       max=500.0))
    bus_radiator_area_m2: float = field(default=4.5, metadata=_m("m2", min=0.0, max=1.0e4))
    bus_emissivity: float = field(default=0.90, metadata=_m("1", min=0.0, max=1.0))
    bus_absorptivity: float = field(default=0.15, metadata=_m("1", min=0.0, max=1.0))
    bus_heat_capacity_j_k: float = field(default=300.0e3, metadata=_m("J/K", gt=0.0))
    battery_heat_capacity_j_k: float = field(default=125.0e3, metadata=_m("J/K", gt=0.0))
    compute_bus_conductance_w_k: float = field(default=2.0, metadata=_m("W/K", min=0.0))
    bus_battery_conductance_w_k: float = field(default=60.0, metadata=_m("W/K", min=0.0))
    # Die and HBM over the cold plate, per accelerator (docs/models.md, "Junction, HBM and
    # leakage"): junction = plate + R_j P, HBM = plate + R_hbm f_hbm P, P one accelerator.
    junction_resistance_k_w: float = field(default=0.035, metadata=_m("K/W", min=0.0,
                                                                      max=10.0))
    hbm_resistance_k_w: float = field(default=0.25, metadata=_m("K/W", min=0.0, max=10.0))
    hbm_power_frac: float = field(default=0.15, metadata=_m("1", min=0.0, max=1.0))

    @property
    def capacities_j_k(self) -> np.ndarray:
        """(4,) heat capacities in node order, J/K; (4, n) when a node class sets some."""
        values = (self.radiator_heat_capacity_j_k, self.compute_heat_capacity_j_k,
                  self.bus_heat_capacity_j_k, self.battery_heat_capacity_j_k)
        if all(np.ndim(v) == 0 for v in values):
            return np.array(values)
        return np.stack(np.broadcast_arrays(*values)).astype(np.float64)

"""The ``[estimation]`` table: the mirrored node's filter model, its noises, bands, detectors.

The network's parameters default to the node's ``[thermal]`` table (as ``odc calibrate``
writes them for the mirrored node): ``C_c`` = ``compute_heat_capacity_j_k``, ``C_r`` =
``radiator_heat_capacity_j_k``, ``G`` the loop's ε-NTU conductance at full flow, ``eps A``
both radiator faces, the sink, the junction resistance. A key given here replaces that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from twin.models.estimation.filter import NetworkParams
from twin.scenario import InvalidField


def _m(unit: str, **bounds: float) -> dict[str, Any]:
    return {"unit": unit, **bounds}


@dataclass(frozen=True)
class EstimationParams:
    """The ``[estimation]`` table (docs/models.md, "State estimation and diagnosis")."""

    enabled: bool = True
    compute_heat_capacity_j_k: float | None = field(default=None, metadata=_m("J/K", gt=0.0))
    radiator_heat_capacity_j_k: float | None = field(default=None, metadata=_m("J/K", gt=0.0))
    loop_conductance_w_k: float | None = field(default=None, metadata=_m("W/K", gt=0.0,
                                                                          max=1.0e7))
    radiator_emissive_area_m2: float | None = field(default=None, metadata=_m("m2", gt=0.0,
                                                                               max=1.0e4))
    sink_temp_k: float | None = field(default=None, metadata=_m("K", min=0.0, max=400.0))
    junction_resistance_k_w: float | None = field(default=None, metadata=_m("K/W", min=0.0,
                                                                             max=10.0))
    junction_resistance_sigma_frac: float = field(default=0.1, metadata=_m("1", min=0.0,
                                                                           max=1.0))
    default_noise_k: float = field(default=0.1, metadata=_m("K", gt=0.0, max=100.0))
    default_power_noise_w: float = field(default=1.0, metadata=_m("W", min=0.0, max=1.0e4))
    initial_sigma_k: float = field(default=1.0, metadata=_m("K", gt=0.0, max=100.0))
    temp_process_k2_s: float = field(default=1.0e-6, metadata=_m("K2/s", gt=0.0, max=1.0))
    conductance_drift_frac2_s: float = field(default=1.0e-6, metadata=_m("1/s", gt=0.0,
                                                                         max=1.0))
    conductance_prior_frac: float = field(default=0.05, metadata=_m("1", gt=0.0, max=1.0))
    bias_prior_k: float = field(default=0.0, metadata=_m("K", min=0.0, max=100.0))
    bias_drift_k2_s: float = field(default=1.0e-9, metadata=_m("K2/s", gt=0.0, max=1.0))
    heat_drift_w2_s: float = field(default=2.0e-3, metadata=_m("W2/s", gt=0.0, max=1.0e6))
    drift_band_frac: float = field(default=0.15, metadata=_m("1", gt=0.0, max=1.0))
    bias_band_k: float = field(default=1.0, metadata=_m("K", gt=0.0, max=100.0))
    trend_window_s: float = field(default=600.0, metadata=_m("s", gt=0.0, max=86400.0))
    cusum_allowance: float = field(default=0.5, metadata=_m("1", gt=0.0, max=10.0))
    cusum_threshold: float = field(default=15.0, metadata=_m("1", gt=0.0, max=1.0e4))
    heat_test_threshold: float = field(default=30.0, metadata=_m("1", gt=0.0, max=1.0e6))
    jump_sigma: float = field(default=8.0, metadata=_m("1", gt=1.0, max=1.0e4))
    jump_window_s: float = field(default=120.0, metadata=_m("s", gt=0.0, max=86400.0))
    stuck_samples: int = field(default=30, metadata=_m("1", min=3, max=100000))
    confidence_frac: float = field(default=0.9, metadata=_m("1", gt=0.5, max=1.0))
    confirm_s: float = field(default=10.0, metadata=_m("s", min=0.0, max=86400.0))

    def __post_init__(self) -> None:
        if self.jump_window_s > self.trend_window_s * 100:
            raise InvalidField("jump_window_s", "is longer than a hundred trend windows")


def network_from(params: EstimationParams, thermal: Any, n: int) -> tuple[NetworkParams, float]:
    """The filter's nominal network for ``n`` nodes, and the junction resistance (K/W).

    Args:
        params: The ``[estimation]`` table.
        thermal: The ``[thermal]`` table (``ThermalParams``) the defaults come from.
        n: Number of nodes.
    """
    flow_cp = thermal.coolant_flow_kg_s * thermal.coolant_cp_j_kg_k
    loop = (flow_cp * (1.0 - math.exp(-thermal.loop_ua_w_k / flow_cp)) if flow_cp > 0.0
            else 0.0)

    def pick(value: float | None, default: float) -> np.ndarray:
        return np.full(n, float(default if value is None else value))

    network = NetworkParams(
        c_compute_j_k=pick(params.compute_heat_capacity_j_k, thermal.compute_heat_capacity_j_k),
        c_radiator_j_k=pick(params.radiator_heat_capacity_j_k,
                            thermal.radiator_heat_capacity_j_k),
        loop_conductance_w_k=pick(params.loop_conductance_w_k, max(loop, 1e-3)),
        radiator_emissive_area_m2=pick(params.radiator_emissive_area_m2, max(
            2.0 * thermal.radiator_emissivity * thermal.radiator_area_m2, 1e-6)),
        sink_temp_k=pick(params.sink_temp_k, thermal.sink_temp_k))
    junction = (thermal.junction_resistance_k_w if params.junction_resistance_k_w is None
                else params.junction_resistance_k_w)
    return network, float(junction)

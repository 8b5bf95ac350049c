"""Power's parameters: the ``[power]`` table (arrays, battery, loads, heaters and their
thermostats, the power cap), checked for consistency when parsed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twin.scenario import InvalidField


def _m(unit: str, **bounds: float) -> dict[str, Any]:
    return {"unit": unit, **bounds}


@dataclass(frozen=True)
class PowerParams:
    """The ``[power]`` table. Defaults are the design point sized in docs/models.md."""

    array_area_m2: float = field(default=70.0, metadata=_m("m2", min=0.0, max=1.0e5))
    cell_efficiency_frac: float = field(default=0.30, metadata=_m("1", min=0.0, max=1.0))
    packing_frac: float = field(default=0.90, metadata=_m("1", min=0.0, max=1.0))
    array_pointing_loss_frac: float = field(default=0.01, metadata=_m("1", min=0.0, max=1.0))
    array_degradation_frac: float = field(default=0.05, metadata=_m("1", min=0.0, max=1.0))
    array_temp_coeff_per_k: float = field(default=-0.0022, metadata=_m("1/K", min=-0.02,
                                                                       max=0.0))
    array_ref_temp_k: float = field(default=301.15, metadata=_m("K", min=0.0, max=500.0))
    array_absorptivity: float = field(default=0.91, metadata=_m("1", min=0.0, max=1.0))
    array_emissivity_front: float = field(default=0.85, metadata=_m("1", gt=0.0, max=1.0))
    array_emissivity_back: float = field(default=0.85, metadata=_m("1", min=0.0, max=1.0))
    # Solar absorptivity of the back face (black-painted CFRP substrate), for Earth albedo.
    array_absorptivity_back: float = field(default=0.85, metadata=_m("1", min=0.0, max=1.0))
    # At least 0.5: no regulator or cell is worse, and near 0 the losses (1/η) overflow.
    regulation_efficiency_frac: float = field(default=0.97, metadata=_m("1", min=0.5, max=1.0))
    battery_capacity_wh: float = field(default=21_000.0, metadata=_m("Wh", min=0.0, max=1.0e8))
    charge_efficiency_frac: float = field(default=0.97, metadata=_m("1", min=0.5, max=1.0))
    discharge_efficiency_frac: float = field(default=0.97, metadata=_m("1", min=0.5, max=1.0))
    max_charge_w: float = field(default=8_000.0, metadata=_m("W", min=0.0))
    max_discharge_w: float = field(default=15_000.0, metadata=_m("W", min=0.0))
    soc_initial_frac: float = field(default=0.90, metadata=_m("1", min=0.0, max=1.0))
    soc_max_frac: float = field(default=0.90, metadata=_m("1", gt=0.0, max=1.0))
    soc_reserve_frac: float = field(default=0.20, metadata=_m("1", min=0.0, max=1.0))
    cap_release_band_frac: float = field(default=0.05, metadata=_m("1", gt=0.0, max=1.0))
    recharge_reserve_w: float = field(default=600.0, metadata=_m("W", min=0.0))
    bus_power_w: float = field(default=1_000.0, metadata=_m("W", min=0.0, max=1.0e7))
    # Without a compute model: the design point's fully busy payload, 8 x 729 W of
    # accelerators at their junction limit + 4.6 kW of host (docs/models.md).
    compute_load_w: float = field(default=10_400.0, metadata=_m("W", min=0.0, max=1.0e8))
    heater_power_w: float = field(default=150.0, metadata=_m("W", min=0.0, max=1.0e6))
    heater_on_k: float = field(default=280.15, metadata=_m("K", min=0.0, max=400.0))
    heater_off_k: float = field(default=284.15, metadata=_m("K", min=0.0, max=400.0))
    loop_heater_power_w: float = field(default=1_200.0, metadata=_m("W", min=0.0, max=1.0e6))
    loop_heater_on_k: float = field(default=283.15, metadata=_m("K", min=0.0, max=400.0))
    loop_heater_off_k: float = field(default=288.15, metadata=_m("K", min=0.0, max=400.0))
    freeze_guard_on_k: float = field(default=207.15, metadata=_m("K", min=0.0, max=400.0))
    freeze_guard_off_k: float = field(default=211.15, metadata=_m("K", min=0.0, max=400.0))

    def __post_init__(self) -> None:
        if self.soc_reserve_frac >= self.soc_max_frac:
            raise InvalidField("soc_reserve_frac", f"{self.soc_reserve_frac:g} must be below"
                               f" soc_max_frac ({self.soc_max_frac:g})")
        if self.soc_initial_frac > self.soc_max_frac:
            raise InvalidField("soc_initial_frac", f"{self.soc_initial_frac:g} must not exceed"
                               f" soc_max_frac ({self.soc_max_frac:g})")
        if self.array_absorptivity < self.cell_efficiency_frac:
            # The array turns into electricity part of what it absorbs: it cannot deliver
            # more than it absorbs (and its energy balance would go negative).
            raise InvalidField("array_absorptivity", f"{self.array_absorptivity:g} must be at"
                               f" least cell_efficiency_frac ({self.cell_efficiency_frac:g}):"
                               " a cell cannot convert more sunlight than it absorbs")
        for on, off in (("heater_on_k", "heater_off_k"),
                        ("loop_heater_on_k", "loop_heater_off_k"),
                        ("freeze_guard_on_k", "freeze_guard_off_k")):
            if getattr(self, off) <= getattr(self, on):
                raise InvalidField(off, f"{getattr(self, off):g} K must be above {on}"
                                   f" ({getattr(self, on):g} K): that gap is the"
                                   " thermostat's hysteresis")

    @property
    def array_efficiency_ref_frac(self) -> float:
        """End-to-end array efficiency at the reference temperature, before pointing cosine."""
        return (self.cell_efficiency_frac * self.packing_frac
                * (1.0 - self.array_pointing_loss_frac) * (1.0 - self.array_degradation_frac))

"""``[lifecycle]``: orbit decay, station keeping, disposal and ageing (docs/models.md,
"Lifecycle").

The table's presence switches the lifecycle on (``enabled = false`` keeps it off); a
scenario without it runs exactly as before the lifecycle existed. Every default has its
source in docs/models.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twin.scenario.errors import InvalidField

DISPOSAL_RULES: dict[str, float | None] = {
    "fcc-5yr": 5.0,      # FCC 22-74, Second Report and Order (2022): re-entry within 5 years
    "iadc-25yr": 25.0,   # IADC Space Debris Mitigation Guidelines (2002, rev. 2020): 25 years
    "custom": None,      # disposal_max_years
    "none": None,        # no disposal manoeuvre: nodes decay from where they end
}
"""Disposal presets: the longest time from end of life to re-entry, years."""


def _m(unit: str, **bounds: Any) -> dict[str, Any]:
    return {"unit": unit, **bounds}


@dataclass(frozen=True)
class LifecycleParams:
    """Orbit decay, station keeping, disposal and ageing; on when the table is present.

    Attributes:
        enabled: Lifecycle on; the table's presence alone turns it on.
        node_mass_kg: Node mass without propellant (arrays, radiators, batteries,
            compute, structure), kg: the ballistic coefficient and the e-waste account.
        drag_area_m2: Mean cross-section facing the flow, m².
        drag_coefficient: Free-molecular drag coefficient (2.2 for a flat plate-like body).
        density_model: ``msis`` (NRLMSIS 2.1 via pymsis, offline with the indices below)
            or ``table`` (the exponential table of Vallado 2013, Table 8-4).
        f107_sfu: F10.7 daily and 81-day mean, solar flux units (10⁻²² W m⁻² Hz⁻¹).
        ap: Daily geomagnetic Ap.
        solar_cycle_amplitude_sfu: F10.7 swing of an 11-year cycle about ``f107_sfu``
            (0: constant activity).
        solar_max_year: Decimal year of a solar maximum (cycle 25: 2024.8).
        density_update_days: How often the density profile is recomputed, days.
        reentry_altitude_km: Mean altitude counted as re-entry, km.
        station_keeping: Hold each operating node's altitude against drag.
        propellant_kg: Propellant per node at the start, kg.
        isp_s: Specific impulse of the thruster, s.
        design_life_yr: Operating life before disposal, years.
        disposal_rule: ``fcc-5yr``, ``iadc-25yr``, ``custom`` or ``none``.
        disposal_max_years: Longest time to re-entry after disposal (``custom``), years.
        disposal_reliability_frac: Chance a disposal manoeuvre is carried out.
        array_loss_frac_per_yr: Solar array output lost per year besides radiation.
        array_dose_factor: Array dose per dose behind the compute shielding (``dose_gy``).
        array_radiation_c: C of the remaining-factor law 1 − C log10(1 + D/Dx).
        array_radiation_dx_gy: Dx of that law, Gy.
        battery_calendar_frac_per_sqrt_yr: Calendar capacity fade at 25 °C, per √year.
        battery_calendar_ea_j_mol: Activation energy of the calendar fade, J/mol.
        radiator_alpha_rise: Rise of the radiator's solar absorptivity at end of life.
        radiator_alpha_tau_yr: Time constant of that rise, years.
        accelerator_failure_frac_per_yr: Accelerators failing at random per year.
        time_acceleration: Lifecycle seconds per simulated second, 1 for physics; larger
            only to see years of ageing and decay in a short run of the rest of the twin
            (benches, demos: each eclipse discharge then stands for this many).
    """

    enabled: bool = True
    node_mass_kg: float = field(default=1500.0, metadata=_m("kg", gt=0.0, max=1.0e6))
    drag_area_m2: float = field(default=30.0, metadata=_m("m2", gt=0.0, max=1.0e5))
    drag_coefficient: float = field(default=2.2, metadata=_m("1", min=1.0, max=4.0))
    density_model: str = field(default="msis", metadata={"choices": ("msis", "table")})
    f107_sfu: float = field(default=150.0, metadata=_m("sfu", min=60.0, max=400.0))
    ap: float = field(default=15.0, metadata=_m("1", min=0.0, max=400.0))
    solar_cycle_amplitude_sfu: float = field(default=0.0,
                                             metadata=_m("sfu", min=0.0, max=200.0))
    solar_max_year: float = field(default=2024.8, metadata=_m("yr", min=1900.0, max=2300.0))
    density_update_days: float = field(default=10.0, metadata=_m("day", min=0.01, max=365.0))
    reentry_altitude_km: float = field(default=120.0, metadata=_m("km", min=80.0, max=300.0))
    station_keeping: bool = True
    propellant_kg: float = field(default=100.0, metadata=_m("kg", min=0.0, max=1.0e6))
    isp_s: float = field(default=1500.0, metadata=_m("s", gt=0.0, max=1.0e5))
    design_life_yr: float = field(default=5.0, metadata=_m("yr", gt=0.0, max=100.0))
    disposal_rule: str = field(default="fcc-5yr",
                               metadata={"choices": tuple(DISPOSAL_RULES)})
    disposal_max_years: float = field(default=5.0, metadata=_m("yr", gt=0.0, max=1000.0))
    disposal_reliability_frac: float = field(default=0.95,
                                             metadata=_m("1", min=0.0, max=1.0))
    array_loss_frac_per_yr: float = field(default=0.005, metadata=_m("1", min=0.0, max=0.5))
    array_dose_factor: float = field(default=100.0, metadata=_m("1", min=0.0, max=1.0e6))
    array_radiation_c: float = field(default=0.1, metadata=_m("1", min=0.0, max=1.0))
    array_radiation_dx_gy: float = field(default=1000.0, metadata=_m("Gy", gt=0.0, max=1e9))
    battery_calendar_frac_per_sqrt_yr: float = field(default=0.02,
                                                     metadata=_m("1", min=0.0, max=0.5))
    battery_calendar_ea_j_mol: float = field(default=24500.0,
                                             metadata=_m("J/mol", min=0.0, max=2.0e5))
    radiator_alpha_rise: float = field(default=0.10, metadata=_m("1", min=0.0, max=0.8))
    radiator_alpha_tau_yr: float = field(default=3.0, metadata=_m("yr", gt=0.0, max=100.0))
    accelerator_failure_frac_per_yr: float = field(default=0.07,
                                                   metadata=_m("1", min=0.0, max=1.0))
    time_acceleration: float = field(default=1.0, metadata=_m("1", min=1.0, max=1.0e4))

    def __post_init__(self) -> None:
        if self.drag_area_m2 / self.node_mass_kg > 10.0:
            raise InvalidField("drag_area_m2", f"{self.drag_area_m2:g} m2 on "
                               f"{self.node_mass_kg:g} kg is over 10 m2/kg: check the "
                               "mass (kg) and the area (m2)")

    @property
    def disposal_years(self) -> float | None:
        """The longest time to re-entry after end of life, years; None: no disposal."""
        if self.disposal_rule == "custom":
            return self.disposal_max_years
        return DISPOSAL_RULES[self.disposal_rule]

    @property
    def ballistic_m2_kg(self) -> float:
        """B = C_D A / m of the dry node, m²/kg (propellant changes it little; docs)."""
        return self.drag_coefficient * self.drag_area_m2 / self.node_mass_kg

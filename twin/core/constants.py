"""Physical constants and unit factors, each defined once for the twin, viewers and bridges."""

from __future__ import annotations

KELVIN_PER_CELSIUS = 273.15
"""0 °C in kelvin (exact, SI)."""

STEFAN_BOLTZMANN_W_M2_K4 = 5.670374419e-8
"""Stefan–Boltzmann constant, W m⁻² K⁻⁴ (CODATA 2018, exact in SI)."""

SECONDS_PER_HOUR = 3600.0
SECONDS_PER_DAY = 86400.0
J_PER_WH = 3600.0

SPEED_OF_LIGHT_M_S = 299_792_458.0
"""Speed of light in vacuum, m/s (exact in SI)."""

PLANCK_J_S = 6.626_070_15e-34
"""Planck constant, J s (exact in SI since 2019)."""

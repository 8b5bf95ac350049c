"""Thermospheric density profiles for orbit decay: NRLMSIS 2.1 (pymsis) or a table.

A profile is the orbit-averaged total mass density on an altitude grid, kg/m³, at one
date and one level of solar and geomagnetic activity. Decay reads it by interpolating
log-density in altitude, so a profile serves every node at every altitude until the next
update (``density_update_days``: F10.7 and Ap are given by the scenario and change slowly,
so recomputing per step would buy nothing; docs/models.md, "Lifecycle").
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np

ALTITUDE_GRID_KM = np.concatenate([np.arange(80.0, 1000.0, 5.0), np.arange(1000.0, 2001.0, 50.0)])
"""Altitudes of a profile, km: 5 km steps through LEO, coarser above 1,000 km."""

# Orbit average: a ring of latitudes and longitudes at one UT covers day and night side.
_AVERAGE_LATS_DEG = np.array([-60.0, -30.0, 0.0, 30.0, 60.0])
_AVERAGE_LONS_DEG = np.arange(-180.0, 180.0, 60.0)

# Vallado (2013), Fundamentals of Astrodynamics and Applications, 4th ed., Table 8-4:
# base altitude h0 (km), nominal density rho0 (kg/m³), scale height H (km), for mean solar
# activity (CIRA-72 based). rho(h) = rho0 exp(-(h - h0)/H) on [h0, next h0).
VALLADO_TABLE = np.array([
    (0.0, 1.225, 7.249), (25.0, 3.899e-2, 6.349), (30.0, 1.774e-2, 6.682),
    (40.0, 3.972e-3, 7.554), (50.0, 1.057e-3, 8.382), (60.0, 3.206e-4, 7.714),
    (70.0, 8.770e-5, 6.549), (80.0, 1.905e-5, 5.799), (90.0, 3.396e-6, 5.382),
    (100.0, 5.297e-7, 5.877), (110.0, 9.661e-8, 7.263), (120.0, 2.438e-8, 9.473),
    (130.0, 8.484e-9, 12.636), (140.0, 3.845e-9, 16.149), (150.0, 2.070e-9, 22.523),
    (180.0, 5.464e-10, 29.740), (200.0, 2.789e-10, 37.105), (250.0, 7.248e-11, 45.546),
    (300.0, 2.418e-11, 53.628), (350.0, 9.518e-12, 53.298), (400.0, 3.725e-12, 58.515),
    (450.0, 1.585e-12, 60.828), (500.0, 6.967e-13, 63.822), (600.0, 1.454e-13, 71.835),
    (700.0, 3.614e-14, 88.667), (800.0, 1.170e-14, 124.64), (900.0, 5.245e-15, 181.05),
    (1000.0, 3.019e-15, 268.00),
])


def table_density(alt_km: np.ndarray) -> np.ndarray:
    """Vallado's exponential model at ``alt_km`` (the last band continues above 1,000 km),
    kg/m³."""
    alt = np.asarray(alt_km, dtype=float)
    band = np.clip(np.searchsorted(VALLADO_TABLE[:, 0], alt, side="right") - 1, 0,
                   len(VALLADO_TABLE) - 1)
    h0, rho0, scale = VALLADO_TABLE[band].T
    return rho0 * np.exp(-(alt - h0) / scale)


def solar_flux_sfu(t_utc: float, mean_sfu: float, amplitude_sfu: float,
                   max_year: float) -> float:
    """F10.7 of an 11-year cycle, cos-shaped about ``mean_sfu``, peaking at ``max_year``."""
    if amplitude_sfu == 0.0:
        return mean_sfu
    year = 1970.0 + t_utc / (365.25 * 86400.0)
    return max(60.0, mean_sfu + amplitude_sfu * math.cos(2.0 * math.pi * (year - max_year)
                                                          / 11.0))


def msis_density(t_utc: float, f107_sfu: float, ap: float,
                 alt_km: np.ndarray = ALTITUDE_GRID_KM) -> np.ndarray:
    """NRLMSIS 2.1 total mass density averaged over latitudes and longitudes, kg/m³.

    F10.7 (daily and 81-day) and Ap are passed in, so pymsis never looks up (or downloads)
    its index files.
    """
    from pymsis import msis  # a compiled extension: imported only when asked for

    alts, lats, lons = np.meshgrid(alt_km, _AVERAGE_LATS_DEG, _AVERAGE_LONS_DEG, indexing="ij")
    n = alts.size
    date = np.datetime64(datetime.fromtimestamp(t_utc, UTC).replace(tzinfo=None), "s")
    out = msis.calculate(np.full(n, date), lons.ravel(), lats.ravel(), alts.ravel(),
                         f107s=np.full(n, f107_sfu), f107as=np.full(n, f107_sfu),
                         aps=np.full((n, 7), ap), version=2.1)
    rho = np.asarray(out[:, 0], dtype=float).reshape(alts.shape)
    return rho.mean(axis=(1, 2))


def density_profile(model: str, t_utc: float, f107_sfu: float, ap: float) -> np.ndarray:
    """The orbit-averaged density on ``ALTITUDE_GRID_KM``, kg/m³."""
    if model == "table":
        return table_density(ALTITUDE_GRID_KM)
    return msis_density(t_utc, f107_sfu, ap)

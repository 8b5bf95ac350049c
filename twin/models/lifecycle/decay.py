"""Orbit decay by drag on near-circular orbits, station keeping and disposal.

Mean-element decay of a circular orbit (King-Hele 1987; Vallado 2013, eq. 9-43 ff.):

    da/dt = -sqrt(mu a) rho(a) B,        B = C_D A / m

With the density piecewise exponential between the profile's altitudes (scale height
H_i = dh / ln(rho_i / rho_i+1)), the time to fall from h to the re-entry altitude is a sum
of closed forms, exact for that density, for B = 1 m²/kg:

    T(h) = sum_i  H_i (1/rho_i+1 - 1/rho_i) / sqrt(mu a_i)        (segments below h)

and a node of ballistic coefficient B takes T(h) / B. A step of dt moves a node from h to
T⁻¹(T(h) - B dt): exact for any step length while the profile holds, so a coarse step
loses nothing (docs/models.md, "Lifecycle").
"""

from __future__ import annotations

import numpy as np

from twin.models.lifecycle.density import ALTITUDE_GRID_KM

MU_EARTH_M3_S2 = 3.986004418e14
"""GM of the Earth (WGS84 / EGM96), m³/s²."""
EARTH_RADIUS_KM = 6378.135
"""Equatorial radius the generated orbits' altitudes are measured from (WGS72), km."""
STANDARD_GRAVITY_M_S2 = 9.80665
SECONDS_PER_YEAR = 365.25 * 86400.0


class LifetimeTable:
    """Time to re-entry against mean altitude for B = 1 m²/kg, from one density profile.

    Args:
        density_kg_m3: The profile on ``ALTITUDE_GRID_KM``.
        reentry_km: Altitude counted as re-entry; time is measured from there.
    """

    def __init__(self, density_kg_m3: np.ndarray, reentry_km: float) -> None:
        alt = ALTITUDE_GRID_KM
        rho = np.maximum(np.asarray(density_kg_m3, dtype=float), 1e-30)
        self.alt_km = alt
        self.rho = rho
        # Scale height of each segment, m (a profile flat or rising over a segment, as the
        # table's band edges can be, is treated as nearly flat).
        ratio = np.maximum(rho[:-1] / rho[1:], 1.0 + 1e-9)
        self.scale_m = np.diff(alt) * 1e3 / np.log(ratio)
        a_mid_m = (EARTH_RADIUS_KM + 0.5 * (alt[:-1] + alt[1:])) * 1e3
        self.root_mu_a = np.sqrt(MU_EARTH_M3_S2 * a_mid_m)
        seg_s = self.scale_m * (1.0 / rho[1:] - 1.0 / rho[:-1]) / self.root_mu_a
        cumulative = np.concatenate([[0.0], np.cumsum(seg_s)])
        # Measured from the re-entry altitude: T(reentry) = 0, negative below it.
        self.t_s = cumulative - self._raw(np.array([reentry_km]), cumulative)[0]
        self.reentry_km = reentry_km

    def _raw(self, alt_km: np.ndarray, cumulative: np.ndarray) -> np.ndarray:
        alt = self.alt_km
        h = np.clip(alt_km, alt[0], alt[-1])
        i = np.clip(np.searchsorted(alt, h, side="right") - 1, 0, len(alt) - 2)
        rho_h = self.rho[i] * np.exp(-(h - alt[i]) * 1e3 / self.scale_m[i])
        return cumulative[i] + self.scale_m[i] * (1.0 / rho_h - 1.0 / self.rho[i]) \
            / self.root_mu_a[i]

    def unit_lifetime_s(self, alt_km: np.ndarray) -> np.ndarray:
        """T(h): seconds to re-entry from mean altitude ``alt_km`` for B = 1 m²/kg."""
        return self._raw(np.asarray(alt_km, dtype=float), self.t_s)

    def altitude_at(self, unit_lifetime_s: np.ndarray) -> np.ndarray:
        """T⁻¹: the mean altitude with that much unit lifetime left, km (the re-entry
        altitude or below where none is left)."""
        t = np.asarray(unit_lifetime_s, dtype=float)
        t_grid = self.t_s
        i = np.clip(np.searchsorted(t_grid, t, side="right") - 1, 0, len(t_grid) - 2)
        inv_rho = 1.0 / self.rho[i] + (t - t_grid[i]) * self.root_mu_a[i] / self.scale_m[i]
        inv_rho = np.maximum(inv_rho, 1.0 / self.rho[i])
        h = self.alt_km[i] + self.scale_m[i] * np.log(inv_rho * self.rho[i]) / 1e3
        return np.minimum(h, self.alt_km[-1])

    def density(self, alt_km: np.ndarray) -> np.ndarray:
        """Log-linear density at ``alt_km``, kg/m³."""
        return np.exp(np.interp(alt_km, self.alt_km, np.log(self.rho)))

    def advance(self, alt_km: np.ndarray, ballistic_m2_kg: np.ndarray | float,
                dt_s: float) -> np.ndarray:
        """Mean altitude after ``dt_s`` of free decay, km (exact for this profile)."""
        left = self.unit_lifetime_s(alt_km) - np.asarray(ballistic_m2_kg) * dt_s
        return self.altitude_at(left)

    def lifetime_s(self, alt_km: np.ndarray, ballistic_m2_kg: np.ndarray | float
                   ) -> np.ndarray:
        """Predicted time to re-entry from ``alt_km``, s (0 at or below re-entry)."""
        return np.maximum(self.unit_lifetime_s(alt_km), 0.0) / np.asarray(ballistic_m2_kg)


def drag_dv_m_s(table: LifetimeTable, alt_km: np.ndarray,
                ballistic_m2_kg: np.ndarray | float, dt_s: float) -> np.ndarray:
    """Δv that cancels drag over ``dt_s`` on a circular orbit: ½ ρ v² B dt, m/s."""
    a_m = (EARTH_RADIUS_KM + alt_km) * 1e3
    return 0.5 * table.density(alt_km) * (MU_EARTH_M3_S2 / a_m) * ballistic_m2_kg * dt_s


def propellant_for_dv_kg(mass_kg: np.ndarray, dv_m_s: np.ndarray, isp_s: float
                         ) -> np.ndarray:
    """Propellant a node of ``mass_kg`` (wet) burns for ``dv_m_s``: the rocket equation."""
    return mass_kg * -np.expm1(-dv_m_s / (isp_s * STANDARD_GRAVITY_M_S2))


def hohmann_dv_m_s(from_km: np.ndarray, to_km: np.ndarray) -> np.ndarray:
    """Total Δv of a Hohmann transfer between circular orbits (both burns), m/s."""
    r1 = (EARTH_RADIUS_KM + np.asarray(from_km)) * 1e3
    r2 = (EARTH_RADIUS_KM + np.asarray(to_km)) * 1e3
    transfer = np.sqrt(2.0 * r2 / (r1 + r2))
    dv1 = np.sqrt(MU_EARTH_M3_S2 / r1) * np.abs(1.0 - transfer)
    dv2 = np.sqrt(MU_EARTH_M3_S2 / r2) * np.abs(np.sqrt(2.0 * r1 / (r1 + r2)) - 1.0)
    return dv1 + dv2


def mean_motion_rad_s(alt_km: np.ndarray) -> np.ndarray:
    """Keplerian mean motion of a circular orbit at mean altitude ``alt_km``, rad/s."""
    a_m = (EARTH_RADIUS_KM + np.asarray(alt_km)) * 1e3
    return np.sqrt(MU_EARTH_M3_S2 / a_m ** 3)


def apply_orbit_offset(pos_km: np.ndarray, vel_km_s: np.ndarray, radius_scale: np.ndarray,
                       phase_rad: np.ndarray, nodes: np.ndarray) -> None:
    """Move ``nodes`` of an SGP4 state onto their decayed orbits, in place.

    The propagated orbit is the one the node was launched on; decay shrinks it by
    ``radius_scale`` (a / a0) and, because a lower orbit is faster, puts the node
    ``phase_rad`` ahead along it. For a near-circular orbit that is a rotation by the
    phase about the orbit normal r × v, then r scaled by a/a0 and v by sqrt(a0/a). The
    plane's precession is the launch orbit's (docs/models.md, "Lifecycle", assumptions).
    """
    r, v = pos_km[nodes], vel_km_s[nodes]
    normal = np.cross(r, v)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    cos, sin = np.cos(phase_rad[nodes])[:, None], np.sin(phase_rad[nodes])[:, None]
    r_new = r * cos + np.cross(normal, r) * sin
    v_new = v * cos + np.cross(normal, v) * sin
    scale = radius_scale[nodes][:, None]
    pos_km[nodes] = r_new * scale
    vel_km_s[nodes] = v_new / np.sqrt(scale)

"""Formation design: where each member of a cluster sits relative to its chief.

A cluster is a flat pattern of points (a hexagonal lattice, ``hex_pattern``) mapped into the
chief's local frame (LVLH: x radial, y along-track, z cross-track) by a periodic linear map,
the bounded solution of the Schweighart–Sedwick (SS) linearised equations of relative motion
with J2 (Schweighart & Sedwick, J. Guid. Control Dyn. 25(6), 2002, eqs. 1-3):

    ẍ - 2 n c ẏ - (5c² - 2) n² x = 0,   ÿ + 2 n c ẋ = 0,   z̈ + q² z = 0
    s = 3 J2 R² / (8 r²) (1 + 3 cos 2i),  c = sqrt(1 + s)

A point ``(u, v)`` of the pattern moves as

    x =      u cos ψ + v sin ψ                 ψ = ω t, ω = n sqrt(2 - c²)
    y = k ( -u sin ψ + v cos ψ)                k = 2 n c / ω  (≈ 2: the 2:1 ellipse)
    z = κ (  u sin φ - v cos φ)                φ = q t, q = n c

which satisfies SS's no-drift condition ``ẏ = -2 n c x`` at every instant (with c = 1 it
is the Hill–Clohessy–Wiltshire bounded ellipse). The map has singular values 1 and
``sqrt(k² + κ²)`` for all ψ (when φ = ψ), so every distance in the pattern is multiplied by a
factor between 1 and ``stretch``: a pattern with spacing d keeps its nearest neighbours
between d and about ``stretch · d`` apart, and a point at pattern radius p stays within
``stretch · p`` of the chief.

Two designs:

- ``planar`` (κ = 0): all members in the orbit plane, as in Google's Suncatcher study
  (Blaise Agüera y Arcas et al., "Towards a future space-based, highly scalable AI
  infrastructure system design", arXiv:2511.19468, 2025: 81 satellites within 1 km,
  neighbours 100-200 m).
  Not passively safe: any two members pass each other along-track only, so an along-track
  drift (a failed thruster, differential drag) can bring them together.
- ``ei_safe`` (κ > 0): adds a cross-track oscillation in quadrature with the radial one, so
  for *every pair* the radial and cross-track separations never vanish together (parallel
  relative eccentricity and inclination vectors; D'Amico & Montenbruck, J. Guid. Control
  Dyn. 29(3), 2006). Whatever the along-track drift, a pair stays at least ``min(1, κ) · d``
  apart in the radial/cross-track plane: passively safe.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from twin.astro.constellation import EARTH_J2, EARTH_RADIUS_KM

DESIGNS = ("planar", "ei_safe")
"""Formation designs a ``[[cluster]]`` may name."""


def ss_parameter(semi_major_axis_km: float, inclination_rad: float) -> float:
    """Schweighart–Sedwick's ``s = 3 J2 R² / (8 r²) (1 + 3 cos 2i)`` (dimensionless)."""
    return (3.0 * EARTH_J2 * EARTH_RADIUS_KM**2 / (8.0 * semi_major_axis_km**2)
            * (1.0 + 3.0 * math.cos(2.0 * inclination_rad)))


@dataclass(frozen=True)
class FormationDesign:
    """The periodic map from pattern coordinates to the chief's LVLH frame.

    Attributes:
        mean_motion_rad_s: The chief's mean motion n (rad/s).
        ss_s: Schweighart–Sedwick's s (dimensionless; 0 gives Hill–Clohessy–Wiltshire).
        cross_track_ratio: κ, cross-track amplitude over radial amplitude (0: planar).
    """

    mean_motion_rad_s: float
    ss_s: float
    cross_track_ratio: float
    in_plane_trim_rad_s: float = 0.0
    cross_track_trim_rad_s: float = 0.0
    """Corrections to SS's ω and q fitted to the full dynamics over the first orbit
    (twin.models.formation.clusters): SS's frequencies are good to ~1e-3 n, metres of phase
    an orbit at 1 km."""

    @property
    def c(self) -> float:
        """SS's c = sqrt(1 + s)."""
        return math.sqrt(1.0 + self.ss_s)

    @property
    def in_plane_rate_rad_s(self) -> float:
        """ω = n sqrt(2 - c²), the in-plane relative frequency (rad/s)."""
        return self.mean_motion_rad_s * math.sqrt(2.0 - self.c**2) + self.in_plane_trim_rad_s

    @property
    def along_track_gain(self) -> float:
        """k = 2 n c / ω, the along-track over radial amplitude (≈ 2), from SS's ω."""
        return 2.0 / math.sqrt(2.0 - self.c**2) * self.c

    @property
    def cross_track_rate_rad_s(self) -> float:
        """q = n c, the cross-track frequency (rad/s)."""
        return self.mean_motion_rad_s * self.c + self.cross_track_trim_rad_s

    @property
    def stretch(self) -> float:
        """Largest factor the map applies to a pattern distance: sqrt(k² + κ²)."""
        return math.hypot(self.along_track_gain, self.cross_track_ratio)

    def state_lvlh(self, pattern_m: np.ndarray, t_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Designed LVLH position (m) and velocity (m/s) of each pattern point at ``t_s``.

        Args:
            pattern_m: (m, 2) pattern coordinates (u, v), m.
            t_s: Seconds since the design epoch.

        Returns:
            (m, 3) position, m, and (m, 3) velocity, m/s, both in LVLH (x, y, z).
        """
        u, v = pattern_m[:, 0], pattern_m[:, 1]
        w, k, q, kappa = (self.in_plane_rate_rad_s, self.along_track_gain,
                          self.cross_track_rate_rad_s, self.cross_track_ratio)
        cp, sp = math.cos(w * t_s), math.sin(w * t_s)
        cq, sq = math.cos(q * t_s), math.sin(q * t_s)
        pos = np.empty((len(u), 3))
        vel = np.empty((len(u), 3))
        pos[:, 0] = u * cp + v * sp
        pos[:, 1] = k * (v * cp - u * sp)
        pos[:, 2] = kappa * (u * sq - v * cq)
        vel[:, 0] = w * (v * cp - u * sp)
        vel[:, 1] = -k * w * (u * cp + v * sp)
        vel[:, 2] = kappa * q * (u * cq + v * sq)
        return pos, vel


def hex_pattern(count: int, spacing_m: float) -> np.ndarray:
    """The ``count`` points of a hexagonal lattice nearest its origin, origin first.

    Ties at equal radius are broken by angle, so the outer shell may be partly filled but the
    result is always the same.

    Args:
        count: Number of points (>= 1).
        spacing_m: Distance between lattice neighbours (m).

    Returns:
        (count, 2) pattern coordinates (u, v), m; row 0 is (0, 0).
    """
    reach = math.ceil(math.sqrt(count)) + 2
    i, j = np.meshgrid(np.arange(-reach, reach + 1), np.arange(-reach, reach + 1))
    u = (i + 0.5 * j).ravel()
    v = (math.sqrt(3.0) / 2.0 * j).ravel()
    radius = np.round(np.hypot(u, v), 9)
    angle = np.round(np.mod(np.arctan2(v, u), 2.0 * math.pi), 9)
    order = np.lexsort((angle, radius))[:count]
    return np.column_stack((u[order], v[order])) * spacing_m


def pattern_radius_m(count: int, spacing_m: float) -> float:
    """Largest pattern radius of ``hex_pattern(count, spacing_m)`` (m)."""
    pattern = hex_pattern(count, spacing_m)
    return float(np.hypot(pattern[:, 0], pattern[:, 1]).max())

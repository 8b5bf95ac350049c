"""Line of sight between satellites, and between ground users and satellites.

The Earth is a sphere of the WGS84 equatorial radius (6378.137 km) plus the grazing height:
a link is clear when the segment between its ends stays above that sphere. The sphere
contains the ellipsoid, so the test is conservative: near the poles a link passes up to
21 km (the polar flattening) higher than the grazing height says.
"""

from __future__ import annotations

import numpy as np

from twin.astro.geometry import WGS84_A_KM, itrs_from_geodetic


def segment_clearance_km(a_km: np.ndarray, b_km: np.ndarray) -> np.ndarray:
    """Smallest distance from the Earth's centre to each segment a-b, km.

    Args:
        a_km, b_km: (m, 3) segment ends, the same frame with the Earth's centre at 0.
    """
    d = b_km - a_km
    dd = np.einsum("ij,ij->i", d, d)
    # The closest point a + t d, t = -a·d / d·d clipped to the segment.
    t = -np.einsum("ij,ij->i", a_km, d) / np.where(dd > 0.0, dd, 1.0)
    np.clip(t, 0.0, 1.0, out=t)
    closest = a_km + t[:, None] * d
    return np.sqrt(np.einsum("ij,ij->i", closest, closest))


def line_of_sight(a_km: np.ndarray, b_km: np.ndarray, grazing_height_km: float) -> np.ndarray:
    """(m,) bool: the segment a-b clears the Earth by the grazing height."""
    return segment_clearance_km(a_km, b_km) > WGS84_A_KM + grazing_height_km


def users_itrs_km(lat_deg: np.ndarray, lon_deg: np.ndarray, alt_m: np.ndarray) -> np.ndarray:
    """(u, 3) Earth-fixed positions of ground users, km."""
    return itrs_from_geodetic(np.radians(lat_deg), np.radians(lon_deg),
                              np.asarray(alt_m, dtype=float) / 1e3).reshape(-1, 3)


def look_from_users(users_km: np.ndarray, sats_km: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Elevation (deg) and slant range (km) of each satellite from each user, (u, n) each.

    The elevation is above the user's geocentric horizon (the ellipsoid normal differs by at
    most 0.2°, well inside any elevation mask's meaning).
    """
    rel = sats_km[None, :, :] - users_km[:, None, :]
    slant = np.sqrt(np.einsum("uni,uni->un", rel, rel))
    up = users_km / np.linalg.norm(users_km, axis=1, keepdims=True)
    sin_el = np.einsum("uni,ui->un", rel, up) / np.maximum(slant, 1e-9)
    return np.degrees(np.arcsin(np.clip(sin_el, -1.0, 1.0))), slant

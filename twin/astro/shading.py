"""Self-shadowing inside a cluster: how much of each member's array its neighbours shade.

Arrays are flat discs facing the Sun (sun-pointing arrays), so seen along the Sun direction
every array is a circle of its own radius. Member j shades member i when j is sunward of i
(``(r_j - r_i) · ŝ > 0``) and their circles overlap in the plane normal to ŝ; the shaded
share of i is the lens area of the two circles over i's area. Shadows of several neighbours
are added and capped at 1 (exact while they do not overlap each other on i's array, which at
the 100 m spacings of a cluster is the only case that happens). The Sun is a point source
here: its 0.53° disc blurs a shadow's edge by 0.9 m per 100 m of distance, small against
array radii of several metres. Candidate pairs come from a k-d tree of the projected
positions (sub-quadratic: only pairs closer than two array radii are looked at).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial import cKDTree


def disc_overlap_area(distance: np.ndarray, radius_a: np.ndarray,
                      radius_b: np.ndarray) -> np.ndarray:
    """Area of the intersection of two discs (lens), vectorized; same length unit squared.

    Args:
        distance: Distance between the centres.
        radius_a, radius_b: The radii.
    """
    d = np.asarray(distance, dtype=float)
    ra = np.asarray(radius_a, dtype=float)
    rb = np.asarray(radius_b, dtype=float)
    d, ra, rb = np.broadcast_arrays(d, ra, rb)
    area = np.zeros(d.shape)
    inside = d <= np.abs(ra - rb)
    area[inside] = math.pi * np.minimum(ra, rb)[inside] ** 2
    partial = (~inside) & (d < ra + rb)
    if partial.any():
        dp, a, b = d[partial], ra[partial], rb[partial]
        cos_a = np.clip((dp * dp + a * a - b * b) / (2.0 * dp * a), -1.0, 1.0)
        cos_b = np.clip((dp * dp + b * b - a * a) / (2.0 * dp * b), -1.0, 1.0)
        kite = np.sqrt(np.maximum(
            (-dp + a + b) * (dp + a - b) * (dp - a + b) * (dp + a + b), 0.0))
        area[partial] = a * a * np.arccos(cos_a) + b * b * np.arccos(cos_b) - 0.5 * kite
    return area


def shaded_fraction(pos_m: np.ndarray, sun_hat: np.ndarray,
                    array_radius_m: np.ndarray) -> np.ndarray:
    """Share of each array in the shadow of the others.

    Args:
        pos_m: (m, 3) positions, m (any inertial frame; only differences matter).
        sun_hat: (3,) unit vector towards the Sun, same frame.
        array_radius_m: (m,) array disc radius of each member, m.

    Returns:
        (m,) shaded fraction, 0 (no neighbour's shadow) to 1 (fully shaded).
    """
    m = len(pos_m)
    shaded = np.zeros(m)
    if m < 2:
        return shaded
    # Orthonormal basis of the plane normal to the Sun direction.
    helper = np.array([1.0, 0.0, 0.0]) if abs(sun_hat[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = np.cross(sun_hat, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(sun_hat, e1)
    relative = pos_m - pos_m[0]  # metres near zero keep the projection exact
    projected = np.column_stack((relative @ e1, relative @ e2))
    along = relative @ sun_hat
    pairs = cKDTree(projected).query_pairs(2.0 * float(array_radius_m.max()),
                                           output_type="ndarray")
    if len(pairs) == 0:
        return shaded
    i, j = pairs[:, 0], pairs[:, 1]
    distance = np.hypot(*(projected[i] - projected[j]).T)
    overlap = disc_overlap_area(distance, array_radius_m[i], array_radius_m[j])
    # The member farther from the Sun is the one in shadow.
    back = np.where(along[i] < along[j], i, j)
    np.add.at(shaded, back, overlap / (math.pi * array_radius_m[back] ** 2))
    return np.minimum(shaded, 1.0)

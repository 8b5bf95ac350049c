"""How the Earth looks: a night side that reads as night, and the atmosphere's limb.

``day_night_shading`` is the per-vertex light both the 3D globe and the 2D map multiply
their Earth texture by: Lambert from the Sun's true direction on the day side, a dim
blue-grey on the night side (the continents stay faintly visible, as on a moonlit night).

``AtmosphereLimb`` is a thin glowing band just outside the globe's silhouette, seen from
wherever the camera is. It is an opaque mesh with colours fading from blue to black (the
background): a translucent shell would cost a CPU renderer a second pass over the frame.
Its two rings are the silhouettes (limb circles) of the Earth and of a sphere
``LIMB_HEIGHT_KM`` higher, recomputed before every render from the camera, so it follows
every camera move, keys and mouse alike.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from viz import scene

# The night side's colour as a fraction of the texture's (slightly blue: it reads as night,
# not as a dimmed day).
NIGHT_RGB = np.array((0.05, 0.06, 0.11))
# Day-side light = cos(zenith) ** DAY_GAMMA: below 1 the sunlit side stays bright up to
# near the terminator (a soft twilight band), as the eye sees it, instead of Lambert's
# long grey slope.
DAY_GAMMA = 0.6
# The limb band: from just inside the ellipsoid's equator to this height, blue to black.
LIMB_HEIGHT_KM = 140.0
LIMB_INNER_RGB = (95, 150, 255)
LIMB_POINTS = 240


def day_night_shading(normals: np.ndarray, sun_itrs: np.ndarray,
                      out: np.ndarray | None = None) -> np.ndarray:
    """Per-vertex light of the Earth's surface by the Sun, uint8 RGB ``(m, 3)``.

    Args:
        normals: Outward unit normals (ITRS), ``(m, 3)``.
        sun_itrs: Unit vector to the Sun (ITRS), ``(3,)``.
        out: Optional ``(m, 3)`` uint8 buffer to write into.

    Returns:
        ``NIGHT_RGB`` (x 255) where the Sun is below the horizon, rising to white (255)
        where it is at the zenith.
    """
    cos_zenith = np.clip(normals @ np.asarray(sun_itrs, dtype=normals.dtype), 0.0, 1.0)
    day = cos_zenith ** DAY_GAMMA
    level = NIGHT_RGB[None, :] + (1.0 - NIGHT_RGB[None, :]) * day[:, None]
    if out is None:
        out = np.empty((len(normals), 3), dtype=np.uint8)
    np.copyto(out, np.round(255.0 * level), casting="unsafe")
    return out


def limb_rings(camera_position: np.ndarray, view_direction: np.ndarray, parallel: bool,
               radii_km: tuple[float, float], n: int = LIMB_POINTS) -> np.ndarray | None:
    """The silhouettes of two Earth-centred spheres seen from the camera, ``(2, n, 3)``.

    From a point at distance ``d`` the silhouette of a sphere of radius ``R`` is the circle
    of radius ``R sqrt(1 - R^2/d^2)`` centred ``R^2/d`` from the centre toward the eye; in a
    parallel projection it is the great circle across the view direction.

    Returns:
        The inner and outer rings, or None when the camera is inside a sphere.
    """
    if parallel:
        axis = -np.asarray(view_direction, dtype=float)
        distance = math.inf
    else:
        axis = np.asarray(camera_position, dtype=float)
        distance = float(np.linalg.norm(axis))
    norm = float(np.linalg.norm(axis))
    if norm == 0.0 or not math.isfinite(norm) or distance <= max(radii_km):
        return None
    axis = axis / norm
    helper = np.array([0.0, 0.0, 1.0]) if abs(axis[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    e1 = np.cross(axis, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(axis, e1)
    angle = np.linspace(0.0, 2.0 * math.pi, n)
    circle = np.cos(angle)[:, None] * e1 + np.sin(angle)[:, None] * e2
    rings = []
    for radius in radii_km:
        ratio = radius / distance
        rings.append(axis * radius * ratio + circle * radius * math.sqrt(1.0 - ratio**2))
    return np.stack(rings)


class AtmosphereLimb:
    """The limb band's actor, rebuilt from the camera at the start of every render."""

    def __init__(self, plotter: Any) -> None:
        import pyvista as pv

        self.pl = plotter
        n = LIMB_POINTS
        i = np.arange(n - 1)
        # Quads between the inner ring (0..n-1) and the outer ring (n..2n-1).
        quads = np.stack([np.full_like(i, 4), i, i + 1, n + i + 1, n + i], axis=1).ravel()
        self.mesh = pv.PolyData(np.zeros((2 * n, 3), np.float32), faces=quads)
        rgb = np.zeros((2 * n, 3), np.uint8)
        rgb[:n] = LIMB_INNER_RGB
        self.mesh.point_data["rgb"] = rgb
        self.actor = plotter.add_mesh(self.mesh, scalars="rgb", rgb=True, lighting=False,
                                      pickable=False, name="atmosphere_limb",
                                      reset_camera=False)
        self.enabled = True
        self._observer = plotter.renderer.AddObserver("StartEvent", self._before_render)

    def _before_render(self, *_: Any) -> None:
        camera = self.pl.renderer.GetActiveCamera()
        rings = None
        if self.enabled:
            rings = limb_rings(np.array(camera.GetPosition()),
                               np.array(camera.GetDirectionOfProjection()),
                               bool(camera.GetParallelProjection()),
                               (scene.WGS84_A_KM - 8.0, scene.WGS84_A_KM + LIMB_HEIGHT_KM))
        self.actor.SetVisibility(rings is not None)
        if rings is not None:
            self.mesh.points[:] = rings.reshape(-1, 3)
            self.mesh.GetPoints().Modified()

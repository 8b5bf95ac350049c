"""Ground tracks: the sub-satellite path of the selected node(s), past orbit and next orbit.

The viewer models no physics of its own beyond this: from the position and velocity the
twin publishes (``pos_gcrs_km``, ``vel_gcrs_km_s``) each selected node is carried along its
two-body (Keplerian) orbit one period back and one period ahead, and the Earth turns under
it at its sidereal rate from the frame the header gives (``gcrs_to_itrs``). The Earth-fixed
points then give geodetic latitude and longitude (``twin.astro.geometry``, WGS84).

Two-body motion leaves out J2 and drag: against the twin's SGP4 the track drifts by a
fraction of a degree over one orbit (docs/models.md, "Ground tracks, terminator and
visibility circles"). Everything is vectorized over nodes and samples: no Python loop per
satellite or per point.

``GroundTrackLayer`` draws the tracks on the 3D globe (two polyline actors, two styles);
``viz.map_view`` draws the same tracks on the 2D map.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from twin.astro.geometry import geodetic_from_itrs
from viz import scene

GM_EARTH_KM3_S2 = 398600.4418
# Sidereal rotation rate of the Earth (IERS conventions), rad/s.
EARTH_RATE_RAD_S = 7.292115e-5
# Samples per orbit and per half (past or next): 2 deg of orbit apart on a circular orbit.
SAMPLES_PER_ORBIT = 181
# The track is drawn this far above the ellipsoid so the globe's faces never cover it.
TRACK_LIFT_KM = 12.0
# Past orbit dim and thin, next orbit bright and wider: "where it was" vs "where it goes".
PAST_RGB = (0.35, 0.55, 0.75)
NEXT_RGB = (0.55, 0.95, 1.0)
PAST_WIDTH, NEXT_WIDTH = 1.5, 3.0
# Kepler's equation: Newton from dM converges to 1e-12 rad in under 8 steps for e < 0.5.
NEWTON_STEPS = 12


@dataclass(frozen=True)
class GroundTrack:
    """Sub-satellite points of ``k`` nodes at ``m`` times each.

    Attributes:
        dt_s: ``(k, m)`` seconds from the state's time (negative: the past orbit).
        lat_deg, lon_deg: ``(k, m)`` geodetic latitude, east longitude in [-180, 180].
        itrs_km: ``(k, m, 3)`` Earth-fixed positions of the nodes themselves.
    """

    dt_s: np.ndarray
    lat_deg: np.ndarray
    lon_deg: np.ndarray
    itrs_km: np.ndarray


def orbit_period_s(pos_km: np.ndarray, vel_km_s: np.ndarray) -> np.ndarray:
    """Two-body period of each row's orbit, s (NaN where the orbit is not bound)."""
    r = np.linalg.norm(pos_km, axis=-1)
    v2 = np.sum(np.asarray(vel_km_s, dtype=float) ** 2, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse_a = 2.0 / r - v2 / GM_EARTH_KM3_S2  # vis-viva: 1/a
        period = 2.0 * math.pi * np.sqrt(1.0 / inverse_a**3 / GM_EARTH_KM3_S2)
    return np.where(inverse_a > 0.0, period, np.nan)


def kepler_propagate(pos_km: np.ndarray, vel_km_s: np.ndarray, dt_s: np.ndarray) -> np.ndarray:
    """Two-body positions of ``k`` nodes at times ``dt_s`` from now, same (inertial) frame.

    Lagrange's f and g with the eccentric-anomaly change ``dE`` (Vallado, Fundamentals of
    Astrodynamics, 4th ed., algorithm 8 in its elliptic form): no orbital elements are
    formed, so circular and equatorial orbits need no special case.

    Args:
        pos_km, vel_km_s: ``(k, 3)`` states.
        dt_s: ``(k, m)`` or ``(m,)`` seconds (negative goes back).

    Returns:
        ``(k, m, 3)`` km; NaN for a node whose orbit is not a bound ellipse.
    """
    r0_vec = np.asarray(pos_km, dtype=float).reshape(-1, 3)
    v0_vec = np.asarray(vel_km_s, dtype=float).reshape(-1, 3)
    dt = np.broadcast_to(np.asarray(dt_s, dtype=float), (len(r0_vec), np.shape(dt_s)[-1]))
    r0 = np.linalg.norm(r0_vec, axis=1)[:, None]
    v2 = np.sum(v0_vec**2, axis=1)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        a = 1.0 / (2.0 / r0 - v2 / GM_EARTH_KM3_S2)
        a = np.where(a > 0.0, a, np.nan)
        sqrt_a = np.sqrt(a)
        mean_motion = np.sqrt(GM_EARTH_KM3_S2 / a**3)
        sigma0 = np.sum(r0_vec * v0_vec, axis=1)[:, None] / math.sqrt(GM_EARTH_KM3_S2)
        d_mean = mean_motion * dt
        # dM = dE + sigma0/sqrt(a) (1 - cos dE) - (1 - r0/a) sin dE
        c1, c2 = sigma0 / sqrt_a, 1.0 - r0 / a
        d_ecc = d_mean.copy()
        for _ in range(NEWTON_STEPS):  # fixed steps over whole arrays, not per node
            sin_e, cos_e = np.sin(d_ecc), np.cos(d_ecc)
            residual = d_ecc + c1 * (1.0 - cos_e) - c2 * sin_e - d_mean
            d_ecc = d_ecc - residual / (1.0 + c1 * sin_e - c2 * cos_e)
        f = 1.0 - a / r0 * (1.0 - np.cos(d_ecc))
        g = dt - (d_ecc - np.sin(d_ecc)) / mean_motion
    return f[..., None] * r0_vec[:, None, :] + g[..., None] * v0_vec[:, None, :]


def earth_rotation(dt_s: np.ndarray) -> np.ndarray:
    """``(..., 3, 3)`` rotations taking ITRS at the state's time to ITRS ``dt_s`` later.

    Over an orbit or two only the sidereal spin matters (precession and nutation move the
    pole by milliarcseconds): ``M(t + dt) = R3(w dt) M(t)``.
    """
    angle = EARTH_RATE_RAD_S * np.asarray(dt_s, dtype=float)
    c, s = np.cos(angle), np.sin(angle)
    out = np.zeros((*angle.shape, 3, 3))
    out[..., 0, 0], out[..., 0, 1] = c, s
    out[..., 1, 0], out[..., 1, 1] = -s, c
    out[..., 2, 2] = 1.0
    return out


def ground_track(pos_gcrs_km: np.ndarray, vel_gcrs_km_s: np.ndarray,
                 header: Mapping[str, Any], orbits_back: float = 1.0,
                 orbits_ahead: float = 1.0, samples: int = SAMPLES_PER_ORBIT) -> GroundTrack:
    """Sub-satellite points of ``k`` nodes from ``orbits_back`` periods ago to ``orbits_ahead``.

    Args:
        pos_gcrs_km, vel_gcrs_km_s: ``(k, 3)`` the nodes' states in the header's frame.
        header: The state's header (its ``gcrs_to_itrs``, or ``gast_rad``).
        orbits_back, orbits_ahead: How far to go, in each node's own period.
        samples: Samples per orbit.

    Returns:
        A :class:`GroundTrack` whose times run from the past to the future; the sample
        ``round(samples * orbits_back)`` is the state's own time.
    """
    pos = np.asarray(pos_gcrs_km, dtype=float).reshape(-1, 3)
    vel = np.asarray(vel_gcrs_km_s, dtype=float).reshape(-1, 3)
    n_back, n_ahead = round(samples * orbits_back), round(samples * orbits_ahead)
    fraction = np.arange(-n_back, n_ahead + 1) / samples
    dt = orbit_period_s(pos, vel)[:, None] * fraction[None, :]
    gcrs = kepler_propagate(pos, vel, np.nan_to_num(dt))
    gcrs[~np.isfinite(dt)] = np.nan
    matrices = earth_rotation(dt) @ scene.gcrs_to_itrs(header)
    itrs = np.einsum("kmij,kmj->kmi", matrices, gcrs)
    lat, lon, _ = geodetic_from_itrs(itrs.reshape(-1, 3))
    shape = dt.shape
    return GroundTrack(dt, np.degrees(lat).reshape(shape), np.degrees(lon).reshape(shape), itrs)


def polylines(parts: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """VTK points and line connectivity for several runs of ``(m_i, 3)`` points.

    Rows with a NaN are dropped and split their run. Runs of fewer than 2 points vanish.
    """
    points, lines, start = [], [], 0
    for run in parts:
        good = np.isfinite(run).all(axis=1)
        # Split at every invalid row: boundaries of the runs of good rows.
        edges = np.flatnonzero(np.diff(np.r_[0, good.astype(np.int8), 0]))
        for first, last in zip(edges[0::2], edges[1::2], strict=True):
            if last - first < 2:
                continue
            points.append(run[first:last])
            lines.append(np.r_[last - first, start + np.arange(last - first)])
            start += last - first
    if not points:
        return np.zeros((0, 3), np.float32), np.zeros(0, np.int64)
    return np.concatenate(points).astype(np.float32), np.concatenate(lines).astype(np.int64)


class GroundTrackLayer:
    """The ground tracks on the 3D globe: the past orbit and the next orbit, two actors.

    The tracks are Earth-fixed (ITRS) points on the surface, so like the globe they are
    carried into the inertial view by the header's rotation (their actors' user matrix).
    """

    def __init__(self, plotter: Any) -> None:
        import pyvista as pv

        self.pl = plotter
        self.visible = False
        self.track: GroundTrack | None = None
        self.meshes: dict[str, Any] = {}
        self.actors: dict[str, Any] = {}
        for part, rgb, width in (("past", PAST_RGB, PAST_WIDTH), ("next", NEXT_RGB, NEXT_WIDTH)):
            mesh = pv.PolyData(np.zeros((2, 3), np.float32), lines=[2, 0, 1])
            self.meshes[part] = mesh
            self.actors[part] = plotter.add_mesh(
                mesh, color=rgb, line_width=width, lighting=False, pickable=False,
                name=f"ground_track_{part}", reset_camera=False)
            self.actors[part].SetVisibility(False)

    def update(self, nodes: Sequence[int], arrays: Mapping[str, np.ndarray],
               header: Mapping[str, Any], earth_fixed: bool) -> GroundTrack | None:
        """Recompute the tracks of ``nodes`` from the state; hide them when off or unusable."""
        self.track = None
        if self.visible:
            self.track = track_of(nodes, arrays, header)
        for part in ("past", "next"):
            shown = self.track is not None
            if shown:
                points, lines = self._geometry(part)
                shown = len(points) > 0
            self.actors[part].SetVisibility(shown)
            if shown:
                self.meshes[part].points = points
                self.meshes[part].lines = lines
                self.actors[part].user_matrix = scene.earth_matrix(header, earth_fixed)
        return self.track

    def _geometry(self, part: str) -> tuple[np.ndarray, np.ndarray]:
        track = self.track
        assert track is not None
        now = int(np.argmin(np.abs(track.dt_s[0])))
        pick = slice(0, now + 1) if part == "past" else slice(now, None)
        surface = scene.geodetic_to_itrs_km(track.lat_deg[:, pick], track.lon_deg[:, pick],
                                            TRACK_LIFT_KM)
        return polylines(list(surface))


def track_of(nodes: Sequence[int], arrays: Mapping[str, np.ndarray],
             header: Mapping[str, Any]) -> GroundTrack | None:
    """The ground track of ``nodes`` from a state's arrays, or None without a usable state."""
    pos, vel = arrays.get("pos_gcrs_km"), arrays.get("vel_gcrs_km_s")
    if pos is None or vel is None or pos.ndim != 2 or pos.shape != vel.shape:
        return None
    index = np.asarray([i for i in nodes if 0 <= i < len(pos)], dtype=int)
    if not len(index):
        return None
    return ground_track(pos[index], vel[index], header)

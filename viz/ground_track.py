"""Ground tracks: the sub-satellite path of the selected node(s), past orbit and next orbit.

The viewer models no physics of its own beyond this: from the position and velocity the
twin publishes (``pos_gcrs_km``, ``vel_gcrs_km_s``) each selected node is carried one
orbit back and one orbit ahead under the Earth's central field and its oblateness (J2),
integrated with fixed-step RK4, and the Earth turns under it at its sidereal rate from the
frame the header gives (``gcrs_to_itrs``). The Earth-fixed points then give geodetic
latitude and longitude (``twin.astro.geometry``, WGS84).

Why J2 and not a Kepler ellipse: the published state is osculating, and J2 moves an
osculating low orbit's semi-major axis by ~10 km around the orbit, so a two-body period
is off by ~0.2 % and its track drifts ~1 deg along itself in one orbit; with J2 the track
stays within a few hundredths of a degree of the twin's SGP4 over an orbit each way
(docs/models.md, "Ground tracks, terminator and visibility circles"). Everything is
vectorized over nodes: the only loop is over the integrator's time steps.

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
# The Earth's second zonal harmonic (EGM2008, unnormalized) and its reference radius, km.
J2_EARTH = 1.08262668e-3
R_J2_KM = 6378.137
# Sidereal rotation rate of the Earth (IERS conventions), rad/s.
EARTH_RATE_RAD_S = 7.292115e-5
# Samples (RK4 steps) per orbit: 3 deg of orbit apart, ~48 s on a low orbit; RK4's error
# at that step is metres over an orbit, and the chord between samples sags 3.4 km, under
# the track's lift above the globe.
SAMPLES_PER_ORBIT = 120
# The track is drawn this far above the ellipsoid so the globe's faces never cover it.
TRACK_LIFT_KM = 12.0
# Past orbit dim and thin, next orbit bright and wider: "where it was" vs "where it goes".
PAST_RGB = (0.35, 0.55, 0.75)
NEXT_RGB = (0.55, 0.95, 1.0)
PAST_WIDTH, NEXT_WIDTH = 1.5, 3.0


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

    def at(self, dt_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every node's point ``dt_s`` after the track's time, between samples.

        Returns:
            ITRS positions ``(k, 3)``, latitudes and longitudes ``(k,)`` (deg), and the
            sample before each point ``(k,)``. NaN for a node without a track.
        """
        k, m = self.dt_s.shape
        with np.errstate(invalid="ignore"):
            step = self.dt_s[:, 1] - self.dt_s[:, 0]
            x = np.nan_to_num((dt_s - self.dt_s[:, 0]) / step)
        before = np.clip(np.floor(x).astype(int), 0, m - 2)
        frac = np.clip(x - before, 0.0, 1.0)[:, None]
        rows = np.arange(k)
        itrs = self.itrs_km[rows, before] * (1.0 - frac) + self.itrs_km[rows, before + 1] * frac
        lat, lon, _ = geodetic_from_itrs(itrs)
        return itrs, np.degrees(lat), np.degrees(lon), before

    def halves(self, dt_s: float = 0.0) -> tuple[list[tuple[np.ndarray, np.ndarray]],
                                                 list[tuple[np.ndarray, np.ndarray]]]:
        """The past and the next orbit of each node as (latitudes, longitudes), split at
        the node's point ``dt_s`` after the track's time (both halves end there)."""
        _, lat, lon, before = self.at(dt_s)
        past, ahead = [], []
        for j, i in enumerate(before):  # per tracked node (one, or a group's few)
            past.append((np.r_[self.lat_deg[j, : i + 1], lat[j]],
                         np.r_[self.lon_deg[j, : i + 1], lon[j]]))
            ahead.append((np.r_[lat[j], self.lat_deg[j, i + 1:]],
                          np.r_[lon[j], self.lon_deg[j, i + 1:]]))
        return past, ahead


def orbit_period_s(pos_km: np.ndarray, vel_km_s: np.ndarray) -> np.ndarray:
    """Two-body period of each row's orbit, s (NaN where the orbit is not bound)."""
    r = np.linalg.norm(pos_km, axis=-1)
    v2 = np.sum(np.asarray(vel_km_s, dtype=float) ** 2, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse_a = 2.0 / r - v2 / GM_EARTH_KM3_S2  # vis-viva: 1/a
        period = 2.0 * math.pi * np.sqrt(1.0 / inverse_a**3 / GM_EARTH_KM3_S2)
    return np.where(inverse_a > 0.0, period, np.nan)


def j2_acceleration(pos_km: np.ndarray) -> np.ndarray:
    """Gravity of the oblate Earth (point mass and J2) at inertial positions, km/s^2.

    a = -mu r / |r|^3 [1 + 3/2 J2 (R/|r|)^2 (1 - 5 z^2/|r|^2)] in x and y, with
    (3 - 5 z^2/|r|^2) in z (Vallado, 4th ed., eq. 8-30). The pole is GCRS z: the tilt of the
    true pole over the test's dates is a fraction of a degree, a negligible change to J2.
    """
    r2 = np.sum(pos_km * pos_km, axis=-1)
    scale = -GM_EARTH_KM3_S2 / (r2 * np.sqrt(r2))
    oblate = 1.5 * J2_EARTH * R_J2_KM**2 / r2
    z2 = 5.0 * pos_km[..., 2] ** 2 / r2
    out = pos_km * (scale * (1.0 + oblate * (1.0 - z2)))[..., None]
    out[..., 2] = pos_km[..., 2] * scale * (1.0 + oblate * (3.0 - z2))
    return out


def propagate_j2(pos_km: np.ndarray, vel_km_s: np.ndarray, step_s: np.ndarray,
                 n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """``n_steps`` fixed RK4 steps of J2 motion for ``k`` nodes, each with its own step.

    Args:
        pos_km, vel_km_s: ``(k, 3)`` inertial states.
        step_s: ``(k,)`` step per node (negative integrates back in time).
        n_steps: Steps to take.

    Returns:
        Positions and velocities ``(k, n_steps + 1, 3)``, the start first.
    """
    r = np.asarray(pos_km, dtype=float).reshape(-1, 3)
    v = np.asarray(vel_km_s, dtype=float).reshape(-1, 3)
    h = np.asarray(step_s, dtype=float).reshape(-1, 1)
    positions = np.empty((len(r), n_steps + 1, 3))
    velocities = np.empty_like(positions)
    positions[:, 0], velocities[:, 0] = r, v
    for i in range(n_steps):  # over time steps; every node moves at once
        a1 = j2_acceleration(r)
        a2 = j2_acceleration(r + 0.5 * h * v)
        a3 = j2_acceleration(r + 0.5 * h * v + 0.25 * h * h * a1)
        a4 = j2_acceleration(r + h * v + 0.5 * h * h * a2)
        r = r + h * v + h * h / 6.0 * (a1 + a2 + a3)
        v = v + h / 6.0 * (a1 + 2.0 * a2 + 2.0 * a3 + a4)
        positions[:, i + 1], velocities[:, i + 1] = r, v
    return positions, velocities


def specific_energy(pos_km: np.ndarray, vel_km_s: np.ndarray) -> np.ndarray:
    """Energy per unit mass in the J2 field, km^2/s^2 (conserved by J2 motion).

    v^2/2 - mu/r [1 - J2 (R/r)^2 (3 sin^2(lat) - 1)/2]; the field is symmetric about the
    pole, so it does not change with time in the inertial frame.
    """
    r = np.linalg.norm(pos_km, axis=-1)
    sin_lat = pos_km[..., 2] / r
    potential = -GM_EARTH_KM3_S2 / r * (1.0 - J2_EARTH * (R_J2_KM / r) ** 2
                                        * (3.0 * sin_lat**2 - 1.0) / 2.0)
    return 0.5 * np.sum(vel_km_s * vel_km_s, axis=-1) + potential


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
    k = len(pos)
    step = orbit_period_s(pos, vel) / samples
    usable = np.isfinite(step) & np.isfinite(pos).all(axis=1) & np.isfinite(vel).all(axis=1)
    step = np.where(usable, step, 1.0)
    # Back and ahead in one integration: the first k rows step back, the last k ahead.
    steps = max(n_back, n_ahead)
    both, _ = propagate_j2(np.concatenate([pos, pos]), np.concatenate([vel, vel]),
                           np.concatenate([-step, step]), steps)
    gcrs = np.concatenate([both[:k, n_back:0:-1], both[k:, : n_ahead + 1]], axis=1)
    dt = step[:, None] * np.arange(-n_back, n_ahead + 1)[None, :]
    gcrs[~usable] = np.nan
    dt[~usable] = np.nan
    matrices = earth_rotation(np.nan_to_num(dt)) @ scene.gcrs_to_itrs(header)
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
    A track is integrated again only when it no longer fits: other nodes, a state more
    than one sample interval later or earlier than the track's, or nodes that are not where
    the track has them (a seek, a restart). In between, only the split between past and
    next moves with the node.
    """

    # A node this far from where its cached track puts it means the track is stale, km.
    STALE_KM = 25.0

    def __init__(self, plotter: Any) -> None:
        import pyvista as pv

        self.pl = plotter
        self.visible = False
        self.track: GroundTrack | None = None
        self.halves: tuple[list, list] | None = None
        self._cache: tuple[tuple[int, ...], float] | None = None
        self.computed = 0  # integrations run (tests and benchmarks read it)
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
               header: Mapping[str, Any], earth_fixed: bool) -> tuple[list, list] | None:
        """The tracks of ``nodes`` for this state; hidden when off or unusable.

        Returns:
            The past and next halves (``GroundTrack.halves``), or None.
        """
        self.halves = None
        if self.visible:
            self.halves = self._halves(nodes, arrays, header)
        for part, lines_of in (("past", 0), ("next", 1)):
            points, lines = np.zeros((0, 3), np.float32), np.zeros(0, np.int64)
            if self.halves is not None:
                surface = [scene.geodetic_to_itrs_km(lat, lon, TRACK_LIFT_KM)
                           for lat, lon in self.halves[lines_of]]
                points, lines = polylines(surface)
            self.actors[part].SetVisibility(len(points) > 0)
            if len(points):
                self.meshes[part].points = points
                self.meshes[part].lines = lines
                self.actors[part].user_matrix = scene.earth_matrix(header, earth_fixed)
        return self.halves

    def _halves(self, nodes: Sequence[int], arrays: Mapping[str, np.ndarray],
                header: Mapping[str, Any]) -> tuple[list, list] | None:
        t_utc = header.get("t_utc")
        t_utc = float(t_utc) if isinstance(t_utc, int | float) else math.nan
        key = tuple(int(i) for i in nodes)
        if self.track is not None and self._cache is not None and self._cache[0] == key:
            dt = t_utc - self._cache[1]
            steps = self.track.dt_s[:, 1] - self.track.dt_s[:, 0]
            if 0.0 <= dt < float(np.nanmin(steps, initial=np.inf)) and \
                    self._where_published(dt, key, arrays):
                return self.track.halves(dt)
        self.track = track_of(nodes, arrays, header)
        self._cache = (key, t_utc)
        self.computed += 1
        return None if self.track is None else self.track.halves(0.0)

    def _where_published(self, dt: float, nodes: tuple[int, ...],
                         arrays: Mapping[str, np.ndarray]) -> bool:
        """Whether the cached track has every node within ``STALE_KM`` of its position."""
        published = arrays.get("pos_itrs_km")
        assert self.track is not None
        if published is None or published.ndim != 2 or max(nodes, default=-1) >= len(published):
            return False
        itrs, _, _, _ = self.track.at(dt)
        gap = np.linalg.norm(itrs - published[list(nodes)], axis=1)
        return bool(np.all(gap < self.STALE_KM))


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

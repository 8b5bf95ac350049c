"""The 3D viewer's geometry: frames, the globe, node positions, trails, orbits (pure numpy).

Everything the viewer places in space comes from a ``state`` message and ``meta`` through
the functions here: satellite points in the chosen frame, the Earth's orientation, shading
and texture coordinates, trails, contact lines, the selected node's orbit and the camera's
direction. How nodes are painted lives in ``viz.node_colours`` and the HUD's words in
``viz.hud_text``; ``viz.fleet_scene`` only copies these arrays into VTK.

Frames: the *inertial* view draws in GCRS (orbits are rings, the Earth turns under them);
the *Earth-fixed* view draws in ITRS. Earth-fixed things (the globe, stations) are built
once in ITRS and carried into GCRS by ``M.T`` where ``M`` is the header's ``gcrs_to_itrs``
(``r_itrs = M @ r_gcrs``). Lengths are km throughout.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# WGS84 ellipsoid (NIMA TR8350.2): the globe is drawn as the ellipsoid, so a station at
# its geodetic height sits on the drawn surface at any latitude, poles included.
WGS84_A_KM = 6378.137
WGS84_F = 1.0 / 298.257223563
WGS84_E2 = WGS84_F * (2.0 - WGS84_F)


# --------------------------------------------------------------------------- geometry
def geodetic_to_itrs_km(lat_deg: Any, lon_deg: Any, alt_km: Any = 0.0) -> np.ndarray:
    """Earth-fixed position of geodetic coordinates on WGS84.

    Args:
        lat_deg, lon_deg: Geodetic latitude and east longitude, degrees (any broadcastable
            shape).
        alt_km: Height above the ellipsoid, km.

    Returns:
        ITRS position, km, shape ``broadcast_shape + (3,)``.
    """
    lat = np.radians(np.asarray(lat_deg, dtype=float))
    lon = np.radians(np.asarray(lon_deg, dtype=float))
    alt = np.asarray(alt_km, dtype=float)
    sin_lat = np.sin(lat)
    n = WGS84_A_KM / np.sqrt(1.0 - WGS84_E2 * sin_lat**2)  # prime-vertical radius
    xy = (n + alt) * np.cos(lat)
    z = (n * (1.0 - WGS84_E2) + alt) * sin_lat
    return np.stack(np.broadcast_arrays(xy * np.cos(lon), xy * np.sin(lon), z), axis=-1)


def texture_uv(lat_deg: Any, lon_deg: Any) -> np.ndarray:
    """Texture coordinates of a place on an equirectangular (plate carree) Earth image.

    The image runs from longitude -180 at its left edge to +180 at its right, latitude +90
    at its top to -90 at its bottom. VTK puts ``v = 0`` at the image's bottom row.

    Returns:
        ``(u, v)`` in 0..1, shape ``broadcast_shape + (2,)``.
    """
    u = (np.asarray(lon_deg, dtype=float) + 180.0) / 360.0
    v = (np.asarray(lat_deg, dtype=float) + 90.0) / 180.0
    return np.stack(np.broadcast_arrays(u, v), axis=-1)


def uv_to_pixel(uv: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Image pixel (column, row counted from the top) that texture coordinates sample."""
    uv = np.asarray(uv, dtype=float)
    col = np.clip(np.floor(uv[..., 0] * width), 0, width - 1).astype(int)
    row = np.clip(np.floor((1.0 - uv[..., 1]) * height), 0, height - 1).astype(int)
    return col, row


@dataclass(frozen=True)
class EarthGrid:
    """A latitude-longitude grid of the WGS84 ellipsoid with its texture coordinates.

    Attributes:
        points_km: ``((n_lat + 1) * (n_lon + 1), 3)`` ITRS vertices; the seam column at
            +180 deg repeats -180 so the texture does not wrap backwards across it.
        tcoords: Matching ``(u, v)`` texture coordinates.
        faces: VTK face connectivity ``[4, a, b, c, d, ...]`` of the quads.
        lat_deg, lon_deg: Geodetic coordinates of each vertex.
    """

    points_km: np.ndarray
    tcoords: np.ndarray
    faces: np.ndarray
    lat_deg: np.ndarray
    lon_deg: np.ndarray


def earth_grid(n_lat: int = 90, n_lon: int = 180) -> EarthGrid:
    """Vertices, quads and texture coordinates of the globe (built once, ITRS)."""
    lat = np.linspace(-90.0, 90.0, n_lat + 1)
    lon = np.linspace(-180.0, 180.0, n_lon + 1)
    lat_g, lon_g = np.meshgrid(lat, lon, indexing="ij")
    points = geodetic_to_itrs_km(lat_g, lon_g).reshape(-1, 3)
    tcoords = texture_uv(lat_g, lon_g).reshape(-1, 2)
    i, j = np.meshgrid(np.arange(n_lat), np.arange(n_lon), indexing="ij")
    a = (i * (n_lon + 1) + j).ravel()
    # Counter-clockwise seen from outside, so normals point out of the Earth.
    quads = np.stack([np.full_like(a, 4), a, a + 1, a + n_lon + 2, a + n_lon + 1], axis=1)
    return EarthGrid(points, tcoords, quads.ravel(), lat_g.ravel(), lon_g.ravel())


def gcrs_to_itrs(header: Mapping[str, Any]) -> np.ndarray:
    """The header's rotation ``M`` (``r_itrs = M @ r_gcrs``), 3x3.

    Falls back to a pure rotation by ``gast_rad`` about the pole when the matrix is absent
    or malformed (the difference, precession-nutation, is a fraction of a degree).
    """
    matrix = header.get("gcrs_to_itrs")
    if matrix is not None:
        m = np.asarray(matrix, dtype=float)
        if m.size == 9 and np.all(np.isfinite(m)):
            return m.reshape(3, 3)
    theta = float(header.get("gast_rad", 0.0))
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])


def earth_matrix(header: Mapping[str, Any], earth_fixed: bool) -> np.ndarray:
    """4x4 transform taking Earth-fixed (ITRS) geometry into the view frame."""
    out = np.eye(4)
    if not earth_fixed:
        out[:3, :3] = gcrs_to_itrs(header).T
    return out


def itrs_to_view(points_itrs_km: np.ndarray, header: Mapping[str, Any],
                 earth_fixed: bool) -> np.ndarray:
    """Earth-fixed points (``(..., 3)`` km) in the view frame."""
    if earth_fixed:
        return np.asarray(points_itrs_km, dtype=float)
    # Row vectors: r_gcrs = M.T @ r_itrs  <=>  r_gcrs_row = r_itrs_row @ M.
    return np.asarray(points_itrs_km, dtype=float) @ gcrs_to_itrs(header)


def sun_direction(header: Mapping[str, Any], earth_fixed: bool) -> np.ndarray:
    """Unit vector from the Earth's centre to the Sun in the view frame."""
    sun = np.asarray(header.get("sun_gcrs_km", (1.0, 0.0, 0.0)), dtype=float)
    if sun.shape != (3,) or not np.all(np.isfinite(sun)) or not np.any(sun):
        sun = np.array([1.0, 0.0, 0.0])
    sun = sun / np.max(np.abs(sun))  # a length near 1 first: no overflow in the norm
    if earth_fixed:
        sun = gcrs_to_itrs(header) @ sun
    return sun / np.linalg.norm(sun)


def subsolar_point_deg(header: Mapping[str, Any]) -> tuple[float, float]:
    """Geocentric latitude and longitude of the point with the Sun at the zenith, deg."""
    x, y, z = sun_direction(header, earth_fixed=True)
    return math.degrees(math.asin(z)), math.degrees(math.atan2(y, x))


def earth_shading(normals: np.ndarray, sun_itrs: np.ndarray, ambient: float = 0.12,
                  out: np.ndarray | None = None) -> np.ndarray:
    """Per-vertex Lambert shading of the globe by the Sun, as uint8 grey ``(m, 3)``.

    The viewer multiplies the texture by these vertex colours instead of lighting the
    globe per pixel: the same directional light from the Sun's true direction, at half
    the cost on a CPU renderer. ``1`` (255) where the Sun is at the zenith, ``ambient``
    on the night side, so the continents stay faintly visible there.

    Args:
        normals: Outward unit normals of the globe's vertices, ITRS, ``(m, 3)``.
        sun_itrs: Unit vector to the Sun, ITRS, ``(3,)``.
        ambient: Brightness of the night side, 0..1.
        out: Optional ``(m, 3)`` uint8 buffer to write into.
    """
    cos_zenith = np.clip(normals @ np.asarray(sun_itrs, dtype=normals.dtype), 0.0, 1.0)
    level = np.round(255.0 * (ambient + (1.0 - ambient) * cos_zenith)).astype(np.uint8)
    if out is None:
        out = np.empty((len(normals), 3), dtype=np.uint8)
    out[:] = level[:, None]
    return out


def trail_budget(n_sats: int, points: int = 60_000, span_s: float = 1440.0,
                 longest: int = 48, shortest: int = 8) -> tuple[int, float]:
    """Points per trail and seconds between them for a fleet of ``n_sats``.

    A big fleet gets fewer, farther-apart points so all trails together stay near
    ``points`` vertices (what a CPU renderer draws in a few ms) while still spanning
    ``span_s`` (24 min: a quarter of a low orbit).

    Returns:
        ``(length, interval_s)``.
    """
    length = int(np.clip(points // max(n_sats, 1), shortest, longest))
    return length, span_s / (length - 1)


def sat_positions(arrays: Mapping[str, np.ndarray], earth_fixed: bool,
                  out: np.ndarray | None = None) -> np.ndarray:
    """Satellite positions in the view frame, float32 ``(n, 3)`` km.

    Satellites without a valid position (SGP4 error: NaN rows) are put at the Earth's
    centre, where the opaque globe hides them, so the mesh keeps its size.
    """
    pos = arrays["pos_itrs_km" if earth_fixed else "pos_gcrs_km"]
    if out is None:
        out = np.empty(pos.shape, dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):  # beyond float32: inf, then centred
        np.copyto(out, pos, casting="unsafe")
    out[~np.isfinite(out).all(axis=1)] = 0.0
    return out


def nearest_sat(points_km: np.ndarray, xyz_km: Sequence[float]) -> int:
    """Index of the drawn satellite closest to a picked world point (-1 if none)."""
    if len(points_km) == 0:
        return -1
    d2 = np.sum((np.asarray(points_km, dtype=float) - np.asarray(xyz_km, dtype=float)) ** 2,
                axis=1)
    return int(np.argmin(d2))


# --------------------------------------------------------------------------- trails, contacts
class TrailBuffer:
    """Recent positions of every satellite in a ring buffer, in both frames.

    A point is kept every ``interval_s`` of simulated time; the newest slot always holds
    the latest position, so a trail ends exactly at its satellite. ``length`` slots span
    ``(length - 1) * interval_s`` (48 x 30 s: about a quarter of a LEO orbit).

    Args:
        n_sats: Number of satellites.
        length: Points per trail.
        interval_s: Simulated seconds between kept points.
    """

    def __init__(self, n_sats: int, length: int = 48, interval_s: float = 30.0) -> None:
        self.n_sats = n_sats
        self.length = length
        self.interval_s = interval_s
        self._gcrs = np.zeros((length, n_sats, 3), dtype=np.float32)
        self._itrs = np.zeros((length, n_sats, 3), dtype=np.float32)
        self._head = 0
        self._t_kept = math.nan
        self._t_last = math.nan

    @property
    def empty(self) -> bool:
        return math.isnan(self._t_last)

    def reset(self) -> None:
        """Forget every trail (a twin restart, a jump back in time)."""
        self._t_kept = self._t_last = math.nan

    def push(self, t_utc: float, pos_gcrs_km: np.ndarray, pos_itrs_km: np.ndarray) -> None:
        """Add the positions at ``t_utc``; going back in time restarts the trails."""
        if not self.empty and t_utc < self._t_last:
            self.reset()
        with np.errstate(over="ignore", invalid="ignore"):  # beyond float32 is not valid
            pos_gcrs_km = np.asarray(pos_gcrs_km, dtype=np.float32)
            pos_itrs_km = np.asarray(pos_itrs_km, dtype=np.float32)
        valid = np.isfinite(pos_gcrs_km).all(axis=1) & np.isfinite(pos_itrs_km).all(axis=1)
        if self.empty:
            # Every slot starts at the first position: trails grow from a point.
            self._gcrs[:] = pos_gcrs_km
            self._itrs[:] = pos_itrs_km
            self._head = 0
            self._t_kept = t_utc
        elif t_utc - self._t_kept >= self.interval_s:
            self._head = (self._head + 1) % self.length
            self._t_kept = t_utc
        self._gcrs[self._head] = pos_gcrs_km
        self._itrs[self._head] = pos_itrs_km
        self._t_last = t_utc
        if not valid.all():
            # A satellite without a position collapses its trail into the Earth's centre.
            self._gcrs[:, ~valid] = 0.0
            self._itrs[:, ~valid] = 0.0

    def points(self, earth_fixed: bool, out: np.ndarray | None = None) -> np.ndarray:
        """``(n_sats * length, 3)`` float32, satellite-major, oldest point first."""
        buf = self._itrs if earth_fixed else self._gcrs
        order = (self._head + 1 + np.arange(self.length)) % self.length
        if out is None:
            out = np.empty((self.n_sats * self.length, 3), dtype=np.float32)
        out.reshape(self.n_sats, self.length, 3)[:] = buf[order].transpose(1, 0, 2)
        return out

    def lines(self) -> np.ndarray:
        """VTK polyline connectivity matching :meth:`points` (fixed for the buffer's life)."""
        ids = np.arange(self.n_sats * self.length).reshape(self.n_sats, self.length)
        return np.hstack([np.full((self.n_sats, 1), self.length), ids]).ravel()


def contact_segments(in_contact: np.ndarray, station_pos_km: np.ndarray,
                     sat_pos_km: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Line segments from each station to each satellite it is in contact with.

    Args:
        in_contact: ``(S, N)`` bool.
        station_pos_km: ``(S, 3)`` station positions in the view frame.
        sat_pos_km: ``(N, 3)`` satellite positions in the view frame.

    Returns:
        ``points`` ``(2k, 3)`` float32 (station, satellite, ...) and VTK line
        connectivity ``[2, 0, 1, 2, 2, 3, ...]`` for the ``k`` contacts.
    """
    st, sat = np.nonzero(in_contact)
    points = np.empty((2 * len(st), 3), dtype=np.float32)
    points[0::2] = station_pos_km[st]
    points[1::2] = sat_pos_km[sat]
    ids = np.arange(2 * len(st)).reshape(-1, 2)
    lines = np.hstack([np.full((len(st), 1), 2), ids]).ravel()
    return points, lines


# --------------------------------------------------------------------------- selected orbit
# Vertices of the selected node's orbit ring: 2 deg apart, 361 closing the loop.
ORBIT_RING_POINTS = 181


def orbit_ring(pos_km: Sequence[float], vel_km_s: Sequence[float],
               n_points: int = ORBIT_RING_POINTS) -> np.ndarray | None:
    """One node's full orbit as its osculating circle, from its own position and velocity.

    The ring lies in the plane through the Earth's centre with normal ``h = r x v`` (the
    orbit's angular momentum direction), at radius ``|r|``, starting at the node and running
    the way it moves. The viewer computes no dynamics: for the near-circular low orbits of
    an orbital data centre (eccentricity ~0.001) the circle is the path the node flies this
    revolution to within ``a e`` (a few km); it leaves out the slow drift of the plane
    (J2 nodal precession, about a degree a day) and the eccentricity of elliptic orbits.

    Args:
        pos_km: The node's position, inertial (GCRS), km, ``(3,)``.
        vel_km_s: Its velocity in the same frame, km/s, ``(3,)``.
        n_points: Vertices of the ring; the last repeats the first, closing it.

    Returns:
        ``(n_points, 3)`` float32 GCRS km, or None when ``r`` or ``v`` is missing, not
        finite, or the two are parallel (no plane).
    """
    r = np.asarray(pos_km, dtype=float).reshape(-1)
    v = np.asarray(vel_km_s, dtype=float).reshape(-1)
    if r.shape != (3,) or v.shape != (3,) or not (np.isfinite(r).all() and np.isfinite(v).all()):
        return None
    radius = float(np.linalg.norm(r))
    h = np.cross(r, v)
    h_norm = float(np.linalg.norm(h))
    # A velocity within ~1e-6 rad of radial leaves the plane undefined.
    if radius == 0.0 or h_norm <= 1e-6 * radius * float(np.linalg.norm(v)):
        return None
    u = r / radius
    w = np.cross(h / h_norm, u)  # in-plane, along the motion
    angle = np.linspace(0.0, 2.0 * math.pi, n_points)
    ring = radius * (np.cos(angle)[:, None] * u + np.sin(angle)[:, None] * w)
    ring[-1] = ring[0]
    return ring.astype(np.float32)


def gcrs_to_view(points_gcrs_km: np.ndarray, header: Mapping[str, Any],
                 earth_fixed: bool) -> np.ndarray:
    """Inertial points (``(..., 3)`` km) in the view frame (ITRS in the Earth-fixed view)."""
    if not earth_fixed:
        return np.asarray(points_gcrs_km)
    # Row vectors: r_itrs = M @ r_gcrs  <=>  r_itrs_row = r_gcrs_row @ M.T.
    return np.asarray(points_gcrs_km, dtype=float) @ gcrs_to_itrs(header).T


# --------------------------------------------------------------------------- camera
def camera_direction_over(pos_km: Sequence[float], vel_km_s: Sequence[float] | None,
                          tilt: float = 0.6,
                          toward: Sequence[float] | None = None) -> np.ndarray | None:
    """Unit vector from the Earth's centre for a camera that shows one node and its orbit.

    Straight above the node the orbit is seen edge-on (a line); leaning the camera toward
    the orbit normal by ``tilt`` (about 30 deg for 0.6) opens the ring into an ellipse with
    the node on its near side, in front of the globe. ``toward`` (the Sun's direction)
    picks the side of the orbit plane to lean to, so the camera looks at the day side.

    Returns:
        ``(3,)`` in the frame of ``pos_km``, or None when the position is not usable.
    """
    r = np.asarray(pos_km, dtype=float).reshape(-1)
    if r.shape != (3,) or not np.isfinite(r).all() or not np.any(r):
        return None
    direction = r / np.linalg.norm(r)
    if vel_km_s is not None:
        h = np.cross(r, np.asarray(vel_km_s, dtype=float).reshape(-1))
        if np.isfinite(h).all() and np.any(h):
            if toward is not None and float(np.dot(h, np.asarray(toward, dtype=float))) < 0:
                h = -h
            direction = direction + tilt * h / np.linalg.norm(h)
    return direction / np.linalg.norm(direction)


# --------------------------------------------------------------------------- optical links
# Link colours: acquiring grey; up from blue (idle) through yellow to red (full).
LINK_ACQUIRING_RGB = np.array([115, 115, 115], dtype=np.uint8)
LINK_RAMP_RGB = np.array([[64, 140, 255], [255, 215, 50], [255, 50, 25]], dtype=float)
LINK_UP = 2  # link_state code of a link carrying data (meta's labels name it "up")


def link_pairs(peer: np.ndarray, state: np.ndarray, utilization: np.ndarray | None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each link once, from the per-terminal link fields, with its colour.

    Args:
        peer: ``(N, T)`` the node at the other end of each terminal's link, -1 none.
        state: ``(N, T)`` link state code, 0 none.
        utilization: ``(N, T)`` share of capacity used, or None.

    Returns:
        Ends ``i``, ``j`` (``i < j``) and ``(k, 3)`` uint8 colours.
    """
    n, terminals = peer.shape
    i = np.repeat(np.arange(n), terminals)
    j = peer.ravel().astype(np.int64)
    s = state.ravel()
    keep = (j > i) & (j < n) & (s > 0)
    i, j, s = i[keep], j[keep], s[keep]
    rgb = np.empty((i.size, 3), dtype=np.uint8)
    rgb[:] = LINK_ACQUIRING_RGB
    up = s == LINK_UP
    if up.any():
        u = np.zeros(np.count_nonzero(up)) if utilization is None else np.nan_to_num(
            utilization.ravel()[keep][up].astype(float))
        u = np.clip(u, 0.0, 1.0) * 2.0  # 0..2 along the three stops
        low = np.minimum(u.astype(int), 1)
        frac = (u - low)[:, None]
        rgb[up] = (LINK_RAMP_RGB[low] * (1.0 - frac) + LINK_RAMP_RGB[low + 1] * frac).astype(
            np.uint8)
    return i, j, rgb


def link_segments(i: np.ndarray, j: np.ndarray, sat_pos_km: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Line segments between linked nodes: ``(2k, 3)`` float32 points and VTK lines."""
    points = np.empty((2 * len(i), 3), dtype=np.float32)
    points[0::2] = sat_pos_km[i]
    points[1::2] = sat_pos_km[j]
    ids = np.arange(2 * len(i)).reshape(-1, 2)
    return points, np.hstack([np.full((len(i), 1), 2), ids]).ravel()

"""The 3D viewer's state-to-arrays layer: pure numpy, no rendering, no physics.

Everything the viewer draws comes from a ``state`` message and ``meta`` through the
functions here: satellite points in the chosen frame, colours from a field and its limits,
eclipse dimming, alarm flags, trails, contact lines, the Earth's orientation and texture
coordinates, and the HUD's text. ``viz.viewer`` only copies these arrays into VTK.

Frames: the *inertial* view draws in GCRS (orbits are rings, the Earth turns under them);
the *Earth-fixed* view draws in ITRS. Earth-fixed things (the globe, stations) are built
once in ITRS and carried into GCRS by ``M.T`` where ``M`` is the header's ``gcrs_to_itrs``
(``r_itrs = M @ r_gcrs``). Lengths are km throughout.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from viz.mirror import MirrorBinding, mirror_bindings
from viz.quantity import Catalog, Quantity

# WGS84 ellipsoid (NIMA TR8350.2): the globe is drawn as the ellipsoid, so a station at
# its geodetic height sits on the drawn surface at any latitude, poles included.
WGS84_A_KM = 6378.137
WGS84_F = 1.0 / 298.257223563
WGS84_E2 = WGS84_F * (2.0 - WGS84_F)

# Kinds with nothing to colour by: an index points into a list, a bitmask sums flags.
# (An enum colours by category, one colour per named code.) For a twin whose catalog says
# no kind, the units of those kinds, and of an enum, whose codes it does not name either.
_NON_SCALAR_KINDS = frozenset({"index", "bitmask"})
_NON_SCALAR_UNITS = frozenset({"code", "index", "bitmask"})
# Preferred colour fields, by exact name, in order; the first present in meta is the
# default (else the first with limits, else the first).
PREFERRED_FIELDS = ("temp_compute_k", "soc_frac", "utilization_frac", "delivered_flop_s",
                    "beta_deg", "alt_km")
# Brightness of a node in full umbra relative to full sun (eclipse dimming).
NIGHT_BRIGHTNESS = 0.4
# Fraction of the colormap skipped at its dark end: the bottom of "turbo" is near-black,
# invisible against space (and more so once dimmed in eclipse).
COLORMAP_FLOOR = 0.1
# Padding beyond a limit at the end of the colour range, as a fraction of the range, so
# the limit's mark on the bar sits inside it.
LIMIT_PAD_FRAC = 0.05
# Colour of a node whose field value is missing or not finite.
NO_DATA_RGB = (110, 110, 110)
# An enum's colours come from this much of the colour table, from its cold end: the top
# of "turbo" is a dark red, hard to see against space and easily read as an alarm.
CATEGORY_SPAN = 0.8
# Characters the HUD's font has no glyph for (VTK draws nothing there), and what to draw.
HUD_GLYPHS = str.maketrans({"∞": "inf"})


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


# --------------------------------------------------------------------------- colours
@dataclass(frozen=True)
class ColourField:
    """A per-satellite numeric field from meta's catalog that the viewer can colour by."""

    name: str
    unit: str
    description: str = ""
    limits: Mapping[str, float] = field(default_factory=dict)
    quantity: Quantity | None = None

    @property
    def reads(self) -> Quantity:
        """How its values read (the catalog entry; a bare number without one)."""
        return self.quantity or Quantity(self.name, self.unit)

    @property
    def categorical(self) -> bool:
        """An enum: one colour per code, named by the catalog's labels."""
        return self.reads.kind == "enum"


def colour_fields(meta: Mapping[str, Any]) -> list[ColourField]:
    """Per-satellite scalar fields of meta's catalog, in catalog order.

    Quantities, flags and enums (coloured by category); vectors (positions),
    station-by-satellite tables, indices and bitmasks are left out, as are codes whose
    kind the catalog does not say (an old twin).
    """
    out = []
    for entry in meta.get("fields", []):
        try:
            shape = list(entry["shape"])
            if not entry.get("per_sat", False) or len(shape) != 1:
                continue
            quantity = Quantity.from_entry(str(entry["name"]), entry)
            if quantity.kind in _NON_SCALAR_KINDS or (
                    entry.get("kind") is None and entry.get("unit") in _NON_SCALAR_UNITS):
                continue
            limits = {str(k): float(v) for k, v in (entry.get("limits") or {}).items()
                      if isinstance(v, int | float) and math.isfinite(v)}
            out.append(ColourField(str(entry["name"]), str(entry.get("unit", "")),
                                   str(entry.get("description", "")), limits, quantity))
        except (KeyError, TypeError, ValueError):
            continue  # a malformed catalog entry is skipped, not fatal
    return out


def default_field(fields: Sequence[ColourField]) -> str | None:
    """The field to colour by when the user named none."""
    names = [f.name for f in fields]
    for name in PREFERRED_FIELDS:
        if name in names:
            return name
    for info in fields:
        if info.limits:
            return info.name
    return names[0] if names else None


def colour_range(info: ColourField, values: np.ndarray,
                 previous: tuple[float, float] | None = None) -> tuple[float, float]:
    """The value range the colour bar spans.

    Limits fix an end where the field has them (the lowest ``*_low`` limit, the highest
    ``*_high`` limit), so the bar's ends mean "alarm". Fractions span 0..1. Other ends
    follow the data and only ever widen (``previous``), so colours do not flicker.
    """
    lows = [v for k, v in info.limits.items() if k.endswith("_low")]
    highs = [v for k, v in info.limits.items() if k.endswith("_high")]
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    data_lo = float(finite.min()) if finite.size else math.nan
    data_hi = float(finite.max()) if finite.size else math.nan
    if previous is not None:
        data_lo = min(data_lo, previous[0]) if math.isfinite(data_lo) else previous[0]
        data_hi = max(data_hi, previous[1]) if math.isfinite(data_hi) else previous[1]
    fraction = info.unit == "1"  # the catalog's unit of a fraction
    lo = min(lows) if lows else (0.0 if fraction else data_lo)
    hi = max(highs) if highs else (1.0 if fraction else data_hi)
    if math.isfinite(lo) and math.isfinite(hi) and hi > lo:
        pad = LIMIT_PAD_FRAC * (hi - lo)
        lo, hi = lo - pad * bool(lows), hi + pad * bool(highs)
    if not math.isfinite(lo):
        lo = hi if math.isfinite(hi) else 0.0
    if not math.isfinite(hi):
        hi = lo
    if hi <= lo:
        half = max(abs(lo) * 0.05, 0.5)
        lo, hi = lo - half, hi + half
    return float(lo), float(hi)


def colormap_table(name: str = "turbo", n: int = 256,
                   floor: float = COLORMAP_FLOOR) -> np.ndarray:
    """An ``(n, 3)`` uint8 colour table sampled from a matplotlib colormap.

    Args:
        name: matplotlib colormap name.
        n: Table length.
        floor: Fraction of the colormap's low end left out (its darkest colours).
    """
    import matplotlib  # only for its colormap tables

    cmap = matplotlib.colormaps[name]
    return np.round(cmap(np.linspace(floor, 1.0, n))[:, :3] * 255.0).astype(np.uint8)


def field_rgb(values: np.ndarray, clim: tuple[float, float], table: np.ndarray,
              out: np.ndarray | None = None) -> np.ndarray:
    """Map values to ``(n, 3)`` uint8 colours; out-of-range values take the end colours."""
    lo, hi = clim
    # Infinite values (an uncapped power cap) take the end colours; NaN means no data.
    values = np.nan_to_num(np.asarray(values, dtype=float), nan=np.nan, posinf=hi, neginf=lo)
    n = len(table)
    with np.errstate(invalid="ignore"):
        idx = np.floor((values - lo) / (hi - lo) * n)
    finite = np.isfinite(idx)
    idx = np.clip(np.where(finite, idx, 0), 0, n - 1).astype(np.intp)
    if out is None:
        out = np.empty((len(values), 3), dtype=np.uint8)
    np.take(table, idx, axis=0, out=out)
    out[~finite] = NO_DATA_RGB
    return out


def category_colours(info: ColourField, table: np.ndarray) -> tuple[list[int], np.ndarray]:
    """The codes an enum's catalog names and a colour each, ``(codes, (k, 3) uint8)``.

    The colours are spread evenly over the first ``CATEGORY_SPAN`` of the colour table in
    code order (the lowest code at the cold end), so the nodes and the bar's swatches read
    alike. Codes the catalog does not name draw as no data.
    """
    codes = sorted(info.reads.labels)
    if not codes:
        return [], np.zeros((0, 3), np.uint8)
    last = CATEGORY_SPAN * (len(table) - 1)
    picks = np.round(np.linspace(0, last, len(codes)) if len(codes) > 1
                     else np.array([last / 2])).astype(np.intp)
    return codes, np.asarray(table)[picks].astype(np.uint8)


def category_rgb(values: np.ndarray, codes: Sequence[int], colours: np.ndarray,
                 out: np.ndarray | None = None) -> np.ndarray:
    """Map enum codes to ``(n, 3)`` uint8 colours; unnamed codes and NaN draw as no data."""
    values = np.asarray(values)
    if out is None:
        out = np.empty((len(values), 3), dtype=np.uint8)
    out[:] = NO_DATA_RGB
    with np.errstate(invalid="ignore"):
        for code, colour in zip(codes, colours, strict=True):
            out[values == code] = colour
    return out


def eclipse_dim(rgb: np.ndarray, sunlit_frac: np.ndarray | None,
                night_brightness: float = NIGHT_BRIGHTNESS) -> np.ndarray:
    """Darken nodes in the Earth's shadow, in place: full sun 1, umbra ``night_brightness``."""
    if sunlit_frac is None:
        return rgb
    sun = np.clip(np.nan_to_num(np.asarray(sunlit_frac, dtype=np.float32), nan=1.0), 0.0, 1.0)
    scale = night_brightness + (1.0 - night_brightness) * sun
    rgb[:] = np.round(rgb * scale[:, None]).astype(np.uint8)
    return rgb


# The twin's own per-node verdicts that flag a node, by exact name (docs/protocol.md): the
# value at or past which it is flagged. ``fault_flags``: any fault bit; ``limit_level``:
# 2, the limit monitor's alarm; ``status``: any SGP4 error code.
FLAG_FIELDS = {"fault_flags": 1, "limit_level": 2, "status": 1}


def alarm_mask(arrays: Mapping[str, np.ndarray], fields: Sequence[ColourField],
               n_sats: int) -> np.ndarray:
    """Which nodes to flag as in alarm, ``(n,)`` bool.

    A node is flagged when any per-satellite field is at or beyond one of its published
    ``alarm_low``/``alarm_high`` limits, or when one of the twin's own verdicts says so
    (:data:`FLAG_FIELDS`: a fault bit set, the limit monitor at alarm, an orbit that could
    not be propagated).
    The viewer only compares published numbers with published limits; it models nothing.
    """
    mask = np.zeros(n_sats, dtype=bool)
    for info in fields:
        values = arrays.get(info.name)
        if values is None or values.shape != (n_sats,):
            continue
        if "alarm_high" in info.limits:
            mask |= values >= info.limits["alarm_high"]
        if "alarm_low" in info.limits:
            mask |= values <= info.limits["alarm_low"]
    for name, at_least in FLAG_FIELDS.items():
        values = arrays.get(name)
        if values is not None and values.shape == (n_sats,):
            mask |= values >= at_least
    return mask


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


# --------------------------------------------------------------------------- text
# Values read as the catalog says (viz.quantity, shared with the dashboard): °C, %, kW.


def utc_text(t_utc: float) -> str:
    """POSIX seconds as ``2026-03-20 12:00:00 UTC``."""
    try:
        return datetime.fromtimestamp(t_utc, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return f"t = {t_utc!r} s"


# Characters of the last bad message's reason in the HUD (its line stays on screen).
BAD_LINE_CHARS = 72


def bad_lines(bad: int, last_bad: str = "") -> list[str]:
    """HUD lines for bad stream messages: ``BAD MESSAGES 3`` and the last reason; none at 0."""
    if not bad:
        return []
    lines = [f"BAD MESSAGES {bad:,d} (dropped)"]
    if last_bad:
        if len(last_bad) > BAD_LINE_CHARS:
            last_bad = last_bad[:BAD_LINE_CHARS - 1] + "…"
        lines.append(f"last: {last_bad}")
    return lines


def status_lines(header: Mapping[str, Any], meta: Mapping[str, Any] | None, connection: str,
                 *, earth_fixed: bool, missed: int = 0, restarts: int = 0,
                 fps: float | None = None, bad: int = 0, last_bad: str = "") -> list[str]:
    """Top-left HUD: scenario, simulation time, warp, connection, view, bad messages."""
    scenario = (meta or {}).get("scenario", {}).get("name", "?")
    warp = header.get("warp")
    warp_text = f"x{warp:g}" if isinstance(warp, int | float) else "?"
    clock = "PAUSED" if header.get("paused") else f"warp {warp_text}"
    lines = [
        f"ODC Twin — {scenario}",
        utc_text(float(header.get("t_utc", 0.0))),
        f"{clock}   step {header.get('step', '?')}   {connection}",
        f"view: {'Earth-fixed (ITRS)' if earth_fixed else 'inertial (GCRS)'}",
    ]
    extra = []
    if fps:
        extra.append(f"{fps:.0f} fps")
    if missed:
        extra.append(f"missed {missed}")
    if restarts:
        extra.append(f"restarts {restarts}")
    if extra:
        lines.append("   ".join(extra))
    return lines + bad_lines(bad, last_bad)


# Fleet totals an operator wants at a glance, by exact name, in display order. The
# header may carry dozens; the rest show on demand (``full=True``).
FLEET_HIGHLIGHTS = ("n_limit_alarm", "delivered_pflop_s", "goodput_frac", "p_solar_total_w",
                    "p_load_total_w", "compute_power_w", "soc_min_frac", "soc_mean_frac",
                    "temp_compute_max_k", "temp_battery_min_k", "n_in_eclipse", "n_in_contact",
                    "n_nodes_faulted", "n_throttled_thermal", "n_throttled_power",
                    "queue_length", "downlink_backlog_bytes")


def fleet_lines(fleet: Mapping[str, Any], n_flagged: int, *, full: bool = False,
                max_lines: int = 13, catalog: Catalog | None = None) -> list[str]:
    """Top-right HUD: fleet totals from the header, as meta's totals catalog says.

    Args:
        fleet: The header's ``fleet`` map.
        n_flagged: Nodes the viewer flags (``alarm_mask``).
        full: Every key, sorted, instead of the highlights.
        max_lines: Highlight lines at most.
        catalog: meta's catalogs; without, the totals show as bare numbers.
    """
    catalog = catalog or Catalog()
    keys = sorted(fleet) if full else [k for k in FLEET_HIGHLIGHTS if k in fleet][:max_lines]
    lines = ["FLEET"]
    lines += [f"{catalog.total(k).label()}: {catalog.total(k).format(fleet[k])}" for k in keys]
    lines.append(f"flagged (alarm/fault): {n_flagged:,d}")
    return lines


def node_lines(meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray], index: int,
               fields: Sequence[ColourField], max_lines: int = 18,
               colour: ColourField | None = None) -> list[str]:
    """Bottom-left HUD: the selected node's name and its per-satellite values, each as
    meta's catalog says (``T comp: 80.0 °C``, ``Pump mode: high``).

    Args:
        colour: The field the nodes are coloured by: its value comes first, never cut.
    """
    sats = meta.get("sats", {})
    names = sats.get("names", [])
    if not 0 <= index < len(names):
        return []
    groups = sats.get("groups", [])
    group = groups[index] if index < len(groups) else ""
    lines = [f"NODE {index}: {names[index]}" + (f"  [{group}]" if group else "")]
    contact = arrays.get("contact_station")
    stations = meta.get("stations", [])
    if contact is not None and contact.ndim == 1 and index < len(contact) \
            and np.isfinite(contact[index]):
        k = int(contact[index])
        lines.append(f"contact: {stations[k]['name'] if 0 <= k < len(stations) else 'none'}")
    # The colour fields, then the node's enums and bitmasks by their catalog names.
    named = [Quantity.from_entry(str(e["name"]), e) for e in meta.get("fields", [])
             if isinstance(e, Mapping) and e.get("per_sat") and e.get("kind") in
             ("enum", "bitmask") and len(e.get("shape") or ()) == 1 and "name" in e]
    shown = [info.reads for info in fields if not info.categorical] + named
    if colour is not None:
        shown = [colour.reads] + [q for q in shown if q.name != colour.name]
    for reads in shown:
        values = arrays.get(reads.name)
        if values is None or values.ndim != 1 or index >= len(values) \
                or len(lines) >= max_lines:
            continue
        lines.append(f"{reads.label()}: {reads.format(values[index].item())}")
    return lines


def scalar_bar_title(info: ColourField, typical: float = math.nan) -> str:
    """Colour bar title: the field's label and its display unit (``T comp [°C]``); an
    enum's label alone (its swatches name the codes).

    Args:
        typical: The largest magnitude on the bar (wire unit), for an SI prefix (kW).
    """
    unit = info.reads.unit_text(typical)
    return f"{info.reads.label()} [{unit}]" if unit else info.reads.label()


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


# --------------------------------------------------------------------------- mirror
# Bindings (MirrorBinding, mirror_bindings) come from viz.mirror, shared with the dashboard.
def _mirror_value(arrays: Mapping[str, np.ndarray], name: str, j: int) -> float:
    values = arrays.get(name)
    if values is None or values.ndim != 1 or not 0 <= j < len(values):
        return math.nan
    return float(values[j])


def mirror_live(arrays: Mapping[str, np.ndarray], binding: MirrorBinding) -> bool | None:
    """Whether the binding's telemetry is arriving; None before any state says."""
    values = arrays.get("mirror_live")
    if values is None or values.ndim != 1 or not 0 <= binding.index < len(values):
        return None
    return bool(values[binding.index])


def mirror_tag(arrays: Mapping[str, np.ndarray], binding: MirrorBinding) -> str:
    """The label beside a mirrored node: ``MIRROR flatsat live`` (or ``lost``)."""
    live = mirror_live(arrays, binding)
    return f"MIRROR {binding.testbed} " + ("live" if live else "lost" if live is False
                                           else "waiting")


def mirror_lines(meta: Mapping[str, Any] | None, arrays: Mapping[str, np.ndarray],
                 index: int) -> list[str]:
    """The node panel's mirror block for node ``index``: measured beside predicted.

    One block per binding on that node: a status line, then each compared state with its
    measured value, the model's prediction, the residual (measured minus predicted) with
    its threshold (``!`` when past it), then the measured drivers now feeding the model.
    Empty when the node is not mirrored.
    """
    lines: list[str] = []
    catalog = Catalog(meta)
    for b in mirror_bindings(meta):
        if b.sat != index:
            continue
        age = _mirror_value(arrays, "mirror_age_s", b.index)
        age_text = f", newest sample {age:.1f} s ago" if math.isfinite(age) else ""
        lines.append(f"{mirror_tag(arrays, b).upper()}{age_text}")
        reads = {q: catalog.mirrored(q) for q in (*b.states, *b.drivers)}
        width = max([len(r.label()) for r in reads.values()] + [4])
        if b.states:
            lines.append(f"{'':{width}s}  {'measured':>10s} {'predicted':>10s} "
                         f"{'residual':>10s}  limit")
        for q in b.states:
            measured = _mirror_value(arrays, f"mirror_measured_{q}", b.index)
            predicted = _mirror_value(arrays, f"mirror_predicted_{q}", b.index)
            residual = _mirror_value(arrays, f"mirror_residual_{q}", b.index)
            threshold = b.thresholds.get(q, math.nan)
            over = math.isfinite(residual) and math.isfinite(threshold) \
                and abs(residual) > threshold
            r = reads[q]
            limit = r.difference(threshold)[1:] if math.isfinite(threshold) else ""
            lines.append(f"{r.label():{width}s}  {r.format(measured):>10s} "
                         f"{r.format(predicted):>10s} {r.difference(residual):>10s}  "
                         f"±{limit}{'  !' if over else ''}")
        for q in b.drivers:
            measured = _mirror_value(arrays, f"mirror_measured_{q}", b.index)
            lines.append(f"{reads[q].label():{width}s}  {reads[q].format(measured):>10s}  "
                         "measured, drives the model")
    return lines


def node_name(meta: Mapping[str, Any] | None, index: int) -> str:
    """A satellite's name from meta (``#index`` when meta does not say)."""
    names = (meta or {}).get("sats", {}).get("names", [])
    return str(names[index]) if 0 <= index < len(names) else f"#{index}"


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

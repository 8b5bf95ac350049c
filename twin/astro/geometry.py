"""Pure numpy orbital geometry: WGS84 geodetic coordinates, Earth shadow, beta angle."""

from __future__ import annotations

import math

import numpy as np

# WGS84 ellipsoid.
WGS84_A_KM = 6378.137
WGS84_F = 1.0 / 298.257223563
WGS84_B_KM = WGS84_A_KM * (1.0 - WGS84_F)
WGS84_E2 = WGS84_F * (2.0 - WGS84_F)  # first eccentricity squared
WGS84_EP2 = WGS84_E2 / (1.0 - WGS84_E2)  # second eccentricity squared

# Shadow model radii. `sunlit_fraction` takes a sphere, by default of the WGS84 equatorial
# radius (the body skyfield's `is_sunlit` uses); `ellipsoid_sunlit_fraction` maps the
# WGS84 ellipsoid, optionally inflated by an atmospheric shadow height, onto that sphere.
R_EARTH_SHADOW_KM = WGS84_A_KM
R_SUN_KM = 695700.0  # IAU 2015 nominal solar radius


_ONES3 = np.ones(3)


def norm(vec: np.ndarray) -> np.ndarray:
    """Row norms of (n, 3) vectors (same unit); (3,) gives a 0-d array."""
    return np.sqrt(rowdot(vec, vec))


def rowdot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot products of (n, 3) arrays (or (3,)), as one matvec.

    ``(a * b) @ ones`` is ~4x faster than ``einsum('ij,ij->i')`` on 4,428 rows here.
    """
    return np.multiply(a, b) @ _ONES3


def unit(vec: np.ndarray) -> np.ndarray:
    """Unit vectors of (n, 3) or (3,) vectors (zero rows give NaN)."""
    return vec / norm(vec)[..., None]


def geodetic_from_itrs(pos_itrs_km: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """WGS84 geodetic coordinates of Earth-fixed positions (one Bowring iteration).

    Args:
        pos_itrs_km: (n, 3) ITRS positions, km (NaN rows give NaN).

    Returns:
        lat_rad: (n,) geodetic latitude, rad.
        lon_rad: (n,) longitude, rad in [-π, π].
        alt_km: (n,) height above the ellipsoid, km.
    """
    # Contiguous rows: column ops on an (n, 3) array are strided and twice as slow.
    x, y, z = np.ascontiguousarray(pos_itrs_km.T)
    return geodetic_from_rows(x, y, z)


def geodetic_from_rows(
    x: np.ndarray, y: np.ndarray, z: np.ndarray,
    out: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """WGS84 geodetic coordinates from the ITRS component rows x, y, z, (n,) km each.

    Bowring's parametric-latitude iteration is written with tangents only, so the
    trigonometry is two ``arctan`` calls (``arctan2`` and ``hypot`` cost 2.5x more
    here). Started from the altitude-aware guess below, one iteration reaches 2e-13 rad
    in latitude from -1 to 2500 km (from Bowring's surface start: 3e-9 rad). The
    altitude formula
    ``p cos φ + z sin φ - a sqrt(1 - e² sin² φ)`` is well conditioned at all latitudes.

    Valid for points more than ~50 km from the geocentre and off the polar axis itself
    (where the longitude is undefined and comes back NaN).

    Args:
        x, y, z: (n,) contiguous ITRS coordinates, km.
        out: Optional (lat_rad, lon_rad, alt_km) float64 (n,) arrays for the results.

    Returns:
        lat_rad: (n,) geodetic latitude, rad.
        lon_rad: (n,) longitude, rad in [-π, π].
        alt_km: (n,) height above the ellipsoid, km.
    """
    lat_out, lon_out, alt_out = (None, None, None) if out is None else out
    p = x * x
    p += y * y
    r = z * z
    r += p
    np.sqrt(p, out=p)
    np.sqrt(r, out=r)
    # Starting point: tan φ0 = z / (p (1 - e² a / r)), exact for a sphere-like shell and
    # far better than Bowring's surface start at LEO heights; tan β0 = (1 - f) tan φ0.
    cb = WGS84_E2 * WGS84_A_KM / r
    np.subtract(1.0, cb, out=cb)
    cb *= p
    sb = (1.0 - WGS84_F) * z
    k = cb * cb
    k += sb * sb
    np.sqrt(k, out=k)
    cb /= k
    sb /= k
    # One Bowring step: tan φ = (z + e'² b sin³β) / (p - e² a cos³β).
    num = sb * sb
    num *= sb
    num *= WGS84_EP2 * WGS84_B_KM
    num += z
    den = cb * cb
    den *= cb
    den *= -WGS84_E2 * WGS84_A_KM
    den += p
    # den > 0 except within ~e²a = 43 km of the centre, so arctan needs no quadrant.
    lat_rad = np.divide(num, den, out=lat_out)
    np.arctan(lat_rad, out=lat_rad)
    hyp = num * num
    hyp += den * den
    np.sqrt(hyp, out=hyp)
    sin_lat = num / hyp
    cos_lat = den / hyp
    alt_km = np.multiply(sin_lat, sin_lat, out=alt_out)
    alt_km *= -WGS84_E2
    alt_km += 1.0
    np.sqrt(alt_km, out=alt_km)
    alt_km *= -WGS84_A_KM
    alt_km += p * cos_lat
    alt_km += z * sin_lat
    # Longitude by the half-angle formula, folded so the denominator never cancels:
    # λ0 = 2 atan(y / (p + |x|)) is the longitude of (|x|, y); mirror it when x < 0.
    lon_rad = np.abs(x, out=lon_out)
    lon_rad += p
    np.divide(y, lon_rad, out=lon_rad)
    np.arctan(lon_rad, out=lon_rad)
    lon_rad *= 2.0
    # Branch-free mirror (a masked ufunc costs 3x more): λ += [x < 0] (±π - 2 λ0).
    mirror = np.copysign(np.pi, y)
    mirror -= 2.0 * lon_rad
    mirror *= x < 0.0
    lon_rad += mirror
    return lat_rad, lon_rad, alt_km


def itrs_from_geodetic(lat_rad: np.ndarray, lon_rad: np.ndarray, alt_km: np.ndarray) -> np.ndarray:
    """Earth-fixed position of WGS84 geodetic coordinates.

    Args:
        lat_rad: (n,) geodetic latitude, rad.
        lon_rad: (n,) longitude, rad.
        alt_km: (n,) height above the ellipsoid, km.

    Returns:
        (n, 3) ITRS positions, km.
    """
    lat_rad, lon_rad, alt_km = np.broadcast_arrays(
        np.asarray(lat_rad, float), np.asarray(lon_rad, float), np.asarray(alt_km, float)
    )
    s = np.sin(lat_rad)
    c = np.cos(lat_rad)
    n_km = WGS84_A_KM / np.sqrt(1.0 - WGS84_E2 * s * s)  # prime-vertical radius
    return np.stack(
        (
            (n_km + alt_km) * c * np.cos(lon_rad),
            (n_km + alt_km) * c * np.sin(lon_rad),
            (n_km * (1.0 - WGS84_E2) + alt_km) * s,
        ),
        axis=-1,
    )


def sunlit_fraction(
    pos_gcrs_km: np.ndarray | None, sun_gcrs_km: np.ndarray, along_km: np.ndarray | None = None,
    r2_km2: np.ndarray | None = None, radius_km: float = R_EARTH_SHADOW_KM,
    r2_bounds_km2: tuple[float, float] | None = None,
) -> np.ndarray:
    """Fraction of the solar disk not hidden by the Earth, seen from each satellite.

    Conical shadow model (Montenbruck & Gill, Satellite Orbits, 3.4.2): the Sun and the
    Earth are disks on the satellite's sky with angular radii ρ_sun = asin(R_sun/|d|) and
    ρ_earth = asin(R_earth/|r|), separated by θ; the hidden part is the area of overlap
    of two circles (flat-sky formula; the Sun disk is 0.27°, so the curvature of the
    Earth's limb across it changes the fraction by < 1e-3). Earth radius
    `R_EARTH_SHADOW_KM` (WGS84 equatorial), Sun radius `R_SUN_KM`.

    Most satellites are classified without the cones: seen from the geocentre, a
    satellite at distance r whose distance from the shadow axis is p (behind the Earth,
    r·ŝ < 0) is in full sun when p >= R_E + c r and in umbra when p <= R_E - c r, with
    c = 0.006 >= ρ_sun + parallax + its square (sin(ρ_E ± δ) lies within δ of R_E/r); on
    the Sun's side (r·ŝ >= 0) it is in full sun. Both bounds hold for R_E + 10 km < r <
    1e5 km; the code uses the fleet's largest r in c r, a margin at least as wide. Only
    the rest, a band ~80 km wide around the shadow's edge (a few percent of a LEO fleet),
    goes through the conical formula, and the whole fleet does when any satellite lies
    outside those distances (or has no position).

    Args:
        pos_gcrs_km: (n, 3) satellite positions, geocentric GCRS, km; may be None when
            ``along_km`` and ``r2_km2`` are given with a (3,) Sun.
        sun_gcrs_km: (3,) or (n, 3) geocentric Sun position, GCRS, km.
        along_km: Optional (n,) r·ŝ, km (ŝ the unit Sun direction), when already at hand
            (only with a (3,) Sun).
        r2_km2: Optional (n,) |r|², km², likewise.
        radius_km: Radius of the occulting sphere, km (the bounds above hold for any
            radius from 6,000 to 6,500 km).
        r2_bounds_km2: Optional (smallest, largest) |r|² of the whole fleet, km², when
            these rows are a slice of it (``np.fmin.reduce`` and ``np.maximum.reduce`` of
            all its |r|²): the test and the margin are then the whole fleet's, so a slice's
            fractions are the bits of a whole-fleet call (twin.core.slices).

    Returns:
        (n,) float64: 1 in full sun, 0 in umbra, between in penumbra, and
        1 - (ρ_earth/ρ_sun)² in the annular case (Earth disk inside the Sun disk,
        never in LEO). NaN for NaN positions; 0 for a position inside the Earth.
    """
    sun = np.asarray(sun_gcrs_km, dtype=np.float64)
    if sun.ndim != 1:
        assert pos_gcrs_km is not None, "an (n, 3) Sun needs the positions"
        return _conical_fraction(pos_gcrs_km, sun, radius_km)
    sun_km = math.sqrt(float(sun @ sun))
    if along_km is None or r2_km2 is None:
        assert pos_gcrs_km is not None, "without r·ŝ and |r|², the positions are needed"
        if along_km is None:
            along_km = pos_gcrs_km @ (sun / sun_km)
        if r2_km2 is None:
            r2_km2 = rowdot(pos_gcrs_km, pos_gcrs_km)
    # A NaN row makes the maximum NaN, and a satellite outside the distances where the
    # bounds hold fails the test: the whole fleet then takes the exact path.
    if r2_bounds_km2 is None:
        r2_min, r2_max = float(np.fmin.reduce(r2_km2)), float(np.maximum.reduce(r2_km2))
    else:
        r2_min, r2_max = r2_bounds_km2
    if not (r2_min > (radius_km + 10.0) ** 2 and r2_max < _SURE_R2_MAX_KM2):
        if pos_gcrs_km is None:
            return _conical_from_dots(r2_km2, along_km * sun_km, sun_km * sun_km, radius_km)
        return _conical_fraction(pos_gcrs_km, sun, radius_km)
    margin_km = _SURE_MARGIN_PER_KM * math.sqrt(r2_max)  # one bound for the whole fleet
    # Distance from the shadow axis, less the Earth's radius, km.
    edge_km = np.multiply(along_km, along_km)
    np.subtract(r2_km2, edge_km, out=edge_km)
    np.sqrt(edge_km, out=edge_km)
    edge_km -= radius_km
    behind = along_km < 0.0
    lit = np.greater_equal(edge_km, margin_km)
    lit |= ~behind
    frac = lit.astype(np.float64)
    np.abs(edge_km, out=edge_km)
    unsure = np.less(edge_km, margin_km)
    unsure &= behind
    unsure = np.flatnonzero(unsure)
    if unsure.size:
        frac[unsure] = _conical_from_dots(r2_km2[unsure], along_km[unsure] * sun_km,
                                          sun_km * sun_km, radius_km, annular_possible=False)
    return frac


def shadow_stretch(atmosphere_km: float = 0.0) -> float:
    """k = (a + h) / (b + h): the stretch along the polar axis that maps the WGS84 ellipsoid,
    inflated by the shadow height ``atmosphere_km``, onto a sphere of radius a + h."""
    return (WGS84_A_KM + atmosphere_km) / (WGS84_B_KM + atmosphere_km)


def stretch_along_axis(vectors: np.ndarray, polar_axis: np.ndarray, stretch: float
                       ) -> np.ndarray:
    """v' = v + (k - 1) (v·p) p for (n, 3) or (3,) vectors and the unit polar axis p."""
    axis = np.asarray(polar_axis, dtype=np.float64)
    along_axis = vectors @ axis
    return vectors + (stretch - 1.0) * np.multiply.outer(along_axis, axis)


def ellipsoid_shadow_dots(
    pos_km: np.ndarray, sun_km: np.ndarray, polar_axis: np.ndarray,
    atmosphere_km: float = 0.0, r2_km2: np.ndarray | None = None,
    along_km: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The satellites and the Sun in the stretched space where the shadowing ellipsoid is a
    sphere (see `ellipsoid_sunlit_fraction`), as the dot products the shadow needs.

    Args: as `ellipsoid_sunlit_fraction`.

    Returns:
        ``(along_km, r2_km2, sun_km, radius_km)``: (n,) r'·ŝ' (km, ŝ' the unit stretched Sun
        direction), (n,) |r'|² (km², new arrays), the (3,) stretched Sun (km) and the
        sphere's radius a + h (km). The cylindrical shadow's edge of that sphere, the middle
        of the penumbra, is where r'·ŝ' < 0 and |r'|² - (r'·ŝ')² = radius².
    """
    axis = np.asarray(polar_axis, dtype=np.float64)
    axis = axis / math.sqrt(float(axis @ axis))
    stretch = shadow_stretch(atmosphere_km)
    sun = np.asarray(sun_km, dtype=np.float64)
    sun_polar_km = float(sun @ axis)
    sun_stretched = sun + (stretch - 1.0) * sun_polar_km * axis
    sun_stretched_km = math.sqrt(float(sun_stretched @ sun_stretched))
    if r2_km2 is None:
        r2_km2 = rowdot(pos_km, pos_km)
    # With z = r·p and k the stretch, r' = r + (k - 1) z p and s' = s + (k - 1) (s·p) p:
    # r'·s' = r·s + (k² - 1) (s·p) z and |r'|² = |r|² + (k² - 1) z². No stretched copy of
    # the positions is needed.
    polar_km = pos_km @ axis
    k2m1 = stretch * stretch - 1.0
    if along_km is None:
        along = pos_km @ sun
    else:
        along = np.multiply(along_km, math.sqrt(float(sun @ sun)), out=along_km)
    along += (k2m1 * sun_polar_km) * polar_km
    along /= sun_stretched_km
    polar_km *= polar_km
    polar_km *= k2m1
    polar_km += r2_km2
    return along, polar_km, sun_stretched, WGS84_A_KM + atmosphere_km


def shadow_edge_km(along_km: np.ndarray, perp2_km2: np.ndarray, radius_km: float
                   ) -> np.ndarray:
    """Signed distance to the cylindrical shadow's edge, km (negative inside), from r·ŝ
    (km) and r² - (r·ŝ)² (km²), any shape: sqrt(r² - min(r·ŝ, 0)²) + max(r·ŝ, 0) - R.

    Continuous through the edge and behind the Earth equal to the distance from the shadow
    axis less R; in the stretched space of `ellipsoid_shadow_dots` (with its radius) the
    edge is the middle of the ellipsoid's penumbra.
    """
    ahead = np.maximum(along_km, 0.0)
    edge = np.multiply(ahead, ahead)
    edge += perp2_km2  # r² - min(r·ŝ, 0)²
    np.maximum(edge, 0.0, out=edge)
    np.sqrt(edge, out=edge)
    edge += ahead
    edge -= radius_km
    return edge


def ellipsoid_sunlit_fraction(
    pos_km: np.ndarray, sun_km: np.ndarray, polar_axis: np.ndarray,
    atmosphere_km: float = 0.0, r2_km2: np.ndarray | None = None,
    along_km: np.ndarray | None = None,
) -> np.ndarray:
    """`sunlit_fraction` with the WGS84 ellipsoid, inflated by ``atmosphere_km``, as occulter.

    Stretching space by k = (a + h) / (b + h) along the polar axis turns the ellipsoid of
    semi-axes (a + h, a + h, b + h) into a sphere of radius a + h. The map is affine, so a
    straight line of sight from the satellite to any point of the Sun meets the ellipsoid
    exactly when its image meets the sphere: the stretched satellite and Sun then go
    through the conical model unchanged. What is approximate is only the Sun's disk, which
    the stretch flattens by at most k - 1 = 0.34 % (its angular radius is taken from the
    stretched distance): a shift of the penumbra edges of ~1e-5 rad, hundredths of a second.
    Cost: two matvecs over the fleet more than `sunlit_fraction`.

    Args:
        pos_km: (n, 3) satellite positions, geocentric, km, in any frame (GCRS here).
        sun_km: (3,) geocentric Sun position, km, same frame.
        polar_axis: (3,) the Earth's rotation axis in that frame (ITRS z: for GCRS, the
            last row of the GCRS-to-ITRS rotation). Normalised here.
        atmosphere_km: Shadow height of the atmosphere added to both semi-axes, km (0: the
            bare ellipsoid).
        r2_km2: Optional (n,) |r|², km², when already at hand.
        along_km: Optional (n,) r·ŝ, km (ŝ the unit Sun direction), likewise; overwritten.

    Returns:
        (n,) float64, as `sunlit_fraction`.
    """
    along, r2, sun_stretched, radius_km = ellipsoid_shadow_dots(
        pos_km, sun_km, polar_axis, atmosphere_km, r2_km2, along_km)
    return sunlit_fraction(None, sun_stretched, along, r2, radius_km=radius_km)


# `sunlit_fraction`'s classification without the cones: c = ρ_sun + parallax + margin
# (asin(695,700 / 1.47e8 km) = 0.00474 rad, parallax r / |s| < 7e-4 below 1e5 km).
_SURE_MARGIN_PER_KM = 0.006
_SURE_R2_MAX_KM2 = 1e5**2


def _conical_fraction(pos_gcrs_km: np.ndarray, sun_gcrs_km: np.ndarray,
                      radius_km: float = R_EARTH_SHADOW_KM) -> np.ndarray:
    """`sunlit_fraction` by the conical formula for every row: the exact path."""
    sun = np.asarray(sun_gcrs_km, dtype=np.float64)
    r2 = rowdot(pos_gcrs_km, pos_gcrs_km)
    if sun.ndim == 1:
        sr = pos_gcrs_km @ sun
        s2 = float(sun @ sun)
    else:
        sr = rowdot(pos_gcrs_km, sun)
        s2 = rowdot(sun, sun)
    return _conical_from_dots(r2, sr, s2, radius_km)


def _conical_from_dots(r2: np.ndarray, sr: np.ndarray, s2: np.ndarray | float,
                       radius_km: float = R_EARTH_SHADOW_KM,
                       annular_possible: bool = True) -> np.ndarray:
    """The conical formula from r·r, r·s (km², (m,)) and s·s (km², scalar or (m,)), for
    an occulting sphere of ``radius_km``.

    ``annular_possible=False`` skips the annular test, for satellites known to be closer
    than ~1.4e6 km (where the Earth's disk is always the larger).
    """
    # |s - r|² expanded: relative rounding ~1e-16 of |s|², i.e. metres at 1 au.
    d2 = r2 - 2.0 * sr
    d2 += s2
    r_km = np.sqrt(r2)
    d_km = np.sqrt(d2)
    sin_a = R_SUN_KM / d_km
    cos_a = 1.0 - sin_a * sin_a
    np.sqrt(cos_a, out=cos_a)
    sin_b = np.minimum(radius_km / r_km, 1.0)
    cos_b = 1.0 - sin_b * sin_b
    np.sqrt(cos_b, out=cos_b)
    # θ: angle at the satellite between the Sun (s - r) and the Earth's centre (-r).
    cos_c = r2 - sr
    cos_c /= d_km
    cos_c /= r_km
    cc = cos_a * cos_b
    ss = sin_a * sin_b
    lo = cc - ss  # cos(ρ_sun + ρ_earth)
    hi = cc + ss  # cos(|ρ_earth - ρ_sun|)
    frac = (cos_c <= lo).astype(np.float64)  # θ >= ρ_sun + ρ_earth: full sun
    # NaN compares False both ways, so NaN rows stay out of the penumbra set.
    partial = np.flatnonzero((cos_c > lo) & (cos_c < hi))
    if partial.size:
        a = np.arcsin(sin_a[partial])
        b = np.arcsin(sin_b[partial])
        # Clamps as minimum/maximum ufuncs: np.clip's Python wrapper costs 3x more here.
        c = np.arccos(_clamp_unit(cos_c[partial]))
        # Chord position x along the centre line, from the Sun's centre.
        x = (c * c + a * a - b * b) / (2.0 * c)
        y = np.sqrt(np.maximum(a * a - x * x, 0.0))
        overlap = (
            a * a * np.arccos(_clamp_unit(x / a))
            + b * b * np.arccos(_clamp_unit((c - x) / b))
            - c * y
        )
        overlap /= np.pi * a * a
        visible = np.subtract(1.0, overlap, out=overlap)
        np.maximum(visible, 0.0, out=visible)
        frac[partial] = np.minimum(visible, 1.0, out=visible)
    # The Earth's disk can only be smaller than the Sun's beyond ~1.4e6 km: skip the
    # annular test in the usual case (a NaN max also takes the careful path).
    if annular_possible and not r_km.max() < radius_km / sin_a.max():
        annular = np.flatnonzero((cos_c >= hi) & (sin_b < sin_a))
        ratio = np.arcsin(sin_b[annular]) / np.arcsin(sin_a[annular])
        frac[annular] = 1.0 - ratio * ratio
    # NaN in, NaN out (adding 0 * cos_c is cheaper than a masked assignment).
    frac += cos_c * 0.0
    return frac


def _clamp_unit(values: np.ndarray) -> np.ndarray:
    """``values`` clamped to [-1, 1] in place (NaN stays NaN), and returned."""
    np.minimum(values, 1.0, out=values)
    return np.maximum(values, -1.0, out=values)


def beta_angle_rad(
    pos_gcrs_km: np.ndarray, vel_gcrs_km_s: np.ndarray, sun_gcrs_km: np.ndarray
) -> np.ndarray:
    """Solar beta angle: elevation of the Sun above each orbit plane.

    β = asin(ŝ · ĥ) with h = r × v the orbit normal and ŝ the geocentric Sun direction;
    positive when the Sun is on the side of the angular momentum.

    Args:
        pos_gcrs_km: (n, 3) positions, GCRS, km.
        vel_gcrs_km_s: (n, 3) velocities, GCRS, km/s.
        sun_gcrs_km: (3,) or (n, 3) geocentric Sun position, GCRS, km.

    Returns:
        (n,) beta angle, rad in [-π/2, π/2]; NaN for NaN rows.
    """
    s_hat = unit(np.asarray(sun_gcrs_km, dtype=np.float64))
    # Contiguous component rows: the cross product by columns is then ~9 cheap ops.
    x, y, z = np.ascontiguousarray(pos_gcrs_km.T)
    vx, vy, vz = np.ascontiguousarray(vel_gcrs_km_s.T)
    return beta_angle_from_rows(x, y, z, vx, vy, vz, s_hat)


def beta_angle_from_rows(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, vx: np.ndarray, vy: np.ndarray,
    vz: np.ndarray, s_hat: np.ndarray,
) -> np.ndarray:
    """`beta_angle_rad` from contiguous (n,) component rows and the unit Sun direction
    ``s_hat`` ((3,) or (n, 3)); returns a new (n,) array, rad."""
    hx = y * vz
    hx -= z * vy
    hy = z * vx
    hy -= x * vz
    hz = x * vy
    hz -= y * vx
    if s_hat.ndim == 1:
        s_dot_h = hx * s_hat[0]
        s_dot_h += hy * s_hat[1]
        s_dot_h += hz * s_hat[2]
    else:
        s_dot_h = hx * s_hat[:, 0]
        s_dot_h += hy * s_hat[:, 1]
        s_dot_h += hz * s_hat[:, 2]
    # β = atan(s·h / sqrt(|h|² - (s·h)²)): arctan is ~2x cheaper than arcsin here.
    hx *= hx
    hx += hy * hy
    hx += hz * hz
    hx -= s_dot_h * s_dot_h
    np.maximum(hx, 1e-300, out=hx)  # rounding may make it -0 when the Sun is on the normal
    np.sqrt(hx, out=hx)
    np.divide(s_dot_h, hx, out=s_dot_h)
    return np.arctan(s_dot_h, out=s_dot_h)

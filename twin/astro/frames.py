"""Frame rotations TEME→GCRS→ITRS, Earth angles and TT/TDB dates for one UTC instant."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from sgp4.api import jday
from skyfield.api import load
from skyfield.framelib import itrs
from skyfield.sgp4lib import TEME, theta_GMST1982
from skyfield.timelib import Time, Timescale

TAU = 2.0 * math.pi
DAY_S = 86400.0
# IERS conventional Earth rotation rate, rad/s (same value skyfield uses for ITRS velocity).
EARTH_ROTATION_RAD_S = 7.2921150e-5

# Width of the anchor grid, days. Precession-nutation (and UT1-UTC, TDB-TT) are
# interpolated linearly between anchors one hour apart; the fastest nutation term
# with a sizeable amplitude (13.66 d, 0.2") then errs by ~5e-11 rad, i.e. < 0.4 mm at
# 7000 km (tests/test_orbit.py checks < 1 mm against skyfield at every step).
# Anchors sit on whole UTC hours so an interval never straddles a leap second.
ANCHOR_STEP_DAYS = 1.0 / 24.0
_MAX_ANCHORS = 256


@dataclass(frozen=True, slots=True)
class FrameState:
    """Everything frame-related the twin needs at one instant.

    Matrices act on column vectors: ``v_gcrs = teme_to_gcrs @ v_teme``. For (n, 3)
    row arrays use `rotate` (``pos @ R.T``).

    Attributes:
        teme_to_gcrs: (3, 3) rotation TEME → GCRS (skyfield ``TEME.rotation_at(t).T``).
        gcrs_to_itrs: (3, 3) rotation GCRS → ITRS (skyfield ``itrs.rotation_at(t)``;
            no polar motion, as with skyfield's builtin timescale).
        teme_to_itrs: (3, 3) rotation TEME → ITRS (= rot_z(-GMST1982)).
        gast_rad: Greenwich apparent sidereal time, rad in [0, 2π): rotate the Earth
            texture by this about the true-of-date pole.
        era_rad: Earth rotation angle (IAU 2000), rad in [0, 2π).
        jd_tt_whole: TT Julian date, whole part, days.
        jd_tt_frac: TT Julian date, fraction, days.
        jd_tdb_whole: TDB Julian date, whole part, days (for the ephemeris).
        jd_tdb_frac: TDB Julian date, fraction, days.
    """

    teme_to_gcrs: np.ndarray
    gcrs_to_itrs: np.ndarray
    teme_to_itrs: np.ndarray
    gast_rad: float
    era_rad: float
    jd_tt_whole: float
    jd_tt_frac: float
    jd_tdb_whole: float
    jd_tdb_frac: float


def _rot_z(angle_rad: float) -> np.ndarray:
    """Rotation matrix about z (skyfield's ``rot_z`` convention)."""
    c = math.cos(angle_rad)
    s = math.sin(angle_rad)
    return np.array(((c, -s, 0.0), (s, c, 0.0), (0.0, 0.0, 1.0)))


def _wrap_pi(angle_rad: float) -> float:
    """Wrap an angle into [-π, π)."""
    return (angle_rad + math.pi) % TAU - math.pi


def jd_utc_from_datetime(dt: datetime) -> tuple[float, float]:
    """Split a datetime into (whole, fraction) Julian date UTC.

    Args:
        dt: Aware datetime (converted to UTC) or naive datetime taken as UTC.

    Returns:
        Julian date UTC as (whole, fraction) days.
    """
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC)
    sec = dt.second + dt.microsecond * 1e-6
    return jday(dt.year, dt.month, dt.day, dt.hour, dt.minute, sec)


def rotate(vec: np.ndarray, rotation: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Rotate row vectors: one (n, 3) @ (3, 3) matmul.

    Args:
        vec: (n, 3) vectors (any unit; it is kept), or (3,).
        rotation: (3, 3) matrix acting on column vectors (a `FrameState` field).
        out: Optional (n, 3) output buffer.

    Returns:
        (n, 3) rotated vectors, same unit.
    """
    return np.matmul(vec, rotation.T, out=out)


def teme_to_gcrs(vec_teme: np.ndarray, frames: FrameState) -> np.ndarray:
    """Rotate (n, 3) TEME vectors (km or km/s) into GCRS."""
    return np.matmul(vec_teme, frames.teme_to_gcrs.T)


def gcrs_to_itrs(vec_gcrs: np.ndarray, frames: FrameState) -> np.ndarray:
    """Rotate (n, 3) GCRS vectors into ITRS (no Earth-rotation velocity term)."""
    return np.matmul(vec_gcrs, frames.gcrs_to_itrs.T)


def teme_to_itrs(vec_teme: np.ndarray, frames: FrameState) -> np.ndarray:
    """Rotate (n, 3) TEME vectors into ITRS (no Earth-rotation velocity term)."""
    return np.matmul(vec_teme, frames.teme_to_itrs.T)


def itrs_velocity_km_s(
    pos_itrs_km: np.ndarray, vel_teme_km_s: np.ndarray, frames: FrameState,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Earth-fixed velocity: the TEME velocity rotated into ITRS, minus ω × r.

    (The same as rotating the GCRS velocity with ``gcrs_to_itrs``: the two rotation chains
    agree to 1e-14.)

    Args:
        pos_itrs_km: (n, 3) ITRS positions, km.
        vel_teme_km_s: (n, 3) TEME velocities, km/s (SGP4's).
        frames: Frame state of the same instant.
        out: Optional (n, 3) float64 output buffer.

    Returns:
        (n, 3) ITRS velocities, km/s.
    """
    vel = np.matmul(vel_teme_km_s, frames.teme_to_itrs.T, out=out)
    # ω × r with ω = (0, 0, w): (-w y, w x, 0)
    vel[:, 0] += EARTH_ROTATION_RAD_S * pos_itrs_km[:, 1]
    vel[:, 1] -= EARTH_ROTATION_RAD_S * pos_itrs_km[:, 0]
    return vel


@dataclass(frozen=True, slots=True)
class _Anchor:
    """Slow quantities at one anchor instant, exact from skyfield."""

    precession_nutation: np.ndarray  # (3, 3) skyfield ``t.M`` (GCRS → true of date)
    precession_nutation_flat: tuple[float, ...]  # the same, row-major, as Python floats
    gast_minus_gmst82_rad: float  # equation of equinoxes + GMST model differences
    ut1_minus_utc_days: float
    tt_minus_utc_days: float
    tdb_minus_utc_days: float


class FrameRotations:
    """Frame rotations per step, from skyfield's models at a fraction of their cost.

    Skyfield builds precession-nutation from scratch per Time (~0.3 ms). Only the Earth
    rotation is fast, so skyfield is evaluated on whole UTC hours (anchors, cached), the
    slow parts are interpolated linearly and the fast rotation is evaluated exactly.
    """

    def __init__(self, ts: Timescale | None = None) -> None:
        """Args:
        ts: Skyfield timescale; default ``load.timescale(builtin=True)`` (no download).
        """
        self.ts: Timescale = ts if ts is not None else load.timescale(builtin=True)
        self._anchors: dict[int, _Anchor] = {}

    def time_jd_utc(self, jd_whole: float, jd_frac: float) -> Time:
        """Skyfield Time for a UTC Julian date, the split being kept.

        The result satisfies ``t.whole + t.tai_fraction - leap/86400 == jd_whole + jd_frac``
        exactly as skyfield feeds SGP4.
        """
        # Private helper, but it is the very conversion skyfield's own ts.utc() uses.
        return self.ts._utc_jd(jd_whole, jd_frac)

    def exact_at_jd_utc(self, jd_whole: float, jd_frac: float) -> FrameState:
        """Frame state straight from skyfield, no caching (reference path, ~0.5 ms)."""
        t = self.time_jd_utc(jd_whole, jd_frac)
        r_teme = TEME.rotation_at(t)  # GCRS → TEME
        r_itrs = itrs.rotation_at(t)
        gmst82, _ = theta_GMST1982(t.whole, t.ut1_fraction)
        return FrameState(
            teme_to_gcrs=np.ascontiguousarray(r_teme.T),
            gcrs_to_itrs=r_itrs,
            teme_to_itrs=_rot_z(-gmst82),
            gast_rad=float(t.gast) / 24.0 * TAU,
            era_rad=_era_rad(t.whole, t.ut1_fraction),
            jd_tt_whole=float(t.whole),
            jd_tt_frac=float(t.tt_fraction),
            jd_tdb_whole=float(t.whole),
            jd_tdb_frac=float(t.tdb_fraction),
        )

    def _anchor(self, hour: int) -> _Anchor:
        """Exact slow quantities on the UTC hour ``hour`` (hours since JD 0), cached."""
        anchor = self._anchors.get(hour)
        if anchor is not None:
            return anchor
        if len(self._anchors) >= _MAX_ANCHORS:
            self._anchors.clear()
        # Anchors k and k+1 come in one vectorized skyfield call: ~ the cost of one.
        # Integer split first: hours / 24 as one float would lose ~20 µs of time.
        whole = np.array([(hour + k) // 24 for k in (0, 1)], dtype=np.float64)
        frac = np.array([(hour + k) % 24 for k in (0, 1)], dtype=np.float64) / 24.0
        t = self.time_jd_utc(whole, frac)
        gmst82, _ = theta_GMST1982(t.whole, t.ut1_fraction)
        gast = t.gast / 24.0 * TAU
        m = t.M
        for k in range(2):
            self._anchors[hour + k] = _Anchor(
                precession_nutation=np.ascontiguousarray(m[:, :, k]),
                precession_nutation_flat=tuple(m[:, :, k].ravel().tolist()),
                gast_minus_gmst82_rad=_wrap_pi(float(gast[k] - gmst82[k])),
                ut1_minus_utc_days=float((t.whole[k] - whole[k]) + (t.ut1_fraction[k] - frac[k])),
                tt_minus_utc_days=float((t.whole[k] - whole[k]) + (t.tt_fraction[k] - frac[k])),
                tdb_minus_utc_days=float((t.whole[k] - whole[k]) + (t.tdb_fraction[k] - frac[k])),
            )
        return self._anchors[hour]

    def at_jd_utc(self, jd_whole: float, jd_frac: float) -> FrameState:
        """Frame state for a UTC instant (the same split Julian date as `Propagator`).

        Args:
            jd_whole: Julian date UTC, whole part, days.
            jd_frac: Julian date UTC, fraction, days.

        Returns:
            The frame state; within 1 mm at 7000 km of `exact_at_jd_utc`.
        """
        # Hours since JD 0, split so the sub-hour part keeps full precision.
        w_hours = jd_whole * 24.0
        f_hours = jd_frac * 24.0
        hour = math.floor(w_hours) + math.floor(f_hours + (w_hours - math.floor(w_hours)))
        u = (w_hours - hour) + f_hours  # position inside the hour, [0, 1)
        a0 = self._anchor(hour)
        a1 = self._anchors.get(hour + 1) or self._anchor(hour + 1)
        # Plain floats from here to the end: each small numpy operation on a 3x3 costs
        # a microsecond or more, and the step calls this once, right after SGP4 has
        # pushed the interpreter's working set out of the cache.
        m = [p0 + u * (p1 - p0) for p0, p1 in
             zip(a0.precession_nutation_flat, a1.precession_nutation_flat, strict=True)]
        ut1_frac = (
            jd_frac + a0.ut1_minus_utc_days + u * (a1.ut1_minus_utc_days - a0.ut1_minus_utc_days)
        )
        gmst82, _ = theta_GMST1982(jd_whole, ut1_frac)
        d_gast = a0.gast_minus_gmst82_rad + u * (
            a1.gast_minus_gmst82_rad - a0.gast_minus_gmst82_rad
        )
        gast = (gmst82 + d_gast) % TAU
        tt_frac = jd_frac + a0.tt_minus_utc_days + u * (a1.tt_minus_utc_days - a0.tt_minus_utc_days)
        tdb_frac = (
            jd_frac + a0.tdb_minus_utc_days + u * (a1.tdb_minus_utc_days - a0.tdb_minus_utc_days)
        )
        # TEME → GCRS is (rot_z(gmst82 - gast) @ M).T, as in skyfield's TEME frame, and
        # GCRS → ITRS is rot_z(-gast) @ M; rot_z(-a) @ M mixes M's first two rows only.
        c, s = math.cos(gmst82), math.sin(gmst82)
        rotations = np.array((
            _rot_z_neg_times(d_gast, m), _rot_z_neg_times(gast, m),
            (c, s, 0.0, -s, c, 0.0, 0.0, 0.0, 1.0),  # rot_z(-gmst82): TEME → ITRS
        )).reshape(3, 3, 3)
        return FrameState(
            teme_to_gcrs=rotations[0].T,
            gcrs_to_itrs=rotations[1],
            teme_to_itrs=rotations[2],
            gast_rad=gast,
            era_rad=_era_rad(jd_whole, ut1_frac),
            jd_tt_whole=jd_whole,
            jd_tt_frac=tt_frac,
            jd_tdb_whole=jd_whole,
            jd_tdb_frac=tdb_frac,
        )

    def at_datetime(self, dt: datetime) -> FrameState:
        """Frame state for a datetime (naive = UTC). See `at_jd_utc`."""
        return self.at_jd_utc(*jd_utc_from_datetime(dt))


def _rot_z_neg_times(angle_rad: float, m: list[float]) -> tuple[float, ...]:
    """``_rot_z(-angle_rad) @ M`` for a row-major 3x3 ``m`` (9 floats), as 9 floats."""
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    return (c * m[0] + s * m[3], c * m[1] + s * m[4], c * m[2] + s * m[5],
            c * m[3] - s * m[0], c * m[4] - s * m[1], c * m[5] - s * m[2],
            m[6], m[7], m[8])


def _era_rad(jd_ut1_whole: float, jd_ut1_frac: float) -> float:
    """Earth rotation angle (IERS 2010 eq. 5.15), rad in [0, 2π)."""
    tu = (jd_ut1_whole - 2451545.0) + jd_ut1_frac
    turns = 0.7790572732640 + 0.00273781191135448 * tu + jd_ut1_whole % 1.0 + jd_ut1_frac % 1.0
    return (turns % 1.0) * TAU

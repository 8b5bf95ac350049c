"""Geocentric Sun position from the bundled JPL DE421 ephemeris, via raw jplephem segments."""

from __future__ import annotations

import math
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from jplephem.spk import SPK


def de421_path() -> Path:
    """Path of ``de421.bsp`` shipped by the skyfield-data package (no download)."""
    with warnings.catch_warnings():
        # skyfield-data warns about its Earth-orientation file at every call; the twin
        # only uses the planetary ephemeris, which does not expire.
        warnings.filterwarnings(
            "ignore", message="The file finals2000A.all has expired", category=RuntimeWarning
        )
        from skyfield_data import get_skyfield_data_path

        return Path(get_skyfield_data_path()) / "de421.bsp"


# DE421's three segments cover 1899-07-29 00:00 to 2053-10-09 00:00 TDB (tests/test_clock_bounds.py
# reads the kernel to check). The twin's usable range is a day inside each end: TDB runs
# ~69 s ahead of UTC, and both the Sun's and the frames' interpolation read the whole hour
# after the instant they serve.
EPHEMERIS_START_UTC = datetime(1899, 7, 30, tzinfo=UTC)
"""First instant the twin can compute the Sun for (DE421, with a day's margin)."""
EPHEMERIS_END_UTC = datetime(2053, 10, 8, tzinfo=UTC)
"""Last instant the twin can compute the Sun for (DE421 ends 2053-10-09, a day's margin)."""
EPHEMERIS_START_T_UTC = EPHEMERIS_START_UTC.timestamp()
"""`EPHEMERIS_START_UTC` as Unix seconds, comparable with ``SimClock.t_utc``."""
EPHEMERIS_END_T_UTC = EPHEMERIS_END_UTC.timestamp()
"""`EPHEMERIS_END_UTC` as Unix seconds, comparable with ``SimClock.t_utc``."""


def ephemeris_covers(t_utc: float) -> bool:
    """Whether the twin can step at ``t_utc`` (Unix seconds, as ``SimClock.t_utc``).

    Cheap enough to call before every step with the time the step will reach.
    """
    return EPHEMERIS_START_T_UTC <= t_utc <= EPHEMERIS_END_T_UTC


def ephemeris_wall_s_left(t_utc: float, warp: float) -> float:
    """Wall seconds until a run at ``warp`` from ``t_utc`` reaches `EPHEMERIS_END_UTC`.

    Args:
        t_utc: Simulation time now, Unix seconds.
        warp: Simulated seconds per wall second (> 0).

    Returns:
        Wall seconds, 0 when already past the end.
    """
    return max(0.0, EPHEMERIS_END_T_UTC - t_utc) / warp


def ephemeris_warning(t_utc: float, warp: float, horizon_wall_s: float = 86400.0) -> str | None:
    """A sentence for the operator when the ephemeris ends within ``horizon_wall_s`` at ``warp``.

    The server can call it at every warp change and log or reply with it; None when the
    end is further away than the horizon (default a wall day).
    """
    wall_s = ephemeris_wall_s_left(t_utc, warp)
    if wall_s > horizon_wall_s:
        return None
    end = EPHEMERIS_END_UTC.strftime("%Y-%m-%d %H:%M")
    left = (f"{wall_s / 3600.0:.1f} wall hours" if wall_s >= 3600.0
            else f"{wall_s:.0f} wall seconds")
    return (f"at warp {warp:g} the Sun ephemeris (DE421) ends in {left} ({end} UTC); the"
            " twin stops stepping there")


def ephemeris_range_text() -> str:
    """The covered range for messages: ``"1899-07-30 to 2053-10-08 UTC"``."""
    return (f"{EPHEMERIS_START_UTC:%Y-%m-%d} to {EPHEMERIS_END_UTC:%Y-%m-%d} UTC")


# Cubic Hermite interpolation between exact positions+velocities one TDB hour apart:
# the error bound h^4/384 * |d4x/dt4| is ~1e-7 km for the Sun (Earth's orbital
# acceleration 6e-6 km/s^2 at 2e-7 rad/s; the Moon's pull on the Earth even less).
_ANCHOR_STEP_DAYS = 1.0 / 24.0
_MAX_ANCHORS = 256


class SunEphemeris:
    """Geometric geocentric Sun vector in GCRS (ICRF axes), km.

    Skyfield's ``(sun - earth).at(t)`` costs ~0.6 ms in Python bookkeeping; the three
    raw Chebyshev segments (Sun − Earth = (SSB→Sun) − (SSB→EMB) − (EMB→Earth)) ~0.2 ms
    here. `gcrs_km` goes further: it evaluates them on whole TDB hours only (cached)
    and interpolates (cubic Hermite, < 1 m error), a few µs per call.
    Geometric (no light time, no aberration): the shadow geometry wants where the Sun is.

    DE421 covers 1899-07-29 to 2053-10-09; outside, jplephem raises ValueError. Check
    the run's time span at startup with `covers`.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        """Open the kernel once.

        Args:
            path: A DE-series ``.bsp``; default DE421 from skyfield-data.
        """
        self._kernel = SPK.open(str(path if path is not None else de421_path()))
        self._segments = (self._kernel[0, 10], self._kernel[0, 3], self._kernel[3, 399])
        self.jd_tdb_start: float = max(s.start_jd for s in self._segments)
        self.jd_tdb_end: float = min(s.end_jd for s in self._segments)
        # hour index -> (4, 3) [pos0, vel0*h, pos1, vel1*h] (km) for that hour's interval.
        self._hermite: dict[int, np.ndarray] = {}

    def covers(self, jd_tdb: float) -> bool:
        """Whether the ephemeris covers the TDB Julian date ``jd_tdb``."""
        return self.jd_tdb_start <= jd_tdb <= self.jd_tdb_end

    def gcrs_km_exact(
        self, jd_tdb_whole: float | np.ndarray, jd_tdb_frac: float | np.ndarray = 0.0
    ) -> np.ndarray:
        """Geocentric Sun position straight from the Chebyshev segments.

        Args:
            jd_tdb_whole: TDB Julian date, whole part (scalar or (m,) array), days.
            jd_tdb_frac: TDB Julian date, fraction (same shape), days.

        Returns:
            (3,) float64 km for scalar dates, (m, 3) for arrays.
        """
        ssb_sun, ssb_emb, emb_earth = self._segments
        sun = ssb_sun.compute(jd_tdb_whole, jd_tdb_frac)
        sun -= ssb_emb.compute(jd_tdb_whole, jd_tdb_frac)
        sun -= emb_earth.compute(jd_tdb_whole, jd_tdb_frac)
        return sun if sun.ndim == 1 else np.ascontiguousarray(sun.T)

    def _hermite_nodes(self, hour: int) -> np.ndarray:
        """Exact [pos, vel·h] at the start and end of TDB hour ``hour``, cached."""
        nodes = self._hermite.get(hour)
        if nodes is not None:
            return nodes
        if len(self._hermite) >= _MAX_ANCHORS:
            self._hermite.clear()
        # Integer split first: hours / 24 as one float would lose ~20 µs of time.
        whole = np.array([(hour + k) // 24 for k in (0, 1)], dtype=np.float64)
        frac = np.array([(hour + k) % 24 for k in (0, 1)], dtype=np.float64) / 24.0
        pos = np.zeros((3, 2))
        vel = np.zeros((3, 2))
        for sign, seg in zip((1.0, -1.0, -1.0), self._segments, strict=True):
            p, v = seg.compute_and_differentiate(whole, frac)  # km, km/day
            pos += sign * p
            vel += sign * v
        vel *= _ANCHOR_STEP_DAYS  # Hermite wants d/du, u = fraction of the hour
        nodes = np.stack((pos[:, 0], vel[:, 0], pos[:, 1], vel[:, 1]))
        self._hermite[hour] = nodes
        return nodes

    def gcrs_km(self, jd_tdb_whole: float, jd_tdb_frac: float = 0.0) -> np.ndarray:
        """Geocentric Sun position for one instant (cached Hermite interpolation).

        Within 1 m of `gcrs_km_exact` (tests/test_orbit.py).

        Args:
            jd_tdb_whole: TDB Julian date, whole part, days.
            jd_tdb_frac: TDB Julian date, fraction, days.

        Returns:
            (3,) float64 geocentric Sun position, GCRS, km.
        """
        # Hours since JD 0, split so the sub-hour part keeps full precision.
        w_hours = jd_tdb_whole * 24.0
        f_hours = jd_tdb_frac * 24.0
        w_floor = math.floor(w_hours)
        hour = w_floor + math.floor(f_hours + (w_hours - w_floor))
        u = (w_hours - hour) + f_hours
        u2 = u * u
        u3 = u2 * u
        h01 = 3.0 * u2 - 2.0 * u3
        basis = np.array((1.0 - h01, u3 - 2.0 * u2 + u, h01, u3 - u2))
        return basis @ self._hermite_nodes(hour)

    def close(self) -> None:
        """Release the memory-mapped kernel (or use the object as a context manager)."""
        self._kernel.close()

    def __enter__(self) -> SunEphemeris:
        """Context-manager entry: the ephemeris itself."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Context-manager exit: close the kernel."""
        self.close()

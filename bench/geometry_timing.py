"""Per-function cost of the twin's orbital geometry step on the real Starlink catalog.

Run: ``.venv/bin/python bench/geometry_timing.py``. Each function is timed over 16
different instants in turn: timing one input over and over lets the CPU's branch
predictor learn the branchy libm calls (arcsin, arctan) and under-reports them ~3x.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from twin.astro.contacts import ContactTracker, GroundStations
from twin.astro.frames import FrameRotations, rotate
from twin.astro.geometry import beta_angle_rad, geodetic_from_itrs, sunlit_fraction
from twin.astro.propagate import Propagator, read_tle_file
from twin.astro.sun import SunEphemeris

TLE = Path(__file__).resolve().parents[1] / "assets/tle/starlink-2023-07-18.tle"
JD_WHOLE = 2460144.5  # 2023-07-19 00:00 UTC, a day after the catalog epoch
N_STATES = 16
STATE_SPACING_DAYS = 600.0 / 86400.0
STEP_DAYS = 10.0 / 86400.0


def per_call_us(fn: Callable[[int], object], calls: int = 160) -> float:
    """Best-of-5 mean wall time per call in µs; ``fn`` gets the state index to use."""
    best = float("inf")
    for _ in range(5):
        states = itertools.cycle(range(N_STATES))
        t0 = time.perf_counter()
        for _ in range(calls):
            fn(next(states))
        best = min(best, (time.perf_counter() - t0) / calls)
    return best * 1e6


def main() -> None:
    """Time each stage on 4,428 satellites and 8 stations, then the whole chain."""
    _, sats = read_tle_file(TLE)
    prop = Propagator(sats)
    frames = FrameRotations()
    sun_eph = SunEphemeris()
    stations = GroundStations(
        np.array([47.0, 64.8, -33.9, 19.8, 52.2, 35.4, -23.7, 78.2]),
        np.array([8.0, -147.5, 18.4, -155.5, 4.4, 139.3, 133.9, 15.4]),
        np.zeros(8),
        np.full(8, 25.0),
    )
    tracker = ContactTracker()

    fracs = [k * STATE_SPACING_DAYS for k in range(N_STATES)]
    st = []
    for f in fracs:
        pos, vel, _status = prop.propagate(JD_WHOLE, f)
        fs = frames.at_jd_utc(JD_WHOLE, f)
        pos_g, vel_g = rotate(pos, fs.teme_to_gcrs), rotate(vel, fs.teme_to_gcrs)
        pos_i = rotate(pos, fs.teme_to_itrs)
        sun = sun_eph.gcrs_km(fs.jd_tdb_whole, fs.jd_tdb_frac)
        el, _ = stations.look(pos_i)
        st.append((pos, vel, fs, pos_g, vel_g, pos_i, sun, el, stations.in_contact(el)))
    step = {"k": 0}

    def chain(_: int) -> None:
        # The engine's sequence, advancing 10 s per call so caches behave as in a run.
        step["k"] += 1
        f = step["k"] * STEP_DAYS
        p, v, _status = prop.propagate(JD_WHOLE, f)
        s = frames.at_jd_utc(JD_WHOLE, f)
        pg = rotate(p, s.teme_to_gcrs)
        vg = rotate(v, s.teme_to_gcrs)
        pi = rotate(p, s.teme_to_itrs)
        geodetic_from_itrs(pi)
        sv = sun_eph.gcrs_km(s.jd_tdb_whole, s.jd_tdb_frac)
        sunlit_fraction(pg, sv)
        beta_angle_rad(pg, vg, sv)
        e, _ = stations.look(pi)
        tracker.update(stations.in_contact(e))

    rows: list[tuple[str, Callable[[int], object]]] = [
        ("Propagator.propagate (bare SGP4 = 1x)", lambda i: prop.propagate(JD_WHOLE, fracs[i])),
        (
            "FrameRotations.at_jd_utc (cached)",
            lambda i: frames.at_jd_utc(JD_WHOLE, fracs[i] + 1e-4),
        ),
        (
            "  (reference: exact_at_jd_utc, skyfield)",
            lambda i: frames.exact_at_jd_utc(JD_WHOLE, fracs[i]),
        ),
        (
            "rotate x3 (pos, vel -> GCRS; pos -> ITRS)",
            lambda i: (
                rotate(st[i][0], st[i][2].teme_to_gcrs),
                rotate(st[i][1], st[i][2].teme_to_gcrs),
                rotate(st[i][0], st[i][2].teme_to_itrs),
            ),
        ),
        ("geodetic_from_itrs", lambda i: geodetic_from_itrs(st[i][5])),
        (
            "SunEphemeris.gcrs_km (cached)",
            lambda i: sun_eph.gcrs_km(st[i][2].jd_tdb_whole, st[i][2].jd_tdb_frac),
        ),
        (
            "  (reference: gcrs_km_exact, 3 segments)",
            lambda i: sun_eph.gcrs_km_exact(st[i][2].jd_tdb_whole, st[i][2].jd_tdb_frac),
        ),
        ("sunlit_fraction", lambda i: sunlit_fraction(st[i][3], st[i][6])),
        ("beta_angle_rad", lambda i: beta_angle_rad(st[i][3], st[i][4], st[i][6])),
        ("GroundStations.look (8 stations)", lambda i: stations.look(st[i][5])),
        ("GroundStations.in_contact", lambda i: stations.in_contact(st[i][7])),
        ("ContactTracker.update", lambda i: tracker.update(st[i][8])),
        ("whole chain (SGP4 + all of the above)", chain),
    ]
    n_bad = int(sum((s[0][:, 0] != s[0][:, 0]).sum() for s in st))
    print(
        f"{prop.n_sats} satellites, {stations.n_stations} stations; {n_bad} NaN rows over "
        f"{N_STATES} instants"
    )
    base = None
    extra = 0.0
    for name, fn in rows:
        us = per_call_us(fn, 32 if "propagate" in name or "chain" in name else 160)
        base = us if base is None else base
        if not name.startswith((" ", "whole", "Propagator")):
            extra += us
        print(f"{name:44s} {us:9.1f} us  {us / base:6.3f} x SGP4")
    print(
        f"{'sum of geometry rows (no references)':44s} {extra:9.1f} us  {extra / base:6.3f} x SGP4"
    )


if __name__ == "__main__":
    main()

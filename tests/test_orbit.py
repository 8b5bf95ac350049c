"""Orbit geometry of the whole real Starlink catalog against skyfield as the reference."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from sgp4.api import WGS72, Satrec
from skyfield.api import EarthSatellite, load, load_file, wgs84
from skyfield.framelib import itrs
from skyfield.sgp4lib import TEME

from twin.astro.frames import FrameRotations, itrs_velocity_km_s, jd_utc_from_datetime, rotate
from twin.astro.geometry import geodetic_from_itrs, itrs_from_geodetic
from twin.astro.propagate import STATUS_NAMES, STATUS_OK, Propagator, read_tle_file
from twin.astro.sun import SunEphemeris, de421_path
from twin.core.clock import SimClock
from twin.core.subsystem import EventLog, StepContext
from twin.models.orbit import OrbitModel
from twin.scenario import load_scenario

TLE = Path(__file__).resolve().parents[1] / "assets/tle/starlink-2023-07-18.tle"

one_metre_km = 1e-3
one_mm_km = 1e-6
one_mm_s_km_s = 1e-6
one_km = 1.0
geodetic_vs_skyfield_rad = 1e-8  # skyfield's own latitude iteration stops near 1e-10
roundtrip_rad = 1e-12
roundtrip_km = 1e-8  # 10 µm
leo_radius_km = 7000.0

# A few instants around the catalog epochs (2023-07-17/18), UTC.
CHECK_TIMES = [
    (2023, 7, 17, 6, 0, 0.0),
    (2023, 7, 18, 18, 30, 15.5),
    (2023, 7, 20, 3, 7, 59.25),
]


@pytest.fixture(scope="module")
def ts():
    return load.timescale(builtin=True)


@pytest.fixture(scope="module")
def catalog(ts):
    _, sats = read_tle_file(TLE)
    return sats, [EarthSatellite.from_satrec(s, ts) for s in sats]


def split_jd_utc(t) -> tuple[float, float]:
    """The UTC Julian date exactly as skyfield hands it to SGP4."""
    return float(t.whole), float(t.tai_fraction - t._leap_seconds() / 86400.0)


def test_catalog_positions_velocities_match_skyfield(ts, catalog):
    sats, earth_sats = catalog
    assert len(sats) == 4428
    prop = Propagator(sats)
    frames = FrameRotations(ts)
    checked = 0
    for when in CHECK_TIMES:
        t = ts.utc(*when)
        jd_w, jd_f = split_jd_utc(t)
        pos, vel, status = prop.propagate(jd_w, jd_f)
        fs = frames.at_jd_utc(jd_w, jd_f)
        pos_g = rotate(pos, fs.teme_to_gcrs)
        vel_g = rotate(vel, fs.teme_to_gcrs)
        pos_i = rotate(pos, fs.teme_to_itrs)
        geos = [s.at(t) for s in earth_sats]
        ref_g = np.array([g.position.km for g in geos])
        ref_v = np.array([g.velocity.km_per_s for g in geos])
        ref_i = np.array([g.frame_xyz(itrs).km for g in geos])
        ok = status == STATUS_OK
        assert ok.sum() > 4300
        # Failed satellites: NaN on both sides.
        assert np.isnan(pos_g[~ok]).all() and np.isnan(ref_g[~ok]).all()
        assert np.abs(pos_g[ok] - ref_g[ok]).max() < one_metre_km
        assert np.abs(vel_g[ok] - ref_v[ok]).max() < one_mm_s_km_s
        assert np.abs(pos_i[ok] - ref_i[ok]).max() < one_metre_km
        # ITRS reached through GCRS agrees with the direct TEME→ITRS rotation.
        assert np.abs(rotate(pos_g, fs.gcrs_to_itrs)[ok] - pos_i[ok]).max() < one_mm_km
        checked += int(ok.sum())
    assert checked > 13000


def test_geodetic_matches_skyfield_wgs84(ts, catalog):
    sats, earth_sats = catalog
    idx = np.arange(0, len(sats), 20)
    prop = Propagator([sats[i] for i in idx])
    frames = FrameRotations(ts)
    t = ts.utc(*CHECK_TIMES[1])
    pos, _, status = prop.propagate(*split_jd_utc(t))
    lat, lon, alt = geodetic_from_itrs(rotate(pos, frames.at_jd_utc(*split_jd_utc(t)).teme_to_itrs))
    refs = [wgs84.geographic_position_of(earth_sats[i].at(t)) for i in idx]
    ok = status == STATUS_OK
    ref_lat = np.array([r.latitude.radians for r in refs])
    ref_lon = np.array([r.longitude.radians for r in refs])
    ref_alt = np.array([r.elevation.km for r in refs])
    assert np.abs(lat - ref_lat)[ok].max() < geodetic_vs_skyfield_rad
    assert np.abs(np.angle(np.exp(1j * (lon - ref_lon))))[ok].max() < geodetic_vs_skyfield_rad
    assert np.abs(alt - ref_alt)[ok].max() < one_metre_km
    assert np.isnan(lat[~ok]).all()


def test_itrs_velocity_matches_skyfield(ts, catalog):
    sats, earth_sats = catalog
    idx = np.arange(0, len(sats), 50)
    prop = Propagator([sats[i] for i in idx])
    t = ts.utc(*CHECK_TIMES[1])
    pos, vel, _ = prop.propagate(*split_jd_utc(t))
    fs = FrameRotations(ts).at_jd_utc(*split_jd_utc(t))
    got = itrs_velocity_km_s(rotate(pos, fs.teme_to_itrs), vel, fs)
    ref = np.array([earth_sats[i].at(t).frame_xyz_and_velocity(itrs)[1].km_per_s for i in idx])
    assert np.abs(got - ref).max() < one_mm_s_km_s


def test_geodetic_roundtrip_all_latitudes_and_heights():
    rng = np.random.default_rng(7)
    n = 50_000
    lat = rng.uniform(-np.pi / 2, np.pi / 2, n)
    lon = rng.uniform(-np.pi, np.pi, n)
    alt = rng.uniform(-1.0, 2500.0, n)
    lat2, lon2, alt2 = geodetic_from_itrs(itrs_from_geodetic(lat, lon, alt))
    assert np.abs(lat2 - lat).max() < roundtrip_rad
    assert np.abs(np.angle(np.exp(1j * (lon2 - lon)))).max() < roundtrip_rad
    assert np.abs(alt2 - alt).max() < roundtrip_km
    # Antimeridian and axes.
    _, lon3, _ = geodetic_from_itrs(np.array([[-7000.0, 0.0, 1.0], [0.0, -7000.0, 0.0]]))
    assert lon3[0] == pytest.approx(np.pi) and lon3[1] == pytest.approx(-np.pi / 2)


def test_cached_frames_within_one_mm_of_skyfield(ts):
    """Interpolated precession-nutation: < 1 mm at LEO radius vs skyfield, at every step."""
    frames = FrameRotations(ts)
    rng = np.random.default_rng(3)
    start_w, start_f = 2460142.5, 0.0  # 2023-07-17 00:00 UTC
    # Random instants over 3 days, plus hour boundaries and their neighbours.
    fracs = list(rng.uniform(0.0, 3.0, 60)) + [
        k / 24.0 + d for k in range(30, 34) for d in (-1e-9, 0.0, 1e-9, 0.5 / 24.0)
    ]
    worst_km = 0.0
    for f in fracs:
        fast = frames.at_jd_utc(start_w, start_f + f)
        exact = frames.exact_at_jd_utc(start_w, start_f + f)
        t = frames.time_jd_utc(start_w, start_f + f)
        ref_teme = TEME.rotation_at(t).T
        ref_itrs = itrs.rotation_at(t)
        for got, ref in (
            (fast.teme_to_gcrs, ref_teme),
            (fast.gcrs_to_itrs, ref_itrs),
            (exact.teme_to_gcrs, ref_teme),
        ):
            worst_km = max(worst_km, np.abs(got - ref).max() * leo_radius_km)
        mm_angle_rad = one_mm_km / leo_radius_km
        assert abs(np.angle(np.exp(1j * (fast.gast_rad - exact.gast_rad)))) < mm_angle_rad
        assert abs(np.angle(np.exp(1j * (fast.era_rad - exact.era_rad)))) < mm_angle_rad
        d_tdb = (fast.jd_tdb_whole - exact.jd_tdb_whole) + (fast.jd_tdb_frac - exact.jd_tdb_frac)
        d_tt = (fast.jd_tt_whole - exact.jd_tt_whole) + (fast.jd_tt_frac - exact.jd_tt_frac)
        assert abs(d_tdb) * 86400 < 1e-6 and abs(d_tt) * 86400 < 1e-6  # 1 µs
    assert worst_km < one_mm_km


def test_datetime_entry_point(ts):
    from datetime import UTC, datetime

    frames = FrameRotations(ts)
    dt = datetime(2023, 7, 18, 18, 30, 15, 500000, tzinfo=UTC)
    w, f = jd_utc_from_datetime(dt)
    t = ts.from_datetime(dt)
    assert (w - t.whole) + (f - split_jd_utc(t)[1]) == pytest.approx(0.0, abs=1e-10)
    a = frames.at_datetime(dt).teme_to_gcrs
    assert np.abs(a - TEME.rotation_at(t).T).max() * leo_radius_km < one_mm_km


def test_sun_matches_skyfield(ts):
    eph = load_file(str(de421_path()))
    sun = SunEphemeris()
    frames = FrameRotations(ts)
    times = ts.utc(2023, 7, 17, np.arange(0, 96, 7.3))
    ref = (eph["sun"] - eph["earth"]).at(times).position.km.T
    exact = sun.gcrs_km_exact(times.whole, times.tdb_fraction)
    assert np.abs(exact - ref).max() < one_km
    for k in range(len(times)):
        fs = frames.at_jd_utc(*split_jd_utc(times[k]))
        assert np.abs(sun.gcrs_km(fs.jd_tdb_whole, fs.jd_tdb_frac) - ref[k]).max() < one_km
        # The cached interpolation is far better than the 1 km requirement.
        assert np.abs(sun.gcrs_km(fs.jd_tdb_whole, fs.jd_tdb_frac) - exact[k]).max() < one_metre_km
    assert sun.covers(2460144.5) and not sun.covers(2500000.0)


def broken_satellites() -> tuple[Satrec, Satrec]:
    """A satellite with eccentricity > 1, and one with enormous drag that decays."""
    bad_ecc = Satrec()
    # whichconst, opsmode, satnum, epoch (days since 1949-12-31), bstar, ndot, nddot,
    # ecco, argpo, inclo, mo, no_kozai (rad/min), nodeo
    bad_ecc.sgp4init(WGS72, "i", 99001, 26863.5, 1e-4, 0.0, 0.0, 1.2, 0.0, 0.9, 0.0, 0.06, 0.0)
    decaying = Satrec()
    decaying.sgp4init(WGS72, "i", 99002, 26863.5, 0.5, 0.0, 0.0, 0.001, 0.0, 0.9, 0.0, 0.0689, 0.0)
    return bad_ecc, decaying


def test_broken_satellites_get_status_and_nan_rows_without_exception(catalog):
    sats, _ = catalog
    bad_ecc, decaying = broken_satellites()
    good = [sats[0], sats[1]]
    prop = Propagator([good[0], bad_ecc, good[1], decaying])
    alone = Propagator(good)
    # 2023-07-18 + 20 days: the decaying satellite (bstar 0.5 at ~190 km) is gone by then.
    jd_w, jd_f = 2460143.5 + 20.0, 0.25
    pos, vel, status = prop.propagate(jd_w, jd_f)
    assert status.dtype == np.uint8 and status.shape == (4,)
    assert status[1] != STATUS_OK and status[3] != STATUS_OK
    assert status[0] == STATUS_OK and status[2] == STATUS_OK
    assert all(int(s) in STATUS_NAMES for s in status)
    assert np.isnan(pos[[1, 3]]).all() and np.isnan(vel[[1, 3]]).all()
    pos_ok, vel_ok, _ = alone.propagate(jd_w, jd_f)
    np.testing.assert_array_equal(pos[[0, 2]], pos_ok)
    np.testing.assert_array_equal(vel[[0, 2]], vel_ok)


def test_whole_catalog_far_future_never_raises(catalog):
    sats, _ = catalog
    prop = Propagator(sats)
    pos, vel, status = prop.propagate(2460143.5 + 3000.0, 0.0)
    bad = status != STATUS_OK
    assert bad.any()
    assert set(np.unique(status).tolist()) <= set(STATUS_NAMES)
    assert np.isnan(pos[bad]).all() and np.isnan(vel[bad]).all()
    assert np.isfinite(pos[~bad]).all()


def test_orbit_model_fields_match_skyfield(ts, catalog):
    """The fields as the stepped model publishes them (rotations, Earth-fixed velocity
    through TEME, geodetic from component rows) against skyfield, satellite by satellite."""
    _, earth_sats = catalog
    scenario = load_scenario("starlink")
    clock = SimClock(scenario.epoch_utc + timedelta(hours=7, seconds=13.25), rate_hz=1.0,
                     warp=1.0, fast=True)
    model = OrbitModel(scenario, clock)
    model.step(StepContext(clock.t_utc, 0.0, EventLog(t_utc=clock.t_utc),
                           np.random.default_rng(0), {}))
    t = model.frames.time_jd_utc(*clock.jd_utc)
    idx = np.arange(0, len(earth_sats), 25)
    ok = model.status.array[idx] == STATUS_OK
    assert ok.sum() > 170
    idx = idx[ok]
    geos = [earth_sats[i].at(t) for i in idx]
    itrs_states = [g.frame_xyz_and_velocity(itrs) for g in geos]
    places = [wgs84.geographic_position_of(g) for g in geos]
    pairs = [
        (model.pos_gcrs.array, [g.position.km for g in geos], one_metre_km),
        (model.vel_gcrs.array, [g.velocity.km_per_s for g in geos], one_mm_s_km_s),
        (model.pos_itrs.array, [s[0].km for s in itrs_states], one_metre_km),
        (model.vel_itrs.array, [s[1].km_per_s for s in itrs_states], one_mm_s_km_s),
        (model.alt.array, [p.elevation.km for p in places], one_metre_km),
    ]
    for got, ref, tol in pairs:
        assert np.abs(got[idx] - np.array(ref)).max() < tol
    lat = np.radians(model.lat.array[idx])
    lon = np.radians(model.lon.array[idx])
    assert np.abs(lat - [p.latitude.radians for p in places]).max() < geodetic_vs_skyfield_rad
    lon_err = np.angle(np.exp(1j * (lon - [p.longitude.radians for p in places])))
    assert np.abs(lon_err).max() < geodetic_vs_skyfield_rad


def test_orbit_model_raises_sgp4_failures_once():
    """A satellite whose SGP4 fails (decayed by the scenario's epoch) raises one alarm;
    it does not repeat while the failure lasts, and a healthy fleet raises none."""
    _, decaying = broken_satellites()
    scenario = load_scenario("default")
    sats = list(scenario.satellites)
    sats[3] = dataclasses.replace(sats[3], satrec=decaying)
    clock = SimClock(scenario.epoch_utc, rate_hz=1.0, warp=60.0, fast=True)
    healthy = OrbitModel(scenario, SimClock(scenario.epoch_utc, rate_hz=1.0, warp=60.0,
                                            fast=True))
    broken = OrbitModel(dataclasses.replace(scenario, satellites=tuple(sats)), clock)
    events = [EventLog(t_utc=clock.t_utc), EventLog(t_utc=clock.t_utc)]
    kinds: list[list[tuple[str, int]]] = [[], []]
    for step in range(4):
        for k, model in enumerate((healthy, broken)):
            dt = model.clock.advance() if step else 0.0
            model.step(StepContext(model.clock.t_utc, dt, events[k],
                                   np.random.default_rng(0)))
            kinds[k] += [(e["kind"], e["sat"]) for e in events[k].drain()
                         if e["kind"].startswith("orbit_")]
    assert kinds[0] == []
    assert kinds[1] == [("orbit_error", 3)]
    assert broken.status.array[3] != STATUS_OK and np.isnan(broken.lat.array[3])
    assert broken.fleet()["n_orbit_errors"] == 1

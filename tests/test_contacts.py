"""Ground-station contacts: look angles and contact events against skyfield."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from skyfield.api import EarthSatellite, load, wgs84

from twin.astro.contacts import ContactTracker, GroundStations
from twin.astro.frames import FrameRotations, rotate
from twin.astro.propagate import Propagator, read_tle_file
from twin.core.clock import SimClock
from twin.core.engine import Engine

TLE = Path(__file__).resolve().parents[1] / "assets/tle/starlink-2023-07-18.tle"

one_metre_km = 1e-3
one_microrad = 1e-6
step_s = 10.0
STATION = {"lat_deg": 47.37, "lon_deg": 8.54, "alt_m": 408.0}
MASK_DEG = 25.0


@pytest.fixture(scope="module")
def ts():
    return load.timescale(builtin=True)


@pytest.fixture(scope="module")
def picked(ts):
    _, sats = read_tle_file(TLE)
    chosen = [sats[i] for i in (0, 500, 1000, 1500, 2200, 3000, 4000)]
    return chosen, [EarthSatellite.from_satrec(s, ts) for s in chosen]


def split_jd_utc(t) -> tuple[np.ndarray, np.ndarray]:
    """UTC Julian dates exactly as skyfield hands them to SGP4."""
    return t.whole, t.tai_fraction - t._leap_seconds() / 86400.0


def one_station(mask_deg: float = MASK_DEG, **kw) -> GroundStations:
    return GroundStations(
        np.array([STATION["lat_deg"]]),
        np.array([STATION["lon_deg"]]),
        np.array([STATION["alt_m"]]),
        np.array([mask_deg]),
        **kw,
    )


def test_contact_events_match_skyfield_find_events(ts, picked):
    sats, earth_sats = picked
    prop = Propagator(sats)
    frames = FrameRotations(ts)
    stations = one_station()
    tracker = ContactTracker()
    times = ts.utc(2023, 7, 18, 0, 0, np.arange(0.0, 86400.0 + step_s, step_s))
    whole, frac = split_jd_utc(times)
    starts: dict[int, list[float]] = {i: [] for i in range(len(sats))}
    ends: dict[int, list[float]] = {i: [] for i in range(len(sats))}
    in_view_at_start = None
    for k in range(len(times)):
        pos, _, _ = prop.propagate(float(whole[k]), float(frac[k]))
        fs = frames.at_jd_utc(float(whole[k]), float(frac[k]))
        elevation, _ = stations.look(rotate(pos, fs.teme_to_itrs))
        visible = stations.in_contact(elevation)
        s, e = tracker.update(visible)
        if k == 0:
            in_view_at_start = set(s[:, 1].tolist())  # first update: in view = start
            continue
        for _, sat in s:
            starts[int(sat)].append(k * step_s)
        for _, sat in e:
            ends[int(sat)].append(k * step_s)

    topos = wgs84.latlon(STATION["lat_deg"], STATION["lon_deg"], elevation_m=STATION["alt_m"])
    n_events = 0
    for i, sat in enumerate(earth_sats):
        t_ev, kinds = sat.find_events(topos, times[0], times[-1], altitude_degrees=MASK_DEG)
        secs = (t_ev - times[0]) * 86400.0
        rises = [float(x) for x, kind in zip(secs, kinds, strict=True) if kind == 0]
        sets = [float(x) for x, kind in zip(secs, kinds, strict=True) if kind == 2]
        if len(kinds) and kinds[0] in (1, 2):
            assert i in in_view_at_start  # pass already under way at t0
        # A sampled transition at step k means the true one lies in (t_k - step, t_k].
        assert len(starts[i]) == len(rises), (i, starts[i], rises)
        assert len(ends[i]) == len(sets), (i, ends[i], sets)
        for ours, ref in ((starts[i], rises), (ends[i], sets)):
            for a, b in zip(ours, ref, strict=True):
                assert a - step_s - 1e-3 <= b <= a + 1e-3
        n_events += len(rises) + len(sets)
    assert n_events >= 10


def test_look_angles_match_skyfield_altaz(ts, picked):
    sats, earth_sats = picked
    prop = Propagator(sats)
    frames = FrameRotations(ts)
    exact = one_station(elevation_floor_deg=None)
    floored = one_station()
    topos = wgs84.latlon(STATION["lat_deg"], STATION["lon_deg"], elevation_m=STATION["alt_m"])
    times = ts.utc(2023, 7, 18, 0, 0, np.arange(0.0, 86400.0, 997.0))
    whole, frac = split_jd_utc(times)
    refs = [(sat - topos).at(times).altaz() for sat in earth_sats]
    ref_el = np.array([r[0].radians for r in refs])  # (sats, times)
    ref_rng = np.array([r[2].km for r in refs])
    for k in range(len(times)):
        pos, _, _ = prop.propagate(float(whole[k]), float(frac[k]))
        pos_i = rotate(pos, frames.at_jd_utc(float(whole[k]), float(frac[k])).teme_to_itrs)
        el, rng = exact.look(pos_i)
        assert np.abs(el[0] - ref_el[:, k]).max() < one_microrad
        assert np.abs(rng[0] - ref_rng[:, k]).max() < one_metre_km
        el_f, rng_f = floored.look(pos_i)
        np.testing.assert_array_equal(rng_f, rng)
        above = el[0] > floored.elevation_floor_rad
        np.testing.assert_array_equal(el_f[0][above], el[0][above])
        assert (el_f[0][~above] == floored.elevation_floor_rad).all()


def test_several_stations_broadcast_and_nan_satellites(ts, picked):
    sats, _ = picked
    stations = GroundStations(
        np.array([47.37, -33.9, 64.8, 0.0]),
        np.array([8.54, 18.4, -147.5, 0.0]),
        np.array([408.0, 0.0, 150.0, 0.0]),
        10.0,
    )
    single = [
        GroundStations(stations_lat, stations_lon, alt, 10.0)
        for stations_lat, stations_lon, alt in zip(
            [47.37, -33.9, 64.8, 0.0],
            [8.54, 18.4, -147.5, 0.0],
            [408.0, 0.0, 150.0, 0.0],
            strict=True,
        )
    ]
    prop = Propagator(sats)
    pos, _, _ = prop.propagate(2460144.0, 0.3)
    pos_i = rotate(pos, FrameRotations(ts).at_jd_utc(2460144.0, 0.3).teme_to_itrs)
    pos_i[2] = np.nan  # a satellite whose SGP4 failed
    el, rng = stations.look(pos_i)
    assert el.shape == rng.shape == (4, len(sats))
    for s, one in enumerate(single):
        e1, r1 = one.look(pos_i)
        np.testing.assert_allclose(el[s], e1[0], rtol=0, atol=1e-15)
        np.testing.assert_allclose(rng[s], r1[0], rtol=0, atol=1e-12)
    assert np.isnan(el[:, 2]).all() and np.isnan(rng[:, 2]).all()
    assert not stations.in_contact(el)[:, 2].any()
    with pytest.raises(ValueError):
        one_station(mask_deg=-10.0)  # a mask not above the elevation floor


def test_look_into_agrees_with_look_from_positions_and_from_rows(ts):
    """`look_into` from (n, 3) positions and from the (5, n) block the orbit passes (rows,
    |r|², ones) gives what `look` gives, for the catalog."""
    _, sats = read_tle_file(TLE)
    stations = GroundStations(np.array([78.23, 64.86, -33.9, 0.0]),
                              np.array([15.41, -147.85, 18.4, 0.0]),
                              np.array([500.0, 180.0, 0.0, 0.0]), np.array([5.0, 5.0, 10.0, 0.0]))
    pos, _, _ = Propagator(sats).propagate(2460144.0, 0.3)
    pos_i = rotate(pos, FrameRotations(ts).at_jd_utc(2460144.0, 0.3).teme_to_itrs)
    pos_i[7] = np.nan  # a satellite whose SGP4 failed
    n = len(sats)
    el_ref, rng_ref = stations.look(pos_i)
    block = np.empty((5, n))
    block[:3] = pos_i.T
    block[3] = np.einsum("ij,ij->i", pos_i, pos_i)
    block[4] = 1.0
    layouts = {"positions": {}, "block": {"rows_km": block}}
    for name, kwargs in layouts.items():
        el = np.empty((4, n), dtype=np.float32)
        rng = np.empty((4, n), dtype=np.float32)
        contact = np.empty((4, n), dtype=bool)
        pairs, pair_el = stations.look_into(pos_i, el, rng, contact, **kwargs)
        # Range to float32 rounding (the (5, n) block sums in another order: < 1 µm here).
        np.testing.assert_allclose(rng, rng_ref, rtol=2e-7, err_msg=name)
        np.testing.assert_allclose(el, np.degrees(el_ref), rtol=0, atol=1e-5, err_msg=name)
        np.testing.assert_array_equal(contact, stations.in_contact(el_ref), err_msg=name)
        np.testing.assert_array_equal(pairs, np.flatnonzero(contact), err_msg=name)
        np.testing.assert_allclose(pair_el, el_ref.reshape(-1)[pairs], rtol=0, atol=1e-12)
        assert np.isnan(el[:, 7]).all() and not contact[:, 7].any(), name
    assert pairs.size > 0  # the check saw contacts


def test_tracker_conventions():
    tracker = ContactTracker()
    first = np.array([[True, False, True], [False, False, True]])
    starts, ends = tracker.update(first)
    # First update: everything already in view is reported as a start.
    assert starts.tolist() == [[0, 0], [0, 2], [1, 2]] and ends.shape == (0, 2)
    starts, ends = tracker.update(first.copy())
    assert starts.shape == (0, 2) and ends.shape == (0, 2)
    second = np.array([[False, True, True], [False, False, False]])
    starts, ends = tracker.update(second)
    assert starts.tolist() == [[0, 1]] and ends.tolist() == [[0, 0], [1, 2]]
    assert starts.dtype == np.int64 and ends.dtype == np.int64
    second[:] = True  # caller reuses its buffer: the tracker kept its own copy
    assert tracker.in_contact is not None and tracker.in_contact.sum() == 2
    with pytest.raises(ValueError):
        tracker.update(np.zeros((3, 3), dtype=bool))
    tracker.reset()
    starts, _ = tracker.update(np.ones((1, 2), dtype=bool))
    assert starts.tolist() == [[0, 0], [0, 1]]


def test_tracker_with_pairs_reports_what_the_matrix_does():
    """Handing `update` the pairs of the step (as the orbit does) changes nothing."""
    rng = np.random.default_rng(3)
    by_matrix, by_pairs = ContactTracker(), ContactTracker()
    state = rng.random((4, 50)) < 0.2
    for _ in range(40):
        flip = rng.random(state.shape) < 0.05
        state = state ^ flip
        pairs = np.flatnonzero(state)
        a = by_matrix.update(state)
        b = by_pairs.update(state, pairs)
        for x, y in zip(a, b, strict=True):
            assert x.tolist() == y.tolist()


def test_best_station_is_the_highest_first_on_a_tie():
    stations = GroundStations(np.array([0.0, 10.0, 20.0]), np.zeros(3), np.zeros(3), 5.0)
    n = 5
    # (station, sat, elevation): sat 1 seen by all three, the second highest; sat 3 a tie
    # between stations 0 and 2 (argmax takes the first); sat 4 by station 2 alone.
    seen = [(0, 1, 0.3), (1, 1, 0.7), (2, 1, 0.2), (0, 3, 0.5), (2, 3, 0.5), (2, 4, 0.1)]
    pairs = np.array([st * n + sat for st, sat, _ in seen])
    elevation = np.array([el for _, _, el in seen])
    out = np.zeros(n, dtype=np.int16)
    stations.best_station(pairs, elevation, n, out)
    assert out.tolist() == [-1, 1, -1, 0, 2]
    stations.best_station(pairs[:0], elevation[:0], n, out)
    assert out.tolist() == [-1] * n


def test_a_scenario_without_stations_steps() -> None:
    """No ground stations is a valid (if lonely) fleet: empty contact arrays, no error."""
    from twin.core.clock import SimClock
    from twin.core.engine import Engine
    from twin.scenario import parse_scenario

    scenario = parse_scenario(
        '[scenario]\nname = "alone"\nepoch = "2026-03-20T12:00:00Z"\n\n'
        '[[walker]]\nname = "w"\naltitude_km = 550.0\ninclination_deg = 53.0\n'
        "planes = 2\nsats_per_plane = 3\nphasing = 1\n"
    )
    engine = Engine(scenario, SimClock(scenario.epoch_utc, rate_hz=1.0, warp=60.0))
    engine.step()
    fields = {f.spec.name: f.array for f in engine.fields}
    assert fields["in_contact"].shape == (0, 6)
    assert (fields["contact_station"] == -1).all()


@pytest.mark.parametrize("chunk_blocks", [1, 2])
def test_station_look_angles_in_chunks_are_the_whole_fleets(
        chunk_blocks: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # 20,016 satellites, three blocks: look_slice cuts its temporaries into chunks of
    # ``chunk_blocks`` blocks (the memory of a million's step) and gives the same pairs,
    # in the same order, and the same outputs as the whole fleet at once.
    from tests.test_shards import SEED, _walker_fleet  # its 20,016-satellite fleet
    from twin.astro import contacts

    fleet = _walker_fleet(20_016, "")
    clock = SimClock(fleet.epoch_utc, rate_hz=1.0, warp=60.0, fast=True)
    engine = Engine(fleet, clock, seed=SEED)
    try:
        engine.step()
        orbit = engine.orbit
        stations, rows, n = orbit.stations, orbit.geometry.rows, engine.n_sats
        failed = np.zeros(n, dtype=bool)
        failed[[3, 9000, 20_000]] = True
        shape = orbit.elevation.array.shape
        whole = (np.empty(shape, np.float32), np.empty(shape, np.float32),
                 np.empty(shape, bool))
        pairs, elevation = stations.look_into(orbit.pos_itrs.array, *whole,
                                              rows_km=rows[6:11], failed=failed)
        assert pairs.size > 100 and np.unique(pairs // n).size > 1
        monkeypatch.setattr(contacts, "LOOK_CHUNK_BLOCKS", chunk_blocks)
        for bounds in ([(0, n)], [(0, 16_384), (16_384, n)]):
            out = (np.empty(shape, np.float32), np.empty(shape, np.float32),
                   np.empty(shape, bool))
            parts = [stations.look_slice(rows[6:11], *out, failed, a, b) for a, b in bounds]
            got_pairs, got_elevation = stations.merge_slices(parts, n)
            assert np.array_equal(got_pairs, pairs)
            assert np.array_equal(got_elevation, elevation)
            for mine, theirs in zip(out, whole, strict=True):
                assert np.array_equal(mine, theirs, equal_nan=True)
    finally:
        engine.close()

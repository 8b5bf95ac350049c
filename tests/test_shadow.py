"""Earth shadow and beta angle: real satellites vs skyfield is_sunlit, plus analytic cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from skyfield.api import EarthSatellite, load, load_file

from twin.astro.frames import FrameRotations, rotate
from twin.astro.geometry import (
    R_EARTH_SHADOW_KM,
    R_SUN_KM,
    _conical_fraction,
    beta_angle_rad,
    sunlit_fraction,
)
from twin.astro.propagate import Propagator, read_tle_file
from twin.astro.sun import SunEphemeris, de421_path

TLE = Path(__file__).resolve().parents[1] / "assets/tle/starlink-2023-07-18.tle"

sample_step_s = 30.0
fine_step_s = 0.25
# Penumbra of a ~550 km orbit lasts ~0.0093 rad (Sun diameter) / orbital rate, longer
# the more obliquely the orbit cuts the shadow edge.
penumbra_min_s = 3.0
penumbra_max_s = 20.0
analytic_rad = 1e-12
classify_tol = 1e-8  # sunlit fraction, against the conical formula on every row
au_km = 149_597_870.7


@pytest.fixture(scope="module")
def ts():
    return load.timescale(builtin=True)


@pytest.fixture(scope="module")
def eph():
    return load_file(str(de421_path()))


@pytest.fixture(scope="module")
def twelve(ts):
    _, sats = read_tle_file(TLE)
    picked = [sats[i] for i in range(0, len(sats), len(sats) // 12)][:12]
    return picked, [EarthSatellite.from_satrec(s, ts) for s in picked]


def test_sunlit_agrees_with_skyfield_outside_penumbra(ts, eph, twelve):
    sats, earth_sats = twelve
    prop = Propagator(sats)
    frames = FrameRotations(ts)
    sun_eph = SunEphemeris()
    times = ts.utc(2023, 7, 18, 0, 0, np.arange(0.0, 86400.0, sample_step_s))
    frac = np.empty((len(times), len(sats)))
    utc_frac = times.tai_fraction - times._leap_seconds() / 86400.0
    for k in range(len(times)):
        jd_w, jd_f = float(times.whole[k]), float(utc_frac[k])
        pos, _, status = prop.propagate(jd_w, jd_f)
        assert not status.any()
        fs = frames.at_jd_utc(jd_w, jd_f)
        sun = sun_eph.gcrs_km(fs.jd_tdb_whole, fs.jd_tdb_frac)
        frac[k] = sunlit_fraction(rotate(pos, fs.teme_to_gcrs), sun)
    ref = np.stack([s.at(times).is_sunlit(eph) for s in earth_sats], axis=1)
    clear = (frac == 0.0) | (frac == 1.0)
    assert (frac[clear] == 1.0).tolist() == ref[clear].tolist()
    # Both states well represented, penumbra samples rare (a few s out of ~35 min eclipses).
    assert 0.1 < (frac == 0.0).mean() < 0.5
    assert (~clear).mean() < 0.01


def penumbra_runs_s(frac: np.ndarray, step_s: float) -> list[float]:
    """Durations of the runs of 0 < frac < 1 that go all the way between 0 and 1."""
    inside = (frac > 0.0) & (frac < 1.0)
    edges = np.flatnonzero(np.diff(inside.astype(np.int8)))
    runs = []
    for start, end in zip(edges[::2], edges[1::2], strict=False):
        if inside[start]:  # the series began inside a run: skip the partial one
            continue
        before, after = frac[start], frac[end + 1]
        if {before, after} == {0.0, 1.0}:
            runs.append((end - start) * step_s)
    return runs


def test_penumbra_duration_and_monotonic(ts, twelve):
    _, earth_sats = twelve
    sun_eph = SunEphemeris()
    coarse_s = np.arange(0.0, 4 * 3600.0, sample_step_s)
    coarse = ts.utc(2023, 7, 18, 0, 0, coarse_s)
    coarse_sun = sun_eph.gcrs_km_exact(coarse.whole, coarse.tdb_fraction)
    window_s = np.arange(-2 * sample_step_s, 2 * sample_step_s, fine_step_s)
    all_runs: list[float] = []
    for sat in earth_sats:
        lit = sunlit_fraction(np.ascontiguousarray(sat.at(coarse).position.km.T), coarse_sun)
        for k in np.flatnonzero(np.diff(lit > 0.5))[:4]:
            # Resample the transition finely: the penumbra lasts seconds.
            fine = ts.utc(2023, 7, 18, 0, 0, coarse_s[k] + window_s)
            sun = sun_eph.gcrs_km_exact(fine.whole, fine.tdb_fraction)
            frac = sunlit_fraction(np.ascontiguousarray(sat.at(fine).position.km.T), sun)
            runs = penumbra_runs_s(frac, fine_step_s)
            assert len(runs) == 1
            all_runs += runs
            # Smooth and monotonic through the transition.
            steps = np.diff(frac)
            assert (steps <= 1e-12).all() or (steps >= -1e-12).all()
        if len(all_runs) >= 12:
            break
    assert len(all_runs) >= 12
    assert penumbra_min_s <= min(all_runs) and max(all_runs) <= penumbra_max_s


def test_sunlit_fraction_analytic_cases():
    sun = np.array([au_km, 0.0, 0.0])
    r_leo = 6928.0
    pos = np.array(
        [
            [r_leo, 0.0, 0.0],  # sub-solar: full sun
            [-r_leo, 0.0, 0.0],  # anti-solar: umbra
            [0.0, r_leo, 0.0],  # terminator plane, far from the shadow: full sun
            [np.nan, np.nan, np.nan],  # failed SGP4
            [-2.0e6, 0.0, 0.0],  # beyond the umbra tip: annular, Earth inside Sun disk
        ]
    )
    frac = sunlit_fraction(pos, sun)
    assert frac[0] == 1.0 and frac[1] == 0.0 and frac[2] == 1.0
    assert np.isnan(frac[3])
    d = au_km + 2.0e6
    ratio = np.arcsin(R_EARTH_SHADOW_KM / 2.0e6) / np.arcsin(R_SUN_KM / d)
    assert frac[4] == pytest.approx(1.0 - ratio**2, abs=1e-12)
    # Straddling the shadow edge at the geometric limb: about half the disk visible.
    y = R_EARTH_SHADOW_KM  # cylinder edge; the conical penumbra is centred near it
    edge = np.array([[-np.sqrt(r_leo**2 - y**2), y, 0.0]])
    assert 0.3 < sunlit_fraction(edge, sun)[0] < 0.7
    # (n, 3) Sun broadcasting gives the same result.
    np.testing.assert_array_equal(sunlit_fraction(pos, np.tile(sun, (5, 1))), frac)


def test_sunlit_classification_matches_the_conical_formula_everywhere():
    """The cone-free classification (full sun / umbra without trigonometry) may only skip
    satellites whose answer it knows: compared with the conical formula on every row,
    over shells from 300 to 40,000 km, densest where it matters, around the shadow edge."""
    rng = np.random.default_rng(11)
    sun = au_km * np.array([0.3, -0.8, 0.52]) / np.linalg.norm([0.3, -0.8, 0.52])
    s_hat = sun / np.linalg.norm(sun)
    for r_km in (6678.0, 6928.0, 7500.0, 12_000.0, 42_164.0):
        # Random directions, plus a band hugging the shadow cylinder's edge behind Earth.
        spread = rng.normal(size=(4000, 3))
        spread *= r_km / np.linalg.norm(spread, axis=1)[:, None]
        perp = rng.normal(size=(4000, 3))
        perp -= (perp @ s_hat)[:, None] * s_hat
        perp /= np.linalg.norm(perp, axis=1)[:, None]
        p_km = R_EARTH_SHADOW_KM + rng.uniform(-200.0, 200.0, size=(4000, 1))
        behind = -np.sqrt(np.maximum(r_km**2 - p_km**2, 0.0)) * s_hat
        edge = perp * p_km + behind
        pos = np.concatenate((spread, edge))
        got = sunlit_fraction(pos, sun)
        exact = _conical_fraction(pos, sun)
        # A misclassified row would be off by far more than a penumbra's rounding (r·s
        # comes from r·ŝ |s| here, which moves the overlap formula by ~1e-9).
        np.testing.assert_allclose(got, exact, rtol=0, atol=classify_tol)
        assert ((exact > 0) & (exact < 1)).any() or r_km > 40_000  # the band has penumbra
        # With r·ŝ and |r|² handed in, the same answer.
        np.testing.assert_allclose(
            sunlit_fraction(pos, sun, pos @ s_hat, np.einsum("ij,ij->i", pos, pos)), exact,
            rtol=0, atol=classify_tol)
    # A NaN row and a satellite out where the bounds do not hold take the exact path.
    odd = np.array([[np.nan] * 3, [-2.0e5, 0.0, 0.0], [6928.0, 0.0, 0.0]])
    got = sunlit_fraction(odd, sun)
    assert np.isnan(got[0])
    np.testing.assert_array_equal(got[1:], _conical_fraction(odd, sun)[1:])


def test_beta_angle_of_hand_built_circular_orbit():
    rng = np.random.default_rng(5)
    r_km, v_km_s = 6928.0, 7.59
    for beta in np.radians([-89.0, -60.0, -12.5, 0.0, 7.0, 45.0, 75.0, 89.0]):
        # Orbit plane from a random orthonormal pair (p, q); normal n = p × q.
        p = rng.normal(size=3)
        p /= np.linalg.norm(p)
        q = np.cross(rng.normal(size=3), p)
        q /= np.linalg.norm(q)
        n = np.cross(p, q)
        in_plane = np.cos(0.7) * p + np.sin(0.7) * q
        sun = au_km * (np.cos(beta) * in_plane + np.sin(beta) * n)
        u = np.linspace(0.0, 2 * np.pi, 37)[:, None]
        pos = r_km * (np.cos(u) * p + np.sin(u) * q)
        vel = v_km_s * (-np.sin(u) * p + np.cos(u) * q)
        got = beta_angle_rad(pos, vel, sun)
        np.testing.assert_allclose(got, beta, rtol=0, atol=analytic_rad)
        np.testing.assert_allclose(
            beta_angle_rad(pos, vel, np.tile(sun, (37, 1))), beta, rtol=0, atol=analytic_rad
        )
        # Retrograde motion flips the normal, hence the sign.
        np.testing.assert_allclose(beta_angle_rad(pos, -vel, sun), -beta, atol=analytic_rad)

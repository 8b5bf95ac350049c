"""Earth shadow and beta angle: real satellites vs skyfield is_sunlit, plus analytic cases;
the WGS84 ellipsoid (and atmosphere) shadow against an independent ray-traced ellipsoid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from skyfield.api import EarthSatellite, load, load_file

from twin.astro.frames import FrameRotations, rotate
from twin.astro.geometry import (
    R_EARTH_SHADOW_KM,
    R_SUN_KM,
    WGS84_A_KM,
    WGS84_B_KM,
    _conical_fraction,
    beta_angle_rad,
    ellipsoid_shadow_dots,
    ellipsoid_sunlit_fraction,
    shadow_edge_km,
    shadow_stretch,
    sunlit_fraction,
)
from twin.astro.propagate import Propagator, read_tle_file
from twin.astro.sun import SunEphemeris, de421_path
from twin.core.clock import SimClock
from twin.models.compute.scheduler import eclipse_lookahead
from twin.models.orbit import OrbitModel
from twin.scenario import ScenarioError, load_scenario, parse_scenario

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


# --- The WGS84 ellipsoid and the atmospheric shadow height, against an independent
# ray-ellipsoid computation (docs/models.md, "Earth shadow").

edge_tol_s = 1.0  # umbra and full-sun edge times, twin vs the ray-traced reference
scan_step_s = 20.0
limb_points = 64  # Sun-limb rays of the reference (inscribed polygon: < 0.01 s of edge)
jd_epoch = 2460143.5  # 2023-07-18 00:00 UTC, the TLE catalogue's day


class ShadowClock:
    """One satellite's GCRS position, the Sun and the Earth's axis at t s after the epoch,
    from the twin's own propagator, frames and ephemeris."""

    def __init__(self, satrec) -> None:
        self.prop = Propagator([satrec])

    def state(self, t_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos, _, _ = self.prop.propagate(jd_epoch, t_s / 86400.0)
        fs = FRAMES.at_jd_utc(jd_epoch, t_s / 86400.0)
        sun = SUN.gcrs_km(fs.jd_tdb_whole, fs.jd_tdb_frac)
        return rotate(pos, fs.teme_to_gcrs)[0], sun, fs.gcrs_to_itrs

    def twin_frac(self, t_s: float, atmosphere_km: float) -> float:
        pos, sun, gcrs_to_itrs = self.state(t_s)
        return float(ellipsoid_sunlit_fraction(pos[None], sun, gcrs_to_itrs[2],
                                               atmosphere_km)[0])

    def sphere_frac(self, t_s: float) -> float:
        pos, sun, _ = self.state(t_s)
        return float(sunlit_fraction(pos[None], sun)[0])

    def reference(self, t_s: float, atmosphere_km: float) -> tuple[bool, bool]:
        """(umbra, full sun) by rays from the satellite to points on the Sun's limb, each
        intersected with the WGS84 ellipsoid inflated by ``atmosphere_km`` in ITRS (the
        quadratic x²/A² + y²/A² + z²/B² = 1 along the ray). The Earth's silhouette and the
        Sun's disk are convex: umbra when every limb ray is blocked, full sun when none is."""
        pos, sun, gcrs_to_itrs = self.state(t_s)
        look = sun - pos
        look /= np.linalg.norm(look)
        e1 = np.cross(look, [0.0, 0.0, 1.0])
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(look, e1)
        phi = np.linspace(0.0, 2.0 * np.pi, limb_points, endpoint=False)[:, None]
        limb = sun + R_SUN_KM * (np.cos(phi) * e1 + np.sin(phi) * e2)
        origin = gcrs_to_itrs @ pos
        ray = (limb - pos) @ gcrs_to_itrs.T
        inv_axes2 = 1.0 / np.array([WGS84_A_KM + atmosphere_km, WGS84_A_KM + atmosphere_km,
                                    WGS84_B_KM + atmosphere_km]) ** 2
        qa = (ray * ray) @ inv_axes2
        qb = 2.0 * (ray * origin) @ inv_axes2
        qc = float((origin * origin) @ inv_axes2) - 1.0  # > 0: the satellite is outside
        blocked = (qb * qb >= 4.0 * qa * qc) & (qb < 0.0)  # real roots, ahead of the satellite
        return bool(blocked.all()), bool(not blocked.any())

    def centre_blocked(self, t_s: float, atmosphere_km: float) -> bool:
        """Whether the ray to the Sun's centre meets the inflated ellipsoid (as
        ``reference``, one ray): the Sun's centre behind the Earth's limb."""
        pos, sun, gcrs_to_itrs = self.state(t_s)
        origin = gcrs_to_itrs @ pos
        ray = gcrs_to_itrs @ (sun - pos)
        inv_axes2 = 1.0 / np.array([WGS84_A_KM + atmosphere_km, WGS84_A_KM + atmosphere_km,
                                    WGS84_B_KM + atmosphere_km]) ** 2
        qa = float((ray * ray) @ inv_axes2)
        qb = 2.0 * float((ray * origin) @ inv_axes2)
        qc = float((origin * origin) @ inv_axes2) - 1.0
        return qb * qb >= 4.0 * qa * qc and qb < 0.0


FRAMES = FrameRotations()
SUN = SunEphemeris()


def bisect_s(state, lo: float, hi: float, tol_s: float = 1e-3) -> float:
    """The time where the boolean ``state(t)`` changes between lo and hi."""
    at_lo = state(lo)
    assert state(hi) != at_lo, f"no edge between {lo:.1f} s and {hi:.1f} s"
    while hi - lo > tol_s:
        mid = 0.5 * (lo + hi)
        if state(mid) == at_lo:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


@pytest.fixture(scope="module")
def beta_picks():
    """Three Starlink satellites: β near 0, near 40° and near grazing (β* - 2°, where the
    shadow edges move most and the edges cut the shadow most obliquely)."""
    _, sats = read_tle_file(TLE)
    pos, vel, _ = Propagator(sats).propagate(jd_epoch, 0.0)
    fs = FRAMES.at_jd_utc(jd_epoch, 0.0)
    sun = SUN.gcrs_km(fs.jd_tdb_whole, fs.jd_tdb_frac)
    pos_g, vel_g = rotate(pos, fs.teme_to_gcrs), rotate(vel, fs.teme_to_gcrs)
    beta = np.abs(np.degrees(beta_angle_rad(pos_g, vel_g, sun)))
    grazing = np.degrees(np.arcsin(WGS84_A_KM / np.linalg.norm(pos_g, axis=1)))
    picks = [np.argmin(np.abs(beta)), np.argmin(np.abs(beta - 40.0)),
             np.argmin(np.abs(beta - (grazing - 2.0)))]
    return [sats[int(i)] for i in picks]


@pytest.mark.parametrize("atmosphere_km", [0.0, 30.0])
def test_shadow_edges_match_ray_traced_ellipsoid(beta_picks, atmosphere_km):
    scan = np.arange(0.0, 86400.0, scan_step_s)
    worst_s, n_edges, sphere_shift_s = 0.0, 0, []
    for satrec in beta_picks:
        sat = ShadowClock(satrec)
        frac = np.array([sat.twin_frac(t, atmosphere_km) for t in scan])
        for kind, is_edge in ((0, frac == 0.0), (1, frac == 1.0)):
            for k in np.flatnonzero(np.diff(is_edge)):
                lo, hi = scan[k], scan[k + 1]
                twin = bisect_s(
                    lambda t, s=sat, v=float(kind): s.twin_frac(t, atmosphere_km) == v, lo, hi)
                ref = bisect_s(lambda t, s=sat, i=kind: s.reference(t, atmosphere_km)[i],
                               lo - 5.0, hi + 5.0)
                worst_s = max(worst_s, abs(twin - ref))
                n_edges += 1
                if kind == 0 and atmosphere_km == 0.0 and len(sphere_shift_s) < 6:
                    sphere = bisect_s(lambda t, s=sat: s.sphere_frac(t) == 0.0, lo - 60, hi + 60)
                    sphere_shift_s.append(abs(twin - sphere))
    assert worst_s < edge_tol_s
    # ~15 orbits a day, 4 edges each (umbra and full sun, in and out), for 3 satellites:
    # the grazing one among them (its β drifts a few degrees over the day).
    assert n_edges >= 150
    if atmosphere_km == 0.0:
        # The test can tell: the old sphere's edges are seconds away from the ellipsoid's.
        assert min(sphere_shift_s) > 3.0


def _centre_edges(sat: ShadowClock, atmosphere_km: float, hours: float
                  ) -> list[tuple[float, float, bool]]:
    """(twin's cylinder edge, the reference's edge, entering) for every shadow edge over
    ``hours``: the zero of the environment's signed distance in the stretched space and the
    time the ray to the Sun's centre touches the inflated ellipsoid, both bisected to
    1 ms (the middle of the penumbra in the sense of the Sun's centre on the limb)."""

    def inside(t_s: float) -> bool:
        pos, sun, gcrs_to_itrs = sat.state(t_s)
        along, r2, _, radius = ellipsoid_shadow_dots(pos[None], sun, gcrs_to_itrs[2],
                                                     atmosphere_km)
        return bool(shadow_edge_km(along, r2 - along * along, radius)[0] < 0.0)

    scan = np.arange(0.0, hours * 3600.0, scan_step_s)
    flags = np.array([inside(t) for t in scan])
    edges = []
    for k in np.flatnonzero(np.diff(flags)):
        twin = bisect_s(inside, scan[k], scan[k + 1])
        ref = bisect_s(lambda t: sat.centre_blocked(t, atmosphere_km), twin - 60.0,
                       twin + 60.0)
        edges.append((twin, ref, bool(flags[k + 1])))
    return edges


def _lookahead_entry_s(satrec, t0_s: float, atmosphere_km: float | None) -> float:
    """The scheduler's predicted shadow entry (s after the epoch) from the state at t0,
    with the ellipsoid and atmosphere of the orbit model (None: the old sphere)."""
    pos, vel, _ = Propagator([satrec]).propagate(jd_epoch, t0_s / 86400.0)
    fs = FRAMES.at_jd_utc(jd_epoch, t0_s / 86400.0)
    sun = SUN.gcrs_km(fs.jd_tdb_whole, fs.jd_tdb_frac)
    pos, vel = rotate(pos, fs.teme_to_gcrs), rotate(vel, fs.teme_to_gcrs)
    if atmosphere_km is None:
        _, to_entry, _ = eclipse_lookahead(pos, vel, sun)
    else:
        _, to_entry, _ = eclipse_lookahead(pos, vel, sun, fs.gcrs_to_itrs[2],
                                           shadow_stretch(atmosphere_km),
                                           WGS84_A_KM + atmosphere_km)
    return t0_s + float(to_entry[0])


# The scheduler predicts from the state this long before each entry: 10 min away from
# grazing; 1 min near grazing, where the circular orbit's radius error moves the oblique
# entry most (its error grows ~0.02 s per second of lead there: 8-11 s at 10 min).
LOOKAHEAD_LEAD_S = (600.0, 600.0, 60.0)
GRAZING_ENTRY_TOL_S = 2.0


@pytest.mark.parametrize("atmosphere_km", [0.0, 30.0])
def test_step_crossings_and_eclipse_lookahead_use_the_ellipsoid_shadow(beta_picks,
                                                                        atmosphere_km):
    """The environment's in-step edge (the stretched cylinder) against the time the ray to
    the Sun's centre touches the ray-traced ellipsoid, within 1 s; the scheduler's entry
    predicted from the state alone, within 1 s 10 min ahead (2 s 1 min ahead near
    grazing). The old sphere's prediction is seconds off, so the test can tell."""
    worst_edge_s = 0.0
    worst_entry_s = [0.0, 0.0, 0.0]
    sphere_off_s = []
    n_edges = 0
    for pick, satrec in enumerate(beta_picks):
        sat = ShadowClock(satrec)
        for twin, ref, entering in _centre_edges(sat, atmosphere_km, hours=6.0):
            worst_edge_s = max(worst_edge_s, abs(twin - ref))
            n_edges += 1
            if entering:
                t0 = ref - LOOKAHEAD_LEAD_S[pick]
                worst_entry_s[pick] = max(worst_entry_s[pick], abs(
                    _lookahead_entry_s(satrec, t0, atmosphere_km) - ref))
                sphere_off_s.append(abs(_lookahead_entry_s(satrec, t0, None) - ref))
    assert n_edges >= 20  # ~4 orbits of 3 satellites, in and out
    assert worst_edge_s < edge_tol_s, worst_edge_s
    assert max(worst_entry_s[:2]) < edge_tol_s, worst_entry_s
    assert worst_entry_s[2] < GRAZING_ENTRY_TOL_S, worst_entry_s
    assert float(np.median(sphere_off_s)) > 3.0


ORBIT_SCENARIO = """
[scenario]
name = "shadow"
epoch = "2023-07-18T00:00:00Z"

[orbit]
shadow_atmosphere_km = {value}

[[walker]]
name = "w"
altitude_km = 550.0
inclination_deg = 53.0
planes = 2
sats_per_plane = 3
phasing = 0
"""


def orbit_model(scenario) -> OrbitModel:
    return OrbitModel(scenario, SimClock(scenario.epoch_utc, rate_hz=1.0, warp=1.0, fast=True))


def test_orbit_model_takes_the_atmosphere_from_the_scenario():
    assert orbit_model(load_scenario("default")).params.shadow_atmosphere_km == 0.0
    model = orbit_model(parse_scenario(ORBIT_SCENARIO.format(value=30)))
    assert model.params.shadow_atmosphere_km == 30.0
    with pytest.raises(ScenarioError, match=r"orbit\.shadow_atmosphere_km"):
        orbit_model(parse_scenario(ORBIT_SCENARIO.format(value=-5)))


def test_environment_places_step_crossings_on_the_orbit_models_shadow():
    """At 60 s steps with a 30 km atmosphere, every crossing the environment places splits
    the step where the stretched-space edge distance, computed here from the published
    positions, Sun and polar axis, interpolates to zero (1e-9 of a step); the sphere of
    radius a would split it elsewhere."""
    from twin.core.engine import Engine

    scenario = parse_scenario(ORBIT_SCENARIO.format(value=30))
    eng = Engine(scenario, SimClock(scenario.epoch_utc, rate_hz=1.0, warp=60.0, fast=True))
    orbit, env = eng.orbit.outputs, eng.models["environment"]

    def edges(atmosphere_km: float) -> np.ndarray:
        along, r2, _, radius = ellipsoid_shadow_dots(orbit.pos_gcrs_km, orbit.sun_gcrs_km,
                                                     orbit.polar_axis_gcrs, atmosphere_km)
        return shadow_edge_km(along, r2 - along * along, radius)

    eng.step()
    before, before_sphere = edges(30.0), edges(0.0)
    crossings = sphere_moved = 0
    for _ in range(200):  # ~2 orbits
        eng.step()
        after, after_sphere = edges(30.0), edges(0.0)
        step = env.outputs.sunlit_step
        for k, sat in enumerate(step.crossed.tolist()):
            tau = before[sat] / (before[sat] - after[sat])
            assert step.tau[k] == pytest.approx(tau, abs=1e-9)
            sphere_tau = before_sphere[sat] / (before_sphere[sat] - after_sphere[sat])
            sphere_moved += abs(sphere_tau - tau) > 0.05  # > 3 s of the step
            crossings += 1
        before, before_sphere = after, after_sphere
    assert crossings >= 20 and sphere_moved == crossings


def test_step_sunlight_from_positions_alone_is_the_same_as_from_orbit_dots() -> None:
    # The fallback (orbit gives positions, not r·ŝ and r²) makes its buffers on first use:
    # the same means and crossings as from the dot products orbit publishes.
    from twin.core.interfaces import OrbitOutputs
    from twin.models.environment import StepSunlight

    rng = np.random.default_rng(3)
    n = 500
    sun = np.array([1.496e8, 0.0, 0.0])
    s_hat = sun / np.linalg.norm(sun)
    start = rng.normal(size=(n, 3))
    start *= 6_900.0 / np.linalg.norm(start, axis=1, keepdims=True)
    from_positions, from_dots = StepSunlight(n), StepSunlight(n)
    crossed = 0
    for k in range(3):
        pos = np.roll(start, k, axis=1) * (1.0 + 0.01 * k)  # satellites move about
        sunlit = ((pos @ s_hat > 0) | (np.linalg.norm(pos - np.outer(pos @ s_hat, s_hat),
                                                      axis=1) > 6_378.0)).astype(float)
        bare = OrbitOutputs(pos_gcrs_km=pos, sun_gcrs_km=sun, sunlit_frac=sunlit)
        dots = OrbitOutputs(pos_gcrs_km=pos, sun_gcrs_km=sun, sunlit_frac=sunlit,
                            sun_along_km=np.matmul(pos, s_hat),
                            r2_km2=np.matmul(np.square(pos), np.ones(3)))
        mine, theirs = from_positions.update(bare), from_dots.update(dots)
        assert np.array_equal(mine.mean, theirs.mean)
        assert np.array_equal(mine.crossed, theirs.crossed)
        crossed += mine.crossed.size
    assert crossed > 0

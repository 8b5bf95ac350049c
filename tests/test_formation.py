"""Formation clusters: relative motion against solve_ivp, safety alarms, self-shadowing,
bad cluster tables, and the bundled suncatcher scenario (docs/models.md, "Formation
clusters")."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from sgp4.earth_gravity import wgs72

from twin.astro.formation import FormationDesign, hex_pattern, pattern_radius_m
from twin.astro.frames import jd_utc_from_datetime
from twin.astro.shading import disc_overlap_area, shaded_fraction
from twin.core.clock import SimClock
from twin.core.engine import Engine
from twin.models.formation.clusters import FormationClusters
from twin.scenario import ScenarioError, load_scenario, parse_scenario

RELATIVE_TOLERANCE_M = 1.0
"""The issue's bound on the members' offsets over one orbit against the numerical reference."""

SMALL_CLUSTER = """\
[scenario]
name = "small-cluster"
epoch = "2026-03-20T12:00:00Z"
seed = 3

[clock]
rate_hz = 1.0
warp = 10.0

[[cluster]]
name = "C"
altitude_km = 650.0
ltan_h = 18.0
members = 7
radius_m = 500.0
spacing_m = 100.0
min_separation_m = 50.0
"""


def _two_body_j2(_t: float, state: np.ndarray) -> np.ndarray:
    """Two-body + J2 (WGS72) for any number of satellites stacked as [x y z vx vy vz]*k, m."""
    mu = wgs72.mu * 1e9
    radius = wgs72.radiusearthkm * 1e3
    s = state.reshape(-1, 6)
    r = np.linalg.norm(s[:, :3], axis=1)
    z2 = (s[:, 2] / r) ** 2
    factor = 1.5 * wgs72.j2 * (radius / r) ** 2
    acc = -mu / r[:, None] ** 3 * s[:, :3]
    acc[:, 0] *= 1.0 + factor * (1.0 - 5.0 * z2)
    acc[:, 1] *= 1.0 + factor * (1.0 - 5.0 * z2)
    acc[:, 2] *= 1.0 + factor * (3.0 - 5.0 * z2)
    return np.column_stack((s[:, 3:], acc)).ravel()


def test_relative_motion_matches_solve_ivp_within_1_m_over_one_orbit() -> None:
    scenario = load_scenario("suncatcher")
    cluster = scenario.clusters[0]
    # The reference is two-body + J2 only: no differential drag in the model either.
    cluster = dataclasses.replace(
        cluster, spec=dataclasses.replace(cluster.spec, differential_drag=False))
    flown = FormationClusters((cluster,), array_area_m2=70.0, seed=scenario.seed)
    chief = scenario.satellites[cluster.chief].satrec
    jd = jd_utc_from_datetime(scenario.epoch_utc)
    _, r0, v0 = chief.sgp4(*jd)
    n = cluster.spec.members
    pos = np.tile(np.array(r0), (n, 1))
    vel = np.tile(np.array(v0), (n, 1))
    flown.step(0.0, pos, vel)  # places the members on their design
    flown.box_m[:] = np.inf  # no station keeping: the free motion is what is compared
    initial = np.column_stack((pos * 1e3, vel * 1e3)).ravel()

    period_s = 2.0 * math.pi / flown.mean_motion_rad_s[0]
    times = np.arange(60.0, period_s + 60.0, 60.0)
    reference = solve_ivp(_two_body_j2, (0.0, times[-1]), initial, method="DOP853",
                          t_eval=times, rtol=1e-12, atol=1e-6)
    assert reference.success
    worst_m = 0.0
    for k, t in enumerate(times):
        states = reference.y[:, k].reshape(n, 6)
        # The model is given the chief only (its rows); it writes the other members.
        pos = np.tile(states[0, :3] * 1e-3, (n, 1))
        vel = np.tile(states[0, 3:] * 1e-3, (n, 1))
        flown.step(float(t), pos, vel)
        expected_m = states[1:, :3] - states[0, :3]
        got_m = (pos[1:] - pos[0]) * 1e3
        worst_m = max(worst_m, float(np.linalg.norm(got_m - expected_m, axis=1).max()))
    print(f"worst offset error over one orbit: {worst_m * 1e3:.2f} mm")
    assert worst_m < RELATIVE_TOLERANCE_M, f"offsets off by {worst_m:.3f} m"
    # The members did move: a kilometre-scale formation, not a frozen one.
    assert np.linalg.norm(expected_m, axis=1).max() > 500.0


def test_a_chief_sgp4_cannot_propagate_leaves_its_members_nan_then_flies_on() -> None:
    scenario = parse_scenario(SMALL_CLUSTER)
    flown = FormationClusters(scenario.clusters, array_area_m2=70.0, seed=1)
    chief = scenario.satellites[0].satrec
    jd = jd_utc_from_datetime(scenario.epoch_utc)

    def rows(t_s: float) -> tuple[np.ndarray, np.ndarray]:
        _, r, v = chief.sgp4(jd[0], jd[1] + t_s / 86400.0)
        return np.tile(np.array(r), (7, 1)), np.tile(np.array(v), (7, 1))

    flown.step(0.0, *rows(0.0))
    pos, vel = rows(60.0)
    pos[:], vel[:] = np.nan, np.nan  # SGP4 failed the chief, hence its members
    flown.step(60.0, pos, vel)
    assert np.isnan(pos).all()
    assert np.isfinite(flown.shade(pos, np.array([0.0, 0.0, 1.0]))).all()
    pos, vel = rows(120.0)
    flown.step(120.0, pos, vel)
    offsets_m = np.linalg.norm(pos[1:] - pos[0], axis=1) * 1e3
    assert np.isfinite(offsets_m).all() and (offsets_m > 50.0).all()


def test_design_keeps_pattern_distances_between_one_and_stretch() -> None:
    design = FormationDesign(mean_motion_rad_s=1.07e-3, ss_s=0.0, cross_track_ratio=0.5)
    pattern = hex_pattern(19, 100.0)
    for t in np.linspace(0.0, 2.0 * math.pi / 1.07e-3, 50):
        pos, _ = design.state_lvlh(pattern, float(t))
        gaps = np.linalg.norm(pos[:, None] - pos[None], axis=2)[np.triu_indices(19, 1)]
        assert gaps.min() >= 100.0 - 1e-6
        assert np.linalg.norm(pos, axis=1).max() <= design.stretch * 200.0 + 1e-6
    assert pattern_radius_m(81, 100.0) == pytest.approx(100.0 * math.sqrt(21.0))


def test_self_shadowing_matches_the_hand_case() -> None:
    radius = 4.0
    sun = np.array([0.0, 0.0, 1.0])
    # Member 1 sits 30 m behind member 0 along the Sun line, offset sideways by one radius:
    # two equal discs at a distance of one radius overlap by r² (2π/3 - √3/2).
    pos = np.array([[0.0, 0.0, 30.0], [radius, 0.0, 0.0]])
    shaded = shaded_fraction(pos, sun, np.full(2, radius))
    by_hand = (2.0 * math.pi / 3.0 - math.sqrt(3.0) / 2.0) / math.pi  # 0.391
    assert shaded[0] == 0.0
    assert shaded[1] == pytest.approx(by_hand, rel=1e-12)
    # Exactly in line: fully shaded; two diameters apart: no shadow.
    assert shaded_fraction(pos * [0, 0, 1], sun, np.full(2, radius))[1] == pytest.approx(1.0)
    apart = np.array([[0.0, 0.0, 30.0], [2.0 * radius + 0.01, 0.0, 0.0]])
    assert shaded_fraction(apart, sun, np.full(2, radius))[1] == 0.0
    # A small disc fully inside a large one's shadow.
    assert disc_overlap_area(1.0, 5.0, 2.0) == pytest.approx(math.pi * 4.0)


def test_members_shade_each_other_in_the_orbit_model() -> None:
    scenario = parse_scenario(SMALL_CLUSTER)
    engine = Engine(scenario, SimClock(scenario.epoch_utc, 1.0, 10.0, fast=True))
    engine.step()
    orbit = engine.models["orbit"]
    flown = orbit.formation
    # Put member 2 exactly down-Sun of member 1, 20 m behind, sideways by one radius.
    sun_hat = orbit.sun_gcrs_km / np.linalg.norm(orbit.sun_gcrs_km)
    radius = flown.array_radius_m[0]
    side = np.cross(sun_hat, [0.0, 0.0, 1.0])
    side /= np.linalg.norm(side)
    pos = orbit.pos_gcrs.array.copy()
    pos[2] = pos[1] + (-20.0 * sun_hat + radius * side) * 1e-3
    shaded = flown.shade(pos, sun_hat)
    assert shaded[2] == pytest.approx((2 * math.pi / 3 - math.sqrt(3) / 2) / math.pi, rel=1e-6)
    assert shaded[1] == 0.0


def _collision_course(engine: Engine) -> None:
    """Member 1, out of propellant, heads for member 2 at 0.5 m/s from 40 m away."""
    flown = engine.models["orbit"].formation
    towards = np.array([0.6, 0.0, 0.8])
    flown.rel_pos_m[0] = flown.rel_pos_m[1] - 40.0 * towards + [0.0, 0.3, 0.0]
    flown.rel_vel_m_s[0] = flown.rel_vel_m_s[1] + 0.5 * towards
    flown.propellant_kg[:] = 0.0  # no station keeping to save them


def test_min_distance_alarm_fires_on_a_formation_built_to_collide() -> None:
    scenario = parse_scenario(SMALL_CLUSTER)
    engine = Engine(scenario, SimClock(scenario.epoch_utc, 1.0, 10.0, fast=True))
    engine.step()
    engine.events.drain()
    _collision_course(engine)
    events = []
    for _ in range(20):
        engine.step()
        events += engine.events.drain()
    approaches = [e for e in events if e["kind"] == "closest_approach"]
    assert approaches, [e["kind"] for e in events]
    assert approaches[0]["severity"] == "alarm"
    assert {approaches[0]["sat"], approaches[0]["other"]} == {1, 2}
    assert approaches[0]["dist_m"] < 50.0
    limits = [e for e in events if e["kind"] == "limit" and e.get("field") == "nn_dist_m"]
    assert any(e["severity"] == "alarm" for e in limits), limits


def test_a_healthy_formation_raises_no_approach() -> None:
    scenario = parse_scenario(SMALL_CLUSTER)
    engine = Engine(scenario, SimClock(scenario.epoch_utc, 1.0, 60.0, fast=True))
    events = []
    for _ in range(100):  # one orbit
        engine.step()
        events += engine.events.drain()
    assert not [e for e in events if e["kind"] == "closest_approach"
                or e.get("field") == "nn_dist_m"], events


def test_station_keeping_brings_a_displaced_member_back_and_books_its_fuel() -> None:
    scenario = parse_scenario(SMALL_CLUSTER)
    engine = Engine(scenario, SimClock(scenario.epoch_utc, 1.0, 30.0, fast=True))
    engine.step()
    flown = engine.models["orbit"].formation
    spec = scenario.clusters[0].spec
    radial = flown.chief_pos_m[0] / np.linalg.norm(flown.chief_pos_m[0])
    flown.rel_pos_m[0] += 15.0 * radial  # member 1 (sat 1) 15 m off, its box is 10 m
    events = []
    for _ in range(100):  # 50 min: a quarter-orbit transfer and some
        engine.step()
        events += engine.events.drain()
    kinds = [burn for burn in events if burn["kind"] == "station_keeping"]
    assert [e["sat"] for e in kinds] == [1], events
    formation = engine.models["formation"]
    assert formation.box_error.array[1] < spec.box_m
    assert (formation.box_error.array < spec.box_m).all()
    used = formation.dv_used.array
    assert used[1] > 0.0 and (used[[0, 2, 3, 4, 5, 6]] == 0.0).all()
    # Burns multiply the mass by exp(-dv / ve): what is left follows from the ledger.
    exhaust = spec.isp_s * 9.80665
    wet = spec.dry_mass_kg + spec.propellant_kg
    left = spec.propellant_kg - wet * (1.0 - math.exp(-used[1] / exhaust))
    assert formation.propellant.array[1] == pytest.approx(left, rel=1e-6)
    assert engine.header()["fleet"]["member_dv_used_m_s"] == pytest.approx(used[1])


def test_drift_table_agrees_with_a_shooting_within_a_metre_an_orbit() -> None:
    scenario = load_scenario("suncatcher")
    engine = Engine(scenario, SimClock(scenario.epoch_utc, 1.0, 60.0, fast=True))
    for _ in range(40):  # 40 min on: the chief a third of an orbit past the table's start
        engine.step()
    flown = engine.models["orbit"].formation
    basis, rate = flown._frames(flown.chief_pos_m, flown.chief_vel_m_s)
    ref_pos, ref_vel = flown.design_state(flown.t_s)
    everyone = np.arange(len(flown.sats))
    shot = ref_vel.copy()
    flown._drift_free(everyone, flown.chief_pos_m, flown.chief_vel_m_s, basis, rate, ref_pos,
                      shot)
    tabled = ref_vel[:, 1] + flown.drift_table.along_track_rate_change(
        flown.chief_pos_m, flown.chief_vel_m_s, flown.chief_of, ref_pos, ref_vel.copy())
    period_s = 2.0 * math.pi / flown.mean_motion_rad_s[0]
    drift_m = np.abs(tabled - shot[:, 1]) * 3.0 * period_s  # along-track drift an orbit
    assert drift_m.max() < 1.0, drift_m.max()
    # Without the correction the design itself would drift by metres an orbit.
    assert (np.abs(ref_vel[:, 1] - shot[:, 1]) * 3.0 * period_s).max() > 3.0


BAD_CLUSTERS = [
    ("members = 7", "members = 0", "cluster[0].members", "2 <= members"),
    ("radius_m = 500.0", "radius_m = 40.0", "cluster[0].radius_m", "larger than"),
    ("members = 7", "members = 200", "cluster[0].members", "at most"),
    ("spacing_m = 100.0", "spacing_m = 30.0", "cluster[0].spacing_m", "below"),
    ("ltan_h = 18.0", "ltan_h = 18.0\ninclination_deg = 53.0", "cluster[0].ltan_h", "both"),
    ('name = "C"', 'name = "C"\ndesign = "helix"', "cluster[0].design", "ei_safe"),
    ('name = "C"', 'name = "C"\nbox_m = 40.0', "cluster[0].box_m", "at most"),
    ('name = "C"', 'name = "C"\nmembrs = 3', "cluster[0].membrs", "members"),
]


@pytest.mark.parametrize(("good", "bad", "key", "hint"), BAD_CLUSTERS)
def test_bad_cluster_tables_name_file_and_key(tmp_path: Path, good: str, bad: str, key: str,
                                              hint: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(SMALL_CLUSTER.replace(good, bad, 1))
    with pytest.raises(ScenarioError) as caught:
        load_scenario(str(path))
    message = str(caught.value)
    assert message.startswith(f"{path}: {key}:"), message
    assert hint in message, message


def test_suncatcher_scenario_flies_81_members_within_1_km() -> None:
    scenario = load_scenario("suncatcher")
    assert len(scenario.satellites) == 81 and len(scenario.clusters) == 1
    engine = Engine(scenario, SimClock(scenario.epoch_utc, 10.0, 60.0, fast=True))
    for _ in range(40):
        engine.step()
    events = engine.events.drain()
    assert not [e for e in events if e["severity"] == "alarm"], events
    orbit = engine.models["orbit"]
    offsets_m = (orbit.pos_gcrs.array - orbit.pos_gcrs.array[0]) * 1e3
    assert np.linalg.norm(offsets_m, axis=1).max() <= 1000.0
    formation = engine.models["formation"]
    assert formation.nn_dist.array.min() >= 100.0 - 10.0
    assert formation.nn_dist.array.max() <= 206.0 + 10.0
    fleet = engine.header()["fleet"]
    assert fleet["n_cluster_members"] == 81
    assert all(math.isfinite(v) for v in fleet.values())
    # Every member is an ordinary satellite of the orbit output: finite rows, SGP4 ok.
    assert np.isfinite(orbit.pos_gcrs.array).all() and not orbit.status.array.any()
    assert (orbit.sunlit.array == 1.0).all()  # dawn-dusk at the equinox, no self-shadow


def test_two_clusters_fly_side_by_side() -> None:
    second = SMALL_CLUSTER.split("[[cluster]]")[1].replace('name = "C"', 'name = "D"').replace(
        "ltan_h = 18.0", "inclination_deg = 53.0\nraan_deg = 40.0").replace(
        "members = 7", "members = 19").replace("radius_m = 500.0", "radius_m = 450.0")
    scenario = parse_scenario(SMALL_CLUSTER + "\n[[cluster]]" + second)
    assert [len(c.sat_ids) for c in scenario.clusters] == [7, 19]
    engine = Engine(scenario, SimClock(scenario.epoch_utc, 1.0, 60.0, fast=True))
    for _ in range(30):
        engine.step()
    formation = engine.models["formation"]
    assert formation.cluster_min.array.shape == (2,)
    assert (formation.cluster_min.array > 90.0).all()
    assert (formation.cluster_min.array < 210.0).all()
    orbit = engine.models["orbit"]
    for cluster in scenario.clusters:
        offsets_m = (orbit.pos_gcrs.array[list(cluster.sat_ids)]
                     - orbit.pos_gcrs.array[cluster.chief]) * 1e3
        assert np.linalg.norm(offsets_m, axis=1).max() <= cluster.spec.radius_m
    assert not [e for e in engine.events.drain() if e["kind"] == "closest_approach"]


def test_default_scenario_has_no_formation_fields() -> None:
    scenario = load_scenario("default")
    engine = Engine(scenario, SimClock(scenario.epoch_utc, 1.0, 60.0, fast=True))
    assert engine.models["formation"].fields() == []
    assert "n_cluster_members" not in engine.header()["fleet"]
    assert engine.models["formation"].nn_dist.array.size == 0  # nor per-node arrays


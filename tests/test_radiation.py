"""Radiation: the region-and-latitude SEU model, upset rollback, dose."""

from __future__ import annotations

import numpy as np
import pytest
from computeutil import DAWN_DUSK, QUIET, SMALL_HOST, command, engine

from twin.models.compute.radiation import (
    DEVICE_CLASSES,
    DIPOLE_POLE_LAT_DEG,
    DIPOLE_POLE_LON_DEG,
    PER_ACCELERATOR,
    SECONDS_PER_DAY,
    RadiationParams,
    RadiationState,
    class_inverse_dose_per_gy,
    environment,
    geomagnetic_latitude_deg,
)

ONE_MILLIDEGREE = 1e-3
ONE_ACCEL_MS = 1e-3  # accelerator-seconds of work


def test_geomagnetic_latitude_of_the_dipole_poles_and_equator() -> None:
    lat = np.array([DIPOLE_POLE_LAT_DEG, -DIPOLE_POLE_LAT_DEG, 90.0 - DIPOLE_POLE_LAT_DEG])
    lon = np.array([DIPOLE_POLE_LON_DEG, DIPOLE_POLE_LON_DEG + 180.0, DIPOLE_POLE_LON_DEG + 180])
    # The third point lies on the great circle 90 deg from the pole: geomagnetic equator.
    got = geomagnetic_latitude_deg(lat, lon)
    np.testing.assert_allclose(got, [90.0, -90.0, 0.0], atol=ONE_MILLIDEGREE)


def test_rates_rise_in_the_saa_and_at_high_geomagnetic_latitude() -> None:
    p = RadiationParams()
    base_gy_s = p.base_dose_gy_per_day / SECONDS_PER_DAY
    # Western equatorial Pacific (quiet), SAA centre at the reference altitude, near the north
    # geomagnetic pole (Canadian Arctic).
    lat = np.array([0.0, p.saa_lat_deg, 80.0])
    lon = np.array([150.0, p.saa_lon_deg, -75.0])
    alt = np.full(3, p.saa_ref_alt_km)
    see, dose, saa_w = environment(p, lat, lon, alt)
    # Behind the reference 10 mm the quiet single-event environment is the quiet dose rate.
    assert see[0] == pytest.approx(base_gy_s, rel=0.01)
    assert see[1] / see[0] == pytest.approx(p.saa_dose_factor, rel=0.02)
    assert see[2] / see[0] == pytest.approx(p.polar_factor, rel=0.02)
    assert saa_w[1] == 1.0
    assert dose[1] / dose[0] == pytest.approx(p.saa_dose_factor, rel=0.02)
    # Trapped protons grow with altitude: e-fold per scale height.
    higher, _, _ = environment(p, lat[1:2], lon[1:2], alt[1:2] + p.saa_scale_height_km)
    assert (higher[0] / base_gy_s - 1.0) == pytest.approx(
        np.e * (p.saa_dose_factor - 1.0), rel=0.01)
    # Thin shielding adds electron dose, not single events; thick shielding lowers both.
    thin = RadiationParams(shielding_mm_al=2.0)
    see_thin, dose_thin, _ = environment(thin, lat[:1], lon[:1], alt[:1])
    assert dose_thin[0] / dose[0] == pytest.approx(3.5, rel=1e-3)
    assert see_thin[0] / see[0] == pytest.approx(1.5, rel=1e-3)  # held at the 5 mm value
    thick = RadiationParams(shielding_mm_al=20.0)
    see_thick, _, _ = environment(thick, lat[:1], lon[:1], alt[:1])
    assert see_thick[0] / see[0] == pytest.approx(0.75, rel=1e-3)


# Suncatcher's 67 MeV results (arXiv 2511.19468, sections 2.3 and 4.3), rad(Si) per event:
# per chip SDC 14.4-20 (we take 17), HBM UECC ~44, SEFI ~5,000; per host CPU ~450, DRAM ~400.
SUNCATCHER_RAD_PER_EVENT = {"sdc": 17.0, "hbm_uecc": 44.0, "accel_sefi": 5000.0,
                            "host_cpu_sefi": 450.0, "host_dram_sefi": 400.0}
RAD_PER_GY = 100.0


def test_default_class_rates_are_the_published_doses_per_event() -> None:
    got = dict(zip(DEVICE_CLASSES, class_inverse_dose_per_gy(RadiationParams()), strict=True))
    for name, rad in SUNCATCHER_RAD_PER_EVENT.items():
        assert got[name] == pytest.approx(RAD_PER_GY / rad, rel=1e-12), name


def test_event_counts_per_class_match_a_hand_calculation_within_poisson_bounds() -> None:
    """Over a long seeded run at a fixed quiet place, each class's count matches
    N = n_devices x (dose rate x time) / (dose per event), hand-computed from the published
    doses per event, within 5 sigma (sigma = sqrt(N)); device resets are the functional
    interrupts exactly."""
    see_scale = 2000.0  # many events in a short run; every class scales alike
    p = RadiationParams(see_scale=see_scale)
    n, accels = 100, 8
    state = RadiationState(p, n)
    rng = np.random.default_rng(17)
    lat, lon, alt = np.zeros(n), np.full(n, 150.0), np.full(n, p.saa_ref_alt_km)
    powered = np.full(n, accels)
    steps, dt = 300, 60.0
    counts = np.zeros(len(DEVICE_CLASSES), dtype=np.int64)
    for k in range(steps):
        nodes, classes = state.step(rng, 1e9 + k * dt, dt, lat, lon, alt, powered)
        assert np.all(np.diff(nodes) >= 0)
        counts += np.bincount(classes, minlength=len(DEVICE_CLASSES))
    np.testing.assert_array_equal(counts, state.class_counts)
    # Hand calculation: the quiet single-event environment is the quiet dose rate
    # 0.0004 Gy/day = 0.04 rad/day behind 10 mm Al (at lon 150, lat 0: outside the SAA
    # and the polar step, both < 1e-4 of it).
    rad = 0.04 * see_scale * steps * dt / SECONDS_PER_DAY  # per device over the run
    devices = {"sdc": n * accels, "hbm_uecc": n * accels, "accel_sefi": n * accels,
               "host_cpu_sefi": n, "host_dram_sefi": n}
    for k, name in enumerate(DEVICE_CLASSES):
        expected = devices[name] * rad / SUNCATCHER_RAD_PER_EVENT[name]
        assert abs(counts[k] - expected) < 5.0 * np.sqrt(expected) + 1.0, (name, counts[k],
                                                                           expected)
    # Dose: constant rate at a fixed place, so dose = rate x time.
    assert state.dose.array[0] == pytest.approx(
        p.base_dose_gy_per_day * steps * dt / SECONDS_PER_DAY, rel=1e-5)


def test_upset_rates_follow_the_powered_devices_between_refreshes() -> None:
    """The per-step rates are kept while the environment and the powered devices stay the
    same (a read-only array, the same object); another array is another set of devices:
    with none powered, only the host classes strike, even within one environment refresh."""
    p = RadiationParams(see_scale=1e7)  # ~40 accelerator events a step over 50 nodes
    n = 50
    state = RadiationState(p, n)
    rng = np.random.default_rng(3)
    lat, lon, alt = np.zeros(n), np.zeros(n), np.full(n, 500.0)
    on = np.full(n, 8)
    off = np.zeros(n, dtype=np.int64)
    on.flags.writeable = off.flags.writeable = False
    for k in range(6):  # 6 s: within one refresh of the environment
        powered = off if k % 2 else on
        _, classes = state.step(rng, 1e9 + k, 1.0, lat, lon, alt, powered)
        accel = int(np.count_nonzero(PER_ACCELERATOR[classes]))
        assert (accel == 0) == (powered is off), k


def test_injected_upset_costs_exactly_the_work_since_the_last_checkpoint() -> None:
    eng = engine(DAWN_DUSK + QUIET + SMALL_HOST, dt_s=60.0)
    job_id = command(eng, "submit_job", kind="training", size_accel_h=80.0, accelerators=8,
                     checkpoint_interval_s=1800.0)["job_id"]
    for _ in range(45):  # 44 min of running: checkpoint at 30 min, 14 min since
        eng.step()
    before = command(eng, "job", job_id=job_id)["job"]
    since_h = before["done_accel_h"] - before["checkpoint_accel_h"]
    assert since_h == pytest.approx(8 * 14 / 60, abs=1e-9)
    command(eng, "inject_upset", sat=0, job_id=job_id)
    eng.step()
    after = command(eng, "job", job_id=job_id)["job"]
    assert after["lost_accel_h"] * 3600 == pytest.approx(since_h * 3600, abs=ONE_ACCEL_MS)
    # Rolled back to the checkpoint, then one more minute of work this step.
    assert after["done_accel_h"] == pytest.approx(before["checkpoint_accel_h"] + 8 / 60, abs=1e-9)
    fleet = eng.compute_model.fleet()
    assert fleet["lost_work_accel_h"] == pytest.approx(since_h, abs=1e-9)
    assert fleet["upsets_total"] == 1
    assert fleet["goodput_frac"] < 1.0


def test_reset_stalls_the_job_for_the_downtime() -> None:
    eng = engine(DAWN_DUSK + QUIET + SMALL_HOST, dt_s=60.0)
    job_id = command(eng, "submit_job", kind="training", size_accel_h=80.0, accelerators=8)[
        "job_id"]
    for _ in range(10):
        eng.step()
    command(eng, "inject_upset", sat=0, job_id=job_id, reset=True)
    eng.step()  # the reset takes 120 s: this step and the next make no progress
    done = command(eng, "job", job_id=job_id)["job"]["done_accel_h"]
    assert done == 0.0
    assert eng.compute_model.reason.array[0] == 4  # radiation
    eng.step()
    eng.step()
    assert command(eng, "job", job_id=job_id)["job"]["done_accel_h"] == pytest.approx(8 / 60)
    assert eng.compute_model.radiation.resets.array[0] == 1


def test_a_host_interrupt_rolls_back_and_stalls_every_job_on_the_node() -> None:
    """A host CPU functional interrupt reboots the node's host: both jobs roll back to their
    checkpoints and make no progress for the 120 s reset; an HBM error strikes one job only
    and resets nothing."""
    eng = engine(DAWN_DUSK + QUIET + SMALL_HOST, dt_s=60.0)
    jobs = [command(eng, "submit_job", kind="training", size_accel_h=80.0, accelerators=4,
                    checkpoint_interval_s=1800.0)["job_id"] for _ in range(2)]
    for _ in range(40):  # a checkpoint at 30 min, 9 min since
        eng.step()
    eng.events.drain()
    before = [command(eng, "job", job_id=j)["job"] for j in jobs]
    command(eng, "inject_upset", sat=0, device_class="host_cpu_sefi")
    eng.step()  # the reset takes 120 s: this step and the next make no progress
    eng.step()
    events = [e for e in eng.events.drain() if e["kind"] in ("upset", "device_reset")]
    assert [(e["kind"], e["device_class"]) for e in events] == [
        ("device_reset", "host_cpu_sefi")]
    for job_id, was in zip(jobs, before, strict=True):
        now = command(eng, "job", job_id=job_id)["job"]
        assert now["done_accel_h"] == pytest.approx(was["checkpoint_accel_h"], abs=1e-9)
        lost_h = was["done_accel_h"] - was["checkpoint_accel_h"]
        assert now["lost_accel_h"] == pytest.approx(lost_h, abs=1e-9) and lost_h > 0
    radiation = eng.compute_model.radiation
    assert radiation.resets.array[0] == 1 and radiation.upsets.array[0] == 1
    command(eng, "inject_upset", sat=0, device_class="hbm_uecc", job_id=jobs[0])
    eng.step()
    events = [e for e in eng.events.drain() if e["kind"] in ("upset", "device_reset")]
    assert [(e["kind"], e["device_class"]) for e in events] == [("upset", "hbm_uecc")]
    assert "HBM uncorrectable ECC error" in events[0]["message"]
    assert radiation.resets.array[0] == 1 and radiation.upsets.array[0] == 2


@pytest.mark.parametrize("value", ["5e-324", "0.0", "1e-9"])
def test_a_vanishing_dose_per_event_is_refused_by_name(value: str) -> None:
    """The scenario fuzz test found 5e-324 Gy per event: every rate overflowed to inf."""
    from pathlib import Path

    from twin.core.clock import SimClock
    from twin.core.engine import Engine
    from twin.scenario import ScenarioError, load_scenario, parse_scenario

    text = Path(load_scenario("default").source).read_text() + (
        f"\n[radiation]\naccel_sefi_dose_per_event_gy = {value}\n")
    scenario = parse_scenario(text)  # the models' tables are checked as the models build
    with pytest.raises(ScenarioError, match=r"radiation\.accel_sefi_dose_per_event_gy"):
        Engine(scenario, SimClock(scenario.epoch_utc, rate_hz=1.0, warp=1.0, fast=True))

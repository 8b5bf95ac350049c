"""Radiation: the region-and-latitude SEU model, upset rollback, dose."""

from __future__ import annotations

import numpy as np
import pytest
from computeutil import DAWN_DUSK, QUIET, SMALL_HOST, command, engine

from twin.models.compute.radiation import (
    DIPOLE_POLE_LAT_DEG,
    DIPOLE_POLE_LON_DEG,
    SECONDS_PER_DAY,
    RadiationParams,
    RadiationState,
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
    base = p.base_seu_per_accel_day / SECONDS_PER_DAY
    # Equatorial Pacific (quiet), SAA centre at the reference altitude, near the north
    # geomagnetic pole (Canadian Arctic).
    lat = np.array([0.0, p.saa_lat_deg, 80.0])
    lon = np.array([-150.0, p.saa_lon_deg, -75.0])
    alt = np.full(3, p.saa_ref_alt_km)
    seu, dose, saa_w = environment(p, lat, lon, alt)
    assert seu[0] == pytest.approx(base, rel=0.01)
    assert seu[1] / seu[0] == pytest.approx(p.saa_peak_factor, rel=0.02)
    assert seu[2] / seu[0] == pytest.approx(p.polar_factor, rel=0.02)
    assert saa_w[1] == 1.0
    assert dose[1] / dose[0] == pytest.approx(p.saa_dose_factor, rel=0.02)
    # Trapped protons grow with altitude: e-fold per scale height.
    higher, _, _ = environment(p, lat[1:2], lon[1:2], alt[1:2] + p.saa_scale_height_km)
    assert (higher[0] / base - 1.0) == pytest.approx(np.e * (p.saa_peak_factor - 1.0), rel=0.01)


def test_upset_counts_follow_poisson_statistics() -> None:
    p = RadiationParams(base_seu_per_accel_day=50.0, reset_frac=0.25)
    n = 200
    state = RadiationState(p, n)
    rng = np.random.default_rng(3)
    lat, lon, alt = np.zeros(n), np.full(n, 100.0), np.full(n, 500.0)  # far from the SAA
    powered = np.full(n, 8)
    total = resets = 0
    steps, dt = 400, 60.0
    for k in range(steps):
        up, rs = state.step(rng, 1e9 + k * dt, dt, lat, lon, alt, powered)
        total += int(up.sum())
        resets += int(rs.sum())
    expected = float(state.seu_rate.array[0]) / SECONDS_PER_DAY * 8 * n * steps * dt
    assert abs(total - expected) < 5.0 * np.sqrt(expected)
    assert abs(resets - 0.25 * total) < 5.0 * np.sqrt(0.25 * 0.75 * total)
    # Dose: constant rate at a fixed place, so dose = rate x time.
    assert state.dose.array[0] == pytest.approx(
        p.base_dose_gy_per_day * steps * dt / SECONDS_PER_DAY, rel=1e-5)


def test_upset_rates_follow_the_powered_devices_between_refreshes() -> None:
    """The per-step rates are kept while the environment and the powered devices stay the
    same (a read-only array, the same object); another array is another set of devices:
    with none powered, no upset, even within one environment refresh."""
    p = RadiationParams(base_seu_per_accel_day=1e4)  # ~46 upsets a step over 50 nodes
    n = 50
    state = RadiationState(p, n)
    rng = np.random.default_rng(3)
    lat, lon, alt = np.zeros(n), np.zeros(n), np.full(n, 500.0)
    on = np.full(n, 8)
    off = np.zeros(n, dtype=np.int64)
    on.flags.writeable = off.flags.writeable = False
    for k in range(6):  # 6 s: within one refresh of the environment
        powered = off if k % 2 else on
        up, _ = state.step(rng, 1e9 + k, 1.0, lat, lon, alt, powered)
        assert (int(up.sum()) == 0) == (powered is off), k


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

"""Scheduler: eclipse look-ahead against the orbit's own shadow, and the two policies."""

from __future__ import annotations

import numpy as np
import pytest
from computeutil import DAWN_DUSK, QUIET, command, engine

from twin.clock import SimClock
from twin.engine import Engine
from twin.scenario import load_scenario
from twin.scheduler import eclipse_lookahead, plan
from twin.subsystem import CommandRejected
from twin.workload import JobTable, WorkloadParams

# Half a minute over up to an hour of lead: the reference is sampled every 10 s, and the
# look-ahead's cylinder of the equatorial radius and circular orbit differ from the orbit
# model's conical shadow of the oblate Earth by seconds to tens of seconds.
HALF_MINUTE_S = 30.0


def test_eclipse_lookahead_matches_the_stepped_conical_shadow() -> None:
    """Predict shadow entry and length at t0 from the state alone; then step and see."""
    scenario = load_scenario("default")
    clock = SimClock(scenario.epoch_utc, rate_hz=1.0, warp=10.0, fast=True)
    eng = Engine(scenario, clock)
    shared = eng.shared
    in_shadow, to_entry, shadow_s = eclipse_lookahead(
        shared["pos_gcrs_km"], shared["vel_gcrs_km_s"], shared["sun_gcrs_km"])
    n = len(scenario.satellites)
    walker = np.array([s.group == "mid-53" for s in scenario.satellites])
    entry = np.full(n, np.nan)
    exit_ = np.full(n, np.nan)
    was_dark = shared["sunlit_frac"] < 0.5
    assert np.array_equal(was_dark[walker], in_shadow[walker])
    for k in range(1, 700):  # ~1.2 orbits at 10 s
        eng.step()
        dark = shared["sunlit_frac"] < 0.5
        entering = dark & ~was_dark & np.isnan(entry)
        entry[entering] = 10.0 * k
        leaving = ~dark & was_dark & ~np.isnan(entry) & np.isnan(exit_)
        exit_[leaving] = 10.0 * k
        was_dark = dark
    lit = walker & ~in_shadow
    np.testing.assert_allclose(entry[lit], to_entry[lit], atol=HALF_MINUTE_S)
    done = walker & ~np.isnan(exit_)
    np.testing.assert_allclose(exit_[done] - entry[done], shadow_s[done], atol=HALF_MINUTE_S)
    # The dawn-dusk plane rides the terminator: no eclipse at the equinox.
    assert np.all(np.isinf(to_entry[~walker]))
    assert np.all(np.isnan(entry[~walker]))


def _table(accels: int = 2, size_h: float = 1.0, submit_t: float = 0.0) -> JobTable:
    jobs = JobTable()
    jobs.add(kind=1, accels=accels, size_accel_s=size_h * 3600 * accels, priority=1,
             ckpt_interval_s=600.0, result_bytes=1e9, submit_t=submit_t)
    return jobs


def _nodes(**overrides: np.ndarray) -> dict[str, np.ndarray]:
    n = 4
    arrays = dict(
        free_accels=np.full(n, 8), free_storage_b=np.full(n, 1e12),
        power_room_w=np.full(n, np.inf), usable=np.ones(n, dtype=bool),
        sunlit_frac=np.ones(n, dtype=np.float32), to_eclipse_s=np.full(n, np.inf),
        radiator_k=np.full(n, 280.0))
    arrays.update(overrides)
    return arrays


def test_first_fit_takes_the_lowest_node_that_fits() -> None:
    nodes = _nodes(free_accels=np.array([1, 8, 8, 8]), sunlit_frac=np.array([1, 0, 1, 1.0]))
    placed, _ = plan("first_fit", WorkloadParams(), _table(), 10.0, accel_full_w=685.0,
                     **nodes)
    assert placed == [(0, 1)]  # node 0 lacks accelerators; node 1 is dark but fits
    assert nodes["free_accels"][1] == 6


def test_first_fit_respects_power_headroom_and_storage() -> None:
    nodes = _nodes(power_room_w=np.array([100.0, np.inf, np.inf, np.inf]),
                   free_storage_b=np.array([1e12, 1e8, 1e12, 1e12]))
    placed, _ = plan("first_fit", WorkloadParams(), _table(), 10.0, accel_full_w=685.0,
                     **nodes)
    assert placed == [(0, 2)]


def test_sun_aware_prefers_long_runway_then_cool_radiator() -> None:
    params = WorkloadParams(eclipse_runway_s=1200.0)
    nodes = _nodes(sunlit_frac=np.array([0.0, 1.0, 1.0, 1.0]),
                   to_eclipse_s=np.array([0.0, 300.0, np.inf, np.inf]),
                   radiator_k=np.array([200.0, 200.0, 290.0, 260.0]))
    placed, _ = plan("sun_aware", params, _table(), 10.0, accel_full_w=685.0, **nodes)
    assert placed == [(0, 3)]  # in sun, no eclipse ahead, the cooler of the two


def test_sun_aware_holds_before_an_eclipse_then_gives_up_waiting() -> None:
    params = WorkloadParams(eclipse_runway_s=1200.0, max_hold_s=3600.0)
    nodes = _nodes(to_eclipse_s=np.array([300.0, 600.0, 0.0, 100.0]),
                   sunlit_frac=np.array([1.0, 1.0, 0.0, 1.0]))
    placed, why = plan("sun_aware", params, _table(), 10.0, accel_full_w=685.0, **nodes)
    assert placed == [] and why["policy"] == 1
    # A short job that ends before the eclipse may start now.
    short = _table(size_h=0.1)
    placed, _ = plan("sun_aware", params, short, 10.0, accel_full_w=685.0, **_nodes(
        to_eclipse_s=np.array([300.0, 600.0, 0.0, 100.0]),
        sunlit_frac=np.array([1.0, 1.0, 0.0, 1.0])))
    assert placed == [(0, 1)]
    # Held past max_hold_s: the longest runway anywhere.
    placed, _ = plan("sun_aware", params, _table(), 4000.0, accel_full_w=685.0, **nodes)
    assert placed == [(0, 1)]


def test_set_policy_command() -> None:
    eng = engine(DAWN_DUSK + QUIET)
    assert command(eng, "set_policy", policy="first_fit")["policy"] == "first_fit"
    assert eng.compute_model.fleet()["scheduler_policy_code"] == 0
    with pytest.raises(CommandRejected, match="'policy' must be one of first_fit, sun_aware"):
        command(eng, "set_policy", policy="random")

"""Scheduler: eclipse look-ahead against the orbit's own shadow, and the two policies."""

from __future__ import annotations

import numpy as np
import pytest
from computeutil import DAWN_DUSK, QUIET, command, engine

from twin.core.clock import SimClock
from twin.core.engine import Engine
from twin.core.subsystem import CommandRejected
from twin.models.compute.scheduler import eclipse_lookahead, plan
from twin.models.compute.workload import QUEUED, RUNNING, JobTable, WorkloadParams
from twin.scenario import load_scenario

# Half a minute over up to an hour of lead: the reference is sampled every 10 s, and the
# look-ahead's cylinder of the equatorial radius and circular orbit differ from the orbit
# model's conical shadow of the oblate Earth by seconds to tens of seconds.
HALF_MINUTE_S = 30.0


def test_eclipse_lookahead_matches_the_stepped_conical_shadow() -> None:
    """Predict shadow entry and length at t0 from the state alone; then step and see."""
    scenario = load_scenario("default")
    clock = SimClock(scenario.epoch_utc, rate_hz=1.0, warp=10.0, fast=True)
    eng = Engine(scenario, clock)
    orbit = eng.orbit.outputs
    in_shadow, to_entry, shadow_s = eclipse_lookahead(
        orbit.pos_gcrs_km, orbit.vel_gcrs_km_s, orbit.sun_gcrs_km)
    n = len(scenario.satellites)
    walker = np.array([s.group == "mid-53" for s in scenario.satellites])
    entry = np.full(n, np.nan)
    exit_ = np.full(n, np.nan)
    was_dark = orbit.sunlit_frac < 0.5
    assert np.array_equal(was_dark[walker], in_shadow[walker])
    for k in range(1, 700):  # ~1.2 orbits at 10 s
        eng.step()
        dark = orbit.sunlit_frac < 0.5
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


# -- the pass's incremental evaluation against the plain per-job one ---------------------------


def _reference_plan(policy: str, params: WorkloadParams, jobs: JobTable, t_utc: float, *,
         free_accels: np.ndarray, free_storage_b: np.ndarray, power_room_w: np.ndarray,
         accel_full_w: float, usable: np.ndarray, sunlit_frac: np.ndarray,
         to_eclipse_s: np.ndarray, radiator_k: np.ndarray) -> tuple[list[tuple[int, int]], dict]:
    """The per-job evaluation ``plan`` replaced (HEAD a9992fd), kept as the reference."""
    placements: list[tuple[int, int]] = []
    why = {"accelerators": 0, "storage": 0, "power": 0, "policy": 0}
    queued = jobs.queued()[: params.max_jobs_per_pass]
    # Only nodes with a free accelerator can take anything: work on that (usually small)
    # subset, in node order, and map back at the end.
    nodes = np.flatnonzero(free_accels > 0)
    if queued.size == 0 or nodes.size == 0:
        why["accelerators"] = int(queued.size)
        return placements, why
    free_acc = free_accels[nodes]
    free_sto = free_storage_b[nodes]
    room = power_room_w[nodes]
    usable = usable[nodes]
    sunny = sunlit_frac[nodes] >= 0.999
    to_eclipse_s = to_eclipse_s[nodes]
    radiator_k = radiator_k[nodes]
    cool = radiator_k <= params.radiator_cool_k
    for slot in queued:
        accels = int(jobs.accels[slot])
        fits_acc = free_acc >= accels
        if not fits_acc.any():
            why["accelerators"] += 1
            # Nothing smaller than the free space can jump a bigger job forever: keep going,
            # smaller jobs may still fit (backfill).
            continue
        fits = fits_acc & usable & (free_sto >= jobs.result_bytes[slot])
        if not fits.any():
            why["storage"] += 1
            continue
        fits &= room >= accels * accel_full_w
        if not fits.any():
            why["power"] += 1
            continue
        if policy == "first_fit":
            k = int(np.argmax(fits))
        else:
            k = _reference_pick(params, jobs, slot, t_utc, fits, sunny, cool, to_eclipse_s,
                                radiator_k)
            if k < 0:
                why["policy"] += 1
                continue
        node = int(nodes[k])
        placements.append((int(slot), node))
        # Book the job on the subset and on the caller's full arrays alike.
        free_acc[k] -= accels
        free_accels[node] -= accels
        free_sto[k] -= jobs.result_bytes[slot]
        free_storage_b[node] -= jobs.result_bytes[slot]
        room[k] -= accels * accel_full_w
        power_room_w[node] -= accels * accel_full_w
    return placements, why


def _reference_pick(params: WorkloadParams, jobs: JobTable, slot: int, t_utc: float,
                    fits: np.ndarray, sunny: np.ndarray, cool: np.ndarray,
                    to_eclipse_s: np.ndarray, radiator_k: np.ndarray) -> int:
    """The reference sun-aware choice, candidates sorted per job."""
    remaining_accel_s = jobs.size_accel_s[slot] - jobs.done_accel_s[slot]
    remaining_s = remaining_accel_s / max(int(jobs.accels[slot]), 1)
    needed_s = min(remaining_s, params.eclipse_runway_s)
    good = fits & sunny & (to_eclipse_s >= needed_s)
    held_s = t_utc - jobs.submit_t[slot]
    if not good.any():
        if held_s < params.max_hold_s:
            return -1
        good = fits
    candidates = np.flatnonzero(good)
    # Runway counts up to twice the need: beyond that, a cooler radiator matters more.
    runway = np.minimum(to_eclipse_s[candidates], 2.0 * max(needed_s, 1.0))
    order = np.lexsort((candidates, radiator_k[candidates], ~cool[candidates], -runway))
    return int(candidates[order[0]])


def _random_pass(rng: np.random.Generator, n: int, n_jobs: int) -> tuple[JobTable, dict]:
    """A crowded pass: few distinct values, so ties, exhaustion and holds all happen."""
    jobs = JobTable()
    for _ in range(n_jobs):
        accels = int(rng.choice([1, 2, 4, 8]))
        size_h = float(rng.choice([0.05, 0.2, 1.0, 24.0]))
        jobs.add(kind=int(rng.integers(2)), accels=accels,
                 size_accel_s=size_h * 3600 * accels, priority=int(rng.integers(1, 3)),
                 ckpt_interval_s=600.0, result_bytes=float(rng.choice([4e9, 20e9])),
                 submit_t=float(rng.choice([0.0, -5000.0])))
    to_eclipse = rng.choice([0.0, 100.0, 600.0, 1200.0, 2400.0, 3000.0, np.inf, np.nan], n)
    nodes = dict(
        free_accels=rng.integers(0, 9, n), free_storage_b=rng.choice([1e9, 8e9, 50e9], n),
        power_room_w=rng.choice([500.0, 3000.0, 6000.0, np.inf], n),
        usable=rng.random(n) < 0.9, sunlit_frac=rng.choice([0.0, 0.5, 1.0], n),
        to_eclipse_s=to_eclipse, radiator_k=rng.choice([250.0, 290.0, 300.0, 310.0, np.nan], n))
    return jobs, nodes


@pytest.mark.parametrize("policy", ["first_fit", "sun_aware"])
def test_plan_places_every_job_where_the_per_job_evaluation_does(policy: str) -> None:
    rng = np.random.default_rng(4428)
    params = WorkloadParams(max_jobs_per_pass=300)
    placed, reasons = 0, set()
    for case in range(40):
        jobs, nodes = _random_pass(rng, n=int(rng.integers(1, 200)), n_jobs=300)
        ref_nodes = {k: v.copy() for k, v in nodes.items()}
        t_utc = float(rng.choice([10.0, 4000.0]))
        got = plan(policy, params, jobs, t_utc, accel_full_w=685.0, **nodes)
        want = _reference_plan(policy, params, jobs, t_utc, accel_full_w=685.0, **ref_nodes)
        assert got == want, f"case {case}"
        placed += len(got[0])
        reasons |= {reason for reason, count in got[1].items() if count}
        for key in ("free_accels", "free_storage_b", "power_room_w"):
            np.testing.assert_array_equal(nodes[key], ref_nodes[key], err_msg=key)
    # The cases exercise placements and every reason a job waits.
    assert placed > 1000
    assert reasons == {"accelerators", "storage", "power"} | (
        {"policy"} if policy == "sun_aware" else set())


def test_job_table_counts_follow_every_state_change() -> None:
    """The queue and running counts, the kept running set and the oldest queued submit time
    agree with a scan of the table after every add, start, requeue and release (slots
    reused, the table grown, NaN-free submit times in any order)."""
    rng = np.random.default_rng(11)
    jobs = JobTable(capacity=4)
    changes = 0
    for k in range(800):
        queued = np.flatnonzero(jobs.state == QUEUED)
        running = np.flatnonzero(jobs.state == RUNNING)
        version = jobs.running_version
        op = int(rng.integers(4))
        if op == 0 or queued.size == 0:
            jobs.add(kind=1, accels=int(rng.integers(1, 9)), size_accel_s=3600.0, priority=1,
                     ckpt_interval_s=600.0, result_bytes=1e9,
                     submit_t=float(rng.choice([-50.0, 0.0, k, 2.0 * k])))
        elif op == 1:
            slots = rng.choice(queued, size=int(rng.integers(1, queued.size + 1)),
                               replace=False)
            jobs.start(slots, rng.integers(0, 5, slots.size), float(k))
        elif op == 2 and running.size:
            jobs.requeue(int(rng.choice(running)))
        else:
            jobs.release(int(rng.choice(np.concatenate([queued, running]))))
        changed = not np.array_equal(np.flatnonzero(jobs.state == RUNNING), running)
        assert (jobs.running_version != version) == changed, k  # counts every change
        changes += changed
        queued = np.flatnonzero(jobs.state == QUEUED)
        running = np.flatnonzero(jobs.state == RUNNING)
        assert jobs.n_queued == queued.size and jobs.n_running == running.size, k
        np.testing.assert_array_equal(jobs.running(), running)
        assert jobs.oldest_queued_submit_t() == (jobs.submit_t[queued].min() if queued.size
                                                 else np.inf), k
    assert changes > 100 and jobs.capacity > 4


def test_eclipse_lookahead_in_chunks_is_the_whole_fleets() -> None:
    # Past LOOKAHEAD_CHUNK_ROWS nodes the prediction runs chunk by chunk (its temporaries
    # were 340 MB at a million): each node's numbers are those of the whole at once.
    from twin.models.compute.scheduler import LOOKAHEAD_CHUNK_ROWS, eclipse_lookahead_rows

    rng = np.random.default_rng(5)
    n = 2 * LOOKAHEAD_CHUNK_ROWS + 1234  # three chunks, the last a short one
    pos = rng.normal(size=(n, 3))
    pos *= (6_900.0 + 1_000.0 * rng.random(n))[:, None] / np.linalg.norm(pos, axis=1)[:, None]
    vel = np.cross(pos, rng.normal(size=(n, 3)))
    vel *= 7.5 / np.linalg.norm(vel, axis=1)[:, None]
    pos[[7, n - 1]] = np.nan  # as SGP4 failures
    sun = np.array([1.4e8, 3.0e7, 1.0e7])
    axis = np.array([0.0, 0.1, 0.99]) / np.linalg.norm([0.0, 0.1, 0.99])
    for extra in ((), (axis, 1.0034, 6_398.0)):
        whole = eclipse_lookahead_rows(pos, vel, sun, *extra)
        chunked = eclipse_lookahead(pos, vel, sun, *extra)
        assert 0 < np.count_nonzero(whole[0]) < n
        assert np.array_equal(chunked[0], whole[0])
        for mine, theirs in zip(chunked[1:], whole[1:], strict=True):
            np.testing.assert_allclose(mine, theirs, rtol=1e-12, atol=0.0)

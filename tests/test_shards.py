"""SGP4 across worker processes (twin.astro.shards): the same frames for any number of
workers, a dead worker detected and its shard restarted, nothing left behind on close."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from twin.astro.shards import ShardedPropagator, ShardError, shard_bounds, shared_band
from twin.core.clock import SimClock
from twin.core.engine import Engine
from twin.core.slices import BLOCK_ROWS, SlicePool, blocks, slice_bounds
from twin.models.compute.params import ComputeParams
from twin.models.compute.power_clock import leakage_and_dies_k
from twin.models.power.balance import DISSIPATED, LOAD, BatteryBalance
from twin.models.power.params import PowerParams
from twin.models.thermal.solver import SlicedSolve, SolveWork
from twin.protocol.codec import PROTOCOL_VERSION, StateEncoder
from twin.scenario import Scenario, load_scenario, parse_scenario

SEED = 7
ROOT = Path(__file__).resolve().parent.parent
STEPS = 12


def _frame_hashes(workers: int, name: str | Scenario = "default", steps: int = STEPS) -> list[str]:
    """SHA-256 of every encoded state message of a fixed run of a bundled scenario (a name)
    or of a scenario given as a loaded `Scenario`."""
    scenario = load_scenario(name) if isinstance(name, str) else name
    clock = SimClock(scenario.epoch_utc, rate_hz=1.0, warp=60.0, fast=True)
    engine = Engine(scenario, clock, seed=SEED, workers=workers)
    try:
        assert len(engine.orbit.geometry.pool.bounds) == min(
            workers, -(-engine.n_sats // BLOCK_ROWS))  # the geometry's row slices
        encoder = StateEncoder(engine.field_specs)
        hashes = []
        for k in range(steps):
            engine.step()
            header = {"v": PROTOCOL_VERSION, "seq": k, "t_utc": clock.t_utc,
                      **engine.header()}
            digest = hashlib.sha256()
            for frame in encoder.encode(header, [f.array for f in engine.fields]):
                digest.update(bytes(frame))
            hashes.append(digest.hexdigest())
        return hashes
    finally:
        engine.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", ["default", "suncatcher"])  # 40 nodes; 81 in formation
def test_frames_are_identical_with_1_2_and_3_workers(name: str) -> None:
    one = _frame_hashes(1, name)
    assert len(set(one)) == STEPS  # the fleet moves: frames differ step to step
    assert _frame_hashes(2, name) == one
    assert _frame_hashes(3, name) == one


def _walker_fleet(n_sats: int, extra: str = "") -> Scenario:
    """The default scenario with its Walker shell grown to ``n_sats`` - 16 satellites, and
    ``extra`` TOML appended (a first line ``attitude = ...`` goes into [thermal], one
    ``max_discharge_w = ...`` replaces [power]'s)."""
    text = (ROOT / "assets" / "scenarios" / "default.toml").read_text()
    if extra.startswith("max_discharge_w"):
        line, extra = extra.split("\n", 1)
        text = re.sub(r"(?m)^max_discharge_w = .*$", line, text, count=1)
    text = text.replace("planes = 3\nsats_per_plane = 8",
                        f"planes = 40\nsats_per_plane = {(n_sats - 16) // 40}", 1)
    if extra.startswith("attitude"):  # a key of [thermal], which the file has
        extra, rest = extra.split("\n", 1)
        text, extra = text.replace("[thermal]\n", f"[thermal]\n{extra}\n", 1), rest
    return parse_scenario(text + extra)


# The other branches of the sliced models: an attitude law whose exposure depends on beta,
# and per-node radiator parameters (a node class on the 16 dawn-dusk nodes, which lie in
# the last block).
LVLH_AND_A_NODE_CLASS = """attitude = "lvlh"

[[node_class]]
name = "big-radiators"
nodes = ["dawn-dusk"]
[node_class.thermal]
radiator_emissivity = 0.62
radiator_area_m2 = 9.0
"""


# A battery that cannot carry the 11.4 kW load (2 kW at most): every eclipsed node sheds
# load each step, in every slice, so the balance's slices join what they left unserved.
SHORT_DISCHARGE = """max_discharge_w = 2000.0
"""


@pytest.mark.timeout(180)
@pytest.mark.parametrize("extra", ["", LVLH_AND_A_NODE_CLASS, SHORT_DISCHARGE],
                         ids=["default", "lvlh", "short-battery"])
def test_frames_of_a_fleet_of_several_blocks_are_identical_with_1_2_and_3_workers(
        extra: str) -> None:
    # 20,016 satellites: three BLAS blocks, cut into one, two (blocks 0-1, 2) and three
    # row slices for the frames, shadow and station geometry, the arrays, the radiators'
    # absorbed heat, the battery balance, the thermal network's integration, compute's
    # leakage and die temperatures and the NaN check, and 1, 2, 3 SGP4 shards.
    fleet = _walker_fleet(20_016, extra)
    assert -(-len(fleet.satellites) // BLOCK_ROWS) == 3
    one = _frame_hashes(1, fleet, steps=4)
    assert len(set(one)) == 4
    assert _frame_hashes(2, fleet, steps=4) == one
    assert _frame_hashes(3, fleet, steps=4) == one


def test_row_slices_are_whole_blocks_and_cover_the_fleet() -> None:
    assert slice_bounds(20_000, 2, 8192) == [(0, 16384), (16384, 20000)]
    assert slice_bounds(20_000, 3, 8192) == [(0, 8192), (8192, 16384), (16384, 20000)]
    assert slice_bounds(100, 4, 8192) == [(0, 100)]  # one block: one slice
    assert slice_bounds(0, 2) == [(0, 0)]
    assert list(blocks(5000, 20000, 8192)) == [(5000, 8192), (8192, 16384), (16384, 20000)]


def test_station_look_angles_in_slices_are_the_whole_fleets() -> None:
    scenario = load_scenario("starlink")
    clock = SimClock(scenario.epoch_utc, rate_hz=1.0, warp=60.0, fast=True)
    engine = Engine(scenario, clock, seed=SEED)
    orbit = engine.orbit
    stations, rows = orbit.stations, orbit.geometry.rows
    n = engine.n_sats
    failed = np.zeros(n, dtype=bool)
    failed[[3, 4000]] = True  # as SGP4 failures: NaN elevations
    shape = orbit.elevation.array.shape
    whole = (np.empty(shape, np.float32), np.empty(shape, np.float32), np.empty(shape, bool))
    pairs, elevation = stations.look_into(orbit.pos_itrs.array, *whole, rows_km=rows[6:11],
                                          failed=failed)
    assert pairs.size > 50
    parts_out = (np.empty(shape, np.float32), np.empty(shape, np.float32),
                 np.empty(shape, bool))
    parts = [stations.look_slice(rows[6:11], *parts_out, failed, a, b)
             for a, b in ((0, 1000), (1000, 1001), (1001, 4428))]
    got_pairs, got_elevation = stations.merge_slices(parts, n)
    assert np.array_equal(got_pairs, pairs) and np.array_equal(got_elevation, elevation)
    for mine, theirs in zip(parts_out, whole, strict=True):
        assert np.array_equal(mine, theirs, equal_nan=True)
    engine.close()


def test_shards_are_contiguous_and_cover_the_fleet() -> None:
    assert shard_bounds(10, 3) == [(0, 3), (3, 7), (7, 10)]
    assert shard_bounds(2, 5) == [(0, 1), (1, 2)]  # never an empty shard
    with pytest.raises(ValueError, match="workers must be at least 1"):
        ShardedPropagator([], 0)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers signal 0: it is gone once its state is Z or it is reaped.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"


@pytest.mark.timeout(60)
def test_a_killed_worker_is_detected_restarted_and_alarmed() -> None:
    scenario = load_scenario("default")
    clock = SimClock(scenario.epoch_utc, rate_hz=1.0, warp=60.0, fast=True)
    engine = Engine(scenario, clock, seed=SEED, workers=2)
    reference = Engine(load_scenario("default"),
                       SimClock(scenario.epoch_utc, rate_hz=1.0, warp=60.0, fast=True),
                       seed=SEED)
    propagator = engine.orbit.propagator
    try:
        engine.step()
        reference.step()
        victim = propagator.pids[1]
        os.kill(victim, signal.SIGKILL)
        started = time.monotonic()
        engine.step()  # finds the worker dead, restarts its shard, propagates again
        reference.step()
        took_s = time.monotonic() - started
        assert took_s < 10.0, f"detecting the dead worker took {took_s:.1f} s"
        assert propagator.restarts_total == 1
        assert propagator.pids[1] != victim and _alive(propagator.pids[1])
        alarms = [e for e in engine.events.drain() if e["kind"] == "worker_restarted"]
        assert len(alarms) == 1 and alarms[0]["severity"] == "alarm"
        assert "shard 1" in alarms[0]["message"] and "died" in alarms[0]["message"]
        # The restarted shard's rows are this step's, exactly as one process gives them.
        assert np.array_equal(engine.orbit.pos_gcrs.array, reference.orbit.pos_gcrs.array)
        engine.step()
        reference.step()
        assert np.array_equal(engine.orbit.pos_itrs.array, reference.orbit.pos_itrs.array)
    finally:
        engine.close()
        reference.close()


@pytest.mark.timeout(60)
def test_a_worker_that_keeps_dying_stops_the_propagation_with_a_clear_message() -> None:
    satrecs = [sat.satrec for sat in load_scenario("default").satellites]
    propagator = ShardedPropagator(satrecs, 2)
    shm = Path("/dev/shm") / propagator.shm_name.lstrip("/")
    try:
        propagator.propagate(2461000.5, 0.25)
        # Every restart is killed at once: the shard cannot be brought back.
        original_start = propagator._start

        def start_and_kill(shard: int) -> None:
            original_start(shard)
            os.kill(propagator.pids[shard], signal.SIGKILL)

        propagator._start = start_and_kill  # type: ignore[method-assign]
        os.kill(propagator.pids[1], signal.SIGKILL)
        first, last = propagator.bounds[1][0], propagator.bounds[1][1] - 1
        with pytest.raises(ShardError,
                           match=rf"shard 1 \(satellites {first}-{last}\) died.*--workers 1"):
            propagator.propagate(2461000.5, 0.5)
        assert not shm.exists()  # giving up closed everything
    finally:
        propagator.close()


@pytest.mark.timeout(60)
def test_close_leaves_no_process_and_no_shared_memory() -> None:
    scenario = load_scenario("default")
    engine = Engine(scenario, SimClock(scenario.epoch_utc, rate_hz=1.0, warp=60.0, fast=True),
                    workers=3)
    propagator = engine.orbit.propagator
    pids = list(propagator.pids.values())
    assert len(pids) == 2  # shard 0 is the engine's own
    shm = Path("/dev/shm") / propagator.shm_name.lstrip("/")
    engine.step()
    assert shm.exists() and all(_alive(pid) for pid in pids)
    engine.close()
    engine.close()  # idempotent
    assert not shm.exists()
    deadline = time.monotonic() + 5.0
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in pids)


@pytest.mark.timeout(90)
def test_odc_run_with_workers_steps_and_leaves_nothing_behind() -> None:
    any_port = "tcp://127.0.0.1:*"
    result = subprocess.run(
        [sys.executable, "-m", "odc.cli", "run", "--scenario", "default", "--workers", "2",
         "--fast", "--steps", "5", "--quiet", "--pub", any_port, "--cmd", any_port,
         "--ingest", any_port],
        cwd=ROOT, capture_output=True, text=True, timeout=80,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert "stopped after 5 steps" in result.stderr
    assert "leaked" not in result.stderr  # the resource tracker's complaint
    shm = re.search(r"workers  2 \(SGP4 in 2 shards; shared memory (/dev/shm/\S+)\)",
                    result.stderr)
    assert shm, result.stderr
    assert not Path(shm.group(1)).exists()


def test_odc_run_refuses_zero_workers() -> None:
    result = subprocess.run([sys.executable, "-m", "odc.cli", "run", "--workers", "0"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--workers" in result.stderr


@pytest.mark.timeout(120)
def test_the_bench_prints_one_row_per_worker_count_and_refuses_zero_workers() -> None:
    bench = [sys.executable, str(ROOT / "bench" / "shards.py")]
    result = subprocess.run([*bench, "--scenario", "default", "--steps", "3", "--workers",
                             "1", "2"], cwd=ROOT, capture_output=True, text=True, timeout=110)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert [row.split("|")[1].strip() for row in rows[1:]] == ["1", "2"]
    assert "40 satellites" in result.stdout
    refused = subprocess.run([*bench, "--workers", "0"], cwd=ROOT, capture_output=True,
                             text=True, timeout=60)
    assert refused.returncode == 2 and "--workers: must be at least 1" in refused.stderr


@pytest.mark.timeout(60)
def test_a_silent_worker_is_killed_after_the_stall_time_and_restarted() -> None:
    satrecs = [sat.satrec for sat in load_scenario("default").satellites]
    propagator = ShardedPropagator(satrecs, 2, stall_s=1.0)
    reference = ShardedPropagator(satrecs, 1)
    try:
        frozen = propagator.pids[1]
        os.kill(frozen, signal.SIGSTOP)  # alive, but never answers
        started = time.monotonic()
        pos, _, _ = propagator.propagate(2461000.5, 0.25)
        took_s = time.monotonic() - started
        assert 1.0 <= took_s < 8.0
        assert propagator.restarts == [(1, "did not answer in 1 s")]
        assert propagator.pids[1] != frozen and not _alive(frozen)
        assert np.array_equal(pos, reference.propagate(2461000.5, 0.25)[0])
    finally:
        propagator.close()
        reference.close()


ORPHAN_SCRIPT = """
import sys, time
from twin.astro.shards import ShardedPropagator
from twin.scenario import Scenario, load_scenario, parse_scenario
propagator = ShardedPropagator([s.satrec for s in load_scenario("default").satellites], 3)
print(propagator.shm_name, *propagator.pids.values(), flush=True)
time.sleep(60)
"""


def killed_twins_workers_end(script: str, check: Any = None) -> None:
    """Run ``script`` (a twin that starts three shards, prints its shared memory's name and
    its two workers' pids, and waits), ``check(pids)`` its workers, kill it with no
    clean-up, and assert that the workers end and the shared memory goes on their own."""
    twin = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        shm_name, *pids = twin.stdout.readline().split()
        assert len(pids) == 2 and all(_alive(int(pid)) for pid in pids)
        if check is not None:
            check([int(pid) for pid in pids])
        twin.kill()  # no close, no atexit: the workers must notice on their own
        twin.wait(10)
        deadline = time.monotonic() + 15.0
        while any(_alive(int(pid)) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(int(pid)) for pid in pids)
        # Python's resource tracker (its own process) unlinks what a killed twin left.
        shm = Path("/dev/shm") / shm_name.lstrip("/")
        while shm.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not shm.exists()
    finally:
        if twin.poll() is None:
            twin.kill()
        twin.stdout.close()


@pytest.mark.timeout(60)
def test_workers_end_by_themselves_when_the_twin_is_killed() -> None:
    killed_twins_workers_end(ORPHAN_SCRIPT)


BLAS_SCRIPT = """
import ctypes
from twin.runtime.blas import SETTERS, _loaded_openblas, limit_blas_threads
assert limit_blas_threads(1)
library = ctypes.CDLL(_loaded_openblas()[0])
getter = next(getattr(library, name.replace("set", "get"), None) for name in SETTERS
              if getattr(library, name.replace("set", "get"), None) is not None)
print(getter())
"""


def test_odc_run_leaves_openblas_one_thread() -> None:
    result = subprocess.run([sys.executable, "-c", BLAS_SCRIPT], cwd=ROOT, capture_output=True,
                            text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT),
                                                        "OPENBLAS_NUM_THREADS": "2"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"


def _sgp4_workers(twin: Any, earlier: frozenset[int] = frozenset()) -> list[Any]:
    """The SGP4 workers under a process (psutil): each names itself ``odc-shard-N``; a
    worker from the forkserver is the twin's grandchild. Zombies and ``earlier`` left out."""
    import psutil

    found = []
    for child in twin.children(recursive=True):
        try:
            if (child.pid not in earlier and child.name().startswith("odc-shard-")
                    and child.status() != psutil.STATUS_ZOMBIE):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


@pytest.mark.timeout(90)
def test_a_running_twin_alarms_on_a_killed_worker_and_streams_on() -> None:
    import psutil
    import zmq
    from procutil import twin_process
    from twinutil import connected, receive

    with twin_process("--scenario", "default", "--workers", "2", "--rate", "20") as (
            proc, addresses), connected(zmq.SUB, addresses["stream"], SUBSCRIBE=b"") as sub:
        receive(sub, "state", timeout_s=20)
        twin = psutil.Process(proc.pid)
        workers = _sgp4_workers(twin)
        assert len(workers) == 1  # shard 0 is the twin's own
        workers[0].kill()
        kinds: list[str] = []
        deadline = time.monotonic() + 20
        while "worker_restarted" not in kinds and time.monotonic() < deadline:
            kinds.append(receive(sub, "event", timeout_s=20).header["kind"])
        assert "worker_restarted" in kinds
        step = receive(sub, "state").header["step"]
        assert receive(sub, "state", timeout_s=10).header["step"] > step
        restarted = _sgp4_workers(twin)
        assert len(restarted) == 1 and restarted[0].pid != workers[0].pid
    deadline = time.monotonic() + 10
    while restarted[0].is_running() and restarted[0].status() != psutil.STATUS_ZOMBIE \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not restarted[0].is_running() or restarted[0].status() == psutil.STATUS_ZOMBIE


@pytest.mark.timeout(90)
def test_odc_run_stops_with_the_reason_when_a_shard_will_not_come_back(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import threading

    import psutil

    from odc import cli as odc_cli

    # Fault injection: every restarted worker is killed as soon as it starts.
    original_start = ShardedPropagator._start

    def start_restarts_dead(self: ShardedPropagator, shard: int) -> None:
        restarting = self._processes[shard] is not None
        original_start(self, shard)
        if restarting:
            os.kill(self._processes[shard].pid, signal.SIGKILL)

    monkeypatch.setattr(ShardedPropagator, "_start", start_restarts_dead)
    me = psutil.Process()
    # Only this run's workers: a long test session may hold other workers (earlier tests'
    # on their way out).
    earlier = frozenset(child.pid for child in me.children(recursive=True))

    def this_runs_workers() -> list[psutil.Process]:
        return _sgp4_workers(me, earlier)

    def kill_the_worker_once_running() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            workers = this_runs_workers()
            if workers:
                time.sleep(0.5)  # a few steps first
                workers[0].kill()
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_the_worker_once_running, daemon=True)
    killer.start()
    any_port = "tcp://127.0.0.1:*"
    started = time.monotonic()
    # --duration is simulated seconds: 500 steps (25 s at 20 Hz), room for a loaded machine
    # to reach the kill; the run ends at the kill.
    status = odc_cli.main(["run", "-q", "--scenario", "default", "--workers", "2",
                           "--rate", "20", "--duration", "1500", "--pub", any_port, "--cmd",
                           any_port, "--ingest", any_port])
    killer.join(5)
    err = capsys.readouterr().err
    assert status == 1, err
    first, last = shared_band(shard_bounds(40, 2))[0], 40
    assert f"odc run: SGP4 worker for shard 1 (satellites {first}-{last - 1}) died again " \
           "after 2 restarts in one step" in err
    assert time.monotonic() - started < 30
    assert not this_runs_workers()
    shm = re.search(r"shared memory (/dev/shm/\S+)\)", err)
    assert shm and not Path(shm.group(1)).exists()


@pytest.mark.timeout(60)
def test_ctrl_c_on_the_terminal_stops_the_twin_not_its_workers_first() -> None:
    any_port = "tcp://127.0.0.1:*"
    twin = subprocess.Popen(
        [sys.executable, "-m", "twin", "--scenario", "default", "--workers", "2", "--rate",
         "20", "--pub", any_port, "--cmd", any_port, "--ingest", any_port],
        cwd=ROOT, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        while "workers  2" not in twin.stderr.readline():
            assert twin.poll() is None, "the twin ended before it started"
        time.sleep(1.0)
        os.killpg(twin.pid, signal.SIGINT)  # what Ctrl-C does: the whole group
        _, err = twin.communicate(timeout=30)
    finally:
        if twin.poll() is None:
            twin.kill()
            twin.communicate()
    assert twin.returncode == 0, err
    assert "stopped after" in err
    assert "Traceback" not in err and "restarting" not in err


@pytest.mark.timeout(60)
def test_any_shard_count_gives_the_in_process_rows_bit_for_bit_failures_included() -> None:
    from twin.astro.propagate import Propagator

    satrecs = [sat.satrec for sat in load_scenario("starlink").satellites]
    reference = Propagator(satrecs)
    epoch_jd = satrecs[0].jdsatepoch
    # Now, and ten years on, when SGP4 reports many of these low orbits decayed (NaN rows).
    instants = [(epoch_jd, 0.3), (epoch_jd + 3650.0, 0.3)]
    expected = []
    for jd_whole, jd_frac in instants:
        pos, vel, status = reference.propagate(jd_whole, jd_frac)
        expected.append((pos.copy(), vel.copy(), status.copy(), reference.failed.copy()))
    assert expected[1][2].any() and not expected[1][2].all()
    for workers in (2, 5):
        propagator = ShardedPropagator(satrecs, workers)
        try:
            for (jd_whole, jd_frac), (pos, vel, status, failed) in zip(instants, expected,
                                                                        strict=True):
                got = propagator.propagate(jd_whole, jd_frac)
                assert np.array_equal(got[0], pos, equal_nan=True), workers
                assert np.array_equal(got[1], vel, equal_nan=True), workers
                assert np.array_equal(got[2], status), workers
                assert np.array_equal(propagator.failed, failed)
                assert propagator.any_failed == bool(failed.any())
        finally:
            propagator.close()


def test_a_slice_that_raises_is_raised_after_every_slice_finished() -> None:
    from twin.core.slices import SlicePool

    pool = SlicePool(3 * BLOCK_ROWS, 3)
    done: list[int] = []

    def work(start: int, stop: int) -> int:
        if start == BLOCK_ROWS:
            raise ValueError("slice 1 fails")
        time.sleep(0.05)
        done.append(start)
        return stop - start

    with pytest.raises(ValueError, match="slice 1 fails"):
        pool.run(work)
    assert sorted(done) == [0, 2 * BLOCK_ROWS]  # the others ran to their end
    done.clear()
    pool.close()
    with pytest.raises(ValueError, match="slice 1 fails"):
        pool.run(work)  # closed: the slices in this thread, in order, up to the failure
    assert done == [0]
    pool.close()  # idempotent


def test_the_models_sliced_pieces_give_the_whole_arrays_bits() -> None:
    # The battery balance, the thermal integration and the die terms over 1, 2 and 3 row
    # slices of a fleet of three blocks, against one call on the whole arrays, bit for bit:
    # with per-node radiators and capacities, and deficits (unserved load) in the middle
    # slice only, so the balance joins slices that have none with one that has some.
    n = 3 * BLOCK_ROWS - 100
    rng = np.random.default_rng(SEED)
    params = PowerParams()
    supply = rng.uniform(0.0, 9000.0, n)
    payload = rng.uniform(0.0, 8000.0, n)
    supply[BLOCK_ROWS:2 * BLOCK_ROWS:7] = 0.0  # eclipsed, and more than the battery gives
    payload[BLOCK_ROWS:2 * BLOCK_ROWS:7] = params.max_discharge_w + 5000.0
    soc = rng.uniform(0.2, 0.95, n)
    temps = rng.uniform(250.0, 330.0, (4, n))
    heat = rng.uniform(0.0, 8000.0, (4, n))
    capacities = rng.uniform(2e4, 2e5, (4, n))
    capacities[3] = 9e4  # the battery's is the fleet's
    g_loop, k_rad = rng.uniform(20.0, 400.0, n), rng.uniform(1e-7, 4e-7, n)
    busy = rng.integers(0, 9, n)
    junction = rng.uniform(300.0, 370.0, n).astype(np.float32)
    hbm, plate = junction - 3.0, junction - 20.0
    compute = ComputeParams()
    rise = np.array([0.05, 0.04])

    def run(workers: int) -> list[np.ndarray]:
        pool = SlicePool(n, workers)
        try:
            rows = np.zeros((DISSIPATED - LOAD, n))
            unserved = BatteryBalance(params).balance_in_slices(
                pool, supply, 1500.0, payload, soc, 7.56e7, 60.0, rows)
            assert unserved[0] is not None and unserved[1] is not None
            out, rhs = np.empty((4, n)), np.empty((4, n))
            SlicedSolve(SolveWork(n), pool).step(temps, 1.0 / 60.0, capacities, g_loop, 30.0,
                                                 8.0, k_rad, 2e-7, heat, 3.0**4, 1, out, rhs)
            dies = leakage_and_dies_k(pool, compute, busy, junction, hbm, plate, rise)
            return [rows, *unserved, out, *dies]
        finally:
            pool.close()

    whole = run(1)
    assert np.count_nonzero(whole[1][:BLOCK_ROWS]) == 0 < np.count_nonzero(whole[1])
    for workers in (2, 3):
        for got, want in zip(run(workers), whole, strict=True):
            assert got.tobytes() == want.tobytes()

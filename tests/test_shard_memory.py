"""The SGP4 workers of a generated fleet start from the forkserver, not from the twin: a
worker, first or restarted, holds its shard and none of the twin's pages."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from tests.test_shards import killed_twins_workers_end
from twin.astro.shards import ShardedPropagator, start_method
from twin.scenario import load_scenario
from twin.scenario.satrecs import satrec_plan

ROOT = Path(__file__).resolve().parent.parent
PARENT_MB = 300
"""What the test's process allocates and rewrites after the workers start (the twin's
models' arrays, in small)."""
WORKER_USS_MB = 120
"""A worker of a 20,000-satellite fleet: an interpreter with numpy and sgp4 (about 40 MB
here), its 10,000 satrecs (10 MB) and the plan; a worker forked from a process holding
``PARENT_MB`` that the process then rewrites owns at least that much more."""


def _twenty_thousand() -> object:
    from test_shards import _walker_fleet

    return _walker_fleet(20_016)


def _uss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_full_info().uss / 1e6


@pytest.mark.timeout(120)
def test_a_restarted_worker_holds_none_of_the_twins_pages() -> None:
    plan = satrec_plan(_twenty_thousand().satellites)
    assert start_method(plan) == "forkserver"
    propagator = ShardedPropagator(plan, 2)
    reference = ShardedPropagator(plan, 1)
    twin_arrays = np.ones(PARENT_MB * 125_000)  # allocated after the workers started
    try:
        first = propagator.pids[1]
        os.kill(first, signal.SIGKILL)
        pos = propagator.propagate(2461000.5, 0.25)[0]
        assert propagator.restarts and propagator.restarts[0][0] == 1
        replacement = propagator.pids[1]
        assert replacement != first
        # The twin writes its arrays after the restart: a forked worker would now own a
        # copy of every page of them.
        twin_arrays += 1.0
        assert np.array_equal(pos, reference.propagate(2461000.5, 0.25)[0])  # the same bits
        assert _uss_mb(replacement) < WORKER_USS_MB, (
            f"restarted worker owns {_uss_mb(replacement):.0f} MB; the test's process "
            f"{_uss_mb(os.getpid()):.0f} MB")
        assert psutil.Process(replacement).ppid() != os.getpid()  # the forkserver's child
    finally:
        propagator.close()
        reference.close()
    assert not Path("/dev/shm", propagator.shm_name.lstrip("/")).exists()


def test_a_catalog_of_satrecs_is_inherited_by_forked_workers() -> None:
    satrecs = [s.satrec for s in load_scenario("default").satellites]
    assert start_method(satrec_plan(load_scenario("default").satellites)) == "forkserver"
    propagator = ShardedPropagator(satrecs, 2)  # Satrec objects cannot be pickled
    try:
        assert propagator.start_method == "fork"
        assert psutil.Process(propagator.pids[1]).ppid() == os.getpid()
        assert np.isfinite(propagator.propagate(2461000.5, 0.25)[0]).all()
    finally:
        propagator.close()


ORPHAN_SCRIPT = """
import time
from twin.astro.shards import ShardedPropagator
from twin.scenario import load_scenario
from twin.scenario.satrecs import satrec_plan
propagator = ShardedPropagator(satrec_plan(load_scenario("default").satellites), 3)
assert propagator.start_method == "forkserver"
print(propagator.shm_name, *propagator.pids.values(), flush=True)
time.sleep(60)
"""


@pytest.mark.timeout(60)
def test_forkserver_workers_end_by_themselves_when_the_twin_is_killed() -> None:
    # The forkserver's workers (named odc-shard-N) notice too, as the forkserver does.
    def named(pids: list[int]) -> None:
        assert all(psutil.Process(pid).name().startswith("odc-shard-") for pid in pids)

    killed_twins_workers_end(ORPHAN_SCRIPT, named)


UNGUARDED_SCRIPT = """
from twin.astro.shards import ShardedPropagator
from twin.scenario import load_scenario
from twin.scenario.satrecs import satrec_plan
print("main ran", flush=True)
propagator = ShardedPropagator(satrec_plan(load_scenario("default").satellites), 2)
print(propagator.start_method, float(propagator.propagate(2461000.5, 0.25)[0][-1, 0]) != 0)
propagator.close()
"""


@pytest.mark.timeout(60)
def test_a_worker_does_not_run_the_twins_main_module(tmp_path: Path) -> None:
    # A script with no main guard: a forkserver child that imported the parent's main
    # would run it again (and refuse to start processes while importing it).
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED_SCRIPT)
    result = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True,
                            text=True, timeout=50, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["main ran", "forkserver True"]


@pytest.mark.timeout(60)
def test_a_restart_after_the_forkserver_is_gone_starts_a_new_one() -> None:
    # A terminal's hang-up reaches the forkserver too (the workers ignore it): the next
    # restart must not depend on the old forkserver.
    propagator = ShardedPropagator(satrec_plan(load_scenario("default").satellites), 2)
    try:
        first = psutil.Process(propagator.pids[1])
        forkserver = first.parent()
        forkserver.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10  # not reaped here: multiprocessing reaps its own
        while forkserver.status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
            time.sleep(0.05)
        assert forkserver.status() == psutil.STATUS_ZOMBIE
        assert first.is_running()  # the worker ignores the hang-up and serves on
        before = propagator.propagate(2461000.5, 0.25)[0].copy()
        first.kill()
        after = propagator.propagate(2461000.5, 0.25)[0]
        assert propagator.restarts == [(1, "died")]
        assert np.array_equal(before, after)
        assert psutil.Process(propagator.pids[1]).parent().pid != forkserver.pid
    finally:
        propagator.close()

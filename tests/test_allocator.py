"""The twin's malloc settings (twin.runtime.allocator): threads share one arena, so a
working set one thread freed is reused by the next instead of kept beside it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

THREADS_SCRIPT = """
import json, sys, threading
import numpy as np, psutil
from twin.runtime.allocator import keep_temporaries_in_heap
print(keep_temporaries_in_heap(), file=sys.stderr)
THREADS, MB = 6, 24
turn = [threading.Event() for _ in range(THREADS + 1)]
done = threading.Event()
def work(k):
    turn[k].wait()
    block = np.ones(MB * 125_000)  # touched: resident; a step's temporary, freed
    del block
    turn[k + 1].set()
    done.wait()  # alive: its arena stays its own
threads = [threading.Thread(target=work, args=(k,)) for k in range(THREADS)]
for t in threads:
    t.start()
before = psutil.Process().memory_info().rss
turn[0].set()
turn[THREADS].wait()
after = psutil.Process().memory_info().rss
done.set()
for t in threads:
    t.join()
print(json.dumps({"kept_mb": (after - before) / 1e6}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc")
def test_threads_one_after_another_reuse_one_working_set() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MALLOC_ARENA_MAX", None)
    result = subprocess.run([sys.executable, "-c", THREADS_SCRIPT], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    if result.stderr.split()[0] != "True":
        pytest.skip("not glibc: no mallopt")
    kept_mb = json.loads(result.stdout)["kept_mb"]
    # Six threads each freed a 24 MB block in turn: in arenas of their own, 144 MB stays
    # resident; in the one shared arena, one block's worth.
    assert kept_mb < 3 * 24, f"{kept_mb:.0f} MB kept by six threads' freed 24 MB blocks"


def test_the_environment_chooses_the_arenas_when_it_says() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MALLOC_ARENA_MAX": "16"}
    result = subprocess.run([sys.executable, "-c", THREADS_SCRIPT], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    if result.stderr.split()[0] != "True":
        pytest.skip("not glibc: no mallopt")
    assert json.loads(result.stdout)["kept_mb"] > 3 * 24  # each thread kept its own


SERVER_SCRIPT = """
import json
import numpy as np, psutil
import twin.runtime.server as server_module
from twin.core.clock import SimClock
from twin.core.engine import Engine
from twin.runtime.allocator import keep_temporaries_in_heap
from twin.runtime.server import Addresses, TwinServer
from twin.scenario import load_scenario
import sys
keep_temporaries_in_heap()
server_module.TRIM_EVERY_STEP_MIN_SATS = int(sys.argv[1])  # 40 nodes stand for a million
scenario = load_scenario("default")
engine = Engine(scenario, SimClock(scenario.epoch_utc, rate_hz=1.0, warp=1.0, fast=True))
step = engine.step
def step_with_temporaries():  # a million's temporaries: 200 MB, freed within the step
    block = np.ones(25_000_000)
    step()
    del block
engine.step = step_with_temporaries
any_port = "tcp://127.0.0.1:*"
server = TwinServer(engine, Addresses(any_port, any_port, any_port))
try:
    before = psutil.Process().memory_info().rss
    server.run(max_steps=3)  # well within the 5 s trim
    kept = (psutil.Process().memory_info().rss - before) / 1e6
finally:
    server.close()
print(json.dumps({"kept_mb": kept}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc")
@pytest.mark.parametrize(("min_sats", "trimmed"), [(1, True), (10**9, False)])
def test_a_large_fleets_step_temporaries_go_back_after_each_step(min_sats: int,
                                                                 trimmed: bool) -> None:
    result = subprocess.run([sys.executable, "-c", SERVER_SCRIPT, str(min_sats)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    kept_mb = json.loads(result.stdout)["kept_mb"]
    if trimmed:  # at the fleet size: handed back after every step
        assert kept_mb < 50, f"{kept_mb:.0f} MB of a step's freed 200 MB kept"
    else:  # below it: kept for the next step, until the 5 s trim
        assert kept_mb > 150, f"{kept_mb:.0f} MB kept"

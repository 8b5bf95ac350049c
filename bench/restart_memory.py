"""What a restarted SGP4 worker costs: memory and time of the step that restarts it.

Usage:
    .venv/bin/python bench/restart_memory.py [--size 1m] [--workers 2] [--after 10]
                                             [--start-method fork]

Loads the scenario (``bench/scale.py``'s sizes; ``1m`` is ``megafleet``), builds the
engine with ``--workers``, takes 3 steps, kills shard 1's worker (SIGKILL), takes the step
that restarts it, then ``--after`` more steps. After each it prints the sum of the PSS of
this process and all its descendants (twin, workers, forkserver, resource tracker: a page
shared by several counted once) and the restarted worker's own USS (pages only it holds).
``--start-method fork`` forks the workers from the twin as the code before the forkserver
did, to compare in the same conditions.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import warnings
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from scale import SIZES, load, total_pss_mb  # noqa: E402

from twin.runtime.cli import count_argument  # noqa: E402

MB = 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=SIZES, default="1m")
    parser.add_argument("--workers", type=count_argument(2), default=2)
    parser.add_argument("--after", type=count_argument(0), default=10)
    parser.add_argument("--start-method", choices=("auto", "fork"), default="auto")
    args = parser.parse_args()

    import twin.astro.shards as shards
    from twin.core.clock import SimClock
    from twin.core.engine import Engine
    from twin.runtime.allocator import keep_temporaries_in_heap, release_free_memory
    from twin.runtime.blas import limit_blas_threads

    if args.start_method == "fork":
        shards.start_method = lambda plan: "fork"  # the code before the forkserver
    keep_temporaries_in_heap()  # as odc run does
    limit_blas_threads(1)
    warnings.simplefilter("ignore", RuntimeWarning)
    scenario = load(args.size)
    engine = Engine(scenario, SimClock(scenario.epoch_utc, rate_hz=1.0, warp=1.0, fast=True),
                    workers=args.workers)
    propagator = engine.orbit.propagator
    rows: list[dict[str, float]] = []

    def step(label: str) -> None:
        started = time.perf_counter()
        engine.step()
        step_s = time.perf_counter() - started
        engine.events.drain()
        release_free_memory()  # what the serve loop does every few seconds
        worker = psutil.Process(propagator.pids[1])
        rows.append({"step": label, "step_s": round(step_s, 2), "total_pss_mb": round(
            total_pss_mb()), "worker1_uss_mb": round(worker.memory_full_info().uss / MB),
            "twin_rss_mb": round(psutil.Process().memory_info().rss / MB)})
        print(json.dumps(rows[-1]), flush=True)

    try:
        for k in range(3):
            step(f"before {k + 1}")
        os.kill(propagator.pids[1], signal.SIGKILL)
        step("restart")
        assert propagator.restarts_total == 1
        for k in range(args.after):
            step(f"after {k + 1}")
    finally:
        engine.close()
    print(json.dumps({"size": args.size, "n": len(scenario.satellites),
                      "workers": args.workers, "start_method": propagator.start_method,
                      "load_average": [round(x, 2) for x in os.getloadavg()]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

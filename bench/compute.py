"""Time the compute subsystem step by step, and its periodic scheduling pass, on a scenario.

Usage:
    .venv/bin/python bench/compute.py [--scenario starlink] [--steps 600] [--warp 10]

Steps the whole twin (10 Hz, ``--warp`` sim seconds per wall second, fast) and reports the
compute subsystem's median, mean, p99 and max step cost, and separately the scheduling
passes (every ``schedule_interval_s`` of sim time): the spike a real-time twin must fit in
one tick. At warp 10 the first 600 steps see the epoch backlog (thousands of queued jobs),
the worst case for the pass.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchargs import checked_scenario  # noqa: E402

from twin.core.clock import SimClock  # noqa: E402
from twin.core.engine import Engine  # noqa: E402
from twin.models.compute import scheduler  # noqa: E402
from twin.runtime.allocator import keep_temporaries_in_heap  # noqa: E402
from twin.runtime.cli import count_argument, warp_argument  # noqa: E402
from twin.scenario import load_scenario  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=checked_scenario, default="starlink")
    parser.add_argument("--steps", type=count_argument(1), default=600)
    parser.add_argument("--warp", type=warp_argument, default=10.0)
    args = parser.parse_args()
    keep_temporaries_in_heap()
    warnings.simplefilter("ignore", RuntimeWarning)
    scenario = load_scenario(args.scenario)
    engine = Engine(scenario, SimClock(scenario.epoch_utc, rate_hz=10.0, warp=args.warp,
                                       fast=True))
    compute = engine.compute_model
    plan_s: list[float] = []
    real_plan = scheduler.plan

    def timed_plan(*a: object, **k: object) -> object:
        started = time.perf_counter()
        result = real_plan(*a, **k)
        plan_s.append(time.perf_counter() - started)
        return result

    scheduler.plan = timed_plan
    step_s, queued, with_pass = [], [], []
    for _ in range(args.steps):
        ctx = engine.context(engine.clock.advance())
        for subsystem in engine.subsystems:
            if subsystem is compute:
                queued.append(compute.jobs.waiting().size)
                passes_before = len(plan_s)
                started = time.perf_counter()
                subsystem.step(ctx)
                step_s.append(time.perf_counter() - started)
                with_pass.append(len(plan_s) > passes_before)
            else:
                subsystem.step(ctx)
    ms = np.array(step_s) * 1e3
    passes = len(plan_s)
    pass_steps = ms[np.array(with_pass)]
    print(f"scenario {args.scenario}: {engine.n_sats} nodes, {args.steps} steps of "
          f"{engine.clock.dt_s:g} s")
    print(f"compute step   median {np.median(ms):7.3f} ms  mean {ms.mean():7.3f}  "
          f"p99 {np.percentile(ms, 99):7.2f}  max {ms.max():7.2f}")
    if passes:
        plan_ms = np.array(plan_s) * 1e3
        print(f"scheduling passes {passes}: step with a pass median {np.median(pass_steps):.2f}"
              f" ms, max {pass_steps.max():.2f}; scheduler.plan median "
              f"{np.median(plan_ms):.2f} ms, max {plan_ms.max():.2f}")
    print(f"queued jobs at start / end: {queued[0]} / {queued[-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Main-thread CPU of each model's step, at one fleet size and worker count.

Usage:
    .venv/bin/python bench/model_cpu.py [--size 100k] [--workers 2] [--steps 50]

Builds the engine as ``bench/scale.py`` does (same generated fleets, one BLAS thread),
takes one warm-up step, then ``--steps`` steps, and prints the twin's main-thread CPU per
step (``time.thread_time``) in all and per model. Thread time, not wall time: on a shared
machine the wall clock waits for cores other programs hold, while the main thread's CPU is
the step's critical path once every slice and worker has a core. Run the sizes and worker
counts to compare alternately, in the same session.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from scale import SIZES, load, make_engine  # noqa: E402

from twin.runtime.cli import count_argument  # noqa: E402


def timed_steps(engine: Any, steps: int) -> tuple[float, dict[str, float]]:
    """Main-thread CPU seconds per step, in all and per model (in step order)."""
    per_model = {model.name: 0.0 for model in engine.subsystems}
    for model in engine.subsystems:
        step = model.step

        def timed(ctx: Any, _step: Any = step, _name: str = model.name) -> None:
            started = time.thread_time()
            try:
                _step(ctx)
            finally:
                per_model[_name] += time.thread_time() - started

        model.step = timed
    started = time.thread_time()
    for _ in range(steps):
        engine.step()
    total = time.thread_time() - started
    return total / steps, {name: cpu / steps for name, cpu in per_model.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=SIZES, default="100k")
    parser.add_argument("--workers", type=count_argument(1), default=2)
    parser.add_argument("--steps", type=count_argument(1), default=50)
    args = parser.parse_args()

    from twin.runtime.allocator import keep_temporaries_in_heap
    from twin.runtime.blas import limit_blas_threads

    keep_temporaries_in_heap()  # as odc run does
    limit_blas_threads(1)
    warnings.simplefilter("ignore", RuntimeWarning)
    engine, workers = make_engine(load(args.size), args.workers)
    try:
        engine.step()  # warm-up: first-touch pages, caches, the thermal settle
        total, per_model = timed_steps(engine, args.steps)
    finally:
        engine.close()
    print(f"{args.size}, {workers} workers, {args.steps} steps: main-thread CPU"
          f" {1e3 * total:.2f} ms a step")
    for name, cpu in sorted(per_model.items(), key=lambda item: -item[1]):
        print(f"  {name:14s} {1e3 * cpu:7.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What the SGP4 workers' computing ahead gives: 1 worker, 2 workers without it, 2 with it.

Usage:
    .venv/bin/python bench/sgp4_ahead.py [--size 100k] [--steps 40] [--rounds 3]

Each round builds the engine three times in this process (1 worker; 2 workers with the
next step's instant hidden from the workers, as before they computed ahead; 2 workers as
shipped) and times ``--steps`` full steps two ways: back to back (the twin flat out), and
with a bare SGP4 call of the whole fleet between steps (time between steps, as a live twin
has; what ``bench/scale.py`` interleaves). It prints each round's medians and speed-ups
over 1 worker, then the median speed-up of every configuration over the rounds, and the
band pieces the twin's process computed itself at the end (``ShardedPropagator.taken``).
Machines here are shared: compare only the ratios of one run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from operator import attrgetter
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import scale  # noqa: E402  (bench/scale.py: the same scenarios and engine)

from twin.runtime.cli import count_argument  # noqa: E402


@contextmanager
def without_ahead() -> Iterator[None]:
    """The workers are never told the next step (they compute only when asked)."""
    from twin.core.clock import SimClock
    from twin.models.orbit import OrbitModel

    next_jd, prefetch = SimClock.next_jd_utc, OrbitModel.prefetch
    SimClock.next_jd_utc = property(lambda self: None)  # type: ignore[assignment]
    OrbitModel.prefetch = lambda self: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        SimClock.next_jd_utc, OrbitModel.prefetch = next_jd, prefetch  # type: ignore[method-assign]


def timed(scenario: Any, workers: int, steps: int, bare: Any) -> tuple[float, float, int]:
    """Median step back to back and with ``bare`` SGP4 between steps (s), and the band
    pieces the twin's process computed at the end (-1: no workers)."""
    engine, _ = scale.make_engine(scenario, workers)
    try:
        for _ in range(3):
            engine.step()
            engine.events.drain()
        jd, fr = engine.clock.jd_utc
        jd_in, fr_in = np.array([jd]), np.array([fr])
        flat_out, between = [], []
        for _ in range(steps):
            started = time.perf_counter()
            engine.step()
            flat_out.append(time.perf_counter() - started)
            engine.events.drain()
        for k in range(steps):
            fr_in[0] = fr + (k + 1) * 1e-5
            bare.sgp4(jd_in, fr_in)
            started = time.perf_counter()
            engine.step()
            between.append(time.perf_counter() - started)
            engine.events.drain()
        taken = getattr(engine.orbit.propagator, "taken", -1)
        return statistics.median(flat_out), statistics.median(between), taken
    finally:
        engine.close()


def one_size(text: str) -> str:
    """An argparse ``type``: one of bench/scale.py's sizes."""
    sizes = scale.size_list(text)
    if len(sizes) != 1:
        raise argparse.ArgumentTypeError(f"one size, not {len(sizes)}: {text!r}")
    return sizes[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=one_size, default="100k",
                        help=f"one of {', '.join(scale.SIZES)} (default 100k)")
    parser.add_argument("--steps", type=count_argument(1), default=40,
                        help="timed steps each way (default 40)")
    parser.add_argument("--rounds", type=count_argument(1), default=3,
                        help="rounds (default 3)")
    args = parser.parse_args()
    from sgp4.api import SatrecArray

    from twin.astro.propagate import SatrecsOnDemand
    from twin.runtime.allocator import keep_temporaries_in_heap
    from twin.runtime.blas import limit_blas_threads

    keep_temporaries_in_heap()
    limit_blas_threads(1)
    warnings.simplefilter("ignore", RuntimeWarning)
    scenario = scale.load(args.size)
    bare = SatrecArray(SatrecsOnDemand(scenario.satellites, attrgetter("satrec")))
    speed_ups: dict[str, list[float]] = {}
    print(f"{len(scenario.satellites):,} satellites, {args.steps} steps each way, "
          f"{args.rounds} rounds (ms; speed-up over 1 worker)")
    for rnd in range(args.rounds):
        one = timed(scenario, 1, args.steps, bare)
        with without_ahead():
            plain = timed(scenario, 2, args.steps, bare)
        ahead = timed(scenario, 2, args.steps, bare)
        line = f"round {rnd}: 1 worker {1e3 * one[0]:.1f} flat out, {1e3 * one[1]:.1f} between"
        for name, (flat_out, between, taken) in (("2 without ahead", plain),
                                                  ("2 computing ahead", ahead)):
            for way, value, base in (("flat out", flat_out, one[0]),
                                     ("between", between, one[1])):
                speed_ups.setdefault(f"{name}, {way}", []).append(base / value)
            line += (f" | {name}: {1e3 * flat_out:.1f} ({one[0] / flat_out:.2f}x) flat out,"
                     f" {1e3 * between:.1f} ({one[1] / between:.2f}x) between, taken {taken}")
        print(line, flush=True)
    for name, values in speed_ups.items():
        print(f"{name}: median {statistics.median(values):.2f}x "
              f"({', '.join(f'{v:.2f}' for v in values)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

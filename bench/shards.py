"""The twin's step with SGP4 on 1 and on more worker processes, against bare SGP4.

Usage:
    .venv/bin/python bench/shards.py [--scenario starlink] [--sats N] [--workers 1 2]
                                     [--steps 60]

``--sats N`` generates the fleet: the default scenario with its Walker shell grown to
about N satellites (100 planes). One engine per worker count is built in this process;
their steps are interleaved, each after a bare `SatrecArray.sgp4` call of the whole
catalog, so all see the same machine load (this machine is shared: trust the ratios and
the speed-up measured in one run, not absolute times). Each step is the full step (every
model, no publish); the orbit model's share is timed too. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchargs import checked_scenario  # noqa: E402
from step import BareSgp4  # noqa: E402

from twin.core.clock import SimClock  # noqa: E402
from twin.core.engine import Engine  # noqa: E402
from twin.runtime.allocator import keep_temporaries_in_heap  # noqa: E402
from twin.runtime.blas import limit_blas_threads  # noqa: E402
from twin.runtime.cli import count_argument  # noqa: E402
from twin.scenario import MAX_SATELLITES, load_scenario  # noqa: E402

PLANES = 100


def generated_scenario(n_sats: int, folder: Path) -> str:
    """A scenario file: the default one with its Walker shell grown to ~``n_sats``."""
    text = (ROOT / "assets" / "scenarios" / "default.toml").read_text()
    per_plane = max(1, (min(n_sats, MAX_SATELLITES) - 16) // PLANES)
    text = text.replace("planes = 3\nsats_per_plane = 8",
                        f"planes = {PLANES}\nsats_per_plane = {per_plane}", 1)
    path = folder / f"generated_{n_sats}.toml"
    path.write_text(text.replace('name = "default"', f'name = "generated-{n_sats}"', 1))
    return str(path)


class Timed:
    """Wraps a bound method (the orbit's step, its propagator's call) to time each call."""

    def __init__(self, owner: object, method: str) -> None:
        self.samples: list[float] = []
        call = getattr(owner, method)

        def timed(*args: object) -> object:
            started = time.perf_counter()
            result = call(*args)
            self.samples.append(time.perf_counter() - started)
            return result

        setattr(owner, method, timed)

    def median_ms(self) -> float:
        return 1e3 * statistics.median(self.samples[1:])


def _burn(n: int) -> float:
    """Busy pure-Python work; returns the seconds it took."""
    started = time.perf_counter()
    total = 0
    for i in range(n):
        total += i
    return time.perf_counter() - started


def _timed_burn(n: int, go: Any, answer: Any) -> None:
    go.wait()
    answer.send_bytes(struct.pack("<d", _burn(n)))


def parallel_headroom(n: int = 2_000_000) -> float:
    """Two processes busy at once against one alone: the speed-up this machine offers two
    processes right now (2.0 on two idle cores). Each times its own work after a common
    start, so forking this (large) process is not counted."""
    context = multiprocessing.get_context("fork")
    alone = _burn(n)
    go = context.Event()
    pipes = [context.Pipe(duplex=False) for _ in range(2)]
    processes = [context.Process(target=_timed_burn, args=(n, go, sender))
                 for _, sender in pipes]
    for process in processes:
        process.start()
    go.set()
    together = max(struct.unpack("<d", receiver.recv_bytes())[0] for receiver, _ in pipes)
    for process in processes:
        process.join()
    return 2.0 * alone / together


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", type=checked_scenario, default="starlink")
    parser.add_argument("--sats", type=count_argument(1, MAX_SATELLITES), metavar="N",
                        help="generate a fleet of about N satellites instead")
    parser.add_argument("--workers", type=count_argument(1, 64), nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=count_argument(1), default=60)
    parser.add_argument("--blas-threads", action="store_true",
                        help="leave OpenBLAS its default threads (odc run sets one)")
    args = parser.parse_args()
    keep_temporaries_in_heap()
    if not args.blas_threads:
        limit_blas_threads(1)  # as odc run does
    with tempfile.TemporaryDirectory() as folder:
        name = generated_scenario(args.sats, Path(folder)) if args.sats else args.scenario
        engines = {}
        for workers in args.workers:
            scenario = load_scenario(name)
            clock = SimClock(scenario.epoch_utc, rate_hz=10.0, warp=10.0, fast=True)
            engines[workers] = Engine(scenario, clock, workers=workers)
    first = next(iter(engines.values()))
    n = first.n_sats
    jd, fr = first.clock.jd_utc
    bare = BareSgp4([s.satrec for s in first.scenario.satellites], jd, fr)
    headroom_before = parallel_headroom()
    orbit_timers = {w: Timed(e.orbit, "step") for w, e in engines.items()}
    sgp4_timers = {w: Timed(e.orbit.propagator, "propagate") for w, e in engines.items()}
    step_s: dict[int, list[float]] = {w: [] for w in engines}
    bare_s: list[float] = []
    try:
        for _ in range(args.steps):
            for workers, engine in engines.items():
                bare_s.append(bare.time_one())
                started = time.perf_counter()
                engine.step()
                step_s[workers].append(time.perf_counter() - started)
    finally:
        for engine in engines.values():
            engine.close()
    headroom = (headroom_before + parallel_headroom()) / 2
    bare_ms = 1e3 * statistics.median(bare_s)
    base = 1e3 * statistics.median(step_s[args.workers[0]])
    print(f"{first.scenario.name}: {n:,} satellites, {args.steps} steps each, "
          f"bare SGP4 {bare_ms:.2f} ms (median); two processes get {headroom:.2f}x of one "
          "on this machine now (2.0 on two idle cores)\n")
    print("| workers | full step, ms | / bare SGP4 | speed-up | steps/s | orbit model, ms "
          "| its SGP4, ms | SGP4 speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    sgp4_base = sgp4_timers[args.workers[0]].median_ms()
    for workers in engines:
        ms = 1e3 * statistics.median(step_s[workers])
        sgp4_ms = sgp4_timers[workers].median_ms()
        print(f"| {workers} | {ms:.2f} | {ms / bare_ms:.2f}x | {base / ms:.2f}x | "
              f"{1e3 / ms:.1f} | {orbit_timers[workers].median_ms():.2f} | {sgp4_ms:.2f} | "
              f"{sgp4_base / sgp4_ms:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

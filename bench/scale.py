"""How the twin scales with the fleet: load, step, memory and frame size from 4,428 to 1,000,000.

Usage:
    .venv/bin/python bench/scale.py [--sizes starlink,10k,100k,300k,1m] [--steps 10]
                                    [--workers 1 2] [--load]

One child process per size, so each size's resident memory is its own. Each child loads the
scenario, builds the engine, takes ``--steps`` full steps (all models) with a bare SGP4 call
(``SatrecArray.sgp4`` on the same satellites) interleaved before each, then as many steps
back to back, and encodes one state message. With workers the two differ: between two
steps the SGP4 workers compute the next step's rows (docs/architecture.md, "Every core"),
so the interleaved step is the latency of a step when the twin has time between steps, as
a live twin has; back to back (no time between), what the twin does flat out. ``--load``
only loads the scenario (time and memory), the 60 s / 4 GB check.

Sizes: ``starlink`` is the bundled catalog (4,428); ``1m`` is the bundled ``megafleet``
scenario; the others are generated with megafleet's mix of orbits (half sun-synchronous at
550 km, half 30 degrees at 800 km) and its six stations. ``--workers N [M ...]`` runs each
size once per worker count (SGP4 worker processes and row-slice threads, docs/architecture.md
"Every core"), in the same run, and prints the speed-up over 1 worker; the CPU time of a
step is split into the twin's main thread, all its threads, and its worker processes.
Machines here are shared: trust the ratios measured in the same run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import warnings
from operator import attrgetter
from pathlib import Path
from typing import Any

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from twin.runtime.cli import count_argument  # noqa: E402

# name -> (satellites, planes per shell, sats per plane per shell); 1m is megafleet itself.
GENERATED = {"10k": (10_000, 50, 100), "100k": (100_000, 100, 500),
             "300k": (300_000, 150, 1000)}
SIZES = ("starlink", *GENERATED, "1m")
MB = 1e6


def scenario_text(size: str) -> str:
    """A generated scenario of ``size``: megafleet's orbits and stations, two shells."""
    from twin.scenario.loader import SCENARIOS_DIR

    _, planes, per_plane = GENERATED[size]
    megafleet = (SCENARIOS_DIR / "megafleet.toml").read_text()
    stations = megafleet[megafleet.index("[[station]]"):]
    return f"""
[scenario]
name = "scale-{size}"
epoch = "2026-03-20T12:00:00Z"
seed = 42

[clock]
rate_hz = 1.0
warp = 1.0

[[sun_synchronous]]
name = "sso-550"
altitude_km = 550.0
ltan_h = 6.0
planes = {planes}
sats_per_plane = {per_plane}
phasing = 1

[[walker]]
name = "inc30-800"
altitude_km = 800.0
inclination_deg = 30.0
planes = {planes}
sats_per_plane = {per_plane}
phasing = 1

{stations}"""


def load(size: str) -> Any:
    from twin.scenario import load_scenario, parse_scenario

    if size == "starlink":
        return load_scenario("starlink")
    if size == "1m":
        return load_scenario("megafleet")
    return parse_scenario(scenario_text(size))


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / MB


def total_pss_mb() -> float:
    """Proportional set size of this process and its descendants (the SGP4 workers, the
    forkserver they start from, the resource tracker), summed:
    pages a fork shares are counted once, split between the processes that map them."""
    me = psutil.Process()
    total = 0
    for process in (me, *me.children(recursive=True)):  # forkserver workers: grandchildren
        try:
            total += process.memory_full_info().pss
        except psutil.NoSuchProcess:
            continue
    return total / MB


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB  # kB on Linux


def make_engine(scenario: Any, workers: int) -> tuple[Any, int]:
    """The engine, with ``workers`` when it takes them; returns it and the workers used."""
    from twin.core.clock import SimClock
    from twin.core.engine import Engine

    clock = SimClock(scenario.epoch_utc, rate_hz=1.0, warp=1.0, fast=True)
    try:
        return Engine(scenario, clock, workers=workers), workers  # type: ignore[call-arg]
    except TypeError as exc:
        if "workers" not in str(exc):
            raise
        return Engine(scenario, clock), 1


def frame_bytes(engine: Any) -> tuple[int, float]:
    """Bytes of one state message to a subscriber of everything, and its encoding time (s)."""
    from twin.protocol.codec import StateEncoder

    fields = engine.fields
    encoder = StateEncoder([f.spec for f in fields])
    started = time.perf_counter()
    frames = encoder.encode(engine.header(), [f.array for f in fields])
    encode_s = time.perf_counter() - started
    return sum(len(memoryview(frame).cast("B")) for frame in frames), encode_s


def run_one(size: str, steps: int, workers: int, load_only: bool) -> dict[str, Any]:
    """Everything for one size, in this process."""
    from sgp4.api import SatrecArray

    from twin.astro.propagate import SatrecsOnDemand
    from twin.runtime.allocator import keep_temporaries_in_heap, release_free_memory
    from twin.runtime.blas import limit_blas_threads

    keep_temporaries_in_heap()  # as odc run does
    limit_blas_threads(1)  # as odc run does (twin/runtime/blas.py)
    warnings.simplefilter("ignore", RuntimeWarning)
    base_mb = rss_mb()
    started = time.perf_counter()
    scenario = load(size)
    result: dict[str, Any] = {
        "size": size, "n": len(scenario.satellites), "load_s": time.perf_counter() - started,
        "load_mb": rss_mb() - base_mb}
    if load_only:
        result["peak_mb"] = peak_rss_mb()
        return result
    started = time.perf_counter()
    engine, used = make_engine(scenario, workers)
    result.update(workers=used, build_s=time.perf_counter() - started, engine_mb=rss_mb(),
                  engine_total_mb=total_pss_mb())
    engine.step()  # warm-up: first-touch pages, caches
    engine.events.drain()
    release_free_memory()  # what the twin's serve loop does: the build's temporaries go
    result["stepped_mb"] = rss_mb()  # the engine alone, before the bare SGP4 array exists
    result["stepped_total_mb"] = total_pss_mb()
    # The twin's own high-water mark (load, build, first step): the bare SGP4 array below
    # is the bench's (1 GB at a million) and would otherwise be counted in ``peak_mb``.
    result["twin_peak_mb"] = peak_rss_mb()
    # Built one satrec at a time as the twin's own array is (no 1 GB list at a million).
    bare = SatrecArray(SatrecsOnDemand(scenario.satellites, attrgetter("satrec")))
    jd, fr = engine.clock.jd_utc
    jd_in, fr_in = np.array([jd]), np.array([fr])
    step_s, bare_s = [], []
    cpu = {"thread": 0.0, "process": 0.0, "workers": 0.0}  # CPU seconds in the steps
    me = psutil.Process()
    for k in range(steps):
        fr_in[0] = fr + (k + 1) * 1e-5  # a new instant each call, as the twin has
        t0 = time.perf_counter()
        bare.sgp4(jd_in, fr_in)
        thread0, process0, workers0 = time.thread_time(), time.process_time(), _workers_cpu(me)
        t1 = time.perf_counter()
        engine.step()
        step_s.append(time.perf_counter() - t1)
        cpu["thread"] += time.thread_time() - thread0
        cpu["process"] += time.process_time() - process0
        cpu["workers"] += _workers_cpu(me) - workers0
        engine.events.drain()  # as the server does after publishing them
        bare_s.append(t1 - t0)
    result.update({f"cpu_{key}_s": value / steps for key, value in cpu.items()})
    back_to_back_s = []
    for _ in range(steps):
        t1 = time.perf_counter()
        engine.step()
        back_to_back_s.append(time.perf_counter() - t1)
        engine.events.drain()
    result["back_to_back_s"] = statistics.median(back_to_back_s)
    del bare
    release_free_memory()
    result["frame_bytes"], result["encode_s"] = frame_bytes(engine)
    result.update(step_s=statistics.median(step_s), bare_s=statistics.median(bare_s),
                  steps=steps, rss_mb=rss_mb(), total_mb=total_pss_mb(),
                  peak_mb=peak_rss_mb())
    return result


def _workers_cpu(me: psutil.Process) -> float:
    """CPU seconds (user + system) used so far by this process's worker processes."""
    total = 0.0
    for child in me.children(recursive=True):  # forkserver workers are grandchildren
        try:
            times = child.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def print_table(rows: list[dict[str, Any]], load_only: bool) -> None:
    if load_only:
        print("| fleet | load (s) | memory added by the scenario (MB) | peak resident (MB) |")
        print("|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['n']:,} | {r['load_s']:.2f} | {r['load_mb']:.0f} | {r['peak_mb']:.0f} |")
        return
    one_worker = {r["n"]: r for r in rows if r["workers"] == 1}
    print("| fleet | workers | engine build (s) | full step (ms) | bare SGP4 (ms) | ratio |"
          " speed-up over 1 worker | step back to back (ms) | its speed-up |"
          " step per satellite (µs) | resident after 1 step (MB) |"
          " resident after steps (MB) | peak: the twin's through its first step, with the"
          " bench's bare SGP4 array (MB) | state message (MB) | encode (ms) |"
          " CPU a step: main thread, all threads, workers (ms) |"
          " twin and workers (PSS) built, after 1 step, after steps (MB) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
          "---:|")
    for r in rows:
        one = one_worker.get(r["n"])
        speed_up = f"{one['step_s'] / r['step_s']:.2f}x" if one else ""
        b2b_speed_up = f"{one['back_to_back_s'] / r['back_to_back_s']:.2f}x" if one else ""
        print(f"| {r['n']:,} | {r['workers']} | {r['build_s']:.1f} | {1e3 * r['step_s']:.1f} |"
              f" {1e3 * r['bare_s']:.1f} | {r['step_s'] / r['bare_s']:.2f}x | {speed_up} |"
              f" {1e3 * r['back_to_back_s']:.1f} | {b2b_speed_up} |"
              f" {1e6 * r['step_s'] / r['n']:.2f} | {r['stepped_mb']:.0f} | {r['rss_mb']:.0f} |"
              f" {r.get('twin_peak_mb', 0):.0f}, {r['peak_mb']:.0f} |"
              f" {r['frame_bytes'] / MB:.1f} | {1e3 * r['encode_s']:.1f} |"
              f" {1e3 * r['cpu_thread_s']:.1f}, {1e3 * r['cpu_process_s']:.1f},"
              f" {1e3 * r['cpu_workers_s']:.1f} |"
              f" {r['engine_total_mb']:.0f}, {r['stepped_total_mb']:.0f},"
              f" {r['total_mb']:.0f} |")


def size_list(text: str) -> list[str]:
    """An argparse ``type``: comma-separated sizes from ``SIZES``."""
    sizes = [s.strip().lower() for s in text.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown or not sizes:
        raise argparse.ArgumentTypeError(
            f"sizes are a comma-separated list of {', '.join(SIZES)}; got {text!r}")
    return sizes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=size_list, default=list(SIZES))
    parser.add_argument("--steps", type=count_argument(1), default=10,
                        help="timed steps per size (median reported)")
    parser.add_argument("--workers", type=count_argument(1), nargs="+", default=[1],
                        help="engine workers (SGP4 processes and row-slice threads); "
                        "several: each size once per count, in the same run")
    parser.add_argument("--load", action="store_true", help="only load each scenario")
    parser.add_argument("--one", type=size_list, help=argparse.SUPPRESS)  # the child's size
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one[0], args.steps, args.workers[0], args.load)))
        return 0
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, cpu count {os.cpu_count()}"
          ", load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    rows = []
    for size, workers in itertools.product(args.sizes, args.workers):
        command = [sys.executable, __file__, "--one", size, "--steps", str(args.steps),
                   "--workers", str(workers), *(["--load"] if args.load else [])]
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
        if done.returncode != 0:
            print(f"{size}: the child failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        print(json.dumps(row), flush=True)
        rows.append(row)
    print_table(rows, args.load)
    return 0


if __name__ == "__main__":
    sys.exit(main())

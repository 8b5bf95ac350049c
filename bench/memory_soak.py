"""Does the twin's memory stay flat? The peak of the start, then RSS over many served steps.

Usage:
    .venv/bin/python bench/memory_soak.py [--size 1m] [--steps 200] [--workers 1]
                                          [--subscriber]

One run in this process, as ``odc run --fast`` does it (malloc tuned, one BLAS thread): the
scenario (``bench/scale.py``'s sizes: ``starlink``, ``10k``, ``100k``, ``300k``, ``1m`` =
the bundled ``megafleet``) is loaded, the engine built and a real ``TwinServer`` on
loopback ports serves ``--steps`` steps as fast as it can (state, aggregate, events, alarm
table, heartbeats and the 5 s memory trim: everything the serve loop does). With
``--subscriber`` a SUB socket on this machine reads every message (default stream).

It prints, as JSON and one line of words:

- ``start_peak_mb``: the process's high-water mark through load, engine build and the
  first step (``ru_maxrss``; ``peak_by_stage_mb``, from a psutil sampler every 20 ms,
  says at which stage);
- ``rss_mb`` after the first step and at the end, the most seen while stepping;
- ``slope_mb_per_100_steps``: a least-squares line through the resident memory after
  every step from step ``--skip`` on (the warm-up's first-touch pages left out), per 100
  steps;
- ``floor_by_tenth_mb`` and ``ceiling_by_tenth_mb``: the least and most resident memory
  in each tenth of the run. The server hands free heap back every 5 s, so the samples
  saw-tooth between a floor (just after a trim) and a ceiling (the temporaries of the
  steps since): memory is flat when neither rises.

SGP4 workers (``--workers`` over 1) are separate processes: their resident memory is
reported apart (``workers_rss_mb``, shared memory counted in each), and every 10 steps
the PSS of this process and all its descendants is summed
(``total_pss_every_10_steps_mb``: the twin's whole footprint, a shared page counted once).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import zmq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from scale import SIZES, load, total_pss_mb  # noqa: E402

from twin.runtime.cli import count_argument, positive_argument  # noqa: E402

MB = 1e6
ANY_PORT = "tcp://127.0.0.1:*"
PSS_EVERY = 10
"""Steps between two readings of the twin's and its workers' PSS (each reads smaps)."""


class PeakSampler:
    """Resident memory every ``period_s`` in a thread: the most seen, and in which stage."""

    def __init__(self, period_s: float = 0.02) -> None:
        self.process = psutil.Process()
        self.stage = "start"
        self.peaks: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(period_s,), daemon=True)
        self._thread.start()

    def rss_mb(self) -> float:
        return self.process.memory_info().rss / MB

    def _run(self, period_s: float) -> None:
        while not self._stop.wait(period_s):
            rss = self.rss_mb()
            self.peaks[self.stage] = max(self.peaks.get(self.stage, 0.0), rss)

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        return {stage: round(mb) for stage, mb in self.peaks.items()}


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / MB


def workers_rss_mb() -> float:
    # Recursive: workers from the forkserver are grandchildren.
    children = psutil.Process().children(recursive=True)
    return sum(child.memory_info().rss for child in children) / MB


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB  # kB on Linux


def slope_per_100(steps: list[int], rss: list[float]) -> float:
    """Least-squares MB per 100 steps (0 with fewer than 2 samples)."""
    if len(steps) < 2:
        return 0.0
    return float(np.polyfit(np.asarray(steps, float), np.asarray(rss, float), 1)[0] * 100.0)


def soak(size: str, steps: int, workers: int, skip: int, subscriber: bool) -> dict[str, Any]:
    from twin.core.clock import SimClock
    from twin.core.engine import Engine
    from twin.runtime.allocator import keep_temporaries_in_heap
    from twin.runtime.blas import limit_blas_threads
    from twin.runtime.server import Addresses, TwinServer

    keep_temporaries_in_heap()  # as odc run does
    limit_blas_threads(1)
    warnings.simplefilter("ignore", RuntimeWarning)
    sampler = PeakSampler()
    base_mb = rss_mb()
    started, cpu_started = time.perf_counter(), time.process_time()
    sampler.stage = "load"
    scenario = load(size)
    load_s, load_cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
    sampler.stage = "engine"
    clock = SimClock(scenario.epoch_utc, rate_hz=1.0, warp=1.0, fast=True)
    engine = Engine(scenario, clock, workers=workers)
    build_s = time.perf_counter() - started - load_s
    build_cpu_s = time.process_time() - cpu_started - load_cpu_s
    sampler.stage = "first step"
    server = TwinServer(engine, Addresses(ANY_PORT, ANY_PORT, ANY_PORT))
    sub = None
    if subscriber:
        sub = zmq.Context.instance().socket(zmq.SUB)
        sub.setsockopt(zmq.RCVHWM, 0)
        sub.subscribe(b"")
        sub.connect(server.bound.pub)
    received = [0]

    def read(_: Any) -> None:
        while sub is not None:
            try:
                received[0] += sum(len(f) for f in sub.recv_multipart(zmq.NOBLOCK))
            except zmq.Again:
                return

    samples: tuple[list[int], list[float]] = ([], [])
    pss: list[float] = []
    step_times: list[float] = []
    last = [time.perf_counter()]
    step_cpu: list[float] = []
    last_cpu = [time.process_time()]
    start_peak = [0.0]

    def after_tick(srv: TwinServer) -> None:
        read(srv)
        if srv.clock.steps > len(samples[0]):  # a step was taken in this pass
            now, cpu = time.perf_counter(), time.process_time()
            step_times.append(now - last[0])
            step_cpu.append(cpu - last_cpu[0])
            last[0], last_cpu[0] = now, cpu
            samples[0].append(srv.clock.steps)
            samples[1].append(rss_mb())
            if srv.clock.steps % PSS_EVERY == 0:  # twin, workers, forkserver: all of it
                pss.append(total_pss_mb())
            if srv.clock.steps % 50 == 0:
                print(f"step {srv.clock.steps}: {samples[1][-1]:.0f} MB", file=sys.stderr,
                      flush=True)
            if srv.clock.steps == 1:
                sampler.stage = "stepping"
                start_peak[0] = peak_rss_mb()

    try:
        server.run(max_steps=steps, on_tick=after_tick)
        n, rss = samples
        kept = [(s, r) for s, r in zip(n, rss, strict=True) if s > skip]
        result = {
            "size": size, "n": len(scenario.satellites), "workers": engine.workers,
            "steps": len(n), "load_s": round(load_s, 2), "build_s": round(build_s, 2),
            "load_cpu_s": round(load_cpu_s, 2), "build_cpu_s": round(build_cpu_s, 2),
            "base_mb": round(base_mb),
            "start_peak_mb": round(start_peak[0]),
            "rss_after_first_step_mb": round(rss[0]) if rss else None,
            "rss_end_mb": round(rss[-1]) if rss else None,
            "rss_max_stepping_mb": round(max(rss)) if rss else None,
            "slope_mb_per_100_steps": round(slope_per_100([s for s, _ in kept],
                                                          [r for _, r in kept]), 2),
            "median_step_s": round(float(np.median(step_times[1:] or step_times)), 3),
            "median_step_cpu_s": round(float(np.median(step_cpu[1:] or step_cpu)), 3),
            "workers_rss_mb": round(workers_rss_mb()),
            "events_published": server.counters.events_published,
            "subscriber_mb": round(received[0] / MB, 1),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        }
        # The server trims the heap every 5 s: between trims the step's temporaries stay
        # resident, so the samples saw-tooth. Floor and ceiling per tenth of the run say
        # whether either rises.
        tenths = np.array_split(np.asarray(rss), min(10, len(rss))) if rss else []
        result["floor_by_tenth_mb"] = [round(float(t.min())) for t in tenths]
        result["ceiling_by_tenth_mb"] = [round(float(t.max())) for t in tenths]
        result["rss_by_step_mb"] = [round(r, 1) for r in rss]
        result["total_pss_every_10_steps_mb"] = [round(p) for p in pss]
        result["total_pss_max_mb"] = round(max(pss)) if pss else None
        result["peak_by_stage_mb"] = sampler.stop()
        result["ru_maxrss_mb"] = round(peak_rss_mb())
    finally:
        if sub is not None:
            sub.close(0)
        server.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=SIZES, default="1m")
    parser.add_argument("--steps", type=count_argument(1), default=200)
    parser.add_argument("--workers", type=count_argument(1), default=1)
    parser.add_argument("--skip", type=count_argument(0), default=10,
                        help="steps left out of the slope (warm-up)")
    parser.add_argument("--subscriber", action="store_true",
                        help="read the default stream on a SUB socket")
    parser.add_argument("--trim-interval-s", type=positive_argument("trim interval", 3600.0),
                        help="the server's heap trim"
                        " interval (twin.runtime.server.MEMORY_TRIM_INTERVAL_S), to compare")
    parser.add_argument("--out", type=Path, help="also write the result, with the resident"
                        " memory after every step, to this JSON file")
    args = parser.parse_args()
    if args.trim_interval_s is not None:
        import twin.runtime.server

        twin.runtime.server.MEMORY_TRIM_INTERVAL_S = args.trim_interval_s
    result = soak(args.size, args.steps, args.workers, args.skip, args.subscriber)
    if args.out is not None:
        args.out.write_text(json.dumps(result))
    result.pop("rss_by_step_mb")
    print(json.dumps(result))
    r = result
    print(f"{r['n']:,} satellites, {r['workers']} worker(s): load {r['load_s']} s"
          f" ({r['load_cpu_s']} s of CPU), start peak"
          f" {r['start_peak_mb']:,} MB; resident {r['rss_after_first_step_mb']:,} MB after"
          f" step 1, {r['rss_end_mb']:,} MB after {r['steps']}; slope"
          f" {r['slope_mb_per_100_steps']} MB per 100 steps; median step"
          f" {r['median_step_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

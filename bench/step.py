"""Benchmark the twin's full step against bare SGP4 and a skyfield loop, in one process.

Usage:
    .venv/bin/python bench/step.py [--scenario starlink] [--steps 300] [--memory-steps 10000]

Prints the median cost of each, the ratios, steps per second, the cost of each subsystem
and the resident memory of a separate ``odc run --fast`` over ``--memory-steps`` steps.
Machines here are shared: trust ratios measured in the same run, not absolute times.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import psutil
from sgp4.api import SatrecArray

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchargs import checked_scenario  # noqa: E402

from twin.core.clock import SimClock  # noqa: E402
from twin.core.engine import Engine  # noqa: E402
from twin.runtime.allocator import keep_temporaries_in_heap  # noqa: E402
from twin.runtime.cli import count_argument  # noqa: E402
from twin.runtime.server import Addresses, TwinServer  # noqa: E402
from twin.scenario import load_scenario  # noqa: E402

# Clock, context, header (fleet totals), encoding and publishing: timed per step, as a
# subsystem is (a difference of medians is not the median of the differences).
REST = "encode + publish (rest)"


def median_ms(samples: list[float]) -> float:
    return 1e3 * statistics.median(samples)


class BareSgp4:
    """The floor: one SatrecArray call for the whole catalog, nothing else."""

    def __init__(self, satrecs: list, jd: float, fr: float) -> None:
        self.array = SatrecArray(satrecs)
        self.jd = np.array([jd])
        self.fr = np.array([fr])
        self.base_fr = fr
        self.calls = 0

    def time_one(self) -> float:
        # A new instant each call, as the twin has, so no cache or predictor gets a free ride.
        self.calls += 1
        self.fr[0] = self.base_fr + self.calls * 1e-5
        started = time.perf_counter()
        self.array.sgp4(self.jd, self.fr)
        return time.perf_counter() - started


DRAIN_SCRIPT = """
import sys, zmq
sub = zmq.Context.instance().socket(zmq.SUB)
sub.setsockopt(zmq.SUBSCRIBE, b"")
sub.connect(sys.argv[1])
while True:
    sub.recv_multipart(copy=False)
"""


def time_skyfield_loop(satrecs: list, jd: float, fr: float, repeats: int) -> list[float]:
    from skyfield.api import EarthSatellite, load

    ts = load.timescale(builtin=True)
    sats = [EarthSatellite.from_satrec(s, ts) for s in satrecs]
    samples = []
    for k in range(repeats):
        t = ts.ut1_jd(jd + fr + k * 1e-5)  # UT1 ~ UTC to well under a second: fine for timing
        started = time.perf_counter()
        for sat in sats:
            sat.at(t)
        samples.append(time.perf_counter() - started)
    return samples


def orbit_only(engine: Engine) -> Engine:
    """The engine trimmed to its orbit: issue 2's "full orbital step" (propagation,
    frames, Sun, shadow, geodetic, contacts, then encode and publish of the orbit's
    fields and header alone), as the twin was before thermal, power and compute."""
    engine.subsystems = [engine.orbit]
    engine._fields = engine.orbit.fields()
    return engine


def time_twin_step(
    scenario_name: str, steps: int, bare: BareSgp4, only_orbit: bool = False
) -> tuple[list[float], list[float], dict[str, list[float]], TwinServer]:
    """Time the twin's steps with a bare SGP4 call interleaved before each one.

    Interleaving puts both under the same load from whatever else the shared machine is
    doing at that moment, so their ratio holds even when absolute times wander.
    """
    scenario = load_scenario(scenario_name)
    clock = SimClock(scenario.epoch_utc, rate_hz=10.0, warp=10.0, fast=True)
    engine = Engine(scenario, clock)
    if only_orbit:
        orbit_only(engine)
    any_port = "tcp://127.0.0.1:*"
    server = TwinServer(engine, Addresses(any_port, any_port, any_port))
    # A real subscriber drains the stream from its own process, as a viewer does, so
    # encode and publish are real and the subscriber does not take the twin's GIL.
    drain = subprocess.Popen([sys.executable, "-c", DRAIN_SCRIPT, server.bound.pub])
    time.sleep(0.5)
    per_subsystem: dict[str, list[float]] = {s.name: [] for s in engine.subsystems}
    per_subsystem[REST] = []
    totals, bare_samples = [], []
    for _ in range(steps):
        bare_samples.append(bare.time_one())
        started = time.perf_counter()
        dt_s = clock.advance()
        ctx = engine.context(dt_s)
        rest = time.perf_counter() - started
        for subsystem in engine.subsystems:
            t0 = time.perf_counter()
            subsystem.step(ctx)
            per_subsystem[subsystem.name].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        server._publish_state()
        server._publish_events()
        ended = time.perf_counter()
        per_subsystem[REST].append(rest + ended - t0)
        totals.append(ended - started)
    drain.terminate()
    drain.wait()
    return totals, bare_samples, per_subsystem, server


def memory_profile(scenario_name: str, steps: int) -> tuple[float, float, float]:
    """Run `odc run --fast` as its own process; sample its RSS. Returns MB: early, peak, last."""
    command = [
        sys.executable, "-m", "twin", "--scenario", scenario_name, "--fast", "--steps",
        str(steps), "--quiet", "--pub", "tcp://127.0.0.1:*", "--cmd", "tcp://127.0.0.1:*",
        "--ingest", "tcp://127.0.0.1:*",
    ]
    proc = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.DEVNULL)
    handle = psutil.Process(proc.pid)
    samples = []
    while proc.poll() is None:
        try:
            samples.append(handle.memory_info().rss / 1e6)
        except psutil.Error:
            break
        time.sleep(0.2)
    proc.wait()
    if not samples:
        return float("nan"), float("nan"), float("nan")
    early = samples[min(len(samples) - 1, 10)]
    return early, max(samples), samples[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=checked_scenario, default="starlink")
    parser.add_argument("--steps", type=count_argument(1), default=300)
    parser.add_argument("--skyfield-repeats", type=count_argument(1), default=3)
    parser.add_argument("--memory-steps", type=count_argument(), default=10_000,
                        help="steps for the resident-memory run (0 skips it)")
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc malloc as it is (the twin's CLI tunes it)")
    args = parser.parse_args()
    if not args.default_malloc:
        keep_temporaries_in_heap()
    warnings.simplefilter("ignore", RuntimeWarning)

    scenario = load_scenario(args.scenario)
    satrecs = [sat.satrec for sat in scenario.satellites]
    clock = SimClock(scenario.epoch_utc, rate_hz=10.0, warp=10.0)
    jd, fr = clock.jd_utc
    print(f"scenario {args.scenario}: {len(satrecs)} satellites, {len(scenario.stations)} stations")
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, cpu count {os.cpu_count()}")
    # The ratios below move 5-15 % with the host's load (docs/performance.md): say what it was.
    print("load average {:.2f} {:.2f} {:.2f} (1, 5, 15 min)".format(*os.getloadavg()))

    orbital, orbital_bare, _, orbital_server = time_twin_step(
        args.scenario, args.steps, BareSgp4(satrecs, jd, fr), only_orbit=True
    )
    orbital_server.close()
    twin, bare, per_subsystem, server = time_twin_step(
        args.scenario, args.steps, BareSgp4(satrecs, jd, fr)
    )
    loop = time_skyfield_loop(satrecs, jd, fr, args.skyfield_repeats)
    server.close()

    bare_ms, twin_ms, loop_ms = median_ms(bare), median_ms(twin), median_ms(loop)
    quarter, three_quarters = np.percentile(np.array(bare) * 1e3, [25.0, 75.0])
    print(f"bare SatrecArray.sgp4          {bare_ms:8.3f} ms  (median of {len(bare)}, "
          f"middle half {quarter:.3f}-{three_quarters:.3f} ms, interleaved with the twin's "
          "steps)")
    print(f"skyfield per-satellite .at(t)  {loop_ms:8.3f} ms  (median of {len(loop)})")
    print(f"twin full step                 {twin_ms:8.3f} ms  (median of {len(twin)}), "
          f"{1e3 / twin_ms:.0f} steps/s")
    for name, samples in per_subsystem.items():
        if name == REST:
            continue
        cost_ms = median_ms(samples)
        print(f"  {name:28s} {cost_ms:8.3f} ms  = {cost_ms / bare_ms:.2f}x bare")
    if "power" in per_subsystem and "thermal" in per_subsystem:
        # Issue 3's target: thermal and power together at most 0.3x bare propagation.
        both = [p + t for p, t in zip(per_subsystem["power"], per_subsystem["thermal"],
                                      strict=True)]
        print(f"  {'power + thermal (target 0.3x)':28s} {median_ms(both):8.3f} ms  = "
              f"{median_ms(both) / bare_ms:.2f}x bare")
    rest_ms = median_ms(per_subsystem[REST])
    print(f"  {REST:28s} {rest_ms:8.3f} ms  = {rest_ms / bare_ms:.2f}x bare")
    if "orbit" in per_subsystem:
        # The orbit's own work on top of propagation, step by step against the bare call.
        extra = [o - b for o, b in zip(per_subsystem["orbit"], bare, strict=True)]
        print(f"  {'orbit minus bare SGP4':28s} {median_ms(extra):8.3f} ms")
    orbital_ms, orbital_bare_ms = median_ms(orbital), median_ms(orbital_bare)
    print(f"orbital step, orbit-only twin  {orbital_ms:8.3f} ms  (propagation to publish; bare "
          f"{orbital_bare_ms:.3f} ms in that run)")
    print(f"ratio orbital step / bare      {orbital_ms / orbital_bare_ms:8.2f}x  (issue 2 target "
          "1.5x)")
    print(f"ratio twin / bare sgp4         {twin_ms / bare_ms:8.2f}x  (issue 4 target 2x)")
    print(f"ratio skyfield loop / twin     {loop_ms / twin_ms:8.1f}x")
    if args.memory_steps:
        early, peak, last = memory_profile(args.scenario, args.memory_steps)
        print(f"resident memory over {args.memory_steps} steps: after warm-up {early:.0f} MB, "
              f"peak {peak:.0f} MB, at end {last:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark the cost of optical links (topology, routing) on a scenario, against bare SGP4.

Usage:
    .venv/bin/python bench/links.py [--scenario starlink] [--terminals 4] [--steps 600]
                                    [--dt 1.0] [--preset sda] [--warmup-s 150]

Runs two twins in one process, stepping them in turn, each after a bare SGP4 call as
bench/step.py does: one as the scenario is (no links), one with a ``[links]`` table added.
Both first step through ``--warmup-s`` untimed, so the links have acquired and the timing
is of the steady state, periodic searches and route builds included. Prints, per twin, the
mean and median step (every model and the header, no publishing), each model's cost, and
the links' cost against the step and against bare SGP4. The mean counts the periodic
searches and route builds, which a median hides. Machines here are shared: trust ratios
measured in the same run, not absolute times.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchargs import checked_scenario  # noqa: E402
from step import BareSgp4  # noqa: E402

from twin.core.clock import SimClock  # noqa: E402
from twin.core.engine import Engine  # noqa: E402
from twin.runtime.allocator import keep_temporaries_in_heap  # noqa: E402
from twin.runtime.cli import count_argument, positive_argument  # noqa: E402
from twin.scenario import load_scenario, parse_scenario  # noqa: E402


def scenario_text(name: str) -> tuple[str, Path]:
    path = Path(load_scenario(name).source)
    return path.read_text(encoding="utf-8"), path


class Run:
    """One twin, stepped by hand so that each model's time is taken."""

    def __init__(self, text: str, path: Path, dt_s: float, bare: BareSgp4) -> None:
        scenario = parse_scenario(text, source=str(path), base_dir=path.parent)
        self.clock = SimClock(scenario.epoch_utc, rate_hz=1.0, warp=dt_s, fast=True)
        self.engine = Engine(scenario, self.clock)
        self.bare = bare
        self.totals: list[float] = []
        self.bare_s: list[float] = []
        self.per_model: dict[str, list[float]] = {s.name: [] for s in self.engine.subsystems}

    def step(self) -> None:
        self.bare_s.append(self.bare.time_one())
        started = time.perf_counter()
        ctx = self.engine.context(self.clock.advance())
        for subsystem in self.engine.subsystems:
            t0 = time.perf_counter()
            subsystem.step(ctx)
            self.per_model[subsystem.name].append(time.perf_counter() - t0)
        self.engine.header()
        self.totals.append(time.perf_counter() - started)

    def report(self, label: str) -> None:
        ms = 1e3
        bare_med = statistics.median(self.bare_s)
        print(f"{label:14s} step mean {ms * statistics.mean(self.totals):7.3f} ms, median "
              f"{ms * statistics.median(self.totals):7.3f} ms = "
              f"{statistics.median(self.totals) / bare_med:5.2f}x bare "
              f"(bare SGP4 median {ms * bare_med:.3f} ms)")
        print("  models, mean / median ms: " + ", ".join(
            f"{name} {ms * statistics.mean(v):.3f} / {ms * statistics.median(v):.3f}"
            for name, v in self.per_model.items() if statistics.mean(v) > 1e-5))
        fleet = self.engine.header()["fleet"]
        if "links_up" in fleet:
            print(f"  at the end: {fleet['links_up']} links up, {fleet['links_acquiring']} "
                  f"acquiring, {fleet['relay_nodes']} nodes relaying, bisection "
                  f"{fleet['isl_bisection_bps'] / 1e9:.0f} Gb/s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=checked_scenario, default="starlink")
    parser.add_argument("--terminals", type=count_argument(1), default=4)
    parser.add_argument("--preset", choices=("sda", "suncatcher"), default="sda")
    parser.add_argument("--steps", type=count_argument(1), default=600)
    parser.add_argument("--warmup-s", type=positive_argument("--warmup-s", 86400.0),
                        default=150.0, help="simulated seconds stepped before timing, so "
                        "the links have acquired (SDA: 100 s)")
    parser.add_argument("--dt", type=positive_argument("--dt", 3600.0), default=1.0,
                        help="simulated seconds per step (bench/step.py uses 1)")
    args = parser.parse_args()
    keep_temporaries_in_heap()
    warnings.simplefilter("ignore", RuntimeWarning)
    text, path = scenario_text(args.scenario)
    if "\n[links]" in text:
        parser.error(f"{args.scenario} already has a [links] table")
    linked = text + (f"\n[links]\nterminals_per_sat = {args.terminals}\n"
                     f"preset = \"{args.preset}\"\n"
                     "[[links.user]]\nname = \"Paris\"\nlat_deg = 48.85\nlon_deg = 2.35\n")
    scenario = load_scenario(args.scenario)
    satrecs = [sat.satrec for sat in scenario.satellites]
    clock = SimClock(scenario.epoch_utc, rate_hz=1.0, warp=args.dt)
    jd, fr = clock.jd_utc
    print(f"scenario {args.scenario}: {len(satrecs)} satellites; {args.terminals} terminals "
          f"({args.preset}); {args.steps} steps of {args.dt:g} s timed after "
          f"{args.warmup_s:g} s of warm-up")
    print("load average {:.2f} {:.2f} {:.2f} (1, 5, 15 min)".format(*os.getloadavg()))
    # Both twins step in turn, each after its own bare SGP4 call: the same machine load
    # falls on both, so their difference holds when absolute times wander.
    plain = Run(text, path, args.dt, BareSgp4(satrecs, jd, fr))
    linked_run = Run(linked, path, args.dt, BareSgp4(satrecs, jd, fr))
    for run in (plain, linked_run):
        for _ in range(round(args.warmup_s / args.dt)):
            run.engine.step()
    for _ in range(args.steps):
        plain.step()
        linked_run.step()
    plain.report("without links")
    linked_run.report("with links")
    ms = 1e3
    link = linked_run.per_model["links"]
    bare_med = statistics.median(plain.bare_s + linked_run.bare_s)
    added_mean = statistics.mean(linked_run.totals) - statistics.mean(plain.totals)
    added_median = statistics.median(linked_run.totals) - statistics.median(plain.totals)
    print(f"links model alone: mean {ms * statistics.mean(link):.3f} ms "
          f"({statistics.mean(link) / bare_med:.2f}x bare), median "
          f"{ms * statistics.median(link):.3f} ms ({statistics.median(link) / bare_med:.2f}x "
          f"bare), max {ms * max(link):.1f} ms")
    print(f"added to the step: mean {ms * added_mean:.3f} ms = "
          f"{added_mean / statistics.mean(plain.totals):+.1%} of the step without links "
          f"({added_mean / bare_med:.2f}x bare); median {ms * added_median:.3f} ms = "
          f"{added_median / statistics.median(plain.totals):+.1%} "
          f"({added_median / bare_med:.2f}x bare)")
    np.seterr(all="warn")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark headless runs and Dask sweeps: simulated seconds per wall second, sweep
throughput on 1 and 2 workers, per-run overhead, and a long coarse run.

Usage:
    .venv/bin/python bench/sweep.py [--days 1] [--runs 8] [--run-hours 2] [--long-years 0]

Prints, for `default`:
  - headless: one simulated day at 60 s steps through ``run_headless`` (engine + ledger),
    simulated seconds per wall second;
  - sweep: the same ``--runs`` runs of ``--run-hours`` simulated hours on a LocalCluster of
    1 and then 2 worker processes, runs per second and the speed-up;
  - per-run overhead: a sweep run's wall time less the time its own simulation took
    (scheduling, transfer, Parquet), and the fixed start of a run (scenario, engine, one
    step);
  - with ``--long-years N``: one N-year run at 600 s steps.
Machines here are shared: the load average is printed; trust ratios from one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from twin.runtime.cli import count_argument, positive_argument  # noqa: E402
from twin.scenario import load_scenario  # noqa: E402
from twin.sweep import dask_client, load_spec, read_rows, run_headless, run_sweep  # noqa: E402

SPEC = """
[sweep]
name = "bench"
scenario = "default"
duration_s = {duration_s}
step_s = 60.0
seeds = {runs}
series_samples = 10
output = "{output}"
"""


def headless(days: float) -> None:
    scenario = load_scenario("default")
    result = run_headless(scenario, days * 86400.0, 60.0)
    rate = days * 86400.0 / result.wall_s
    print(f"headless default, {days:g} day(s) at 60 s steps: {result.steps} steps in "
          f"{result.wall_s:.2f} s = {rate:,.0f} simulated s per wall s "
          f"({1e3 * result.wall_s / result.steps:.2f} ms a step, ledger included)")


def warm_up() -> None:
    run_headless(load_scenario("default"), 60.0, 60.0)


def sweep_throughput(runs: int, run_hours: float) -> None:
    with tempfile.TemporaryDirectory() as folder:
        rates = {}
        for workers in (1, 2):
            out = Path(folder) / f"w{workers}"
            path = Path(folder) / f"w{workers}.toml"
            path.write_text(SPEC.format(duration_s=run_hours * 3600.0, runs=runs,
                                        output=out), encoding="utf-8")
            spec = load_spec(path)
            with dask_client(n_workers=workers) as client:
                # Every worker imports the twin and makes one short run before timing.
                client.run(warm_up)
                started = time.perf_counter()
                outcome = run_sweep(spec, client=client, progress=False, report=False)
                wall = time.perf_counter() - started
            rows = read_rows(outcome.runs_path)
            inside = [r["wall_s"] for r in rows]
            rates[workers] = runs / wall
            print(f"sweep, {workers} worker(s): {runs} runs of {run_hours:g} h in {wall:.2f} s "
                  f"= {rates[workers]:.2f} runs/s; a run's own time median "
                  f"{statistics.median(inside):.2f} s")
            if workers == 1:
                overhead = wall / runs - statistics.mean(inside)
                print(f"per-run overhead of the sweep (1 worker): {overhead:.3f} s "
                      "(scheduling, transfer, Parquet writes)")
        print(f"speed-up 1 -> 2 workers: {rates[2] / rates[1]:.2f}x on {os.cpu_count()} "
              "cores")
    scenario = load_scenario("default")
    starts = [run_headless(scenario, 60.0, 60.0).wall_s for _ in range(5)]
    print(f"fixed start of a run (StaticEconomics, Engine, one step): median "
          f"{statistics.median(starts):.3f} s")


def long_run(years: float) -> None:
    scenario = load_scenario("default")
    result = run_headless(scenario, years * 365.25 * 86400.0, 600.0)
    print(f"{years:g}-year run of default at 600 s steps: {result.steps} steps in "
          f"{result.wall_s / 60:.1f} min; $/PFLOP-day {result.kpis['usd_per_pflop_day']:,.0f}, "
          f"binding limit {result.kpis['binding_limit']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=positive_argument("days", 3660.0), default=1.0)
    parser.add_argument("--runs", type=count_argument(1), default=8)
    parser.add_argument("--run-hours", type=positive_argument("hours", 8760.0), default=2.0)
    parser.add_argument("--long-years", type=float, default=0.0,
                        help="years of the long coarse run (0: none)")
    parser.add_argument("--skip-sweep", action="store_true")
    args = parser.parse_args()
    print("load average {:.2f} {:.2f} {:.2f} (1, 5, 15 min); {} cores".format(
        *os.getloadavg(), os.cpu_count()))
    headless(args.days)
    if not args.skip_sweep:
        sweep_throughput(args.runs, args.run_hours)
    if args.long_years > 10.0:
        parser.error("--long-years: at most 10")
    if args.long_years > 0:
        long_run(args.long_years)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

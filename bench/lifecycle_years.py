"""Run a scenario with its lifecycle over years at a coarse step; report what ages and falls.

Usage:
    .venv/bin/python bench/lifecycle_years.py [--scenario default] [--years 10] [--dt 600]
        [--png PATH]

Steps the whole twin headless (the engine API, as bench/design_year.py does) from the
scenario's epoch. A scenario without a ``[lifecycle]`` table runs with one of defaults
(the table is added to a copy of the file). Prints, per simulated year, the installed
accelerators left, the nodes operating, re-entries, mass left in orbit, mean array and
battery health and propellant burned, then the wall time and simulated seconds per wall
second. ``--png`` draws the same over time. docs/performance.md, "Lifecycle over years",
records a run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchargs import checked_scenario  # noqa: E402

from twin.core.clock import MAX_STEP_S, SimClock  # noqa: E402
from twin.core.engine import Engine  # noqa: E402
from twin.models.lifecycle.decay import SECONDS_PER_YEAR  # noqa: E402
from twin.runtime.cli import positive_argument  # noqa: E402
from twin.scenario import Scenario, load_scenario  # noqa: E402

COLUMNS = ("accelerators_installed_count", "nodes_operating_count", "reentries_count",
           "mass_in_orbit_kg", "array_health_mean_frac", "battery_capacity_mean_frac",
           "propellant_used_kg", "compute_power_w", "p_load_total_w", "compute_energy_j")
POWER_TOTALS = ("compute_power_w", "p_load_total_w", "compute_energy_j")
"""Fleet totals of compute and power sampled with the lifecycle's: nodes out of service
draw nothing, so the load falls as they retire (docs/models.md, "Out-of-service nodes")."""


def sample(engine: Engine, t_yr: float) -> dict[str, float]:
    """The lifecycle's totals and the fleet's load and compute energy at ``t_yr``."""
    fleet = engine.header()["fleet"]
    return {"t_yr": t_yr, **engine.models["lifecycle"].summary(totals_only=True),
            **{key: fleet[key] for key in POWER_TOTALS}}


def with_lifecycle(name: str, folder: Path, acceleration: float) -> Scenario:
    """The scenario, with a ``[lifecycle]`` table of defaults (and ``time_acceleration``)
    if it has none.

    Raises:
        ValueError: An acceleration asked of a scenario with its own table.
    """
    scenario = load_scenario(name)
    if "lifecycle" in scenario.sections:
        if acceleration != 1.0:
            raise ValueError(f"{scenario.source} has its own [lifecycle] table: set "
                             "time_acceleration there")
        return scenario
    copy = folder / Path(scenario.source).name
    copy.write_text(Path(scenario.source).read_text()
                    + f"\n[lifecycle]\ntime_acceleration = {acceleration!r}\n")
    return load_scenario(str(copy))


def run(scenario: Scenario, years: float, dt_s: float, samples_per_year: int = 12
        ) -> tuple[list[dict[str, float]], float, int]:
    """Step ``years`` at ``dt_s``; the lifecycle's totals ``samples_per_year`` times a year,
    the wall time and the steps."""
    engine = Engine(scenario, SimClock(scenario.epoch_utc, rate_hz=1.0, warp=dt_s, fast=True))
    lifecycle = engine.models["lifecycle"]
    speed = lifecycle.params.time_acceleration
    steps = round(years * SECONDS_PER_YEAR / dt_s / speed)
    every = max(1, int(SECONDS_PER_YEAR / samples_per_year / dt_s / speed))
    rows: list[dict[str, float]] = [sample(engine, 0.0)]
    started = time.perf_counter()
    for k in range(1, steps + 1):
        engine.step()
        engine.events.drain()  # nobody listens: keep the queue short
        if k % every == 0 or k == steps:
            rows.append(sample(engine, k * dt_s * speed / SECONDS_PER_YEAR))
    return rows, time.perf_counter() - started, steps


def plot(rows: list[dict[str, float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [r["t_yr"] for r in rows]
    fig, axes = plt.subplots(2, 3, figsize=(15, 7), sharex=True)
    panels = (("accelerators_installed_count", "installed accelerators (working, operating)"),
              ("reentries_count", "nodes re-entered (cumulative)"),
              ("mass_in_orbit_kg", "mass left in orbit, kg (e-waste account)"),
              (("array_health_mean_frac", "battery_capacity_mean_frac"),
               "array output and battery capacity left\n(mean over nodes still in orbit: "
               "rises as worn nodes re-enter)"),
              (("p_load_total_w", "compute_power_w"),
               "fleet load and compute power, W\n(nodes out of service draw nothing)"),
              ("compute_energy_j", "compute energy since the start, J"))
    for ax, (keys, label) in zip(axes.ravel(), panels, strict=True):
        for key in (keys if isinstance(keys, tuple) else (keys,)):
            ax.plot(t, [r[key] for r in rows], label=key)
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
        if isinstance(keys, tuple):
            ax.legend(fontsize=8)
    for ax in axes[1]:
        ax.set_xlabel("simulated years from the epoch")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=checked_scenario, default="default")
    parser.add_argument("--years", type=positive_argument("years", 100.0), default=10.0)
    parser.add_argument("--dt", type=positive_argument("dt", MAX_STEP_S), default=MAX_STEP_S,
                        help=f"simulated seconds a step (at most {MAX_STEP_S:g})")
    parser.add_argument("--acceleration", type=positive_argument("acceleration", 1e4),
                        default=1.0, help="lifecycle time_acceleration: lifecycle seconds "
                        "per simulated second (years of ageing in days of the twin)")
    parser.add_argument("--png", type=Path, help="draw the run over time into this PNG")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        try:
            scenario = with_lifecycle(args.scenario, Path(folder), args.acceleration)
        except ValueError as exc:
            parser.error(str(exc))
        rows, wall_s, steps = run(scenario, args.years, args.dt)
    print("t_yr " + " ".join(COLUMNS))
    for row in rows:
        if abs(row["t_yr"] - round(row["t_yr"])) < 1e-6 or row is rows[-1]:
            print(f"{row['t_yr']:.2f} " + " ".join(f"{row[c]:.4g}" for c in COLUMNS))
    sim_s = steps * args.dt
    print(f"{steps} steps of {args.dt:g} s ({sim_s / SECONDS_PER_YEAR:.2f} years of the twin, "
          f"{sim_s * args.acceleration / SECONDS_PER_YEAR:.2f} of the lifecycle) in "
          f"{wall_s:.0f} s wall: {sim_s / wall_s:,.0f} simulated s per wall s, "
          f"{wall_s / steps * 1e3:.2f} ms a step")
    if args.png:
        plot(rows, args.png, f"{scenario.name}: lifecycle over {args.years:g} years, "
             f"{args.dt:g} s steps, time acceleration {args.acceleration:g}")
        print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

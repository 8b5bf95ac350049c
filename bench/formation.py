"""Benchmark the cost of a formation cluster in the twin's step (issue 19: under 2 ms).

Usage:
    .venv/bin/python bench/formation.py [--steps 300] [--warp 60] [--rate 10] [--members 81]

Steps the bundled ``suncatcher`` scenario (81 members; ``--members N`` rewrites the cluster
to N members with the radius grown to fit) and times, per step, the parts a cluster adds:
the members' relative propagation and station keeping (``FormationClusters.step``, inside
the orbit model), the self-shadowing (``FormationClusters.shade``) and the formation model
(nearest neighbours, ledger, events), against the whole engine step of the same run.
``--warp`` over ``--rate`` is the simulated step (60 / 10 = 6 s: one Runge–Kutta step;
600 / 10 = 60 s: six). Also prints the station keeping's Δv per member per year over the
time flown (``--steps 28800 --warp 600``: 20 days). Machines here are shared: compare
numbers of one run.
"""

from __future__ import annotations

import argparse
import math
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from twin.astro.formation import pattern_radius_m  # noqa: E402
from twin.core.clock import SimClock  # noqa: E402
from twin.core.engine import Engine  # noqa: E402
from twin.runtime.cli import count_argument, positive_argument  # noqa: E402
from twin.scenario import SCENARIOS_DIR, load_scenario, parse_scenario  # noqa: E402
from twin.scenario.loader import Scenario  # noqa: E402


def scenario_with(members: int) -> Scenario:
    """``suncatcher`` with ``members`` members, its radius grown to fit them."""
    if members == 81:
        return load_scenario("suncatcher")
    text = (SCENARIOS_DIR / "suncatcher.toml").read_text()
    radius = math.ceil(2.1 * pattern_radius_m(members, 100.0)) + 10
    text = re.sub(r"(?m)^members = \d+", f"members = {members}", text)
    text = re.sub(r"(?m)^radius_m = [\d.]+", f"radius_m = {radius}.0", text)
    return parse_scenario(text, source=f"suncatcher with {members} members")


def timed(samples: list[float], call: Callable[..., Any]) -> Callable[..., Any]:
    """``call``, adding the seconds of each call to the last entry of ``samples``."""
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            samples[-1] += time.perf_counter() - start
    return wrapper


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=count_argument(1, 1_000_000), default=300)
    parser.add_argument("--warp", type=positive_argument("warp", 1e5), default=60.0)
    parser.add_argument("--rate", type=positive_argument("rate", 1e3), default=10.0)
    parser.add_argument("--members", type=count_argument(2, 10_000), default=81)
    args = parser.parse_args()

    scenario = scenario_with(args.members)
    engine = Engine(scenario, SimClock(scenario.epoch_utc, args.rate, args.warp, fast=True))
    flown = engine.models["orbit"].formation
    model = engine.models["formation"]
    parts: dict[str, list[float]] = {name: [] for name in (
        "relative motion + station keeping", "self-shadowing", "formation model",
        "whole engine step")}
    flown.step = timed(parts["relative motion + station keeping"], flown.step)
    flown.shade = timed(parts["self-shadowing"], flown.shade)
    model.step = timed(parts["formation model"], model.step)
    for _ in range(20):  # warm up
        for samples in parts.values():
            samples.append(0.0)
        engine.step()
    for samples in parts.values():
        samples.clear()
    burns = 0
    burn_steps: list[int] = []
    for k in range(args.steps):
        for samples in parts.values():
            samples.append(0.0)
        start = time.perf_counter()
        engine.step()
        parts["whole engine step"][-1] = time.perf_counter() - start
        burns += len(flown.burns)
        if any(burn.kind == "arrival" for burn in flown.burns):
            burn_steps.append(k)
    cluster = [sum(values) for values in zip(*(parts[name] for name in list(parts)[:3]),
                                             strict=True)]
    print(f"scenario {scenario.name}: {len(flown.all_sats)} members, step "
          f"{args.warp / args.rate:g} s simulated, {args.steps} steps, {burns} impulses")
    for name, samples in [*parts.items(), ("cluster part (the three above)", cluster)]:
        print(f"  {name:34s} median {1e3 * statistics.median(samples):7.3f} ms"
              f"   p95 {1e3 * sorted(samples)[int(0.95 * (len(samples) - 1))]:7.3f} ms"
              f"   max {1e3 * max(samples):7.3f} ms")
    fleet = engine.header()["fleet"]
    print(f"  flown {flown.elapsed_s / 86400.0:.2f} days: station keeping"
          f" {fleet['member_dv_per_year_m_s']:.2f} m/s per member per year, "
          f"{fleet['member_dv_used_m_s']:.3f} m/s in all, propellant left"
          f" {fleet['member_propellant_kg']:.2f} kg, closest pair now"
          f" {fleet['member_min_dist_m']:.1f} m")
    if burn_steps:  # an arrival re-shoots the arriving members' orbit: the costly steps
        with_burns = [cluster[k] for k in burn_steps]
        print(f"  cluster part on the {len(burn_steps)} steps with a transfer's arrival:"
              f" median {1e3 * statistics.median(with_burns):.3f} ms,"
              f" max {1e3 * max(with_burns):.3f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

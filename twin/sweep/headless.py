"""One run of the twin with no sockets, at full speed, with its economics ledger.

``run_headless`` is the library call a sweep runs once per Dask task (docs/sweeps.md); it
is also usable on its own:

    from twin.scenario import load_scenario
    from twin.sweep import run_headless
    result = run_headless(load_scenario("default"), duration_s=86400.0, step_s=60.0)
    print(result.kpis["usd_per_pflop_day"], result.kpis["binding_limit"])
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from twin.core.clock import SimClock
from twin.core.engine import Engine
from twin.economics import RunLedger, StaticEconomics, kpis
from twin.scenario import Scenario


@dataclass(frozen=True)
class RunResult:
    """What one run gives: the ledger's books, the KPIs, a time series, wall time (s)."""

    books: dict[str, Any]
    kpis: dict[str, Any]
    series: list[dict[str, float]]
    steps: int
    wall_s: float


def run_headless(scenario: Scenario, duration_s: float, step_s: float, seed: int | None = None,
                 samples: int = 50) -> RunResult:
    """Step ``scenario`` for ``duration_s`` simulated seconds in steps of ``step_s`` (the
    last step shortened to end on time is not taken: the run covers whole steps) and keep
    its books.

    Args:
        scenario: The loaded scenario (its ``[economics]`` table read here).
        duration_s: Simulated time to run (s).
        step_s: Simulation step (s), 0.01..600 (the clock's bounds).
        seed: Overrides the scenario's seed.
        samples: Rows of the time series (installed and delivered compute, cost), evenly
            spaced, plus the start.

    Raises:
        ScenarioError: A table of the scenario is invalid (names file and key).
        ValueError: ``step_s`` or ``duration_s`` out of range.
    """
    if not (math.isfinite(duration_s) and duration_s > 0.0):
        raise ValueError(f"duration_s must be a positive number of seconds, got {duration_s!r}")
    started = time.perf_counter()
    static = StaticEconomics.from_scenario(scenario)
    clock = SimClock(scenario.epoch_utc, rate_hz=1.0, warp=step_s, fast=True)
    engine = Engine(scenario, clock, seed=seed)
    ledger = RunLedger(engine, static)
    steps = max(1, round(duration_s / step_s))
    every = max(1, steps // max(1, samples))
    t_prev = clock.t_utc
    t0 = clock.t_utc
    for k in range(1, steps + 1):
        engine.step()
        now = clock.t_utc
        ledger.record(now - t_prev)
        t_prev = now
        if k % every == 0 or k == steps:
            ledger.sample(now - t0)
        engine.events.drain()
    books = ledger.books()
    return RunResult(books, kpis(static, books), ledger.series, steps,
                     time.perf_counter() - started)

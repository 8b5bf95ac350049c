"""What one Dask task does: build a run's scenario, run it headless, return its rows.

A task is one simulation. Runs that differ only in ``economics.*`` keys (launch price,
hardware costs) simulate the same fleet, so they share it: the task prices its books once
per such variant, a row each. A task never raises: a run that fails returns its row with
``status = "failed"`` and the error, so one bad combination does not stop a sweep.
Everything in and out is plain data, so any worker that has the twin installed can run it.
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Any

from twin.economics import StaticEconomics, kpis, operating_cost_usd
from twin.scenario import parse_scenario_document
from twin.sweep.headless import run_headless
from twin.sweep.spec import KNOWN_KPIS, apply


def _error(exc: Exception) -> str:
    return traceback.format_exception_only(type(exc), exc)[-1].strip()[:2000]


def _failed(run: dict[str, Any], seed: int, error: str, wall_s: float) -> dict[str, Any]:
    return {"run_id": run["run_id"], "seed": seed, **run["params"], "status": "failed",
            "error": error, "binding_limit": "", "binding_physical_limit": "",
            "wall_s": wall_s, "steps": 0}


def run_task(task: dict[str, Any]) -> dict[str, Any]:
    """Run one simulation of a sweep and price it for each of its runs.

    Args:
        task: ``runs`` (each ``run_id`` and ``params``: key path -> value; they differ only
            in ``economics.*`` keys), ``seed``, ``scenario_doc``, ``scenario_source``,
            ``scenario_dir``, ``duration_s``, ``step_s``, ``series_samples``.

    Returns:
        ``rows``: per run, run_id, seed, each parameter, status, error, every KPI,
        binding_limit, wall_s (the simulation's, shared) and steps; ``series``: each run's
        time series rows, with its run_id.
    """
    started = time.perf_counter()
    runs, seed = task["runs"], task["seed"]
    source, base_dir = task["scenario_source"], Path(task["scenario_dir"])
    try:
        scenario = parse_scenario_document(apply(task["scenario_doc"], runs[0]["params"]),
                                           source, base_dir)
        result = run_headless(scenario, task["duration_s"], task["step_s"], seed=seed,
                              samples=task["series_samples"])
    except Exception as exc:  # a failed run is a result, recorded with its error
        wall = time.perf_counter() - started
        return {"rows": [_failed(run, seed, _error(exc), wall) for run in runs], "series": []}
    wall = time.perf_counter() - started
    rows, series = [], []
    for run in runs:
        try:
            static = StaticEconomics.from_scenario(parse_scenario_document(
                apply(task["scenario_doc"], run["params"]), source, base_dir))
        except Exception as exc:
            rows.append(_failed(run, seed, _error(exc), wall))
            continue
        values = kpis(static, result.books)
        row: dict[str, Any] = {"run_id": run["run_id"], "seed": seed, **run["params"],
                               "status": "ok", "error": "",
                               "binding_limit": values["binding_limit"], "wall_s": wall,
                               "steps": result.steps}
        row.update({name: float(values[name]) for name in KNOWN_KPIS})
        row["violation"] = bool(values["violation"])
        row["binding_physical_limit"] = values["binding_physical_limit"]
        for limit, hours in sorted(result.books["accel_h_shortfall_by_limit"].items()):
            row[f"shortfall_accel_h.{limit}"] = float(hours)
        row["lifecycle_modelled"] = bool(result.books["lifecycle_totals"])
        rows.append(row)
        for sample in result.series:
            cost = operating_cost_usd(static, sample["t_s"], sample["contact_node_s"])
            series.append({"run_id": run["run_id"], **sample, "cost_usd": cost["total_usd"]})
    return {"rows": rows, "series": series}

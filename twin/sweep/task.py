"""What one Dask task does: build the run's scenario, run it headless, return a row.

It never raises: a run that fails returns its row with ``status = "failed"`` and the error,
so one bad combination does not stop a sweep. Everything in and out is plain data (dicts
of numbers and strings), so any worker that has the twin installed can run it.
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Any

from twin.scenario import parse_scenario_document
from twin.sweep.headless import run_headless
from twin.sweep.spec import KNOWN_KPIS, apply


def run_task(task: dict[str, Any]) -> dict[str, Any]:
    """Run one point of a sweep.

    Args:
        task: ``run_id``, ``params`` (key path -> value), ``seed``, ``scenario_doc``,
            ``scenario_source``, ``scenario_dir``, ``duration_s``, ``step_s``,
            ``series_samples``, ``kpis``.

    Returns:
        ``row`` (run_id, seed, each parameter, status, error, each KPI, binding_limit,
        wall_s, steps) and ``series`` (rows of the run's time series, with run_id).
    """
    started = time.perf_counter()
    row: dict[str, Any] = {"run_id": task["run_id"], "seed": task["seed"], **task["params"]}
    try:
        doc = apply(task["scenario_doc"], task["params"])
        scenario = parse_scenario_document(doc, task["scenario_source"],
                                           Path(task["scenario_dir"]))
        result = run_headless(scenario, task["duration_s"], task["step_s"], seed=task["seed"],
                              samples=task["series_samples"])
    except Exception as exc:  # a failed run is a result, recorded with its error
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        row.update(status="failed", error=last[:2000], binding_limit="",
                   wall_s=time.perf_counter() - started, steps=0)
        return {"row": row, "series": []}
    kpis = result.kpis
    row.update(status="ok", error="", binding_limit=kpis["binding_limit"],
               wall_s=time.perf_counter() - started, steps=result.steps)
    for name in dict.fromkeys((*task["kpis"], *KNOWN_KPIS)):
        row[name] = float(kpis[name])
    row["violation"] = bool(kpis["violation"])
    row["lifecycle_modelled"] = bool(result.books["lifecycle_totals"])
    series = [{"run_id": task["run_id"], **sample} for sample in result.series]
    return {"row": row, "series": series}

"""Design sweeps: many headless runs of the twin on Dask, with their economics.

``load_spec`` reads and checks a spec (docs/sweeps.md); ``run_sweep`` runs it, one
simulation per Dask task, and writes runs.parquet, series.parquet and report.html;
``run_headless`` is the one run each task makes, usable on its own.
"""

from twin.sweep.headless import RunResult, run_headless
from twin.sweep.runner import SweepError, SweepOutcome, dask_client, read_rows, run_sweep
from twin.sweep.spec import SpecError, SweepSpec, load_spec

__all__ = ["RunResult", "SpecError", "SweepError", "SweepOutcome", "SweepSpec", "dask_client",
           "load_spec", "read_rows", "run_headless", "run_sweep"]

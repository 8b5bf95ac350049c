"""Run a design sweep on Dask: ``odc sweep SPEC.toml [--scheduler tcp://HOST:8786]``.

The spec names a base scenario, the keys to vary (a grid or Monte Carlo distributions),
the seeds, the simulated duration and step, and the KPIs (docs/sweeps.md). With no
``--scheduler`` a LocalCluster with a worker process per core runs it. Results go to the
spec's output folder: runs.parquet (one row per run), series.parquet and report.html.
Runs already there are skipped. Exit status: 0 every run ok, 1 some runs failed (recorded
with their error), 2 a bad spec, an unreachable scheduler or an unwritable folder.
"""

from __future__ import annotations

import argparse
import logging
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `odc sweep`."""
    parser.add_argument("spec", metavar="SPEC.toml", help="the sweep spec (docs/sweeps.md)")
    parser.add_argument("--scheduler", metavar="tcp://HOST:8786",
                        help="an existing Dask scheduler (default: a LocalCluster here)")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="LocalCluster worker processes (default: one per core)")
    parser.add_argument("--retry-failed", action="store_true",
                        help="run again the runs recorded as failed")
    parser.add_argument("--max-runs", type=int, metavar="N",
                        help="stop after N runs finish this time (resume later)")
    parser.add_argument("--check", action="store_true",
                        help="check the spec and list the runs; run nothing")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _duration(seconds: float) -> str:
    return f"{seconds / 86400:g} days" if seconds >= 86400 else f"{seconds / 3600:g} h"


def run(args: argparse.Namespace) -> int:
    """Check the spec, run it, print where the results are; returns the exit status."""
    from twin.sweep import SpecError, SweepError, load_spec, run_sweep

    if args.workers is not None and args.workers < 1:
        print("odc sweep: --workers must be at least 1", file=sys.stderr)
        return 2
    if args.max_runs is not None and args.max_runs < 1:
        print("odc sweep: --max-runs must be at least 1", file=sys.stderr)
        return 2
    try:
        spec = load_spec(args.spec)
    except SpecError as exc:
        print(f"odc sweep: {exc}", file=sys.stderr)
        return 2
    print(f"odc sweep: {spec.name}: {len(spec.runs)} runs of {_duration(spec.duration_s)} "
          f"simulated at {spec.step_s:g} s steps; varying "
          f"{', '.join(spec.parameters) or 'nothing'}; results in {spec.output}",
          file=sys.stderr)
    if args.check:
        for run in spec.runs[:200]:
            values = ", ".join(f"{k}={v}" for k, v in run.params.items()) or "base scenario"
            print(f"{run.run_id}  seed {run.seed}  {values}")
        if len(spec.runs) > 200:
            print(f"... and {len(spec.runs) - 200} more")
        return 0
    import distributed  # noqa: F401  (its loggers exist from import on)

    # Dask logs every worker start at INFO; the twin's --log-level decides here too.
    logging.getLogger("distributed").setLevel(logging.getLogger().level)
    try:
        outcome = run_sweep(spec, scheduler=args.scheduler, n_workers=args.workers,
                            progress=not args.no_progress, max_new_runs=args.max_runs,
                            retry_failed=args.retry_failed)
    except SweepError as exc:
        print(f"odc sweep: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"odc sweep: interrupted; finished runs are in {spec.output} and the next "
              "call resumes", file=sys.stderr)
        return 130
    print(f"odc sweep: {outcome.done} ok, {outcome.failed} failed, {outcome.skipped} "
          f"already done, {outcome.not_run} not run, in {outcome.wall_s:.1f} s",
          file=sys.stderr)
    print(f"odc sweep: results {outcome.runs_path}", file=sys.stderr)
    if outcome.report_path:
        print(f"odc sweep: report {outcome.report_path}", file=sys.stderr)
    return 1 if outcome.failed else 0

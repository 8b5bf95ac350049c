"""Run a checked spec on Dask: one simulation per task, results to Parquet as they come,
resumable.

Runs that differ only in ``economics.*`` keys share one simulation (one task), priced once
per run (``twin.sweep.task``).

``run_sweep`` is the library call behind ``odc sweep`` (docs/sweeps.md). With no client or
scheduler it starts a ``LocalCluster`` with a worker process per core; ``scheduler`` names an
existing one (``tcp://HOST:8786``). Runs already in the results are skipped, each finished
run is written within seconds, and a failed run is a row with its error.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from twin.sweep.spec import SweepSpec
from twin.sweep.task import run_task

RUNS_FILE = "runs.parquet"
SERIES_FILE = "series.parquet"
REPORT_FILE = "report.html"
WRITE_EVERY_S = 2.0
_SCHEDULER = re.compile(r"^(tcp|tls|inproc|ucx)://[^\s/]+(:\d+)?/?$")


class SweepError(RuntimeError):
    """The sweep cannot start (an unreachable scheduler, an unwritable output folder)."""


@dataclass(frozen=True)
class SweepOutcome:
    """What a call did: runs done and failed this time, skipped (already in the results),
    not run (stopped early), and where the results and report are."""

    done: int
    failed: int
    skipped: int
    not_run: int
    runs_path: Path
    report_path: Path | None
    wall_s: float


@contextmanager
def dask_client(scheduler: str | None = None, n_workers: int | None = None,
                connect_timeout_s: float = 10.0) -> Iterator[Any]:
    """A client on ``scheduler`` or on a new LocalCluster (``n_workers`` processes, one
    thread each; default one per core), closed on exit.

    Raises:
        SweepError: The address is malformed or nothing answers there within
            ``connect_timeout_s``.
    """
    from distributed import Client, LocalCluster

    if scheduler is not None:
        if not _SCHEDULER.match(scheduler):
            raise SweepError(f"--scheduler {scheduler!r}: give an address such as "
                             "tcp://HOST:8786")
        try:
            client = Client(scheduler, timeout=f"{connect_timeout_s}s")
        except (OSError, TimeoutError) as exc:
            raise SweepError(f"cannot reach the Dask scheduler at {scheduler}: {exc}. Is "
                             "`dask scheduler` running there, and the port open?") from exc
        try:
            yield client
        finally:
            client.close()
        return
    workers = n_workers or os.cpu_count() or 1
    # The dashboard on a free port: two sweeps (or a notebook's cluster) never clash.
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address="127.0.0.1:0") as cluster, Client(cluster) as client:
        yield client


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a Parquet file (none if it does not exist)."""
    if not path.is_file():
        return []
    return pq.read_table(path).to_pylist()


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    columns = list(dict.fromkeys(key for row in rows for key in row))
    table = pa.Table.from_pylist([{c: row.get(c) for c in columns} for row in rows])
    temporary = path.with_suffix(".tmp")
    pq.write_table(table, temporary)
    os.replace(temporary, path)  # a reader never sees half a file


class _Books:
    """The results on disk and in memory, in the spec's run order."""

    def __init__(self, spec: SweepSpec, retry_failed: bool) -> None:
        self.folder = spec.output
        self.order = {run.run_id: k for k, run in enumerate(spec.runs)}
        old = read_rows(self.folder / RUNS_FILE)
        keep = [r for r in old if r["status"] == "ok" or not retry_failed]
        self.rows = {r["run_id"]: r for r in keep}
        kept = set(self.rows)
        self.series = [s for s in read_rows(self.folder / SERIES_FILE) if s["run_id"] in kept]
        self.last_write = time.monotonic()

    def add(self, result: dict[str, Any]) -> None:
        for row in result["rows"]:
            self.rows[row["run_id"]] = row
        self.series.extend(result["series"])

    def write(self, force: bool = False) -> None:
        if not force and time.monotonic() - self.last_write < WRITE_EVERY_S:
            return
        last = len(self.order)
        rows = sorted(self.rows.values(), key=lambda r: (self.order.get(r["run_id"], last),
                                                         r["run_id"]))
        _write(self.folder / RUNS_FILE, rows)
        series_order = {r["run_id"]: k for k, r in enumerate(rows)}
        _write(self.folder / SERIES_FILE, sorted(
            self.series, key=lambda s: (series_order.get(s["run_id"], last), s["t_s"])))
        self.last_write = time.monotonic()


def simulation_key(run: Any) -> str:
    """Runs with the same key simulate the same fleet: they differ only in economics."""
    shared = {k: v for k, v in run.params.items() if not k.startswith("economics.")}
    return json.dumps([shared, run.seed], sort_keys=True, default=str)


def _tasks(spec: SweepSpec, todo: list[Any]) -> list[dict[str, Any]]:
    """One task per simulation; its runs are the economics variants of it."""
    groups: dict[str, list[Any]] = {}
    for run in todo:
        groups.setdefault(simulation_key(run), []).append(run)
    return [{"runs": [{"run_id": r.run_id, "params": r.params} for r in runs],
             "seed": runs[0].seed, "scenario_doc": spec.scenario_doc,
             "scenario_source": spec.scenario_source, "scenario_dir": spec.scenario_dir,
             "duration_s": spec.duration_s, "step_s": spec.step_s,
             "series_samples": spec.series_samples} for runs in groups.values()]


def run_sweep(spec: SweepSpec, client: Any = None, scheduler: str | None = None,
              n_workers: int | None = None, progress: bool = True,
              max_new_runs: int | None = None, retry_failed: bool = False,
              report: bool = True, connect_timeout_s: float = 10.0) -> SweepOutcome:
    """Run every run of ``spec`` not yet in its results, one Dask task each.

    Args:
        spec: A checked spec (``load_spec``).
        client: A ``distributed.Client`` to use (else ``scheduler`` or a LocalCluster).
        scheduler: Address of an existing Dask scheduler, ``tcp://HOST:8786``.
        n_workers: Worker processes of the LocalCluster (default: one per core).
        progress: Show a rich progress bar (done, failed, remaining, time left) on stderr.
        max_new_runs: Stop after this many runs finish (the rest stay for the next call).
        retry_failed: Run again the runs recorded as failed.
        report: Write report.html when done.
        connect_timeout_s: How long to try reaching ``scheduler``.

    Raises:
        SweepError: The output folder cannot be made or the scheduler cannot be reached.
    """
    started = time.perf_counter()
    books = _Books(spec, retry_failed)
    todo = [run for run in spec.runs if run.run_id not in books.rows]
    skipped = len(spec.runs) - len(todo)
    done = failed = 0
    if todo:
        # The scheduler is reached before the folder is made: a refused address leaves
        # nothing behind.
        with nullcontext(client) if client is not None else dask_client(
                scheduler, n_workers, connect_timeout_s) as connected:
            _make_folder(spec.output)
            done, failed = _run(spec, connected, todo, books, progress, max_new_runs)
    _make_folder(spec.output)
    books.write(force=True)
    report_path = None
    if report and books.rows:
        from twin.sweep.report import write_report

        report_path = write_report(spec, list(books.rows.values()), books.series,
                                   spec.output / REPORT_FILE)
    return SweepOutcome(done, failed, skipped, len(todo) - done - failed,
                        spec.output / RUNS_FILE, report_path, time.perf_counter() - started)


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SweepError(f"cannot make the output folder {folder}: {exc}") from exc


def _run(spec: SweepSpec, client: Any, todo: list[Any], books: _Books, progress: bool,
         max_new_runs: int | None) -> tuple[int, int]:
    from distributed import as_completed
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    batch = uuid.uuid4().hex[:8]  # distinct task keys for each call on a shared cluster
    futures = [client.submit(run_task, task, key=f"odc-run-{task['runs'][0]['run_id']}-{batch}",
                             pure=False) for task in _tasks(spec, todo)]
    done = failed = 0
    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("done {task.fields[ok]} · failed {task.fields[failed]} · "
                              "remaining {task.fields[left]}"),
                   TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                   console=Console(stderr=True), disable=not progress)
    try:
        with bar:
            task = bar.add_task(spec.name, total=len(todo), ok=0, failed=0, left=len(todo))
            for future in as_completed(futures):
                result = future.result()
                books.add(result)
                ok = sum(row["status"] == "ok" for row in result["rows"])
                done += ok
                failed += len(result["rows"]) - ok
                bar.update(task, advance=len(result["rows"]), ok=done, failed=failed,
                           left=len(todo) - done - failed)
                books.write()
                if max_new_runs is not None and done + failed >= max_new_runs:
                    break
    finally:
        for future in futures:
            if not future.done():
                future.cancel()
        books.write(force=True)
    return done, failed

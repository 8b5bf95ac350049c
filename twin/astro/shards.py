"""SGP4 for the whole catalog across worker processes, over shared memory.

A shard is a contiguous range of satellite indices. The twin's process computes the first
(it would otherwise only wait); each other shard has a worker process that builds its own
range's satrecs from a `SatrecPlan` (a generated shell's element arrays, or the satrecs of a
catalog) in `SatrecArray` pieces, then answers that it is ready. A plan of generated
shells only (plain arrays, 16 bytes a satellite) goes to workers started by
multiprocessing's forkserver, a small process started once, with nothing of the twin's
heap: a worker, and a worker restarted hours later, holds its satrecs and the plan, not
copies of the twin's pages. A plan that holds a catalog's `Satrec` objects (which cannot
be pickled; a catalog is tens of thousands at most) goes to workers forked from the twin,
which inherit it. After the start nothing crosses a pipe but a 38-byte request and a
9-byte answer (twin.astro.shard_worker). Each writes its rows of TEME position, velocity
and SGP4 status straight into the shared-memory arrays the orbit model reads. No process
ever holds the whole fleet's satrecs: at a million satellites each shard's arrays (1 kB a
satellite) live in the one process that computes them, but for a band of at most
``MAX_BAND_ROWS`` that shard 1's worker and the twin's process both hold.

The twin's process is a step's critical path (SGP4 for its shard, then the rest of the
step, partly alone). So the workers compute ahead: a request names the next step's
instant, which a worker propagates to, into a second buffer, at once when the twin steps
flat out, or after the step's end (`ShardedPropagator.prefetch`) when the twin has time
between its steps (twin.astro.shard_worker). And the split between the twin and shard 1
moves by band pieces with the waits each sees (`ShardedPropagator._balance`).

Why processes for SGP4 (docs/performance.md, "Every core"):

- `SatrecArray.sgp4` holds the GIL: two threads on two halves of the catalog take as
  long as one thread on all of it (measured), so threads would not help.
- SGP4 is computed satellite by satellite in the same C++ code whatever the batch, so a
  shard's rows are bit for bit those of a one-process run: frames do not depend on the
  number of workers.

The rest of the per-satellite work (frames, geometry, the arrays' and radiators' terms)
is numpy, which releases the GIL: it runs on threads over row slices in the engine's
process (twin.core.slices), its BLAS products over fixed blocks so that its bits do not
depend on the slicing either.

A worker that dies (or stops answering for ``stall_s``) is detected, never waited on
forever: its shard is started again the same way, rebuilds its satrecs from the same
plan (the same bits), and the step's propagation is redone for it (SGP4 is stateless
given the instant). After ``MAX_RESTARTS_PER_STEP`` failed restarts in one step the propagator
raises `ShardError` with a clear message.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import multiprocessing as mp
import os
import time
from collections.abc import Sequence
from multiprocessing import popen_forkserver, spawn
from multiprocessing.connection import Connection, wait
from multiprocessing.context import ForkServerProcess
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np
from sgp4.api import Satrec

from twin.astro.propagate import STATUS_OK
from twin.astro.satrec_plan import SatrecPlan, ShellRun
from twin.astro.shard_worker import (
    AHEAD,
    ANSWER_DONE,
    ANSWER_READY,
    BAND_PIECE_ROWS,
    BUFFERS,
    BYTES_PER_SAT,
    DONE,
    STEP,
    STEP_REQUEST,
    STOP_REQUEST,
    build_pieces,
    views,
    worker_main,
)

log = logging.getLogger("odc.twin.shards")

MAX_RESTARTS_PER_STEP = 2
"""Restarts of one shard within one step before the propagator gives up (ShardError)."""
POLL_S = 0.2
"""How often a waiting engine checks that its workers are alive; bounds detection time."""
BUILD_S_PER_SAT = 1e-4
"""Time allowed a worker to build each of its satrecs, on top of ``stall_s``: sgp4init
takes about 5 us a satellite here, so this is 20 times that (a loaded machine)."""


BAND_SHARE = 0.9
"""Of shard 0's equal share, the part (its last rows) that shard 1's worker can take
over, piece by piece, while the twin's process does the rest of its step (`_balance`).
At 100,000 with every model the worker takes all it is offered (docs/performance.md,
"SGP4 ahead")."""
MAX_BAND_ROWS = 32_768
"""Most rows in that band: both processes hold its satrecs (about 1 kB a satellite: 33 MB)."""
WAIT_TOLERANCE_S = 2e-4
"""The twin's process waiting longer than this for shard 1's rows takes a band piece back."""
IDLE_TOLERANCE_S = 1e-3
"""Shard 1's worker idle longer than this before a request (its rows ready ahead) is given
one more band piece (about 0.7 ms of SGP4)."""
MIN_SATS_PER_WORKER = 2000
"""The default worker count gives each shard at least this many satellites (about 1 ms of
SGP4): a hand-off to a worker and back costs 0.1-0.3 ms a step (docs/performance.md)."""


def default_workers(n_sats: int) -> int:
    """``odc run``'s default ``--workers``: the cores this process may use, fewer for a
    small fleet (``MIN_SATS_PER_WORKER`` each), at least 1."""
    if "fork" not in mp.get_all_start_methods():
        return 1  # Windows: the workers inherit their satellites by forking
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)
    return max(1, min(cores, n_sats // MIN_SATS_PER_WORKER))


class ShardError(RuntimeError):
    """A shard could not be propagated: its worker died again after its restarts."""


def shard_bounds(n_sats: int, shards: int) -> list[tuple[int, int]]:
    """Contiguous [start, stop) index ranges, as equal as can be, ``shards`` of them (fewer
    when there are fewer satellites)."""
    shards = max(1, min(shards, n_sats))
    edges = np.linspace(0, n_sats, shards + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(edges)]


def shared_band(equal: list[tuple[int, int]]) -> tuple[int, int]:
    """The band [start, stop) of rows that both the twin's process and shard 1's worker
    can compute: the last ``BAND_SHARE`` of shard 0's equal share, at most
    ``MAX_BAND_ROWS``; empty for a single shard."""
    stop = equal[0][1]
    if len(equal) < 2:
        return stop, stop
    return max(round(stop * (1.0 - BAND_SHARE)), stop - MAX_BAND_ROWS), stop


def start_method(plan: SatrecPlan) -> str:
    """How the workers of ``plan`` start: "forkserver" (a small clean process; the plan is
    pickled) when every run is a generated shell's, "fork" (the plan inherited) when a run
    holds `Satrec` objects, which cannot be pickled."""
    if "forkserver" in mp.get_all_start_methods() and all(
            isinstance(run, ShellRun) for run in plan.runs):
        return "forkserver"
    return "fork"


MAIN_KEYS = ("init_main_from_name", "init_main_from_path")
"""What multiprocessing's preparation data names the parent's main module by."""


@contextlib.contextmanager
def _without_main() -> Any:
    """Leave the parent's main module out of a new process's preparation data: a
    forkserver child would otherwise import the twin's ``__main__`` (the whole command
    line's modules; a script without a main guard would even run again). The worker needs
    only this module, which the forkserver has imported already."""
    original = spawn.get_preparation_data

    def preparation_data(name: str) -> dict[str, Any]:
        data = original(name)
        for key in MAIN_KEYS:
            data.pop(key, None)
        return data

    spawn.get_preparation_data = preparation_data
    try:
        yield
    finally:
        spawn.get_preparation_data = original


class _PopenWithoutMain(popen_forkserver.Popen):
    """A forkserver child that does not import the parent's main module."""

    def _launch(self, process_obj: Any) -> None:
        with _without_main():
            super()._launch(process_obj)


class _ForkServerWorker(ForkServerProcess):
    """An SGP4 worker started by the forkserver (`_PopenWithoutMain`)."""

    @staticmethod
    def _Popen(process_obj: Any) -> Any:  # multiprocessing's name
        return _PopenWithoutMain(process_obj)


class ShardedPropagator:
    """`twin.astro.propagate.Propagator`'s contract, computed by ``workers`` processes.

    Attributes:
        n_sats: Number of satellites.
        bounds: Each shard's [start, stop) range.
        restarts: (shard, reason) of every worker restarted in the last ``propagate``; the
            orbit model raises an alarm for each.
        restarts_total: Workers restarted since start.
    """

    def __init__(self, satrecs: Sequence[Satrec] | SatrecPlan, workers: int,
                 stall_s: float = 60.0) -> None:
        """Fork one worker per shard but the first, which this process computes; return
        once every shard has built its satrecs.

        Args:
            satrecs: The satellites, in the order every output row will follow: their
                satrecs, or a plan each shard builds its own from (at a million, the
                way to keep the whole fleet's satrecs out of every process).
            workers: Number of shards, at least 1: this process and ``workers - 1``
                worker processes.
            stall_s: A worker alive but silent this long in one step is killed and
                restarted (a loaded machine can be slow: this is for a hung worker).

        Raises:
            ShardError: A worker died, or did not finish building its satrecs in
                ``stall_s`` plus ``BUILD_S_PER_SAT`` a satellite.
        """
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        if "fork" not in mp.get_all_start_methods():
            raise ShardError("SGP4 workers need the fork start method, which this platform "
                             "lacks; run with --workers 1")
        self._plan = (satrecs if isinstance(satrecs, SatrecPlan)
                      else SatrecPlan.of_satrecs(satrecs))
        self.n_sats = self._plan.n_sats
        equal = shard_bounds(self.n_sats, workers)
        self.band = shared_band(equal)
        # Shard 0 owns the rows before the band, shard 1 the band and its own share.
        self.bounds = ([(0, self.band[0]), (self.band[0], equal[1][1]), *equal[2:]]
                       if len(equal) > 1 else equal)
        self.stall_s = stall_s
        self._shm = SharedMemory(create=True,
                                 size=max(1, self.n_sats * BYTES_PER_SAT * BUFFERS))
        self._buffers = [views(self._shm.buf, self.n_sats, which)
                         for which in range(BUFFERS)]
        self._which = 1  # the buffer of the last call; the first call writes buffer 0
        self._pos, self._vel, self._status = self._buffers[0]
        self.failed: np.ndarray = np.zeros(self.n_sats, dtype=bool)
        self.any_failed = False
        self.restarts: list[tuple[int, str]] = []
        self.restarts_total = 0
        self.start_method = start_method(self._plan)
        self._context = mp.get_context(self.start_method)
        if self.start_method == "forkserver":
            # What the forkserver imports once, so that each worker starts in milliseconds.
            # (It is started on first use: a fresh interpreter, none of the twin's heap.)
            self._context.set_forkserver_preload(["twin.astro.shard_worker"])
        self._processes: list[Any] = [None] * len(self.bounds)
        self._conns: list[Connection | None] = [None] * len(self.bounds)
        self._closed = False
        self._jd, self._fr = np.zeros(1), np.zeros(1)
        for shard in range(1, len(self.bounds)):
            self._start(shard)  # each builds its satrecs while this process builds its own
        # Shard 0 is the twin's own: it computes while the workers do, so a step waits on
        # one process hand-off less (the critical path of a loaded two-core machine).
        self._local = build_pieces(self._plan, self._shm.buf, self.n_sats, *self.bounds[0])
        self._band_pieces = build_pieces(self._plan, self._shm.buf, self.n_sats, *self.band,
                                         BAND_PIECE_ROWS)
        # The band pieces this process computes (the first ``taken``; shard 1's worker the
        # rest): the last step's, the next step's (promised: the workers compute ahead
        # for it), and the one after (decided from the last step's waits).
        self.taken = self._promised = self._decided = len(self._band_pieces) // 2
        self._await_ready()

    @property
    def shm_name(self) -> str:
        """The shared-memory segment's name (under /dev/shm on Linux)."""
        return self._shm.name

    @property
    def pids(self) -> dict[int, int]:
        """The worker processes' ids, by shard (shard 0 runs in the twin's process)."""
        return {shard: p.pid for shard, p in enumerate(self._processes) if p is not None}

    def _build_allowance_s(self, shard: int) -> float:
        """How long shard's worker may take to build its satrecs and answer ready."""
        start, stop = self.bounds[shard]
        return self.stall_s + BUILD_S_PER_SAT * (stop - start)

    def _start(self, shard: int) -> None:
        """Start shard's worker; it builds its satrecs from the plan and answers ready."""
        start, stop = self.bounds[shard]
        band = self.band if shard == 1 else (start, start)
        parent_end, child_end = self._context.Pipe(duplex=True)
        if self.start_method == "fork":
            # The worker inherits the plan (a catalog's satrecs, which the scenario holds
            # anyway), the mapping, and the engine's ends of every pipe, which it closes.
            inherited = [c for c in self._conns if c is not None] + [parent_end]
            segment: str | memoryview = self._shm.buf
        else:
            # From the forkserver: the plan's arrays are pickled to it, the segment is
            # mapped by name, and only the worker's own end of its pipe is passed.
            inherited, segment = [], self._shm.name
        kind = self._context.Process if self.start_method == "fork" else _ForkServerWorker
        process = kind(
            target=worker_main, name=f"odc-shard-{shard}", daemon=True,
            args=(self._plan, child_end, inherited, segment, self.n_sats, band, stop,
                  os.getpid()))
        process.start()
        child_end.close()  # the worker's end lives in the worker: its death is EOF here
        self._processes[shard], self._conns[shard] = process, parent_end

    def _await_ready(self) -> None:
        """Wait for every worker's first ready answer (start-up: no restart, a shard that
        cannot build now will not build on a second try either)."""
        pending = set(range(1, len(self.bounds)))
        started = time.monotonic()
        while pending:
            for shard, answer in self._answers(pending):
                if answer != ANSWER_READY:
                    self._give_up(shard, "died while building its satellites")
                pending.discard(shard)
            for shard in sorted(pending):
                if not self._processes[shard].is_alive():
                    self._give_up(shard, "died while building its satellites (exit code "
                                  f"{self._processes[shard].exitcode})")
                if time.monotonic() - started > self._build_allowance_s(shard):
                    self._give_up(shard, "did not finish building its satellites in "
                                  f"{self._build_allowance_s(shard):.0f} s")

    def _answers(self, pending: set[int]) -> list[tuple[int, bytes]]:
        """The answers of the pending shards that arrive within one poll: ``(shard,
        answer)``, the answer ``b""`` for a worker whose pipe closed (it died)."""
        by_conn = {self._conns[s]: s for s in pending}
        answers = []
        for conn in wait(list(by_conn), timeout=POLL_S):
            try:
                answer = conn.recv_bytes(16)
            except (EOFError, OSError):
                answer = b""
            answers.append((by_conn[conn], answer))
        return answers

    def _give_up(self, shard: int, reason: str) -> None:
        start, stop = self.bounds[shard]
        self.close()
        raise ShardError(
            f"SGP4 worker for shard {shard} (satellites {start}-{stop - 1}) {reason}; the "
            "twin stops (run with --workers 1 to propagate in the twin's own process)")

    def _restart(self, shard: int, reason: str) -> None:
        process, conn = self._processes[shard], self._conns[shard]
        start, stop = self.bounds[shard]
        log.error("SGP4 shard %d (satellites %d-%d, pid %s) %s: restarting it", shard,
                  start, stop - 1, process.pid, reason)
        if conn is not None:
            conn.close()
        self._conns[shard] = None
        if process.is_alive():
            process.kill()
        process.join(5.0)
        self.restarts.append((shard, reason))
        self.restarts_total += 1
        self._start(shard)

    def prefetch(self, jd_whole: float, jd_frac: float) -> None:
        """Say the step is over: the workers compute the rows of the instant the next
        `propagate` will most likely ask, now, while this process publishes and waits
        for its next tick (no wait here). Another instant asked is computed when asked.
        """
        if self._closed:
            return
        for shard, taken in self._shares(self._promised):
            self._send(shard, STEP_REQUEST.pack(AHEAD, jd_whole, jd_frac, 1 - self._which,
                                                taken, math.nan, math.nan, 0))

    def propagate(self, jd_whole: float, jd_frac: float,
                  next_jd: tuple[float, float] | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Propagate all satellites to one UTC instant (`Propagator.propagate`'s contract).

        The returned arrays are views of the shared memory: valid until the next call.
        ``next_jd``, the instant the next call will most likely ask, is what a worker
        computes ahead, at once if the twin steps without a pause, else once `prefetch`
        says the step is over (twin.astro.shard_worker).

        Raises:
            ShardError: A shard's worker died or stalled more than
                ``MAX_RESTARTS_PER_STEP`` times in this call.
        """
        if self._closed:
            raise ShardError("the SGP4 workers are closed")
        self.restarts = []
        self._which = which = 1 - self._which
        # This step's band share is the one promised last step (the workers compute
        # ahead for it); the next step's, the last decision (``_balance``), now.
        self.taken, self._promised = self._promised, self._decided
        upcoming = next_jd if next_jd is not None else (math.nan, math.nan)
        promised = dict(self._shares(self._promised))
        requests = {shard: STEP_REQUEST.pack(STEP, jd_whole, jd_frac, which, taken,
                                             *upcoming, promised[shard])
                    for shard, taken in self._shares(self.taken)}
        self._pos, self._vel, self._status = self._buffers[which]
        pending = set(requests)
        attempts = dict.fromkeys(pending, 0)
        for shard in pending:
            self._send(shard, requests[shard])
        self._jd[0], self._fr[0] = jd_whole, jd_frac
        for array, rows in self._local + self._band_pieces[:self.taken]:
            array._sgp4(self._jd, self._fr, *rows[which])
        computed = time.monotonic()
        waited_s = idle_s = 0.0  # this process for shard 1's rows; its worker before asked
        # Per shard: a restarted worker first rebuilds its satrecs (``_build_allowance_s``).
        deadlines = dict.fromkeys(pending, computed + self.stall_s)
        while pending:
            for shard, answer in self._answers(pending):
                if answer[:1] == DONE and len(answer) == ANSWER_DONE.size:
                    pending.discard(shard)
                    if shard == 1:
                        waited_s = time.monotonic() - computed
                        idle_s = ANSWER_DONE.unpack(answer)[1]
                elif answer == ANSWER_READY:  # restarted and rebuilt: now propagating
                    deadlines[shard] = time.monotonic() + self.stall_s
                else:
                    self._retry(shard, "died", attempts, requests[shard])
                    deadlines[shard] = time.monotonic() + self._build_allowance_s(shard)
            now = time.monotonic()
            for shard in sorted(pending):
                process = self._processes[shard]
                if not process.is_alive():
                    self._retry(shard, f"died (exit code {process.exitcode})", attempts,
                                requests[shard])
                    deadlines[shard] = time.monotonic() + self._build_allowance_s(shard)
                elif now > deadlines[shard]:
                    self._retry(shard, f"did not answer in {self.stall_s:g} s", attempts,
                                requests[shard])
                    deadlines[shard] = time.monotonic() + self._build_allowance_s(shard)
        if not self.restarts:
            self._decided = self._balance(self.taken, waited_s, idle_s)
        bad = np.not_equal(self._status, STATUS_OK, out=self.failed)
        self.any_failed = bool(bad.any())
        if self.any_failed:  # as Propagator: NaN rows whatever the library version
            self._pos[bad] = np.nan
            self._vel[bad] = np.nan
        return self._pos, self._vel, self._status

    def _shares(self, taken: int) -> list[tuple[int, int]]:
        """(shard, band pieces the twin computes) for each worker, the twin computing
        ``taken``; only shard 1 shares a band."""
        return [(shard, taken if shard == 1 else 0) for shard in range(1, len(self.bounds))]

    def _balance(self, taken: int, waited_s: float, idle_s: float) -> int:
        """The band pieces this process will compute the step after next.

        Shard 1's worker computes its rows ahead, while this process does the rest of its
        step (its critical path): the more SGP4 the worker does, the shorter that path,
        until the worker is not ready in time. So a worker that waited idle for the
        request gets one more piece, and this process, if it waited for the worker, takes
        one back. The rows are the same bits whoever computes them.
        """
        if waited_s > WAIT_TOLERANCE_S:
            return min(len(self._band_pieces), taken + 1)
        if idle_s > IDLE_TOLERANCE_S:
            return max(0, taken - 1)
        return taken

    def _send(self, shard: int, request: bytes) -> None:
        with contextlib.suppress(OSError):  # a dead worker: the wait loop restarts it
            self._conns[shard].send_bytes(request)

    def _retry(self, shard: int, reason: str, attempts: dict[int, int],
               request: bytes) -> None:
        attempts[shard] += 1
        if attempts[shard] > MAX_RESTARTS_PER_STEP:
            start, stop = self.bounds[shard]
            self.close()
            raise ShardError(
                f"SGP4 worker for shard {shard} (satellites {start}-{stop - 1}) {reason} "
                f"again after {MAX_RESTARTS_PER_STEP} restarts in one step; the twin "
                "stops (run with --workers 1 to propagate in the twin's own process)")
        self._restart(shard, reason)
        self._send(shard, request)

    def close(self) -> None:
        """End the workers and free the shared memory (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for conn in self._conns:
            if conn is not None:
                with contextlib.suppress(OSError):
                    conn.send_bytes(STOP_REQUEST)
        for process, conn in zip(self._processes, self._conns, strict=True):
            if process is not None:
                process.join(2.0)
                if process.is_alive():
                    process.kill()
                    process.join(2.0)
            if conn is not None:
                conn.close()
        # The views hold the buffer: drop them before closing the mapping.
        self._pos = self._vel = self._status = None  # type: ignore[assignment]
        self._buffers = []
        self._local = self._band_pieces = []
        self.failed = self.failed.copy()
        with contextlib.suppress(BufferError):  # a caller holds a view: it keeps the map
            self._shm.close()
        self._shm.unlink()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at exit, modules may be gone already
            self.close()

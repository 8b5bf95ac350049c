"""SGP4 for the whole catalog across worker processes, over shared memory.

A shard is a contiguous range of satellite indices. The twin's process computes the first
(it would otherwise only wait); each other shard has a worker process, forked from the
twin's after the scenario loader built the `Satrec` objects, inheriting its range's
`SatrecArray` built just before the fork (nothing is pickled; nothing crosses a pipe but
two floats and a one-byte answer). Each writes its rows of TEME position, velocity and
SGP4 status straight into the shared-memory arrays the orbit model reads.

Why processes, and why only SGP4 (docs/performance.md, "Every core"):

- `SatrecArray.sgp4` holds the GIL: two threads on two halves of the catalog take as
  long as one thread on all of it (measured), so threads would not help.
- SGP4 is computed satellite by satellite in the same C++ code whatever the batch, so a
  shard's rows are bit for bit those of a one-process run: frames do not depend on the
  number of workers. numpy's (n, 3) @ (3, 3) matmul is not row-independent (OpenBLAS
  picks kernels by size; a slice's rows can differ from the whole array's in the last
  bit, with one BLAS thread too), so the frame rotations stay in the engine's process,
  on the whole arrays, as before.

A worker that dies (or stops answering for ``stall_s``) is detected, never waited on
forever: its shard is forked again and the step's propagation is redone for it (SGP4 is
stateless given the instant). After ``MAX_RESTARTS_PER_STEP`` failed restarts in one step
the propagator raises `ShardError` with a clear message.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing as mp
import os
import signal
import struct
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection, wait
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np
from sgp4.api import Satrec, SatrecArray

from twin.astro.propagate import STATUS_OK

log = logging.getLogger("odc.twin.shards")

STEP_REQUEST = struct.Struct("<dd")
"""What the engine sends a worker: the instant's Julian date UTC, whole and fraction."""
ANSWER_DONE = b"\x01"
"""What a worker answers once its rows are written."""
STOP_REQUEST = b"stop"
"""What the engine sends a worker to end it."""

MAX_RESTARTS_PER_STEP = 2
"""Restarts of one shard within one step before the propagator gives up (ShardError)."""
POLL_S = 0.2
"""How often a waiting engine checks that its workers are alive; bounds detection time."""
PARENT_CHECK_S = 1.0
"""How often an idle worker checks that the engine's process still exists."""


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


def _worker(holder: list[SatrecArray], conn: Connection, inherited: list[Connection],
            buffer: memoryview, n_sats: int, start: int, stop: int, parent_pid: int) -> None:
    """One shard's loop: wait for an instant, propagate, write the rows, answer."""
    # Ctrl-C and a terminal's hang-up reach the whole process group: they are the twin's
    # to act on (it stops, or reloads its keys) and it ends its workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    for other in inherited:  # the engine's ends: so the engine's death reads as EOF here
        other.close()
    rows = _shard_rows(buffer, n_sats, start, stop)
    array = holder[0]
    jd, fr = np.zeros(1), np.zeros(1)
    while True:
        if not conn.poll(PARENT_CHECK_S):
            if os.getppid() != parent_pid:  # orphaned: the engine is gone
                return
            continue
        try:
            message = conn.recv_bytes(64)
        except (EOFError, OSError):
            return
        if len(message) != STEP_REQUEST.size:
            return  # STOP_REQUEST, or anything unexpected: end cleanly
        jd[0], fr[0] = STEP_REQUEST.unpack(message)
        array._sgp4(jd, fr, *rows)
        conn.send_bytes(ANSWER_DONE)


def _shard_rows(buffer: Any, n_sats: int, start: int, stop: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A shard's rows of the shared status, position and velocity, in the (sats, dates[,
    3]) shapes SGP4's C call writes (`SatrecArray.sgp4` is this same `_sgp4` call into
    arrays it allocates itself)."""
    pos, vel, status = _views(buffer, n_sats)
    return (status[start:stop].reshape(-1, 1), pos[start:stop].reshape(-1, 1, 3),
            vel[start:stop].reshape(-1, 1, 3))


def _views(buffer: Any, n_sats: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Position (n, 3) f8, velocity (n, 3) f8 and status (n,) u1 over one buffer."""
    vec_bytes = n_sats * 3 * 8
    pos = np.ndarray((n_sats, 3), np.float64, buffer, 0)
    vel = np.ndarray((n_sats, 3), np.float64, buffer, vec_bytes)
    status = np.ndarray((n_sats,), np.uint8, buffer, 2 * vec_bytes)
    return pos, vel, status


class ShardedPropagator:
    """`twin.astro.propagate.Propagator`'s contract, computed by ``workers`` processes.

    Attributes:
        n_sats: Number of satellites.
        bounds: Each shard's [start, stop) range.
        restarts: (shard, reason) of every worker restarted in the last ``propagate``; the
            orbit model raises an alarm for each.
        restarts_total: Workers restarted since start.
    """

    def __init__(self, satrecs: Sequence[Satrec], workers: int,
                 stall_s: float = 60.0) -> None:
        """Fork one worker per shard but the first, which this process computes.

        Args:
            satrecs: The satellites, in the order every output row will follow.
            workers: Number of shards, at least 1: this process and ``workers - 1``
                worker processes.
            stall_s: A worker alive but silent this long in one step is killed and
                restarted (a loaded machine can be slow: this is for a hung worker).
        """
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        if "fork" not in mp.get_all_start_methods():
            raise ShardError("SGP4 workers need the fork start method, which this platform "
                             "lacks; run with --workers 1")
        self.n_sats = len(satrecs)
        self._satrecs = satrecs  # a SatrecsOnDemand: no list of a million Satrec objects
        self.bounds = shard_bounds(self.n_sats, workers)
        self.stall_s = stall_s
        self._shm = SharedMemory(create=True, size=max(1, self.n_sats * 49))
        self._pos, self._vel, self._status = _views(self._shm.buf, self.n_sats)
        self.failed: np.ndarray = np.zeros(self.n_sats, dtype=bool)
        self.any_failed = False
        self.restarts: list[tuple[int, str]] = []
        self.restarts_total = 0
        self._context = mp.get_context("fork")  # inherit the Satrec objects, pickle nothing
        self._processes: list[Any] = [None] * len(self.bounds)
        self._conns: list[Connection | None] = [None] * len(self.bounds)
        self._closed = False
        # Shard 0 is the twin's own: it computes while the workers do, so a step waits on
        # one process hand-off less (the critical path of a loaded two-core machine).
        start, stop = self.bounds[0]
        self._local = SatrecArray(self._satrecs[start:stop])
        self._local_rows = _shard_rows(self._shm.buf, self.n_sats, start, stop)
        self._jd, self._fr = np.zeros(1), np.zeros(1)
        for shard in range(1, len(self.bounds)):
            self._start(shard)

    @property
    def shm_name(self) -> str:
        """The shared-memory segment's name (under /dev/shm on Linux)."""
        return self._shm.name

    @property
    def pids(self) -> dict[int, int]:
        """The worker processes' ids, by shard (shard 0 runs in the twin's process)."""
        return {shard: p.pid for shard, p in enumerate(self._processes) if p is not None}

    def _start(self, shard: int) -> None:
        start, stop = self.bounds[shard]
        parent_end, child_end = self._context.Pipe(duplex=True)
        inherited = [c for c in self._conns if c is not None] + [parent_end]
        # The shard's SatrecArray is built here and inherited: the worker never touches
        # the 1 kB `Satrec` objects (a reference count written would copy their pages into
        # it, ~1 kB a satellite), and this process drops its copy once the worker has it.
        holder = [SatrecArray(self._satrecs[start:stop])]
        process = self._context.Process(
            target=_worker, name=f"odc-shard-{shard}", daemon=True,
            args=(holder, child_end, inherited, self._shm.buf, self.n_sats, start, stop,
                  os.getpid()))
        process.start()
        holder.clear()
        child_end.close()  # the worker's end lives in the worker: its death is EOF here
        self._processes[shard], self._conns[shard] = process, parent_end

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

    def propagate(self, jd_whole: float, jd_frac: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Propagate all satellites to one UTC instant (`Propagator.propagate`'s contract).

        The returned arrays are views of the shared memory: valid until the next call.

        Raises:
            ShardError: A shard's worker died or stalled more than
                ``MAX_RESTARTS_PER_STEP`` times in this call.
        """
        if self._closed:
            raise ShardError("the SGP4 workers are closed")
        self.restarts = []
        request = STEP_REQUEST.pack(jd_whole, jd_frac)
        pending = set(range(1, len(self.bounds)))
        attempts = dict.fromkeys(pending, 0)
        for shard in pending:
            self._send(shard, request)
        self._jd[0], self._fr[0] = jd_whole, jd_frac
        self._local._sgp4(self._jd, self._fr, *self._local_rows)
        deadline = time.monotonic() + self.stall_s
        while pending:
            by_conn = {self._conns[s]: s for s in pending}
            for conn in wait(list(by_conn), timeout=POLL_S):
                shard = by_conn[conn]
                try:
                    answer = conn.recv_bytes(16)
                except (EOFError, OSError):
                    answer = b""
                if answer == ANSWER_DONE:
                    pending.discard(shard)
                else:
                    self._retry(shard, "died", attempts, request)
            now = time.monotonic()
            for shard in sorted(pending):
                process = self._processes[shard]
                if not process.is_alive():
                    self._retry(shard, f"died (exit code {process.exitcode})", attempts,
                                request)
                elif now > deadline:
                    self._retry(shard, f"did not answer in {self.stall_s:g} s", attempts,
                                request)
                    deadline = now + self.stall_s
        bad = np.not_equal(self._status, STATUS_OK, out=self.failed)
        self.any_failed = bool(bad.any())
        if self.any_failed:  # as Propagator: NaN rows whatever the library version
            self._pos[bad] = np.nan
            self._vel[bad] = np.nan
        return self._pos, self._vel, self._status

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
        self._local_rows = ()
        self.failed = self.failed.copy()
        with contextlib.suppress(BufferError):  # a caller holds a view: it keeps the map
            self._shm.close()
        self._shm.unlink()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at exit, modules may be gone already
            self.close()

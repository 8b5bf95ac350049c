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
which inherit it. After the start nothing crosses a pipe but two floats and a one-byte
answer. Each writes its rows of TEME position, velocity and SGP4 status straight into the
shared-memory arrays the orbit model reads. No process ever holds the whole fleet's
satrecs: at a million satellites each shard's arrays (1 kB a satellite) live in the one
process that computes them.

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
import ctypes
import gc
import itertools
import logging
import multiprocessing as mp
import os
import signal
import struct
import time
from collections.abc import Sequence
from multiprocessing import popen_forkserver, spawn
from multiprocessing.connection import Connection, wait
from multiprocessing.context import ForkServerProcess
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np
from sgp4.api import Satrec, SatrecArray

from twin.astro.propagate import STATUS_OK
from twin.astro.satrec_plan import SatrecPlan, ShellRun
from twin.runtime.allocator import release_free_memory

log = logging.getLogger("odc.twin.shards")

STEP_REQUEST = struct.Struct("<dd")
"""What the engine sends a worker: the instant's Julian date UTC, whole and fraction."""
ANSWER_DONE = b"\x01"
"""What a worker answers once its rows are written."""
ANSWER_READY = b"\x02"
"""What a worker sends once it has built its shard's satrecs, before any step."""
STOP_REQUEST = b"stop"
"""What the engine sends a worker to end it."""

MAX_RESTARTS_PER_STEP = 2
"""Restarts of one shard within one step before the propagator gives up (ShardError)."""
POLL_S = 0.2
"""How often a waiting engine checks that its workers are alive; bounds detection time."""
PARENT_CHECK_S = 1.0
"""How often an idle worker checks that the engine's process still exists."""
BUILD_S_PER_SAT = 1e-4
"""Time allowed a worker to build each of its satrecs, on top of ``stall_s``: sgp4init
takes about 5 us a satellite here, so this is 20 times that (a loaded machine)."""


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


def _worker(plan: SatrecPlan, conn: Connection, inherited: list[Connection],
            segment: str | memoryview, n_sats: int, start: int, stop: int,
            twin_pid: int) -> None:
    """One shard's life: build its satrecs, say so, then loop: wait for an instant,
    propagate, write the rows, answer.

    ``segment`` is the shared memory's buffer (a forked worker inherits the mapping) or
    its name (a worker from the forkserver maps it itself)."""
    # Ctrl-C and a terminal's hang-up reach the whole process group: they are the twin's
    # to act on (it stops, or reloads its keys) and it ends its workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    _name_this_process(mp.current_process().name)
    for other in inherited:  # the engine's ends: so the engine's death reads as EOF here
        other.close()
    # The objects inherited from the twin (forked) or the forkserver stay out of this
    # process's collections: a collection writes to every object it visits, copying its
    # page into this process.
    gc.freeze()
    # Attaching registers the name with the twin's resource tracker (shared through the
    # forkserver), which already holds it: the twin's unlink still unregisters it once.
    shm = SharedMemory(name=segment) if isinstance(segment, str) else None
    buffer = shm.buf if shm is not None else segment
    pieces = _pieces(plan, buffer, n_sats, start, stop)
    release_free_memory()  # the build's transient Satrec objects: back to the system
    conn.send_bytes(ANSWER_READY)
    jd, fr = np.zeros(1), np.zeros(1)
    while True:
        if not conn.poll(PARENT_CHECK_S):
            if not _exists(twin_pid):  # the engine is gone (a killed twin's end may linger)
                return
            continue
        try:
            message = conn.recv_bytes(64)
        except (EOFError, OSError):
            return
        if len(message) != STEP_REQUEST.size:
            return  # STOP_REQUEST, or anything unexpected: end cleanly
        jd[0], fr[0] = STEP_REQUEST.unpack(message)
        for array, rows in pieces:
            array._sgp4(jd, fr, *rows)
        conn.send_bytes(ANSWER_DONE)


PR_SET_NAME = 15
"""prctl's option that names the calling thread (what top, ps -o comm and psutil show)."""


def _name_this_process(name: str) -> None:
    """Show ``name`` (``odc-shard-N``) as this process's name where the system allows:
    an operator (and a test) tells the SGP4 workers from the forkserver and the resource
    tracker, which run the same interpreter."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)


def _exists(pid: int) -> bool:
    """Whether a process with this id exists (a zombie counts: its end is EOF anyway)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's (the id was reused)
        return True
    return True


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


def _pieces(plan: SatrecPlan, buffer: Any, n_sats: int, start: int, stop: int
            ) -> list[tuple[SatrecArray, tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """Rows [start, stop)'s satrecs, built, each `SatrecArray` piece with its rows of the
    shared arrays."""
    return [(array, _shard_rows(buffer, n_sats, first, last))
            for first, last, array in plan.build(start, stop)]


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
        self.bounds = shard_bounds(self.n_sats, workers)
        self.stall_s = stall_s
        self._shm = SharedMemory(create=True, size=max(1, self.n_sats * 49))
        self._pos, self._vel, self._status = _views(self._shm.buf, self.n_sats)
        self.failed: np.ndarray = np.zeros(self.n_sats, dtype=bool)
        self.any_failed = False
        self.restarts: list[tuple[int, str]] = []
        self.restarts_total = 0
        self.start_method = start_method(self._plan)
        self._context = mp.get_context(self.start_method)
        if self.start_method == "forkserver":
            # What the forkserver imports once, so that each worker starts in milliseconds.
            # (It is started on first use: a fresh interpreter, none of the twin's heap.)
            self._context.set_forkserver_preload(["twin.astro.shards"])
        self._processes: list[Any] = [None] * len(self.bounds)
        self._conns: list[Connection | None] = [None] * len(self.bounds)
        self._closed = False
        self._jd, self._fr = np.zeros(1), np.zeros(1)
        for shard in range(1, len(self.bounds)):
            self._start(shard)  # each builds its satrecs while this process builds its own
        # Shard 0 is the twin's own: it computes while the workers do, so a step waits on
        # one process hand-off less (the critical path of a loaded two-core machine).
        self._local = _pieces(self._plan, self._shm.buf, self.n_sats, *self.bounds[0])
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
            target=_worker, name=f"odc-shard-{shard}", daemon=True,
            args=(self._plan, child_end, inherited, segment, self.n_sats, start, stop,
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
        for array, rows in self._local:
            array._sgp4(self._jd, self._fr, *rows)
        # Per shard: a restarted worker first rebuilds its satrecs (``_build_allowance_s``).
        deadlines = dict.fromkeys(pending, time.monotonic() + self.stall_s)
        while pending:
            for shard, answer in self._answers(pending):
                if answer == ANSWER_DONE:
                    pending.discard(shard)
                elif answer == ANSWER_READY:  # restarted and rebuilt: now propagating
                    deadlines[shard] = time.monotonic() + self.stall_s
                else:
                    self._retry(shard, "died", attempts, request)
                    deadlines[shard] = time.monotonic() + self._build_allowance_s(shard)
            now = time.monotonic()
            for shard in sorted(pending):
                process = self._processes[shard]
                if not process.is_alive():
                    self._retry(shard, f"died (exit code {process.exitcode})", attempts,
                                request)
                    deadlines[shard] = time.monotonic() + self._build_allowance_s(shard)
                elif now > deadlines[shard]:
                    self._retry(shard, f"did not answer in {self.stall_s:g} s", attempts,
                                request)
                    deadlines[shard] = time.monotonic() + self._build_allowance_s(shard)
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
        self._local = []
        self.failed = self.failed.copy()
        with contextlib.suppress(BufferError):  # a caller holds a view: it keeps the map
            self._shm.close()
        self._shm.unlink()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at exit, modules may be gone already
            self.close()

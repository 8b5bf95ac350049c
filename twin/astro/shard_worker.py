"""An SGP4 worker process's side of twin.astro.shards: its loop, its wire and the rows it
writes in the shared memory.

A worker owns a contiguous range of satellites and builds their satrecs itself. Each
request names an instant, the buffer to write and the instant after it; the worker
propagates, answers, and then computes the next instant's rows ahead into the other
buffer while the twin's process does the rest of its step (docs/architecture.md, "Every
core"). The first pieces of shard 1's range are a band the twin's process can take on
itself: a request says how many of them the twin computes (``taken``), so the split
between the twin and its worker moves with the step's load without moving a satrec.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import math
import multiprocessing as mp
import os
import signal
import struct
import time
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory

import numpy as np
from sgp4.api import SatrecArray

from twin.astro.satrec_plan import CHUNK_ROWS, SatrecPlan
from twin.runtime.allocator import release_free_memory

STEP_REQUEST = struct.Struct("<cddBHddH")
"""What the engine sends a worker: ``STEP`` (answer once written) or ``AHEAD`` (its step
is over: compute for the next, no answer); the instant's Julian date UTC (whole,
fraction), the buffer to write (0 or 1) and the band pieces the twin computes itself;
then, for a step, the same of the next step (the instant NaN: none)."""
STEP = b"s"
AHEAD = b"a"
DEFER_FRACTION = 0.5
"""A worker computes the next step at once after answering, competing with the twin's
step, unless the time between the twin's last two steps would hold this fraction of it:
then it waits for the step's end (``AHEAD``) and computes while the twin publishes and
waits for its tick, leaving the step both cores."""
ANSWER_DONE = struct.Struct("<cd")
"""What a worker answers once its rows are written: ``b"\\x01"`` and how long it had been
idle, its rows computed ahead, when the request came (s; 0 when they were not ready)."""
DONE = b"\x01"
ANSWER_READY = b"\x02"
"""What a worker sends once it has built its shard's satrecs, before any step."""
STOP_REQUEST = b"stop"
"""What the engine sends a worker to end it."""
PARENT_CHECK_S = 1.0
"""How often an idle worker checks that the engine's process still exists."""

AHEAD_CHUNK_ROWS = 8192
"""Rows of a worker's `SatrecArray` pieces (2-3 ms of SGP4): a request that arrives while
the worker computes ahead waits for one piece at most."""
BAND_PIECE_ROWS = 2048
"""Rows of a band piece (about 0.7 ms of SGP4): the step by which the split between the
twin's process and shard 1's worker moves."""

Rows = tuple[np.ndarray, np.ndarray, np.ndarray]
Pieces = list[tuple[SatrecArray, tuple[Rows, ...]]]
BUFFERS = 2
"""Buffers of rows in the shared memory: the twin reads one step's while the workers
compute the next step's into the other."""
BYTES_PER_SAT = 49
"""One buffer's bytes a satellite: position and velocity (3 float64 each), status (u1)."""
PR_SET_NAME = 15
"""prctl's option that names the calling thread (what top, ps -o comm and psutil show)."""


def worker_main(plan: SatrecPlan, conn: Connection, inherited: list[Connection],
                segment: str | memoryview, n_sats: int, band: tuple[int, int], stop: int,
                twin_pid: int) -> None:
    """One shard's life: build the satrecs of its band [band[0], band[1]) (in band pieces)
    and of [band[1], stop), say so, then loop: wait for a request; for a step, propagate
    (skipping the band pieces the twin computes), write the rows and answer; ahead,
    propagate without answering.

    Ahead: once the twin's process has finished a step it names the next step's instant,
    buffer and band share; this worker propagates to it while the twin publishes, waits
    for its next tick or starts its next step. A step request for exactly that instant,
    buffer and share (compared to the bit) is answered at once, or once the pieces left
    are done; any other (a seek, a new warp) is computed as asked. A request that arrives
    meanwhile is read after the current piece. SGP4 gives the same bits whenever it runs,
    so frames do not change.

    ``segment`` is the shared memory's buffer (a forked worker inherits the mapping) or
    its name (a worker from the forkserver maps it itself)."""
    # Ctrl-C and a terminal's hang-up reach the whole process group: they are the twin's
    # to act on (it stops, or reloads its keys) and it ends its workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    name_this_process(mp.current_process().name)
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
    pieces = (build_pieces(plan, buffer, n_sats, *band, BAND_PIECE_ROWS)
              + build_pieces(plan, buffer, n_sats, band[1], stop, AHEAD_CHUNK_ROWS))
    release_free_memory()  # the build's transient Satrec objects: back to the system
    conn.send_bytes(ANSWER_READY)
    ahead = Ahead(pieces, conn)
    while True:
        if not conn.poll(PARENT_CHECK_S):
            if not exists(twin_pid):  # the engine is gone (a killed twin's end may linger)
                return
            continue
        arrived = time.monotonic()
        try:
            message = conn.recv_bytes(64)
        except (EOFError, OSError):
            return
        if len(message) != STEP_REQUEST.size:
            return  # STOP_REQUEST, or anything unexpected: end cleanly
        kind, *asked = STEP_REQUEST.unpack(message)
        key: Key = (asked[0], asked[1], asked[2], asked[3])
        if kind == AHEAD:
            ahead.step_ended_at = arrived
            ahead.run(key)
            continue
        jd_whole, jd_frac, which, taken = key
        idle_s = ahead.idle_before(key, arrived)
        compute(pieces[taken:][ahead.ready(key):], jd_whole, jd_frac, which)
        conn.send_bytes(ANSWER_DONE.pack(DONE, idle_s))
        upcoming: Key = (asked[4], asked[5], 1 - which, asked[6])
        gap_s = arrived - ahead.step_ended_at if ahead.step_ended_at else 0.0
        ahead.run(upcoming if gap_s <= DEFER_FRACTION * ahead.last_s else None)


Key = tuple[float, float, int, int]
"""A step asked of a worker: its instant (Julian date UTC, whole and fraction), buffer and
the band pieces the twin computes."""


class Ahead:
    """What a worker has computed ahead: for which step, how far, and how long it took."""

    def __init__(self, pieces: Pieces, conn: Connection) -> None:
        self.pieces, self.conn = pieces, conn
        self.key: Key | None = None
        self.done = 0  # pieces of ``pieces[key's taken:]`` written
        self.end = 0.0  # when they were all written
        self.last_s = math.inf  # how long the last one took, start to end (none yet)
        self.step_ended_at = 0.0  # when the twin last said its step was over (0: never)

    def run(self, key: Key | None) -> None:
        """Compute ahead for ``key`` (none: only forget the last) from where it stopped,
        until done or a request comes."""
        if key is None or math.isnan(key[0]) or math.isnan(key[1]):
            self.key = None
            return
        if key != self.key:
            self.key, self.done = key, 0
        mine = self.pieces[key[3]:]
        if self.done == len(mine):
            return
        started, whole = time.monotonic(), self.done == 0
        self.done += compute_ahead(mine[self.done:], self.conn, key[0], key[1], key[2])
        if self.done == len(mine):
            self.end = time.monotonic()
            if whole:
                self.last_s = self.end - started

    def ready(self, key: Key) -> int:
        """The pieces of ``key``'s share already written."""
        return self.done if key == self.key else 0

    def idle_before(self, key: Key, arrived: float) -> float:
        """How long this worker waited, ``key``'s rows all written, for it to be asked."""
        if key != self.key or self.done < len(self.pieces[key[3]:]):
            return 0.0
        return max(0.0, arrived - self.end)


def compute(pieces: Pieces, jd_whole: float, jd_frac: float, which: int) -> None:
    """Propagate ``pieces`` to the instant, into buffer ``which``."""
    jd, fr = np.array([jd_whole]), np.array([jd_frac])
    for array, rows in pieces:
        array._sgp4(jd, fr, *rows[which])


def compute_ahead(pieces: Pieces, conn: Connection, jd_whole: float, jd_frac: float,
                  which: int) -> int:
    """Propagate ``pieces`` to the instant into buffer ``which``, piece by piece, until a
    request arrives; the number of pieces done (none for a NaN instant)."""
    if math.isnan(jd_whole) or math.isnan(jd_frac):
        return 0
    jd, fr = np.array([jd_whole]), np.array([jd_frac])
    for done, (array, rows) in enumerate(pieces):
        if conn.poll(0):  # asked for something: answer first
            return done
        array._sgp4(jd, fr, *rows[which])
    return len(pieces)


def build_pieces(plan: SatrecPlan, buffer: object, n_sats: int, start: int, stop: int,
                 chunk_rows: int = CHUNK_ROWS) -> Pieces:
    """Rows [start, stop)'s satrecs, built, each `SatrecArray` piece (at most
    ``chunk_rows``) with its rows of each buffer of the shared arrays."""
    return [(array, tuple(shard_rows(buffer, n_sats, first, last, which)
                          for which in range(BUFFERS)))
            for first, last, array in plan.build(start, stop, chunk_rows)]


def shard_rows(buffer: object, n_sats: int, start: int, stop: int, which: int) -> Rows:
    """Rows [start, stop) of one buffer's status, position and velocity, in the (sats,
    dates[, 3]) shapes SGP4's C call writes (`SatrecArray.sgp4` is this same `_sgp4`
    call into arrays it allocates itself)."""
    pos, vel, status = views(buffer, n_sats, which)
    return (status[start:stop].reshape(-1, 1), pos[start:stop].reshape(-1, 1, 3),
            vel[start:stop].reshape(-1, 1, 3))


def views(buffer: object, n_sats: int, which: int = 0) -> Rows:
    """Position (n, 3) f8, velocity (n, 3) f8 and status (n,) u1 over buffer ``which``."""
    offset = which * n_sats * BYTES_PER_SAT
    vec_bytes = n_sats * 3 * 8
    pos = np.ndarray((n_sats, 3), np.float64, buffer, offset)  # type: ignore[call-overload]
    vel = np.ndarray((n_sats, 3), np.float64, buffer, offset + vec_bytes)  # type: ignore[call-overload]
    status = np.ndarray((n_sats,), np.uint8, buffer, offset + 2 * vec_bytes)  # type: ignore[call-overload]
    return pos, vel, status


def name_this_process(name: str) -> None:
    """Show ``name`` (``odc-shard-N``) as this process's name where the system allows:
    an operator (and a test) tells the SGP4 workers from the forkserver and the resource
    tracker, which run the same interpreter."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)


def exists(pid: int) -> bool:
    """Whether a process with this id exists (a zombie counts: its end is EOF anyway)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's (the id was reused)
        return True
    return True

"""Keep the step's large temporary arrays in the heap instead of mapping them anew each step.

glibc serves allocations above a (dynamic) threshold with ``mmap`` and returns them with
``munmap``, so every step's temporaries of a few hundred kB (4,428 satellites x 3 x 8
bytes) are page-faulted in afresh. Raising the thresholds for the twin's own process keeps
them in the heap and reuses them: 7-10 % off the whole step (docs/performance.md). Memory
stays flat because the same sizes recur every step.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

log = logging.getLogger("odc.twin")

# mallopt parameters from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

HEAP_THRESHOLD_BYTES = 256 * 1024 * 1024
TOP_PAD_BYTES = 64 * 1024 * 1024
ARENAS = 2
"""malloc arenas at most: the main thread's and one that every other thread shares (the
row slices, the aggregate's parts, ZeroMQ's I/O). glibc's default, 8 a core, gives each
thread its own arena, and each arena keeps the largest working set its thread ever had
until the next trim: with 2 workers at a million the live twin's memory saw-toothed
between 3.1 and 3.5 GB; with 2 arenas it stays at 3.35 GB (docs/performance.md, "SGP4
workers from the forkserver"). The environment's ``MALLOC_ARENA_MAX`` wins if set."""


def keep_temporaries_in_heap() -> bool:
    """Tune glibc malloc for the twin's process; returns whether it applied (Linux only)."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    settings = [(M_MMAP_THRESHOLD, HEAP_THRESHOLD_BYTES),
                (M_TRIM_THRESHOLD, HEAP_THRESHOLD_BYTES), (M_TOP_PAD, TOP_PAD_BYTES)]
    if "MALLOC_ARENA_MAX" not in os.environ:  # before any thread makes its own arena
        settings.append((M_ARENA_MAX, ARENAS))
    applied = all(mallopt(parameter, value) == 1 for parameter, value in settings)
    log.debug("malloc tuned for the step: %s", applied)
    return applied


TRIM_EVERY_STEP_MIN_SATS = 250_000
"""From this many satellites the server also trims after every step: a step's temporaries
are hundreds of MB (a million: the twin's RSS saw-toothed by 300-400 MB between 5 s trims)
and faulting them in again costs nothing measurable in a step of about 1 s
(docs/performance.md, "SGP4 workers from the forkserver"); smaller fleets keep them."""

_libc: ctypes.CDLL | None = None  # loaded on first use


def release_free_memory() -> bool:
    """Hand the heap's free pages back to the system (glibc ``malloc_trim``).

    With the thresholds above, memory a burst freed (the queued copies of state messages
    for a subscriber that stopped reading, say) stays in the heap for reuse and the
    process's RSS never falls. The server calls this every few seconds: it costs 0.1 to
    0.4 ms, and the next step ~0.4 ms for faulting its temporaries back in. Returns
    whether it ran (glibc on Linux only).
    """
    global _libc
    if not sys.platform.startswith("linux"):
        return False
    if _libc is None:
        name = ctypes.util.find_library("c")
        if name is None:
            return False
        _libc = ctypes.CDLL(name)
    trim = getattr(_libc, "malloc_trim", None)
    if trim is None:  # not glibc
        return False
    trim.argtypes = (ctypes.c_size_t,)
    trim.restype = ctypes.c_int
    trim(0)
    return True

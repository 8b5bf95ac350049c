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
import sys

log = logging.getLogger("odc.twin")

# mallopt parameters from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3

HEAP_THRESHOLD_BYTES = 256 * 1024 * 1024
TOP_PAD_BYTES = 64 * 1024 * 1024


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
    applied = all(
        mallopt(parameter, value) == 1
        for parameter, value in (
            (M_MMAP_THRESHOLD, HEAP_THRESHOLD_BYTES),
            (M_TRIM_THRESHOLD, HEAP_THRESHOLD_BYTES),
            (M_TOP_PAD, TOP_PAD_BYTES),
        )
    )
    log.debug("malloc tuned for the step: %s", applied)
    return applied

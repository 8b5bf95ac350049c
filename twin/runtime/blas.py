"""One BLAS thread for the twin's process.

The twin's matrix products are (n, 3) @ (3, 3) rotations and small station look-angle
products: a second OpenBLAS thread only adds hand-offs, and it competes with the SGP4
worker processes for the same cores (twin.astro.shards). Measured at 100,000 satellites
on the shared two-core machine: the frame rotations took 7.2 ms a call with OpenBLAS's
default threads and 0.7 ms with one (docs/performance.md, "Every core"). The thread
count does not change a product's result for the fleets the golden frames pin.

OpenBLAS reads ``OPENBLAS_NUM_THREADS`` only when it loads, which is before ``odc run``
parses its flags, so this sets it through the library's own call instead.
"""

from __future__ import annotations

import ctypes
import logging
from pathlib import Path

log = logging.getLogger("odc.twin.blas")

SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
           "openblas_set_num_threads64_", "openblas_set_num_threads")
"""The thread-count setters of the OpenBLAS builds numpy ships with, newest first."""


def _loaded_openblas() -> list[str]:
    """Paths of the OpenBLAS libraries mapped into this process (Linux; [] elsewhere)."""
    maps = Path("/proc/self/maps")
    if not maps.exists():
        return []
    paths = {line.split()[-1] for line in maps.read_text().splitlines()
             if "openblas" in line.lower() and line.split()[-1].startswith("/")}
    return sorted(paths)


def limit_blas_threads(threads: int = 1) -> bool:
    """Set the loaded OpenBLAS's thread count; False when none was found (then nothing
    changes: numpy may use another BLAS, or none)."""
    import numpy  # noqa: F401  (loads numpy's OpenBLAS if nothing has yet)

    for path in _loaded_openblas():
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for name in SETTERS:
            setter = getattr(library, name, None)
            if setter is not None:
                setter.argtypes = [ctypes.c_int]
                setter(threads)
                return True
    log.info("no OpenBLAS found to limit to %d thread(s)", threads)
    return False

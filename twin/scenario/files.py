"""Reading a file a scenario names without trusting it: regular, bounded, never blocking.

Both the scenario file itself and the TLE catalogs it points to are read with
``read_bounded``, so a path to a FIFO, a device or a huge file fails with a message
instead of hanging the twin or filling its memory.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


def read_bounded(path: Path, max_bytes: int, what: str) -> bytes:
    """Read a regular file of at most ``max_bytes``; anything else is an ``OSError``.

    Opened non-blocking and checked after opening, so a FIFO, a device (``/dev/zero``), a
    directory or a file that grows while read never hangs the twin or fills its memory.

    Args:
        path: The file.
        max_bytes: Largest size accepted.
        what: What the file is, for messages ("TLE file").

    Raises:
        OSError: Missing, unreadable, not a regular file, or too big; ``strerror`` says which.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = ("a directory" if stat.S_ISDIR(info.st_mode)
                    else "a device, pipe or socket, not a regular file")
            raise OSError(0, f"it is {kind}", str(path))
        if info.st_size > max_bytes:
            raise OSError(0, f"it is {info.st_size:,} bytes, more than the {max_bytes:,} a"
                          f" {what} may have", str(path))
        with os.fdopen(fd, "rb", closefd=True) as stream:
            fd = -1
            data = stream.read(max_bytes + 1)
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > max_bytes:
        raise OSError(0, f"it grew past the {max_bytes:,} bytes a {what} may have", str(path))
    return data

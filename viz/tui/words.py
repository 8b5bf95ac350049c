"""Plain words for the dashboard: counts with the right plural, errors said in words, times
in ISO UTC.

A count reads ``1 alarm``, ``2 alarms``; an operating-system error reads ``no such file:
run.mcap``, not ``[Errno 2] No such file or directory: 'run.mcap'``; a reply's
``t_utc=1.77405e+09`` reads ``2026-03-21T09:30:00Z``.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

# OS error numbers (errno) said in words; others keep the system's own text, lower case.
_ERRNO_WORDS = {2: "no such file", 13: "not allowed to read", 20: "not a folder",
                21: "a folder, not a file", 28: "no space left on the disk",
                111: "connection refused"}
_ERRNO = re.compile(r"\[Errno (\d+)\] ([^:]*)(?::\s*'?(.*?)'?)?$")
# Reply keys that hold a POSIX time (seconds); shown as ISO UTC.
TIME_KEYS = ("t_utc", "epoch_utc", "position_utc", "started_utc", "wall_utc")


def plural(count: int, word: str, words: str | None = None) -> str:
    """``1 ground station``, ``3 ground stations`` (``words``: an irregular plural)."""
    return f"{count:,d} {word if count == 1 else words or word + 's'}"


def plain_error(text: str) -> str:
    """An error for a person: ``[Errno 2] No such file or directory: 'x'`` → ``no such
    file: x``; anything else as it is. The ``[Errno N]`` may follow a prefix."""
    match = None
    start = text.find("[Errno ")
    if start >= 0:
        match = _ERRNO.match(text[start:])
    if match is None:
        return text
    number, system, path = int(match.group(1)), match.group(2).strip(), match.group(3)
    words = _ERRNO_WORDS.get(number, system[:1].lower() + system[1:])
    said = f"{words}: {path}" if path else words
    return text[:start] + said


def iso_utc(t_utc: Any) -> str | None:
    """POSIX seconds as ``2026-03-21T09:30:00Z`` (to the millisecond when not whole), or
    None for something that is not a usable time."""
    if isinstance(t_utc, bool) or not isinstance(t_utc, int | float) or not math.isfinite(t_utc):
        return None
    try:
        when = datetime.fromtimestamp(float(t_utc), UTC)
    except (OverflowError, OSError, ValueError):
        return None
    text = when.isoformat(timespec="milliseconds" if when.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def reply_value(key: str, value: Any) -> str:
    """One value of a command reply as the reply line shows it."""
    if key in TIME_KEYS or key.endswith("_utc"):
        when = iso_utc(value)
        if when is not None:
            return when
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)

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


def short_names(names: list[str]) -> list[str]:
    """Each name up to its first `` (``, ``"Wallops (NASA WFF)"`` -> ``"Wallops"``, where
    the short names stay distinct; else the names as they are."""
    short = [name.split(" (", 1)[0] or name for name in names]
    return short if len(set(short)) == len(short) else list(names)


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


def summary_lines(body: dict[str, Any], shown: int = 4, width: int = 56) -> list[str]:
    """A ``node_events_summary`` event in short lines for a narrow log: the count and kind,
    then its largest counts per key and per group (lines of about ``width``), then the
    first node's own event."""
    lines = [f"{int(body.get('n_events', 0)):,} {body.get('of', '?')} in one step, summarised"]
    by = body.get("by") if isinstance(body.get("by"), dict) else {}
    groups = body.get("by_group")
    for key, counts in [*by.items(), *([("group", groups)] if isinstance(groups, dict)
                                       and len(groups) > 1 else [])]:
        if isinstance(counts, dict) and counts:
            items = [f"{name} {n:,}" for name, n in counts.items()]
            if len(items) > shown:
                items = [*items[:shown], f"+{len(items) - shown} more"]
            lines.extend(_packed(f"  by {key}: ", items, width))
    message = str(body.get("message", ""))
    if "first: " in message:
        lines.append("  first: " + message.rsplit("first: ", 1)[1])
    return lines


def _packed(head: str, items: list[str], width: int) -> list[str]:
    """``head`` and ``items`` joined by commas in lines of about ``width`` characters."""
    lines, line = [], head
    for k, item in enumerate(items):
        piece = item + ("," if k < len(items) - 1 else "")
        if line.strip() and len(line) + len(piece) > width and line != head:
            lines.append(line.rstrip())
            line = " " * 4
        line += piece + " "
    lines.append(line.rstrip())
    return lines

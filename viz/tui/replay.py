"""The dashboard on a replay: the time bar, and the times ``:seek`` understands.

A replay (``odc replay``) says what it is in ``replay`` messages (docs/protocol.md): the
recording's name and span, the position, the warp, paused. The header then shows REPLAY
and the run's name, and a line below it the time bar: the span's ends, a marker at the
position, the position and how far in. ``:seek WHEN`` moves the replay; WHEN is read here.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.text import Text

REPLAY_STYLE = "bold white on magenta"
BAR_STYLE = "magenta"
SEEK_FORMS = ("2026-03-20T12:30:00 (UTC), 12:30 (the position's day), +10m / -30s / +2h / "
              "+1d (from the position), 50% (of the span), or t_utc=POSIX seconds")
_RELATIVE = re.compile(r"^([+-])(\d+(?:\.\d*)?|\.\d+)([smhd]?)$")
_UNIT_S = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}(?:\.\d*)?))?$")


class SeekError(ValueError):
    """A ``:seek`` time that cannot be read; the message shows the forms that can."""


def _utc(t_utc: float) -> str:
    try:
        return datetime.fromtimestamp(t_utc, UTC).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return "—"


def parse_seek(text: str, position_utc: float, span_utc: tuple[float, float]) -> float:
    """The simulation time (POSIX s) that ``:seek TEXT`` asks for.

    Args:
        text: ``2026-03-20T12:30:00`` (UTC unless it names an offset), ``12:30`` or
            ``12:30:15`` (on the position's day), ``+10m``, ``-30s``, ``+2h``, ``+1d`` (from
            the position; without a unit, seconds), ``50%`` (of the span) or a plain
            number (POSIX seconds).
        position_utc: Where the replay is.
        span_utc: The recording's first and last time.

    Raises:
        SeekError: ``text`` is none of these; the message lists them.
    """
    text = text.strip()
    relative = _RELATIVE.match(text)
    if relative:
        sign = -1.0 if relative.group(1) == "-" else 1.0
        return position_utc + sign * float(relative.group(2)) * _UNIT_S[relative.group(3)]
    if text.endswith("%"):
        try:
            fraction = float(text[:-1]) / 100.0
        except ValueError:
            raise SeekError(f"cannot read {text!r} as a share of the span; "
                            f"write a time as {SEEK_FORMS}") from None
        if not 0.0 <= fraction <= 1.0:
            raise SeekError(f"{text} is not within 0% .. 100% of the recording")
        return span_utc[0] + fraction * (span_utc[1] - span_utc[0])
    clock = _CLOCK.match(text)
    if clock:
        hours, minutes = int(clock.group(1)), int(clock.group(2))
        seconds = float(clock.group(3) or 0.0)
        if hours > 23 or minutes > 59 or seconds >= 60:
            raise SeekError(f"{text!r} is not a time of day (HH:MM or HH:MM:SS)")
        day = datetime.fromtimestamp(position_utc, UTC).replace(
            hour=0, minute=0, second=0, microsecond=0)
        return (day + timedelta(hours=hours, minutes=minutes, seconds=seconds)).timestamp()
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(number):
            return number
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise SeekError(f"cannot read {text!r} as a time; write it as {SEEK_FORMS}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # simulation times are UTC
    return when.timestamp()


def time_bar(replay: dict[str, Any], width: int) -> Text:
    """The replay's time bar in ``width`` cells: span start, a bar with a marker at the
    position, span end, then the position, how far in and the state of play."""
    start, end = (float(t) for t in replay["span_utc"])
    position = float(replay["position_utc"])
    fraction = (position - start) / (end - start) if end > start else 1.0
    fraction = min(max(fraction, 0.0), 1.0)
    state = ("ENDED" if replay.get("ended") else "PAUSED" if replay.get("paused")
             else f"▶ {float(replay['warp']):g}×")
    tail = f" {_utc(end)}   at {_utc(position)[11:]}  {100 * fraction:5.1f} %  {state} "
    head = f" {_utc(start)} "
    cells = max(width - len(head) - len(tail), 3)
    marker = min(round(fraction * (cells - 1)), cells - 1)
    text = Text(head, style="dim")
    text.append("━" * marker, style=BAR_STYLE)
    text.append("●", style="bold " + BAR_STYLE)
    text.append("─" * (cells - 1 - marker), style="dim")
    text.append(tail)
    return text

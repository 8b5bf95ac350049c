"""Logging for rejections: counted always, written at a bounded rate, never the raw payload.

Bad input arrives at whatever rate a client chooses. Each rejection is counted, but at most
``burst`` lines per ``period_s`` are written for one reason; the rest are summed into one
summary line when the period ends ("... 4,812 more 'not_msgpack' in the last 10 s"). Every
message is shortened to ``MAX_MESSAGE_CHARS`` with a visible ``…``, so a 1 GB payload
quoted in an error can never reach the log whole.

Log growth is therefore at most about ``(burst + 1) * MAX_MESSAGE_CHARS`` bytes per reason
per period, whatever clients send (docs/reliability.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

MAX_MESSAGE_CHARS = 300
DEFAULT_BURST = 5
DEFAULT_PERIOD_S = 10.0
# Reasons are chosen by the code, not by clients, but cap them all the same so that a
# reason built from input can never grow the table without bound.
MAX_REASONS = 256
_OTHER_REASON = "other"


def shorten(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` cut to ``limit`` characters, the cut shown by a trailing ``…``."""
    text = str(text)
    if len(text) <= limit:
        return text
    return text[: max(0, limit - 1)] + "…"


@dataclass
class _Window:
    started: float
    written: int = 0
    suppressed: int = 0


class RateLimitedLog:
    """Writes at most ``burst`` lines per reason per ``period_s``, then one summary.

    Args:
        logger: Where lines go.
        burst: Lines written per reason in one period before suppression starts.
        period_s: Length of a period, wall seconds.
        clock: Monotonic time source (injectable for tests).
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        burst: int = DEFAULT_BURST,
        period_s: float = DEFAULT_PERIOD_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.burst = burst
        self.period_s = period_s
        self.clock = clock
        self.counts: dict[str, int] = {}
        self.lines_written = 0
        self.lines_suppressed = 0
        self._windows: dict[str, _Window] = {}

    def log(self, reason: str, message: str, *args: object,
            level: int = logging.WARNING, exc_info: bool = False) -> bool:
        """Count one occurrence of ``reason``; write ``message % args`` if within the rate.

        Returns:
            Whether a line was written.
        """
        if reason not in self.counts and len(self.counts) >= MAX_REASONS:
            reason = _OTHER_REASON
        self.counts[reason] = self.counts.get(reason, 0) + 1
        now = self.clock()
        window = self._windows.get(reason)
        if window is None or now - window.started >= self.period_s:
            if window is not None and window.suppressed:
                self._summary(reason, window)
            window = self._windows[reason] = _Window(now)
        if window.written >= self.burst:
            window.suppressed += 1
            self.lines_suppressed += 1
            return False
        window.written += 1
        self.lines_written += 1
        text = shorten(message % args if args else message)
        self.logger.log(level, "%s", text, exc_info=exc_info)
        if window.written == self.burst:
            self.logger.log(level, "%s", f"further {reason!r} lines are summarised every "
                            f"{self.period_s:g} s")
        return True

    def tick(self) -> None:
        """Write the summaries of periods that have ended (call now and then, e.g. per second)."""
        now = self.clock()
        for reason, window in self._windows.items():
            if window.suppressed and now - window.started >= self.period_s:
                self._summary(reason, window)
                window.suppressed = 0

    def flush(self) -> None:
        """Write the summaries of every period that suppressed lines (at shutdown)."""
        for reason, window in self._windows.items():
            if window.suppressed:
                self._summary(reason, window)
                window.suppressed = 0

    def _summary(self, reason: str, window: _Window) -> None:
        self.logger.warning("%d more %r not logged in the last %.0f s (%d in all)",
                            window.suppressed, reason, self.clock() - window.started,
                            self.counts.get(reason, 0))

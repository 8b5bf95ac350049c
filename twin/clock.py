"""Simulation time: UTC, advanced in fixed steps, paced against the wall clock.

A step always advances simulated time by ``dt_s = warp / rate_hz``, whatever the wall
clock does, so the same scenario and seed give the same run step for step. Pacing
(sleeping until the next wall-clock tick) is separate and switched off by ``fast``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

SECONDS_PER_DAY = 86400.0
_UNIX_EPOCH_JD = 2440587.5

MAX_WARP = 1.0e5
MAX_RATE_HZ = 1000.0
MAX_STEP_S = 600.0


def julian_date_utc(moment: datetime) -> tuple[float, float]:
    """Split a UTC datetime into a Julian date (whole, fraction) as sgp4 wants it.

    The whole part is the Julian date of the preceding midnight (ending in .5), so the
    fraction keeps full precision through long runs.
    """
    seconds = moment.astimezone(UTC).timestamp()
    days, remainder = divmod(seconds, SECONDS_PER_DAY)
    return _UNIX_EPOCH_JD + days, remainder / SECONDS_PER_DAY


@dataclass
class SimClock:
    """Simulated UTC time and its pacing.

    Attributes:
        epoch_utc: Start of the run.
        rate_hz: Steps (and publishes) per wall-clock second.
        warp: Simulated seconds per wall-clock second.
        fast: Step as fast as possible, ignoring the wall clock.
        paused: No steps are taken while paused, except requested single steps.
    """

    epoch_utc: datetime
    rate_hz: float
    warp: float
    fast: bool = False
    paused: bool = False
    elapsed_s: float = 0.0
    steps: int = 0

    def __post_init__(self) -> None:
        check_rate(self.rate_hz)
        check_warp(self.warp)
        check_step(self.warp, self.rate_hz)
        self._epoch_jd = julian_date_utc(self.epoch_utc)
        self._epoch_unix_s = self.epoch_utc.astimezone(UTC).timestamp()
        self._next_tick = time.monotonic()

    @property
    def dt_s(self) -> float:
        """Simulated seconds per step."""
        return self.warp / self.rate_hz

    @property
    def t_utc(self) -> float:
        """Simulation time as float seconds since the Unix epoch (the wire's ``t_utc``)."""
        return self._epoch_unix_s + self.elapsed_s

    @property
    def jd_utc(self) -> tuple[float, float]:
        """Simulation time as a Julian date (whole, fraction), precise for sgp4."""
        whole, fraction = self._epoch_jd
        fraction += self.elapsed_s / SECONDS_PER_DAY
        carry = fraction // 1.0
        return whole + carry, fraction - carry

    def advance(self) -> float:
        """Move simulated time one step on; returns the step length in seconds."""
        dt_s = self.dt_s
        self.steps += 1
        self.elapsed_s += dt_s
        return dt_s

    def seconds_until_tick(self) -> float:
        """Wall seconds to wait before the next step is due (0 when fast or late)."""
        if self.fast:
            return 0.0
        return max(0.0, self._next_tick - time.monotonic())

    def mark_tick(self) -> None:
        """Schedule the next wall-clock tick; a late loop skips ahead rather than bursting."""
        period = 1.0 / self.rate_hz
        now = time.monotonic()
        self._next_tick += period
        if self._next_tick < now - period:
            self._next_tick = now + period

    def set_warp(self, warp: float) -> None:
        check_warp(warp)
        check_step(warp, self.rate_hz)
        self.warp = float(warp)

    def set_rate(self, rate_hz: float) -> None:
        check_rate(rate_hz)
        check_step(self.warp, rate_hz)
        self.rate_hz = float(rate_hz)


def check_warp(warp: float) -> None:
    """Raise ``ValueError`` unless warp is a positive finite number within bounds."""
    if not isinstance(warp, int | float) or isinstance(warp, bool) or not 0 < warp <= MAX_WARP:
        raise ValueError(f"warp must be a number in (0, {MAX_WARP:g}], got {warp!r}")


def check_rate(rate_hz: float) -> None:
    """Raise ``ValueError`` unless the rate is a positive number within bounds."""
    if (
        not isinstance(rate_hz, int | float)
        or isinstance(rate_hz, bool)
        or not 0 < rate_hz <= MAX_RATE_HZ
    ):
        raise ValueError(f"rate must be a number of Hz in (0, {MAX_RATE_HZ:g}], got {rate_hz!r}")


def check_step(warp: float, rate_hz: float) -> None:
    """Raise ``ValueError`` if warp and rate together ask for too long a step."""
    if warp / rate_hz > MAX_STEP_S:
        raise ValueError(
            f"warp {warp:g} at {rate_hz:g} Hz means {warp / rate_hz:g} s steps; "
            f"the longest step is {MAX_STEP_S:g} s: raise the rate or lower the warp"
        )

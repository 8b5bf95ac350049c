"""Simulation time: UTC, advanced in fixed steps, paced against the wall clock.

A step always advances simulated time by ``dt_s = warp / rate_hz``, whatever the wall
clock does, so the same scenario and seed give the same run step for step. Pacing
(sleeping until the next wall-clock tick) is separate and switched off by ``fast``.
"""

from __future__ import annotations

import numbers
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from twin.core.constants import SECONDS_PER_DAY

_UNIX_EPOCH_JD = 2440587.5

# The one set of clock bounds: the scenario schema ([clock]), the CLI flags (--warp, --rate)
# and the twin's warp/rate commands all check against these.
MIN_WARP = 1.0e-3
"""Slowest warp (simulated s per wall s): a second of simulation in ~17 wall minutes."""
MAX_WARP = 1.0e5
"""Fastest warp: a day of simulation in under a wall second."""
MIN_RATE_HZ = 0.01
"""Fewest steps per wall second: the longest wait between two steps is 100 wall s."""
MAX_RATE_HZ = 1000.0
"""Most steps (and publishes) per wall second."""
MIN_STEP_S = 1.0e-4
"""Shortest step, simulated s: shorter steps vanish in the rounding of ``elapsed_s``
(a float64 of 1e9 s, three decades, has 1.2e-7 s resolution)."""
MAX_STEP_S = 600.0
"""Longest step, simulated s: a low orbit moves ~4,500 km in 600 s, a tenth of a revolution."""


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
        check_clock(self.warp, self.rate_hz)
        self.warp = float(self.warp)
        self.rate_hz = float(self.rate_hz)
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
        return self._jd_at(self.elapsed_s)

    @property
    def next_jd_utc(self) -> tuple[float, float]:
        """The Julian date `jd_utc` will be after one more `advance` at today's warp and
        rate, to the bit (what SGP4's workers compute ahead; twin.astro.shards)."""
        return self._jd_at(self.elapsed_s + self.dt_s)

    def _jd_at(self, elapsed_s: float) -> tuple[float, float]:
        whole, fraction = self._epoch_jd
        fraction += elapsed_s / SECONDS_PER_DAY
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
        """Change the warp; ``ValueError`` (naming the bound) leaves the clock as it was."""
        check_warp(warp)
        check_step(warp, self.rate_hz)
        self.warp = float(warp)

    def set_rate(self, rate_hz: float) -> None:
        """Change the rate; ``ValueError`` (naming the bound) leaves the clock as it was."""
        check_rate(rate_hz)
        check_step(self.warp, rate_hz)
        self.rate_hz = float(rate_hz)


def _in_bounds(value: object, low: float, high: float) -> bool:
    # numbers.Real takes numpy scalars too; bool is a Real but never a warp or a rate.
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return False
    # Compared as they are: NaN compares false, and a huge int never becomes an inf float.
    return bool(low <= value <= high)


def check_warp(warp: float) -> None:
    """Raise ``ValueError`` unless warp is a number in [MIN_WARP, MAX_WARP]."""
    if not _in_bounds(warp, MIN_WARP, MAX_WARP):
        raise ValueError(f"warp must be a number from {MIN_WARP:g} to {MAX_WARP:g} simulated"
                         f" seconds per wall second, got {warp!r}")


def check_rate(rate_hz: float) -> None:
    """Raise ``ValueError`` unless the rate is a number in [MIN_RATE_HZ, MAX_RATE_HZ]."""
    if not _in_bounds(rate_hz, MIN_RATE_HZ, MAX_RATE_HZ):
        raise ValueError(f"rate must be a number from {MIN_RATE_HZ:g} to {MAX_RATE_HZ:g} Hz"
                         f" (steps per wall second), got {rate_hz!r}")


def check_step(warp: float, rate_hz: float) -> None:
    """Raise ``ValueError`` unless warp / rate is a step in [MIN_STEP_S, MAX_STEP_S].

    Call `check_warp` and `check_rate` first; this one checks only their combination.
    """
    step_s = warp / rate_hz
    if step_s > MAX_STEP_S:
        raise ValueError(
            f"warp {warp:g} at {rate_hz:g} Hz means {step_s:g} s steps; "
            f"the longest step is {MAX_STEP_S:g} s: raise the rate or lower the warp"
        )
    if step_s < MIN_STEP_S:
        raise ValueError(
            f"warp {warp:g} at {rate_hz:g} Hz means {step_s:g} s steps; "
            f"the shortest step is {MIN_STEP_S:g} s: lower the rate or raise the warp"
        )


def check_clock(warp: float, rate_hz: float) -> None:
    """Raise ``ValueError`` unless warp, rate and the step they make are all within bounds."""
    check_warp(warp)
    check_rate(rate_hz)
    check_step(warp, rate_hz)

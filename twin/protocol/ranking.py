"""Which nodes are "worst" for a field with operating limits: the one rule for the twin's
``aggregate`` (twin.runtime.aggregates) and the dashboard's fleet view (viz.fleet_stats).

A node is as bad as it is near its nearest limit. The limit on each side is the warning
level where the field publishes one, else the alarm level (``warn_high``, else
``alarm_high``; ``warn_low``, else ``alarm_low``). The **margin** is the distance from the
value to the nearer of those limits, positive inside, negative past it, in units of the
field's band (:class:`LimitBand`), so a margin of 0.25 leaves a quarter of the band:

    margin = min(value - low, high - value) / scale

The smallest margin is the worst. Dividing by a field's one positive ``scale`` never
changes the order within the field; it makes margins comparable between fields and
readable without the unit. docs/protocol.md, "The worst nodes: margin to the nearest
limit, highest and lowest", is the contract.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


def _level(limits: Mapping[str, float], side: str) -> float | None:
    """The nearest published finite limit on ``side`` (``low``/``high``): warn, else alarm."""
    for level in ("warn", "alarm"):
        value = limits.get(f"{level}_{side}")
        if value is not None and math.isfinite(float(value)):
            return float(value)
    return None


@dataclass(frozen=True)
class LimitBand:
    """The limits a field's margin is measured to, and the band's size.

    Attributes:
        low: The low limit (wire unit), ``-inf`` where the field has none.
        high: The high limit (wire unit), ``+inf`` where the field has none.
        scale: The band's size (wire unit, > 0): ``high - low`` with limits on both sides;
            with one side only, the span between its warning and alarm levels where both
            are published, else the limit's magnitude, else 1.
    """

    low: float
    high: float
    scale: float

    @classmethod
    def from_limits(cls, limits: Mapping[str, float]) -> LimitBand | None:
        """The band of a field's limits; None for a field without a finite limit."""
        low, high = _level(limits, "low"), _level(limits, "high")
        if low is None and high is None:
            return None
        if low is not None and high is not None and high > low:
            scale = high - low
        else:
            side = "high" if high is not None else "low"
            nearest = high if high is not None else low
            alarm = limits.get(f"alarm_{side}")
            span = abs(float(alarm) - nearest) if alarm is not None and \
                math.isfinite(float(alarm)) else 0.0
            scale = span or abs(nearest) or 1.0
        return cls(-math.inf if low is None else low, math.inf if high is None else high,
                   float(scale))

    def badness(self, values: np.ndarray) -> np.ndarray:
        """(n,) float64 minus the margin of each value (higher is worse), ``-inf`` where no
        finite value: what the worst lists rank by.

        ``max(value - high, low - value) / scale``, the margin negated exactly (negation is
        exact in floating point), in three passes for a field with one side only.
        """
        values = np.asarray(values, dtype=np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            if self.low == -math.inf:
                bad = values - self.high
            elif self.high == math.inf:
                bad = self.low - values
            else:
                bad = np.maximum(values - self.high, self.low - values)
            bad /= self.scale
        bad[~np.isfinite(values)] = -np.inf
        return bad

    def margin(self, values: np.ndarray) -> np.ndarray:
        """(n,) float64 margin of each value (see the module); NaN where no finite value."""
        margin = -self.badness(values)
        margin[margin == np.inf] = np.nan
        return margin

    def nearer_low(self, values: np.ndarray) -> np.ndarray:
        """(n,) bool: the low limit is the nearer one (ties go to the high limit)."""
        values = np.asarray(values, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            return (values - self.low) < (self.high - values)


def limit_badness(values: np.ndarray, limits: Mapping[str, float]) -> np.ndarray | None:
    """(n,) float64 badness (higher is worse): minus the margin, ``-inf`` where no finite
    value; None for a field without limits (rank it by value instead)."""
    band = LimitBand.from_limits(limits)
    return None if band is None else band.badness(values)

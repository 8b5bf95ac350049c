"""Limit levels shared by the dashboard's table, detail screen and alarms: ok, warn, alarm.

A value is past a warning or an alarm limit as ``meta``'s field catalog publishes them;
the dashboard compares published numbers with published limits and models nothing.
"""

from __future__ import annotations

import numpy as np

OK, WARN, ALARM = 0, 1, 2
SEVERITY_LEVEL = {"info": OK, "warning": WARN, "alarm": ALARM}


def limit_levels(values: np.ndarray, limits: dict[str, float]) -> np.ndarray:
    """Per value: 0 within limits, 1 past a warning limit, 2 past an alarm limit.

    Args:
        values: Any shape, in the limits' unit; NaN counts as within limits.
        limits: ``warn_low``, ``warn_high``, ``alarm_low``, ``alarm_high`` (any subset).
    """
    levels = np.zeros(values.shape, np.uint8)
    if not limits:
        return levels
    with np.errstate(invalid="ignore"):
        for key, level in (("warn_low", WARN), ("warn_high", WARN),
                           ("alarm_low", ALARM), ("alarm_high", ALARM)):
            if key not in limits:
                continue
            bound = float(limits[key])
            past = values < bound if key.endswith("low") else values > bound
            np.maximum(levels, np.where(past, level, 0).astype(np.uint8), out=levels)
    return levels

"""A mirrored node's rows on the dashboard: measured beside predicted, with the residual.

A mixin of ``viz.tui.model.FleetModel``: reads the ``mirror_*`` fields of the newest state
for each binding ``meta`` announces (``viz.mirror``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from viz.mirror import MirrorBinding
from viz.tui.levels import ALARM, OK, WARN

# Marks a mirrored node (a hardware testbed drives it) in names and headers.
MIRROR_MARK = "◉"


@dataclass(frozen=True)
class MirrorRow:
    """One quantity of a mirrored node: SI values, NaN where absent.

    ``level`` colours the residual: ALARM past its threshold (the twin raises
    ``mirror_residual`` there), WARN past half of it, OK within.
    """

    quantity: str
    role: str  # "state" (compared) or "driver" (measured, drives the model)
    measured: float
    predicted: float
    residual: float
    threshold: float
    level: int



class MirrorReadings:
    """What a ``FleetModel`` knows of each mirrored node, from the newest state's arrays."""

    arrays: dict[str, np.ndarray]

    def _mirror_value(self, name: str, j: int) -> float:
        array = self.arrays.get(name)
        if array is None or array.ndim != 1 or not 0 <= j < len(array):
            return float("nan")
        return float(array[j])

    def mirror_live(self, binding: MirrorBinding) -> bool | None:
        """Whether the binding's telemetry is arriving; None before a state says."""
        array = self.arrays.get("mirror_live")
        if array is None or array.ndim != 1 or not 0 <= binding.index < len(array):
            return None
        return bool(array[binding.index])

    def mirror_age_s(self, binding: MirrorBinding) -> float:
        """Wall seconds since the binding's newest applied sample (NaN before the first)."""
        return self._mirror_value("mirror_age_s", binding.index)

    def mirror_rows(self, binding: MirrorBinding) -> list[MirrorRow]:
        """Compared states (measured, predicted, residual, threshold), then drivers."""
        j, rows = binding.index, []
        for q in binding.states:
            residual = self._mirror_value(f"mirror_residual_{q}", j)
            threshold = binding.thresholds.get(q, float("nan"))
            level = OK
            if math.isfinite(residual) and math.isfinite(threshold):
                level = ALARM if abs(residual) > threshold else \
                    WARN if abs(residual) > 0.5 * threshold else OK
            rows.append(MirrorRow(q, "state", self._mirror_value(f"mirror_measured_{q}", j),
                                  self._mirror_value(f"mirror_predicted_{q}", j), residual,
                                  threshold, level))
        for q in binding.drivers:
            rows.append(MirrorRow(q, "driver", self._mirror_value(f"mirror_measured_{q}", j),
                                  float("nan"), float("nan"), float("nan"), OK))
        return rows

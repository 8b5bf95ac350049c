"""Energy ledgers: running energy sums of a model's flows, per satellite.

Thermal keeps one of its heat flows (absorbed, rejected, generated) and power one of its
electrical flows (drawn from the arrays, dissipated, not served): each checks its own
energy balance against it (docs/models.md).
"""

from __future__ import annotations

import numpy as np


class EnergyLedger:
    """Energy of rows of flows since a start, J, per satellite.

    Each step adds its flows (W) to a running sum that is scaled by the step's dt only when
    dt changes or the energies are read: a run of steps of one dt costs one pass a step.

    Args:
        rows: Flows kept.
        n_sats: Satellites.
    """

    def __init__(self, rows: int, n_sats: int) -> None:
        self._joules = np.zeros((rows, n_sats))
        self._watts = np.zeros((rows, n_sats))  # summed over steps of ``_dt`` since a flush
        self._dt = 0.0

    def add(self, flows_w: np.ndarray, dt_s: float) -> None:
        """Add a step of dt_s (s) of ``flows_w`` ((rows, n) W, or its first rows)."""
        if dt_s != self._dt:
            self._flush()
            self._dt = dt_s
        self._watts[:len(flows_w)] += flows_w

    def joules(self) -> np.ndarray:
        """(rows, n) energies so far, J (rows of one array, also to add to directly)."""
        self._flush()
        return self._joules

    def reset(self) -> None:
        """Start again from zero."""
        self._joules[:] = 0.0
        self._watts[:] = 0.0

    def _flush(self) -> None:
        if self._dt:
            self._joules += np.multiply(self._watts, self._dt, out=self._watts)
            self._watts[:] = 0.0

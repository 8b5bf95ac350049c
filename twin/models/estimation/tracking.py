"""Drift alarms on the tracked parameters: a value leaving its band, with its trend.

The tracker filter carries the radiator and loop conductance factors (1 = nominal) and the
two temperature sensors' biases (K) as random-walk states. A parameter is out of its band
when its distance from nominal passes the band AND two standard deviations (the filter is
sure of it); it is back when the distance falls below 0.8 of the band (hysteresis, so a
value on the edge raises one alarm, not one per step). The trend is the least-squares
slope of the value over the last ``trend_window_s`` (per hour).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.models.estimation.filter import nominal_augmented

TRACKED = ("radiator_frac", "loop_frac", "bias_compute_k", "bias_radiator_k")
"""The tracked parameters (states of the tracker filter), in order."""
TRACKED_TEXT = {"radiator_frac": "radiator conductance", "loop_frac": "loop conductance",
                "bias_compute_k": "cold-plate sensor bias",
                "bias_radiator_k": "radiator sensor bias"}
HISTORY_SAMPLES = 60
CLEAR_FRAC = 0.8


@dataclass(frozen=True)
class DriftChange:
    """A tracked parameter of node ``node`` left its band (``out``) or came back."""

    node: int
    parameter: str
    out: bool
    value: float
    sigma: float
    trend_per_h: float
    band: float


class DriftMonitor:
    """Bands and trends of ``TRACKED`` for N nodes."""

    def __init__(self, n_nodes: int, frac_band: float, bias_band_k: float,
                 trend_window_s: float) -> None:
        self.band = np.array([frac_band if p.endswith("_frac") else bias_band_k
                              for p in TRACKED])
        self.nominal = np.array([nominal_augmented(p) for p in TRACKED])
        self.out = np.zeros((n_nodes, len(TRACKED)), dtype=bool)
        self.period_s = trend_window_s / HISTORY_SAMPLES
        self.times: list[float] = []
        self.values: list[np.ndarray] = []

    def trend_per_h(self) -> np.ndarray:
        """(N, P) least-squares slope of each parameter over the window, per hour."""
        if len(self.times) < 3:
            return np.zeros_like(self.out, dtype=float)
        t = np.asarray(self.times) - self.times[-1]
        v = np.stack(self.values)  # (K, N, P)
        tc = t - t.mean()
        slope = np.einsum("k,knp->np", tc, v - v.mean(axis=0)) / (tc @ tc)
        return slope * 3600.0

    def update(self, t_s: float, value: np.ndarray, sigma: np.ndarray) -> list[DriftChange]:
        """Take (N, P) values and standard deviations at ``t_s``; return band crossings."""
        if not self.times or t_s - self.times[-1] >= self.period_s:
            self.times.append(t_s)
            self.values.append(value.copy())
            del self.times[:-HISTORY_SAMPLES], self.values[:-HISTORY_SAMPLES]
        distance = np.abs(value - self.nominal)
        now_out = np.where(self.out, distance > CLEAR_FRAC * self.band,
                           (distance > self.band) & (distance > 2.0 * sigma))
        changed = np.argwhere(now_out != self.out)
        self.out = now_out
        if not len(changed):
            return []
        trend = self.trend_per_h()
        return [DriftChange(int(n), TRACKED[p], bool(now_out[n, p]), float(value[n, p]),
                            float(sigma[n, p]), float(trend[n, p]), float(self.band[p]))
                for n, p in changed]

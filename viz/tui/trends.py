"""The dashboard's trends: a ring of recent samples of the watched fields, for every node.

A mixin of ``viz.tui.model.FleetModel``. The watched fields are those named in
``TREND_FIELDS`` and every quantity the catalog gives limits; the ring holds fewer
samples where a fleet is big, so it never takes more than ``TREND_MAX_BYTES``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from viz.tui.model import Column

# Fields drawn as trends on the detail screen besides every quantity the catalog gives
# limits (those the twin says to watch), by exact name.
TREND_FIELDS = ("temp_compute_k", "temp_radiator_k", "temp_battery_k", "temp_bus_k",
                "temp_array_k", "soc_frac", "utilization_frac", "delivered_flop_s")
TREND_SAMPLES = 180  # 180 x ~10 fields x 4,428 nodes x 4 B = 32 MB at most
# Fewer samples where a fleet is bigger (or a catalog has more trend fields) than that.
TREND_MAX_BYTES = 64 * 2**20


class TrendHistory:
    """The trend ring of a ``FleetModel``: ``trend[sample, field, node]``, SI, NaN unknown.

    The host class provides the fleet's size and ``values`` (a field's per-node array).
    """

    n: int
    trend: np.ndarray
    trend_fields: list[str]
    trend_t: deque[float]
    trend_samples: int
    max_trend_samples: int
    trend_count: int
    _trend_next: int
    values: Callable[[str], np.ndarray | None]

    def _plan_trends(self, columns: Sequence[Column]) -> None:
        """Pick the watched fields from the table's columns and empty the ring for them."""
        # Trends in the table's order: compute, radiator and battery temperatures first.
        self.trend_fields = [c.key for c in columns if c.key in TREND_FIELDS or (
            c.kind == "quantity" and c.limits)]
        per_sample = 4 * len(self.trend_fields) * self.n
        self.trend_samples = int(min(self.max_trend_samples,
                                     max(TREND_MAX_BYTES // max(per_sample, 1), 2)))
        self.trend_t = deque(maxlen=self.trend_samples)
        self.trend = np.full((self.trend_samples, len(self.trend_fields), self.n), np.nan,
                             np.float32)
        self.trend_t.clear()
        self._trend_next = 0
        self.trend_count = 0

    def clear_trends(self) -> None:
        """Forget the samples (a replay moved elsewhere in time): the ring starts afresh."""
        if self.trend.size:
            self.trend.fill(np.nan)
        self.trend_t.clear()
        self._trend_next = 0
        self.trend_count = 0

    def _sample_trends(self, t_utc: float) -> None:
        if not self.trend_fields or self.trend.shape[2] != self.n:
            return
        row = self.trend[self._trend_next]
        for i, name in enumerate(self.trend_fields):
            values = self.values(name)
            with np.errstate(over="ignore"):  # beyond float32: inf, drawn as no data
                row[i] = values if values is not None else np.nan
        self.trend_t.append(t_utc)
        self._trend_next = (self._trend_next + 1) % self.trend_samples
        self.trend_count = min(self.trend_count + 1, self.trend_samples)

    def trend_of(self, name: str, sat: int) -> np.ndarray:
        """Oldest-first samples of field ``name`` for satellite ``sat`` (SI), may be empty."""
        if name not in self.trend_fields or not 0 <= sat < self.n:
            return np.zeros(0, np.float32)
        i = self.trend_fields.index(name)
        series = np.roll(self.trend[:, i, sat], -self._trend_next)
        return series[self.trend_samples - self.trend_count:]

"""Change detectors on the filter's innovations and on the raw readings, batched over nodes.

- ``Cusum``: Page's two-sided cumulative sum on each channel's normalised innovation
  ``e = nu / sqrt(S)`` (N(0, 1) while the model holds): ``g+ = max(0, g+ + e - k)``,
  ``g- = max(0, g- - e - k)``, alarm when either passes ``h`` (Page 1954; Basseville &
  Nikiforov 1993, §2.2). ``k`` = 0.5 is tuned to a shift of one standard deviation.
- ``HeatTest``: the detector filter's unexplained heat ``d`` against zero,
  ``T = d' P_d^-1 d`` (chi-square, 2 degrees of freedom, while healthy): catches faults that
  grow too slowly for the innovations to stay off zero (a radiator fading over half an hour).
- ``StuckCheck``: readings repeated exactly; ``JumpCheck``: one channel leaping.
"""

from __future__ import annotations

import numpy as np


class Cusum:
    """Two-sided CUSUM per node and channel."""

    def __init__(self, n_nodes: int, n_channels: int, allowance: float, threshold: float
                 ) -> None:
        self.k, self.h = allowance, threshold
        self.up = np.zeros((n_nodes, n_channels))
        self.down = np.zeros((n_nodes, n_channels))

    def update(self, e: np.ndarray) -> np.ndarray:
        """Take (N, C) normalised innovations (NaN: none); return (N,) alarm."""
        have = np.isfinite(e)
        z = np.where(have, e, 0.0)
        self.up = np.where(have, np.maximum(0.0, self.up + z - self.k), self.up)
        self.down = np.where(have, np.maximum(0.0, self.down - z - self.k), self.down)
        return ((self.up > self.h) | (self.down > self.h)).any(axis=1)

    @property
    def statistic(self) -> np.ndarray:
        """(N,) the largest of each node's sums (how close it is to the threshold)."""
        return np.maximum(self.up, self.down).max(axis=1)

    def reset(self, nodes: np.ndarray) -> None:
        self.up[nodes] = 0.0
        self.down[nodes] = 0.0


def heat_statistic(heat_w: np.ndarray, heat_cov: np.ndarray) -> np.ndarray:
    """(N,) ``d' P_d^-1 d`` of the unexplained heat estimate."""
    weight = np.linalg.inv(heat_cov + 1e-9 * np.eye(heat_cov.shape[-1]))
    return np.einsum("ni,nij,nj->n", heat_w, weight, heat_w)


class StuckCheck:
    """Counts, per node and channel, new readings exactly equal to the one before."""

    def __init__(self, n_nodes: int, n_channels: int) -> None:
        self.last = np.full((n_nodes, n_channels), np.nan)
        self.repeats = np.zeros((n_nodes, n_channels), dtype=np.int64)

    def update(self, measured: np.ndarray) -> np.ndarray:
        """Take (N, C) readings (NaN: none new); return (N, C) repeat counts."""
        have = np.isfinite(measured)
        same = have & (measured == self.last)
        self.repeats = np.where(same, self.repeats + 1, np.where(have, 0, self.repeats))
        self.last = np.where(have, measured, self.last)
        return self.repeats


class JumpCheck:
    """Remembers, per node and channel, when that channel's reading alone last leapt.

    A leap is a change between two successive readings larger than ``jump_sigma`` times
    the noise of their difference (``sqrt(2) sigma``) while the other channel's change
    stays within half of that: heat flows move a temperature by millikelvin between
    samples, a sensor's offset or a swapped sensor moves it at once.
    """

    def __init__(self, n_nodes: int, n_channels: int, jump_sigma: float) -> None:
        self.jump_sigma = jump_sigma
        self.when_s = np.full((n_nodes, n_channels), -np.inf)
        self.size = np.zeros((n_nodes, n_channels))
        self.last = np.full((n_nodes, n_channels), np.nan)

    def update(self, t_s: float, readings: np.ndarray, sigma: np.ndarray) -> None:
        change = readings - self.last
        z = np.nan_to_num(np.abs(change) / (np.sqrt(2.0) * sigma), nan=0.0)
        self.last = np.where(np.isfinite(readings), readings, self.last)
        big = z > self.jump_sigma
        for c in range(z.shape[1]):
            others = np.delete(z, c, axis=1)
            alone = big[:, c] & (others < 0.5 * self.jump_sigma).all(axis=1)
            self.when_s[alone, c] = t_s
            self.size[alone, c] = change[alone, c]

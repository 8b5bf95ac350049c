"""One busy accelerator's power on each node, ``accelerator_power_w``: what thermal's die
and HBM temperatures follow (twin.models.thermal.junction).

    P_acc = (P_node - P_base) / busy + fill

with P_base the host and the sleeping accelerators, and fill a sleeping accelerator's power
where none is busy (0 where none works). P_base, 1/busy and fill follow from the busy and
working counts and the host's power alone, so they are kept while those are the same
objects; the arithmetic runs in the compute model's row slices (twin.core.slices):
elementwise, the same bits for any slicing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from twin.core.slices import SlicePool
from twin.models.compute.params import ComputeParams


class AcceleratorPower:
    """``accelerator_power_w`` from a node's power, W.

    Args:
        params: The ``[compute]`` parameters (sleep power).
    """

    def __init__(self, params: ComputeParams) -> None:
        self.params = params
        # (busy, n_ok, host W, base W, 1/busy, fill W), the first three by identity.
        self._terms: tuple[Any, ...] | None = None

    def forget_kept(self) -> None:
        """Compute the terms afresh next time."""
        self._terms = None

    def per_accelerator_w(self, pool: SlicePool, power_w: np.ndarray, busy: np.ndarray,
                          n_ok: np.ndarray, host_w: float | np.ndarray, clamp: bool
                          ) -> np.ndarray:
        """(n,) one busy accelerator's power: the node's power less the host and the
        sleeping accelerators, over the busy ones; a sleeping one's where none is busy,
        0 where none works (W).

        Args:
            pool: The row slices to compute in.
            power_w: (n,) each node's power, W.
            busy: (n,) accelerators holding a job.
            n_ok: (n,) working accelerators.
            host_w: The host's power, W: one for all, or (n,).
            clamp: Not below 0 (a mirrored node's measured power may sit below the host's).
        """
        kept = self._terms
        if kept is None or kept[0] is not busy or kept[1] is not n_ok or kept[2] is not host_w:
            sleeping = np.subtract(n_ok, busy, dtype=float)
            np.maximum(sleeping, 0.0, out=sleeping)
            base = sleeping * self.params.sleep_power_w + host_w
            has_busy = busy > 0
            inverse = np.divide(1.0, busy, out=np.zeros(busy.shape), where=has_busy)
            fill = np.where(has_busy | (n_ok <= 0), 0.0, self.params.sleep_power_w)
            kept = self._terms = (busy, n_ok, host_w, base, inverse, fill)
        per = np.empty(power_w.shape)  # float64: base is
        pool.run(_rows, per, power_w, *kept[3:], clamp)
        return per


def _rows(start: int, stop: int, per: np.ndarray, power_w: np.ndarray, base: np.ndarray,
          inverse: np.ndarray, fill: np.ndarray, clamp: bool) -> None:
    """The arithmetic for the nodes [start, stop)."""
    cut = slice(start, stop)
    out = np.subtract(power_w[cut], base[cut], out=per[cut])
    out *= inverse[cut]
    out += fill[cut]
    if clamp:
        np.maximum(out, 0.0, out=out)

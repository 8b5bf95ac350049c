"""Nodes out of service are passivated: bus, heaters and arrays off, battery left alone.

The lifecycle publishes the nodes it has taken out of service (disposed, derelict,
re-entered); power reads last step's set. docs/models.md, "Out-of-service nodes draw
nothing".
"""

from __future__ import annotations

import numpy as np


def passivated(nodes: np.ndarray, *loads_w: np.ndarray) -> tuple[np.ndarray, ...]:
    """Copies of ``loads_w`` (n,) W with none on ``nodes``: a node out of service is
    passivated, its bus and heaters off."""
    copies = tuple(np.array(load_w, dtype=float) for load_w in loads_w)
    for load_w in copies:
        load_w[nodes] = 0.0
    return copies


class InService:
    """The nodes in service as a mask, kept while the lifecycle's set is the same object.

    Args:
        n: Nodes.

    Attributes:
        mask: (n,) bool, None while every node is in service.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.mask: np.ndarray | None = None
        self._for: np.ndarray | None = None

    def update(self, retired: np.ndarray | None) -> np.ndarray | None:
        """The mask for the lifecycle's ``retired`` nodes ((m,) indices or None)."""
        if retired is not self._for:
            self._for = retired
            if retired is None or not retired.size:
                self.mask = None
            else:
                mask = np.ones(self.n, dtype=bool)
                mask[retired] = False
                self.mask = mask
        return self.mask

    def passivate(self, retired: np.ndarray | None, supply_w: np.ndarray, *loads_w: np.ndarray
                  ) -> tuple[np.ndarray, ...]:
        """Take the lifecycle's ``retired`` nodes off: ``supply_w`` 0 there, in place (the
        arrays are cut off the bus), and ``loads_w`` as copies with 0 there; the loads
        themselves while every node is in service. Keeps the mask for ``fleet_sums``."""
        if self.update(retired) is None:
            return loads_w
        assert retired is not None
        supply_w[retired] = 0.0
        return passivated(retired, *loads_w)

    def fleet_sums(self, sums: tuple[float, float, float, float], soc: np.ndarray
                   ) -> tuple[float, float, float, float]:
        """Power's (p_solar, soc, p_load sums, soc min) with the SOC's over the nodes in
        service (p_solar and p_load are already 0 on the others)."""
        if self.mask is None:
            return sums
        live = soc[self.mask]
        return (sums[0], float(np.add.reduce(live)), sums[2],
                float(live.min()) if live.size else 0.0)

    def live(self, values: np.ndarray) -> np.ndarray:
        """``values`` on the nodes in service alone."""
        return values if self.mask is None else values[self.mask]

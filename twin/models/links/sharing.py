"""How the relay traffic of results and multi-node jobs' all-reduce share a link
(docs/models.md, "Checkpoint cost and shared links").

Per link of capacity c (one direction), with r the relay load the routes offer it and a
the all-reduce's mean load over the last step (compute's ``link_allreduce_bps``):

- the all-reduce runs its bursts at c_ar = max(c - r, w c) (compute's ``multinode``: the
  relay flows while it leaves the all-reduce its least share w);
- the relay gets what the all-reduce leaves on average: c - a, both for its routes' rates
  (``relay_bps``) and for the load it puts on the link, min(r, c - a);
- the utilization is (min(r, c - a) + a) / c, at most 1.

Everything is per link and vectorized; a is last step's (compute steps after links).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def per_link(terminal_bps: Any, table: Any) -> np.ndarray | None:
    """(links,) a per-terminal (n, T) load read at each link's two ends (the larger), or
    None where there is none."""
    if terminal_bps is None:
        return None
    flat = np.asarray(terminal_bps).reshape(-1)
    t_count = table.terminals
    return np.maximum(flat[table.a * t_count + table.slot_a],
                      flat[table.b * t_count + table.slot_b])


def relay_capacity_bps(capacity_bps: np.ndarray, allreduce_bps: np.ndarray | None
                       ) -> np.ndarray:
    """(links,) what the all-reduce leaves the relay: max(c - a, 0) (c itself without)."""
    if allreduce_bps is None:
        return capacity_bps
    return np.maximum(capacity_bps - allreduce_bps, 0.0)


def shared_utilization(capacity_bps: np.ndarray, relay_bps: np.ndarray,
                       allreduce_bps: np.ndarray | None) -> np.ndarray:
    """(links,) share of each link's capacity used: (min(r, c - a) + a) / c, in [0, 1]
    (0 on a link with no capacity)."""
    util = np.zeros(capacity_bps.size)
    carrying = capacity_bps > 0.0
    cap = capacity_bps[carrying]
    used = relay_bps[carrying]
    if allreduce_bps is not None:
        allreduce = np.minimum(allreduce_bps[carrying], cap)  # a is last step's: c may drop
        used = np.minimum(used, cap - allreduce) + allreduce
    util[carrying] = np.minimum(used / cap, 1.0)
    return util

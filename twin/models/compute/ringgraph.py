"""The graph side of multi-node jobs: connected groups of nodes over the links that are
up, the ring all-reduce's time and the bottleneck of the tree it is laid on (docs/models.md,
"Multi-node jobs over the links"). Pure functions of the links' arrays (scipy.sparse.csgraph,
no loop over satellites); ``multinode`` keeps the jobs.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import breadth_first_order, connected_components, minimum_spanning_tree

NETWORK_AWARE = "network_aware"


def ring_allreduce_s(k: int, gradient_bytes: float, bottleneck_bps: float,
                     step_latency_s: float) -> float:
    """Ring all-reduce time (s) of ``gradient_bytes`` over ``k`` members whose slowest
    link carries ``bottleneck_bps`` (Patarasuk & Yuan 2009: 2 (k-1) steps of B/k bytes)."""
    if k < 2:
        return 0.0
    if bottleneck_bps <= 0.0:
        return float("inf")
    steps = 2 * (k - 1)
    return steps / k * gradient_bytes * 8.0 / bottleneck_bps + steps * step_latency_s


def link_graph(peer: np.ndarray, capacity_bps: np.ndarray, up: np.ndarray,
               n: int) -> csr_matrix:
    """(n, n) symmetric sparse matrix of the capacity of each link that is up (bit/s).

    Args:
        peer: (n, T) each terminal's peer node, -1 for none.
        capacity_bps: (n, T) each terminal's link capacity.
        up: (n, T) bool, the terminal's link is up.
    """
    t_count = peer.shape[1]
    a = np.repeat(np.arange(n), t_count)
    b = peer.reshape(-1)
    cap = np.asarray(capacity_bps, dtype=float).reshape(-1)
    keep = (b >= 0) & np.asarray(up).reshape(-1) & (cap > 0.0)
    return csr_matrix((cap[keep], (a[keep], b[keep])), shape=(n, n))


def _restricted(graph: csr_matrix, nodes: np.ndarray) -> csr_matrix:
    return graph[nodes][:, nodes]


def choose_group(graph: csr_matrix, eligible: np.ndarray, k: int,
                 policy: str) -> np.ndarray | None:
    """``k`` eligible nodes that form a connected sub-graph of ``graph``, or None.

    ``network_aware``: the group whose lowest link capacity is highest: the largest
    threshold c at which the links of capacity >= c join k eligible nodes (a binary search
    over the capacities, one connected-components pass each). Other policies: the first
    eligible node (lowest index) in a component of k or more. Either way the group is the
    first k nodes of a breadth-first order from that node: a connected set.
    """
    nodes = np.flatnonzero(eligible)
    if nodes.size < k:
        return None
    sub = _restricted(graph, nodes)
    if policy == NETWORK_AWARE and sub.nnz:
        levels = np.unique(sub.data)
        lo, hi = -1, levels.size - 1  # levels[lo] feasible (lo = -1: none found yet)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if _seed(_at_least(sub, levels[mid]), k) >= 0:
                lo = mid
            else:
                hi = mid - 1
        if lo >= 0:
            sub = _at_least(sub, levels[lo])
    seed = _seed(sub, k)
    if seed < 0:
        return None
    order = breadth_first_order(sub, seed, directed=False, return_predecessors=False)
    return nodes[np.sort(order[:k])]


def _at_least(sub: csr_matrix, threshold: float) -> csr_matrix:
    kept = sub.copy()
    kept.data = np.where(kept.data >= threshold, kept.data, 0.0)
    kept.eliminate_zeros()
    return kept


def _seed(sub: csr_matrix, k: int) -> int:
    """The lowest node in a connected component of ``k`` or more nodes, or -1."""
    _, labels = connected_components(sub, directed=False)
    big = np.bincount(labels)[labels] >= k
    return int(np.argmax(big)) if big.any() else -1


def ring_bottleneck_bps(graph: csr_matrix, members: np.ndarray) -> float:
    """The lowest capacity on the members' maximum spanning tree (bit/s); 0 when the
    members' links do not join them all."""
    return tree_bottleneck_bps(_restricted(graph, members))


def member_graph(peer: np.ndarray, capacity_bps: np.ndarray, up: np.ndarray,
                 members: np.ndarray, n: int) -> csr_matrix:
    """(k, k) capacities of the links that are up among ``members`` alone (bit/s): what
    ``link_graph`` restricted to them gives, without the (n, n) graph."""
    k = members.size
    position = np.full(n, -1, dtype=np.int64)
    position[members] = np.arange(k)
    peers = np.asarray(peer)[members]
    other = np.where(peers >= 0, position[peers], -1)
    cap = np.asarray(capacity_bps, dtype=float)[members]
    keep = (other >= 0) & np.asarray(up)[members] & (cap > 0.0)
    rows = np.broadcast_to(np.arange(k)[:, None], peers.shape)
    return csr_matrix((cap[keep], (rows[keep], other[keep])), shape=(k, k))


def tree_bottleneck_bps(sub: csr_matrix) -> float:
    """The lowest capacity on the maximum spanning tree of ``sub`` (bit/s); 0 when it is
    not connected, inf for a single node."""
    if sub.shape[0] < 2:
        return float("inf")
    n_comp, _ = connected_components(sub, directed=False)
    if n_comp > 1:
        return 0.0
    top = float(sub.data.max())
    flipped = sub.copy()
    flipped.data = (top + 1.0) - flipped.data  # minimum spanning tree of this: maximum of c
    tree = minimum_spanning_tree(flipped)
    return float(top + 1.0 - tree.data.max())


def ring_tree(sub: csr_matrix) -> tuple[float, np.ndarray, np.ndarray]:
    """The maximum spanning tree the ring is laid on, of the (k, k) capacities ``sub``.

    Returns:
        Its lowest capacity (bit/s; 0 when ``sub`` does not join its nodes, inf for one
        node) and its links as pairs of member indices (rows, cols), one entry a link.
    """
    none = np.zeros(0, dtype=np.int64)
    if sub.shape[0] < 2:
        return float("inf"), none, none
    if connected_components(sub, directed=False)[0] > 1:
        return 0.0, none, none
    top = float(sub.data.max())
    flipped = sub.copy()
    flipped.data = (top + 1.0) - flipped.data  # minimum spanning tree of this: maximum of c
    tree = minimum_spanning_tree(flipped).tocoo()
    rows, cols = tree.row.astype(np.int64), tree.col.astype(np.int64)
    # The capacities themselves (not top + 1 - (top + 1 - c), which rounds).
    both = np.maximum(np.asarray(sub[rows, cols]).ravel(), np.asarray(sub[cols, rows]).ravel())
    return float(both.min()), rows, cols

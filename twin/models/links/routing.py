"""Routes over the links that are up: to the ground, from users, and their load.

Latency of a link is its light time plus a per-hop delay. Routing is sparse: one
multi-source Dijkstra from every node in ground contact (the relay tree), and one per
ground user, over the links that are up (scipy.sparse.csgraph); never all pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from twin.core.constants import SPEED_OF_LIGHT_M_S


@dataclass
class RelayTree:
    """Each node's route to the ground: the shortest-latency path to a node in contact.

    Attributes:
        latency_s: (n,) one-way latency to the ground station's satellite, +inf none.
        parent: (n,) next node towards the ground, -1 at a gateway or without a route.
        parent_link: (n,) link index (into the edge arrays) to the parent, -1 none.
        relay_bps: (n,) rate a node alone could relay to the ground: the smallest link
            capacity on its path and its gateway's downlink, 0 in contact or without a route.
        depth: (n,) hops to the gateway, 0 at one or without a route.
    """

    latency_s: np.ndarray
    parent: np.ndarray
    parent_link: np.ndarray
    relay_bps: np.ndarray
    depth: np.ndarray


def link_latency_s(range_m: np.ndarray, hop_delay_s: float) -> np.ndarray:
    """Light time over the link plus the per-hop delay, s."""
    return np.asarray(range_m) / SPEED_OF_LIGHT_M_S + hop_delay_s


def _graph(n: int, a: np.ndarray, b: np.ndarray, weight: np.ndarray) -> csr_matrix:
    # Both directions; Dijkstra treats an explicit 0 as no edge, so the weights stay > 0.
    rows = np.concatenate((a, b))
    cols = np.concatenate((b, a))
    return csr_matrix((np.concatenate((weight, weight)), (rows, cols)), shape=(n, n))


def relay_tree(n: int, a: np.ndarray, b: np.ndarray, latency_s: np.ndarray,
               capacity_bps: np.ndarray, gateway_bps: np.ndarray) -> RelayTree:
    """The relay tree over links (a[k], b[k]) that are up.

    Args:
        gateway_bps: (n,) downlink rate of nodes in contact, 0 for the others.
    """
    parent = np.full(n, -1, dtype=np.int64)
    latency = np.full(n, np.inf)
    gateways = np.flatnonzero(gateway_bps > 0.0)
    latency[gateways] = 0.0
    relay = np.zeros(n)
    depth = np.zeros(n, dtype=np.int64)
    parent_link = np.full(n, -1, dtype=np.int64)
    if not gateways.size or not a.size:
        return RelayTree(latency, parent, parent_link, relay, depth)
    graph = _graph(n, a, b, latency_s)
    dist, pred, source = dijkstra(graph, directed=False, indices=gateways, min_only=True,
                                  return_predecessors=True)
    latency = dist
    routed = pred >= 0
    parent[routed] = pred[routed]
    # The link to each parent: look (min, max) pairs up among the links' sorted keys.
    keys = np.minimum(a, b) * n + np.maximum(a, b)
    order = np.argsort(keys)
    child = np.flatnonzero(routed)
    wanted = np.minimum(child, parent[child]) * n + np.maximum(child, parent[child])
    parent_link[child] = order[np.searchsorted(keys, wanted, sorter=order)]
    # The bottleneck to the gateway by pointer jumping (log depth passes): each pass
    # widens what a node has seen to twice as many links above it.
    bottleneck = np.full(n, np.inf)
    bottleneck[child] = capacity_bps[parent_link[child]]
    self_index = np.arange(n)
    up = np.where(routed, parent, self_index)
    while True:
        bottleneck = np.minimum(bottleneck, bottleneck[up])
        nxt = up[up]
        if np.array_equal(nxt, up):
            break
        up = nxt
    depth = _depths(parent)
    reach = routed & (source >= 0)
    relay[reach] = np.minimum(bottleneck[reach], gateway_bps[source[reach]])
    return RelayTree(latency, parent, parent_link, relay, depth)


def _depths(parent: np.ndarray) -> np.ndarray:
    """Hops from each node to its tree's root, by pointer jumping."""
    n = parent.size
    self_index = np.arange(n)
    up = np.where(parent >= 0, parent, self_index)
    depth = (parent >= 0).astype(np.int64)  # hops from each node to ``up``
    while True:
        depth = depth + depth[up]  # a root's depth is 0
        nxt = up[up]
        if np.array_equal(nxt, up):
            return depth
        up = nxt


def link_loads(tree: RelayTree, demand_bps: np.ndarray, n_links: int) -> np.ndarray:
    """(links,) traffic each link carries when each node sends ``demand_bps`` to the ground
    along the tree: a node's link carries its own demand and all of its subtree's."""
    load = np.zeros(n_links)
    flow = np.where(tree.parent >= 0, demand_bps, 0.0).astype(float)
    if not flow.any():
        return load
    depth = tree.depth
    for level in range(int(depth.max()), 0, -1):  # deepest first: a level at a time
        at = np.flatnonzero((depth == level) & (tree.parent >= 0))
        np.add.at(flow, tree.parent[at], flow[at])
        np.add.at(load, tree.parent_link[at], flow[at])
    return load


def user_latencies(n: int, a: np.ndarray, b: np.ndarray, latency_s: np.ndarray,
                   access_latency_s: np.ndarray) -> np.ndarray:
    """(u, n) one-way latency from each ground user to every node, +inf unreachable.

    Args:
        access_latency_s: (u, n) latency of the user's up-link to each node, +inf where
            the node is below the user's elevation mask.
    """
    users = access_latency_s.shape[0]
    if not users:
        return np.zeros((0, n))
    ui, sj = np.nonzero(np.isfinite(access_latency_s))
    # Users are extra nodes with edges out only, so no route passes through the ground.
    rows = np.concatenate((a, b, n + ui))
    cols = np.concatenate((b, a, sj))
    weights = np.concatenate((latency_s, latency_s, access_latency_s[ui, sj]))
    graph = csr_matrix((weights, (rows, cols)), shape=(n + users, n + users))
    dist = dijkstra(graph, directed=True, indices=n + np.arange(users))
    return dist[:, :n]


def bisection_bps(pos_km: np.ndarray, members: np.ndarray, a: np.ndarray, b: np.ndarray,
                  capacity_bps: np.ndarray) -> float:
    """Capacity across the worst of three median cuts of ``members`` (bit/s, one way).

    The cuts are planes through the members' median along each principal axis of their
    positions; the estimate is the smallest total capacity of links crossing one. 0 for
    fewer than two members.
    """
    if members.size < 2:
        return 0.0
    inside = np.zeros(len(pos_km), dtype=bool)
    inside[members] = True
    own = inside[a] & inside[b] & (capacity_bps > 0.0)
    if not own.any():
        return 0.0
    points = pos_km[members]
    centred = points - points.mean(axis=0)
    _, axes = np.linalg.eigh(centred.T @ centred)
    best = np.inf
    for axis in axes.T:
        along = pos_km @ axis
        cut = np.median(along[members])
        crossing = own & ((along[a] <= cut) != (along[b] <= cut))
        best = min(best, float(capacity_bps[crossing].sum()))
    return best

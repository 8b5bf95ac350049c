"""Routes over the links that are up: to the ground, from users, and their load.

Latency of a link is its light time plus a per-hop delay. Routing is sparse: one
multi-source Dijkstra from every node in ground contact (the relay tree), and one per
ground user, over the links that are up (scipy.sparse.csgraph); never all pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from twin.core.constants import SPEED_OF_LIGHT_M_S


@dataclass
class RelayTree:
    """Each node's route to the ground: the shortest-latency path to a node in contact.

    The shape (``parent``, ``parent_link``, ``root``, ``depth``) is fixed when the tree is
    built; ``refresh_tree`` updates the values along it as ranges, capacities and contacts
    change, so a step between two builds costs a few passes over the nodes.

    Attributes:
        parent: (n,) next node towards the ground, -1 at a gateway or without a route.
        parent_link: (n,) index of the link to the parent, -1 none (or lost since).
        root: (n,) the gateway the route ends at, -1 none.
        depth: (n,) hops to the gateway, 0 at one or without a route.
        latency_s: (n,) one-way latency to the gateway, 0 at one, +inf without a route.
        relay_bps: (n,) rate a node alone could relay to the ground: the smallest link
            capacity on its path and its gateway's downlink, 0 in contact or without a route.
    """

    parent: np.ndarray
    parent_link: np.ndarray
    root: np.ndarray
    depth: np.ndarray
    latency_s: np.ndarray
    relay_bps: np.ndarray
    jumps: list[np.ndarray] = field(default_factory=list)
    """Pointer jumping's ancestors: pass k's ``jumps[k][i]`` is 2^k links above node i (or
    its root), kept with the shape so that a refresh does not find them again."""


def link_latency_s(range_m: np.ndarray, hop_delay_s: float) -> np.ndarray:
    """Light time over the link plus the per-hop delay, s."""
    return np.asarray(range_m) / SPEED_OF_LIGHT_M_S + hop_delay_s


def _graph(n: int, a: np.ndarray, b: np.ndarray, weight: np.ndarray) -> csr_matrix:
    # Both directions; Dijkstra treats an explicit 0 as no edge, so the weights stay > 0.
    rows = np.concatenate((a, b))
    cols = np.concatenate((b, a))
    return csr_matrix((np.concatenate((weight, weight)), (rows, cols)), shape=(n, n))


def relay_tree(n: int, a: np.ndarray, b: np.ndarray, latency_s: np.ndarray,
               capacity_bps: np.ndarray, gateway_bps: np.ndarray,
               usable: np.ndarray | None = None) -> RelayTree:
    """Build the relay tree: one multi-source Dijkstra from every node in contact.

    Args:
        a, b, latency_s, capacity_bps: The links (ends, latency s, capacity bit/s).
        gateway_bps: (n,) downlink rate of nodes in contact, 0 for the others.
        usable: (links,) links that may carry traffic (up); default all.
    """
    parent = np.full(n, -1, dtype=np.int64)
    parent_link = np.full(n, -1, dtype=np.int64)
    root = np.full(n, -1, dtype=np.int64)
    gateways = np.flatnonzero(gateway_bps > 0.0)
    root[gateways] = gateways
    tree = RelayTree(parent, parent_link, root, np.zeros(n, dtype=np.int64), np.zeros(n),
                     np.zeros(n))
    use = np.flatnonzero(np.ones(a.size, dtype=bool) if usable is None else usable)
    if gateways.size and use.size:
        graph = _graph(n, a[use], b[use], latency_s[use])
        _, pred, source = dijkstra(graph, directed=False, indices=gateways, min_only=True,
                                   return_predecessors=True)
        child = np.flatnonzero(pred >= 0)
        parent[child] = pred[child]
        root[child] = source[child]
        # The link to each parent: look (min, max) pairs up among the links' sorted keys.
        keys = np.minimum(a[use], b[use]) * n + np.maximum(a[use], b[use])
        order = np.argsort(keys)
        wanted = np.minimum(child, parent[child]) * n + np.maximum(child, parent[child])
        parent_link[child] = use[order[np.searchsorted(keys, wanted, sorter=order)]]
        tree.depth, tree.jumps = _depths(parent)
    refresh_tree(tree, latency_s, capacity_bps, np.ones(a.size, dtype=bool)
                 if usable is None else usable, gateway_bps)
    return tree


def refresh_tree(tree: RelayTree, latency_s: np.ndarray, capacity_bps: np.ndarray,
                 usable: np.ndarray, gateway_bps: np.ndarray) -> None:
    """Latency and relay rate along the tree's fixed shape, for this step's links.

    A node whose path has lost a link (or one no longer up), or whose gateway has left
    contact, has no route until the tree is built again. Pointer jumping: each pass doubles
    the stretch of path a node has summed (latency, +inf through an unusable link) or taken
    the minimum of (capacity, 0 through one), so a tree of depth D takes log2(D) passes.
    """
    n = tree.parent.size
    child = tree.parent >= 0
    link = np.where(child, tree.parent_link, -1)
    ok = child & (link >= 0)
    ok[ok] = usable[link[ok]]
    hop_s = np.zeros(n)
    bottleneck = np.full(n, np.inf)
    if latency_s.size:
        hop_s[child] = np.inf
        hop_s[ok] = latency_s[link[ok]]
        bottleneck[child] = 0.0
        bottleneck[ok] = capacity_bps[link[ok]]
    for up in tree.jumps:
        hop_s += hop_s[up]  # a root's own value is 0
        np.minimum(bottleneck, bottleneck[up], out=bottleneck)
    root = tree.root
    reached = root >= 0
    root_bps = np.zeros(n)
    root_bps[reached] = gateway_bps[root[reached]]
    routed = (root_bps > 0.0) & (hop_s < np.inf)
    in_contact = gateway_bps > 0.0
    tree.latency_s = np.where(routed, hop_s, np.inf)
    tree.latency_s[in_contact] = 0.0
    tree.relay_bps = np.where(routed & child & ~in_contact, np.minimum(bottleneck, root_bps),
                              0.0)


def remap_links(tree: RelayTree, kept: np.ndarray) -> None:
    """After links were dropped (``kept`` (links,) bool), renumber the tree's parent links;
    a dropped one becomes -1, and ``refresh_tree`` then cuts the routes through it."""
    new_index = np.cumsum(kept) - 1
    link = tree.parent_link
    has = link >= 0
    survived = np.zeros(link.size, dtype=bool)
    survived[has] = kept[link[has]]
    tree.parent_link = np.where(survived, new_index[np.maximum(link, 0)], -1)


def _depths(parent: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Hops from each node to its tree's root, and pointer jumping's passes (``jumps``)."""
    n = parent.size
    self_index = np.arange(n)
    up = np.where(parent >= 0, parent, self_index)
    depth = (parent >= 0).astype(np.int64)  # hops from each node to ``up``
    jumps = []
    while True:
        jumps.append(up)
        depth = depth + depth[up]  # a root's depth is 0
        nxt = up[up]
        if np.array_equal(nxt, up):
            return depth, jumps
        up = nxt


def link_loads(tree: RelayTree, demand_bps: np.ndarray, n_links: int) -> np.ndarray:
    """(links,) traffic each link carries when each node sends ``demand_bps`` to the ground
    along the tree: a node's link carries its own demand and all of its subtree's."""
    load = np.zeros(n_links)
    flow = np.where((tree.parent >= 0) & (tree.relay_bps > 0.0), demand_bps, 0.0)
    if not flow.any():
        return load
    depth = tree.depth
    for level in range(int(depth.max()), 0, -1):  # deepest first: a level at a time
        at = np.flatnonzero((depth == level) & (flow > 0.0))
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
    positions (an axis along which they do not spread is skipped); the estimate is the
    smallest total capacity of links crossing one. 0 for fewer than two members.
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
        below = int(np.count_nonzero(along[members] <= cut))
        if below in (0, members.size):  # no spread along this axis: no cut there
            continue
        crossing = own & ((along[a] <= cut) != (along[b] <= cut))
        best = min(best, float(capacity_bps[crossing].sum()))
    return 0.0 if best == np.inf else best

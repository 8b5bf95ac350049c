"""Which links exist: the link table, its upkeep, and the search for new links.

Links are kept while they stay feasible (both ends healthy, line of sight, range within the
terminal's limit), so the topology is stable; the search only fills free terminals, on a
schedule (``search_interval_s``). Two patterns (docs/models.md):

- **nearest** (clusters): each node offers its free terminals to its nearest feasible
  neighbours (a k-d tree query), and a link forms where two nodes offer to each other.
- **+Grid** (shells): terminal 0 links to the next node ahead in the same orbit plane,
  terminal 1 to the one behind, terminals 2 and 3 to the nearest co-rotating node of
  another plane on each side. Planes are found from the orbit normals (RAAN and
  inclination, read from each node's state now, so TLE catalogs work as generated shells
  do): buckets of inclination and RAAN ``plane_tolerance_deg`` wide (``orbit_planes``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from twin.models.links.geometry import line_of_sight

FORE, AFT, RIGHT, LEFT = range(4)
GRID_DIRECTIONS = 4
# Cross-plane partners move the same way round: normals within 75°, not a counter-rotating
# plane crossing at kilometres per second.
CO_ROTATING_COS = float(np.cos(np.radians(75.0)))
NEAREST_CANDIDATES = 6  # more than the free terminals, to skip infeasible neighbours
CROSS_CANDIDATES = 12


@dataclass
class Proposed:
    """New links: ends ``a`` < ``b`` and the terminal slot each uses."""

    a: np.ndarray
    b: np.ndarray
    slot_a: np.ndarray
    slot_b: np.ndarray

    @classmethod
    def none(cls) -> Proposed:
        empty = np.zeros(0, dtype=np.int64)
        return cls(empty, empty, empty, empty)


class LinkTable:
    """The links now, as edge arrays (one row per link) and per-node terminal slots."""

    def __init__(self, n_nodes: int, terminals: int) -> None:
        self.n = n_nodes
        self.terminals = terminals
        self.peer = np.full((n_nodes, terminals), -1, dtype=np.int64)
        empty_i = np.zeros(0, dtype=np.int64)
        self.a, self.b, self.slot_a, self.slot_b = empty_i, empty_i, empty_i, empty_i
        self.start_t = np.zeros(0)
        self.version = 0  # bumped at every change of the set

    @property
    def size(self) -> int:
        return int(self.a.size)

    def keep(self, mask: np.ndarray) -> None:
        """Drop the links where ``mask`` is False."""
        if mask.all():
            return
        gone = ~mask
        self.peer[self.a[gone], self.slot_a[gone]] = -1
        self.peer[self.b[gone], self.slot_b[gone]] = -1
        self.a, self.b = self.a[mask], self.b[mask]
        self.slot_a, self.slot_b = self.slot_a[mask], self.slot_b[mask]
        self.start_t = self.start_t[mask]
        self.version += 1

    def add(self, new: Proposed, t_utc: float) -> None:
        if not new.a.size:
            return
        self.peer[new.a, new.slot_a] = new.b
        self.peer[new.b, new.slot_b] = new.a
        self.a = np.concatenate((self.a, new.a))
        self.b = np.concatenate((self.b, new.b))
        self.slot_a = np.concatenate((self.slot_a, new.slot_a))
        self.slot_b = np.concatenate((self.slot_b, new.slot_b))
        self.start_t = np.concatenate((self.start_t, np.full(new.a.size, t_utc)))
        self.version += 1

    def keys(self) -> np.ndarray:
        """One number per link, ``a n + b`` (a < b), sorted or not as the table is."""
        return self.a * self.n + self.b


def _pair_keys(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    return np.minimum(a, b) * n + np.maximum(a, b)


def orbit_planes(pos_km: np.ndarray, vel_km_s: np.ndarray, tolerance_deg: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Plane label, unit orbit normal and argument of latitude (rad) of each node.

    Planes are buckets of inclination and RAAN (read from the normal ``h = r × v`` now):
    sorted by inclination, nodes split where consecutive inclinations differ by more than
    ``tolerance_deg``; within such a band, sorted by RAAN, where consecutive RAANs differ
    by more than the tolerance over sin(i) (the angle between the normals), the RAAN
    circle's ends joined. Sorting only: O(n log n).
    """
    n = len(pos_km)
    h = np.cross(pos_km, vel_km_s)
    h /= np.maximum(np.linalg.norm(h, axis=1, keepdims=True), 1e-12)
    tol = np.radians(tolerance_deg)
    inc = np.arccos(np.clip(h[:, 2], -1.0, 1.0))
    raan = np.arctan2(h[:, 0], -h[:, 1]) % (2.0 * np.pi)
    by_inc = np.argsort(inc, kind="stable")
    band = np.empty(n, dtype=np.int64)
    band[by_inc] = np.cumsum(np.r_[0, np.diff(inc[by_inc]) > tol])
    order = np.lexsort((raan, band))
    sorted_band, sorted_raan = band[order], raan[order]
    gap_limit = tol / np.maximum(np.sin(inc[order]), tol)  # RAAN is loose near i = 0
    new_band = np.r_[True, sorted_band[1:] != sorted_band[:-1]]
    split = new_band | np.r_[False, np.diff(sorted_raan) > gap_limit[1:]]
    label_sorted = np.cumsum(split) - 1
    # Join the RAAN circle's ends: a band's last plane is its first when they nearly meet.
    starts = np.flatnonzero(new_band)
    ends = np.r_[starts[1:], n] - 1
    wrap = (sorted_raan[starts] + 2.0 * np.pi - sorted_raan[ends] <= gap_limit[starts]) & (
        label_sorted[starts] != label_sorted[ends])
    for first, last in zip(starts[wrap].tolist(), ends[wrap].tolist(), strict=True):
        label_sorted[label_sorted == label_sorted[last]] = label_sorted[first]  # a few bands
    labels = np.empty(n, dtype=np.int64)
    labels[order] = label_sorted
    # Ascending node n̂ = ẑ × ĥ; u measured from it towards ĥ × n̂, in the direction of motion.
    node = np.stack((-h[:, 1], h[:, 0], np.zeros(n)), axis=1)
    node_norm = np.linalg.norm(node, axis=1, keepdims=True)
    node = np.where(node_norm > 1e-9, node / np.maximum(node_norm, 1e-12), [1.0, 0.0, 0.0])
    across = np.cross(h, node)
    u = np.arctan2(np.einsum("ij,ij->i", pos_km, across), np.einsum("ij,ij->i", pos_km, node))
    return labels, h, u


class LinkSearch:
    """Finds new links for free terminals (see the module docstring).

    Args:
        terminals: Terminals per node.
        pattern: ``auto``, ``grid`` or ``nearest``.
        cluster_distance_m: In ``auto``, a node with a neighbour this close is in a cluster.
        plane_tolerance_deg: Normals this close share a plane.
        max_range_m: The terminal's range limit.
        grazing_height_km: Line of sight clears the Earth by this much.
    """

    def __init__(self, terminals: int, pattern: str, cluster_distance_m: float,
                 plane_tolerance_deg: float, max_range_m: float,
                 grazing_height_km: float) -> None:
        self.terminals = terminals
        self.pattern = pattern
        self.cluster_distance_km = cluster_distance_m / 1e3
        self.plane_tolerance_deg = plane_tolerance_deg
        self.max_range_km = max_range_m / 1e3
        self.grazing_height_km = grazing_height_km
        self.n_clustered = 0  # nodes the last search linked by nearest neighbours

    def search(self, table: LinkTable, pos_km: np.ndarray, vel_km_s: np.ndarray,
               ok: np.ndarray) -> Proposed:
        """New links for the free terminals of healthy nodes (``ok``)."""
        n = table.n
        free = (table.peer < 0) & ok[:, None]
        if n < 2 or not free.any():
            return Proposed.none()
        healthy = np.flatnonzero(ok)
        tree = cKDTree(pos_km[healthy])
        k = min(max(NEAREST_CANDIDATES, self.terminals + 2, CROSS_CANDIDATES) + 1, healthy.size)
        # Candidates only for nodes with a free terminal: a full node accepts nothing.
        needs = free[healthy].any(axis=1)
        dist = np.full((healthy.size, k - 1), np.inf)
        idx = np.full((healthy.size, k - 1), healthy.size)
        got_dist, got_idx = tree.query(pos_km[healthy[needs]], k=k,
                                       distance_upper_bound=self.max_range_km)
        dist[needs], idx[needs] = got_dist[:, 1:], got_idx[:, 1:]  # drop each node itself
        found = idx < healthy.size
        neighbour = np.full(idx.shape, -1, dtype=np.int64)
        neighbour[found] = healthy[idx[found]]
        if self.pattern == "nearest" or self.terminals < 2:  # +Grid pairs two terminals
            clustered = np.ones(healthy.size, dtype=bool)
        elif self.pattern == "grid":
            clustered = np.zeros(healthy.size, dtype=bool)
        else:  # a node in a cluster has a neighbour this close (full nodes asked too)
            nearest_km = np.full(healthy.size, np.inf)
            nearest_km[needs] = dist[needs, 0]
            if (~needs).any():
                nearest_km[~needs] = tree.query(pos_km[healthy[~needs]], k=2)[0][:, 1]
            clustered = nearest_km <= self.cluster_distance_km
        self.n_clustered = int(np.count_nonzero(clustered))
        mode = np.zeros(n, dtype=np.int8)  # 0 unhealthy, 1 cluster, 2 grid
        mode[healthy] = np.where(clustered, 1, 2)
        linked = np.sort(table.keys())
        parts = []
        if clustered.any():
            parts.append(self._nearest(table, pos_km, healthy[clustered],
                                       neighbour[clustered], mode, linked))
        if (~clustered).any():
            parts.append(self._grid(table, pos_km, vel_km_s, healthy[~clustered],
                                    neighbour[~clustered], mode, linked))
        return Proposed(*(np.concatenate([getattr(p, f) for p in parts])
                          for f in ("a", "b", "slot_a", "slot_b")))

    # ---- the patterns

    def _feasible(self, pos_km: np.ndarray, a: np.ndarray, b: np.ndarray,
                  linked: np.ndarray, n: int) -> np.ndarray:
        """Line of sight, and not linked already."""
        clear = line_of_sight(pos_km[a], pos_km[b], self.grazing_height_km)
        if not linked.size:
            return clear
        keys = _pair_keys(a, b, n)
        pos = np.searchsorted(linked, keys)
        already = (pos < linked.size) & (linked[np.minimum(pos, linked.size - 1)] == keys)
        return ~already & clear

    def _nearest(self, table: LinkTable, pos_km: np.ndarray, nodes: np.ndarray,
                 neighbour: np.ndarray, mode: np.ndarray, linked: np.ndarray) -> Proposed:
        n = table.n
        rows = np.repeat(nodes, neighbour.shape[1])
        cand = neighbour.ravel()
        valid = cand >= 0
        valid[valid] = mode[cand[valid]] == 1
        valid[valid] = self._feasible(pos_km, rows[valid], cand[valid], linked, n)
        valid = valid.reshape(neighbour.shape)
        # Offer the free terminals to the nearest valid neighbours, nearest first.
        n_free = np.count_nonzero(table.peer[nodes] < 0, axis=1)
        rank = np.cumsum(valid, axis=1) - 1
        offer = valid & (rank < n_free[:, None])
        a = rows[offer.ravel()]
        b = neighbour[offer]
        return _mutual_any_slot(table, a, b)

    def _grid(self, table: LinkTable, pos_km: np.ndarray, vel_km_s: np.ndarray,
              nodes: np.ndarray, neighbour: np.ndarray, mode: np.ndarray,
              linked: np.ndarray) -> Proposed:
        n = table.n
        directions = min(GRID_DIRECTIONS, self.terminals)
        labels, normal, u = orbit_planes(pos_km[nodes], vel_km_s[nodes],
                                         self.plane_tolerance_deg)
        choice = np.full((nodes.size, GRID_DIRECTIONS), -1, dtype=np.int64)
        # In plane: the next node by argument of latitude, cyclic within the plane.
        order = np.lexsort((u, labels))
        sorted_labels = labels[order]
        start = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
        size = np.diff(np.r_[start, order.size])
        group = np.repeat(np.arange(start.size), size)
        place = np.arange(order.size) - start[group]
        ahead = order[start[group] + (place + 1) % size[group]]
        fore = np.empty(nodes.size, dtype=np.int64)
        fore[order] = ahead
        fore[np.repeat(size, size)[np.argsort(order)] < 2] = -1
        aft = np.full(nodes.size, -1, dtype=np.int64)
        has = fore >= 0
        aft[fore[has]] = np.flatnonzero(has)  # a plane of two: both ways, linked once below
        choice[:, FORE] = np.where(fore >= 0, nodes[np.maximum(fore, 0)], -1)
        choice[:, AFT] = np.where(aft >= 0, nodes[np.maximum(aft, 0)], -1)
        # Across planes: the nearest co-rotating node of another plane on each side, for
        # the nodes with a cross-plane terminal free (the others accept nothing).
        local = np.full(n, -1, dtype=np.int64)
        local[nodes] = np.arange(nodes.size)
        if directions > RIGHT:
            rows = np.flatnonzero((table.peer[nodes, RIGHT:directions] < 0).any(axis=1))
            cand = neighbour[rows]
            cand_local = np.where(cand >= 0, local[np.maximum(cand, 0)], -1)
            usable = cand_local >= 0
            safe = np.maximum(cand_local, 0)
            usable &= labels[safe] != labels[rows, None]
            usable &= np.einsum("ij,ikj->ik", normal[rows], normal[safe]) > CO_ROTATING_COS
            offset = pos_km[np.maximum(cand, 0)] - pos_km[nodes[rows]][:, None]
            side = np.einsum("ikj,ij->ik", offset, normal[rows])
            every = np.arange(rows.size)
            for direction, wanted in ((RIGHT, side > 0.0), (LEFT, side <= 0.0)):
                pick = usable & wanted
                first = np.argmax(pick, axis=1)
                choice[rows, direction] = np.where(pick[every, first], cand[every, first], -1)
        # A link forms where both ends choose each other in opposite directions, into free
        # terminals, with line of sight and within range.
        opposite = np.array([AFT, FORE, LEFT, RIGHT])
        parts_a, parts_b, parts_sa, parts_sb = [], [], [], []
        peer = table.peer
        for direction in range(directions):
            back = opposite[direction]
            if back >= directions:
                continue
            a = nodes
            b = choice[:, direction]
            keep = (b >= 0) & (peer[a, direction] < 0)
            a, b = a[keep], b[keep]
            keep = (local[b] >= 0) & (peer[b, back] < 0)
            keep[keep] = choice[local[b[keep]], back] == a[keep]
            a, b = a[keep], b[keep]
            keep = a < b  # each pair once (the other end finds the same pair)
            a, b = a[keep], b[keep]
            d_km = np.linalg.norm(pos_km[a] - pos_km[b], axis=1)
            keep = (d_km <= self.max_range_km) & self._feasible(pos_km, a, b, linked, n)
            parts_a.append(a[keep])
            parts_b.append(b[keep])
            parts_sa.append(np.full(np.count_nonzero(keep), direction, dtype=np.int64))
            parts_sb.append(np.full(np.count_nonzero(keep), back, dtype=np.int64))
        if not parts_a:
            return Proposed.none()
        found = Proposed(*(np.concatenate(p) for p in (parts_a, parts_b, parts_sa, parts_sb)))
        # A pair chosen twice (fore and right of each other) links once.
        _, first = np.unique(_pair_keys(found.a, found.b, n), return_index=True)
        return Proposed(found.a[first], found.b[first], found.slot_a[first],
                        found.slot_b[first])


def _mutual_any_slot(table: LinkTable, a: np.ndarray, b: np.ndarray) -> Proposed:
    """Offers a→b kept where b→a was offered too, each end given its next free slot."""
    n = table.n
    offered = a * n + b
    back = b * n + a
    mutual = np.isin(offered, back) & (a < b)
    a, b = a[mutual], b[mutual]
    if not a.size:
        return Proposed.none()
    ends = np.concatenate((a, b))
    order = np.argsort(ends, kind="stable")
    sorted_ends = ends[order]
    first = np.r_[True, sorted_ends[1:] != sorted_ends[:-1]]
    rank_sorted = np.arange(ends.size) - np.maximum.accumulate(
        np.where(first, np.arange(ends.size), 0))
    rank = np.empty(ends.size, dtype=np.int64)
    rank[order] = rank_sorted
    # Each node's free slots, lowest first (a stable sort puts unused terminals first).
    free_first = np.argsort(table.peer[ends] >= 0, axis=1, kind="stable")
    slots = free_first[np.arange(ends.size), rank]
    return Proposed(a, b, slots[:a.size], slots[a.size:])

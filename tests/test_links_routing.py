"""Link routing against networkx shortest paths (networkx: a test dependency only)."""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pytest

from twin.models.links.routing import (
    link_loads,
    refresh_tree,
    relay_tree,
    remap_links,
    user_latencies,
)


def random_graph(seed: int, n: int = 150, degree: float = 4.0
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Links of a random graph: ends, latencies (s) and capacities (bit/s), no repeats."""
    rng = np.random.default_rng(seed)
    m = int(n * degree / 2)
    a = rng.integers(0, n, m)
    b = rng.integers(0, n, m)
    keep = a != b
    keys = np.unique(np.minimum(a, b)[keep] * n + np.maximum(a, b)[keep])
    a, b = keys // n, keys % n
    latency = rng.uniform(1e-4, 2e-2, a.size)
    capacity = rng.uniform(1e9, 1e11, a.size)
    return a, b, latency, capacity


def reference_graph(a: np.ndarray, b: np.ndarray, latency: np.ndarray) -> nx.Graph:
    graph = nx.Graph()
    graph.add_weighted_edges_from(zip(a.tolist(), b.tolist(), latency.tolist(), strict=True))
    return graph


def check_tree(n: int, a: np.ndarray, b: np.ndarray, latency: np.ndarray,
               capacity: np.ndarray, gateway_bps: np.ndarray) -> None:
    tree = relay_tree(n, a, b, latency, capacity, gateway_bps)
    graph = reference_graph(a, b, latency)
    graph.add_nodes_from(range(n))
    gateways = set(np.flatnonzero(gateway_bps > 0).tolist())
    dist, paths = nx.multi_source_dijkstra(graph, gateways)
    cap = {(min(u, v), max(u, v)): c for u, v, c in zip(a.tolist(), b.tolist(),
                                                         capacity.tolist(), strict=True)}
    for node in range(n):
        if node not in dist:
            assert tree.latency_s[node] == np.inf and tree.relay_bps[node] == 0.0
            continue
        assert tree.latency_s[node] == pytest.approx(dist[node], rel=1e-12, abs=1e-15)
        path = paths[node]  # gateway ... node
        if len(path) == 1:
            assert tree.relay_bps[node] == 0.0 and tree.depth[node] == 0
            continue
        bottleneck = min(cap[(min(u, v), max(u, v))] for u, v in itertools.pairwise(path))
        expected = min(bottleneck, gateway_bps[path[0]])
        assert tree.relay_bps[node] == pytest.approx(expected, rel=1e-12)
        assert tree.depth[node] == len(path) - 1
    # Loads: each node's demand crosses every link on its path.
    demand = np.where(np.isfinite(tree.latency_s) & (tree.depth > 0), 1.0 + np.arange(n), 0.0)
    load = link_loads(tree, demand, a.size)
    expected_load = np.zeros(a.size)
    index = {(min(u, v), max(u, v)): k for k, (u, v) in enumerate(zip(a.tolist(), b.tolist(),
                                                                       strict=True))}
    for node in range(n):
        if demand[node] > 0:
            path = paths[node]
            for u, v in itertools.pairwise(path):
                expected_load[index[(min(u, v), max(u, v))]] += demand[node]
    np.testing.assert_allclose(load, expected_load, rtol=1e-12)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_relay_tree_matches_networkx_on_random_graphs(seed: int) -> None:
    n = 150
    a, b, latency, capacity = random_graph(seed, n, degree=2.5 + seed)
    rng = np.random.default_rng(seed + 100)
    gateway_bps = np.where(rng.random(n) < 0.05, rng.uniform(5e8, 2e9, n), 0.0)
    check_tree(n, a, b, latency, capacity, gateway_bps)


def test_no_gateway_or_no_link_leaves_every_node_without_a_route() -> None:
    a, b, latency, capacity = random_graph(9, 30)
    tree = relay_tree(30, a, b, latency, capacity, np.zeros(30))
    assert np.isinf(tree.latency_s).all() and not tree.relay_bps.any()


@pytest.mark.parametrize("seed", [5, 6])
def test_user_latencies_match_networkx_and_never_route_through_the_ground(seed: int) -> None:
    n, users = 120, 3
    a, b, latency, _ = random_graph(seed, n, degree=3.0)
    rng = np.random.default_rng(seed)
    access = np.where(rng.random((users, n)) < 0.05, rng.uniform(2e-3, 5e-3, (users, n)),
                      np.inf)
    got = user_latencies(n, a, b, latency, access)
    graph = nx.DiGraph()
    graph.add_nodes_from(range(n + users))
    for u, v, w in zip(a.tolist(), b.tolist(), latency.tolist(), strict=True):
        graph.add_edge(u, v, weight=w)
        graph.add_edge(v, u, weight=w)
    for user in range(users):
        for node in np.flatnonzero(np.isfinite(access[user])).tolist():
            graph.add_edge(n + user, node, weight=float(access[user, node]))
    for user in range(users):
        dist = nx.single_source_dijkstra_path_length(graph, n + user)
        expected = np.array([dist.get(k, np.inf) for k in range(n)])
        np.testing.assert_allclose(got[user], expected, rtol=1e-12)


def test_refresh_follows_new_capacities_and_cuts_lost_links_and_gateways() -> None:
    n = 150
    a, b, latency, capacity = random_graph(11, n, degree=4.0)
    rng = np.random.default_rng(12)
    gateway_bps = np.where(rng.random(n) < 0.05, 1e9, 0.0)
    tree = relay_tree(n, a, b, latency, capacity, gateway_bps)
    # New capacities, same latencies (so the same tree): a refresh equals a fresh build.
    capacity2 = capacity * rng.uniform(0.5, 1.5, capacity.size)
    refresh_tree(tree, latency, capacity2, np.ones(a.size, dtype=bool), gateway_bps)
    fresh = relay_tree(n, a, b, latency, capacity2, gateway_bps)
    np.testing.assert_array_equal(tree.relay_bps, fresh.relay_bps)
    np.testing.assert_allclose(tree.latency_s, fresh.latency_s, rtol=1e-12)
    # Drop the link a deep node hangs from: it and its subtree lose their route.
    node = int(np.argmax(tree.depth))
    lost = tree.parent_link[node]
    kept = np.ones(a.size, dtype=bool)
    kept[lost] = False
    remap_links(tree, kept)
    refresh_tree(tree, latency[kept], capacity2[kept], np.ones(kept.sum(), dtype=bool),
                 gateway_bps)
    assert tree.relay_bps[node] == 0.0 and tree.latency_s[node] == np.inf
    cut = ~np.isfinite(tree.latency_s) & np.isfinite(fresh.latency_s)
    assert cut.sum() >= 1
    still = np.isfinite(tree.latency_s)
    np.testing.assert_allclose(tree.latency_s[still], fresh.latency_s[still], rtol=1e-12)
    # A gateway leaving contact cuts the routes that end at it.
    gateway = int(tree.root[still & (tree.depth > 0)][0])
    gone = gateway_bps.copy()
    gone[gateway] = 0.0
    refresh_tree(tree, latency[kept], capacity2[kept], np.ones(kept.sum(), dtype=bool), gone)
    assert not tree.relay_bps[tree.root == gateway].any()

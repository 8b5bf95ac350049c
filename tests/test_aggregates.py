"""Fleet aggregates (twin.runtime.aggregates) against numpy on the full arrays."""

from __future__ import annotations

import numpy as np
import pytest

from tests.twinutil import make_server
from twin.runtime.aggregates import (
    HISTOGRAM_BINS,
    PERCENTILES,
    TOP_N,
    FleetAggregates,
    limit_edges,
)


@pytest.fixture(scope="module")
def server():
    twin = make_server("default")
    yield twin
    twin.close()


def _check_summary(summary: dict, values: np.ndarray, nodes: np.ndarray, edges: list,
                   limits: dict) -> None:
    finite = np.isfinite(values)
    kept, kept_nodes = values[finite], nodes[finite]
    assert summary["count"] == kept.size
    assert summary["nan"] == values.size - kept.size
    if kept.size == 0:
        assert summary["min"] is summary["p50"] is summary["mean"] is None
        assert summary["worst"] == summary["highest"] == summary["lowest"] == []
        assert sum(summary["hist"]) == 0
        return
    assert summary["min"] == pytest.approx(kept.min(), rel=0, abs=0)
    assert summary["max"] == pytest.approx(kept.max(), rel=0, abs=0)
    assert summary["mean"] == pytest.approx(kept.mean(), rel=1e-12)
    for q in PERCENTILES:
        assert summary[f"p{q}"] == np.percentile(kept, q, method="nearest"), q
    counts, _ = np.histogram(kept, bins=np.asarray(edges))
    lo, hi = edges[0], edges[-1]
    assert summary["hist"] == counts.tolist()
    assert summary["under"] == int((kept < lo).sum())
    assert summary["over"] == int((kept > hi).sum())
    if limits:
        alarm = np.zeros(kept.shape, bool)
        warn = np.zeros(kept.shape, bool)
        for key, arr in (("alarm", alarm), ("warn", warn)):
            if f"{key}_high" in limits:
                arr |= kept > limits[f"{key}_high"]
            if f"{key}_low" in limits:
                arr |= kept < limits[f"{key}_low"]
        assert summary["states"] == {"alarm": int(alarm.sum()),
                                     "warn": int((warn & ~alarm).sum()),
                                     "ok": int((~warn & ~alarm).sum())}
        # Worst: the smallest margin to the nearest limit (warning, else alarm) in units
        # of the band between the limits (one side only: the warning-to-alarm span).
        high = limits.get("warn_high", limits.get("alarm_high"))
        low = limits.get("warn_low", limits.get("alarm_low"))
        if high is not None and low is not None:
            scale = high - low
        else:
            side, limit = ("high", high) if high is not None else ("low", low)
            scale = abs(limits.get(f"alarm_{side}", limit) - limit) or abs(limit) or 1.0
        margin = np.minimum(kept - low if low is not None else np.inf,
                            high - kept if high is not None else np.inf) / scale
        bad = -margin
    else:
        bad = kept
    top = min(TOP_N, kept.size)
    for key, rank in (("worst", bad), ("highest", kept), ("lowest", -kept)):
        order = np.lexsort((kept_nodes, -rank))[:top]
        assert len(summary[key]) == top, key
        assert [w[0] for w in summary[key]] == kept_nodes[order].tolist(), key
        assert [w[1] for w in summary[key]] == kept[order].tolist(), key


def test_aggregates_match_numpy_on_the_full_arrays(server) -> None:
    engine = server.engine
    for _ in range(3):
        engine.step()
    aggregates = server.streams.aggregates
    fields = {f.spec.name: f for f in aggregates.fields}
    # Stress the edges: NaN nodes, values past limits, a constant field.
    temp = fields["temp_compute_k"].array
    temp[0], temp[3], temp[5], temp[7] = np.nan, np.nan, np.inf, 500.0
    temp[11] = 100.0
    body = aggregates.compute()
    groups = np.array([s.group for s in engine.scenario.satellites])
    assert body["groups"] == list(dict.fromkeys(groups.tolist()))
    assert len(body["groups"]) >= 2
    assert {"temp_compute_k", "soc_frac", "utilization_frac", "delivered_flop_s",
            "compute_power_w"} <= body["fields"].keys()
    _check_body(body, fields, groups)
    # Groups interleaved (nodes not listed group by group), one of a single node.
    mixed = [("abc"[k % 3] if k else "solo") for k in range(engine.n_sats)]
    interleaved = FleetAggregates(engine.fields, mixed)
    assert not interleaved.grouped_already
    _check_body(interleaved.compute(), fields, np.array(mixed))


def _check_body(body: dict, fields: dict, groups: np.ndarray) -> None:
    nodes = np.arange(groups.size)
    for name, entry in body["fields"].items():
        values = fields[name].array.astype(np.float64)
        limits = fields[name].spec.limits
        low, high = limit_edges(limits)
        assert len(entry["edges"]) == HISTOGRAM_BINS + 1
        if low is not None:
            assert entry["edges"][0] == low
        if high is not None:
            assert entry["edges"][-1] == high
        _check_summary(entry["fleet"], values, nodes, entry["edges"], limits)
        for group in body["groups"]:
            members = groups == group
            _check_summary(entry["groups"][group], values[members], nodes[members],
                           entry["edges"], limits)
    worst = body["fields"]["temp_compute_k"]["fleet"]["worst"]
    assert [node for node, _ in worst[:2]] == [11, 7]  # 100 K is further past a limit


def test_aggregates_on_threads_are_the_same_body_for_any_worker_count() -> None:
    from tests.test_shards import _walker_fleet
    from twin.core.clock import SimClock
    from twin.core.engine import Engine
    from twin.runtime.aggregates import PARALLEL_MIN_SATS

    scenario = _walker_fleet(PARALLEL_MIN_SATS + 2016)  # two groups, past the threshold
    engine = Engine(scenario, SimClock(scenario.epoch_utc, rate_hz=1.0, warp=60.0, fast=True))
    try:
        engine.step()
        fields = {f.spec.name: f for f in engine.fields}
        fields["temp_compute_k"].array[[5, 9000]] = np.nan  # the left-out path too
        fields["soc_frac"].array[17] = np.inf
        groups = [s.group for s in scenario.satellites]
        bodies = []
        for workers in (1, 2, 3):
            aggregates = FleetAggregates(engine.fields, groups, workers=workers)
            assert (aggregates._pool is None) == (workers == 1)  # threads past the size
            bodies.append(aggregates.compute())
            bodies.append(aggregates.compute())  # again, with the bins cached
            aggregates.close()
        assert all(body == bodies[0] for body in bodies[1:])
        members_of = np.array(groups)
        nodes = np.arange(members_of.size)
        for name, entry in bodies[0]["fields"].items():
            values, limits = fields[name].array.astype(np.float64), fields[name].spec.limits
            _check_summary(entry["fleet"], values, nodes, entry["edges"], limits)
            for group in bodies[0]["groups"]:
                members = members_of == group
                _check_summary(entry["groups"][group], values[members], nodes[members],
                               entry["edges"], limits)
    finally:
        engine.close()

def test_a_few_fields_at_a_time_give_the_same_body(server, monkeypatch) -> None:
    """A million nodes' fields are aggregated a few at a time (their working set)."""
    import twin.runtime.aggregates as aggregates_module

    aggregates = server.streams.aggregates
    fields = {f.spec.name: f for f in aggregates.fields}
    fields["temp_compute_k"].array[2] = np.nan  # a batch with and one without NaN
    whole = aggregates.compute()
    monkeypatch.setattr(aggregates_module, "BATCH_ELEMENTS", 2 * server.engine.n_sats)
    assert aggregates.compute() == whole


@pytest.mark.parametrize("many_equal", [0, 4096, 10**9])
def test_highest_and_lowest_with_many_equal_values_match_numpy(monkeypatch, many_equal) -> None:
    """Rows where most values are equal (an idle fleet's heaters, all zero), NaN, ties at
    the threshold and fewer values than top_n: the lists are numpy's sort, found by the
    prefix scan (many equal) and by the one comparison (few) alike."""
    import twin.runtime.aggregates as aggregates_module

    monkeypatch.setattr(aggregates_module, "MANY_EQUAL", many_equal)
    rng = np.random.default_rng(7)
    n = 20_000
    rows = np.zeros((4, n), np.float32)
    rows[0, rng.integers(0, n, 30)] = rng.uniform(1, 3, 30).round(1)  # zeros, a few ties
    rows[0, -3:] = 9.0  # the highest tie at the end
    rows[1] = rng.normal(0, 1, n).round(2)
    rows[1, rng.random(n) < 0.1] = np.nan
    rows[2] = np.nan
    rows[2, [5, 19_000]] = (4.0, -4.0)  # fewer values than top_n
    rows[3] = -1.0
    rows[3, :7] = np.nan
    nodes = np.arange(n) * 3 + 1  # columns are nodes in ascending order
    counts = np.isfinite(rows).sum(axis=1)
    highest, lowest = aggregates_module._extremes(rows, np.sort(rows, axis=1), counts, nodes,
                                                  TOP_N)
    for f in range(rows.shape[0]):
        finite = np.flatnonzero(np.isfinite(rows[f]))
        values = rows[f, finite]
        for got, key in ((highest[f], -values), (lowest[f], values)):
            order = finite[np.lexsort((finite, key))][:TOP_N]
            assert got == [[int(nodes[c]), float(rows[f, c])] for c in order], f

"""viz.fleet_stats against brute-force loops over nodes on random fleets (with NaN, ties,
infinities and groups of one)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from viz.fleet_stats import (
    HIGHEST,
    LOWEST,
    NEAREST,
    ORDERS,
    GroupIndex,
    WorstRule,
    group_summary,
    histogram,
    worst_nodes,
    worst_rule,
)

COMPUTE_LIMITS_K = {"alarm_low": 273.15, "warn_low": 278.15, "warn_high": 353.15,
                    "alarm_high": 358.15}


def random_fleet(seed: int, n: int) -> tuple[list[str], np.ndarray]:
    """Group names (one group of a single node) and values with NaN, ties and infinities."""
    rng = np.random.default_rng(seed)
    groups = [f"shell-{k}" for k in rng.integers(0, 5, n)]
    groups[n // 2] = "lonely"
    values = rng.normal(320.0, 25.0, n).round(1)  # rounded: many ties
    values[rng.random(n) < 0.05] = np.nan
    values[rng.integers(0, n)] = np.inf
    return groups, values


def reference_score(value: float, limits: dict[str, float], order: str) -> float:
    """Written out for one value: minus the margin to the nearest warning (else alarm)
    limit in units of the band, or the value itself."""
    if not math.isfinite(value):
        return -math.inf
    low = limits.get("warn_low", limits.get("alarm_low"))
    high = limits.get("warn_high", limits.get("alarm_high"))
    if order == NEAREST and (low is not None or high is not None):
        if low is not None and high is not None:
            return -min(value - low, high - value) / (high - low)
        side, limit = ("high", high) if high is not None else ("low", low)
        scale = abs(limits.get(f"alarm_{side}", limit) - limit) or abs(limit) or 1.0
        return -(value - limit if side == "low" else limit - value) / scale
    return -value if order == LOWEST else value


def test_worst_rule_reads_the_limits() -> None:
    high = worst_rule({"warn_high": 80.0, "alarm_high": 90.0})
    assert (high.band.low, high.band.high, high.band.scale) == (-math.inf, 80.0, 10.0)
    assert worst_rule({"warn_low": 0.3, "alarm_low": 0.2}).band.low == 0.3
    band = worst_rule(COMPUTE_LIMITS_K).band
    assert (band.low, band.high, band.scale) == (278.15, 353.15, 75.0)  # warning limits
    assert worst_rule({"alarm_low": 1.0, "alarm_high": 3.0}).band.low == 1.0
    assert worst_rule({}).band is None and worst_rule({}, HIGHEST).order == HIGHEST
    with pytest.raises(ValueError, match="order 'hottest' is none of nearest, highest"):
        worst_rule({}, "hottest")


def test_nearest_a_limit_is_the_smaller_margin_not_the_hotter_node() -> None:
    """Compute's warning band is 5..80 °C: an idle chip at 24.8 °C has 19.8 K left to its
    cold limit, a busy one at 50 °C 30 K to its hot limit, so the idle one is nearer; at
    70 °C (10 K left) the busy one is."""
    temps = np.array([50.0, 24.8, 70.0]) + 273.15
    assert worst_nodes(temps, worst_rule(COMPUTE_LIMITS_K), 3).tolist() == [2, 1, 0]
    assert worst_nodes(temps, worst_rule(COMPUTE_LIMITS_K, HIGHEST), 3).tolist() == [2, 0, 1]
    assert worst_nodes(temps, worst_rule(COMPUTE_LIMITS_K, LOWEST), 3).tolist() == [1, 0, 2]
    margin = worst_rule(COMPUTE_LIMITS_K).band.margin(temps)
    assert margin == pytest.approx([30 / 75, 19.8 / 75, 10 / 75], rel=1e-12)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("limits", [{}, {"warn_low": 300.0}, {"warn_high": 330.0,
                                                               "alarm_high": 340.0},
                                    COMPUTE_LIMITS_K])
def test_worst_nodes_match_a_full_sort(seed: int, order: str, limits: dict[str, float]
                                       ) -> None:
    _, values = random_fleet(seed, 997)
    rule = worst_rule(limits, order)
    # Brute force: every node's score, sorted worst first, ties by index, NaN left out.
    scored = [(reference_score(float(v), limits, order), i) for i, v in enumerate(values)]
    expected = [i for s, i in sorted(scored, key=lambda p: (-p[0], p[1])) if s > -math.inf]
    for count in (0, 1, 10, 50, 996, 5000):
        got = worst_nodes(values, rule, count)
        assert got.tolist() == expected[:count], f"count {count}"


def test_worst_nodes_of_a_fleet_without_values() -> None:
    assert worst_nodes(np.full(5, np.nan), WorstRule(), 3).size == 0
    assert worst_nodes(np.zeros(0), WorstRule(), 3).size == 0


@pytest.mark.parametrize("seed", range(4))
def test_group_summary_matches_a_loop_over_nodes(seed: int) -> None:
    groups, values = random_fleet(seed, 1200)
    rng = np.random.default_rng(seed + 100)
    other = rng.uniform(0.0, 1.0, 1200).astype(np.float32)
    alarm, warning = rng.random(1200) < 0.1, rng.random(1200) < 0.2
    groups[7] = "all-nan"
    values[7] = np.nan
    index = GroupIndex(groups[:1150], 1200)  # the last 50 nodes have no group: ""
    summary = group_summary(index, {"t": values, "soc": other, "wrong": np.zeros(3)},
                            ["t", "soc", "wrong", "absent"], alarm, warning)
    labels = groups[:1150] + [""] * 50
    assert summary.names == sorted(set(labels))
    assert [f.name for f in summary.fields] == ["t", "soc"]
    for g, name in enumerate(summary.names):
        members = [i for i in range(1200) if labels[i] == name]
        assert summary.counts[g] == len(members)
        assert summary.alarm[g] == sum(bool(alarm[i]) for i in members)
        assert summary.warning[g] == sum(bool(warning[i]) and not alarm[i] for i in members)
        for field, array in zip(summary.fields, (values, other), strict=True):
            shown = [float(array[i]) for i in members if math.isfinite(array[i])]
            if not shown:
                assert np.isnan([field.low[g], field.mean[g], field.high[g]]).all()
                continue
            assert field.low[g] == min(shown)
            assert field.high[g] == max(shown)
            assert field.mean[g] == pytest.approx(sum(shown) / len(shown), rel=1e-12)


def test_histogram_matches_counting_by_hand() -> None:
    _, values = random_fleet(3, 4428)
    bins = 17
    result = histogram(values, bins)
    finite = [float(v) for v in values if math.isfinite(v)]
    low, high = min(finite), max(finite)
    width = (high - low) / bins
    counts = [0] * bins
    for v in finite:
        counts[min(int((v - low) / width), bins - 1)] += 1
    # Bin edges by hand may differ from numpy's by a rounding at an edge: allow one node
    # to move between neighbours, never a total that differs.
    assert result.counts.sum() == len(finite)
    assert np.abs(np.asarray(counts) - result.counts).max() <= 1
    assert result.missing == 4428 - len(finite)
    assert result.edges[0] == low and result.edges[-1] == high


def test_histogram_of_one_value_and_of_none() -> None:
    single = histogram(np.full(10, 5.0), 4)
    assert single.counts.sum() == 10 and single.edges[0] < 5.0 < single.edges[-1]
    empty = histogram(np.full(3, np.nan), 4)
    assert empty.counts.sum() == 0 and empty.missing == 3


@pytest.mark.parametrize(("high", "bins"), [(1, 20), (7, 8), (30, 8), (1000, 24)])
def test_integer_histogram_keeps_each_value_in_one_bin(high: int, bins: int) -> None:
    rng = np.random.default_rng(high)
    values = rng.integers(0, high + 1, 4428).astype(np.uint32)
    values[0], values[1] = 0, high  # the whole range is there
    result = histogram(values, bins, integer=True)
    assert len(result.counts) <= bins and result.counts.sum() == 4428
    width = result.edges[1] - result.edges[0]
    assert width == round(width) >= 1 and result.edges[0] == -0.5
    for i, count in enumerate(result.counts):  # by hand: the whole numbers in each bin
        first, last = result.edges[i] + 0.5, result.edges[i + 1] - 0.5
        assert count == sum(1 for v in values.tolist() if first <= v <= last)
    if high + 1 <= bins:
        assert len(result.counts) == high + 1  # one bin per value

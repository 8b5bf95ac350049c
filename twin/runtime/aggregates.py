"""Fleet-level aggregates: the small ``aggregate`` message the twin publishes every step.

Per group and for the whole fleet, for each key field (those with limits, temperatures,
state of charge, power, utilization and delivered FLOP/s): the count of finite values, the
count left out (NaN or infinite), min, mean, max, percentiles (p5, p50, p95), a histogram
on fixed bins, the top N worst nodes (nearest a limit: twin.protocol.ranking), the top N
highest and lowest, and the count of nodes in each limit state.
docs/protocol.md, "Selective streams and fleet aggregates (issue 22)", is the contract.

Vectorized over fields and nodes: the key fields are stacked into one (fields x nodes)
array, and each group's block (nodes sorted by group once: the groups never change) is
sorted along the node axis in one call. From sorted rows, min, max and every percentile
are an index, and the histogram and limit-state counts are ``searchsorted`` of the bin
edges and limits: a few calls per row instead of a pass over the nodes each. One sort
beats ``np.partition`` with three ``kth`` here by about six times (numpy's sort is SIMD,
its multi-kth partition is not: 3.8 ms against 22 ms for 16 x 100,000 float32). The worst
nodes are ``top_n`` ``argmax`` passes; the highest and lowest a comparison with the
sorted row's ``top_n``-th value. Python loops run over groups and fields,
never over nodes.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from twin.core.subsystem import Field
from twin.protocol.ranking import limit_badness

PERCENTILES = (5, 50, 95)
"""Percentiles reported, as ``p5``, ``p50``, ``p95``: the nearest-rank value
(``np.percentile(values, q, method="nearest")``)."""
HISTOGRAM_BINS = 16
TOP_N = 5
"""Worst nodes reported per group and field."""
PARALLEL_MIN_SATS = 8192
"""Fleets from this size up compute their fields' entries on ``workers`` threads; below,
a thread's hand-off would cost more than it saves."""

BATCH_ELEMENTS = 1_000_000
"""Values (fields x nodes) aggregated at once, in each thread: every field of a part in one
batch up to about 60,000 nodes (a part holds half the fields with 2 workers), one at a
time at a million (two batches of two fields on two threads were 110 MB of the served
step's peak; docs/performance.md, "The in-step peak at a million")."""
KEY_FIELD_NAMES = frozenset({"soc_frac", "utilization_frac", "delivered_flop_s",
                             "p_solar_w", "p_load_w", "p_battery_w"})
"""Key fields besides those with limits, the temperatures (``temp_*``) and powers
(``*_power_w``)."""


def is_key_field(field: Field, n_sats: int) -> bool:
    """Whether a field is aggregated: one number per node, of a key quantity."""
    spec, array = field.spec, field.array
    if not spec.per_sat or array.shape != (n_sats,) or array.dtype.kind not in "fiu":
        return False
    if spec.name.startswith("mirror_") or spec.labels:
        return False  # per binding, not per node; codes are not quantities
    name = spec.name
    return bool(spec.limits) or name.startswith("temp_") or name.endswith("_power_w") \
        or name in KEY_FIELD_NAMES


def limit_edges(limits: dict[str, float]) -> tuple[float | None, float | None]:
    """The histogram's fixed range from a field's limits: (low, high), None where absent."""
    low = limits.get("alarm_low", limits.get("warn_low"))
    high = limits.get("alarm_high", limits.get("warn_high"))
    return low, high


class FleetAggregates:
    """Computes the ``aggregate`` body from the engine's live fields.

    Args:
        fields: Every wire field; the key ones are picked here (`is_key_field`).
        groups: Each node's group name (index = node).
        top_n: Worst nodes per group and field.
    """

    def __init__(self, fields: Sequence[Field], groups: Sequence[str], top_n: int = TOP_N,
                 workers: int = 1) -> None:
        n_sats = len(groups)
        self.n_sats = n_sats
        self.top_n = top_n
        self.fields = [f for f in fields if is_key_field(f, n_sats)]
        self.group_names = list(dict.fromkeys(groups))
        code = {name: k for k, name in enumerate(self.group_names)}
        self.group_of = np.fromiter((code[g] for g in groups), dtype=np.int64, count=n_sats)
        self.order = np.argsort(self.group_of, kind="stable")  # nodes, grouped, ascending
        self.group_sizes = np.bincount(self.group_of, minlength=len(self.group_names))
        self.starts = np.concatenate(([0], np.cumsum(self.group_sizes)[:-1]))
        # Generated and listed fleets come group by group: then no reordering at all.
        self.grouped_already = bool((self.order == np.arange(n_sats)).all())
        self.computations = 0
        # Each field's entry depends on that field alone, so a large fleet's fields are
        # cut into ``workers`` parts computed on threads (numpy's sorts and passes release
        # the GIL): the same body for any number (tests/test_aggregates.py).
        parts = max(1, min(workers, len(self.fields))) if n_sats >= PARALLEL_MIN_SATS else 1
        self._parts = parts
        self._pool = (ThreadPoolExecutor(parts - 1, thread_name_prefix="odc-aggregate")
                      if parts > 1 else None)
        # The bins of each part (a part's thread alone touches its own).
        self._bins_of: list[dict[tuple, tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]]] = [
            {} for _ in range(parts)]

    def close(self) -> None:
        """End the parts' threads, if any (idempotent)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def compute(self) -> dict[str, Any]:
        """The body: ``{groups, n_sats, group_sizes, percentiles, top_n, fields}``."""
        self.computations += 1
        out: dict[str, Any] = {}
        pool = self._pool
        if pool is None:
            out.update(self._part(0, self.fields))
        else:
            parts = [self.fields[k::self._parts] for k in range(self._parts)]
            futures = [pool.submit(self._part, k, part) for k, part in enumerate(parts)
                       if k]
            out.update(self._part(0, parts[0]))
            for future in futures:
                out.update(future.result())
        return {"groups": self.group_names, "n_sats": self.n_sats,
                "group_sizes": self.group_sizes.tolist(),
                "percentiles": list(PERCENTILES), "top_n": self.top_n,
                "fields": {f.spec.name: out[f.spec.name] for f in self.fields}}

    def _part(self, part: int, fields: list[Field]) -> dict[str, Any]:
        """The entries of ``fields``, with part ``part``'s bins."""
        out: dict[str, Any] = {}
        # A few fields at a time past BATCH_ELEMENTS values: each field's entry is its
        # own rows' work, and a million nodes' (fields, nodes) copies (values, badness,
        # sorted rows) were 400 MB of the step's working set in one batch.
        per_batch = max(1, BATCH_ELEMENTS // max(1, self.n_sats))
        for single in (True, False):  # float32 fields sort as float32: twice as fast
            kind = [f for f in fields if (f.array.dtype == np.float32) == single]
            for start in range(0, len(kind), per_batch):
                batch = kind[start:start + per_batch]
                values = np.stack([f.array for f in batch]).astype(
                    np.float32 if single else np.float64, copy=False)
                out.update(self._batch([f.spec for f in batch], values, self._bins_of[part]))
        return out

    def _batch(self, specs: list[Any], values: np.ndarray,
               bins: dict[tuple, tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]]
               ) -> dict[str, Any]:
        """The entries of ``specs``' fields; ``values`` is (fields, nodes); ``bins`` the
        cache of fixed bins to use."""
        n_fields = values.shape[0]
        finite = np.isfinite(values)
        all_finite = bool(finite.all())
        if not all_finite:  # infinities count as left out too: NaN sorts last
            values = np.where(finite, values, np.nan)
        grouped = values if self.grouped_already else values[:, self.order]
        zeroed = grouped if all_finite else np.where(np.isnan(grouped), 0, grouped)
        g_sum = np.add.reduceat(zeroed, self.starts, axis=1, dtype=np.float64)
        g_count = np.broadcast_to(self.group_sizes, g_sum.shape) if all_finite else \
            np.add.reduceat(~np.isnan(grouped), self.starts, axis=1)
        badness, has_limits = _badness(values, specs)
        grouped_bad = badness if self.grouped_already else badness[:, self.order]
        # Rows: the fleet in node order, then each group's nodes (ascending).
        fleet_sorted = np.sort(values, axis=1)
        rows = [(fleet_sorted, g_count.sum(axis=1), g_sum.sum(axis=1), values, badness,
                 np.arange(self.n_sats))]
        for k, size in enumerate(self.group_sizes.tolist()):
            if len(self.group_names) == 1:
                break  # the one group is the fleet
            segment = slice(int(self.starts[k]), int(self.starts[k]) + size)
            block = grouped[:, segment]
            rows.append((np.sort(block, axis=1), g_count[:, k], g_sum[:, k], block,
                         grouped_bad[:, segment], self.order[segment]))
        counts0 = rows[0][1]
        lo, hi = [], []
        for f, spec in enumerate(specs):  # the bins: from the limits, else the fleet's range
            low, high = limit_edges(spec.limits)
            n = int(counts0[f])
            low = low if low is not None else (float(fleet_sorted[f, 0]) if n else 0.0)
            high = high if high is not None else (float(fleet_sorted[f, n - 1]) if n else 1.0)
            lo.append(low)
            hi.append(high if high > low else low + 1.0)
        edges, probes = [], []
        for f, spec in enumerate(specs):  # fixed bins (from limits) are worked out once
            key = (spec.name, lo[f], hi[f], values.dtype.str)
            if key not in bins:
                if len(bins) > 4 * len(self.fields):
                    bins.clear()  # ranges from the fleet's min and max move
                field_edges = np.linspace(lo[f], hi[f], HISTOGRAM_BINS + 1)
                bins[key] = (field_edges, _probes(field_edges, spec.limits, values.dtype))
            edges.append(bins[key][0])
            probes.append(bins[key][1])
        # The worst of each group; the fleet's are the worst of those (no pass of its own).
        worst_of = [_worst_rows(row[3], row[4], row[5], self.top_n) for row in rows[1:]] \
            or [_worst_rows(values, badness, rows[0][5], self.top_n)]
        fleet_worst = worst_of[0] if len(worst_of) == 1 else [
            sorted((w for group in worst_of for w in group[f]),
                   key=lambda w: (-w[2], w[0]))[:self.top_n] for f in range(n_fields)]
        # The highest and lowest likewise: from each group's sorted block, merged.
        extremes_of = [_extremes(row[3], row[0], row[1], row[5], self.top_n)
                       for row in rows[1:]] or [
            _extremes(values, fleet_sorted, rows[0][1], rows[0][5], self.top_n)]
        fleet_extremes = extremes_of[0] if len(extremes_of) == 1 else tuple(
            [_merged([group[side][f] for group in extremes_of], self.top_n, sign)
             for f in range(n_fields)] for side, sign in ((0, -1.0), (1, 1.0)))
        summaries: list[list[dict[str, Any]]] = [[] for _ in specs]
        for r, (sorted_rows, counts, sums, _, _, _) in enumerate(rows):
            worst = [[[node, value] for node, value, _ in row]
                     for row in (fleet_worst if r == 0 else worst_of[r - 1])]
            highest, lowest = fleet_extremes if r == 0 else extremes_of[r - 1]
            for f in range(n_fields):
                summary = _summary(sorted_rows[f], int(counts[f]), float(sums[f]), probes[f],
                                   bool(has_limits[f]), worst[f])
                summary["highest"], summary["lowest"] = highest[f], lowest[f]
                summaries[f].append(summary)
        return {spec.name: {
            "unit": spec.unit, "limits": dict(spec.limits),
            "worst_by": "limits" if has_limits[f] else "value",
            "edges": edges[f].tolist(), "fleet": summaries[f][0],
            "groups": dict(zip(self.group_names, summaries[f][1:] or summaries[f][:1],
                               strict=True))}
            for f, spec in enumerate(specs)}


def _probes(edges: np.ndarray, limits: dict[str, float], dtype: np.dtype
            ) -> tuple[np.ndarray, np.ndarray]:
    """What one field's rows are searched for: (left, right).

    ``left``: the bin edges, then the nearest low limit and the low alarm limit (counts of
    values below each); ``right``: the top edge, the nearest high limit and the high alarm
    limit (counts of values at or below each). In the rows' own dtype, so a float32 row is
    searched as it is: a float32 ``v < e`` holds exactly when ``v`` is below ``e`` rounded
    up to float32, and ``v <= e`` when ``v`` is at most ``e`` rounded down.
    """
    highs = [limits[k] for k in ("warn_high", "alarm_high") if k in limits]
    lows = [limits[k] for k in ("warn_low", "alarm_low") if k in limits]
    left = np.concatenate((edges, [max(lows) if lows else -np.inf,
                                   limits.get("alarm_low", -np.inf)]))
    right = np.array([edges[-1], min(highs) if highs else np.inf,
                      limits.get("alarm_high", np.inf)])
    if dtype == np.float64:
        return left, right
    with np.errstate(over="ignore"):
        left32, right32 = left.astype(dtype), right.astype(dtype)
    up, down = left32 < left, right32 > right
    left32[up] = np.nextafter(left32[up], np.inf)
    right32[down] = np.nextafter(right32[down], -np.inf)
    return left32, right32


def _summary(sorted_row: np.ndarray, count: int, total: float,
             probes: tuple[np.ndarray, np.ndarray], has_limits: bool,
             worst: list[list[float]]) -> dict[str, Any]:
    """One field's summary over one row of nodes, from its values sorted (NaN last)."""
    finite = sorted_row[:count]
    summary: dict[str, Any] = {"count": count, "nan": sorted_row.size - count}
    if count:
        picked = finite[[round(q / 100.0 * (count - 1)) for q in PERCENTILES]].tolist()
        summary.update(min=float(finite[0]), mean=total / count, max=float(finite[-1]),
                       **{f"p{q}": v for q, v in zip(PERCENTILES, picked, strict=True)})
    else:
        summary.update(min=None, mean=None, max=None, **{f"p{q}": None for q in PERCENTILES})
    summary["worst"] = worst
    # Bins [e_i, e_i+1), the last closed, as np.histogram's; values past the limits.
    left = np.searchsorted(finite, probes[0]).tolist()
    right = np.searchsorted(finite, probes[1], side="right").tolist()
    below = left[:-2]
    hist = [b - a for a, b in itertools.pairwise(below)]
    hist[-1] += right[0] - below[-1]
    summary["hist"] = hist
    summary["under"], summary["over"] = below[0], count - right[0]
    if has_limits:
        past = left[-2] + count - right[1]  # past a warning or an alarm limit
        alarm = left[-1] + count - right[2]
        summary["states"] = {"ok": count - past, "warn": past - alarm, "alarm": alarm}
    return summary


def _badness(values: np.ndarray, specs: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """How bad each value is (higher worse), float64, -inf where left out, and which rows
    rank by limits: minus the margin to the nearest limit in units of the field's band
    (twin.protocol.ranking, the dashboard's rule too); rows without limits rank by value."""
    badness = values.astype(np.float64)
    has_limits = np.zeros(len(specs), bool)
    for f, spec in enumerate(specs):
        by_limits = limit_badness(badness[f], spec.limits)
        if by_limits is not None:
            badness[f], has_limits[f] = by_limits, True
    badness[np.isnan(badness)] = -np.inf
    return badness, has_limits


MANY_EQUAL = 32
"""Past this many values equal to a list's threshold, the first of them are found by a
prefix scan instead of with every one of them (an idle fleet's heaters: all zero)."""
PREFIX = 256
"""Columns looked at first for those equal values."""


def _extremes(block: np.ndarray, sorted_block: np.ndarray, counts: np.ndarray,
              nodes: np.ndarray, top_n: int) -> tuple[list[list[list]], list[list[list]]]:
    """Per row (field) the ``top_n`` highest and the ``top_n`` lowest ``[node, value]``,
    highest (lowest) first, equal values by lowest node; nodes left out never.

    From the rows sorted (NaN last), each row's ``top_n``-th highest value is a threshold;
    the nodes at or past it are one comparison of the block and one ``nonzero``, ranked
    by one ``lexsort`` (row, value, column: columns are in ascending node order, so equal
    values go to the lowest nodes). A row with more than ``MANY_EQUAL`` values equal to
    its threshold (read off the sorted row) has only the first of them looked for: in its
    first ``PREFIX`` columns, else further (``_first_equal``).
    """
    n_rows = block.shape[0]
    rows = np.arange(n_rows)
    counts = np.asarray(counts, dtype=np.int64)
    keep = np.minimum(top_n, counts)
    lists: list[list[list[list]]] = []
    for sign in (-1.0, 1.0):  # highest, then lowest
        at = counts - keep if sign < 0 else np.maximum(keep - 1, 0)
        limit = sorted_block[rows, np.minimum(at, block.shape[1] - 1)]
        beyond = np.clip(at - MANY_EQUAL if sign < 0 else at + MANY_EQUAL, 0,
                         np.maximum(counts - 1, 0))
        many = (keep > 0) & (sorted_block[rows, beyond] == limit)
        few, many = np.flatnonzero(~many & (keep > 0)), np.flatnonzero(many)
        with np.errstate(invalid="ignore"):  # NaN is past no threshold
            # Few equal to the threshold: every node at or past it, in one comparison.
            r, c = _nonzero(block[few] >= limit[few, None] if sign < 0 else
                              block[few] <= limit[few, None])
            picked = [(few[r], c)]
            if many.size:  # many equal: those past it, and the first equal ones
                sub, bound = block[many], limit[many, None]
                r, c = _nonzero(sub > bound if sign < 0 else sub < bound)
                picked.append((many[r], c))
                need = keep[many] - np.bincount(r, minlength=many.size)
                head = sub[:, :PREFIX] == bound
                head &= np.cumsum(head, axis=1) <= need[:, None]
                r, c = _nonzero(head)
                picked.append((many[r], c))
                short = need - np.bincount(r, minlength=many.size)
                for k in np.flatnonzero(short > 0).tolist():  # equal ones rare at the start
                    rest = _first_equal(sub[k, PREFIX:], limit[many[k]], int(short[k]))
                    picked.append((np.full(rest.size, many[k]), rest + PREFIX))
        r = np.concatenate([p[0] for p in picked])
        c = np.concatenate([p[1] for p in picked])
        values = block[r, c]
        order = np.lexsort((c, sign * values.astype(np.float64), r))
        r, c, values = r[order], c[order], values[order]
        # Each row's first ``keep``: only those become Python numbers.
        ranks = np.arange(top_n)
        taken = (np.searchsorted(r, rows)[:, None] + ranks)[ranks < keep[:, None]]
        node_ids, node_values = nodes[c[taken]].tolist(), values[taken].tolist()
        out: list[list[list]] = []
        first = 0
        for size in keep.tolist():
            out.append([[node_ids[k], node_values[k]] for k in range(first, first + size)])
            first += size
        lists.append(out)
    return lists[0], lists[1]


def _nonzero(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.nonzero`` of a 2-D mask, (rows, columns): its flat indices split, several times
    faster than numpy's 2-D ``nonzero`` on the mostly-false masks here."""
    flat = np.flatnonzero(mask)
    return np.divmod(flat, mask.shape[1]) if mask.shape[1] else (flat, flat)


def _first_equal(row: np.ndarray, value: float, need: int) -> np.ndarray:
    """The first ``need`` columns of ``row`` equal to ``value``: prefixes of doubling size,
    so O(n) at worst and a few thousand values when many are equal."""
    found, total, start, size = [], 0, 0, 1024
    while total < need and start < row.size:
        hits = np.flatnonzero(row[start:start + size] == value)[:need - total] + start
        found.append(hits)
        total += hits.size
        start, size = start + size, 2 * size
    return np.concatenate(found) if found else np.zeros(0, np.intp)


def _merged(lists: list[list[list]], top_n: int, sign: float) -> list[list]:
    """The ``top_n`` first of several groups' highest (``sign`` -1) or lowest (+1) lists."""
    return sorted((w for group in lists for w in group),
                  key=lambda w: (sign * w[1], w[0]))[:top_n]


def _worst_rows(values: np.ndarray, badness: np.ndarray, nodes: np.ndarray, top_n: int
                ) -> list[list[tuple[int, float, float]]]:
    """Per row (field) the ``top_n`` worst ``(node, value, badness)``, worst first, equally bad ones
    by lowest node (columns are in ascending node order); nodes left out never.

    ``top_n`` passes of ``argmax`` (which returns the first of equals), each masking what
    it found: about 5 x one pass, cheaper than ``argpartition`` on rows with many equal
    values (an idle fleet's utilization). ``badness`` is restored before returning.
    """
    n_rows, n = badness.shape
    rows = np.arange(n_rows)
    found: list[tuple[np.ndarray, np.ndarray]] = []
    for _ in range(min(top_n, n)):
        column = np.argmax(badness, axis=1)
        found.append((column, badness[rows, column]))
        badness[rows, column] = -np.inf
    for column, bad in reversed(found):
        badness[rows, column] = bad
    out: list[list[tuple[int, float, float]]] = [[] for _ in range(n_rows)]
    for column, bad in found:
        node_ids, node_values = nodes[column].tolist(), values[rows, column].tolist()
        bad_values = bad.tolist()
        for r in np.flatnonzero(bad > -np.inf).tolist():
            out[r].append((node_ids[r], node_values[r], bad_values[r]))
    return out

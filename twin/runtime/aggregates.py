"""Fleet-level aggregates: the small ``aggregate`` message the twin publishes every step.

Per group and for the whole fleet, for each key field (those with limits, temperatures,
state of charge, power, utilization and delivered FLOP/s): the count of finite values, the
count of NaN, min, mean, max, percentiles (p5, p50, p95), a histogram on fixed bins, the
top N worst nodes and the count of nodes in each limit state. docs/protocol.md,
"Fleet aggregates (issue 22)", is the contract.

Everything is vectorized: nodes are sorted by group once (the groups never change), so a
group's values are one contiguous slice; min and max are ``reduceat`` over those slices,
counts and sums ``bincount``, percentiles and the worst nodes ``np.partition`` /
``np.argpartition`` per group (a loop over the groups, never over nodes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from twin.core.subsystem import Field

PERCENTILES = (5, 50, 95)
"""Percentiles reported, as ``p5``, ``p50``, ``p95``: the nearest-rank value
(``np.percentile(values, q, method="nearest")``)."""
HISTOGRAM_BINS = 16
TOP_N = 5
"""Worst nodes reported per group and field."""
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

    def __init__(self, fields: Sequence[Field], groups: Sequence[str], top_n: int = TOP_N
                 ) -> None:
        n_sats = len(groups)
        self.n_sats = n_sats
        self.top_n = top_n
        self.fields = [f for f in fields if is_key_field(f, n_sats)]
        self.group_names = list(dict.fromkeys(groups))
        code = {name: k for k, name in enumerate(self.group_names)}
        self.group_of = np.fromiter((code[g] for g in groups), dtype=np.int64, count=n_sats)
        self.order = np.argsort(self.group_of, kind="stable")  # nodes, grouped
        self.group_sizes = np.bincount(self.group_of, minlength=len(self.group_names))
        self.starts = np.concatenate(([0], np.cumsum(self.group_sizes)[:-1]))
        # Generated and listed fleets come group by group: then no reordering at all.
        self.grouped_already = bool((self.order == np.arange(n_sats)).all())
        self.computations = 0

    def compute(self) -> dict[str, Any]:
        """The body: ``{groups, n_sats, group_sizes, fields: {name: {...}}}``."""
        self.computations += 1
        out: dict[str, Any] = {}
        for dtype in (np.float32, np.float64):  # float32 fields sort twice as fast as such
            batch = [f for f in self.fields if (f.array.dtype == np.float32)
                     == (dtype is np.float32)]
            if not batch:
                continue
            values = np.stack([f.array for f in batch]).astype(dtype, copy=False)
            finite = np.isfinite(values).all(axis=1)
            whole = [f for f, ok in zip(batch, finite, strict=True) if ok]
            if whole:
                out.update(self._batch(whole, values[finite] if not finite.all() else values))
            for f, ok in zip(batch, finite, strict=True):
                if not ok:  # NaN or inf nodes: this field on its own, without them
                    out[f.spec.name] = self._field(f)
        return {"groups": self.group_names, "n_sats": self.n_sats,
                "group_sizes": self.group_sizes.tolist(),
                "percentiles": list(PERCENTILES), "top_n": self.top_n,
                "fields": {f.spec.name: out[f.spec.name] for f in self.fields}}

    def _batch(self, fields: list[Field], values: np.ndarray) -> dict[str, Any]:
        """Every field without NaN at once: ``values`` is (fields, nodes), all finite.

        One numpy call per statistic and group for all fields together, so a small fleet
        pays a few dozen calls per step, not a few per field.
        """
        n_fields, n = values.shape
        n_groups = len(self.group_names)
        grouped = values if self.grouped_already else values[:, self.order]
        starts, sizes = self.starts, self.group_sizes
        g_min = np.minimum.reduceat(grouped, starts, axis=1)
        g_max = np.maximum.reduceat(grouped, starts, axis=1)
        g_sum = np.add.reduceat(grouped, starts, axis=1, dtype=np.float64)
        specs = [f.spec for f in fields]
        edges = [limit_edges(spec.limits) for spec in specs]
        f_min, f_max = g_min.min(axis=1), g_max.max(axis=1)
        lo = np.array([e[0] if e[0] is not None else f_min[k] for k, e in enumerate(edges)])
        hi = np.array([e[1] if e[1] is not None else f_max[k] for k, e in enumerate(edges)])
        flat = hi <= lo
        hi[flat] = lo[flat] + 1.0
        # Histograms of every field and group: one bincount.
        slots = HISTOGRAM_BINS + 2
        scaled = (values - lo[:, None]) * (HISTOGRAM_BINS / (hi - lo))[:, None]
        np.clip(scaled, -1.0, HISTOGRAM_BINS, out=scaled)
        bins = np.floor(scaled, out=scaled).astype(np.int64)
        bins[values == hi[:, None]] = HISTOGRAM_BINS - 1  # the last bin is closed
        bins += (np.arange(n_fields)[:, None] * n_groups + self.group_of[None, :]) * slots + 1
        hist = np.bincount(bins.ravel(), minlength=n_fields * n_groups * slots
                           ).reshape(n_fields, n_groups, slots)
        # Limit states and badness (float64), only for the fields with limits.
        has_limits = np.array([bool(s.limits) for s in specs])
        limited = np.flatnonzero(has_limits)
        lim_values = values[limited].astype(np.float64)

        def limit(key: str, default: float) -> np.ndarray:
            return np.array([specs[k].limits.get(key, default) for k in limited])[:, None]
        alarm = (lim_values > limit("alarm_high", np.inf)) \
            | (lim_values < limit("alarm_low", -np.inf))
        warn = (lim_values > limit("warn_high", np.inf)) \
            | (lim_values < limit("warn_low", -np.inf))
        state = warn.view(np.uint8) | (alarm.view(np.uint8) << 1)  # 2, 3: alarm
        state = state + ((np.arange(limited.size)[:, None] * n_groups
                          + self.group_of[None, :]) * 4)
        states4 = np.bincount(state.ravel(), minlength=limited.size * n_groups * 4
                              ).reshape(limited.size, n_groups, 4)
        states = np.zeros((n_fields, n_groups, 3), dtype=np.int64)
        states[limited, :, 0] = states4[..., 0]
        states[limited, :, 1] = states4[..., 1]
        states[limited, :, 2] = states4[..., 2] + states4[..., 3]
        badness = values.astype(np.float64)
        badness[limited] = np.maximum(
            lim_values - np.array([specs[k].limits.get("warn_high", specs[k].limits.get(
                "alarm_high", np.inf)) for k in limited])[:, None],
            np.array([specs[k].limits.get("warn_low", specs[k].limits.get(
                "alarm_low", -np.inf)) for k in limited])[:, None] - lim_values)
        grouped_bad = badness if self.grouped_already else badness[:, self.order]
        # Rows: the fleet (node order), then each group (its nodes, in node order).
        rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = [
            (values, badness, np.arange(n))]
        for k in range(n_groups):
            segment = slice(int(starts[k]), int(starts[k] + sizes[k]))
            rows.append((grouped[:, segment], grouped_bad[:, segment], self.order[segment]))
        summaries: list[list[dict[str, Any]]] = [[] for _ in fields]
        for r, (vals, bad, nodes) in enumerate(rows):
            count = vals.shape[1]
            ranks = [int(np.around(q / 100.0 * (count - 1))) for q in PERCENTILES]
            picked = np.partition(vals, ranks, axis=1)[:, ranks].tolist()
            worst = _worst_rows(vals, bad, nodes, min(self.top_n, count))
            if r == 0:
                mins, maxs, sums = f_min.tolist(), f_max.tolist(), g_sum.sum(axis=1).tolist()
                h, st = hist.sum(axis=1).tolist(), states.sum(axis=1).tolist()
            else:
                mins, maxs = g_min[:, r - 1].tolist(), g_max[:, r - 1].tolist()
                sums = g_sum[:, r - 1].tolist()
                h, st = hist[:, r - 1].tolist(), states[:, r - 1].tolist()
            for f in range(n_fields):
                summary: dict[str, Any] = {
                    "count": count, "nan": 0, "min": mins[f], "mean": sums[f] / count,
                    "max": maxs[f], **{f"p{q}": picked[f][i] for i, q in enumerate(PERCENTILES)},
                    "worst": worst[f], "hist": h[f][1:-1], "under": h[f][0], "over": h[f][-1]}
                if has_limits[f]:
                    summary["states"] = {"ok": st[f][0], "warn": st[f][1], "alarm": st[f][2]}
                summaries[f].append(summary)
        lo_list, hi_list = lo.tolist(), hi.tolist()
        return {spec.name: {
            "unit": spec.unit, "limits": dict(spec.limits),
            "worst_by": "limits" if has_limits[f] else "value",
            "edges": np.linspace(lo_list[f], hi_list[f], HISTOGRAM_BINS + 1).tolist(),
            "fleet": summaries[f][0],
            "groups": dict(zip(self.group_names, summaries[f][1:], strict=True))}
            for f, spec in enumerate(specs)}

    def _field(self, field: Field) -> dict[str, Any]:
        spec = field.spec
        values = field.array.astype(np.float64, copy=False)
        sorted_values = values[self.order]
        sorted_groups = self.group_of[self.order]
        finite = np.isfinite(sorted_values)
        all_finite = bool(finite.all())
        if not all_finite:
            sorted_values, sorted_groups = sorted_values[finite], sorted_groups[finite]
            nodes = self.order[finite]
        else:
            nodes = self.order
        n_groups = len(self.group_names)
        counts = np.bincount(sorted_groups, minlength=n_groups)
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        sums = np.bincount(sorted_groups, weights=sorted_values, minlength=n_groups)
        low, high = limit_edges(spec.limits)
        fleet_min = float(sorted_values.min()) if sorted_values.size else float("nan")
        fleet_max = float(sorted_values.max()) if sorted_values.size else float("nan")
        lo = low if low is not None else fleet_min
        hi = high if high is not None else fleet_max
        if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
            lo, hi = (lo, lo + 1.0) if np.isfinite(lo) else (0.0, 1.0)
        hist = self._histograms(sorted_values, sorted_groups, lo, hi)
        badness, worst_by = _badness(sorted_values, spec.limits)
        states = self._states(sorted_values, sorted_groups, spec.limits)
        nan_counts = self.group_sizes - counts
        out_groups: dict[str, Any] = {}
        rows = [(None, sorted_values, nodes, badness, int(nan_counts.sum()), hist.sum(0),
                 None if states is None else states.sum(0))]
        for k, name in enumerate(self.group_names):
            segment = slice(int(starts[k]), int(starts[k] + counts[k]))
            rows.append((name, sorted_values[segment], nodes[segment], badness[segment],
                         int(nan_counts[k]), hist[k], None if states is None else states[k]))
        fleet: dict[str, Any] = {}
        for name, vals, idx, bad, n_nan, h, st in rows:
            summary = self._summary(vals, idx, bad, n_nan, h, st,
                                    float(sums.sum()) if name is None else None)
            if name is None:
                fleet = summary
            else:
                out_groups[name] = summary
        return {"unit": spec.unit, "limits": dict(spec.limits), "worst_by": worst_by,
                "edges": np.linspace(lo, hi, HISTOGRAM_BINS + 1).tolist(),
                "fleet": fleet, "groups": out_groups}

    def _summary(self, values: np.ndarray, nodes: np.ndarray, badness: np.ndarray,
                 n_nan: int, hist: np.ndarray, states: np.ndarray | None,
                 total: float | None) -> dict[str, Any]:
        n = int(values.size)
        summary: dict[str, Any] = {"count": n, "nan": n_nan}
        if n == 0:
            summary.update(min=None, mean=None, max=None,
                           **{f"p{q}": None for q in PERCENTILES}, worst=[])
        else:
            ranks = [int(np.around(q / 100.0 * (n - 1))) for q in PERCENTILES]
            picked = np.partition(values, ranks)
            summary.update(min=float(values.min()), max=float(values.max()),
                           mean=float((values.sum() if total is None else total) / n),
                           **{f"p{q}": float(picked[r]) for q, r in zip(PERCENTILES, ranks,
                                                                          strict=True)})
            summary["worst"] = _worst(values, nodes, badness, min(self.top_n, n))
        summary["hist"] = [int(c) for c in hist[1:-1]]
        summary["under"], summary["over"] = int(hist[0]), int(hist[-1])
        if states is not None:
            summary["states"] = {"ok": int(states[0]), "warn": int(states[1]),
                                 "alarm": int(states[2])}
        return summary

    def _histograms(self, values: np.ndarray, groups: np.ndarray, lo: float, hi: float
                    ) -> np.ndarray:
        """Per group: [under, bin 0 .. bin B-1, over] counts, one bincount for all groups."""
        width = (hi - lo) / HISTOGRAM_BINS
        bins = np.floor((values - lo) / width).astype(np.int64) + 1
        bins[values == hi] = HISTOGRAM_BINS  # the last bin is closed, as np.histogram's
        np.clip(bins, 0, HISTOGRAM_BINS + 1, out=bins)
        slots = HISTOGRAM_BINS + 2
        counts = np.bincount(groups * slots + bins, minlength=len(self.group_names) * slots)
        return counts.reshape(len(self.group_names), slots)

    def _states(self, values: np.ndarray, groups: np.ndarray, limits: dict[str, float]
                ) -> np.ndarray | None:
        """Per group: nodes [ok, warn, alarm] against the field's limits (None: no limits)."""
        if not limits:
            return None
        alarm = np.zeros(values.shape, dtype=bool)
        warn = np.zeros(values.shape, dtype=bool)
        for key, above in (("alarm_high", True), ("alarm_low", False)):
            if key in limits:
                alarm |= values > limits[key] if above else values < limits[key]
        for key, above in (("warn_high", True), ("warn_low", False)):
            if key in limits:
                warn |= values > limits[key] if above else values < limits[key]
        state = np.where(alarm, 2, np.where(warn, 1, 0))
        counts = np.bincount(groups * 3 + state, minlength=len(self.group_names) * 3)
        return counts.reshape(len(self.group_names), 3)


def _badness(values: np.ndarray, limits: dict[str, float]) -> tuple[np.ndarray, str]:
    """How bad each value is (higher worse) and what ranks them: ``limits`` (distance past
    the nearest warning, or alarm, limit, in the field's unit; negative inside) or
    ``value`` (the highest values) for a field without limits."""
    high = limits.get("warn_high", limits.get("alarm_high"))
    low = limits.get("warn_low", limits.get("alarm_low"))
    if high is None and low is None:
        return values, "value"
    if low is None:
        return values - high, "limits"
    if high is None:
        return low - values, "limits"
    return np.maximum(values - high, low - values), "limits"


def _worst(values: np.ndarray, nodes: np.ndarray, badness: np.ndarray, k: int
           ) -> list[list[float]]:
    """The ``k`` worst nodes as ``[node, value]``, worst first; equally bad ones by lowest
    node index (so the answer does not depend on how the partition fell)."""
    n = badness.size
    threshold = np.partition(badness, n - k)[n - k]
    better = np.flatnonzero(badness > threshold)
    tied_nodes = nodes[badness == threshold]
    need = k - better.size
    if need < tied_nodes.size:
        tied_nodes = np.partition(tied_nodes, need - 1)[:need]
    position = np.empty(0, dtype=np.int64)
    if tied_nodes.size:  # back from node indices to positions in this slice
        position = np.flatnonzero(np.isin(nodes, tied_nodes))
    chosen = np.concatenate((better, position))
    chosen = chosen[np.lexsort((nodes[chosen], -badness[chosen]))]
    return [[int(nodes[i]), float(values[i])] for i in chosen]


def _worst_rows(values: np.ndarray, badness: np.ndarray, nodes: np.ndarray, k: int
                ) -> list[list[list[float]]]:
    """Per row (field) the ``k`` worst ``[node, value]``, worst first, equally bad ones by
    lowest node (columns are in node order)."""
    n_rows, n = badness.shape
    threshold = np.partition(badness, n - k, axis=1)[:, n - k][:, None]
    better_rows, better_cols = np.nonzero(badness > threshold)
    tied_rows, tied_cols = np.nonzero(badness == threshold)
    need = k - np.bincount(better_rows, minlength=n_rows)
    first_of_row = np.searchsorted(tied_rows, np.arange(n_rows))
    keep = (np.arange(tied_rows.size) - first_of_row[tied_rows]) < need[tied_rows]
    rows = np.concatenate((better_rows, tied_rows[keep]))
    cols = np.concatenate((better_cols, tied_cols[keep]))
    order = np.lexsort((cols, -badness[rows, cols], rows))
    rows, cols = rows[order], cols[order]
    picked_nodes, picked_values = nodes[cols].tolist(), values[rows, cols].tolist()
    out: list[list[list[float]]] = [[] for _ in range(n_rows)]
    for row, node, value in zip(rows.tolist(), picked_nodes, picked_values, strict=True):
        out[row].append([node, value])
    return out

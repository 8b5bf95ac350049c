"""Fleet statistics for thousands of nodes: per-group summaries, the worst nodes, histograms.

Pure numpy, no loop over nodes: a group summary is a few ``bincount`` and ``reduceat``
calls over the nodes sorted by group once, the worst nodes one ``partition`` and a sort
of N, a histogram one ``np.histogram``. The terminal dashboard's fleet view
(``viz.tui.fleet``) draws them; they are tested against brute-force loops
(tests/test_fleet_stats.py).

Which nodes a worst list shows is its **order** (the fleet view's ``s`` switches it):

* ``nearest`` (the default): nearest a limit first, by the margin to the nearest limit in
  units of the field's band (``twin.protocol.ranking``, the same rule as the twin's
  ``aggregate``): a node past a limit before one inside, a node near its cold limit with
  one near its hot limit. A field without limits: the highest values (the catalog says
  nothing better; the view says "highest" so nobody reads it as a judgement);
* ``highest``: the highest values first;
* ``lowest``: the lowest values first.

NaN or an infinity (no value) is never among the worst and counts in no minimum, mean,
maximum or histogram bin.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from twin.protocol.ranking import LimitBand

NEAREST, HIGHEST, LOWEST = "nearest", "highest", "lowest"
ORDERS = (NEAREST, HIGHEST, LOWEST)
"""The worst list's orders, in the order ``s`` steps through them."""


@dataclass(frozen=True)
class WorstRule:
    """How a worst list is ordered, and a score that ranks it (higher comes first).

    Attributes:
        order: ``nearest``, ``highest`` or ``lowest`` (see the module's docstring).
        band: The field's limits (None without limits).
    """

    order: str = NEAREST
    band: LimitBand | None = None

    @property
    def by_margin(self) -> bool:
        """The list ranks by the margin to the nearest limit (not by value)."""
        return self.order == NEAREST and self.band is not None

    def score(self, values: np.ndarray) -> np.ndarray:
        """(n,) float64 rank of each value, higher first; ``-inf`` for NaN (never listed)."""
        values = np.asarray(values, dtype=np.float64)
        if self.order == NEAREST and self.band is not None:
            return self.band.badness(values)  # the twin's aggregate ranks by it too
        score = -values if self.order == LOWEST else values.copy()
        score[~np.isfinite(values)] = -np.inf
        return score


def worst_rule(limits: Mapping[str, float], order: str = NEAREST) -> WorstRule:
    """The rule of a field with operating limits ``limits`` (``warn_high``, ``alarm_low``...)
    for the list order ``order``."""
    if order not in ORDERS:
        raise ValueError(f"worst list order {order!r} is none of {', '.join(ORDERS)}")
    return WorstRule(order, LimitBand.from_limits(limits))


def worst_nodes(values: np.ndarray, rule: WorstRule, count: int) -> np.ndarray:
    """Indices of the ``count`` worst nodes, worst first; ties go to the lower index.

    O(n) (one ``np.partition``) plus a sort of ``count``; NaN values are left out, so
    fewer than ``count`` come back when fewer have a value.
    """
    score = rule.score(values)
    valid = np.isfinite(score)
    n_valid = int(np.count_nonzero(valid))
    count = min(max(int(count), 0), n_valid)
    if count == 0:
        return np.zeros(0, np.intp)
    # The count-th largest valid score: everything above it is in, ties at it by index.
    kth = np.partition(score[valid], n_valid - count)[n_valid - count]
    above = np.flatnonzero(score > kth)
    tied = np.flatnonzero(score == kth)[:count - above.size]
    chosen = np.concatenate([above, tied])
    return chosen[np.lexsort((chosen, -score[chosen]))]


class GroupIndex:
    """The nodes of each group, worked out once per ``meta`` and reused every state.

    Args:
        groups: Each node's group name (``meta.sats.groups``); nodes past its end, or all
            of them when it is empty, fall in one group named ``""``.
        n: Number of nodes.

    Attributes:
        names: The group names, sorted.
        codes: (n,) each node's group number (an index into ``names``).
        counts: (g,) nodes per group.
    """

    def __init__(self, groups: Sequence[str], n: int) -> None:
        labels = np.asarray(list(groups[:n]) + [""] * max(n - len(groups), 0), dtype=str)
        names, codes = np.unique(labels, return_inverse=True) if n else (np.zeros(0, str),
                                                                         np.zeros(0, np.intp))
        self.names: list[str] = [str(x) for x in names]
        self.codes: np.ndarray = codes.reshape(n).astype(np.intp)
        self.n = n
        self.counts: np.ndarray = np.bincount(self.codes, minlength=len(self.names))
        # Nodes sorted by group, and where each group starts: reduceat's segments (every
        # group has at least one node, so no segment is empty).
        self.order: np.ndarray = np.argsort(self.codes, kind="stable")
        self.starts: np.ndarray = np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(
            np.intp) if self.names else np.zeros(0, np.intp)

    def count(self, flags: np.ndarray) -> np.ndarray:
        """(g,) how many nodes of each group have ``flags`` set."""
        return np.bincount(self.codes[np.asarray(flags, bool)], minlength=len(self.names))

    def min_mean_max(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(g,) each group's minimum, mean and maximum of ``values``, NaN ignored (NaN for
        a group without a single value)."""
        g = len(self.names)
        if not g:
            empty = np.zeros(0)
            return empty, empty, empty
        values = np.asarray(values, dtype=np.float64)
        finite = np.isfinite(values)
        valid = np.bincount(self.codes, weights=finite, minlength=g)
        total = np.bincount(self.codes, weights=np.where(finite, values, 0.0), minlength=g)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(valid > 0, total / np.maximum(valid, 1), np.nan)
        # fmin / fmax skip NaN (NaN only when a whole group has no value); an infinity is
        # no value either, as in the mean.
        by_group = np.where(finite, values, np.nan)[self.order]
        low = np.fmin.reduceat(by_group, self.starts)
        high = np.fmax.reduceat(by_group, self.starts)
        return low, mean, high


@dataclass
class FieldSummary:
    """One field's per-group minimum, mean and maximum (wire unit), NaN where none."""

    name: str
    low: np.ndarray
    mean: np.ndarray
    high: np.ndarray


@dataclass
class GroupSummary:
    """Each group's size, nodes in alarm and in warning, and its key fields.

    Attributes:
        names: Group names.
        counts: (g,) nodes per group.
        alarm: (g,) nodes past an alarm limit (or with an active alarm).
        warning: (g,) nodes past a warning limit but no alarm limit.
        fields: One :class:`FieldSummary` per key field, in the order asked.
    """

    names: list[str]
    counts: np.ndarray
    alarm: np.ndarray
    warning: np.ndarray
    fields: list[FieldSummary]


def group_summary(index: GroupIndex, arrays: Mapping[str, np.ndarray], keys: Sequence[str],
                  in_alarm: np.ndarray, in_warning: np.ndarray) -> GroupSummary:
    """The summary of every group for ``keys`` (fields of ``arrays``, each (n,))."""
    fields = []
    for key in keys:
        values = arrays.get(key)
        if values is None or np.shape(values) != (index.n,):
            continue
        fields.append(FieldSummary(key, *index.min_mean_max(values)))
    warning = np.asarray(in_warning, bool) & ~np.asarray(in_alarm, bool)
    return GroupSummary(index.names, index.counts, index.count(in_alarm), index.count(warning),
                        fields)


@dataclass
class Histogram:
    """Counts of a field's values in equal bins over their range.

    Attributes:
        counts: (bins,) nodes per bin.
        edges: (bins + 1,) bin edges (wire unit); the last bin includes its right edge.
        missing: Nodes without a finite value (counted in no bin).
    """

    counts: np.ndarray
    edges: np.ndarray
    missing: int


def histogram(values: np.ndarray, bins: int, *, integer: bool = False) -> Histogram:
    """``values`` in at most ``bins`` equal bins from their smallest to their largest
    finite value (one unit wide around a single value).

    With ``integer`` (counts, codes) every bin holds whole numbers: edges fall halfway
    between integers and a bin is a whole number of them wide, so a bin never splits
    the nodes of one value, and two values never look like a range of three.
    """
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    bins = max(int(bins), 1)
    if not finite.size:
        return Histogram(np.zeros(bins, np.intp), np.linspace(0.0, 1.0, bins + 1),
                         int(values.size))
    low, high = float(finite.min()), float(finite.max())
    if integer:
        low, high = math.floor(low), math.ceil(high)
        width = max(math.ceil((high - low + 1) / bins), 1)
        bins = math.ceil((high - low + 1) / width)
        low, high = low - 0.5, low - 0.5 + bins * width
    elif low == high:
        low, high = low - 0.5, high + 0.5
    counts, edges = np.histogram(finite, bins=bins, range=(low, high))
    return Histogram(counts, edges, int(values.size - finite.size))

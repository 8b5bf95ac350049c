"""Events raised during a step, and the one rule that keeps a mass change from flooding.

A model raises an event per node whose state changed (a contact acquired, a limit crossed).
That is a handful a step in a small fleet, and 190,000 on a million-satellite fleet's first
step, when every satellite already in a station's view starts its contact. Each would be
one message on the wire, framed and sent alone, and one dict held here until published.

So per step and per kind, the first ``NODE_EVENTS_PER_STEP`` per-node events (``sat`` >= 0)
are kept as they are; once a kind passes it, that kind's per-node events of the step
become one ``node_events_summary`` event instead (docs/protocol.md, "Mass changes: one
summary event"): how many, counts per group and per categorical key (the station of a
contact, the field of a limit), the first nodes, the worst severity. Below the threshold
nothing changes, so small fleets see exactly the events they saw before. Every kind goes
through this one rule (``raise_event`` and ``raise_node_events``), never a copy per kind.

What a summary holds is bounded by the fleet: one node index and one code per
categorical key per folded event, in numpy arrays, until the step's events are drained.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from twin.protocol.codec import NODE_EVENTS_SUMMARY, SEVERITIES

SUMMARY_KIND = NODE_EVENTS_SUMMARY
"""The kind of the event that stands for a step's many per-node events of one kind."""
NODE_EVENTS_PER_STEP = 1_000
"""Per-node events of one kind published one by one in a step; past it, one summary."""
MAX_PENDING_EVENTS = 20_000
"""Events held until drained. The server drains every step; an engine stepped by a caller
that never drains (a bench, a script) keeps the newest this many, and counts the rest, so
its memory stays flat (it grew ~2 MB a step at a million satellites)."""
DROPPED_KIND = "events_dropped"
"""The kind of the event that says how many were dropped because nobody drained them."""
SUMMARY_FIRST_NODES = 20
"""Node indices a summary lists (the first raised), so a viewer can show a few names."""
SUMMARY_CATEGORIES = 16
"""Values counted by name per key in a summary (the most frequent); the rest as "(other)"."""
_BATCH = 4_096
"""Single events a summary holds as dicts before folding them into arrays."""
_SEVERITY_ORDER = {name: rank for rank, name in enumerate(SEVERITIES)}

GroupIndex = tuple[np.ndarray, Sequence[str]]
"""Each node's group code (index = node) and the groups' names (index = code)."""


@dataclass
class NodeSummary:
    """The per-node events of one kind folded into one summary during a step.

    Attributes:
        kind: The kind folded.
        t_utc: Simulation time of the first event folded.
        severity: The worst severity folded.
        example: The first folded event's message (a sample for people).
        nodes: Chunks of node indices, in the order raised.
        categories: Key -> chunks of its values (ints or strings), aligned with ``nodes``.
    """

    kind: str
    t_utc: float
    severity: str
    example: str
    nodes: list[np.ndarray] = field(default_factory=list)
    categories: dict[str, list[np.ndarray]] = field(default_factory=dict)
    count: int = 0
    _batch: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)

    def add(self, nodes: np.ndarray, severity: str, extra: Mapping[str, Any]) -> None:
        """Fold ``nodes`` (k,) in; ``extra``'s ints and strings (scalars or (k,) arrays)
        are counted per value, its floats left out."""
        self._flush()
        self._add(np.asarray(nodes, dtype=np.int64).reshape(-1), severity, extra)

    def add_one(self, sat: int, severity: str, extra: dict[str, Any]) -> None:
        """Fold one node's event in (kept in a short list, then folded in blocks)."""
        self._batch.append((sat, severity, extra))
        if len(self._batch) >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        """Fold the events ``add_one`` holds in, a block of arrays per key."""
        batch, self._batch = self._batch, []
        if not batch:
            return
        keys = dict.fromkeys(key for _, _, extra in batch for key in extra)
        columns = {}
        for key in keys:
            values = [extra.get(key, "(none)") for _, _, extra in batch]
            if all(isinstance(v, str | bool | int | np.integer) for v in values):
                columns[key] = np.array(values if all(
                    not isinstance(v, str) for v in values) else [str(v) for v in values])
        worst = max((s for _, s, _ in batch), key=_SEVERITY_ORDER.__getitem__)
        self._add(np.fromiter((sat for sat, _, _ in batch), dtype=np.int64, count=len(batch)),
                  worst, columns)

    def _add(self, nodes: np.ndarray, severity: str, extra: Mapping[str, Any]) -> None:
        k = int(nodes.size)
        if not k:
            return
        if _SEVERITY_ORDER[severity] > _SEVERITY_ORDER[self.severity]:
            self.severity = severity
        columns = {}
        for key, value in extra.items():
            column = _category_column(value, k)
            if column is not None:
                columns[key] = column
        for key, column in columns.items():
            if key not in self.categories:  # a key earlier rows lack
                self.categories[key] = [np.full(self.count, "(none)")] if self.count else []
            self.categories[key].append(column)
        for key, chunks in self.categories.items():  # keys these rows lack
            if key not in columns:
                chunks.append(np.full(k, "(none)"))
        self.nodes.append(nodes)
        self.count += k

    def node_array(self) -> np.ndarray:
        """Every node folded, in the order raised (repeats where a node changed twice)."""
        self._flush()
        return np.concatenate(self.nodes) if self.nodes else np.zeros(0, dtype=np.int64)

    def column(self, key: str) -> np.ndarray | None:
        """The values of ``key`` aligned with ``node_array()``, or None if never given."""
        self._flush()
        chunks = self.categories.get(key)
        if not chunks:
            return None
        if any(c.dtype.kind in "US" for c in chunks) and any(
                c.dtype.kind not in "US" for c in chunks):
            chunks = [c.astype(str) for c in chunks]
        return np.concatenate(chunks)

    def event(self, names: Mapping[str, Sequence[str]],
              groups: GroupIndex | None) -> dict[str, Any]:
        """The wire event (``EventLog.raise_event``'s keys and the summary's own)."""
        nodes = self.node_array()
        by: dict[str, dict[str, int]] = {}
        for key in self.categories:
            column = self.column(key)
            if column is not None:
                by[key] = _counts(column, names.get(key))
        by_group: dict[str, int] = {}
        if groups is not None:
            codes, group_names = groups
            counted = np.bincount(codes[nodes], minlength=len(group_names))
            present = np.flatnonzero(counted)
            present = present[np.argsort(-counted[present], kind="stable")]
            by_group = {str(group_names[g]): int(counted[g]) for g in present}
        spread = [f"by {key} " + _top(counts) for key, counts in by.items()]
        if len(by_group) > 1:
            spread.append("by group " + _top(by_group))
        message = (f"{self.count:,} {self.kind} events in one step, summarised: "
                   + "; ".join([*spread, f"first: {self.example}"]))
        return {"kind": SUMMARY_KIND, "sat": -1, "severity": self.severity,
                "message": message, "t_utc": self.t_utc, "of": self.kind,
                "n_events": self.count, "n_nodes": int(np.unique(nodes).size),
                "first_sats": [int(i) for i in nodes[:SUMMARY_FIRST_NODES]],
                "by_group": by_group, "by": by}


def _category_column(value: Any, k: int) -> np.ndarray | None:
    """``value`` as (k,) ints or strings, or None for what is not a category (floats)."""
    if isinstance(value, np.ndarray):
        if value.shape != (k,) or value.dtype.kind not in "iubUS":
            return None
        return value
    if isinstance(value, bool | int | np.integer):
        return np.full(k, int(value), dtype=np.int64)
    if isinstance(value, str):
        return np.full(k, value[:64])
    return None


def _top(counts: Mapping[str, int], shown: int = 6) -> str:
    """``name n, name n, ... and k more`` for a message (the event keeps them all)."""
    items = list(counts.items())
    text = ", ".join(f"{name} {n:,}" for name, n in items[:shown])
    return text + (f" and {len(items) - shown} more" if len(items) > shown else "")


def _counts(column: np.ndarray, names: Sequence[str] | None) -> dict[str, int]:
    """Counts per value, most frequent first, at most ``SUMMARY_CATEGORIES`` named."""
    values, counts = np.unique(column, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    shown: dict[str, int] = {}
    for i in order[:SUMMARY_CATEGORIES]:
        value = values[i]
        if names is not None and column.dtype.kind in "iu" and 0 <= int(value) < len(names):
            label = str(names[int(value)])
        else:
            label = str(value.item() if hasattr(value, "item") else value)
        shown[label] = int(counts[i])
    rest = int(counts[order[SUMMARY_CATEGORIES:]].sum())
    if rest:
        shown["(other)"] = rest
    return shown


@dataclass
class EventLog:
    """Events raised during one step, published after the step's state.

    Attributes:
        t_utc: Simulation time events raised now carry.
        pending: The step's events, as they will be published (summaries at ``drain``).
        counts: Events raised since the start, by kind (folded ones included).
        names: Key -> the names of its integer values (``station`` -> station names), so
            a summary counts stations by name.
        groups: Returns each node's group code and the group names, asked for once, at
            the first summary (the engine's, from the scenario).
        per_node_limit: ``NODE_EVENTS_PER_STEP``; tests lower it.
        max_pending: ``MAX_PENDING_EVENTS``; tests lower it.
        dropped: Events dropped (the oldest) because ``pending`` was full, since the last
            drain.
    """

    t_utc: float = 0.0
    pending: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    names: dict[str, Sequence[str]] = field(default_factory=dict)
    groups: Callable[[], GroupIndex] | None = None
    per_node_limit: int = NODE_EVENTS_PER_STEP
    max_pending: int = MAX_PENDING_EVENTS
    dropped: int = 0
    _node_counts: dict[str, int] = field(default_factory=dict)
    _summaries: dict[str, NodeSummary] = field(default_factory=dict)
    _group_index: GroupIndex | None = None
    drained_summaries: dict[str, NodeSummary] = field(default_factory=dict)
    """The last drain's summaries by folded kind: the alarm table reads their nodes."""

    def raise_event(
        self, kind: str, severity: str, message: str, sat: int = -1, **extra: Any
    ) -> None:
        """Queue an event. ``sat`` is the satellite index or -1 for the fleet or twin."""
        if severity not in SEVERITIES:
            raise ValueError(f"severity {severity!r} not in {SEVERITIES}")
        self.counts[kind] = self.counts.get(kind, 0) + 1
        sat = int(sat)
        if sat >= 0:
            summary = self._summaries.get(kind)
            if summary is None and self._node_counts.get(kind, 0) >= self.per_node_limit:
                summary = self._fold(kind, severity, message)
            if summary is not None:
                summary.add_one(sat, severity, extra)
                return
            self._node_counts[kind] = self._node_counts.get(kind, 0) + 1
        pending = self.pending
        pending.append(
            {"kind": kind, "sat": sat, "severity": severity, "message": message,
             "t_utc": self.t_utc, **extra}
        )
        if len(pending) > self.max_pending:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        """Keep the newest ``max_pending`` (a tenth fewer, so this runs once in a while)."""
        excess = len(self.pending) - self.max_pending * 9 // 10
        del self.pending[:excess]
        self.dropped += excess

    def raise_node_events(self, kind: str, severity: str, sats: np.ndarray,
                          message: Callable[[int], str], **extra: Any) -> None:
        """One event per node of ``sats``, as ``raise_event`` would, without a Python loop
        or a message per node when they pass the step's threshold.

        ``message(i)`` is the text of ``sats[i]``'s event (called only below the
        threshold); each ``extra`` value is a scalar or a (k,) array (that node's value).
        """
        sats = np.asarray(sats).reshape(-1)
        k = int(sats.size)
        if not k:
            return
        if severity not in SEVERITIES:
            raise ValueError(f"severity {severity!r} not in {SEVERITIES}")
        summary = self._summaries.get(kind)
        if summary is None and self._node_counts.get(kind, 0) + k <= self.per_node_limit:
            arrays = {key: value.tolist() for key, value in extra.items()
                      if isinstance(value, np.ndarray)}
            for i, sat in enumerate(sats.tolist()):
                values = {key: arrays[key][i] if key in arrays else value
                          for key, value in extra.items()}
                self.raise_event(kind, severity, message(i), sat=sat, **values)
            return
        if summary is None:
            summary = self._fold(kind, severity, message(0))
        summary.add(sats, severity, extra)
        self.counts[kind] = self.counts.get(kind, 0) + k

    def _fold(self, kind: str, severity: str, message: str) -> NodeSummary:
        """Start ``kind``'s summary for this step and fold its pending per-node events in."""
        kept, folded = [], []
        for event in self.pending:
            (folded if event["kind"] == kind and event["sat"] >= 0 else kept).append(event)
        first = folded[0] if folded else None
        summary = NodeSummary(kind, first["t_utc"] if first else self.t_utc,
                              first["severity"] if first else severity,
                              first["message"] if first else message)
        for event in folded:
            extra = {key: value for key, value in event.items()
                     if key not in ("kind", "sat", "severity", "message", "t_utc")}
            summary.add_one(event["sat"], event["severity"], extra)
        self.pending = kept
        self._summaries[kind] = summary
        return summary

    def close_step(self) -> None:
        """End the step: its summaries join ``pending`` as events, and the next step's
        per-node events are counted from zero (the engine calls this as a step starts)."""
        summaries, self._summaries = self._summaries, {}
        self._node_counts = {}
        if summaries:
            groups = self._groups()
            self.pending.extend(s.event(self.names, groups) for s in summaries.values())
            if len(self.pending) > self.max_pending:
                self._drop_oldest()
        self.drained_summaries = summaries

    def drain(self) -> list[dict[str, Any]]:
        """The events raised since the last drain, each step's summaries after its other
        events; ``drained_summaries`` holds the last step's summaries' nodes."""
        self.close_step()
        events, self.pending = self.pending, []
        if self.dropped:
            events.insert(0, {"kind": DROPPED_KIND, "sat": -1, "severity": "warning",
                              "message": f"{self.dropped:,} events were dropped: nobody took"
                              f" them for {self.max_pending:,} events", "t_utc": self.t_utc,
                              "count": self.dropped})
            self.dropped = 0
        return events

    def _groups(self) -> GroupIndex | None:
        if self._group_index is None and self.groups is not None:
            self._group_index = self.groups()
        return self._group_index

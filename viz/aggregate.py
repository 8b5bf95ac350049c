"""The ``aggregate`` message for viewers: checked once as it arrives, read by the fleet view.

docs/protocol.md, "Selective streams and fleet aggregates (issue 22)", describes it. The
check raises `WireError` naming the first thing out of place, so a bad message is dropped
and counted like any other (viz.stream) and the view only ever reads checked maps.
"""

from __future__ import annotations

import math
from typing import Any

from twin.protocol.codec import Message, WireError

MAX_AGGREGATE_FIELDS = 256
MAX_GROUPS = 10_000
MAX_WORST = 100
MAX_BINS = 256


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and (
        not isinstance(value, float) or math.isfinite(value))


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _bad(what: str, value: Any, expected: str) -> WireError:
    text = repr(value)
    return WireError(f"aggregate {what} is {text[:60]}, expected {expected}")


def check_summary(where: str, summary: Any) -> None:
    """One group's (or the fleet's) summary of one field."""
    if not isinstance(summary, dict):
        raise _bad(where, summary, "a map")
    for key in ("count", "nan", "under", "over"):
        if not _count(summary.get(key)):
            raise _bad(f"{where}.{key}", summary.get(key), "a count")
    for key in ("min", "mean", "max", "p5", "p50", "p95"):
        value = summary.get(key)
        if not (_number(value) or (value is None and summary["count"] == 0)):
            raise _bad(f"{where}.{key}", value, "a finite number (nil without values)")
    hist = summary.get("hist")
    if not (isinstance(hist, list) and 0 < len(hist) <= MAX_BINS and all(map(_count, hist))):
        raise _bad(f"{where}.hist", hist, f"a list of 1 to {MAX_BINS} counts")
    for key in ("worst", "highest", "lowest"):  # highest and lowest: absent from older twins
        nodes = summary.get(key)
        if nodes is None and key != "worst":
            continue
        if not (isinstance(nodes, list) and len(nodes) <= MAX_WORST and all(
                isinstance(w, list) and len(w) == 2 and _count(w[0]) and _number(w[1])
                for w in nodes)):
            raise _bad(f"{where}.{key}", nodes, "a list of [node, value]")
    states = summary.get("states")
    if states is not None and not (isinstance(states, dict) and all(
            _count(states.get(k)) for k in ("ok", "warn", "alarm"))):
        raise _bad(f"{where}.states", states, "{ok, warn, alarm} counts")


def check_aggregate(message: Message) -> None:
    """Raise `WireError` unless an ``aggregate`` message has the documented shape."""
    header = message.header
    groups = header.get("groups")
    if not (isinstance(groups, list) and len(groups) <= MAX_GROUPS
            and all(isinstance(g, str) for g in groups)):
        raise _bad("groups", groups, "a list of group names")
    fields = header.get("fields")
    if not (isinstance(fields, dict) and len(fields) <= MAX_AGGREGATE_FIELDS):
        raise _bad("fields", fields, "a map of field name to summary")
    for name, entry in fields.items():
        if not isinstance(name, str) or not isinstance(entry, dict):
            raise _bad("field", name, "a name and a map")
        edges = entry.get("edges")
        if not (isinstance(edges, list) and 2 <= len(edges) <= MAX_BINS + 1
                and all(map(_number, edges))):
            raise _bad(f"{name}.edges", edges, "a list of finite numbers")
        check_summary(f"{name}.fleet", entry.get("fleet"))
        by_group = entry.get("groups")
        if not isinstance(by_group, dict):
            raise _bad(f"{name}.groups", by_group, "a map of group to summary")
        for group, summary in by_group.items():
            check_summary(f"{name}.groups[{str(group)[:40]}]", summary)
            if len(summary["hist"]) != len(edges) - 1:
                raise _bad(f"{name}.groups[{str(group)[:40]}].hist", len(summary["hist"]),
                           f"{len(edges) - 1} bins, one per pair of edges")

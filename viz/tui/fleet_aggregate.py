"""The fleet view from the twin's ``aggregate`` message, for fleets whose default ``state``
carries no per-node values (docs/protocol.md, "Selective streams and fleet aggregates").

The same three parts as from the arrays (viz.tui.fleet), for the chosen field: a row for
the fleet and one per group (nodes, nodes past an alarm and a warning limit, min · mean ·
max and p5 · p50 · p95), the twin's worst nodes (its top 5 nearest a limit, or highest,
or lowest: ``s``), and its histogram on the field's fixed bins. Nothing here passes over
nodes: the twin did that.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from rich.text import Text

from twin.protocol.ranking import LimitBand
from viz.fleet_stats import HIGHEST, LOWEST, NEAREST
from viz.tui.fleet import (
    LEVEL_TEXT_STYLE,
    compact_limits,
    margin_texts,
    numbers_text,
    order_words,
    worst_subtitle,
    worst_title,
)
from viz.tui.levels import limit_levels

if TYPE_CHECKING:
    from viz.tui.fleet import FleetView
    from viz.tui.model import Column

STATS = ("min", "mean", "max", "p5", "p50", "p95")


def _stats_texts(summary: dict[str, Any], column: Column) -> tuple[Text, Text]:
    """``min · mean · max`` and ``p5 · p50 · p95`` in the column's scale."""
    values = np.array([np.nan if summary.get(k) is None else summary[k] for k in STATS],
                      dtype=np.float64)
    texts = numbers_text(values, column, min_decimals=1)
    dot = Text(" · ")
    return dot.join(texts[:3]), dot.join(texts[3:])


def _count_text(value: int, style: str) -> Text:
    return Text(f"{value:,}", style=style if value else "dim", justify="right")


def show_aggregate(view: FleetView, column: Column) -> None:
    """Fill the fleet view's groups, worst list and histogram from ``model.aggregate``."""
    model = view.model
    aggregate = model.aggregate
    entry = aggregate["fields"][column.key]
    headings: list[str | Text] = [
        "Group", Text("Nodes", justify="right"), Text("Alarm", justify="right"),
        Text("Warn", justify="right"), Text(f"{column.heading}  min · mean · max",
                                            justify="center"),
        Text("p5 · p50 · p95", justify="center")]
    rows = []
    for name, summary in [("all nodes", entry["fleet"]), *entry["groups"].items()]:
        states = summary.get("states") or {}
        spread, percentiles = _stats_texts(summary, column)
        rows.append([name or "(none)", Text(f"{summary['count'] + summary['nan']:,}",
                                            justify="right"),
                     _count_text(int(states.get("alarm", 0)), "bold white on red"),
                     _count_text(int(states.get("warn", 0)), "bold yellow"),
                     spread, percentiles])
    view.groups_table.fill(headings, rows)
    groups = aggregate.get("groups", [])
    view.groups_table.border_title = (
        f"Fleet · {int(aggregate.get('n_sats', model.n)):,} nodes in {len(groups)} "
        f"group{'s' if len(groups) != 1 else ''} · the twin's aggregate, step "
        f"{aggregate.get('step', '?')}")
    view.groups_table.border_subtitle = "alarm/warn: nodes past this field's limits · c field"
    # The list of the view's order: the twin ranks the worst nodes (nearest a limit) and
    # lists the highest and lowest of every field (docs/protocol.md).
    key = {NEAREST: "worst", HIGHEST: "highest", LOWEST: "lowest"}[view.order]
    worst = entry["fleet"].get(key)
    sats = np.array([w[0] for w in worst or ()], dtype=np.intp)
    view.worst_sats = sats
    worst_values = np.array([w[1] for w in worst or ()], dtype=np.float64)
    texts = numbers_text(worst_values, column)
    levels = limit_levels(worst_values, column.limits).tolist()
    headings: list[str | Text] = ["#", "Node", Text(column.heading, justify="right"),
                                  "Group"]
    rows = [[Text(str(rank), style="dim", justify="right"),
             Text(model.name(sat), style=LEVEL_TEXT_STYLE.get(level, "")), text,
             model.group(sat)]
            for rank, (sat, text, level) in enumerate(zip(sats.tolist(), texts, levels,
                                                          strict=True), start=1)]
    band = LimitBand.from_limits(column.limits)
    if view.order == NEAREST and band is not None and rows:
        # The margin to the nearer limit (as the array view shows it).
        for row, margin in zip(rows, margin_texts(worst_values, band, column), strict=True):
            row.append(margin)
        headings.append("Margin")
    view.worst_table.fill(headings, rows)
    view.worst_table.border_title = (
        worst_title(len(rows), column, view.order) if worst is not None else
        f"{order_words(column, view.order).capitalize()} by {column.label}: this twin's "
        "aggregate does not list them")
    view.worst_table.border_subtitle = worst_subtitle(column, view.order)
    fleet = entry["fleet"]
    outside = int(fleet["under"]) + int(fleet["over"])
    notes = [f"{outside:,} outside these bins" if outside else "",
             f"{int(fleet['nan']):,} without a value" if fleet["nan"] else ""]
    view.histogram.show_counts(np.array(fleet["hist"], dtype=np.int64),
                               np.array(entry["edges"], dtype=np.float64),
                               " · ".join(n for n in notes if n), column)
    view.histogram.border_title = f"{column.heading} over {int(fleet['count']):,} nodes"
    view.histogram.border_subtitle = compact_limits(column)

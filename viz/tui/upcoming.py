"""The "Coming up" panel: the twin's next timeline entries and its on-board rules.

Built from ``meta.autonomy`` only (docs/protocol.md, "Timelines and rules"): the pending
entries with their due time (shown as a countdown in simulation time) or the event they
wait for, and each rule's firings. A meta without it (an older twin, a replay) hides the
panel; malformed entries are skipped, never raised.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

MAX_SHOWN = 5


def countdown(seconds: float) -> str:
    """``in 4m05s`` / ``in 2h10m`` / ``now``."""
    if seconds <= 0.5:
        return "now"
    s = round(seconds)
    if s < 3600:
        return f"in {s // 60}m{s % 60:02d}s" if s >= 60 else f"in {s}s"
    if s < 86400:
        return f"in {s // 3600}h{s % 3600 // 60:02d}m"
    return f"in {s // 86400}d{s % 86400 // 3600:02d}h"


def upcoming_text(autonomy: Any, t_utc: float | None) -> Text:
    """The panel's text for ``meta.autonomy`` at simulation time ``t_utc``."""
    text = Text()
    if not isinstance(autonomy, dict):
        text.append("no timeline from this twin", style="dim")
        return text
    entries = [e for e in autonomy.get("timeline", []) if isinstance(e, dict)]
    pending = autonomy.get("timeline_pending", len(entries))
    if not entries:
        text.append("nothing scheduled\n", style="dim")
    for entry in entries[:MAX_SHOWN]:
        cmds = ", ".join(str(c.get("cmd", "?")) for c in entry.get("commands", [])
                         if isinstance(c, dict))
        due = entry.get("due_t_utc")
        if isinstance(due, int | float) and t_utc is not None:
            text.append(f"{countdown(float(due) - t_utc):>9} ", style="bold cyan")
        else:
            text.append("  waiting ", style="yellow")
        text.append(cmds[:40])
        trigger = str(entry.get("trigger", ""))
        if trigger and due is None:  # the event it waits for, on a line of its own
            text.append(f"\n  ↳ {trigger.removeprefix('next ')[:60]}\n", style="dim")
        else:
            text.append(f"  {str(entry.get('name', ''))[:24]}\n", style="dim")
    if isinstance(pending, int) and pending > MAX_SHOWN:
        text.append(f"  … {pending - MAX_SHOWN} more (timeline_list)\n", style="dim")
    rules = [r for r in autonomy.get("rules", []) if isinstance(r, dict)]
    if rules:
        text.append("rules ", style="bold")
        for rule in rules:
            fired = rule.get("firings", 0)
            style = "dim" if not rule.get("enabled", True) else (
                "bold yellow" if rule.get("latched") else "green")
            name = str(rule.get("name", "?"))[:20]
            off = " off" if not rule.get("enabled", True) else ""
            text.append(f"{name}{off} ×{fired}  ", style=style)
    return text


class UpcomingPanel(Static):
    """What the timeline runs next, and the rules; redrawn from meta and each state."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.autonomy: Any = None
        self.border_title = "Coming up"

    def take(self, autonomy: Any) -> None:
        self.autonomy = autonomy
        # Shown only for a twin that has a timeline (a replay's or an older twin's meta has
        # none): the events and alarms keep the room otherwise.
        self.display = isinstance(autonomy, dict)

    def show(self, t_utc: float | None) -> None:
        self.update(upcoming_text(self.autonomy, t_utc))

"""The dashboard's alarm book: alarm events stay active until the operator acknowledges them.

A mixin of ``viz.tui.model.FleetModel``. Repeats of an alarm (same kind, same node) are
counted on one entry; a flood of distinct alarms keeps the newest ``MAX_ALARMS``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from twin.protocol.codec import Message
from viz.quantity import Catalog
from viz.tui.levels import ALARM


@dataclass
class ActiveAlarm:
    """An alarm event the operator has not acknowledged yet (repeats are counted)."""

    kind: str
    sat: int
    message: str
    t_utc: float
    count: int = 1
    alarm_id: int | None = None  # the twin's id, when the twin keeps the table
    state: str = "active_unack"
    severity: str = "alarm"



# Most active (unacknowledged) alarms kept; one per kind and node.
MAX_ALARMS = 10_000


def _index(value: Any, default: int) -> int:
    """``value`` if it is an int (not a bool), else ``default``: for indices from the stream."""
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _seconds(value: Any, default: float) -> float:
    """``value`` as a finite float, else ``default``."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return default



class AlarmBook:
    """Events seen and the active alarms of a ``FleetModel``.

    The host class provides the catalog (``quantities``) the messages read from, the
    fleet's size and each node's worst limit level (``worst``).
    """

    alarms: dict[tuple[str, int], ActiveAlarm]
    events_seen: int
    quantities: Catalog
    n: int
    worst: np.ndarray

    def apply_alarm_table(self, entries: list[dict[str, Any]]) -> None:
        """The twin's alarm table replaces what the events alone told (twin.runtime.alarms):
        states, acknowledgements and shelving are the twin's, shared by every viewer."""
        self.twin_keeps_alarms = True
        # An entry with its last reading (value and limit, residual and threshold) reads
        # as the event did, in the table's units; else the twin's text.
        self.alarms = {
            (f"{e['kind']}:{e['parameter']}", e["sat"]): ActiveAlarm(
                e["kind"], e["sat"], self.event_text({"field": e["parameter"], **e}),
                _seconds(e.get("last_t_utc"), 0.0),
                int(e.get("count", 1)), e["id"], e["state"], e["severity"])
            for e in entries[:MAX_ALARMS]}

    def apply_event(self, event: Message | dict[str, Any]) -> dict[str, Any]:
        """Record an event; alarms become active until acknowledged. Returns the event map.

        Once the twin's alarm table has arrived, it alone says which alarms there are.
        """
        body = event.header if isinstance(event, Message) else event
        self.events_seen += 1
        if body.get("severity") == "alarm" and not getattr(self, "twin_keeps_alarms", False):
            key = (str(body.get("kind", "?")), _index(body.get("sat"), -1))
            active = self.alarms.get(key)
            if active is None:
                if len(self.alarms) >= MAX_ALARMS:  # a flood of distinct alarms: oldest go
                    self.alarms.pop(min(self.alarms, key=lambda k: self.alarms[k].t_utc))
                self.alarms[key] = ActiveAlarm(key[0], key[1], self.event_text(body),
                                               _seconds(body.get("t_utc"), 0.0))
            else:
                active.count += 1
                active.message = self.event_text(body)
                active.t_utc = _seconds(body.get("t_utc"), active.t_utc)
        return body

    def event_text(self, body: dict[str, Any]) -> str:
        """An event's text, its values in the field's display unit (the table's)."""
        return self.quantities.event_text(body)

    def acknowledge(self, key: tuple[str, int] | None = None) -> int:
        """Acknowledge one active alarm (or all with ``None``); returns how many."""
        if key is None:
            count = len(self.alarms)
            self.alarms.clear()
            return count
        return 1 if self.alarms.pop(key, None) is not None else 0

    @property
    def in_alarm(self) -> np.ndarray:
        """(n,) bool: a field past an alarm limit, or an unacknowledged alarm event."""
        flags = self.worst >= ALARM if self.worst.shape == (self.n,) else np.zeros(self.n, bool)
        for _, sat in self.alarms:
            if 0 <= sat < self.n:
                flags[sat] = True
        return flags

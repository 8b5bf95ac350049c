"""Alarms on the wire: which events raise and clear them, and what an alarm entry holds.

An alarm belongs to a node and a parameter (``sat``, ``parameter``), or to the twin as a
whole (``sat`` -1). It is raised by an event its source declares (``AlarmKind``: a model's
registry entry, the engine's or the server's own) and, where the condition can end, cleared
by another. Its states, as in Yamcs:

- ``active_unack``: the condition holds, nobody has acknowledged it;
- ``active_ack``: the condition holds, acknowledged;
- ``rtn_unack``: returned to normal, still unacknowledged;
- ``shelved``: hidden until a wall time, then back as it is then;
- cleared: acknowledged and normal (or normal after acknowledgement): it leaves the table.

docs/protocol.md ("Alarms") documents the entry and the commands.
"""

from __future__ import annotations

from dataclasses import dataclass

STATES = ("active_unack", "active_ack", "rtn_unack", "shelved")
SEVERITY_RANK = {"warning": 1, "alarm": 2}


@dataclass(frozen=True)
class AlarmKind:
    """An event kind that raises an alarm.

    Attributes:
        clear: The event kind that ends the condition (same node and parameter), or None
            for a momentary one: it is at once ``rtn_unack``, there until acknowledged.
        parameter: The event key naming the parameter (``field``, ``model``, ``testbed``);
            empty: the event kind itself is the parameter.
        per_node: The alarm is the node's (the event's ``sat``); False: the twin's.
    """

    clear: str | None = None
    parameter: str = ""
    per_node: bool = True

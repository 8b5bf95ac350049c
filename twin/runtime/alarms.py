"""The alarm table: every alarm's lifecycle, kept by the twin so a late viewer sees the present.

Events raise and clear alarms as their sources declare (twin.protocol.alarms.AlarmKind);
operators acknowledge, shelve and unshelve them by command. The table is published as the
``alarms`` message after every change (at most once a pass) and every few seconds (a late
joiner has it within ``SNAPSHOT_INTERVAL_S``), and answers the ``alarms`` command; the
last ``EVENT_HISTORY`` events answer ``events since=SEQ``. Both are bounded.
"""

from __future__ import annotations

import itertools
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from twin.core.events import SUMMARY_KIND, NodeSummary
from twin.protocol.alarms import SEVERITY_RANK, AlarmKind

MAX_ALARMS = 10_000
"""Alarms held at once; past it the oldest returned-to-normal go first, then new ones are
counted (``dropped``) instead of held."""
EVENT_HISTORY = 1_000
SNAPSHOT_INTERVAL_S = 1.0
"""A late viewer has the table within this (and a pass): the issue asks for 2 s."""
MAX_SHELVE_S = 7 * 86400.0

SUMMARY_ALARM = AlarmKind(None, "of", per_node=False)
"""A summary of many nodes' alarm events (twin.core.events): one momentary alarm of the
twin, its parameter the kind summarised; per-node alarms of that many nodes would fill
the table."""

Key = tuple[str, int, str]
"""(raising event kind, node or -1, parameter)."""


@dataclass
class Alarm:
    """One alarm and its lifecycle."""

    id: int
    kind: str
    sat: int
    parameter: str
    severity: str
    message: str
    first_t_utc: float
    last_t_utc: float
    count: int = 1
    active: bool = True  # the condition holds
    acked: bool = False
    shelved_until_utc: float | None = None  # wall time
    notes: list[dict[str, Any]] = field(default_factory=list)  # who did what, with comments
    reading: dict[str, Any] = field(default_factory=dict)  # the last event's values (READING)

    @property
    def state(self) -> str:
        if self.shelved_until_utc is not None:
            return "shelved"
        if self.active:
            return "active_ack" if self.acked else "active_unack"
        return "rtn_unack"

    def entry(self) -> dict[str, Any]:
        """The alarm as the ``alarms`` message and command carry it."""
        return {"id": self.id, "kind": self.kind, "sat": self.sat, "parameter": self.parameter,
                "severity": self.severity, "state": self.state, "active": self.active,
                "message": self.message, "count": self.count,
                "first_t_utc": self.first_t_utc, "last_t_utc": self.last_t_utc,
                "shelved_until_utc": self.shelved_until_utc, "notes": self.notes[-5:],
                **self.reading}


READING_NUMBERS = ("value", "limit", "residual", "threshold")
READING_WORDS = ("level", "testbed")
"""What an alarm keeps of its last event besides the text, where the event has it: a limit's
value, limit and level, a mirror residual's residual, threshold and testbed, in the field's
wire unit, so that a viewer shows them in its own units (°C where the message says K)."""


def reading_of(event: dict[str, Any]) -> dict[str, Any]:
    """The finite numbers and short words of ``READING_*`` that ``event`` carries."""
    out: dict[str, Any] = {}
    for key in READING_NUMBERS:
        value = event.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and \
                math.isfinite(value):
            out[key] = float(value)
    for key in READING_WORDS:
        value = event.get(key)
        if isinstance(value, str):
            out[key] = value[:64]
    return out


class AlarmTable:
    """Alarms by (kind, node, parameter), raised and cleared by events, acted on by people.

    Args:
        kinds: Raising event kind -> its ``AlarmKind`` (every source's, merged).
        wall_clock: Wall time, POSIX s (shelving is in wall time).
    """

    def __init__(self, kinds: Mapping[str, AlarmKind],
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.kinds = dict(kinds)
        self.clearing = {kind.clear: raising for raising, kind in self.kinds.items()
                         if kind.clear is not None}
        self.wall_clock = wall_clock
        self.alarms: dict[Key, Alarm] = {}
        self.events: deque[dict[str, Any]] = deque(maxlen=EVENT_HISTORY)
        self.changed = True  # publish once at start
        self.dropped = 0
        self._ids = itertools.count(1)

    # -- events -----------------------------------------------------------------------

    def observe(self, event: dict[str, Any], summary: NodeSummary | None = None) -> None:
        """Take one published event (with its ``seq``): keep it, and raise or clear.

        ``summary``: the nodes behind a ``node_events_summary`` event, to clear the alarms
        of the nodes a summarised clearing event names.
        """
        self.events.append(event)
        kind = event.get("kind")
        if kind == SUMMARY_KIND:
            self._observe_summary(event, summary)
        elif kind in self.kinds:
            self._raise(kind, self.kinds[kind], event)
        elif kind in self.clearing:
            raising = self.clearing[kind]
            alarm = self.alarms.get(self._key(raising, self.kinds[raising], event))
            if alarm is not None and alarm.active:
                self._return_to_normal(alarm, event)

    def _return_to_normal(self, alarm: Alarm, event: dict[str, Any]) -> None:
        alarm.active = False
        alarm.last_t_utc = float(event.get("t_utc", alarm.last_t_utc))
        if alarm.acked and alarm.shelved_until_utc is None:
            self._clear(alarm)
        self.changed = True

    def _observe_summary(self, event: dict[str, Any], summary: NodeSummary | None) -> None:
        """A step's many events of one kind: an alarm of the twin if they raise alarms;
        if they clear them, each held alarm of a node (and parameter) they name clears."""
        of = event.get("of")
        if of in self.kinds:
            if event.get("severity") in SEVERITY_RANK:
                self._raise(SUMMARY_KIND, SUMMARY_ALARM, event)
            return
        if of not in self.clearing or summary is None:
            return
        raising = self.clearing[of]
        spec = self.kinds[raising]
        held = [a for a in self.alarms.values() if a.kind == raising and a.active]
        if not held:
            return
        nodes = summary.node_array()
        parameters = summary.column(spec.parameter) if spec.parameter else None
        order = np.argsort(nodes, kind="stable")
        sorted_nodes = nodes[order]
        for alarm in held:
            if spec.per_node:
                lo, hi = np.searchsorted(sorted_nodes, (alarm.sat, alarm.sat + 1))
                rows = order[lo:hi]
            else:
                rows = order
            if not rows.size:
                continue
            if parameters is not None and alarm.parameter not in {
                    str(v)[:128] for v in np.unique(parameters[rows]).tolist()}:
                continue
            self._return_to_normal(alarm, event)

    def _key(self, kind: str, spec: AlarmKind, event: dict[str, Any]) -> Key:
        sat = int(event.get("sat", -1)) if spec.per_node else -1
        parameter = str(event.get(spec.parameter, "")) if spec.parameter else kind
        return kind, sat, parameter[:128]

    def _raise(self, kind: str, spec: AlarmKind, event: dict[str, Any]) -> None:
        key = self._key(kind, spec, event)
        t = float(event.get("t_utc", 0.0))
        severity = event.get("severity", "alarm")
        severity = severity if severity in SEVERITY_RANK else "alarm"
        message = str(event.get("message", ""))[:500]
        alarm = self.alarms.get(key)
        if alarm is None:
            if len(self.alarms) >= MAX_ALARMS and not self._make_room():
                self.dropped += 1
                return
            alarm = Alarm(next(self._ids), kind, key[1], key[2], severity, message, t, t)
            self.alarms[key] = alarm
        else:
            alarm.count += 1
            alarm.last_t_utc = t
            alarm.message = message
            escalated = SEVERITY_RANK[severity] > SEVERITY_RANK[alarm.severity]
            if escalated:
                alarm.severity = severity
            if escalated or not alarm.active:
                alarm.acked = False  # worse, or back: someone must look again
            alarm.active = True
        alarm.reading = reading_of(event)
        if spec.clear is None:
            alarm.active = False  # momentary: returned to normal at once
        self.changed = True

    def _make_room(self) -> bool:
        """Drop the oldest alarm that is not active; False if every one is."""
        for key, alarm in self.alarms.items():
            if not alarm.active:
                del self.alarms[key]
                return True
        return False

    def _clear(self, alarm: Alarm) -> None:
        self.alarms.pop((alarm.kind, alarm.sat, alarm.parameter), None)

    # -- people -----------------------------------------------------------------------

    def select(self, ids: Iterable[int] | None = None, sat: int | str | None = None,
               parameter: str | None = None, severity: str | None = None) -> list[Alarm]:
        """The alarms named by ids, or matching every filter given (``sat`` "all": any)."""
        chosen = list(self.alarms.values())
        if ids is not None:
            wanted = set(ids)
            chosen = [a for a in chosen if a.id in wanted]
        if sat is not None and sat != "all":
            chosen = [a for a in chosen if a.sat == sat]
        if parameter is not None:
            chosen = [a for a in chosen if a.parameter == parameter or a.kind == parameter]
        if severity is not None:
            chosen = [a for a in chosen if a.severity == severity]
        return chosen

    def acknowledge(self, alarms: list[Alarm], who: str, comment: str) -> int:
        """Acknowledge; an alarm already back to normal leaves the table. Returns how many."""
        for alarm in alarms:
            alarm.acked = True
            self._note(alarm, who, "ack", comment)
            if not alarm.active and alarm.shelved_until_utc is None:
                self._clear(alarm)
        self.changed = self.changed or bool(alarms)
        return len(alarms)

    def shelve(self, alarms: list[Alarm], duration_s: float, who: str, comment: str) -> int:
        until = self.wall_clock() + min(duration_s, MAX_SHELVE_S)
        for alarm in alarms:
            alarm.shelved_until_utc = until
            self._note(alarm, who, f"shelve {duration_s:g} s", comment)
        self.changed = self.changed or bool(alarms)
        return len(alarms)

    def unshelve(self, alarms: list[Alarm], who: str, comment: str) -> int:
        for alarm in alarms:
            self._note(alarm, who, "unshelve", comment)
            self._unshelve(alarm)
        self.changed = self.changed or bool(alarms)
        return len(alarms)

    def _unshelve(self, alarm: Alarm) -> None:
        """Back as it is now: active, or returned to normal and (if acked) cleared."""
        alarm.shelved_until_utc = None
        if not alarm.active and alarm.acked:
            self._clear(alarm)

    def _note(self, alarm: Alarm, who: str, action: str, comment: str) -> None:
        alarm.notes.append({"wall_utc": self.wall_clock(), "who": who, "action": action,
                            "comment": comment[:500]})
        del alarm.notes[:-20]  # the last few: the audit file has them all

    def tick(self) -> None:
        """Shelved alarms whose time is up return."""
        now = self.wall_clock()
        for alarm in [a for a in self.alarms.values()
                      if a.shelved_until_utc is not None and a.shelved_until_utc <= now]:
            self._unshelve(alarm)
            self.changed = True

    # -- what viewers get -------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The table as the ``alarms`` message's body and the ``alarms`` command's reply."""
        alarms = sorted(self.alarms.values(),
                        key=lambda a: (-SEVERITY_RANK[a.severity], -a.last_t_utc))
        return {"alarms": [a.entry() for a in alarms],
                "n_active": sum(a.active for a in alarms),
                "n_unacknowledged": sum(not a.acked for a in alarms),
                "n_shelved": sum(a.shelved_until_utc is not None for a in alarms),
                "dropped": self.dropped}

    def events_since(self, seq: int, limit: int = EVENT_HISTORY) -> list[dict[str, Any]]:
        """Events kept with a ``seq`` above ``seq``, oldest first, at most ``limit``."""
        return [e for e in self.events if e.get("seq", -1) > seq][:limit]

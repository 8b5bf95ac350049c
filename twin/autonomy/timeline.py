"""Command timelines: command maps due at a simulation time or after an orbital event.

An entry (``[[timeline]]`` in the scenario or in a ``--timeline`` file, or
``timeline_add``) holds one or more command maps, exactly as sent on the command socket,
and when they run:

- ``at`` (UTC, a TOML datetime or ISO text) or ``at_s`` (seconds after the epoch);
- ``after`` an event: ``{event = "eclipse_entry" | "eclipse_exit", sat = NODE}`` or
  ``{event = "aos" | "los", station = NAME, sat = NODE}`` (either may be left out: any),
  plus ``offset_s`` (>= 0). The next such event after the entry was loaded counts.

An entry is due at time T and runs on the first step ending at or after T: at most one
step late. An event is seen on the step in which it happens (sunlit fraction crossing 0.5,
a station's contact mask changing), so an event-relative entry runs at most one step
after event + offset. Events are found as array differences over the fleet each step;
only the entries (few) are looped over.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from twin.autonomy.checks import Table, check_commands
from twin.core.subsystem import CommandRejected
from twin.protocol.commands import CommandSpec, SatelliteNames
from twin.scenario.errors import ScenarioError

EVENTS = ("eclipse_entry", "eclipse_exit", "aos", "los")
SUNLIT_EDGE = 0.5
"""A node is in eclipse when less than half the Sun's disc is visible (mid-penumbra)."""
MAX_ENTRIES = 10_000
MAX_KEPT_DONE = 200
"""Finished entries kept for ``timeline_list``; older ones are forgotten."""
ENTRY_KEYS = {"name", "at", "at_s", "after", "offset_s", "command", "commands", "role"}
AFTER_KEYS = {"event", "sat", "station"}


@dataclass(frozen=True)
class Trigger:
    """An orbital event: which kind, of which node and station (-1: any)."""

    event: str
    sat: int = -1
    station: int = -1

    def words(self, satellites: SatelliteNames, stations: Sequence[str]) -> str:
        node = "any node" if self.sat < 0 else satellites.name_of(self.sat)
        where = "" if self.station < 0 else f" of {stations[self.station]}"
        return f"next {self.event}{where} ({node})"


@dataclass
class Entry:
    """One timeline entry and where it stands."""

    id: int
    name: str
    commands: tuple[dict[str, Any], ...]
    due_t_utc: float  # NaN while waiting for its trigger
    trigger: Trigger | None
    offset_s: float
    roles: tuple[str, ...]
    added_by: str
    state: str = "pending"  # pending, done, failed, cancelled
    outcomes: list[str] = field(default_factory=list)

    def entry(self, satellites: SatelliteNames, stations: Sequence[str]) -> dict[str, Any]:
        when = ("" if self.trigger is None else
                self.trigger.words(satellites, stations) + f" + {self.offset_s:g} s")
        due = None if np.isnan(self.due_t_utc) else self.due_t_utc
        return {"id": self.id, "name": self.name, "state": self.state, "due_t_utc": due,
                "trigger": when, "commands": [dict(c) for c in self.commands],
                "added_by": self.added_by, "outcomes": self.outcomes[-len(self.commands):]}


def parse_time(table: Table, epoch_utc: float) -> float | None:
    """``at`` (datetime or ISO text) or ``at_s`` (after the epoch) as POSIX s; None if
    neither is given."""
    if table.has("at") and table.has("at_s"):
        raise table.error("at", "give 'at' or 'at_s', not both")
    if table.has("at_s"):
        return epoch_utc + table.number("at_s", low=0.0, high=100 * 365 * 86400.0)
    if not table.has("at"):
        return None
    raw = table.raw["at"]
    if isinstance(raw, str):
        try:
            raw = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError as exc:
            raise table.error("at", f"{raw!r:.60} is not an ISO time like "
                              "2025-03-20T12:00:00Z") from exc
    if not isinstance(raw, datetime) or raw.tzinfo is None:
        raise table.error("at", "must be a UTC time with its zone, e.g. 2025-03-20T12:00:00Z")
    return raw.astimezone(UTC).timestamp()


class Timeline:
    """The entries of one twin and the event edges they wait for.

    Args:
        specs: The command catalog.
        satellites: Resolves node names.
        stations: Station names, by index.
        epoch_utc: The scenario's epoch, POSIX s.
    """

    def __init__(self, specs: Mapping[str, CommandSpec], satellites: SatelliteNames,
                 stations: Sequence[str], epoch_utc: float) -> None:
        self.specs = specs
        self.satellites = satellites
        self.stations = list(stations)
        self.epoch_utc = epoch_utc
        self.entries: dict[int, Entry] = {}
        self._ids = itertools.count(1)
        self._sunlit: np.ndarray | None = None
        self._contact: np.ndarray | None = None

    # -- loading ----------------------------------------------------------------------

    def load(self, raw: Any, source: str, key: str = "timeline",
             roles: tuple[str, ...] = ("engineer",), added_by: str = "scenario") -> list[int]:
        """Add ``[[timeline]]`` tables; returns their ids.

        Raises:
            ScenarioError: Naming file and key (``timeline[3].after.station``).
        """
        if not isinstance(raw, list):
            raise ScenarioError(source, key, "must be [[timeline]] tables")
        tables = [Table(source, f"{key}[{i}]", item, ENTRY_KEYS) for i, item in enumerate(raw)]
        return [self.add(table, roles, added_by) for table in tables]

    def add(self, table: Table, roles: tuple[str, ...], added_by: str) -> int:
        """Check one entry and add it; returns its id (ScenarioError names the key)."""
        if len(self.entries) >= MAX_ENTRIES:
            self.forget_done()
            if len(self.entries) >= MAX_ENTRIES:
                raise table.error("", f"the timeline holds {MAX_ENTRIES} entries; cancel some")
        if table.has("command") == table.has("commands"):
            raise table.error("command", "give 'command' (one map) or 'commands' (a list)")
        commands = check_commands(table, "command" if table.has("command") else "commands",
                                  self.specs, self.satellites, node_sat=False)
        for i, request in enumerate(commands):
            if self.specs[request["cmd"]].name.startswith("timeline_"):
                raise table.error(f"command[{i}]", "a timeline entry does not edit the "
                                  "timeline")
        due = parse_time(table, self.epoch_utc)
        trigger = None
        if table.has("after"):
            if due is not None:
                raise table.error("after", "give a time ('at', 'at_s') or 'after', not both")
            trigger = self._trigger(table.table("after", AFTER_KEYS))
        elif due is None:
            raise table.error("at", "when? give 'at' (UTC), 'at_s' (after the epoch) or "
                              "'after' (an event)")
        offset = table.number("offset_s", 0.0, 0.0, 30 * 86400.0)
        entry_id = next(self._ids)
        name = table.text("name", f"entry-{entry_id}")
        self.entries[entry_id] = Entry(entry_id, name, commands,
                                       np.nan if due is None else due, trigger, offset,
                                       roles, added_by)
        return entry_id

    def _trigger(self, after: Table) -> Trigger:
        event = after.text("event", choices=EVENTS)
        sat = -1
        if after.has("sat"):
            try:
                resolved = self.satellites.resolve("sat", after.raw["sat"])
            except CommandRejected as exc:
                raise after.error("sat", str(exc)) from exc
            sat = int(resolved)
        station = -1
        if after.has("station"):
            if not event.startswith(("aos", "los")):
                raise after.error("station", f"{event} has no station")
            name = after.text("station")
            if name not in self.stations:
                raise after.error("station", f"no station {name!r:.60}; stations: "
                                  f"{', '.join(self.stations)}")
            station = self.stations.index(name)
        return Trigger(event, sat, station)

    # -- running ----------------------------------------------------------------------

    def cancel(self, entry_id: int) -> Entry:
        entry = self.entries.get(entry_id)
        if entry is None or entry.state != "pending":
            raise CommandRejected(f"no pending timeline entry {entry_id} (timeline_list "
                                  "shows them)")
        entry.state = "cancelled"
        return entry

    def observe(self, t_utc: float, sunlit_frac: np.ndarray | None,
                in_contact: np.ndarray | None) -> None:
        """Turn this step's events into due times for the entries waiting for them."""
        sunlit = None if sunlit_frac is None else np.asarray(sunlit_frac) >= SUNLIT_EDGE
        contact = None if in_contact is None else np.array(in_contact, dtype=bool)  # a copy
        waiting = [e for e in self.entries.values()
                   if e.state == "pending" and e.trigger is not None and np.isnan(e.due_t_utc)]
        if waiting and self._sunlit is not None and sunlit is not None \
                and self._contact is not None and contact is not None:
            edges = {"eclipse_entry": self._sunlit & ~sunlit,
                     "eclipse_exit": ~self._sunlit & sunlit,
                     "aos": contact & ~self._contact, "los": ~contact & self._contact}
            for entry in waiting:
                if self._happened(entry.trigger, edges):
                    entry.due_t_utc = t_utc + entry.offset_s
        self._sunlit, self._contact = sunlit, contact

    @staticmethod
    def _happened(trigger: Trigger | None, edges: dict[str, np.ndarray]) -> bool:
        if trigger is None:
            return False
        mask = edges[trigger.event]
        if mask.ndim == 2:  # (stations, nodes)
            mask = mask if trigger.station < 0 else mask[trigger.station]
            mask = mask if mask.ndim == 1 else mask.any(axis=0)
        return bool(mask.any() if trigger.sat < 0 else mask[trigger.sat])

    def due(self, t_utc: float) -> list[Entry]:
        """Pending entries due by ``t_utc``, earliest first."""
        ready = [e for e in self.entries.values()
                 if e.state == "pending" and e.due_t_utc <= t_utc + 1e-6]
        return sorted(ready, key=lambda e: (e.due_t_utc, e.id))

    def forget_done(self) -> None:
        done = [i for i, e in self.entries.items() if e.state != "pending"]
        for entry_id in done[:max(0, len(done) - MAX_KEPT_DONE)]:
            del self.entries[entry_id]

    def listing(self, include_done: bool = False) -> list[dict[str, Any]]:
        """Entries, pending first by due time (waiting for an event last)."""
        chosen = [e for e in self.entries.values() if include_done or e.state == "pending"]
        chosen.sort(key=lambda e: (e.state != "pending", np.nan_to_num(e.due_t_utc, nan=np.inf),
                                   e.id))
        return [e.entry(self.satellites, self.stations) for e in chosen]

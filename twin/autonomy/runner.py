"""The autonomy of a running twin: its timeline and its rules, run after every step.

Every command either issues goes through the server's one command path
(twin.runtime.dispatch): the catalog check, the actor's roles and the audit. The actor is
``timeline`` for a timeline entry and ``rule:NAME`` for a rule. They carry the roles of
whoever put them there: a scenario's entries and rules act as ``engineer`` (they may cap,
schedule and clear faults, never shut the twin down or reload keys); an entry added by
``timeline_add`` acts with the roles of the key that added it. A hazardous command in a
scenario runs without a second confirmation (the scenario file is the confirmation).

Events (each an alarm kind, ``AUTONOMY_ALARMS``): ``rule_fired`` (cleared by
``rule_cleared``), ``rule_waiting`` (a gated action waits for contact),
``rule_confirm_request``, ``rule_action_failed``, ``timeline_ran`` and ``timeline_failed``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from twin.autonomy.checks import Table
from twin.autonomy.rules import MAX_EVENTS_PER_RULE_STEP, RuleState, parse_rules
from twin.autonomy.timeline import ENTRY_KEYS, Entry, Timeline
from twin.core.subsystem import CommandRejected, EventLog
from twin.protocol.alarms import AlarmKind
from twin.protocol.commands import CommandSpec, SatelliteNames
from twin.runtime.dispatch import Caller
from twin.scenario.errors import ScenarioError
from twin.scenario.files import read_bounded
from twin.scenario.loader import MAX_SCENARIO_BYTES
from twin.security.roles import grants, highest

AUTONOMY_ALARMS: dict[str, AlarmKind] = {
    "rule_fired": AlarmKind("rule_cleared", "rule", per_node=True),
    "rule_confirm_request": AlarmKind(None, "rule", per_node=True),
    "rule_action_failed": AlarmKind(None, "rule", per_node=True),
    "timeline_failed": AlarmKind(None, "name", per_node=False),
}
"""Autonomy events that raise alarms (twin.protocol.alarms)."""
SCENARIO_ROLES = ("engineer",)
UPCOMING_IN_META = 20
"""Pending timeline entries ``meta.autonomy`` shows (the dashboard's panel)."""

Dispatch = Callable[[dict[str, Any], Caller], dict[str, Any]]
"""The server's command path, holding nothing for confirmation (see the module doc)."""


class Autonomy:
    """The twin's timeline and rules.

    Args:
        fields: The engine's fields (name -> Field), read after each step.
        satellites: Resolves node names.
        stations: Station names, by index.
        epoch_utc: The scenario's epoch, POSIX s.
        specs: The command catalog.
        events: Where events are raised.
        dispatch: Runs a command map for a caller through the command path.
        scenario: ``{"timeline": [...], "rule": [...]}`` raw tables, and their ``source``.

    Raises:
        ScenarioError: A bad entry or rule, naming file and key.
    """

    def __init__(self, fields: Callable[[], Mapping[str, Any]], satellites: SatelliteNames,
                 stations: Sequence[str], epoch_utc: float, specs: Mapping[str, CommandSpec],
                 events: EventLog, dispatch: Dispatch, scenario: Mapping[str, Any],
                 source: str, n_sats: int) -> None:
        self.fields = fields
        self.satellites = satellites
        self.events = events
        self.dispatch = dispatch
        self.n_sats = n_sats
        self.timeline = Timeline(specs, satellites, stations, epoch_utc)
        self.timeline.load(scenario.get("timeline", []), source, roles=SCENARIO_ROLES)
        self.rules = {spec.name: RuleState(spec, n_sats, epoch_utc) for spec in parse_rules(
            scenario.get("rule", []), source, fields(), n_sats, specs, satellites)}
        self.changed = False  # what meta.autonomy shows has changed

    def load_timeline_file(self, raw: Mapping[str, Any], source: str) -> list[int]:
        """A ``--timeline`` file's ``[[timeline]]`` tables (nothing else is allowed)."""
        extra = set(raw) - {"timeline"}
        if extra:
            key = sorted(extra)[0]
            raise ScenarioError(source, key, "a timeline file holds only [[timeline]] tables")
        return self.timeline.load(raw.get("timeline", []), source, roles=SCENARIO_ROLES,
                                  added_by=source)

    def load_timeline_path(self, path: Path) -> list[int]:
        """Read a ``--timeline`` TOML file (bounded) and add its entries.

        Raises:
            ScenarioError: Unreadable, not TOML, or a bad entry, naming file and key.
        """
        try:
            text = read_bounded(path, MAX_SCENARIO_BYTES, "timeline file").decode("utf-8")
            raw = tomllib.loads(text)
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ScenarioError(str(path), "", f"cannot read the timeline file: {exc}") from exc
        return self.load_timeline_file(raw, str(path))

    def add_entry(self, request: Mapping[str, Any], caller: Caller) -> int:
        """``timeline_add``: one entry from a command's arguments, acting with the caller's
        roles (a hazardous command needs a scenario or timeline file)."""
        raw = {k: v for k, v in request.items() if k in ENTRY_KEYS}
        table = Table("timeline_add", "entry", raw, ENTRY_KEYS)
        command = raw.get("command")
        specs = self.timeline.specs
        spec = specs.get(command.get("cmd")) if isinstance(command, Mapping) else None
        if spec is not None and spec.significance == "hazardous":
            raise CommandRejected(f"{spec.name} is hazardous: put it in the scenario or "
                                  "a --timeline file (each needs its own confirmation)")
        if spec is not None and not grants(caller.roles, spec.role):
            raise CommandRejected(f"{spec.name} needs role {spec.role!r}; key "
                                  f"{caller.name!r} has {highest(caller.roles)!r} (an entry "
                                  "acts with the roles of the key that added it)")
        try:
            entry_id = self.timeline.add(table, caller.roles, caller.name)
        except ScenarioError as exc:
            raise CommandRejected(f"{exc.key}: {exc.problem}") from exc
        self.changed = True
        return entry_id

    # -- each step --------------------------------------------------------------------

    def after_step(self, t_utc: float, dt_s: float) -> bool:
        """Run what is due after the step that ended at ``t_utc``; whether what
        ``meta.autonomy`` shows changed (since the last call)."""
        fields = self.fields()
        sunlit = fields.get("sunlit_frac")
        contact = fields.get("in_contact")
        contact_array = None if contact is None else contact.array
        self.timeline.observe(t_utc, None if sunlit is None else sunlit.array, contact_array)
        for entry in self.timeline.due(t_utc):
            self._run_entry(entry)
        in_contact = (np.zeros(self.n_sats, bool) if contact_array is None or
                      contact_array.size == 0 else np.asarray(contact_array, bool).any(axis=0))
        for rule in self.rules.values():
            if rule.enabled:
                self._step_rule(rule, fields[rule.spec.field].array, t_utc, dt_s, in_contact)
        changed, self.changed = self.changed, False
        if changed:
            self.timeline.forget_done()
        return changed

    def _run_entry(self, entry: Entry) -> None:
        caller = Caller("timeline", entry.roles, f"entry {entry.id} ({entry.added_by})",
                        "timeline")
        failed = []
        for request in entry.commands:
            reply = self.dispatch(dict(request), caller)
            ok = bool(reply.get("ok"))
            entry.outcomes.append("ok" if ok else str(reply.get("error", "failed"))[:200])
            if not ok:
                failed.append(f"{request['cmd']}: {reply.get('error', 'failed')}")
        entry.state = "failed" if failed else "done"
        self.changed = True
        cmds = ", ".join(r["cmd"] for r in entry.commands)
        if failed:
            self.events.raise_event("timeline_failed", "warning",
                                    f"timeline {entry.name}: {'; '.join(failed)}"[:500],
                                    name=entry.name, entry_id=entry.id)
        else:
            self.events.raise_event("timeline_ran", "info", f"timeline {entry.name} ran {cmds}",
                                    name=entry.name, entry_id=entry.id)

    def _step_rule(self, rule: RuleState, array: np.ndarray, t_utc: float, dt_s: float,
                   in_contact: np.ndarray) -> None:
        spec = rule.spec
        fire, cleared, value = rule.evaluate(array, t_utc, dt_s)
        fired = np.flatnonzero(fire)
        if fired.size or cleared.any():
            self.changed = True
        verb = {"none": "acted", "contact": "waits for contact",
                "confirm": "asks the ground at next contact"}[spec.gate]
        for n, sat in enumerate(fired):
            if n < MAX_EVENTS_PER_RULE_STEP:
                self.events.raise_event(
                    "rule_fired", spec.severity,
                    f"rule {spec.name}: {spec.field} {value[sat]:.4g} {spec.op} "
                    f"{spec.threshold:.4g} {spec.unit} for {spec.for_s:g} s; {verb}",
                    sat=int(sat), rule=spec.name, field=spec.field, value=float(value[sat]))
            if spec.gate == "none":
                self._act(rule, int(sat), spec.actions)
        if fired.size > MAX_EVENTS_PER_RULE_STEP:
            self.events.raise_event("rule_fired_summary", "warning",
                                    f"rule {spec.name} fired on {fired.size} nodes this step",
                                    rule=spec.name, count=int(fired.size))
        if spec.gate != "none":
            rule.waiting |= fire
            for sat in fired:
                self.events.raise_event("rule_waiting", "info",
                                        f"rule {spec.name}: its actions wait for contact",
                                        sat=int(sat), rule=spec.name)
            self._step_gate(rule, in_contact)
        for sat in np.flatnonzero(cleared):
            self.events.raise_event("rule_cleared", "info", f"rule {spec.name} cleared: "
                                    f"{spec.field} {value[sat]:.4g} {spec.unit}",
                                    sat=int(sat), rule=spec.name)
            if spec.clear_actions:
                self._act(rule, int(sat), spec.clear_actions)

    def _step_gate(self, rule: RuleState, in_contact: np.ndarray) -> None:
        spec = rule.spec
        reached = rule.waiting & in_contact
        rule.waiting &= ~reached
        for sat in np.flatnonzero(reached):
            if spec.gate == "contact":
                self._act(rule, int(sat), spec.actions)
            else:
                rule.asking[sat] = True
                self.events.raise_event(
                    "rule_confirm_request", "warning", f"rule {spec.name} asks to run "
                    f"{', '.join(a['cmd'] for a in spec.actions)}: rule_confirm to go ahead",
                    sat=int(sat), rule=spec.name)

    def _act(self, rule: RuleState, sat: int, actions: Sequence[Mapping[str, Any]]) -> None:
        caller = Caller(rule.spec.actor, SCENARIO_ROLES, "on-board", rule.spec.actor)
        for action in actions:
            reply = self.dispatch({**action, "sat": sat}, caller)
            if not reply.get("ok"):
                self.events.raise_event(
                    "rule_action_failed", "warning",
                    f"rule {rule.spec.name}: {reply.get('error', 'failed')}"[:500],
                    sat=sat, rule=rule.spec.name)

    # -- commands' helpers ------------------------------------------------------------

    def rule(self, name: str) -> RuleState:
        rule = self.rules.get(name)
        if rule is None:
            raise CommandRejected(f"no rule {name[:60]!r}; rules: "
                                  f"{', '.join(self.rules) or '(none)'}")
        return rule

    def confirm(self, name: str, sat: int) -> list[str]:
        """``rule_confirm``: run an asking rule's actions on ``sat`` now."""
        rule = self.rule(name)
        if not rule.asking[sat]:
            raise CommandRejected(f"rule {name} is not asking about "
                                  f"{self.satellites.name_of(sat)} (rule_list shows 'asking')")
        rule.asking[sat] = False
        self._act(rule, sat, rule.spec.actions)
        self.changed = True
        return [a["cmd"] for a in rule.spec.actions]

    def meta(self) -> dict[str, Any]:
        """``meta.autonomy``: what is coming up, and the rules (for the dashboard)."""
        return {"timeline": self.timeline.listing()[:UPCOMING_IN_META],
                "timeline_pending": sum(e.state == "pending"
                                        for e in self.timeline.entries.values()),
                "rules": [rule.entry() for rule in self.rules.values()]}


def autonomy_of(engine: Any, specs: Mapping[str, CommandSpec], dispatch: Dispatch) -> Autonomy:
    """The autonomy of ``engine``'s scenario (twin.core.engine.Engine)."""
    scenario = engine.scenario
    return Autonomy(lambda: {f.spec.name: f for f in engine.fields}, engine.satellites,
                    [st.name for st in scenario.stations], scenario.epoch_utc.timestamp(),
                    specs, engine.events, dispatch, scenario.autonomy, scenario.source,
                    engine.n_sats)

"""Commands on the timeline and the rules, declared in the catalog like every other.

``timeline_add`` carries a command map (argument type ``command``) checked against the
catalog when it is added and again, with the adder's roles, when it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twin.autonomy.runner import Autonomy
from twin.autonomy.timeline import EVENTS
from twin.core.subsystem import CommandHandler, CommandRejected
from twin.protocol.codec import ok
from twin.protocol.commands import Arg, CommandSpec, sat_arg
from twin.runtime.dispatch import Caller

RULE_ARG = Arg("rule", "text", "the rule's name (rule_list)", required=True)

AUTONOMY_COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("timeline_add", "add a command to the timeline, at a time or after an event",
                "operational", (
        Arg("command", "command", "the command map, as sent on this socket", required=True),
        Arg("name", "text", "a name for the entry"),
        Arg("at", "text", "when, UTC ISO time (2025-03-20T12:00:00Z)"),
        Arg("at_s", "number", "when, seconds after the scenario's epoch", unit="s", min=0.0),
        Arg("in_s", "number", "when, seconds from now (simulation time)", unit="s",
            min=0.0, max=30 * 86400.0),
        Arg("event", "choice", "or after this event", choices=EVENTS),
        sat_arg("the event's node (default: any)", required=False),
        Arg("station", "text", "the aos/los event's station (default: any)"),
        Arg("offset_s", "number", "after the event by", unit="s", min=0.0,
            max=30 * 86400.0, default=0.0),
    ), role="operator"),
    CommandSpec("timeline_list", "the timeline: pending entries (and finished ones)",
                "informational", (
        Arg("all", "bool", "include finished and cancelled entries", default=False),),
        role="viewer"),
    CommandSpec("timeline_cancel", "cancel a pending timeline entry", "operational", (
        Arg("entry_id", "integer", "the entry's id (timeline_list)", min=1, required=True),),
        role="operator"),
    CommandSpec("rule_list", "the on-board rules, their state and firings", "informational",
                role="viewer"),
    CommandSpec("rule_enable", "switch an on-board rule on", "operational", (RULE_ARG,),
                role="engineer"),
    CommandSpec("rule_disable", "switch an on-board rule off (its timers reset)",
                "operational", (RULE_ARG,), role="engineer"),
    CommandSpec("rule_confirm", "let a rule that asked the ground run its actions on a node",
                "operational", (RULE_ARG, sat_arg("the node it asked about")),
                role="operator"),
)
"""The autonomy's commands (meta.commands; docs/protocol.md)."""


class AutonomyCommands:
    """Handlers of the autonomy's commands.

    Args:
        autonomy: The twin's timeline and rules.
        caller: Who sent the command now running (the dispatcher's ``current_caller``).
        now_utc: Simulation time now, POSIX s.
    """

    def __init__(self, autonomy: Autonomy, caller: Callable[[], Caller],
                 now_utc: Callable[[], float]) -> None:
        self.autonomy = autonomy
        self.caller = caller
        self.now_utc = now_utc

    def handlers(self) -> dict[str, CommandHandler]:
        return {"timeline_add": self.add, "timeline_list": self.list,
                "timeline_cancel": self.cancel, "rule_list": self.rule_list,
                "rule_enable": self.enable, "rule_disable": self.disable,
                "rule_confirm": self.confirm}

    def add(self, request: dict[str, Any]) -> dict[str, Any]:
        entry = {k: request[k] for k in ("command", "name", "at", "at_s", "offset_s")
                 if k in request}
        if "in_s" in request:
            if "at" in request or "at_s" in request:
                raise CommandRejected("give one of at, at_s, in_s or event")
            entry["at_s"] = self.now_utc() + request["in_s"] - self.autonomy.timeline.epoch_utc
        if "event" in request:
            entry["after"] = {"event": request["event"],
                              **{k: request[k] for k in ("sat", "station") if k in request}}
        elif "sat" in request or "station" in request:
            raise CommandRejected("'sat' and 'station' name an event's node and station: "
                                  "give 'event' too")
        entry_id = self.autonomy.add_entry(entry, self.caller())
        listed = next(e for e in self.autonomy.timeline.listing() if e["id"] == entry_id)
        return ok(entry=listed)

    def list(self, request: dict[str, Any]) -> dict[str, Any]:
        return ok(entries=self.autonomy.timeline.listing(request.get("all", False)),
                  t_utc=self.now_utc())

    def cancel(self, request: dict[str, Any]) -> dict[str, Any]:
        entry = self.autonomy.timeline.cancel(request["entry_id"])
        self.autonomy.changed = True
        return ok(cancelled=entry.id, name=entry.name)

    def rule_list(self, request: dict[str, Any]) -> dict[str, Any]:
        return ok(rules=[rule.entry() for rule in self.autonomy.rules.values()])

    def enable(self, request: dict[str, Any]) -> dict[str, Any]:
        rule = self.autonomy.rule(request["rule"])
        rule.enabled = True
        self.autonomy.changed = True
        return ok(rule=rule.spec.name, enabled=True)

    def disable(self, request: dict[str, Any]) -> dict[str, Any]:
        rule = self.autonomy.rule(request["rule"])
        rule.enabled = False
        rule.reset()
        self.autonomy.changed = True
        return ok(rule=rule.spec.name, enabled=False)

    def confirm(self, request: dict[str, Any]) -> dict[str, Any]:
        ran = self.autonomy.confirm(request["rule"], request["sat"])
        return ok(rule=request["rule"], sat=request["sat"], ran=ran)

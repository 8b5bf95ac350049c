"""Commands on the alarm table: read it, read recent events, acknowledge, shelve, unshelve.

Acting on alarms takes an operator: the acting key's name (``local`` without keys) and the
comment go with each alarm (its ``notes``) and into the audit (twin.runtime.audit).
Alarms are named by ``ids``, or by a filter (``sat``, ``parameter``, ``severity``), or
``all``: a request that names none is refused rather than taken as every alarm.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twin.core.subsystem import CommandHandler, CommandRejected
from twin.protocol.codec import ok
from twin.protocol.commands import Arg, CommandSpec, sat_arg
from twin.runtime.alarms import EVENT_HISTORY, MAX_SHELVE_S, Alarm

if TYPE_CHECKING:
    from twin.runtime.server import TwinServer


def _selection(verb: str) -> tuple[Arg, ...]:
    return (
        Arg("ids", "integers", f"the alarms to {verb}, by id"),
        sat_arg(f"{verb} the alarms of this node (or all)", required=False, allow_all=True),
        Arg("parameter", "text", f"{verb} the alarms of this parameter (field) or kind"),
        Arg("severity", "choice", f"{verb} the alarms of this severity",
            choices=("warning", "alarm")),
        Arg("all", "bool", f"{verb} every alarm in the table", default=False),
        Arg("comment", "text", "why (kept with the alarm and in the audit)"),
    )


ALARM_COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("alarms", "the alarm table: every alarm and its state", "informational",
                role="viewer"),
    CommandSpec("events", "recent events (the last 1,000), after a sequence number",
                "informational", (
        Arg("since", "integer", "the event seq to start after (-1: all kept)", min=-1,
            default=-1),), role="viewer"),
    CommandSpec("ack_alarm", "acknowledge alarms", "operational", _selection("acknowledge"),
                role="operator"),
    CommandSpec("shelve_alarm", "hide alarms for a while; they return when it ends",
                "operational", (
        *_selection("shelve"),
        Arg("duration_s", "number", "how long", unit="s", min=1.0, max=MAX_SHELVE_S,
            required=True),), role="operator"),
    CommandSpec("unshelve_alarm", "bring shelved alarms back now", "operational",
                _selection("unshelve"), role="operator"),
)


class AlarmCommands:
    """Handlers of the alarm commands, over the server's alarm table."""

    def __init__(self, server: TwinServer) -> None:
        self.server = server

    def handlers(self) -> dict[str, CommandHandler]:
        return {"alarms": self.alarms, "events": self.events, "ack_alarm": self.ack,
                "shelve_alarm": self.shelve, "unshelve_alarm": self.unshelve}

    def alarms(self, request: dict[str, Any]) -> dict[str, Any]:
        return ok(**self.server.alarm_table.snapshot())

    def events(self, request: dict[str, Any]) -> dict[str, Any]:
        since = request.get("since", -1)
        events = self.server.alarm_table.events_since(since)
        return ok(events=events, kept=EVENT_HISTORY)

    def _chosen(self, request: dict[str, Any]) -> list[Alarm]:
        table = self.server.alarm_table
        named = [k for k in ("ids", "sat", "parameter", "severity") if k in request]
        if not named and not request.get("all", False):
            raise CommandRejected("name the alarms: ids, a filter (sat, parameter, severity) "
                                  "or all=true")
        return table.select(request.get("ids"), request.get("sat"), request.get("parameter"),
                            request.get("severity"))

    def _who(self) -> str:
        return self.server.dispatcher.current_caller.name

    def ack(self, request: dict[str, Any]) -> dict[str, Any]:
        chosen = self._chosen(request)
        n = self.server.alarm_table.acknowledge(chosen, self._who(), request.get("comment", ""))
        return ok(acknowledged=n, ids=[a.id for a in chosen])

    def shelve(self, request: dict[str, Any]) -> dict[str, Any]:
        chosen = self._chosen(request)
        n = self.server.alarm_table.shelve(chosen, float(request["duration_s"]), self._who(),
                                           request.get("comment", ""))
        return ok(shelved=n, ids=[a.id for a in chosen])

    def unshelve(self, request: dict[str, Any]) -> dict[str, Any]:
        chosen = self._chosen(request)
        n = self.server.alarm_table.unshelve(chosen, self._who(), request.get("comment", ""))
        return ok(unshelved=n, ids=[a.id for a in chosen])

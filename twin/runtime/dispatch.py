"""Commands, from the bytes a client sent to the reply it gets: decode, check, run, count.

One path for every command: the body is decoded (msgpack, at most ``MAX_COMMAND_BYTES``),
checked against its declaration in the command catalog (twin.protocol.commands: argument
types, ranges, choices; ``sat`` resolved to an index), and only then handed to its handler.
What the catalog cannot know (an accelerator count up to the node's) the handler checks,
raising ``CommandRejected``.

A rejection is the client's mistake: counted by reason, logged at a bounded rate, answered
with a message naming what and where. Any other exception from a handler is the twin's own
bug: logged with its traceback under an incident number and answered as an internal error,
so a client never takes a bug for a rejection, and the twin keeps running.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twin.core.ratelog import RateLimitedLog, shorten
from twin.core.subsystem import CommandHandler, CommandRejected
from twin.protocol.codec import WireError, error, map_header, pack, unpack
from twin.protocol.commands import CommandSpec, SatelliteNames, check_catalog, check_request
from twin.runtime.confirm import Confirmations
from twin.security.roles import grants, highest

MAX_COMMAND_BYTES = 64 << 10
"""Largest command body; the biggest legitimate one is a few hundred bytes."""
MAX_ERROR_CHARS = 500
"""Longest error message sent back (a client's own value is quoted, shortened)."""


@dataclass
class Counters:
    """What the server has done, for ``status`` and for the operator's eye."""

    state_published: int = 0
    events_published: int = 0
    meta_published: int = 0
    heartbeats_published: int = 0
    aggregates_skipped: int = 0  # steps whose aggregate no subscription took
    commands_ok: int = 0
    commands_rejected: int = 0
    commands_failed: int = 0
    commands_held: int = 0  # hazardous, waiting for their confirmation
    replies_dropped: int = 0
    ingest_messages: int = 0
    ingest_bytes: int = 0
    ingest_dropped: int = 0
    step_time_total_s: float = 0.0
    step_time_max_s: float = 0.0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    ingest_dropped_by_reason: dict[str, int] = field(default_factory=dict)

    def reject(self, reason: str) -> None:
        self.commands_rejected += 1
        self.rejected_by_reason[reason] = self.rejected_by_reason.get(reason, 0) + 1

    def drop_ingest(self, reason: str) -> None:
        self.ingest_dropped += 1
        self.ingest_dropped_by_reason[reason] = self.ingest_dropped_by_reason.get(reason, 0) + 1


class PrePacked(bytes):
    """A value already msgpack-encoded, spliced into a reply as it is (the cached meta)."""


def pack_reply(reply: dict[str, Any]) -> bytes:
    """msgpack-encode a reply map whose values may be `PrePacked`."""
    if not any(isinstance(v, PrePacked) for v in reply.values()):
        return pack(reply)
    items = b"".join(pack(k) + (v if isinstance(v, PrePacked) else pack(v))
                     for k, v in reply.items())
    return map_header(len(reply)) + items


@dataclass(frozen=True)
class Caller:
    """Who sent a command: the key's name and roles (``local`` and every role without
    keys, where only this machine can reach the twin), and where from.

    ``identity`` is who may confirm a held hazardous command: the key, or without keys the
    client's own connection. ``connection`` is always the client's connection (its
    routing id): what holds a subscription, whatever key several clients share.
    """

    name: str
    roles: tuple[str, ...]
    peer: str = ""
    identity: str = ""
    connection: str = ""


LOCAL = Caller("local", ("admin",), "", "local")
"""A caller in this process, or any client of a twin without keys (loopback only)."""

AuditSink = Callable[[str, str, dict[str, Any], str, str | None], None]
"""``(caller name, peer, cmd, args, outcome, error)`` minus the caller: see dispatch."""


class CommandDispatcher:
    """Checks each command against the catalog and the caller's roles, holds hazardous ones
    for confirmation, runs the rest, and audits every outcome; never raises.

    Args:
        handlers: Handler by command name.
        specs: Declaration by command name; every handler must have one.
        satellites: Resolves ``sat`` arguments.
        counters: Where outcomes are counted.
        rejections: The bounded log of rejections and failures.
        on_change: Called after a command that is not informational succeeds (it may have
            changed what ``meta`` shows).
        audit: Called once per outcome: ``(caller, cmd, args, outcome, error)``.

    Raises:
        ValueError: A handler without a declaration, or a malformed declaration.
    """

    def __init__(self, handlers: dict[str, CommandHandler], specs: dict[str, CommandSpec],
                 satellites: SatelliteNames, counters: Counters, rejections: RateLimitedLog,
                 on_change: Callable[[], None],
                 audit: Callable[[Caller, str, dict[str, Any], str, str | None], None]
                 | None = None) -> None:
        check_catalog(specs, set(handlers) | {"confirm"})
        self.handlers = handlers
        self.specs = specs
        self.satellites = satellites
        self.counters = counters
        self.rejections = rejections
        self.on_change = on_change
        self.audit = audit or (lambda *entry: None)
        self.confirmations = Confirmations()
        self.current_caller = LOCAL  # who sent the command now running (alarm notes)

    def handle_frames(self, frames: list[bytes], caller: Caller = LOCAL
                      ) -> tuple[list[bytes], bytes] | None:
        """Split a ROUTER message into envelope and request; returns the reply to send.

        Every request with a routing id gets a reply, malformed envelopes included: REQ
        clients send ``[id, b"", request]``, DEALER clients ``[id, b"", request]`` or
        ``[id, request]``; the reply carries back the same envelope.
        """
        if not frames:
            return None
        if len(frames) >= 2 and frames[1] == b"":
            envelope, body = frames[:2], frames[2:]
        else:
            envelope, body = frames[:1], frames[1:]
        if len(body) != 1:
            total = sum(len(f) for f in body)
            return envelope, pack(self.rejected(
                "bad_envelope", f"a command is one frame holding a msgpack map; got "
                f"{len(body)} frames ({total} bytes)", caller))
        return envelope, pack_reply(self.handle_bytes(body[0], caller))

    def handle_bytes(self, body: bytes, caller: Caller = LOCAL) -> dict[str, Any]:
        """Decode, check and run one command body.

        The reply echoes the request's ``id`` when it had one, errors included.
        """
        if len(body) > MAX_COMMAND_BYTES:
            return self.rejected(
                "too_large", f"command is {len(body)} bytes; limit {MAX_COMMAND_BYTES}",
                caller)
        try:
            request = unpack(body)
        except WireError as exc:
            return self.rejected("not_msgpack", f"command is {exc}", caller)
        if not isinstance(request, dict):
            return self.rejected("not_a_map",
                                 "command must be a msgpack map like {'cmd': 'status'}", caller)
        reply = self.dispatch(request, caller)
        if "id" in request:
            reply["id"] = request["id"]
        return reply

    def dispatch(self, request: dict[str, Any], caller: Caller = LOCAL,
                 confirmed: bool = False) -> dict[str, Any]:
        """Check and run one decoded command map for ``caller``.

        Args:
            confirmed: Run a hazardous command without holding it: the twin's own autonomy
                (twin.autonomy), whose scenario file was the confirmation.
        """
        name = request.get("cmd")
        if not isinstance(name, str):
            return self.rejected("no_cmd", "command map needs a string 'cmd' key", caller)
        spec = self.specs.get(name)
        if spec is None or (name not in self.handlers and name != "confirm"):
            known = ", ".join(sorted(self.specs))
            return self.rejected("unknown", f"unknown command {shorten(repr(name), 60)}; "
                                 f"known: {known}", caller, name[:64], request)
        outcome = "ok"
        try:
            self._authorize(caller, spec)
            args = check_request(spec, request, self.satellites)
            if name == "confirm":
                held = self.confirmations.take(caller.identity, args["token"])
                name, spec, args, outcome = held.name, self.specs[held.name], held.args, \
                    "confirmed"
                self._authorize(caller, spec)  # the key's roles may have changed since
            elif spec.needs_confirmation(args) and not confirmed:
                check = getattr(self.handlers[name], "check", None)
                if check is not None:  # refused anyway (CheckedHandler): say so, hold nothing
                    check(args)
                return self._hold(caller, spec, args)
            self.current_caller = caller
            reply = self.handlers[name](args)
        except CommandRejected as exc:
            reason = "not_authorized" if isinstance(exc, NotAuthorized) else name
            return self.rejected(reason, f"{name}: {exc}", caller, name, request)
        except Exception:  # a bug in a handler must not stop the twin, nor show its insides
            self.counters.commands_failed += 1
            incident = self.counters.commands_failed
            self.rejections.log(f"failed:{name}", "command %r failed inside the twin "
                                "(incident %d)", name, incident, level=logging.ERROR,
                                exc_info=True)
            message = (f"{name}: internal error in the twin (incident {incident}, logged); "
                       "the twin keeps running")
            self.audit(caller, name, request, "failed", message)
            return error(message)
        self.counters.commands_ok += 1
        self.audit(caller, name, args, outcome, None)
        # An informational command reads only; any other may change what meta shows.
        if spec.significance != "informational":
            self.on_change()
        return reply

    def expire(self) -> None:
        """Audit the held hazardous commands whose time to confirm ran out."""
        for held in self.confirmations.expired():
            caller = Caller(held.caller, (), "", held.caller)
            self.audit(caller, held.name, held.args, "expired", "not confirmed in time")

    def _authorize(self, caller: Caller, spec: CommandSpec) -> None:
        if not grants(caller.roles, spec.role):
            raise NotAuthorized(f"needs role {spec.role!r}; key {caller.name!r} has "
                                f"{highest(caller.roles)!r}")

    def _hold(self, caller: Caller, spec: CommandSpec, args: dict[str, Any]) -> dict[str, Any]:
        summary = self._summary(spec, args)
        token, window_s = self.confirmations.hold(caller.identity, spec.name, args, summary)
        self.counters.commands_held += 1
        self.audit(caller, spec.name, args, "confirm_required", None)
        return {"ok": False, "confirm_required": True, "token": token, "summary": summary,
                "expires_in_s": window_s,
                "error": f"{spec.name} is hazardous: confirm within {window_s:g} s with "
                         f"{{'cmd': 'confirm', 'token': ...}}: {summary}"}

    def _summary(self, spec: CommandSpec, args: dict[str, Any]) -> str:
        """The effect in words, naming the node: what a person confirms."""
        sat = args.get("sat")
        where = ("on every node" if sat == "all" else
                 f"on {self.satellites.name_of(sat)} (sat {sat})" if isinstance(sat, int)
                 else "")
        rest = ", ".join(f"{k}={v}" for k, v in args.items()
                         if k not in ("cmd", "id", "sat"))
        return " ".join(part for part in (spec.name + ":", spec.summary, where,
                                          f"({rest})" if rest else "") if part)

    def rejected(self, reason: str, message: str, caller: Caller = LOCAL, cmd: str = "",
                 request: dict[str, Any] | None = None) -> dict[str, Any]:
        """Count, log (bounded), audit and answer a rejection."""
        self.counters.reject(reason)
        message = shorten(message, MAX_ERROR_CHARS)
        self.rejections.log(f"rejected:{reason}", "command rejected: %s", message)
        self.audit(caller, cmd, request or {}, "rejected", message)
        return error(message)


class NotAuthorized(CommandRejected):
    """The caller's key lacks the role a command needs."""

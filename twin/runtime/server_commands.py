"""The server's own commands: the clock (pause, resume, step, warp, rate) and what the twin
is doing (status, meta, commands). Declared in twin.protocol.commands (SERVER_COMMANDS)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from twin.astro.sun import ephemeris_warning
from twin.core.clock import MAX_RATE_HZ, MAX_WARP, MIN_RATE_HZ, MIN_WARP, SimClock
from twin.core.subsystem import CommandHandler, CommandRejected, only_keys
from twin.protocol.codec import map_header, ok
from twin.runtime.dispatch import PrePacked
from twin.security.keys import KeyFileError

if TYPE_CHECKING:
    from twin.runtime.server import TwinServer

MAX_STEPS_PER_COMMAND = 100_000
META_REPUBLISH_MIN_INTERVAL_S = 1.0
"""A ``meta`` request republishes it on the stream at most this often: a client asking in a
loop would otherwise flood every subscriber with ~140 kB messages."""


def _ephemeris_note(clock: SimClock) -> dict[str, str]:
    """``{"warning": ...}`` when the ephemeris ends within a wall day at this warp."""
    note = ephemeris_warning(clock.t_utc, clock.warp)
    return {"warning": note} if note else {}


class ServerCommands:
    """The handlers of the server's own commands, over the server they act on."""

    def __init__(self, server: TwinServer) -> None:
        self.server = server

    def handlers(self) -> dict[str, CommandHandler]:
        return {"status": self.status, "meta": self.meta, "pause": self.pause,
                "resume": self.resume, "step": self.step, "warp": self.warp,
                "rate": self.rate, "commands": self.commands,
                "reload_keys": self.reload_keys, "shutdown": self.shutdown}

    def status(self, request: dict[str, Any]) -> dict[str, Any]:
        server = self.server
        only_keys(request, set())
        counters = server.counters
        steps = max(1, counters.state_published)
        return ok(
            scenario=server.engine.scenario.name,
            t_utc=server.clock.t_utc,
            step=server.clock.steps,
            paused=server.clock.paused,
            warp=server.clock.warp,
            rate_hz=server.clock.rate_hz,
            dt_s=server.clock.dt_s,
            fast=server.clock.fast,
            n_sats=server.engine.n_sats,
            uptime_s=time.monotonic() - server.started_wall,
            seq={topic.decode(): seq for topic, seq in server.seq.items()},
            counters={
                "state_published": counters.state_published,
                "events_published": counters.events_published,
                "meta_published": counters.meta_published,
                "heartbeats_published": counters.heartbeats_published,
                "aggregates_skipped": counters.aggregates_skipped,
                "commands_ok": counters.commands_ok,
                "commands_rejected": counters.commands_rejected,
                "commands_failed": counters.commands_failed,
                "commands_held": counters.commands_held,
                "replies_dropped": counters.replies_dropped,
                "rejected_by_reason": dict(counters.rejected_by_reason),
                "ingest_messages": counters.ingest_messages,
                "ingest_bytes": counters.ingest_bytes,
                "ingest_dropped": counters.ingest_dropped,
                "ingest_dropped_by_reason": dict(counters.ingest_dropped_by_reason),
                "log_lines_suppressed": server.rejections.lines_suppressed,
                "handshakes_failed": server.guard.handshakes_failed,
                "keys_refused": (server.guard.authenticator.refused
                                 if server.guard.authenticator is not None else 0),
                "audit_lines": (server.guard.audit_log.lines
                                if server.guard.audit_log is not None else 0),
                "step_time_mean_ms": 1e3 * counters.step_time_total_s / steps,
                "step_time_max_ms": 1e3 * counters.step_time_max_s,
            },
            events_by_kind=dict(server.engine.events.counts),
        )

    def meta(self, request: dict[str, Any]) -> dict[str, Any]:
        server = self.server
        only_keys(request, set())
        # Republished for late joiners on the stream, but not once per request: a client
        # asking in a loop would otherwise flood every subscriber with ~140 kB messages.
        if time.monotonic() - server.meta_published_at >= META_REPUBLISH_MIN_INTERVAL_S:
            server.publish_meta()
        entries, items = server.meta_body()
        return ok(meta=PrePacked(map_header(entries) + items))

    def commands(self, request: dict[str, Any]) -> dict[str, Any]:
        server = self.server
        only_keys(request, set())
        return ok(commands=sorted(server.command_specs))

    def pause(self, request: dict[str, Any]) -> dict[str, Any]:
        server = self.server
        only_keys(request, set())
        server.clock.paused = True
        server.pending_steps = 0
        return ok(paused=True, step=server.clock.steps)

    def resume(self, request: dict[str, Any]) -> dict[str, Any]:
        server = self.server
        only_keys(request, set())
        server.clock.paused = False
        server.pending_steps = 0
        return ok(paused=False, step=server.clock.steps)

    def step(self, request: dict[str, Any]) -> dict[str, Any]:
        server = self.server
        only_keys(request, {"n"})
        n = request.get("n", 1)
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_STEPS_PER_COMMAND:
            raise CommandRejected(
                f"'n' must be an integer in 1..{MAX_STEPS_PER_COMMAND}, got {n!r}"
            )
        if not server.clock.paused:
            raise CommandRejected("the twin is running; pause it before stepping")
        if server.pending_steps + n > MAX_STEPS_PER_COMMAND:
            raise CommandRejected(f"{server.pending_steps} steps are queued already; at most "
                                  f"{MAX_STEPS_PER_COMMAND} may wait (pause clears them)")
        server.pending_steps += n
        return ok(queued_steps=server.pending_steps, step=server.clock.steps)

    def warp(self, request: dict[str, Any]) -> dict[str, Any]:
        server = self.server
        only_keys(request, {"value"})
        if "value" not in request:
            raise CommandRejected(f"needs 'value', simulated seconds per wall second in "
                                  f"[{MIN_WARP:g}, {MAX_WARP:g}]")
        try:
            server.clock.set_warp(request["value"])
        except ValueError as exc:  # the clock's own bounds: the client's mistake
            raise CommandRejected(str(exc)) from exc
        return ok(warp=server.clock.warp, dt_s=server.clock.dt_s,
                  **_ephemeris_note(server.clock))

    def rate(self, request: dict[str, Any]) -> dict[str, Any]:
        server = self.server
        only_keys(request, {"value"})
        if "value" not in request:
            raise CommandRejected(f"needs 'value', steps per wall second in "
                                  f"[{MIN_RATE_HZ:g}, {MAX_RATE_HZ:g}]")
        try:
            server.clock.set_rate(request["value"])
        except ValueError as exc:
            raise CommandRejected(str(exc)) from exc
        return ok(rate_hz=server.clock.rate_hz, dt_s=server.clock.dt_s,
                  **_ephemeris_note(server.clock))

    def reload_keys(self, request: dict[str, Any]) -> dict[str, Any]:
        """``reload_keys``: read the key registry again (as SIGHUP does)."""
        try:
            active, narrowed = self.server.reload_keys()
        except KeyFileError as exc:  # no keys, or a malformed registry: the old one holds
            raise CommandRejected(str(exc)) from exc
        return ok(active_keys=active, connections_reset=narrowed)

    def shutdown(self, request: dict[str, Any]) -> dict[str, Any]:
        """``shutdown``: the loop ends after this pass; the process exits."""
        self.server.stop()
        return ok(stopping=True)

"""Who is at the door: keys on the sockets, the caller of each message, and the audit trail.

Without a key folder the twin binds loopback only (twin.runtime.addresses) and every caller
is ``local`` with every role: whoever can reach it is on this machine. With one
(``--keys DIR`` or ``[security] keys``), every socket runs CURVE and admits only the
registry's keys (twin.security.auth), each message carries its key's name, commands are
checked against the key's roles (twin.runtime.dispatch) and telemetry against its
``testbed:NAME`` roles. Handshakes refused (an unknown or revoked key, a client without
CURVE) are counted from each socket's monitor.

Every command outcome is audited: a JSON line in the audit file (twin.runtime.audit) and an
``audit`` event on the stream, at most ``MAX_AUDIT_EVENTS_PER_STEP`` per step (the file
has every line; a flood of commands cannot flood the stream).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from twin.core.subsystem import EventLog
from twin.runtime.addresses import is_loopback
from twin.runtime.audit import AuditLog, record
from twin.runtime.dispatch import LOCAL, Caller
from twin.security.auth import KeyAuthenticator, peer_of, serve_curve, user_of
from twin.security.keys import KeyFileError, KeyRegistry, server_key_paths
from twin.security.roles import may_feed

log = logging.getLogger("odc.twin.security")

AUDIT_FILE = "audit.jsonl"
MAX_AUDIT_EVENTS_PER_STEP = 50
HANDSHAKE_FAILED = (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                    | zmq.EVENT_HANDSHAKE_FAILED_AUTH)


class Guard:
    """Keys, callers and the audit log of one twin.

    Args:
        context: The twin's ZeroMQ context (ZAP runs per context).
        keys_dir: The key folder, or None for a twin without keys (loopback only).
        audit_path: The audit file; with keys, ``keys_dir/audit.jsonl`` when None.
        events: Where ``audit`` events are raised.
        sim_time: The simulation time now, POSIX s (for the audit lines).

    Raises:
        KeyFileError: The key folder has no server key, or its registry is malformed.
    """

    def __init__(self, context: zmq.Context, keys_dir: Path | None, audit_path: Path | None,
                 events: EventLog, sim_time: Callable[[], float]) -> None:
        self.keys_dir = None if keys_dir is None else Path(keys_dir)
        self.events = events
        self.sim_time = sim_time
        self.handshakes_failed = 0
        self.audit_events_dropped = 0
        self._audit_events_this_step = 0
        self._monitors: list[zmq.Socket] = []
        self.authenticator: KeyAuthenticator | None = None
        if self.keys_dir is not None:
            _, secret = server_key_paths(self.keys_dir)
            if not secret.exists():
                raise KeyFileError(f"{self.keys_dir}: no server key ({secret.name}); make the "
                                   f"folder's keys with `odc keys new NAME --role ROLE --dir "
                                   f"{self.keys_dir}`")
            self.registry = KeyRegistry.load(self.keys_dir)
            self.authenticator = KeyAuthenticator(context, self.registry)
            self.authenticator.start()
            if audit_path is None:
                audit_path = self.keys_dir / AUDIT_FILE
        else:
            self.registry = KeyRegistry()
        self.audit_log = None if audit_path is None else AuditLog(Path(audit_path))

    @property
    def secured(self) -> bool:
        return self.keys_dir is not None

    def prepare(self, sock: zmq.Socket, address: str, plain: bool = False) -> None:
        """Make ``sock`` ready to bind ``address``: CURVE with keys, else loopback only.

        Args:
            plain: No CURVE on this socket even with keys (``--plain-stream``): then it
                too binds loopback only.

        Raises:
            OSError: A non-loopback address without keys, saying how to make keys.
        """
        if self.keys_dir is None or plain:
            if not is_loopback(address):
                if plain and self.keys_dir is not None:
                    raise OSError(f"cannot bind {address}: a stream without CURVE "
                                  "(--plain-stream) binds loopback only (127.0.0.1, "
                                  "localhost, [::1], ipc://)")
                raise OSError(
                    f"cannot bind {address}: without keys the twin listens on loopback only "
                    "(127.0.0.1, localhost, [::1], ipc://). To serve other machines, make "
                    "keys (`odc keys new NAME --role ROLE --dir keys`, see docs/security.md) "
                    "and start the twin with --keys keys; or reach it through an SSH tunnel")
            return
        serve_curve(sock, self.keys_dir)
        self._monitors.append(sock.get_monitor_socket(HANDSHAKE_FAILED))

    # -- callers ----------------------------------------------------------------------

    def caller(self, frames: list[Any], routing_id: bytes) -> Caller:
        """Who sent a command, from its frames' ``User-Id`` (the key name)."""
        connection = routing_id.hex()
        if self.keys_dir is None:
            return Caller(LOCAL.name, LOCAL.roles, "", connection, connection)
        name = user_of(frames[-1])
        entry = self.registry.by_name(name)
        roles = entry.roles if entry is not None else ()  # revoked since it connected
        return Caller(name or "?", roles, peer_of(frames[-1]), name or connection, connection)

    def ingest_check(self, frames: list[Any]) -> Callable[[str], bool] | None:
        """What the sender of a telemetry message may feed; None: anything (no keys)."""
        if self.keys_dir is None:
            return None
        entry = self.registry.by_name(user_of(frames[0]))
        roles = entry.roles if entry is not None else ()
        return lambda testbed: may_feed(roles, testbed)

    # -- keys -------------------------------------------------------------------------

    def reload(self) -> tuple[int, bool]:
        """Read the registry again: (active keys, whether a key lost access or a role).

        Raises:
            KeyFileError: The registry is malformed; the old one stays in force.
        """
        if self.keys_dir is None or self.authenticator is None:
            raise KeyFileError("this twin runs without keys (start it with --keys DIR)")
        new = KeyRegistry.load(self.keys_dir)
        before = {e.name: (e.public_key, e.roles) for e in self.registry.entries.values()
                  if e.active}
        after = {e.name: (e.public_key, e.roles) for e in new.entries.values() if e.active}
        narrowed = any(after.get(name) != was for name, was in before.items())
        self.registry = new
        self.authenticator.replace_registry(new)
        log.info("key registry reloaded: %d active keys", len(after))
        return len(after), narrowed

    def count_handshakes(self) -> None:
        """Count the handshakes each socket's monitor saw fail (cheap when none did)."""
        for monitor in self._monitors:
            while True:
                try:
                    recv_monitor_message(monitor, zmq.NOBLOCK)
                except zmq.Again:
                    break
                self.handshakes_failed += 1

    # -- audit ------------------------------------------------------------------------

    def audit(self, caller: Caller, cmd: str, args: dict[str, Any], outcome: str,
              error: str | None) -> None:
        """One command outcome: a line in the file, an event on the stream (bounded)."""
        entry = record(time.time(), self.sim_time(), caller.name, caller.peer, cmd, args,
                       outcome, error)
        if self.audit_log is not None:
            self.audit_log.write(entry)
        if self._audit_events_this_step >= MAX_AUDIT_EVENTS_PER_STEP:
            self.audit_events_dropped += 1
            return
        self._audit_events_this_step += 1
        severity = "warning" if outcome in ("rejected", "failed") else "info"
        self.events.raise_event(
            "audit", severity, f"{entry['cmd'] or '?'} from {entry['key']}: {outcome}"
            + (f" ({entry['error']})" if entry["error"] else ""),
            key=entry["key"], peer=entry["peer"], cmd=entry["cmd"], args=entry["args"],
            outcome=outcome)

    def step_published(self) -> None:
        """The step's events went out: the next step may carry audit events again."""
        if self.audit_events_dropped:
            self.events.raise_event("audit_summarised", "warning",
                                    f"{self.audit_events_dropped} more commands were audited "
                                    "in the file only (too many for one step's events)",
                                    count=self.audit_events_dropped)
            self.audit_events_dropped = 0
        self._audit_events_this_step = 0

    def close(self) -> None:
        for monitor in self._monitors:
            monitor.close(linger=0)
        self._monitors.clear()
        if self.authenticator is not None:
            self.authenticator.stop()
            self.authenticator = None
        if self.audit_log is not None:
            self.audit_log.close()

"""The twin's ZeroMQ server: steps the engine on the clock and moves its output onto the wire.

Three sockets, bound to loopback by default:

- PUB publishes ``state``, ``event``, ``meta`` and ``hb``. A slow or dead subscriber only
  loses messages (the high-water mark drops them); it never slows the twin.
- ROUTER answers commands, one msgpack map in and one out.
- PULL receives bridge telemetry.

Everything runs in one thread: commands and telemetry are served while waiting for the
next tick, so the engine is never touched concurrently.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import zmq

from twin.clock import MAX_RATE_HZ
from twin.engine import Engine
from twin.subsystem import CommandHandler, CommandRejected, only_keys
from twin.wire import (
    DEFAULT_COMMAND_ADDRESS,
    DEFAULT_INGEST_ADDRESS,
    DEFAULT_PUB_ADDRESS,
    PROTOCOL_VERSION,
    TOPIC_EVENT,
    TOPIC_HEARTBEAT,
    TOPIC_META,
    StateEncoder,
    WireError,
    encode_map,
    error,
    ok,
    pack,
    unpack,
)

log = logging.getLogger("odc.twin")

# The socket's own send, without the Python wrapper pyzmq puts around it (whose extra
# arguments, routing_id and group, the PUB socket never uses): a third of the cost of
# sending a small frame, and a state message has ~55 of them.
_RAW_SEND = zmq.backend.Socket.send
MAX_COMMAND_BYTES = 1 << 20
MAX_STEPS_PER_COMMAND = 100_000
# Messages, not bytes: a few whole frames may queue per subscriber, then PUB drops.
PUB_HIGH_WATER_MARK = 50
INGEST_HIGH_WATER_MARK = 100_000
# The PUB socket closes with a short linger, not none. A subscriber that is behind holds
# a state message half sent (its multipart frames part on the wire, part queued). Closed
# with linger 0, that queue is cut at once, and should the subscriber disconnect while the
# socket is going, libzmq 4.3.5 aborts the process (session_base.cpp:233, libzmq issue
# #3442): a viewer quitting on the same Ctrl-C as the twin is enough. During a linger the
# queue stays readable and the session drops the message cleanly, so a subscriber that
# leaves within it is safe (one leaving exactly as it ends is not: rare, not impossible).
# The linger costs at most this long at shutdown, and only with a subscriber behind.
PUB_CLOSE_LINGER_MS = 250
_SNDMORE = int(zmq.SNDMORE)


@dataclass(frozen=True)
class Addresses:
    """Where the twin binds its three sockets."""

    pub: str = DEFAULT_PUB_ADDRESS
    command: str = DEFAULT_COMMAND_ADDRESS
    ingest: str = DEFAULT_INGEST_ADDRESS


@dataclass
class Counters:
    """What the server has done, for ``status`` and for the operator's eye."""

    state_published: int = 0
    events_published: int = 0
    meta_published: int = 0
    heartbeats_published: int = 0
    commands_ok: int = 0
    commands_rejected: int = 0
    ingest_messages: int = 0
    ingest_bytes: int = 0
    step_time_total_s: float = 0.0
    step_time_max_s: float = 0.0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)

    def reject(self, reason: str) -> None:
        self.commands_rejected += 1
        self.rejected_by_reason[reason] = self.rejected_by_reason.get(reason, 0) + 1


class TwinServer:
    """Runs an engine on the clock and serves it over ZeroMQ.

    Args:
        engine: The engine to step.
        addresses: Socket addresses to bind.
        meta_interval_s: Wall seconds between unsolicited ``meta`` messages.
        heartbeat_interval_s: Wall seconds between heartbeats.
        context: A ZeroMQ context to share (tests); a private one by default.
    """

    def __init__(
        self,
        engine: Engine,
        addresses: Addresses | None = None,
        *,
        meta_interval_s: float = 3.0,
        heartbeat_interval_s: float = 1.0,
        context: zmq.Context | None = None,
    ) -> None:
        self.engine = engine
        self.clock = engine.clock
        self.addresses = addresses or Addresses()
        self.meta_interval_s = meta_interval_s
        self.heartbeat_interval_s = heartbeat_interval_s
        self.counters = Counters()
        self._seq = {b"state": 0, TOPIC_EVENT: 0, TOPIC_META: 0, TOPIC_HEARTBEAT: 0}
        # Names this process on the wire so clients tell a restart from a gap. Drawn from
        # the OS, not the twin's generator: it is no part of the simulation.
        self.run_id = int.from_bytes(os.urandom(6), "big")
        self._pending_steps = 0
        self._stop_requested = False
        self._started_wall = time.monotonic()
        self._meta_cache: bytes | None = None
        self._state_encoder: StateEncoder | None = None
        self._encoded_fields: list | None = None
        self._own_context = context is None
        self._context = context or zmq.Context()
        self.pub = self._bind(zmq.PUB, self.addresses.pub, sndhwm=PUB_HIGH_WATER_MARK)
        self.command = self._bind(zmq.ROUTER, self.addresses.command)
        self.ingest = self._bind(zmq.PULL, self.addresses.ingest, rcvhwm=INGEST_HIGH_WATER_MARK)
        self.poller = zmq.Poller()
        self.poller.register(self.command, zmq.POLLIN)
        self.poller.register(self.ingest, zmq.POLLIN)
        # The engine's mirror judges and applies telemetry (twin.mirror); None counts only.
        self.ingest_handler: Callable[[list[bytes]], None] | None = getattr(
            engine, "ingest_handler", None)
        self.handlers: dict[str, CommandHandler] = {
            "status": self._cmd_status,
            "meta": self._cmd_meta,
            "pause": self._cmd_pause,
            "resume": self._cmd_resume,
            "step": self._cmd_step,
            "warp": self._cmd_warp,
            "rate": self._cmd_rate,
            "commands": self._cmd_commands,
        }
        self.handlers.update(engine.commands())

    def _bind(self, kind: int, address: str, **options: int) -> zmq.Socket:
        sock = self._context.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        for name, value in options.items():
            sock.setsockopt(getattr(zmq, name.upper()), value)
        try:
            sock.bind(address)
        except zmq.ZMQError as exc:
            sock.close()
            self.close()
            raise OSError(f"cannot bind {address}: {exc}") from exc
        return sock

    @property
    def bound(self) -> Addresses:
        """The addresses actually bound (resolves ``tcp://127.0.0.1:*`` to real ports)."""

        def endpoint(sock: zmq.Socket) -> str:
            return sock.getsockopt_string(zmq.LAST_ENDPOINT)

        return Addresses(endpoint(self.pub), endpoint(self.command), endpoint(self.ingest))

    def close(self) -> None:
        for name in ("pub", "command", "ingest"):
            sock = getattr(self, name, None)
            if sock is not None:
                sock.close(linger=PUB_CLOSE_LINGER_MS if name == "pub" else 0)
        if self._own_context:
            self._context.term()

    def stop(self) -> None:
        """Ask the loop to finish after the current iteration (safe from a signal handler)."""
        self._stop_requested = True

    # -- the loop ---------------------------------------------------------------------

    def run(
        self,
        *,
        max_steps: int | None = None,
        duration_s: float | None = None,
        on_tick: Callable[[TwinServer], None] | None = None,
    ) -> None:
        """Step and publish until stopped, ``max_steps`` taken or ``duration_s`` simulated.

        Args:
            max_steps: Stop after this many steps (counted from the start of this call).
            duration_s: Stop once this much simulated time has elapsed in total.
            on_tick: Called after every loop iteration (live status lines, tests).
        """
        first_step = self.clock.steps
        self.publish_meta()
        self._publish_state()
        next_meta = time.monotonic() + self.meta_interval_s
        next_heartbeat = time.monotonic()
        while not self._stop_requested:
            if max_steps is not None and self.clock.steps - first_step >= max_steps:
                break
            if duration_s is not None and self.clock.elapsed_s >= duration_s - 1e-9:
                break
            self._serve_until_tick()
            if self._stop_requested:
                break
            if not self.clock.paused or self._pending_steps:
                self._pending_steps = max(0, self._pending_steps - 1) if self.clock.paused else 0
                self._step_and_publish()
            self.clock.mark_tick()
            now = time.monotonic()
            if now >= next_heartbeat:
                self._publish_heartbeat()
                next_heartbeat = now + self.heartbeat_interval_s
            if now >= next_meta:
                self.publish_meta()
                next_meta = now + self.meta_interval_s
            if on_tick is not None:
                on_tick(self)
        self._publish_heartbeat()

    def _serve_until_tick(self) -> None:
        """Answer commands and drain telemetry until the next step is due."""
        while True:
            wait_s = self.clock.seconds_until_tick()
            if self.clock.paused and not self._pending_steps:
                # Paused: keep serving, but wake for heartbeats.
                wait_s = min(max(wait_s, 0.05), self.heartbeat_interval_s)
            events = dict(self.poller.poll(timeout=wait_s * 1000.0))
            if self.command in events:
                self._serve_commands()
            if self.ingest in events:
                self._drain_ingest()
            if self._stop_requested or self.clock.seconds_until_tick() <= 0.0:
                return
            if self.clock.paused and not self._pending_steps and not events:
                return

    def _step_and_publish(self) -> None:
        started = time.perf_counter()
        self.engine.step()
        self._publish_state()
        self._publish_events()
        elapsed = time.perf_counter() - started
        self.counters.step_time_total_s += elapsed
        self.counters.step_time_max_s = max(self.counters.step_time_max_s, elapsed)

    # -- publishing -------------------------------------------------------------------

    def _next_seq(self, topic: bytes) -> int:
        seq = self._seq[topic]
        self._seq[topic] = seq + 1
        return seq

    def _framing(self, topic: bytes) -> dict[str, Any]:
        return {"v": PROTOCOL_VERSION, "seq": self._next_seq(topic), "t_utc": self.clock.t_utc,
                "run_id": self.run_id}

    def _publish_state(self) -> None:
        header = self._framing(b"state")
        header.update(self.engine.header())
        fields = self.engine.fields
        if self._state_encoder is None or fields is not self._encoded_fields:
            self._state_encoder = StateEncoder([f.spec for f in fields])
            self._encoded_fields = fields
        frames = self._state_encoder.encode(header, [f.array for f in fields])
        # Copy, never zero-copy: the arrays are rewritten in place by the next step while
        # ZeroMQ may still hold queued messages for a slow subscriber, which would then
        # receive torn frames mixing two steps. Frame by frame with plain int flags: what
        # ``send_multipart`` does, without its per-frame type checks and enum arithmetic
        # (half the cost for the ~50 frames of a state message).
        pub = self.pub
        for frame in frames[:-1]:
            _RAW_SEND(pub, frame, _SNDMORE, True)  # copy=True
        _RAW_SEND(pub, frames[-1], 0, True)
        self.counters.state_published += 1

    def _publish_events(self) -> None:
        pub = self.pub
        for event in self.engine.events.drain():
            header = self._framing(TOPIC_EVENT)
            header.update(event)
            # The frames of ``encode_map``, sent as the state's are (see _publish_state).
            topic, body = encode_map(TOPIC_EVENT, header)
            _RAW_SEND(pub, topic, _SNDMORE, True)
            _RAW_SEND(pub, body, 0, True)
            self.counters.events_published += 1

    def publish_meta(self) -> None:
        header = self._framing(TOPIC_META)
        header.update(self.engine.meta())
        self.pub.send_multipart(encode_map(TOPIC_META, header))
        self.counters.meta_published += 1

    def _publish_heartbeat(self) -> None:
        header = self._framing(TOPIC_HEARTBEAT)
        header.update(
            wall_utc=time.time(), step=self.clock.steps, paused=self.clock.paused,
            warp=self.clock.warp, rate_hz=self.clock.rate_hz,
            scenario=self.engine.scenario.name, n_sats=self.engine.n_sats,
        )
        self.pub.send_multipart(encode_map(TOPIC_HEARTBEAT, header))
        self.counters.heartbeats_published += 1

    # -- ingest -----------------------------------------------------------------------

    def _drain_ingest(self) -> None:
        # Bounded per call so a flood of telemetry cannot starve the clock.
        for _ in range(10_000):
            try:
                frames = self.ingest.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.counters.ingest_messages += 1
            self.counters.ingest_bytes += sum(len(f) for f in frames)
            if self.ingest_handler is not None:
                try:
                    self.ingest_handler(frames)
                except Exception:  # bad telemetry never stops the twin
                    log.exception("ingest handler failed on a message; dropped")

    # -- commands ---------------------------------------------------------------------

    def _serve_commands(self) -> None:
        for _ in range(1000):
            try:
                frames = self.command.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            reply = self.handle_command_frames(frames)
            if reply is not None:
                envelope, payload = reply
                self.command.send_multipart([*envelope, payload])

    def handle_command_frames(self, frames: list[bytes]) -> tuple[list[bytes], bytes] | None:
        """Split a ROUTER message into envelope and request; returns the reply to send."""
        # REQ clients send [identity, b"", request]; DEALER clients may omit the delimiter.
        if (len(frames) >= 3 and frames[-2] == b"") or len(frames) == 2:
            envelope, body = frames[:-1], frames[-1]
        else:
            self.counters.reject("bad_envelope")
            log.warning("command with %d frames dropped: expected [id, '', request]", len(frames))
            return None
        return envelope, pack(self.handle_command_bytes(body))

    def handle_command_bytes(self, body: bytes) -> dict[str, Any]:
        """Decode, validate and run one command; never raises.

        The reply echoes the request's ``id`` when it had one, errors included.
        """
        if len(body) > MAX_COMMAND_BYTES:
            return self._rejected(
                "too_large", f"command is {len(body)} bytes; limit {MAX_COMMAND_BYTES}"
            )
        try:
            request = unpack(body)
        except WireError as exc:
            return self._rejected("not_msgpack", f"command is {exc}")
        if not isinstance(request, dict):
            return self._rejected(
                "not_a_map", "command must be a msgpack map like {'cmd': 'status'}"
            )
        reply = self._dispatch(request)
        if "id" in request:
            reply["id"] = request["id"]
        return reply

    def _dispatch(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request.get("cmd")
        if not isinstance(name, str):
            return self._rejected("no_cmd", "command map needs a string 'cmd' key")
        handler = self.handlers.get(name)
        if handler is None:
            known = ", ".join(sorted(self.handlers))
            return self._rejected("unknown", f"unknown command {name!r}; known: {known}")
        try:
            reply = handler(request)
        except (ValueError, TypeError, KeyError) as exc:  # CommandRejected is a ValueError
            return self._rejected(name, f"{name}: {exc}")
        except Exception as exc:  # a bug in a handler must not stop the twin
            log.exception("command %r failed", name)
            return self._rejected(name, f"{name} failed inside the twin: {exc}")
        self.counters.commands_ok += 1
        return reply

    def _rejected(self, reason: str, message: str) -> dict[str, Any]:
        self.counters.reject(reason)
        log.warning("command rejected: %s", message)
        return error(message)

    def _cmd_status(self, request: dict[str, Any]) -> dict[str, Any]:
        only_keys(request, set())
        counters = self.counters
        steps = max(1, counters.state_published)
        return ok(
            scenario=self.engine.scenario.name,
            t_utc=self.clock.t_utc,
            step=self.clock.steps,
            paused=self.clock.paused,
            warp=self.clock.warp,
            rate_hz=self.clock.rate_hz,
            dt_s=self.clock.dt_s,
            fast=self.clock.fast,
            n_sats=self.engine.n_sats,
            uptime_s=time.monotonic() - self._started_wall,
            seq={topic.decode(): seq for topic, seq in self._seq.items()},
            counters={
                "state_published": counters.state_published,
                "events_published": counters.events_published,
                "meta_published": counters.meta_published,
                "heartbeats_published": counters.heartbeats_published,
                "commands_ok": counters.commands_ok,
                "commands_rejected": counters.commands_rejected,
                "rejected_by_reason": dict(counters.rejected_by_reason),
                "ingest_messages": counters.ingest_messages,
                "ingest_bytes": counters.ingest_bytes,
                "step_time_mean_ms": 1e3 * counters.step_time_total_s / steps,
                "step_time_max_ms": 1e3 * counters.step_time_max_s,
            },
            events_by_kind=dict(self.engine.events.counts),
        )

    def _cmd_meta(self, request: dict[str, Any]) -> dict[str, Any]:
        only_keys(request, set())
        self.publish_meta()
        return ok(meta=self.engine.meta())

    def _cmd_commands(self, request: dict[str, Any]) -> dict[str, Any]:
        only_keys(request, set())
        return ok(commands=sorted(self.handlers))

    def _cmd_pause(self, request: dict[str, Any]) -> dict[str, Any]:
        only_keys(request, set())
        self.clock.paused = True
        self._pending_steps = 0
        return ok(paused=True, step=self.clock.steps)

    def _cmd_resume(self, request: dict[str, Any]) -> dict[str, Any]:
        only_keys(request, set())
        self.clock.paused = False
        self._pending_steps = 0
        return ok(paused=False, step=self.clock.steps)

    def _cmd_step(self, request: dict[str, Any]) -> dict[str, Any]:
        only_keys(request, {"n"})
        n = request.get("n", 1)
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_STEPS_PER_COMMAND:
            raise CommandRejected(
                f"'n' must be an integer in 1..{MAX_STEPS_PER_COMMAND}, got {n!r}"
            )
        if not self.clock.paused:
            raise CommandRejected("the twin is running; pause it before stepping")
        self._pending_steps += n
        return ok(queued_steps=self._pending_steps, step=self.clock.steps)

    def _cmd_warp(self, request: dict[str, Any]) -> dict[str, Any]:
        only_keys(request, {"value"})
        if "value" not in request:
            raise CommandRejected("needs 'value', simulated seconds per wall second")
        self.clock.set_warp(request["value"])
        return ok(warp=self.clock.warp, dt_s=self.clock.dt_s)

    def _cmd_rate(self, request: dict[str, Any]) -> dict[str, Any]:
        only_keys(request, {"value"})
        if "value" not in request:
            raise CommandRejected(f"needs 'value', steps per wall second in (0, {MAX_RATE_HZ:g}]")
        self.clock.set_rate(request["value"])
        return ok(rate_hz=self.clock.rate_hz, dt_s=self.clock.dt_s)

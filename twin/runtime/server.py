"""The twin's ZeroMQ server: steps the engine on the clock and moves its output onto the wire.

Three sockets, bound to loopback by default:

- PUB publishes ``state``, ``event``, ``meta``, ``hb``, ``alarms``, ``aggregate`` and the
  selective streams ``sub/<id>`` (twin.runtime.streams). A slow or dead subscriber only
  loses messages (the high-water mark drops them); it never slows the twin.
- ROUTER answers commands, one msgpack map in and one out.
- PULL receives bridge telemetry.

Everything runs in one thread: commands and telemetry are served while waiting for the
next tick, so the engine is never touched concurrently.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq

from twin.astro.sun import EPHEMERIS_END_UTC, ephemeris_covers
from twin.autonomy.commands import AUTONOMY_COMMANDS, AutonomyCommands
from twin.autonomy.runner import AUTONOMY_ALARMS, autonomy_of
from twin.core.engine import ENGINE_ALARMS, Engine
from twin.core.events import SUMMARY_KIND
from twin.core.ratelog import RateLimitedLog
from twin.core.subsystem import CommandHandler
from twin.protocol.alarms import AlarmKind
from twin.protocol.codec import (
    DEFAULT_COMMAND_ADDRESS,
    DEFAULT_INGEST_ADDRESS,
    DEFAULT_PUB_ADDRESS,
    PROTOCOL_VERSION,
    TOPIC_ALARMS,
    TOPIC_EVENT,
    TOPIC_HEARTBEAT,
    TOPIC_META,
    encode_map,
    map_header,
    pack,
)
from twin.protocol.commands import SERVER_COMMANDS
from twin.runtime.addresses import bind_socket
from twin.runtime.alarm_commands import ALARM_COMMANDS, AlarmCommands
from twin.runtime.alarms import SNAPSHOT_INTERVAL_S, AlarmTable
from twin.runtime.allocator import TRIM_EVERY_STEP_MIN_SATS, release_free_memory
from twin.runtime.bounds import (
    COMMAND_MAX_FRAME_BYTES,
    COMMAND_RECEIVE_QUEUE,
    COMMAND_REPLY_QUEUE,
    INGEST_HIGH_WATER_MARK,
    INGEST_MAX_FRAME_BYTES,
    INGEST_MAX_FRAMES,
    INGEST_MAX_MESSAGE_BYTES,
    PUB_HIGH_WATER_MARK,
)
from twin.runtime.dispatch import LOCAL, Caller, CommandDispatcher, Counters
from twin.runtime.guard import Guard
from twin.runtime.node_row import NODE_COMMANDS, NodeRowCommands
from twin.runtime.replies import WaitingReplies
from twin.runtime.server_commands import META_REPUBLISH_MIN_INTERVAL_S, ServerCommands
from twin.runtime.streams import StreamPublisher
from twin.runtime.subscriptions import (
    FULL_STATE_MAX_SATS,
    SUBSCRIPTION_COMMANDS,
    SubscriptionCommands,
)
from twin.scenario.errors import ScenarioError
from twin.security.keys import KeyFileError

log = logging.getLogger("odc.twin")

# The socket's own send, without the Python wrapper pyzmq puts around it (whose extra
# arguments, routing_id and group, the PUB socket never uses): a third of the cost of
# sending a small frame, and a state message has ~55 of them.
_RAW_SEND = zmq.backend.Socket.send
# The clock's share: while a step is due, commands and telemetry are each served for at
# most this fraction of the last step's cost (at least SERVE_SLICE_MIN_S), so a flood
# slows stepping by at most ~2 x SERVE_SHARE. While no step is due they are served freely,
# in slices of at most SERVE_SLICE_MAX_S so the loop still sees the clock.
SERVE_SHARE = 0.04
SERVE_SLICE_MIN_S = 0.0005
SERVE_SLICE_MAX_S = 0.02
# Never poll longer than this: a long wait (a very slow rate) still wakes for heartbeats.
MAX_POLL_S = 1.0
# How soon replies waiting for libzmq are tried again.
WAITING_RETRY_S = 0.002
# Free heap pages go back to the system this often, so memory a flood made the twin hold
# (libzmq's queued copies) is returned within seconds of the client leaving.
MEMORY_TRIM_INTERVAL_S = 5.0
# Replies and publications built from the engine's meta are cached this long at most
# (the mirror's counters in it change without a command), and rebuilt after any command
# that may change it. A `meta` request republishes on the stream at most this often.
META_CACHE_MAX_AGE_S = 1.0
PUB_CLOSE_LINGER_MS = 250
SERVER_ALARMS = {"ephemeris_end": AlarmKind(None, "", per_node=False),
                 "recording_stopped": AlarmKind(None, "", per_node=False)}
"""The server's own events that are alarms (twin.protocol.alarms)."""
REBIND_TIMEOUT_S = 2.0
"""How long a socket bound anew (a key cut off) waits for its old listener to close."""
_SNDMORE = int(zmq.SNDMORE)


@dataclass(frozen=True)
class Addresses:
    """Where the twin binds its three sockets."""

    pub: str = DEFAULT_PUB_ADDRESS
    command: str = DEFAULT_COMMAND_ADDRESS
    ingest: str = DEFAULT_INGEST_ADDRESS


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
        keys_dir: Path | None = None,
        audit_path: Path | None = None,
        plain_stream: bool = False,
        full_state_max_sats: int = FULL_STATE_MAX_SATS,
    ) -> None:
        self.engine = engine
        self.clock = engine.clock
        self.addresses = addresses or Addresses()
        self.meta_interval_s = meta_interval_s
        self.heartbeat_interval_s = heartbeat_interval_s
        self.counters = Counters()
        self.rejections = RateLimitedLog(log)
        self.seq = {b"state": 0, TOPIC_EVENT: 0, TOPIC_META: 0, TOPIC_HEARTBEAT: 0,
                    TOPIC_ALARMS: 0}
        # Names this process on the wire so clients tell a restart from a gap. Drawn from
        # the OS, not the twin's generator: it is no part of the simulation.
        self.run_id = int.from_bytes(os.urandom(6), "big")
        self.pending_steps = 0  # steps commanded while paused, still to take
        self._stop_requested = False
        self.started_wall = time.monotonic()
        self._meta_items: tuple[int, bytes] | None = None  # (entries, packed key-values)
        self._meta_built_at = -math.inf
        self.meta_published_at = -math.inf
        self._next_heartbeat = time.monotonic()
        self._next_meta = math.inf
        self._next_trim = time.monotonic() + MEMORY_TRIM_INTERVAL_S
        self._step_cost_s = 0.0  # smoothed wall cost of a step, for the serve slices
        self._own_context = context is None
        self._context = context or zmq.Context()
        self._reload_requested = False
        self._rebind_requested = False
        self.recording: Any = None
        """A recorder fed from the stream (``odc run --record``: twin.recording.live), or
        None; asked each pass whether it stopped, and closed with the twin."""
        # Keys, callers and the audit (twin.runtime.guard); before any socket binds.
        self.guard = Guard(self._context, keys_dir, audit_path, engine.events,
                           lambda: self.clock.t_utc)
        # XPUB: a PUB that also tells which topics clients take (twin.runtime.streams).
        # Verbose: every client's subscription comes up, so a late joiner is seen.
        self.pub = self._bind(zmq.XPUB, self.addresses.pub, plain=plain_stream,
                              sndhwm=PUB_HIGH_WATER_MARK, xpub_verbose=1)
        self.command = self._bind(
            zmq.ROUTER, self.addresses.command, maxmsgsize=COMMAND_MAX_FRAME_BYTES,
            rcvhwm=COMMAND_RECEIVE_QUEUE, sndhwm=COMMAND_REPLY_QUEUE,
            # A reply to a client that is gone or not reading raises instead of vanishing,
            # so it is counted (replies_dropped).
            router_mandatory=1)
        self._replies = WaitingReplies(self.command, self._count_dropped_replies)
        self.ingest = self._bind(zmq.PULL, self.addresses.ingest,
                                 maxmsgsize=INGEST_MAX_FRAME_BYTES, rcvhwm=INGEST_HIGH_WATER_MARK)
        # What each socket bound, kept: LAST_ENDPOINT moves when a recorder binds the PUB
        # socket in-process too (twin.recording.live).
        self._bound = Addresses(*(sock.getsockopt_string(zmq.LAST_ENDPOINT)
                                  for sock in (self.pub, self.command, self.ingest)))
        self.poller = zmq.Poller()
        self.poller.register(self.command, zmq.POLLIN)
        self.poller.register(self.ingest, zmq.POLLIN)
        # The engine's mirror judges and applies telemetry (twin.models.mirror); None counts only.
        self.ingest_handler: Callable[[list[bytes]], None] | None = getattr(
            engine, "ingest_handler", None)
        # Commands: the server's own and each model's (names unique: the engine checked the
        # models' against each other and against these), each checked against its
        # declaration before it runs (twin.runtime.dispatch).
        # The alarm table every event goes through (twin.runtime.alarms): each source's
        # alarm kinds, the models' from the registry.
        self.alarm_table = AlarmTable({**ENGINE_ALARMS, **SERVER_ALARMS, **AUTONOMY_ALARMS,
                                       **{kind: spec for entry in engine.entries
                                          for kind, spec in entry.alarms.items()}})
        self._next_alarms = 0.0
        self.handlers: dict[str, CommandHandler] = ServerCommands(self).handlers()
        self.handlers.update(AlarmCommands(self).handlers())
        self.handlers.update(SubscriptionCommands(self).handlers())
        self.handlers.update(NodeRowCommands(self).handlers())
        self.streams = StreamPublisher(self, full_state_max_sats)
        self.handlers.update(engine.commands())
        self.command_specs = {spec.name: spec for spec in (*SERVER_COMMANDS, *ALARM_COMMANDS,
                                                           *AUTONOMY_COMMANDS,
                                                           *SUBSCRIPTION_COMMANDS,
                                                           *NODE_COMMANDS)}
        self.command_specs.update(engine.command_specs())
        # Timeline and rules (twin.autonomy): their commands take a client's path.
        try:
            self.autonomy = autonomy_of(engine, self.command_specs, lambda request, caller:
                                        self.dispatcher.dispatch(request, caller, True))
        except ScenarioError:
            self.close()
            raise
        self.handlers.update(AutonomyCommands(
            self.autonomy, lambda: self.dispatcher.current_caller,
            lambda: self.clock.t_utc).handlers())
        self.dispatcher = CommandDispatcher(
            self.handlers, self.command_specs, engine.satellites, self.counters,
            self.rejections, self.invalidate_meta, self.guard.audit)

    def _bind(self, kind: int, address: str, plain: bool = False, **options: int
              ) -> zmq.Socket:
        sock = self._context.socket(kind)
        try:
            self.guard.prepare(sock, address, plain)  # CURVE with keys; else loopback only
        except OSError:
            sock.close()
            self.close()
            raise
        try:
            bind_socket(sock, address, **options)
        except OSError:
            sock.close()
            self.close()
            raise
        return sock

    @property
    def bound(self) -> Addresses:
        """The addresses actually bound (resolves ``tcp://127.0.0.1:*`` to real ports)."""
        return self._bound

    def close(self) -> None:
        if getattr(self, "recording", None) is not None:
            self.recording.close()  # takes what the stream queued for it, finishes the file
        self.rejections.flush()
        self.engine.flush_logs()
        self.engine.close()  # its worker processes and their shared memory
        streams = getattr(self, "streams", None)  # None: the start failed before it
        if streams is not None:
            streams.aggregates.close()  # the aggregate's threads, if any
        guard = getattr(self, "guard", None)
        if guard is not None:
            guard.close()
        for name in ("pub", "command", "ingest"):
            sock = getattr(self, name, None)
            if sock is not None:
                sock.close(linger=PUB_CLOSE_LINGER_MS if name == "pub" else 0)
        if self._own_context:
            self._context.term()

    def stop(self) -> None:
        """Ask the loop to finish after the current iteration (safe from a signal handler)."""
        self._stop_requested = True

    def request_key_reload(self) -> None:
        """Read the key registry again at the next pass (safe from a signal handler)."""
        self._reload_requested = True

    def reload_keys(self) -> tuple[int, bool]:
        """Read the key registry now; a key that lost access or a role is cut off at once
        (every socket is bound anew, so every client shakes hands again).

        Raises:
            KeyFileError: No keys, or a malformed registry (the old one stays in force).
        """
        active, narrowed = self.guard.reload()
        if narrowed:
            self._rebind_requested = True  # after this pass: a command's reply goes first
        return active, narrowed

    def _rebind(self) -> None:
        """Unbind and bind every socket again: existing connections end, clients reconnect
        and go through the key check again."""
        bound = self._bound
        for sock, endpoint in ((self.pub, bound.pub), (self.command, bound.command),
                               (self.ingest, bound.ingest)):
            sock.unbind(endpoint)
            deadline = time.monotonic() + REBIND_TIMEOUT_S
            while True:  # the listener closes in libzmq's I/O thread, soon after unbind
                try:
                    sock.bind(endpoint)
                    break
                except zmq.ZMQError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.005)
        log.warning("sockets bound anew after a key lost access; clients reconnect")

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
        self._next_meta = time.monotonic() + self.meta_interval_s
        self._next_heartbeat = time.monotonic()
        while not self._stop_requested:
            if max_steps is not None and self.clock.steps - first_step >= max_steps:
                break
            if duration_s is not None and self.clock.elapsed_s >= duration_s - 1e-9:
                break
            self._serve_until_tick()
            if self._stop_requested:
                break
            if (not self.clock.paused or self.pending_steps) and self._ephemeris_allows_step():
                self.pending_steps = max(0, self.pending_steps - 1) if self.clock.paused else 0
                self._step_and_publish()
                # Only a step moves the tick on: marked on every idle pass while paused, it
                # ran ahead of the wall clock and a resumed twin waited for it to catch up.
                self.clock.mark_tick()
            self._publish_periodic()
            self._check_recording()
            self._keep_guard()
            if on_tick is not None:
                on_tick(self)
        self._publish_heartbeat()

    def _keep_guard(self) -> None:
        """Key reloads asked for by signal, cut-offs, refused handshakes, expired holds."""
        if self._reload_requested:
            self._reload_requested = False
            try:
                self.reload_keys()
            except (KeyFileError, OSError) as exc:
                log.error("key registry not reloaded: %s", exc)
        if self._rebind_requested:
            self._rebind_requested = False
            self._rebind()
        self.guard.count_handshakes()
        self.dispatcher.expire()
        if self.engine.events.pending:  # audit events while paused, too
            self._publish_events()
        self._publish_alarms()

    def _check_recording(self) -> None:
        """A recorder that stopped (disk full, a path it cannot write) raises one alarm; the
        twin runs on without it."""
        reason = self.recording.failure() if self.recording is not None else None
        if reason:
            self.engine.events.raise_event("recording_stopped", "alarm", reason)

    def _ephemeris_allows_step(self) -> bool:
        """Whether the next step stays inside the Sun ephemeris; if not, pause and say so.

        DE421 ends in 2053: a long run at high warp reaches it. The twin pauses there with
        an alarm instead of failing every model that needs the Sun.
        """
        if ephemeris_covers(self.clock.t_utc + self.clock.dt_s):
            return True
        self.clock.paused = True
        self.pending_steps = 0
        self.engine.events.raise_event(
            "ephemeris_end", "alarm", f"the next step would pass the end of the Sun ephemeris"
            f" (DE421, {EPHEMERIS_END_UTC:%Y-%m-%d} UTC): the twin is paused and steps no"
            " further")
        self._publish_events()
        return False

    def _publish_periodic(self) -> None:
        """Heartbeat and meta when due: on their own timers, whatever the step rate."""
        now = time.monotonic()
        if now >= self._next_heartbeat:
            self._publish_heartbeat()
            self._next_heartbeat = now + self.heartbeat_interval_s
        if now >= self._next_meta:
            self.publish_meta()
            self._next_meta = now + self.meta_interval_s
        if now >= self._next_trim:
            release_free_memory()
            self._next_trim = now + MEMORY_TRIM_INTERVAL_S
        self.rejections.tick()

    def _serve_until_tick(self) -> None:
        """Answer commands and drain telemetry until the next step is due."""
        while True:
            self._publish_periodic()
            wait_s = self.clock.seconds_until_tick()
            if self.clock.paused and not self.pending_steps:
                wait_s = max(wait_s, 0.05)
            # Wake for the next heartbeat whatever the rate (and never hand poll a timeout
            # it cannot hold).
            wait_s = min(wait_s, MAX_POLL_S,
                         max(0.0, self._next_heartbeat - time.monotonic()))
            if self._replies:
                self._replies.retry()
                if self._replies:  # try again soon, not at the next tick
                    wait_s = min(wait_s, WAITING_RETRY_S)
            events = dict(self.poller.poll(timeout=wait_s * 1000.0))
            due = self.clock.seconds_until_tick() <= 0.0
            if self.command in events:
                self._serve_commands(self._serve_slice_s(due))
            if self.ingest in events:
                self._drain_ingest(self._serve_slice_s(due))
            if self._stop_requested or self.clock.seconds_until_tick() <= 0.0:
                return
            if self.clock.paused and not self.pending_steps and not events:
                return

    def _serve_slice_s(self, step_due: bool) -> float:
        """How long one socket may be served before the loop looks at the clock again."""
        if step_due:
            return max(SERVE_SLICE_MIN_S, SERVE_SHARE * self._step_cost_s)
        return min(SERVE_SLICE_MAX_S, max(SERVE_SLICE_MIN_S, self.clock.seconds_until_tick()))

    def _step_and_publish(self) -> None:
        started = time.perf_counter()
        self.engine.step()
        if self.autonomy.after_step(self.clock.t_utc, self.clock.dt_s):
            self.invalidate_meta()
        self._publish_state()
        self._publish_events()
        if self.engine.n_sats >= TRIM_EVERY_STEP_MIN_SATS:  # no saw-tooth of temporaries
            release_free_memory()
        elapsed = time.perf_counter() - started
        self.counters.step_time_total_s += elapsed
        self.counters.step_time_max_s = max(self.counters.step_time_max_s, elapsed)
        self._step_cost_s = elapsed if not self._step_cost_s else (
            0.8 * self._step_cost_s + 0.2 * elapsed)

    # -- publishing -------------------------------------------------------------------

    def _next_seq(self, topic: bytes) -> int:
        seq = self.seq[topic]
        self.seq[topic] = seq + 1
        return seq

    def _framing(self, topic: bytes) -> dict[str, Any]:
        return {"v": PROTOCOL_VERSION, "seq": self._next_seq(topic), "t_utc": self.clock.t_utc,
                "run_id": self.run_id}

    def _publish_state(self) -> None:
        """The default ``state``, the selective streams and the ``aggregate``
        (twin.runtime.streams)."""
        self.streams.publish_step()

    def _publish_events(self) -> None:
        self.guard.step_published()
        pub = self.pub
        events = self.engine.events
        for event in events.drain():
            header = self._framing(TOPIC_EVENT)
            header.update(event)
            self.alarm_table.observe(header, events.drained_summaries.get(  # its nodes
                event["of"]) if event["kind"] == SUMMARY_KIND else None)
            # The frames of ``encode_map``, sent as the state's are (see _publish_state).
            topic, body = encode_map(TOPIC_EVENT, header)
            _RAW_SEND(pub, topic, _SNDMORE, True)
            _RAW_SEND(pub, body, 0, True)
            self.counters.events_published += 1

    def meta_body(self) -> tuple[int, bytes]:
        """The engine's meta as (entry count, packed key-values), built once per change.

        For starlink the body is ~140 kB and takes milliseconds to build: a client asking
        for it in a loop must not make the twin build it per request.
        """
        now = time.monotonic()
        if self._meta_items is None or now - self._meta_built_at > META_CACHE_MAX_AGE_S:
            meta = self.engine.meta()
            meta["commands"] = {name: self.command_specs[name].entry()
                                for name in sorted(self.command_specs)}
            meta["autonomy"] = self.autonomy.meta()
            self._meta_items = (len(meta), b"".join(pack(k) + pack(v) for k, v in meta.items()))
            self._meta_built_at = now
        return self._meta_items

    def invalidate_meta(self) -> None:
        """Rebuild the meta body before it is next sent (something it shows has changed)."""
        self._meta_items = None

    def publish_meta(self) -> None:
        framing = self._framing(TOPIC_META)
        entries, items = self.meta_body()
        body = (map_header(len(framing) + entries)
                + b"".join(pack(k) + pack(v) for k, v in framing.items()) + items)
        self.pub.send_multipart([TOPIC_META, body])
        self.counters.meta_published += 1
        self.meta_published_at = time.monotonic()

    def _publish_alarms(self) -> None:
        """The alarm table, after a change (at most once a pass) and every few seconds."""
        table = self.alarm_table
        table.tick()
        now = time.monotonic()
        if not table.changed and now < self._next_alarms:
            return
        header = self._framing(TOPIC_ALARMS)
        header.update(table.snapshot())
        self.pub.send_multipart(encode_map(TOPIC_ALARMS, header))
        table.changed = False
        self._next_alarms = now + SNAPSHOT_INTERVAL_S

    def _publish_heartbeat(self) -> None:
        header = self._framing(TOPIC_HEARTBEAT)
        header.update(
            wall_utc=time.time(), step=self.clock.steps, paused=self.clock.paused,
            warp=self.clock.warp, rate_hz=self.clock.rate_hz,
            scenario=self.engine.scenario.name, n_sats=self.engine.n_sats,
        )
        self.pub.send_multipart(encode_map(TOPIC_HEARTBEAT, header))
        self.counters.heartbeats_published += 1
        self.streams.read_subscriptions()  # also while paused: they never pile up
        self._meta_for_joiners()

    def _meta_for_joiners(self) -> None:
        """``meta`` soon after a client subscribed to it (or to everything): one that joins
        without a command socket has it within a second or two, not at the periodic one.
        At most as often as a ``meta`` request republishes it."""
        demand = self.streams.meta_demand
        if demand.joined and time.monotonic() - self.meta_published_at >= \
                META_REPUBLISH_MIN_INTERVAL_S:
            demand.joined = False
            self.publish_meta()
            self._next_meta = time.monotonic() + self.meta_interval_s  # not one more at once

    # -- ingest -----------------------------------------------------------------------

    def _drain_ingest(self, budget_s: float = SERVE_SLICE_MAX_S) -> None:
        # Bounded in time, not count, so no flood of telemetry can starve the clock.
        deadline = time.perf_counter() + budget_s
        while True:
            try:
                frames = self.ingest.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            self._ingest_one(frames)
            if time.perf_counter() >= deadline:
                return

    def _ingest_one(self, frames: list[Any]) -> None:
        counters = self.counters
        counters.ingest_messages += 1
        size = sum(len(f) for f in frames)
        counters.ingest_bytes += size
        if len(frames) > INGEST_MAX_FRAMES or size > INGEST_MAX_MESSAGE_BYTES:
            counters.drop_ingest("too_large")
            self.rejections.log("ingest_too_large", "telemetry message dropped: %d frames, "
                                "%d bytes (limits %d frames, %d bytes)", len(frames), size,
                                INGEST_MAX_FRAMES, INGEST_MAX_MESSAGE_BYTES)
            return
        if self.ingest_handler is None:
            return
        try:
            self.ingest_handler(frames, may_feed=self.guard.ingest_check(frames))
        except Exception:  # bad telemetry never stops the twin; the handler's own bug
            counters.drop_ingest("internal_error")
            self.rejections.log("ingest_internal_error", "ingest handler failed on a "
                                "message; dropped", level=logging.ERROR, exc_info=True)

    # -- commands ---------------------------------------------------------------------

    def _serve_commands(self, budget_s: float = SERVE_SLICE_MAX_S) -> None:
        self._replies.answer(
            lambda frames, received: self.handle_command_frames(
                frames, self.guard.caller(received, frames[0])),
            time.perf_counter() + budget_s)

    def _count_dropped_replies(self, n: int) -> None:
        self.counters.replies_dropped += n

    def handle_command_frames(self, frames: list[bytes], caller: Caller = LOCAL
                              ) -> tuple[list[bytes], bytes] | None:
        """A ROUTER message's envelope and the reply to send (twin.runtime.dispatch)."""
        return self.dispatcher.handle_frames(frames, caller)

    def handle_command_bytes(self, body: bytes, caller: Caller = LOCAL) -> dict[str, Any]:
        """Decode, check and run one command (twin.runtime.dispatch); never raises."""
        return self.dispatcher.handle_bytes(body, caller)

    def _rejected(self, reason: str, message: str) -> dict[str, Any]:
        return self.dispatcher.rejected(reason, message)

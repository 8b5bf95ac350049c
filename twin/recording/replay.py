"""Serving a recording as the twin serves its run: the same stream, the same command socket.

`ReplayServer` republishes a recording's frames (twin.recording.playback) on a PUB socket
exactly as they were received live, byte for byte (``state``, ``event``, ``meta``, ``hb``,
``alarms``), paced so that recorded simulation time advances at ``warp`` simulated seconds
per wall second, and answers commands on a ROUTER socket through the twin's own dispatcher
(twin.runtime.dispatch): ``status``, ``meta``, ``commands``, ``pause``, ``resume``,
``step``, ``warp`` and ``seek``. A viewer follows it as it follows a twin.

What a replay adds on the stream is one message of its own, ``replay`` (twin.protocol.replay):
once a second and after every command that moves it, the recording's name and span, the
position, the warp and whether it is paused, so viewers show REPLAY and a time bar.

A seek lands on the recorded ``state`` nearest the time asked for and publishes, in this
order: a ``replay`` message (its ``seeks`` count moved on: viewers start their sequence
counting afresh), the last ``meta`` before that state (the first one after it where none
was recorded before), the last ``alarms`` before it where the recording has that channel,
then the state itself; playing goes on from there. Each is found through the chunk index,
so a seek reads a few chunks whatever the file's size (docs/performance.md, "Replay").

Like a twin without keys, a replay binds loopback addresses only (twin.runtime.addresses);
it takes no keys. It plays forwards only: a negative warp is refused (seek goes back).
Everything runs in one thread, as in twin.runtime.server.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import zmq

from twin.core.clock import MAX_WARP, MIN_WARP
from twin.core.ratelog import RateLimitedLog
from twin.core.subsystem import CommandHandler, CommandRejected, only_keys
from twin.protocol.codec import (
    DEFAULT_COMMAND_ADDRESS,
    DEFAULT_PUB_ADDRESS,
    PROTOCOL_VERSION,
    ok,
)
from twin.protocol.commands import SERVER_COMMANDS, Arg, CommandSpec, SatelliteNames
from twin.protocol.replay import encode_replay
from twin.recording.format import RecordingError
from twin.recording.playback import Record, Recording
from twin.runtime.addresses import bind_socket, check_address, is_loopback
from twin.runtime.dispatch import LOCAL, Caller, CommandDispatcher, Counters
from twin.runtime.replies import WaitingReplies
from twin.runtime.server import (
    COMMAND_MAX_FRAME_BYTES,
    COMMAND_RECEIVE_QUEUE,
    COMMAND_REPLY_QUEUE,
    PUB_CLOSE_LINGER_MS,
    PUB_HIGH_WATER_MARK,
    WAITING_RETRY_S,
)
from twin.runtime.server_commands import MAX_STEPS_PER_COMMAND, META_REPUBLISH_MIN_INTERVAL_S

log = logging.getLogger("odc.replay")

PLAY_SLICE_S = 0.02
"""Longest a pass publishes due frames before it looks at the command socket again."""
MAX_LAG_S = 0.5
"""Wall seconds the replay may fall behind its clock (a recording read slower than the warp
asks) before the clock waits for it, so it never bursts more than this much at once."""
STEP_INTERVAL_S = 0.05
"""Stepped states go out at most this often (20 a second): a subscriber keeps up."""
MAX_POLL_S = 0.25
FRAMING_KEYS = ("v", "seq", "t_utc", "run_id")
"""The framing keys of a recorded ``meta`` header: not part of a ``meta`` reply's body."""


def _from(name: str) -> CommandSpec:
    return next(spec for spec in SERVER_COMMANDS if spec.name == name)


REPLAY_COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("commands", "list every command this replay answers", "informational",
                role="viewer"),
    CommandSpec("status", "the replay's position, span, warp and counters", "informational",
                role="viewer"),
    CommandSpec("meta", "the recorded meta at the position (and republish it on the stream)",
                "informational", role="viewer"),
    CommandSpec("pause", "stop playing; replay messages go on", "operational",
                role="operator"),
    CommandSpec("resume", "play on from the position", "operational", role="operator"),
    CommandSpec("step", "while paused, publish the next n recorded states (and what was "
                "recorded between them)", "operational", (
        Arg("n", "integer", "states to publish", min=1, max=MAX_STEPS_PER_COMMAND,
            default=1),), role="operator"),
    CommandSpec("warp", "recorded simulated seconds played per wall second", "operational", (
        Arg("value", "number", "the new warp", unit="s/s", min=MIN_WARP, max=MAX_WARP,
            required=True),), role="operator"),
    CommandSpec("seek", "go to the recorded state nearest a simulation time", "operational", (
        Arg("t_utc", "number", "simulation time, POSIX seconds, within the recording's span",
            unit="s", required=True),), role="operator"),
    # The dispatcher answers `confirm` itself; a replay holds nothing to confirm.
    _from("confirm"),
)
"""The commands a replay answers (the twin's clock commands, and ``seek``)."""


def iso(t_utc: float) -> str:
    """POSIX seconds as ``2026-03-20T12:00:00.000Z`` (for messages people read)."""
    try:
        return datetime.fromtimestamp(t_utc, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    except (OverflowError, OSError, ValueError):
        return repr(t_utc)


@dataclass(frozen=True)
class ReplayAddresses:
    """Where a replay binds its two sockets (a replay has no ingest)."""

    pub: str = DEFAULT_PUB_ADDRESS
    command: str = DEFAULT_COMMAND_ADDRESS


class ReplayServer:
    """Plays a recording on the stream and answers commands, as a twin would.

    Args:
        recording: The recording to serve (the caller closes it).
        addresses: Where to bind; loopback only.
        warp: Simulated seconds played per wall second; the recorded twin's warp (its
            first state's) when None.
        paused: Start paused on the first state (published once, as a twin does).
        loop: At the end, go back to the start and play on (counted as a seek).
        meta_interval_s: Wall seconds between republications of the current ``meta``.
        replay_interval_s: Wall seconds between ``replay`` messages.
        context: A ZeroMQ context to share; a private one by default.

    Raises:
        OSError: An address is not loopback or cannot be bound.
        ValueError: A malformed address, or a warp out of range.
    """

    def __init__(self, recording: Recording, addresses: ReplayAddresses | None = None, *,
                 warp: float | None = None, paused: bool = False, loop: bool = False,
                 meta_interval_s: float = 3.0, replay_interval_s: float = 1.0,
                 context: zmq.Context | None = None) -> None:
        self.recording = recording
        self.addresses = addresses or ReplayAddresses()
        first = recording.nearest_state(recording.start_ns)
        header = first.header()
        recorded_warp = header.get("warp")
        if warp is None:
            warp = float(recorded_warp) if isinstance(recorded_warp, int | float) and \
                not isinstance(recorded_warp, bool) and MIN_WARP <= recorded_warp <= MAX_WARP \
                else 1.0
        if not (math.isfinite(warp) and MIN_WARP <= warp <= MAX_WARP):
            raise ValueError(f"warp {warp!r} out of range [{MIN_WARP:g}, {MAX_WARP:g}] "
                             "simulated s per wall s")
        self.warp = float(warp)
        self.paused = paused
        self.loop = loop
        self.ended = False
        self.error = ""  # why playing stopped early (a damaged chunk), if it did
        self.seeks = 0
        self.meta_interval_s = meta_interval_s
        self.replay_interval_s = replay_interval_s
        run_id = recording.run_id if recording.run_id is not None else header.get("run_id")
        self.run_id: int | None = run_id if isinstance(run_id, int) else None
        self.position_ns = first.log_time
        self.published: dict[str, int] = {}
        self.counters = Counters()
        self.rejections = RateLimitedLog(log)
        self.replay_seq = 0
        self.pending_steps = 0
        self.started_wall = time.monotonic()
        self._stop_requested = False
        self._anchor_ns = first.log_time  # the clock: recorded time at _anchor_wall
        self._anchor_wall = time.monotonic()
        self._playing: Iterator[Record] | None = None
        self._next: Record | None = None
        self._meta: Record | None = None
        self._state: Record | None = None  # the last state published
        self._meta_body: tuple[Record, dict[str, Any]] | None = None
        self._meta_published_at = -math.inf
        self._next_replay = 0.0
        self._next_step_wall = 0.0
        for address in (self.addresses.pub, self.addresses.command):
            check_address(address)
            if not is_loopback(address):
                raise OSError(f"cannot bind {address}: a replay listens on loopback only "
                              "(127.0.0.1, localhost, [::1], ipc://); reach it from another "
                              "machine through an SSH tunnel")
        self._own_context = context is None
        self._context = context or zmq.Context()
        self.pub = self._bind(zmq.PUB, self.addresses.pub, sndhwm=PUB_HIGH_WATER_MARK)
        self.command = self._bind(
            zmq.ROUTER, self.addresses.command, maxmsgsize=COMMAND_MAX_FRAME_BYTES,
            rcvhwm=COMMAND_RECEIVE_QUEUE, sndhwm=COMMAND_REPLY_QUEUE, router_mandatory=1)
        self._replies = WaitingReplies(self.command, self._count_dropped_replies)
        self.handlers: dict[str, CommandHandler] = {
            "status": self._status, "meta": self._meta_command, "commands": self._commands,
            "pause": self._pause, "resume": self._resume, "step": self._step,
            "warp": self._warp, "seek": self._seek}
        self.command_specs = {spec.name: spec for spec in REPLAY_COMMANDS}
        self.dispatcher = CommandDispatcher(
            self.handlers, self.command_specs, SatelliteNames([], []), self.counters,
            self.rejections, self._moved)

    def _bind(self, kind: int, address: str, **options: int) -> zmq.Socket:
        sock = self._context.socket(kind)
        try:
            bind_socket(sock, address, **options)
        except OSError:
            sock.close()
            self.close()
            raise
        return sock

    @property
    def bound(self) -> ReplayAddresses:
        """The addresses actually bound (``tcp://127.0.0.1:*`` resolved to real ports)."""
        return ReplayAddresses(self.pub.getsockopt_string(zmq.LAST_ENDPOINT),
                               self.command.getsockopt_string(zmq.LAST_ENDPOINT))

    def stop(self) -> None:
        """Ask the loop to finish after the current pass (safe from a signal handler)."""
        self._stop_requested = True

    def close(self) -> None:
        self.rejections.flush()
        for name in ("pub", "command"):
            sock = getattr(self, name, None)
            if sock is not None:
                sock.close(linger=PUB_CLOSE_LINGER_MS if name == "pub" else 0)
        if getattr(self, "_own_context", False):
            self._context.term()

    # -- the clock --------------------------------------------------------------------

    def clock_ns(self) -> int:
        """Recorded simulation time the replay's clock has reached (frozen while paused)."""
        if self.paused:
            return self._anchor_ns
        return self._anchor_ns + int((time.monotonic() - self._anchor_wall) * self.warp * 1e9)

    def _set_anchor(self, t_ns: int) -> None:
        self._anchor_ns, self._anchor_wall = t_ns, time.monotonic()

    # -- the loop ---------------------------------------------------------------------

    def run(self, *, on_tick: Callable[[ReplayServer], None] | None = None,
            until_end: bool = False) -> None:
        """Play and serve until stopped (or, with ``until_end``, until the recording ends).

        Plays from the recording's first message; paused, it starts on the first state,
        published at once with the ``meta`` for it (as a twin publishes its first state).
        """
        if self.paused:
            self.land(self.recording.start_ns, count=False)
        else:
            self.position_ns = self.recording.start_ns
            self._set_anchor(self.recording.start_ns)
            self._playing = self.recording.messages(self.recording.start_ns)
            self._publish_replay()
        while not self._stop_requested:
            self._serve(self._wait_s())
            if self._stop_requested:
                break
            self._advance()
            self._publish_periodic()
            if on_tick is not None:
                on_tick(self)
            if until_end and self.ended:
                break

    def _wait_s(self) -> float:
        """How long the loop may wait for a command before something is due."""
        now = time.monotonic()
        wait = min(MAX_POLL_S, max(0.0, self._next_replay - now))
        if self.paused:
            if self.pending_steps:
                wait = min(wait, max(0.0, self._next_step_wall - now))
        elif self._peek() is not None:
            due_ns = self._next.log_time - self.clock_ns()
            wait = min(wait, max(0.0, due_ns / (self.warp * 1e9)))
        else:
            wait = 0.0  # the end: handled at once
        if self._replies:
            wait = min(wait, WAITING_RETRY_S)
        return wait

    def _advance(self) -> None:
        """Publish what has fallen due: the recording up to the clock, or one step."""
        if self.paused:
            if self.pending_steps and time.monotonic() >= self._next_step_wall:
                self._step_one()
            return
        deadline = time.perf_counter() + PLAY_SLICE_S
        clock = self.clock_ns()
        while (record := self._peek()) is not None and record.log_time <= clock:
            self._take_next()
            self._publish(record)
            if time.perf_counter() >= deadline:
                break
        record = self._peek()
        if record is None:
            self._at_end()
        elif clock - record.log_time > MAX_LAG_S * self.warp * 1e9:
            # Reading fell behind the warp (or the process stalled): the clock waits for
            # the recording rather than bursting what it missed all at once.
            self._set_anchor(record.log_time)

    def _step_one(self) -> None:
        """Publish up to and including the next state (while paused)."""
        while (record := self._peek()) is not None:
            self._take_next()
            self._publish(record)
            if record.topic == b"state":
                break
        self.pending_steps = max(0, self.pending_steps - 1)
        self._set_anchor(self.position_ns)
        self._next_step_wall = time.monotonic() + STEP_INTERVAL_S
        if self._peek() is None:
            self._at_end()
        elif not self.pending_steps:
            self._next_replay = 0.0  # say where the steps left it

    def _at_end(self) -> None:
        if self.loop and not self.error:
            self.land(self.recording.start_ns)
            return
        if not self.ended:
            self.ended, self.paused, self.pending_steps = True, True, 0
            self._set_anchor(self.position_ns)
            log.info("end of the recording at %s", iso(self.position_ns / 1e9))
            self._publish_replay()

    # -- reading ----------------------------------------------------------------------

    def _peek(self) -> Record | None:
        """The next recorded message to publish (None at the end)."""
        if self._next is None and self._playing is not None:
            try:
                self._next = next(self._playing)
            except StopIteration:
                self._playing = None
            except RecordingError as exc:  # a damaged chunk: stop there, and say so
                self._playing = None
                self.error = str(exc)
                log.error("replay stops: %s", exc)
        return self._next

    def _take_next(self) -> None:
        self._next = None

    def land(self, t_ns: int, *, count: bool = True) -> Record:
        """Go to the state nearest ``t_ns``: publish ``replay``, the ``meta`` (and
        ``alarms``) for it and the state itself; playing goes on after it.

        Args:
            count: Count it as a seek (the start of a run is not one).
        """
        recording = self.recording
        state = recording.nearest_state(t_ns)
        meta = (recording.last_at_or_before(b"meta", state.log_time)
                or recording.first_at_or_after(b"meta", state.log_time))
        alarms = (recording.last_at_or_before(b"alarms", state.log_time)
                  if b"alarms" in recording.topics else None)
        if count:
            self.seeks += 1
        self.ended, self.error, self.pending_steps = False, "", 0
        self.position_ns = state.log_time
        self._set_anchor(state.log_time)
        self._publish_replay()  # first: viewers count sequences afresh from here
        for record in (meta, alarms):
            if record is not None:
                self._publish(record, moves=False)
        self._publish(state)
        self._playing = recording.messages(state.log_time, after=state)
        self._next = None
        return state

    # -- publishing -------------------------------------------------------------------

    def _publish(self, record: Record, *, moves: bool = True, repeat: bool = False) -> None:
        """Send one recorded message as it was received.

        Args:
            moves: It is the replay's next message (the position moves to its time); not
                for a ``meta`` republished, or one sent with a state it precedes.
            repeat: It went out before (counted as ``repeated``, not under its topic).
        """
        try:
            frames = record.frames()
        except RecordingError as exc:  # one bad message is skipped, not the replay
            self.rejections.log("bad_record", "recorded message skipped at t_utc %.3f: %s",
                                record.log_time / 1e9, exc)
            self._count("bad_records")
            return
        self.pub.send_multipart(frames, copy=True)
        self._count("repeated" if repeat else record.topic.decode())
        if moves:
            self.position_ns = record.log_time
        if record.topic == b"state":
            self._state = record
        elif record.topic == b"meta":
            self._meta = record
            self._meta_published_at = time.monotonic()
            run_id = record.header().get("run_id")
            if isinstance(run_id, int) and not isinstance(run_id, bool):
                self.run_id = run_id

    def _count(self, what: str) -> None:
        self.published[what] = self.published.get(what, 0) + 1

    def replay_header(self) -> dict[str, Any]:
        """The ``replay`` message's header now (docs/protocol.md, "``replay``")."""
        start, end = self.recording.span_utc
        position = self.position_ns / 1e9
        header: dict[str, Any] = {"v": PROTOCOL_VERSION, "seq": self.replay_seq,
                                  "t_utc": position}
        if self.run_id is not None:
            header["run_id"] = self.run_id
        header.update(name=self.recording.name, span_utc=[start, end], position_utc=position,
                      warp=self.warp, paused=self.paused, ended=self.ended, seeks=self.seeks)
        return header

    def _publish_replay(self) -> None:
        self.pub.send_multipart(encode_replay(self.replay_header()))
        self.replay_seq += 1
        self._count("replay")
        self._next_replay = time.monotonic() + self.replay_interval_s

    def _publish_periodic(self) -> None:
        now = time.monotonic()
        if now >= self._next_replay:
            self._publish_replay()
        if self._meta is not None and now - self._meta_published_at >= self.meta_interval_s:
            self._republish()

    def _republish(self) -> None:
        """The recorded meta again, as recorded, and while paused the state shown: a viewer
        that joins draws at once. Viewers take a repeated seq as a repeat once they know
        the stream is a replay (viz.stream), so a ``replay`` message goes first."""
        self._publish_replay()
        self._publish(self._meta, moves=False, repeat=True)
        if self.paused and self._state is not None:
            self._publish(self._state, moves=False, repeat=True)

    def _moved(self) -> None:
        """After a command that moves the replay: say so on the stream now."""
        self._next_replay = 0.0

    # -- commands ---------------------------------------------------------------------

    def _serve(self, wait_s: float) -> None:
        if self._replies:
            self._replies.retry()
        if not self.command.poll(wait_s * 1000.0, zmq.POLLIN):
            return
        # The replay takes no keys: every client is local, told apart by its identity.
        self._replies.answer(
            lambda frames, _: self.handle_command_frames(
                frames, Caller(LOCAL.name, LOCAL.roles, "", frames[0].hex())),
            time.perf_counter() + PLAY_SLICE_S)

    def _count_dropped_replies(self, n: int) -> None:
        self.counters.replies_dropped += n

    def handle_command_frames(self, frames: list[bytes], caller: Caller = LOCAL
                              ) -> tuple[list[bytes], bytes] | None:
        """A ROUTER message's envelope and the reply to send (twin.runtime.dispatch)."""
        return self.dispatcher.handle_frames(frames, caller)

    def handle_command_bytes(self, body: bytes, caller: Caller = LOCAL) -> dict[str, Any]:
        """Decode, check and run one command body; never raises."""
        return self.dispatcher.handle_bytes(body, caller)

    def _span_text(self) -> str:
        start, end = self.recording.span_utc
        return f"{iso(start)} .. {iso(end)} (t_utc {start:.3f} .. {end:.3f})"

    def _status(self, request: dict[str, Any]) -> dict[str, Any]:
        only_keys(request, set())
        start, end = self.recording.span_utc
        counters = self.counters
        return ok(
            replay=True, file=str(self.recording.path), name=self.recording.name,
            t_utc=self.position_ns / 1e9, position_utc=self.position_ns / 1e9,
            span_utc=[start, end], paused=self.paused, warp=self.warp, ended=self.ended,
            seeks=self.seeks, loop=self.loop, queued_steps=self.pending_steps,
            error=self.error, uptime_s=time.monotonic() - self.started_wall,
            recorded=dict(sorted((t.decode(), n) for t, n in self.recording.counts.items())),
            published=dict(self.published),
            counters={
                "commands_ok": counters.commands_ok,
                "commands_rejected": counters.commands_rejected,
                "commands_failed": counters.commands_failed,
                "replies_dropped": counters.replies_dropped,
                "rejected_by_reason": dict(counters.rejected_by_reason),
            })

    def meta_body(self) -> dict[str, Any]:
        """The recorded ``meta`` at the position, as a ``meta`` reply carries it: without the
        framing keys, and with this replay's command catalog (what it answers).

        Raises:
            CommandRejected: The recording holds no ``meta``.
        """
        if self._meta is None:
            raise CommandRejected(f"the recording {self.recording.path.name} holds no meta "
                                  "message (its recorder never heard one)")
        if self._meta_body is None or self._meta_body[0] is not self._meta:
            body = {k: v for k, v in self._meta.header().items() if k not in FRAMING_KEYS}
            body["commands"] = {name: self.command_specs[name].entry()
                                for name in sorted(self.command_specs)}
            self._meta_body = (self._meta, body)
        return self._meta_body[1]

    def _meta_command(self, request: dict[str, Any]) -> dict[str, Any]:
        only_keys(request, set())
        body = self.meta_body()
        if time.monotonic() - self._meta_published_at >= META_REPUBLISH_MIN_INTERVAL_S:
            self._republish()
        return ok(meta=body)

    def _commands(self, request: dict[str, Any]) -> dict[str, Any]:
        only_keys(request, set())
        return ok(commands=sorted(name for name in self.command_specs if name != "confirm"))

    def _pause(self, request: dict[str, Any]) -> dict[str, Any]:
        only_keys(request, set())
        if not self.paused:
            self._set_anchor(self.clock_ns())
            self.paused = True
        self.pending_steps = 0
        return ok(paused=True, position_utc=self.position_ns / 1e9)

    def _resume(self, request: dict[str, Any]) -> dict[str, Any]:
        only_keys(request, set())
        if self.ended:
            raise CommandRejected(f"the replay is at the end of the recording "
                                  f"({iso(self.position_ns / 1e9)}); seek back first, within "
                                  f"{self._span_text()}")
        if self.paused:
            self.paused = False
            self._set_anchor(self._anchor_ns)
        self.pending_steps = 0
        return ok(paused=False, position_utc=self.position_ns / 1e9)

    def _step(self, request: dict[str, Any]) -> dict[str, Any]:
        n = request.get("n", 1)
        if not self.paused:
            raise CommandRejected("the replay is playing; pause it before stepping")
        if self.ended:
            raise CommandRejected(f"the replay is at the end of the recording; seek back "
                                  f"first, within {self._span_text()}")
        if self.pending_steps + n > MAX_STEPS_PER_COMMAND:
            raise CommandRejected(f"{self.pending_steps} steps are queued already; at most "
                                  f"{MAX_STEPS_PER_COMMAND} may wait (pause clears them)")
        self.pending_steps += n
        return ok(queued_steps=self.pending_steps, position_utc=self.position_ns / 1e9)

    def _warp(self, request: dict[str, Any]) -> dict[str, Any]:
        # The catalog has checked the range: forwards only, MIN_WARP to MAX_WARP.
        self._set_anchor(self.clock_ns())
        self.warp = float(request["value"])
        return ok(warp=self.warp)

    def _seek(self, request: dict[str, Any]) -> dict[str, Any]:
        t_utc = float(request["t_utc"])
        start, end = self.recording.span_utc
        # A client sending span_utc back gets its ends, whatever float rounding did to them.
        if not start - 1e-6 <= t_utc <= end + 1e-6:
            raise CommandRejected(f"t_utc {t_utc:.3f} ({iso(t_utc)}) is outside the "
                                  f"recording's span {self._span_text()}")
        t_ns = min(max(round(t_utc * 1e9), self.recording.start_ns), self.recording.end_ns)
        try:
            state = self.land(t_ns)
        except RecordingError as exc:  # a damaged chunk there: the client hears why
            raise CommandRejected(str(exc)) from exc
        return ok(t_utc=state.log_time / 1e9, position_utc=state.log_time / 1e9,
                  asked_utc=t_utc, paused=self.paused)

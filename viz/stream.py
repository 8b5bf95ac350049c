"""Following the twin from a viewer: the stream subscriber and the command client.

Both viewers (3D and terminal) use these. They speak only the documented wire protocol
through ``twin.protocol.codec`` and survive the twin going away: ZeroMQ reconnects by itself,
the subscriber reports STALE when heartbeats stop and notices a restart when ``run_id``
changes (or ``seq`` goes backwards), and the command client replaces its socket after a
timeout. Given ``ClientKeys`` (``--key``/``--server-key``), both are CURVE clients, and both
say why the twin refused them (``refused``) rather than just going quiet. A bad message
(undecodable, or not what docs/protocol.md says) is dropped, counted and logged at a
bounded rate; the messages after it are taken as usual.

A replay (``odc replay``) serves a recording on the same protocol and adds ``replay``
messages (twin.protocol.replay): once one is heard, a seek (its ``seeks`` count moving on)
starts sequence counting afresh instead of counting a gap or a restart, and a message that
repeats its topic's last ``seq`` (the recorded ``meta`` republished) is taken as a repeat.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import zmq

from twin.protocol.codec import (
    DEFAULT_COMMAND_ADDRESS,
    DEFAULT_PUB_ADDRESS,
    TOPIC_SUBSCRIPTION_PREFIX,
    TOPICS,
    Message,
    WireError,
    decode,
    pack,
    unpack,
)
from twin.protocol.replay import TOPIC_REPLAY, decode_replay
from twin.security.clients import ClientKeys, HandshakeWatch
from twin.security.keys import KeyFileError
from viz.aggregate import check_aggregate
from viz.checks import (
    MAX_SEQ_JUMP,
    BadMessages,
    check_alarms,
    check_event,
    check_heartbeat,
    check_meta,
    check_state,
)
from viz.meta_repeat import MetaRepeats

log = logging.getLogger("odc.viz")

CONNECTING = "CONNECTING"
LIVE = "LIVE"
STALE = "STALE"


@dataclass
class Batch:
    """What one ``poll`` gathered: the newest state only, but every event."""

    state: Message | None = None
    meta: Message | None = None
    heartbeat: Message | None = None
    events: list[Message] = field(default_factory=list)
    alarms: Message | None = None  # the twin's alarm table, newest
    aggregate: Message | None = None  # the fleet's summary (docs/protocol.md), newest
    states_skipped: int = 0
    restarted: bool = False
    replay: Message | None = None
    """The newest ``replay`` message: the stream is a replay of a recording."""
    seeked: bool = False
    """A replay moved to another point of its recording (what follows is not continuous)."""
    selections: dict[str, Message] = field(default_factory=dict)
    """The newest message of each selective stream this client asked for, by topic."""

    @property
    def empty(self) -> bool:
        nothing = self.state is None and self.meta is None and self.heartbeat is None
        return nothing and not self.events and self.alarms is None and self.replay is None \
            and self.aggregate is None and not self.selections


# Most events kept in one batch; older ones in a flood are counted as skipped, not kept.
MAX_BATCH_EVENTS = 1000
# A stream is a replay while its replay messages (one a second) keep coming: after this
# long without one it is taken for a twin again (a twin started where a replay was).
REPLAY_SILENCE_S = 3.0
# Largest message part a viewer takes (ZeroMQ drops bigger ones unread): a state of
# 100,000 nodes with every field is tens of MB.
MAX_MESSAGE_BYTES = 512 * 2**20


class StreamGate:
    """Decodes, checks and orders the stream's messages into batches; counts the bad ones.

    The socket-free part of `StreamClient`: each multipart message goes through
    `twin.protocol.codec.decode`, then the checks of `viz.checks` (a ``state`` against the ``meta``
    of the same twin run), then sequence bookkeeping. A message that fails any of these is
    dropped whole and counted in :attr:`bad`; nothing it carried reaches a viewer, and the
    messages after it are taken as usual.
    """

    refused = ""
    """Why the twin refused the connection; a gate without a socket never is."""

    def __init__(self) -> None:
        self.last_seq: dict[str, int] = {}
        self.gaps: dict[str, int] = {}
        self.received: dict[str, int] = {}
        self.bad = BadMessages(log)
        self.restarts = 0
        self.run_id: int | None = None
        self.last_message_wall = 0.0
        self.meta: Message | None = None
        self.events_skipped = 0
        self.replay: Message | None = None  # the newest ``replay`` message, if a replay
        self.replay_wall = 0.0
        self._jumped: dict[str, int] = {}
        # Selective streams this client asked for (``sub/<id>``; viz.view_subscription):
        # taken into ``Batch.selections``; every other ``sub/`` topic is ignored.
        self.selection_topics: set[bytes] = set()
        # The last meta and its bytes: a repeat of it is not decoded again (viz.meta_repeat).
        self.meta_repeats = MetaRepeats()

    @property
    def decode_errors(self) -> int:
        """Bad messages dropped so far (the name of earlier versions)."""
        return self.bad.count

    @property
    def replaying(self) -> bool:
        """Whether the stream is a replay: a ``replay`` message in the last few seconds."""
        return self.replay is not None and \
            time.monotonic() - self.replay_wall <= REPLAY_SILENCE_S

    @property
    def missed(self) -> int:
        """Messages lost in total, from gaps in per-topic sequence numbers."""
        return sum(self.gaps.values())

    def accept(self, frames: list, batch: Batch) -> Message | None:
        """Take one multipart message into ``batch``; returns it, or None if it was bad."""
        if _is_selective(frames):
            return self._accept_selection(frames, batch)
        try:
            message = None
            replay = _is_replay(frames)
            if not replay and self.meta is not None and self.meta is self.meta_repeats.message:
                message = self.meta_repeats.take(frames)  # the twin's repeat: not decoded
            if message is None:
                message = decode_replay(frames) if replay else decode(frames)
                if message.topic == "meta" and not replay:
                    self.meta_repeats.remember(message, frames)
            self._check(message)
            self._sequence(message, batch)
        except WireError as exc:
            self.bad.add("bad_" + _topic_of(frames), str(exc))
            return None
        except Exception as exc:  # a check's own bug must not take a viewer down either
            self.bad.add("unexpected", f"{type(exc).__name__}: {exc}")
            return None
        self.last_message_wall = time.monotonic()
        topic = message.topic
        self.received[topic] = self.received.get(topic, 0) + 1
        if topic == "state":
            if batch.state is not None:
                batch.states_skipped += 1
            batch.state = message
        elif topic == "meta":
            batch.meta = self.meta = message
        elif topic == "hb":
            batch.heartbeat = message
        elif topic == "alarms":
            batch.alarms = message
        elif topic == "aggregate":
            batch.aggregate = message
        elif topic == "event":
            if len(batch.events) >= MAX_BATCH_EVENTS:
                batch.events.pop(0)
                self.events_skipped += 1
            batch.events.append(message)
        elif topic == "replay":
            batch.replay = self.replay = message
            self.replay_wall = self.last_message_wall
        return message

    def _accept_selection(self, frames: list, batch: Batch) -> Message | None:
        """A ``sub/<id>`` message: ours (asked for) into the batch, another's ignored.

        Its ``seq`` is not tracked: a subscription asked for again after it expired counts
        from 0 in the same twin run. One of another run (``run_id``) is not taken.
        """
        first = frames[0].buffer if hasattr(frames[0], "buffer") else frames[0]
        if bytes(first) not in self.selection_topics:
            return None  # another client's selective stream: not ours to read
        try:
            message = decode(frames)
        except WireError as exc:
            self.bad.add("bad_selection", str(exc))
            return None
        run_id = message.header.get("run_id")
        if self.run_id is not None and run_id is not None and run_id != self.run_id:
            return None  # from the previous twin run, still queued
        self.last_message_wall = time.monotonic()
        self.received["selection"] = self.received.get("selection", 0) + 1
        batch.selections[message.topic] = message
        return message

    def _check(self, message: Message) -> None:
        topic = message.topic
        if topic == "state":
            meta = self.meta
            same_run = meta is not None and \
                meta.header.get("run_id") == message.header.get("run_id")
            check_state(message, meta.header if same_run else None)
        elif topic == "meta":
            check_meta(message.header)
        elif topic == "event":
            check_event(message)
        elif topic == "hb":
            check_heartbeat(message)
        elif topic == "alarms":
            check_alarms(message)
        elif topic == "aggregate":
            check_aggregate(message)
        elif topic == "replay":
            pass  # checked as it was decoded (twin.protocol.replay.check_replay)
        else:
            raise WireError(f"topic {topic!r} is not for viewers")

    def _sequence(self, message: Message, batch: Batch) -> None:
        """Gaps and restarts from ``run_id`` and per-topic ``seq``; raises on a wild jump."""
        topic, seq = message.topic, message.seq
        run_id = message.header.get("run_id")
        new_run = run_id is not None and self.run_id is not None and run_id != self.run_id
        if self.replaying and not new_run:
            if topic == "replay" and \
                    message.header.get("seeks") != self.replay.header.get("seeks"):
                # The replay went elsewhere in its recording: every topic's seq jumps
                # there, by design; count afresh from the messages that follow.
                self.last_seq.clear()
                self._jumped.clear()
                batch.seeked = True
            elif self.last_seq.get(topic) == seq:
                return  # a recorded message republished as it was (meta): a repeat
        previous = None if new_run else self.last_seq.get(topic)
        if previous is not None and seq > previous + MAX_SEQ_JUMP:
            if self._jumped.get(topic) != seq - 1:
                # Not believed, unless the next message follows on from it (a viewer that
                # slept for days meets the twin far ahead; a rogue's one wild number not).
                self._jumped[topic] = seq
                raise WireError(f"{topic} seq jumps from {previous} to {seq}")
            previous = None
            self.last_seq.pop(topic)
        self._jumped.pop(topic, None)
        if new_run or (previous is not None and seq <= previous):
            # Another twin process (a new run_id, or seq went backwards): its sequence
            # numbers start afresh, and its meta is not the old one's.
            self.restarts += 1
            batch.restarted = True
            self.last_seq.clear()
            self.meta = None
        elif previous is not None and seq > previous + 1:
            self.gaps[topic] = self.gaps.get(topic, 0) + seq - previous - 1
        if run_id is not None:
            self.run_id = run_id
        self.last_seq[topic] = seq


def _topic_of(frames: list) -> str:
    """A known topic's name for a bad message's reason tag, else ``message``."""
    try:
        topic = bytes(frames[0].buffer if hasattr(frames[0], "buffer") else frames[0])
    except Exception:
        return "message"
    return topic.decode() if topic in TOPICS or topic == TOPIC_REPLAY else "message"


def _is_selective(frames: list) -> bool:
    """Whether a message is on a selective stream's topic (``sub/<id>``)."""
    if not frames:
        return False
    first = frames[0].buffer if hasattr(frames[0], "buffer") else frames[0]
    try:
        return bytes(first[:4]) == TOPIC_SUBSCRIPTION_PREFIX
    except Exception:  # not bytes-like: the codec's decode says what is wrong
        return False


def _is_replay(frames: list) -> bool:
    """Whether a message is on the ``replay`` topic (decoded by twin.protocol.replay)."""
    if not frames:
        return False
    first = frames[0].buffer if hasattr(frames[0], "buffer") else frames[0]
    try:
        return bytes(first) == TOPIC_REPLAY
    except Exception:  # not bytes-like: the codec's decode says what is wrong
        return False


class StreamClient(StreamGate):
    """Subscribes to the twin's PUB socket and keeps track of the connection.

    Args:
        address: The twin's stream address.
        stale_after_s: Wall seconds without any message before the twin counts as STALE
            (three missed heartbeats by default).
        state_queue: Receive high-water mark for whole messages; small, because only
            the newest state is ever drawn.
        context: ZeroMQ context to use.
        keys: CURVE keys for a twin that admits registered keys only; None for a plain
            connection.
    """

    def __init__(
        self,
        address: str = DEFAULT_PUB_ADDRESS,
        *,
        stale_after_s: float = 3.0,
        state_queue: int = 8,
        context: zmq.Context | None = None,
        keys: ClientKeys | None = None,
    ) -> None:
        super().__init__()
        self.address = address
        self.keys = keys
        self.stale_after_s = stale_after_s
        self.socket = (context or zmq.Context.instance()).socket(zmq.SUB)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.RCVHWM, state_queue)
        self.socket.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        # Reconnect quickly after a twin restart, without hammering a dead port.
        self.socket.setsockopt(zmq.RECONNECT_IVL, 100)
        self.socket.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
        self.socket.setsockopt(zmq.SUBSCRIBE, b"")
        if keys is not None:
            keys.apply(self.socket)
        self.handshake = HandshakeWatch(self.socket, address, keys)
        self.socket.connect(address)

    @property
    def refused(self) -> str:
        """Why the twin refused this subscriber (its key, or the lack of one); ``""`` if not."""
        return self.handshake.check()

    @property
    def connection(self) -> str:
        """CONNECTING before anything arrived, LIVE while messages flow, STALE after."""
        if not self.last_message_wall:
            return CONNECTING
        if time.monotonic() - self.last_message_wall > self.stale_after_s:
            return STALE
        return LIVE

    def poll(self, timeout_ms: float = 0.0, max_messages: int = 10_000) -> Batch:
        """Drain what has arrived, waiting up to ``timeout_ms`` for the first message."""
        batch = Batch()
        if not self.socket.poll(timeout_ms, zmq.POLLIN):
            return batch
        for _ in range(max_messages):
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            self.accept(frames, batch)
        return batch

    def close(self) -> None:
        self.handshake.close()
        self.socket.close(linger=0)


class CommandClient:
    """Sends commands to the twin; a lost twin gives an error reply, never a hang.

    Uses a DEALER socket so a request that timed out does not wedge the client the way a
    REQ socket would; after a timeout the socket is replaced so a late reply to the old
    request cannot be mistaken for the answer to a new one. A twin that refuses the
    client's key (or wants one) gives an error reply at once, naming why.

    Args:
        address: The twin's command address.
        timeout_s: How long a command waits for its reply.
        context: ZeroMQ context to use.
        keys: CURVE keys for a twin that admits registered keys only; None for a plain
            connection.

    Raises:
        KeyFileError: ``keys``' files cannot be read (at construction).
    """

    def __init__(
        self,
        address: str = DEFAULT_COMMAND_ADDRESS,
        *,
        timeout_s: float = 2.0,
        context: zmq.Context | None = None,
        keys: ClientKeys | None = None,
    ) -> None:
        self.address = address
        self.timeout_s = timeout_s
        self.keys = keys
        self._context = context or zmq.Context.instance()
        self._socket: zmq.Socket | None = None
        self._watch: HandshakeWatch | None = None
        self._connect()
        self._next_id = 0

    def _connect(self) -> None:
        sock = self._context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RECONNECT_IVL, 100)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
        # A connection refused at the handshake leaves no peer: a send would wait for one
        # for ever. Within the command's timeout it gives up instead.
        sock.setsockopt(zmq.SNDTIMEO, max(1, int(self.timeout_s * 1000)))
        try:
            if self.keys is not None:
                self.keys.apply(sock)
        except KeyFileError:
            sock.close(linger=0)
            raise
        self._watch = HandshakeWatch(sock, self.address, self.keys)
        sock.connect(self.address)
        self._socket = sock

    def _disconnect(self) -> None:
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

    def send(self, cmd: str, **arguments: Any) -> dict[str, Any]:
        """Send ``{"cmd": cmd, **arguments}`` and return the reply map."""
        if self._socket is None:
            # The key files were read again for a new socket and went missing meanwhile.
            try:
                self._connect()
            except KeyFileError as exc:
                return {"ok": False, "error": str(exc)}
        assert self._socket is not None and self._watch is not None
        self._next_id += 1
        request_id = self._next_id
        try:
            self._socket.send_multipart([b"", pack({"cmd": cmd, "id": request_id,
                                                    **arguments})])
        except zmq.Again:  # no peer to send to: refused at the handshake, or no twin
            self._watch.check()
            why = self._watch.refused or (f"no connection to the twin at {self.address} "
                                          f"within {self.timeout_s:g} s")
            self._disconnect()  # a fresh socket next time
            return {"ok": False, "error": why}
        poller = zmq.Poller()
        poller.register(self._socket, zmq.POLLIN)
        poller.register(self._watch.monitor, zmq.POLLIN)
        deadline = time.monotonic() + self.timeout_s
        while (remaining := deadline - time.monotonic()) > 0:
            ready = dict(poller.poll(remaining * 1000.0))
            if self._watch.monitor in ready and self._watch.check():
                break  # refused: no reply will come on this socket
            if self._socket not in ready:
                continue
            frames = self._socket.recv_multipart()
            try:
                reply = unpack(frames[-1])
            except WireError:
                continue
            if isinstance(reply, dict) and reply.get("id") == request_id:
                reply.pop("id", None)
                return reply
        refused = self._watch.check()
        self._disconnect()
        try:
            self._connect()
        except KeyFileError as exc:
            refused = refused or str(exc)
        return {"ok": False, "error": refused or f"no reply from the twin at {self.address} "
                f"within {self.timeout_s:g} s"}

    def close(self) -> None:
        self._disconnect()

"""Following the twin from a viewer: the stream subscriber and the command client.

Both viewers (3D and terminal) use these. They speak only the documented wire protocol
through ``twin.wire`` and survive the twin going away: ZeroMQ reconnects by itself, the
subscriber reports STALE when heartbeats stop and notices a restart when ``run_id``
changes (or ``seq`` goes backwards), and the command client replaces its socket after a
timeout.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import zmq

from twin.wire import (
    DEFAULT_COMMAND_ADDRESS,
    DEFAULT_PUB_ADDRESS,
    Message,
    WireError,
    decode,
    pack,
    unpack,
)

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
    states_skipped: int = 0
    restarted: bool = False

    @property
    def empty(self) -> bool:
        nothing = self.state is None and self.meta is None and self.heartbeat is None
        return nothing and not self.events


class StreamClient:
    """Subscribes to the twin's PUB socket and keeps track of the connection.

    Args:
        address: The twin's stream address.
        stale_after_s: Wall seconds without any message before the twin counts as STALE
            (three missed heartbeats by default).
        state_queue: Receive high-water mark for whole messages; small, because only
            the newest state is ever drawn.
        context: ZeroMQ context to use.
    """

    def __init__(
        self,
        address: str = DEFAULT_PUB_ADDRESS,
        *,
        stale_after_s: float = 3.0,
        state_queue: int = 8,
        context: zmq.Context | None = None,
    ) -> None:
        self.address = address
        self.stale_after_s = stale_after_s
        self.socket = (context or zmq.Context.instance()).socket(zmq.SUB)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.RCVHWM, state_queue)
        # Reconnect quickly after a twin restart, without hammering a dead port.
        self.socket.setsockopt(zmq.RECONNECT_IVL, 100)
        self.socket.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
        self.socket.setsockopt(zmq.SUBSCRIBE, b"")
        self.socket.connect(address)
        self.last_seq: dict[str, int] = {}
        self.gaps: dict[str, int] = {}
        self.received: dict[str, int] = {}
        self.decode_errors = 0
        self.restarts = 0
        self.run_id: int | None = None
        self.last_message_wall = 0.0
        self.meta: Message | None = None

    @property
    def connection(self) -> str:
        """CONNECTING before anything arrived, LIVE while messages flow, STALE after."""
        if not self.last_message_wall:
            return CONNECTING
        if time.monotonic() - self.last_message_wall > self.stale_after_s:
            return STALE
        return LIVE

    @property
    def missed(self) -> int:
        """Messages lost in total, from gaps in per-topic sequence numbers."""
        return sum(self.gaps.values())

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
            self._accept(frames, batch)
        return batch

    def _accept(self, frames: list, batch: Batch) -> None:
        try:
            message = decode(frames)
        except WireError as exc:
            self.decode_errors += 1
            log.warning("undecodable message dropped: %s", exc)
            return
        self.last_message_wall = time.monotonic()
        topic = message.topic
        self.received[topic] = self.received.get(topic, 0) + 1
        run_id = message.header.get("run_id")
        if run_id is not None and self.run_id is not None and run_id != self.run_id:
            # Another twin process: its sequence numbers start afresh.
            self.restarts += 1
            batch.restarted = True
            self.last_seq.clear()
        if run_id is not None:
            self.run_id = run_id
        previous = self.last_seq.get(topic)
        if previous is not None:
            if message.seq <= previous:
                # seq went backwards: a new twin process. Start counting afresh.
                self.restarts += 1
                batch.restarted = True
                self.last_seq.clear()
            elif message.seq > previous + 1:
                self.gaps[topic] = self.gaps.get(topic, 0) + message.seq - previous - 1
        self.last_seq[topic] = message.seq
        if topic == "state":
            if batch.state is not None:
                batch.states_skipped += 1
            batch.state = message
        elif topic == "meta":
            batch.meta = self.meta = message
        elif topic == "hb":
            batch.heartbeat = message
        elif topic == "event":
            batch.events.append(message)

    def close(self) -> None:
        self.socket.close(linger=0)


class CommandClient:
    """Sends commands to the twin; a lost twin gives an error reply, never a hang.

    Uses a DEALER socket so a request that timed out does not wedge the client the way a
    REQ socket would; after a timeout the socket is replaced so a late reply to the old
    request cannot be mistaken for the answer to a new one.
    """

    def __init__(
        self,
        address: str = DEFAULT_COMMAND_ADDRESS,
        *,
        timeout_s: float = 2.0,
        context: zmq.Context | None = None,
    ) -> None:
        self.address = address
        self.timeout_s = timeout_s
        self._context = context or zmq.Context.instance()
        self._socket = self._connect()
        self._next_id = 0

    def _connect(self) -> zmq.Socket:
        sock = self._context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RECONNECT_IVL, 100)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
        sock.connect(self.address)
        return sock

    def send(self, cmd: str, **arguments: Any) -> dict[str, Any]:
        """Send ``{"cmd": cmd, **arguments}`` and return the reply map."""
        self._next_id += 1
        request_id = self._next_id
        self._socket.send_multipart([b"", pack({"cmd": cmd, "id": request_id, **arguments})])
        deadline = time.monotonic() + self.timeout_s
        while (remaining := deadline - time.monotonic()) > 0:
            if not self._socket.poll(remaining * 1000.0, zmq.POLLIN):
                break
            frames = self._socket.recv_multipart()
            try:
                reply = unpack(frames[-1])
            except WireError:
                continue
            if isinstance(reply, dict) and reply.get("id") == request_id:
                reply.pop("id", None)
                return reply
        self._socket.close(linger=0)
        self._socket = self._connect()
        return {"ok": False, "error": f"no reply from the twin at {self.address} "
                f"within {self.timeout_s:g} s"}

    def close(self) -> None:
        self._socket.close(linger=0)

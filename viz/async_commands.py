"""Commands a window sends without waiting: send now, take the reply on a later tick.

``viz.stream.CommandClient`` waits for each reply, which is right for a key the operator
pressed, but a twin stepping a million satellites answers between steps, up to a second
later: a viewer renewing its subscription or fetching the selected node's row that way
would freeze its window for that long. ``AsyncCommands`` has its own DEALER socket (with
the same CURVE keys): ``send`` returns a request id at once, ``replies`` drains what has
arrived (never blocking), and a request unanswered after ``timeout_s`` comes back as an
error reply; a late answer to it is dropped (replies are matched by request id).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import zmq

from twin.protocol.codec import WireError, pack, unpack
from twin.security.clients import ClientKeys


class AsyncCommands:
    """A command socket whose replies are collected by polling.

    Args:
        address: The twin's command address.
        keys: CURVE keys (None: a plain connection).
        context: ZeroMQ context to use.
        timeout_s: A request without a reply after this long is answered with an error.
    """

    def __init__(self, address: str, *, keys: ClientKeys | None = None,
                 context: zmq.Context | None = None, timeout_s: float = 30.0) -> None:
        self.address = address
        self.keys = keys
        self.timeout_s = timeout_s
        self._context = context or zmq.Context.instance()
        self._socket: zmq.Socket | None = None
        self._next_id = 0
        self.pending: dict[int, tuple[str, float]] = {}  # id -> (cmd, sent at)

    def _connect(self) -> zmq.Socket:
        if self._socket is None:
            sock = self._context.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.RECONNECT_IVL, 100)
            sock.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
            sock.setsockopt(zmq.SNDHWM, 16)
            if self.keys is not None:
                self.keys.apply(sock)
            sock.connect(self.address)
            self._socket = sock
        return self._socket

    def send(self, cmd: str, **arguments: Any) -> int:
        """Queue ``{"cmd": cmd, **arguments}``; returns its request id (never blocks)."""
        self._next_id += 1
        request_id = self._next_id
        self.pending[request_id] = (cmd, time.monotonic())
        # No peer yet: it times out like an unanswered request.
        with contextlib.suppress(zmq.Again, zmq.ZMQError):
            self._connect().send_multipart(
                [b"", pack({"cmd": cmd, "id": request_id, **arguments})], zmq.NOBLOCK)
        return request_id

    def replies(self) -> list[tuple[int, str, dict[str, Any]]]:
        """``(request id, cmd, reply)`` for each answered or timed-out request."""
        out: list[tuple[int, str, dict[str, Any]]] = []
        sock = self._socket
        while sock is not None:
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            try:
                reply = unpack(frames[-1])
            except WireError:
                continue
            if not isinstance(reply, dict):
                continue
            request_id = reply.pop("id", None)
            if isinstance(request_id, int) and request_id in self.pending:
                cmd, _ = self.pending.pop(request_id)
                out.append((request_id, cmd, reply))
        now = time.monotonic()
        late = [rid for rid, (_, sent) in self.pending.items() if now - sent > self.timeout_s]
        for request_id in late:
            cmd, _ = self.pending.pop(request_id)
            out.append((request_id, cmd, {"ok": False, "error": f"no reply from the twin at "
                                          f"{self.address} within {self.timeout_s:g} s"}))
        return out  # a late answer to a given-up request has no pending id: dropped

    def _reset(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

    def close(self, linger_s: float = 0.0) -> None:
        """Close the socket; ``linger_s``: how long requests already sent (a last
        ``unsubscribe``) may still take to leave."""
        if self._socket is not None and linger_s > 0.0:
            self._socket.close(linger=int(linger_s * 1000))
            self._socket = None
        self._reset()
        self.pending.clear()

"""Command replies libzmq would not take at once, kept in order and sent when it will.

libzmq learns that a client read its replies only in batches, so a send can find the
client's queue "full" with one request outstanding (18 in 100,000 replies, measured). Such
a reply waits here and is sent on the next pass instead of being dropped, within bounds;
past them the oldest waiting reply of that client is dropped (counted ``replies_dropped``).
docs/reliability.md lists the bounds.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

import zmq

MAX_WAITING_REPLIES_PER_CLIENT = 64
MAX_WAITING_REPLY_BYTES = 16 << 20
MAX_WAITING_CLIENTS = 256


class WaitingReplies:
    """Replies to send on a ROUTER socket, in order per client, bounded in count and bytes.

    Args:
        socket: The ROUTER socket (``router_mandatory``: a gone client raises).
        dropped: Called with the number of replies dropped (a client gone or not reading).
    """

    def __init__(self, socket: zmq.Socket, dropped: Callable[[int], None]) -> None:
        self.socket = socket
        self._dropped = dropped
        self._waiting: OrderedDict[bytes, deque[list[bytes]]] = OrderedDict()
        self._bytes = 0

    def __bool__(self) -> bool:
        return bool(self._waiting)

    def answer(self, handle: Callable[[list[bytes], list[Any]], tuple[list[bytes], bytes] | None],
               deadline: float) -> None:
        """Take the requests waiting on the socket, each answered by ``handle(frames,
        received)`` (the frames as bytes, and as libzmq's frames for their metadata), its
        reply sent or queued, until none is left or ``time.perf_counter()`` passes
        ``deadline`` (the twin's step and the replay's play go on meanwhile)."""
        while True:
            try:
                received = self.socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            reply = handle([f.bytes for f in received], received)
            if reply is not None:
                envelope, payload = reply
                self.send([*envelope, payload])
            if time.perf_counter() >= deadline:
                return

    def send(self, frames: list[bytes]) -> None:
        """Send now, or queue behind this client's waiting replies (bounded)."""
        client = frames[0]
        if client not in self._waiting:
            try:
                self.socket.send_multipart(frames, zmq.NOBLOCK)
                return
            except zmq.Again:  # libzmq's queue to this client looks full
                pass
            except zmq.ZMQError:  # EHOSTUNREACH: the client is gone
                self._dropped(1)
                return
        queue = self._waiting.setdefault(client, deque())
        queue.append(frames)
        self._bytes += sum(len(f) for f in frames)
        while self._waiting and (len(queue) > MAX_WAITING_REPLIES_PER_CLIENT
                                 or self._bytes > MAX_WAITING_REPLY_BYTES):
            self._drop_oldest(client if len(queue) > 1 else next(iter(self._waiting)))
        while len(self._waiting) > MAX_WAITING_CLIENTS:
            self._drop_oldest(next(iter(self._waiting)))

    def retry(self) -> None:
        """Hand libzmq the waiting replies it now takes, in order per client."""
        for client in list(self._waiting):
            queue = self._waiting[client]
            while queue:
                try:
                    self.socket.send_multipart(queue[0], zmq.NOBLOCK)
                except zmq.Again:
                    break
                except zmq.ZMQError:  # gone: nothing of its will ever be read
                    self._dropped(len(queue))
                    self._bytes -= sum(sum(len(f) for f in r) for r in queue)
                    queue.clear()
                    break
                self._bytes -= sum(len(f) for f in queue.popleft())
            if not queue:
                del self._waiting[client]

    def _drop_oldest(self, client: bytes) -> None:
        """Drop the oldest waiting reply of ``client`` (a client that does not read)."""
        queue = self._waiting[client]
        self._bytes -= sum(len(f) for f in queue.popleft())
        self._dropped(1)
        if not queue:
            del self._waiting[client]

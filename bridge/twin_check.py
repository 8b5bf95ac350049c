"""Whether the twin takes what this bridge pushes: its mirror counters, read back.

A PUSH socket cannot tell whether the twin applied a message or dropped it, so a bridge
aimed at a twin with no ``[[mirror.testbed]]`` of its name would report "pushed N samples"
while the twin drops every one. ``TwinCheck`` asks the twin's command socket for
``mirror_status`` every ``CHECK_INTERVAL_S`` until it answers, then every
``RECHECK_INTERVAL_S`` (a restarted twin may have another scenario; every request is an
audited command, so the bridge does not ask more often than it needs), never blocking the
bridge (one request in flight, answered or given up after ``REPLY_TIMEOUT_S``), and says,
once each time the answer changes, whether the twin mirrors this testbed, and on which node.
"""

from __future__ import annotations

import time

import zmq

from twin.protocol.codec import WireError, pack, unpack
from twin.security.clients import ClientKeys

CHECK_INTERVAL_S = 2.0
RECHECK_INTERVAL_S = 30.0
REPLY_TIMEOUT_S = 5.0
MAX_REPLY_BYTES = 1 << 20
"""A mirror_status reply is a few kB; a larger one is not the twin's."""


class TwinCheck:
    """Reads the twin's mirror counters for one testbed.

    Args:
        address: The twin's command address.
        testbed: The testbed name this bridge sends.
        context: ZeroMQ context.
        keys: CURVE keys for a twin with keys (the key needs the viewer role to read the
            counters; without it the check says so once and stops).
    """

    def __init__(self, address: str, testbed: str, context: zmq.Context | None = None,
                 keys: ClientKeys | None = None) -> None:
        self.address = address
        self.testbed = testbed
        self.sock = (context or zmq.Context.instance()).socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.MAXMSGSIZE, MAX_REPLY_BYTES)
        if keys is not None:
            keys.apply(self.sock)
        self.sock.connect(address)
        self._sent_at: float | None = None
        self._next_check = 0.0
        self._said = ""
        self.stopped = False
        self.bound: bool | None = None  # None: not known yet
        self.unknown_samples = 0  # the twin's count of samples from unknown testbeds

    def poll(self, now: float | None = None) -> str:
        """Read a reply or send a request when due; returns what to tell the operator
        (``""``: nothing new). Call about once a second."""
        now = time.monotonic() if now is None else now
        if self.stopped:
            return ""
        if self._sent_at is not None:
            try:
                frames = self.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                if now - self._sent_at > REPLY_TIMEOUT_S:
                    self._sent_at = None  # the twin is away; ask again later
                return ""
            self._sent_at = None
            self._next_check = now + RECHECK_INTERVAL_S
            return self._say(self._judge(frames))
        if now >= self._next_check:
            self._next_check = now + CHECK_INTERVAL_S
            try:
                self.sock.send_multipart([b"", pack({"cmd": "mirror_status"})], zmq.NOBLOCK)
                self._sent_at = now
            except zmq.Again:
                pass
        return ""

    def _judge(self, frames: list[bytes]) -> str:
        try:
            reply = unpack(frames[-1])
        except WireError:
            return "the twin's answer to mirror_status was not readable"
        if not isinstance(reply, dict):
            return "the twin's answer to mirror_status was not a map"
        if not reply.get("ok"):
            self.stopped = True
            return (f"cannot read the twin's mirror counters ({str(reply.get('error'))[:120]});"
                    " whether the twin takes these samples is not checked")
        bindings = [b for b in reply.get("bindings", []) if isinstance(b, dict)]
        unknown = reply.get("unknown_testbed", {})
        if isinstance(unknown, dict) and isinstance(unknown.get("samples"), int):
            self.unknown_samples = unknown["samples"]
        mine = [b for b in bindings if b.get("testbed") == self.testbed]
        self.bound = bool(mine)
        if not mine:
            names = sorted({str(b.get("testbed")) for b in bindings})
            return (f"WARNING: the twin has no [[mirror.testbed]] named {self.testbed!r} "
                    f"(it mirrors: {', '.join(names) or 'none'}): it drops every sample "
                    f"this bridge pushes ({self.unknown_samples} from unknown testbeds so "
                    "far); add a binding to the twin's scenario or pass --testbed")
        nodes = ", ".join(str(b.get("sat")) for b in mine)
        return f"the twin mirrors testbed {self.testbed!r} on node {nodes}"

    def _say(self, text: str) -> str:
        """``text`` when it says something new (the counts in parentheses aside)."""
        key = text.split(" (", 1)[0]
        if key == self._said:
            return ""
        self._said = key
        return text

    def summary(self) -> str:
        """A few words for the bridge's final status line."""
        if self.bound is False:
            return f"; the twin dropped them all (no [[mirror.testbed]] {self.testbed!r})"
        return ""

    def close(self) -> None:
        self.sock.close(linger=0)

"""Push decoded telemetry to the twin's ingest socket (the ``tm`` message of docs/protocol.md).

One message carries k samples of one packet type of one testbed, column by column; it is
framed by ``twin.protocol.telemetry.encode_telemetry``, beside the decoder the twin reads it
with. This module adds the socket: bounded queueing, send timeouts, the counts of what
was sent and dropped, and (with ``ClientKeys``) CURVE, saying why a twin refused the key.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import zmq

from twin.protocol.telemetry import encode_telemetry
from twin.security.clients import ClientKeys, HandshakeWatch

# Messages queued for a twin that is connected but not reading. One message holds at most
# one 256 KiB read window of packets (~420 kB decoded), so 128 of them bound the queue near
# 54 MB; past it a send waits up to SEND_TIMEOUT_MS, then drops the batch (counted).
PUSH_HIGH_WATER_MARK = 128
SEND_TIMEOUT_MS = 1000


class TelemetryPusher:
    """A PUSH socket to the twin's ingest address, with send accounting.

    Sends never block longer than ``SEND_TIMEOUT_MS``: if the twin is away and the queue
    is full, the message is dropped and counted (``dropped``), the bridge keeps reading.

    Args:
        address: The twin's ingest address.
        testbed: The testbed name every message carries.
        context: ZeroMQ context to use.
        keys: CURVE keys (a key with role ``testbed:NAME``) for a twin that admits
            registered keys only; None for a plain connection.
    """

    def __init__(self, address: str, testbed: str, context: zmq.Context | None = None,
                 keys: ClientKeys | None = None) -> None:
        self.address = address
        self.testbed = testbed
        self.keys = keys
        self._context = context or zmq.Context.instance()
        self.sock = self._context.socket(zmq.PUSH)
        self.sock.setsockopt(zmq.LINGER, 500)
        self.sock.setsockopt(zmq.SNDHWM, PUSH_HIGH_WATER_MARK)
        self.sock.setsockopt(zmq.SNDTIMEO, SEND_TIMEOUT_MS)
        if keys is not None:
            keys.apply(self.sock)
        self.handshake = HandshakeWatch(self.sock, address, keys)
        self.sock.connect(address)
        self.seq = 0
        self.sent_messages = 0
        self.sent_samples = 0
        self.dropped_messages = 0
        self.dropped_samples = 0
        self._last_counters_s = -np.inf

    def send(self, packet: str, t_utc: np.ndarray, values: dict[str, np.ndarray],
             units: dict[str, str] | None = None, bridge: dict[str, Any] | None = None,
             seq_count: np.ndarray | None = None,
             noise: dict[str, float] | None = None) -> bool:
        """Send one batch; returns False when it had to be dropped."""
        now = time.monotonic()
        if bridge is not None and now - self._last_counters_s < 1.0:
            bridge = None
        elif bridge is not None:
            self._last_counters_s = now
        frames = encode_telemetry(self.seq, self.testbed, packet, t_utc, values, units, bridge,
                                  seq_count=seq_count, noise=noise)
        self.seq += 1
        try:
            self.sock.send_multipart(frames, copy=False)
        except zmq.Again:
            self.dropped_messages += 1
            self.dropped_samples += len(t_utc)
            return False
        self.sent_messages += 1
        self.sent_samples += len(t_utc)
        return True

    @property
    def refused(self) -> str:
        """Why the twin refused this pusher (its key, or the lack of one); ``""`` if not."""
        return self.handshake.check()

    def status(self) -> dict[str, int]:
        return {"sent_messages": self.sent_messages, "sent_samples": self.sent_samples,
                "dropped_messages": self.dropped_messages, "dropped_samples": self.dropped_samples}

    def close(self) -> None:
        self.handshake.close()
        self.sock.close()

"""What the twin publishes each step: the default ``state``, every due selective stream
(twin.runtime.subscriptions) and the ``aggregate`` message (twin.runtime.aggregates)."""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import zmq

from twin.protocol.codec import TOPIC_AGGREGATE, StateEncoder, encode_map
from twin.runtime.aggregates import FleetAggregates
from twin.runtime.subscriptions import (
    FULL_STATE_MAX_SATS,
    SubscriptionHub,
    default_state_fields,
)

if TYPE_CHECKING:
    from twin.runtime.server import TwinServer

# The socket's own send, without pyzmq's wrapper (twin.runtime.server says why).
_RAW_SEND = zmq.backend.Socket.send
_SNDMORE = int(zmq.SNDMORE)


class StreamPublisher:
    """Publishes one step's messages for a server.

    Args:
        server: The server whose engine, PUB socket, framing and counters are used.
        full_state_max_sats: Above this many satellites the default ``state`` leaves out
            fields with a satellite axis.
    """

    def __init__(self, server: TwinServer, full_state_max_sats: int = FULL_STATE_MAX_SATS
                 ) -> None:
        self.server = server
        self.full_state_max_sats = full_state_max_sats
        engine = server.engine
        groups = [s.group for s in engine.scenario.satellites]
        self.hub = SubscriptionHub(engine.fields, groups)
        # On the engine's workers: its fields' entries in parts on threads (large fleets).
        self.aggregates = FleetAggregates(engine.fields, groups,
                                          workers=getattr(engine, "workers", 1))
        self._encoder: StateEncoder | None = None
        self._encoded_fields: list | None = None
        self._state_fields: list = []
        self.aggregate_time_s = 0.0
        self.aggregate_seq = 0
        self.last_state_bytes = 0
        self.last_aggregate_bytes = 0

    @property
    def reduced(self) -> bool:
        """Whether the default ``state`` leaves out the per-satellite fields."""
        return self.server.engine.n_sats > self.full_state_max_sats

    def publish_step(self) -> None:
        """The default ``state``, the due subscriptions and the ``aggregate``."""
        server = self.server
        engine = server.engine
        header = engine.header()
        framed = server._framing(b"state")
        framed.update(header)
        if self.reduced:
            framed["reduced"] = True
        fields = engine.fields
        if self._encoder is None or fields is not self._encoded_fields:
            self._state_fields = default_state_fields(fields, engine.n_sats,
                                                      self.full_state_max_sats)
            self._encoder = StateEncoder([f.spec for f in self._state_fields])
            self._encoded_fields = fields
        frames = self._encoder.encode(framed, [f.array for f in self._state_fields])
        self._send(frames, copy=True)
        self.last_state_bytes = sum(len(f) for f in frames)
        server.counters.state_published += 1
        self.hub.publish(lambda message: self._send(message, copy=True),
                         lambda: {"v": framed["v"], "t_utc": framed["t_utc"],
                                  "run_id": framed["run_id"]}, header)
        self._publish_aggregate(framed)

    def _publish_aggregate(self, framed: dict[str, Any]) -> None:
        started = time.perf_counter()
        body = self.aggregates.compute()
        states = Counter(alarm.state for alarm in self.server.alarm_table.alarms.values())
        message = {"v": framed["v"], "seq": self.aggregate_seq, "t_utc": framed["t_utc"],
                   "run_id": framed["run_id"], "step": framed.get("step"), **body,
                   "alarm_states": dict(states)}
        self.aggregate_seq += 1
        frames = encode_map(TOPIC_AGGREGATE, message)
        self.aggregate_time_s = time.perf_counter() - started
        self._send(frames, copy=False)
        self.last_aggregate_bytes = sum(len(f) for f in frames)

    def _send(self, frames: list, copy: bool) -> None:
        # Copy, never zero-copy, for views of live arrays: the next step rewrites them
        # while ZeroMQ may still queue them for a slow subscriber (torn frames).
        pub = self.server.pub
        for frame in frames[:-1]:
            _RAW_SEND(pub, frame, _SNDMORE, copy)
        _RAW_SEND(pub, frames[-1], 0, copy)

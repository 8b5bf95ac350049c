"""What the twin publishes each step: the default ``state``, every due selective stream
(twin.runtime.subscriptions) and the ``aggregate`` message (twin.runtime.aggregates)."""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import zmq

from twin.protocol.codec import TOPIC_AGGREGATE, TOPIC_META, StateEncoder, encode_map
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

SUBSCRIPTION_MESSAGES_PER_CALL = 10_000
"""At most this many subscription messages are read from the stream socket at a time (a
client that floods subscriptions cannot hold the step; the rest are read the next time)."""


class TopicDemand:
    """Whether any client's subscription takes a topic, from the stream socket's own
    subscription messages.

    The stream socket is a verbose XPUB: libzmq passes up every client's subscription
    (``b"\\x01" + prefix``) and, when the last client holding a prefix unsubscribes or goes
    away, its unsubscription (``b"\\x00" + prefix``). Only the prefixes of the watched topic
    are kept, so what clients subscribe to cannot grow this.
    """

    def __init__(self, topic: bytes) -> None:
        self.topic = topic
        self._prefixes: set[bytes] = set()
        self.joined = False
        """A client subscribed to the topic since the owner last cleared this (the socket
        is verbose: every client's subscription comes up, not only a prefix's first)."""

    @property
    def named(self) -> bool:
        """Whether some client subscribes to the topic by name (or a prefix of it)."""
        return len(self._prefixes - {b""}) > 0

    @property
    def everything(self) -> bool:
        """Whether some client takes every topic (``b""``: viewers)."""
        return b"" in self._prefixes

    def take(self, message: bytes) -> None:
        """One subscription message from the stream socket (``\\x01`` or ``\\x00`` and a
        prefix); another topic's, or anything else, changes nothing."""
        prefix = message[1:]
        if not message or not self.topic.startswith(prefix):
            return
        if message[0] == 1:
            self._prefixes.add(prefix)
            self.joined = True
        elif message[0] == 0:
            self._prefixes.discard(prefix)


def read_subscription_messages(sock: zmq.Socket, demands: list[TopicDemand]) -> None:
    """Hand the subscription messages waiting on ``sock`` to each of ``demands`` (never
    blocks; at most ``SUBSCRIPTION_MESSAGES_PER_CALL`` a call)."""
    for _ in range(SUBSCRIPTION_MESSAGES_PER_CALL):
        if not sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            return
        message = sock.recv(copy=True)
        for demand in demands:
            demand.take(message)


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
        # The aggregate costs ~1 ms a step at 4,428 nodes: computed only for a client that
        # reads it (aggregate_wanted).
        self.aggregate_demand = TopicDemand(TOPIC_AGGREGATE)
        # A client that joins the stream late, without a command socket to ask for meta,
        # gets it soon after it subscribes rather than at the next periodic one (3 s).
        self.meta_demand = TopicDemand(TOPIC_META)

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
        self.read_subscriptions()
        if self.aggregate_wanted:
            self._publish_aggregate(framed)
        else:
            server.counters.aggregates_skipped += 1

    @property
    def aggregate_wanted(self) -> bool:
        """Whether this step's ``aggregate`` has a reader: a client that subscribes to it by
        name (a recorder, a script), or, on a reduced stream, one that takes everything
        (``odc tui``'s fleet view). On a full stream a client taking everything has every
        node's row and the viewers read those, not the aggregate."""
        demand = self.aggregate_demand
        return demand.named or (demand.everything and self.reduced)

    def read_subscriptions(self) -> None:
        """What the clients' subscriptions now take (the stream socket's messages)."""
        read_subscription_messages(self.server.pub, [self.aggregate_demand, self.meta_demand])

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

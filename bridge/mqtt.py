"""MQTT as a telemetry source: subscribe to a lab broker, turn mapped topics into samples.

``MqttSource`` runs paho-mqtt's network loop in its own thread. That thread only queues
what arrives (topic, payload, arrival time), bounded in count and bytes; it never parses.
``read()`` on the bridge's thread drains the queue through ``MqttDecoder``, which applies
the definition's ``[mqtt]`` table (``bridge.mqtt_topics``): a mapped topic, a payload
within the size limit, a number where the table says, finite, inside its bounds. What
fails is counted by reason, logged at a bounded rate, and never pushed; what passes
becomes one ``MqttBatch`` per parameter, pushed like CCSDS samples (``bridge.push``).

The broker going away is not an error: paho reconnects with a delay doubling from
``RECONNECT_MIN_S`` up to the bound given (``--mqtt-reconnect-max``). Meanwhile no samples
reach the twin, whose mirror raises ``mirror_lost`` after its ``lost_after_s`` and
``mirror_regained`` when samples flow again.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from bridge.mqtt_topics import MAX_PAYLOAD_BYTES, REASONS, MqttTable, PayloadRejected
from twin.core.ratelog import RateLimitedLog
from twin.protocol.telemetry import quote

log = logging.getLogger("odc.bridge")

DEFAULT_PORT = 1883
RECONNECT_MIN_S = 0.5
DEFAULT_RECONNECT_MAX_S = 10.0
KEEPALIVE_S = 10
"""A broker silent this long (and 1.5x for the broker's own check) counts as gone."""
MAX_QUEUED_MESSAGES = 65_536
MAX_QUEUED_BYTES = 16 << 20
"""What the network thread may hold for the bridge's thread; past it messages are dropped
and counted (``queue_full``): a flood costs at most ~16 MiB, never the bridge."""
MAX_MESSAGES_PER_READ = 16_384
UNREACHED_NOTICE_S = 5.0
"""Not connected this long after start: say that the broker is still being tried."""
MAX_PACKET_BYTES = 2 * MAX_PAYLOAD_BYTES
"""MQTT 5 only: the broker sends no larger packet (it drops it, uncounted here), so a
hostile publisher cannot make the bridge read 256 MB; payloads up to this but over the
table's ``max_payload_bytes`` are counted ``too_large``."""


@dataclass
class MqttBatch:
    """Accepted samples of one parameter, in arrival order (one ``tm`` message).

    Attributes:
        packet: Packet name sent to the twin (``mqtt/<parameter>``).
        t_utc: (k,) arrival wall times, POSIX s (MQTT carries no sample time).
        values: {parameter: (k,) SI values}.
        units: {parameter: SI unit}.
        count: (k,) the parameter's accepted-sample count, ordering equal times.
    """

    packet: str
    t_utc: np.ndarray
    values: dict[str, np.ndarray]
    units: dict[str, str]
    count: np.ndarray

    def __len__(self) -> int:
        return len(self.t_utc)


@dataclass
class _Message:
    topic: str
    payload: bytes | None  # None: over the size limit, dropped unread
    size: int
    retained: bool
    t_rx: float


class MqttDecoder:
    """Messages -> validated samples, with the counters CCSDS decoding keeps.

    ``received == accepted + rejected_total``, ``rejected`` by reason (``REASONS``).
    """

    def __init__(self, table: MqttTable) -> None:
        self.table = table
        self.received = 0
        self.accepted = 0
        self.bytes_received = 0
        self.rejected: dict[str, int] = dict.fromkeys(REASONS, 0)
        self.rejections = RateLimitedLog(log)
        self._counts: dict[str, int] = dict.fromkeys(table.topics, 0)

    def decode(self, messages: list[_Message]) -> list[MqttBatch]:
        """Judge messages in arrival order; one batch per parameter with accepted samples."""
        accepted: dict[str, tuple[list[float], list[float], list[int]]] = {}
        for msg in messages:
            self.received += 1
            self.bytes_received += msg.size
            topic = self.table.topics.get(msg.topic)
            try:
                if topic is None:
                    raise PayloadRejected("unknown_topic", "no [[mqtt.topic]] maps it")
                if msg.payload is None:
                    raise PayloadRejected("too_large", f"{msg.size} bytes, over "
                                          f"max_payload_bytes {self.table.max_payload_bytes}")
                if msg.retained:
                    raise PayloadRejected("retained", "a retained message is an old value of "
                                          "unknown age")
                value = topic.value_si(msg.payload)
            except PayloadRejected as exc:
                self.reject(exc.reason, msg.topic, str(exc))
                continue
            self.accepted += 1
            self._counts[topic.topic] += 1
            times, values, counts = accepted.setdefault(topic.topic, ([], [], []))
            times.append(msg.t_rx)
            values.append(value)
            counts.append(self._counts[topic.topic])
        batches = []
        for name, (times, values, counts) in accepted.items():
            topic = self.table.topics[name]
            batches.append(MqttBatch(topic.packet, np.array(times),
                                     {topic.parameter: np.array(values)},
                                     {topic.parameter: topic.si_unit},
                                     np.array(counts, dtype=np.int64)))
        return batches

    def dropped_unread(self, reason: str, why: str, n: int) -> None:
        """``n`` messages dropped before they could be judged (they count as received)."""
        self.received += n
        self.reject(reason, "*", why, n)

    def reject(self, reason: str, topic: str, why: str, n: int = 1) -> None:
        """Count ``n`` rejected messages of ``topic``; log at a bounded rate."""
        if n <= 0:
            return
        self.rejected[reason] += n
        self.rejections.log(reason, "mqtt topic %s: %d message(s) rejected (%s): %s",
                            quote(topic), n, reason, why)

    def status(self) -> dict[str, Any]:
        """Counters in the shape of ``bridge.ccsds.Decoder.status`` (the twin keeps them)."""
        return {"received": self.received, "accepted": self.accepted,
                "rejected": {k: v for k, v in self.rejected.items() if v},
                "rejected_total": sum(self.rejected.values()),
                "bytes_received": self.bytes_received}


class MqttSource:
    """A paho-mqtt client subscribed to the ``[mqtt]`` table's filters.

    Args:
        address: ``HOST:PORT`` of the broker (``HOST`` alone: port 1883).
        table: The definition's ``[mqtt]`` table.
        reconnect_max_s: Longest wait between reconnection attempts (the delay doubles
            from ``RECONNECT_MIN_S`` up to it).
    """

    def __init__(self, address: str, table: MqttTable,
                 reconnect_max_s: float = DEFAULT_RECONNECT_MAX_S) -> None:
        from bridge.sources import parse_host_port

        if ":" not in address:
            address = f"{address}:{DEFAULT_PORT}"
        self.host, self.port = parse_host_port(address)
        if not RECONNECT_MIN_S <= reconnect_max_s <= 3600.0:
            raise ValueError(f"--mqtt-reconnect-max {reconnect_max_s:g} outside "
                             f"{RECONNECT_MIN_S:g}..3600 s")
        self.table = table
        self.decoder = MqttDecoder(table)
        self.reconnect_max_s = reconnect_max_s
        self.connected = False
        self.subscribed = False
        self.connects = 0
        self.disconnects = 0
        self._lock = threading.Lock()
        self._queue: list[_Message] = []
        self._queued_bytes = 0
        self._queue_full = 0
        self._notices: list[str] = []
        self._wake = threading.Event()
        self._started = time.monotonic()
        self._said_unreached = False
        client_id = f"odc-bridge-{os.getpid()}-{os.urandom(3).hex()}"
        self.client = _paho_client(client_id, table.protocol)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.reconnect_delay_set(min_delay=RECONNECT_MIN_S, max_delay=reconnect_max_s)
        # Asynchronous: a broker that is not up yet is retried like one that went away.
        self.client.connect_async(self.host, self.port, keepalive=KEEPALIVE_S,
                                  **_connect_options(table.protocol))
        self.client.loop_start()

    # -- paho's network thread: queue, count, never parse, never raise ---------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if getattr(reason, "is_failure", False):
            self._notice(f"MQTT broker {self.host}:{self.port} refused the connection: {reason}")
            return
        client.subscribe([(f, self.table.qos) for f in self.table.subscribe])
        with self._lock:
            self.connected = True
            self.connects += 1
            again = self.connects > 1
        self._notice(f"{'re' if again else ''}connected to MQTT broker {self.host}:{self.port}; "
                     f"subscribed to {', '.join(self.table.subscribe)}")

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reasons: Any,
                      properties: Any) -> None:
        refused = [str(r) for r in reasons if getattr(r, "is_failure", False)]
        if refused:
            self._notice(f"MQTT broker {self.host}:{self.port} refused the subscription: "
                         f"{', '.join(refused)}")
        with self._lock:
            self.subscribed = not refused

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        with self._lock:
            was = self.connected
            self.connected = self.subscribed = False
            if was:
                self.disconnects += 1
        if was:
            # paho names an unexpected close "Unspecified error" (128): say nothing then.
            why = f" ({reason})" if getattr(reason, "value", 0) not in (0, 128) else ""
            self._notice(f"lost the MQTT broker {self.host}:{self.port}{why}; reconnecting, "
                         f"waiting {RECONNECT_MIN_S:g} s doubling up to "
                         f"{self.reconnect_max_s:g} s between attempts")

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        try:
            try:
                topic = message.topic
            except UnicodeDecodeError:  # MQTT requires UTF-8; count it, never crash on it
                topic = "(not UTF-8)"
            payload = message.payload
            size = len(payload)
            keep = payload if size <= self.table.max_payload_bytes else None
            held = size if keep is not None else 0  # a payload too large is not kept
            with self._lock:
                if (len(self._queue) >= MAX_QUEUED_MESSAGES
                        or self._queued_bytes + held > MAX_QUEUED_BYTES):
                    self._queue_full += 1
                    return
                self._queue.append(_Message(topic, keep, size, bool(message.retain),
                                            time.time()))
                self._queued_bytes += held
            self._wake.set()
        except Exception:  # paho's thread must live: an exception here would end it
            log.exception("MQTT message handling failed")

    def _notice(self, text: str) -> None:
        with self._lock:
            self._notices.append(text)
            del self._notices[:-32]

    # -- the bridge's thread ---------------------------------------------------------------

    def read(self, timeout_s: float) -> list[MqttBatch]:
        """Samples that arrived, waiting at most ``timeout_s`` for the first message."""
        if not self._queue:
            self._wake.wait(timeout_s)
        with self._lock:
            self._wake.clear()
            messages = self._queue[:MAX_MESSAGES_PER_READ]
            del self._queue[:MAX_MESSAGES_PER_READ]
            self._queued_bytes -= sum(len(m.payload or b"") for m in messages)
            if self._queue:
                self._wake.set()
            full, self._queue_full = self._queue_full, 0
        self.decoder.dropped_unread("queue_full", f"over {MAX_QUEUED_MESSAGES} messages or "
                                    f"{MAX_QUEUED_BYTES >> 20} MiB waiting", full)
        return self.decoder.decode(messages)

    def notices(self) -> list[str]:
        """Connection changes since the last call, for the bridge to print."""
        with self._lock:
            out, self._notices = self._notices, []
            never = self.connects == 0
        # paho retries a first connection silently: say once that it is still trying.
        if (never and not self._said_unreached
                and time.monotonic() - self._started >= UNREACHED_NOTICE_S):
            self._said_unreached = True
            out.append(f"no MQTT broker reached at {self.host}:{self.port} yet; still trying, "
                       f"every {RECONNECT_MIN_S:g} s doubling up to {self.reconnect_max_s:g} s")
        return out

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {"broker": f"{self.host}:{self.port}", "connected": self.connected,
                    "subscribed": self.subscribed,
                    "connects": self.connects, "disconnects": self.disconnects,
                    "queued": len(self._queue)}

    def tick(self) -> None:
        self.decoder.rejections.tick()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        self.decoder.rejections.flush()


def _paho_client(client_id: str, protocol: str) -> Any:
    import paho.mqtt.client as mqtt

    if protocol == "5":
        return mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                           protocol=mqtt.MQTTv5)
    return mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                       protocol=mqtt.MQTTv311, clean_session=True)


def _connect_options(protocol: str) -> dict[str, Any]:
    """MQTT 5: a clean session each time, and the largest packet the broker may send."""
    if protocol != "5":
        return {}
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    properties = Properties(PacketTypes.CONNECT)
    properties.MaximumPacketSize = MAX_PACKET_BYTES
    return {"clean_start": True, "properties": properties}

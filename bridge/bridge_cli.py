"""Push testbed telemetry (CCSDS over UDP/TCP, MQTT, host sensors, a recording) to the twin.

``odc bridge --udp 127.0.0.1:10015`` listens for the packets of ``odc testbed``, validates
and decodes them against a definition file (``--definitions``, default the bundled
flatsat), and pushes the accepted samples to the twin's ingest socket as ``tm`` messages
(docs/protocol.md, "Ingest"). ``--mqtt HOST:PORT`` subscribes to a lab broker's topics
instead, as the definition's ``[mqtt]`` table maps them (docs/bridge.md).
``--host-sensors`` mirrors the machine the bridge runs on.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bridge.ccsds import StreamSplitter
from twin.core.ratelog import RateLimitedLog
from twin.runtime.addresses import address_argument
from twin.security.clients import add_key_arguments

log = logging.getLogger("odc.bridge")


class Bridge:
    """Decode -> validate -> push, with counters; the sources feed it.

    Each stream (a TCP connection, a replay) is framed by its own ``StreamSplitter``, so
    bytes left over by one connection never join the next one's. Rejected packets are
    counted by the decoder and reported in a rate-limited log, never quoted.

    Args:
        decoder: A ``bridge.ccsds.Decoder`` (None for host sensors only).
        pusher: A ``bridge.push.TelemetryPusher``.
        recorder: Optional ``bridge.sources.Recorder`` for every raw packet or chunk.
        source: Optional source whose ``status()`` joins the bridge's counters.
    """

    def __init__(self, decoder: Any, pusher: Any, recorder: Any = None,
                 source: Any = None) -> None:
        self.decoder = decoder
        self.pusher = pusher
        self.recorder = recorder
        self.source = source
        self.splitters: dict[int, StreamSplitter] = {}
        self.samples_pushed = 0
        self.rejections = RateLimitedLog(log)

    def handle_datagrams(self, datagrams: list[bytes], t_rx: float | None = None) -> int:
        """One packet per datagram. Returns the number of samples pushed."""
        t_rx = time.time() if t_rx is None else t_rx
        if self.recorder is not None:
            for d in datagrams:
                self.recorder.write(d, t_rx)
        before = dict(self.decoder.counters.rejected)
        batches = self.decoder.decode_datagrams(datagrams, t_rx)
        self._log_rejections(before, "udp")
        return self.push(batches)

    def handle_stream(self, data: bytes, t_rx: float | None = None,
                      retime: Callable[[np.ndarray], np.ndarray] | None = None,
                      stream: int = 0) -> int:
        """Bytes of a packet stream (a TCP connection, or a replayed recording).

        Args:
            data: The bytes, any amount (they are framed in bounded windows).
            t_rx: Arrival wall time (default: now).
            retime: Maps packet times (replay).
            stream: Which stream they continue; each has its own framing state.
        """
        if not data:
            return 0
        t_rx = time.time() if t_rx is None else t_rx
        if self.recorder is not None:
            self.recorder.write(data, t_rx)
        splitter = self.splitters.get(stream)
        if splitter is None:
            splitter = self.splitters[stream] = StreamSplitter(self.decoder)
        before = dict(self.decoder.counters.rejected)
        batches = splitter.feed(data, t_rx)
        self._log_rejections(before, _stream_name(stream))
        return self.push(batches, retime)

    def end_stream(self, stream: int) -> None:
        """A stream ended: forget its framing state, counting an incomplete packet."""
        splitter = self.splitters.pop(stream, None)
        if splitter is not None:
            before = dict(self.decoder.counters.rejected)
            splitter.close()
            self._log_rejections(before, f"{_stream_name(stream)} at its end")

    def handle_chunks(self, chunks: list[Any], t_rx: float | None = None) -> int:
        """``bridge.sources.StreamChunk``s of a TCP source, each connection its own stream."""
        pushed = 0
        for chunk in chunks:
            pushed += self.handle_stream(chunk.data, t_rx, stream=chunk.conn_id)
            if chunk.closed:
                self.end_stream(chunk.conn_id)
        return pushed

    def _log_rejections(self, before: dict[str, int], where: str) -> None:
        for reason, n in self.decoder.counters.rejected.items():
            if n != before[reason]:
                self.rejections.log(reason, "%s: %d packet(s) rejected (%s)", where,
                                    n - before[reason], reason)

    def tick(self) -> None:
        """Write rate-limited log summaries that are due (call about once a second)."""
        self.rejections.tick()
        getattr(self.source, "tick", lambda: None)()

    def push(self, batches: list[Any], retime: Callable[[np.ndarray], np.ndarray] | None = None
             ) -> int:
        pushed = 0
        for batch in batches:
            t = retime(batch.t_utc) if retime is not None else batch.t_utc
            units = {p.name: p.unit for p in batch.packet.parameters}
            noise = {p.name: p.noise for p in batch.packet.parameters if p.noise is not None}
            if self.pusher.send(batch.packet.name, t, batch.values, units, self.status(),
                                seq_count=batch.count, noise=noise):
                pushed += len(batch)
        self.samples_pushed += pushed
        return pushed

    def handle_samples(self, batches: list[Any]) -> int:
        """Samples already validated by their source (``bridge.mqtt.MqttBatch``)."""
        pushed = 0
        for batch in batches:
            if self.pusher.send(batch.packet, batch.t_utc, batch.values, batch.units,
                                self.status(), seq_count=batch.count):
                pushed += len(batch)
        self.samples_pushed += pushed
        return pushed

    def push_host(self, sample: dict[str, float]) -> None:
        """Push one host-sensor sample (testbed name = the pusher's, packet ``host``)."""
        values = {k: np.array([v]) for k, v in sample.items()}
        if self.pusher.send("host", np.array([time.time()]), values, None, self.status()):
            self.samples_pushed += 1

    def status(self) -> dict[str, Any]:
        """Bridge counters: decoder (received/accepted/rejected by reason, seq), push, and
        the source's where it keeps some (TCP: connections open, accepted, refused, closed
        by reason; MQTT: broker, connected, connects, disconnects)."""
        out: dict[str, Any] = {"push": self.pusher.status()}
        if self.decoder is not None:
            out["decoder"] = self.decoder.status()
        if hasattr(self.source, "status"):
            out["source"] = self.source.status()
        return out


def _stream_name(stream: int) -> str:
    """How logs name a stream: TCP connections count from 1, 0 is the one default stream."""
    return f"tcp connection {stream}" if stream else "stream"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--udp", metavar="HOST:PORT",
                        help="receive one CCSDS packet per datagram here (default "
                        "127.0.0.1:10015, where odc testbed sends)")
    source.add_argument("--tcp", metavar="HOST:PORT", help="connect to a TCP packet stream")
    source.add_argument("--tcp-listen", metavar="HOST:PORT",
                        help="accept TCP packet stream connections here (each framed on "
                        "its own; see --tcp-max-connections, --tcp-idle-timeout)")
    source.add_argument("--mqtt", metavar="HOST[:PORT]",
                        help="subscribe to this MQTT broker (port 1883 by default); topics, "
                        "payloads, units and bounds come from the definition file's [mqtt] "
                        "table")
    source.add_argument("--replay", metavar="FILE.odcrec", help="play back a recording")
    source.add_argument("--host-sensors", action="store_true",
                        help="mirror this machine: psutil, hwmon, RAPL, NVML GPUs")
    parser.add_argument("--tcp-max-connections", type=int, default=None, metavar="N",
                        help="with --tcp-listen, connections served at once; more are "
                        "closed at once and counted (default 16)")
    parser.add_argument("--tcp-idle-timeout", type=float, default=None, metavar="SECONDS",
                        help="close a TCP connection silent this long (default 30)")
    parser.add_argument("--mqtt-reconnect-max", type=float, default=None, metavar="SECONDS",
                        help="with --mqtt, the longest wait between attempts to reach a lost "
                        "broker; waits double from 0.5 s (default 10)")
    parser.add_argument("--definitions", default="flatsat", metavar="NAME_OR_PATH",
                        help="testbed definition TOML: CCSDS packets, [mqtt] topics "
                        "(default: bundled %(default)s)")
    parser.add_argument("--testbed", help="testbed name sent to the twin (default: the "
                        "definition file's, or 'host' with --host-sensors)")
    parser.add_argument("--ingest", type=address_argument, default=None, metavar="ADDRESS",
                        help="the twin's ingest socket (default tcp://127.0.0.1:5557)")
    parser.add_argument("--command", type=address_argument, default=None, metavar="ADDRESS",
                        help="the twin's command socket, to check that the twin takes this "
                        "testbed (default tcp://127.0.0.1:5556 when --ingest is the default)")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="replay speed factor, 0 = as fast as possible (default 1)")
    parser.add_argument("--period", type=float, default=0.5,
                        help="host sensor sampling period, s (default %(default)s)")
    parser.add_argument("--record", metavar="FILE.odcrec",
                        help="also record every raw packet (for replay and odc calibrate)")
    parser.add_argument("--duration", type=float, default=None,
                        help="stop after this many wall seconds")
    parser.add_argument("--quiet", action="store_true", help="no status line")
    add_key_arguments(parser, needs="a key with role testbed:NAME for this testbed")


def run(args: argparse.Namespace) -> int:
    from bridge.ccsds import Decoder
    from bridge.definitions import DefinitionError, load_definitions
    from bridge.mqtt import MqttSource
    from bridge.push import TelemetryPusher
    from bridge.sources import HostSensors, Recorder, ReplaySource, TcpSource, UdpSource
    from twin.protocol.codec import DEFAULT_INGEST_ADDRESS
    from twin.security.clients import keys_from_args

    try:
        keys = keys_from_args(args)
        defs = None if args.host_sensors else load_definitions(args.definitions)
        testbed = args.testbed or ("host" if defs is None else defs.testbed)
        if defs is not None and not defs.packets and not args.mqtt:
            raise ValueError(f"{defs.source} defines no [[packet]], only MQTT topics: add "
                             "--mqtt HOST:PORT")
        if args.mqtt:
            source: Any = _mqtt_source(args, defs)
        elif args.replay:
            source = ReplaySource(args.replay, args.speed)
        elif args.tcp or args.tcp_listen:
            source = TcpSource(args.tcp or args.tcp_listen, listen=bool(args.tcp_listen),
                               **_tcp_limits(args))
        elif args.host_sensors:
            source = HostSensors()
        else:
            source = UdpSource(args.udp or "127.0.0.1:10015")
    except (DefinitionError, ValueError, OSError) as exc:
        print(f"odc bridge: {exc}", file=sys.stderr)
        return 2
    pusher = TelemetryPusher(args.ingest or DEFAULT_INGEST_ADDRESS, testbed, keys=keys)
    twin_check = _twin_check(args, testbed, keys)
    recorder = Recorder(args.record) if args.record else None
    if isinstance(source, MqttSource):
        decoder: Any = source.decoder
    else:
        decoder = Decoder(defs) if defs is not None else None
    bridge = Bridge(decoder, pusher, recorder, source)
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    where = f" listening on {source.host}:{source.port}" if getattr(source, "listen", False) \
        else ""
    if isinstance(source, MqttSource):
        where = f" of broker {source.host}:{source.port}"
    print(f"odc bridge: testbed {testbed!r} -> {pusher.address} "
          f"({type(source).__name__}{where})", file=sys.stderr, flush=True)
    started = time.monotonic()
    next_status = next_tick = started + 1.0
    refused = ""
    try:
        while not stop["now"]:
            if args.duration is not None and time.monotonic() - started >= args.duration:
                break
            _pump(source, bridge, args)
            for notice in getattr(source, "notices", list)():  # the broker lost or back
                print(f"odc bridge: {notice}", file=sys.stderr, flush=True)
            if isinstance(source, ReplaySource) and source.finished:
                break
            if not args.quiet and time.monotonic() >= next_status:
                next_status += 1.0
                _status_line(bridge, testbed)
            if time.monotonic() >= next_tick:
                next_tick += 1.0
                bridge.tick()
                # Said once each time it changes: a refused key otherwise looks like a twin
                # that is just not there (the samples queue, then drop).
                if pusher.refused != refused:
                    refused = pusher.refused
                    print(f"odc bridge: {refused or 'the twin accepted the key'}",
                          file=sys.stderr, flush=True)
                news = twin_check.poll() if twin_check is not None else ""
                if news:
                    print(f"odc bridge: {news}", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        for notice in getattr(source, "notices", list)():
            print(f"odc bridge: {notice}", file=sys.stderr, flush=True)
        _status_line(bridge, testbed, final=True,
                     twin_words=twin_check.summary() if twin_check is not None else "")
        if twin_check is not None:
            twin_check.close()
        bridge.rejections.flush()
        getattr(source, "close", lambda: None)()
        if recorder is not None:
            recorder.close()
        pusher.close()
    return 0


def _mqtt_source(args: argparse.Namespace, defs: Any) -> Any:
    """The MQTT source the flags and the definition's ``[mqtt]`` table ask for."""
    from bridge.mqtt import DEFAULT_RECONNECT_MAX_S, MqttSource

    if defs.mqtt is None:
        raise ValueError(f"{defs.source} has no [mqtt] table: nothing to subscribe to "
                         "(docs/bridge.md)")
    if args.record:
        raise ValueError("--record keeps CCSDS packets; it cannot record --mqtt")
    reconnect = args.mqtt_reconnect_max
    return MqttSource(args.mqtt, defs.mqtt,
                      DEFAULT_RECONNECT_MAX_S if reconnect is None else reconnect)


def _twin_check(args: argparse.Namespace, testbed: str, keys: Any) -> Any:
    """A ``bridge.twin_check.TwinCheck`` on the twin's command socket, or None where it is
    not known (an ``--ingest`` given without ``--command``)."""
    from bridge.twin_check import TwinCheck
    from twin.protocol.codec import DEFAULT_COMMAND_ADDRESS

    address = args.command or (DEFAULT_COMMAND_ADDRESS if args.ingest is None else None)
    return None if address is None else TwinCheck(address, testbed, keys=keys)


def _tcp_limits(args: argparse.Namespace) -> dict[str, Any]:
    """The TCP limits given on the command line (absent ones keep TcpSource's defaults)."""
    limits: dict[str, Any] = {}
    if getattr(args, "tcp_max_connections", None) is not None:
        limits["max_connections"] = args.tcp_max_connections
    if getattr(args, "tcp_idle_timeout", None) is not None:
        limits["idle_timeout_s"] = args.tcp_idle_timeout
    return limits


def _pump(source: Any, bridge: Bridge, args: argparse.Namespace) -> None:
    from bridge.mqtt import MqttSource
    from bridge.sources import HostSensors, ReplaySource, TcpSource, UdpSource

    if isinstance(source, MqttSource):
        bridge.handle_samples(source.read(0.2))
    elif isinstance(source, UdpSource):
        bridge.handle_datagrams(source.read(0.2))
    elif isinstance(source, TcpSource):
        bridge.handle_chunks(source.read_chunks(0.2))
    elif isinstance(source, ReplaySource):
        records = source.read(0.2)
        if records:
            # Packet times move onto the present, so the twin treats them as live.
            data = b"".join(r[1] for r in records)
            bridge.handle_stream(data, records[-1][0], retime=source.retime)
    elif isinstance(source, HostSensors):
        bridge.push_host(source.sample())
        time.sleep(args.period)


def _status_line(bridge: Bridge, testbed: str, final: bool = False, twin_words: str = ""
                 ) -> None:
    status = bridge.status()
    dec = status.get("decoder", {})
    push = status["push"]
    rejected = dec.get("rejected", {})
    line = (f"odc bridge {testbed}: received {dec.get('received', 0)}, accepted "
            f"{dec.get('accepted', 0)}, rejected {sum(rejected.values())}"
            f"{' ' + str(rejected) if rejected else ''}, "
            f"pushed {push['sent_samples']} samples in {push['sent_messages']} messages, "
            f"dropped {push['dropped_samples']}{twin_words}")
    tcp = status.get("source", {})
    if "open" in tcp:
        closed = {k: v for k, v in tcp["closed"].items() if v}
        line += (f", tcp {tcp['open']} open, {tcp['accepted']} accepted, "
                 f"{tcp['refused_full']} refused (full), closed {closed or 0}")
    mqtt = status.get("source", {})
    if "broker" in mqtt:
        state = ("connected" if mqtt["connected"] else "connecting" if not mqtt["connects"]
                 else "LOST")
        line += (f", mqtt {mqtt['broker']} {state} "
                 f"({mqtt['connects']} connects, {mqtt['disconnects']} lost)")
    print(line if final else line + "   ", file=sys.stderr, flush=True)

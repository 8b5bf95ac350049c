"""The bridge under hostile input: TCP connections that idle, flood or break off, and fuzz.

Issue #12: no input from any client may crash, corrupt or starve the bridge. Real sockets
on random loopback ports; every wait is bounded. The pusher is a stand-in that records
what would go to the twin, so each test sees exactly the samples that got through.
"""

from __future__ import annotations

import argparse
import socket
import threading
import time
import tracemalloc
from typing import Any

import numpy as np
import pytest

from bridge.bridge_cli import Bridge, _pump
from bridge.ccsds import Decoder, encode_packets
from bridge.definitions import load_definitions
from bridge.sources import TcpSource

DEFS = load_definitions("flatsat")
HK = DEFS.by_name("hk")
ARGS = argparse.Namespace(period=0.5)
T0 = 1.8e9
one_mebibyte = 1 << 20


class RecordingPusher:
    """Stands in for ``TelemetryPusher``: keeps what would be sent to the twin."""

    def __init__(self) -> None:
        self.samples = 0
        self.messages = 0
        self.last_bridge: dict[str, Any] | None = None

    def send(self, packet: str, t_utc: np.ndarray, values: dict[str, np.ndarray],
             units: dict[str, str] | None = None, bridge: dict[str, Any] | None = None,
             seq_count: np.ndarray | None = None) -> bool:
        self.samples += len(t_utc)
        self.messages += 1
        self.last_bridge = bridge
        return True

    def status(self) -> dict[str, int]:
        return {"sent_messages": self.messages, "sent_samples": self.samples,
                "dropped_messages": 0, "dropped_samples": 0}


def hk_packets(n: int, seq0: int = 0) -> bytes:
    """``n`` valid flatsat ``hk`` packets, back to back."""
    rows = encode_packets(HK, {"util_frac": np.full(n, 0.5), "compute_power_w": np.full(n, 170.0),
                               "cold_plate_temp_c": np.full(n, 20.0),
                               "radiator_temp_c": np.full(n, -5.0)},
                          np.arange(seq0, seq0 + n), T0 + np.arange(n) * 0.1)
    return rows.tobytes()


def make_bridge() -> tuple[Bridge, RecordingPusher]:
    pusher = RecordingPusher()
    return Bridge(Decoder(DEFS), pusher), pusher


def pump_until(source: TcpSource, bridge: Bridge, done, timeout_s: float) -> None:
    """Run the bridge's own read loop until ``done()`` or ``timeout_s`` has passed."""
    deadline = time.monotonic() + timeout_s
    while not done() and time.monotonic() < deadline:
        _pump(source, bridge, ARGS)


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5.0)


# -- regressions: each failed before the fix -------------------------------------------------


@pytest.mark.timeout(30)
def test_an_idle_connection_does_not_block_the_others() -> None:
    """Defect 1 (slowloris): the first connection says nothing; the second must get through."""
    source = TcpSource("127.0.0.1:0", listen=True)
    bridge, pusher = make_bridge()
    idle = connect(source.port)
    try:
        pump_until(source, bridge, lambda: False, 0.3)  # the idle one is accepted first
        with connect(source.port) as sender:
            sender.sendall(hk_packets(10))
            pump_until(source, bridge, lambda: pusher.samples >= 10, 3.0)
        assert pusher.samples == 10
    finally:
        idle.close()
        source.close()


@pytest.mark.timeout(30)
def test_partial_bytes_do_not_carry_into_the_next_connection() -> None:
    """Defect 2: half a packet, then the peer leaves; the next connection starts clean."""
    source = TcpSource("127.0.0.1:0", listen=True)
    bridge, pusher = make_bridge()
    try:
        with connect(source.port) as first:
            first.sendall(hk_packets(1)[:HK.length // 2])
        pump_until(source, bridge, lambda: bridge.decoder.counters.rejected["truncated"] > 0, 1.0)
        with connect(source.port) as second:
            second.sendall(hk_packets(10, seq0=1))
            pump_until(source, bridge, lambda: pusher.samples >= 10, 3.0)
        assert pusher.samples == 10
        rejected = {k: v for k, v in bridge.decoder.counters.rejected.items() if v}
        assert rejected == {"truncated": 1}  # the half packet, counted when its stream ended
    finally:
        source.close()


@pytest.mark.timeout(120)
def test_a_flood_of_garbage_keeps_memory_bounded() -> None:
    """Defect 3: 32 MiB of random bytes; what the bridge allocates at once stays small."""
    n_bytes = 32 * one_mebibyte
    garbage = np.random.default_rng(0).bytes(n_bytes)
    source = TcpSource("127.0.0.1:0", listen=True)
    bridge, pusher = make_bridge()
    sender = connect(source.port)

    def send() -> None:
        sender.sendall(garbage)

    c = bridge.decoder.counters
    tracemalloc.start()
    try:
        thread = threading.Thread(target=send, daemon=True)
        thread.start()
        tracemalloc.reset_peak()
        pump_until(source, bridge, lambda: c.bytes_skipped + c.bytes_received >= n_bytes - 6,
                   60.0)
        peak_bytes = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        sender.close()
        source.close()
    thread.join(5.0)
    assert c.bytes_skipped + c.bytes_received >= n_bytes - 6  # all of it was looked at
    assert c.rejected["framing"] >= 1 and pusher.samples == 0
    assert peak_bytes < 24 * one_mebibyte, f"peak {peak_bytes / one_mebibyte:.0f} MiB"


@pytest.mark.timeout(30)
def test_one_udp_read_holds_a_bounded_number_of_bytes() -> None:
    """Large datagrams arriving faster than they are decoded: one read stops at its cap."""
    from bridge.sources import UDP_READ_BYTES, UdpSource

    source = UdpSource("127.0.0.1:0")
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    big = bytes(60_000)
    try:
        for _ in range(100):  # 6 MB, within the 8 MiB receive buffer asked for
            sender.sendto(big, source.address)
        first = source.read(1.0)
        assert sum(map(len, first)) <= UDP_READ_BYTES
        rest: list[bytes] = []
        deadline = time.monotonic() + 5.0
        while len(first) + len(rest) < 100 and time.monotonic() < deadline:
            rest += source.read(0.1)
        assert rest  # the rest waited in the kernel for the next read
    finally:
        sender.close()
        source.close()


# -- the limits: connections, idleness, fairness, counters, logs -----------------------------


def eof_within(sock: socket.socket, timeout_s: float) -> bool:
    """Whether the peer closed ``sock`` (EOF or reset) within ``timeout_s``."""
    sock.settimeout(timeout_s)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@pytest.mark.timeout(30)
def test_a_silent_connection_is_closed_and_counted() -> None:
    source = TcpSource("127.0.0.1:0", listen=True, idle_timeout_s=0.5)
    bridge, pusher = make_bridge()
    bridge.source = source
    silent = connect(source.port)
    talker = connect(source.port)
    try:
        deadline = time.monotonic() + 5.0
        while source.closed["idle"] == 0 and time.monotonic() < deadline:
            talker.sendall(hk_packets(1, seq0=pusher.samples))  # keeps itself alive
            _pump(source, bridge, ARGS)
        assert eof_within(silent, 2.0)
        status = bridge.status()["source"]
        assert status["closed"]["idle"] == 1 and status["open"] == 1  # the talker stays
        assert pusher.samples > 0 and pusher.last_bridge is not None
        assert pusher.last_bridge["source"]["accepted"] == 2  # counters travel to the twin
    finally:
        silent.close()
        talker.close()
        source.close()


@pytest.mark.timeout(30)
def test_connections_beyond_the_limit_are_refused_and_counted() -> None:
    source = TcpSource("127.0.0.1:0", listen=True, max_connections=2)
    bridge, pusher = make_bridge()
    bridge.source = source
    clients = []
    try:
        for _ in range(2):
            clients.append(connect(source.port))
            pump_until(source, bridge, lambda: False, 0.2)
        extra = [connect(source.port) for _ in range(3)]
        pump_until(source, bridge, lambda: source.refused_full >= 3, 3.0)
        assert all(eof_within(s, 2.0) for s in extra)
        for s in extra:
            s.close()
        for i, client in enumerate(clients):  # those served still get through
            client.sendall(hk_packets(5, seq0=5 * i))
        pump_until(source, bridge, lambda: pusher.samples >= 10, 3.0)
        assert pusher.samples == 10
        assert bridge.status()["source"] | {"closed": None} == {
            "open": 2, "accepted": 2, "refused_full": 3, "accept_errors": 0, "closed": None,
            "bytes_received": 10 * HK.length}
    finally:
        for client in clients:
            client.close()
        source.close()


@pytest.mark.timeout(60)
def test_a_flooding_connection_does_not_starve_a_quiet_one() -> None:
    """While one peer pours garbage in, a second one's packets still go through promptly."""
    source = TcpSource("127.0.0.1:0", listen=True)
    bridge, pusher = make_bridge()
    flooder = connect(source.port)
    quiet = connect(source.port)
    stop = threading.Event()
    garbage = b"\xff" * one_mebibyte  # 0xFF: never a packet header

    def flood() -> None:
        try:
            while not stop.is_set():
                flooder.sendall(garbage)
        except OSError:
            pass

    thread = threading.Thread(target=flood, daemon=True)
    thread.start()
    try:
        pump_until(source, bridge, lambda: bridge.decoder.counters.bytes_skipped > 0, 3.0)
        quiet.sendall(hk_packets(10))
        started = time.monotonic()
        pump_until(source, bridge, lambda: pusher.samples >= 10, 10.0)
        assert pusher.samples == 10 and time.monotonic() - started < 5.0
    finally:
        stop.set()
        flooder.close()
        quiet.close()
        source.close()
        thread.join(5.0)


@pytest.mark.timeout(30)
def test_client_mode_reconnects_with_fresh_framing() -> None:
    """Connecting to a testbed that drops mid-packet: the next session decodes cleanly."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(10.0)

    def serve() -> None:
        conn, _ = server.accept()
        conn.sendall(hk_packets(3)[:2 * HK.length + 7])  # two packets and a piece
        conn.close()
        conn, _ = server.accept()
        conn.sendall(hk_packets(10, seq0=3))
        time.sleep(0.5)
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    source = TcpSource(f"127.0.0.1:{server.getsockname()[1]}")
    bridge, pusher = make_bridge()
    try:
        pump_until(source, bridge, lambda: pusher.samples >= 12, 5.0)
        assert pusher.samples == 12 and source.connects == 2
        rejected = {k: v for k, v in bridge.decoder.counters.rejected.items() if v}
        assert rejected == {"truncated": 1}
    finally:
        source.close()
        server.close()
        thread.join(5.0)


@pytest.mark.timeout(30)
def test_rejections_are_logged_at_a_bounded_rate_and_never_quoted(caplog) -> None:
    source = TcpSource("127.0.0.1:0", listen=True)
    bridge, pusher = make_bridge()
    marker = b"QUOTE-ME!"  # inside the packet, before its CRC
    packets = bytearray(hk_packets(200))
    for i in range(0, len(packets), HK.length):
        packets[i + 16:i + 16 + len(marker)] = marker  # every packet's CRC now fails
    caplog.set_level("INFO", logger="odc.bridge")
    try:
        for _ in range(20):  # twenty connections, each a burst of bad packets
            with connect(source.port) as client:
                client.sendall(bytes(packets))
            before = source.closed["peer"]
            pump_until(source, bridge, lambda b=before: source.closed["peer"] > b, 3.0)
    finally:
        source.close()
    assert bridge.decoder.counters.rejected["crc"] == 20 * 200 and pusher.samples == 0
    text = caplog.text
    assert "QUOTE-ME" not in text and "crc" in text
    crc_lines = [r for r in caplog.records if "rejected (crc)" in r.getMessage()]
    assert len(crc_lines) <= bridge.rejections.burst

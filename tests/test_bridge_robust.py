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

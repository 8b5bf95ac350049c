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
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
             seq_count: np.ndarray | None = None,
             noise: dict[str, float] | None = None) -> bool:
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


@pytest.mark.parametrize("limits", [{"max_connections": 0}, {"max_connections": 100_000},
                                    {"idle_timeout_s": 0.0}, {"idle_timeout_s": float("nan")}])
def test_tcp_limits_are_checked(limits: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(limits))):
        TcpSource("127.0.0.1:0", listen=True, **limits)


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


# -- fuzz: packets over real sockets into the bridge -----------------------------------------

STATUS = DEFS.by_name("status")
SEQ0 = 8000  # valid packets count up from here
# Packets that are mutated count 0..100: should a mangled frame ever pass its CRC by chance,
# it is still behind the valid sequence and dropped as out of order, so "every accepted
# sample was sent valid" holds exactly.
MUTANT_SEQS = st.integers(0, 100)


def hk_one(seq: int, util: float | None = None) -> bytes:
    """One ``hk`` packet whose values follow from its count (so a sample names its packet)."""
    util = (seq % 100) / 100 if util is None else util
    return encode_packets(HK, {"util_frac": [util], "compute_power_w": [seq % 600],
                               "cold_plate_temp_c": [20.0], "radiator_temp_c": [-5.0]},
                          np.array([seq]), T0 + seq * 0.1)[0].tobytes()


def status_packets(n: int) -> bytes:
    return encode_packets(STATUS, {"uptime_s": np.arange(n), "cpu_freq_hz": np.full(n, 2e9),
                                   "load_1m": np.full(n, 1.0), "mem_used_frac": np.full(n, 0.5)},
                          np.arange(n), T0 + np.arange(n)).tobytes()


@st.composite
def mutant(draw, kind: str) -> bytes:
    base = hk_one(draw(MUTANT_SEQS))
    if kind == "truncate":
        return base[:draw(st.integers(0, len(base) - 1))]
    if kind == "flip":
        i = draw(st.integers(0, len(base) - 1))
        return base[:i] + bytes([base[i] ^ draw(st.integers(1, 255))]) + base[i + 1:]
    if kind == "noise":
        return draw(st.binary(max_size=64))
    if kind == "garbage_hi":  # top bit set: version != 0, so no header can start inside
        return bytes(draw(st.lists(st.integers(0x80, 0xFF), min_size=1, max_size=64)))
    raise AssertionError(kind)


@st.composite
def sessions(draw, kinds: tuple[str, ...]) -> list[tuple[str, bytes, int | None]]:
    """(kind, bytes, seq of the valid packet inside or None), valid counts from ``SEQ0``."""
    out: list[tuple[str, bytes, int | None]] = [("valid", hk_one(SEQ0), SEQ0)]
    seq = SEQ0 + 1
    for kind in draw(st.lists(st.sampled_from(kinds), max_size=40)):
        if kind == "valid":
            out.append((kind, hk_one(seq), seq))
        elif kind == "bad_value":  # framed right, value out of bounds: advances the count
            out.append((kind, hk_one(seq, util=2.0), None))
        elif kind == "extend":  # UDP: one datagram too long; TCP: a packet, then junk
            tail = draw(st.binary(min_size=1, max_size=16))
            out.append((kind, hk_one(seq) + tail, seq))
        elif kind == "concat":  # UDP: two packets in one datagram
            out.append((kind, hk_one(seq) + hk_one(seq + 1), None))
            seq += 1
        else:
            out.append((kind, draw(mutant(kind)), None))
            continue
        seq += 1
    return out


def accepted_hk(pusher: RecordingPusher) -> list[tuple[int, float]]:
    return [(int(s), float(p)) for s, p in zip(pusher.hk_seq, pusher.hk_power, strict=True)]


class SamplePusher(RecordingPusher):
    """Also keeps each ``hk`` sample's count and power, to check them against what was sent."""

    def __init__(self) -> None:
        super().__init__()
        self.hk_seq: list[int] = []
        self.hk_power: list[float] = []
        self.status_n = 0

    def send(self, packet: str, t_utc: np.ndarray, values: dict[str, np.ndarray],
             units: dict[str, str] | None = None, bridge: dict[str, Any] | None = None,
             seq_count: np.ndarray | None = None,
             noise: dict[str, float] | None = None) -> bool:
        if packet == "hk":
            assert seq_count is not None
            self.hk_seq += (seq_count % 16384).tolist()
            self.hk_power += values["compute_power_w"].tolist()
        else:
            self.status_n += len(t_utc)
        return super().send(packet, t_utc, values, units, bridge, seq_count)


@pytest.fixture(scope="module")
def udp_pair():
    from bridge.sources import UdpSource

    source = UdpSource("127.0.0.1:0")
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    yield source, sender
    sender.close()
    source.close()


@pytest.fixture(scope="module")
def tcp_listener():
    source = TcpSource("127.0.0.1:0", listen=True)
    yield source
    source.close()


UDP_KINDS = ("valid", "bad_value", "extend", "concat", "truncate", "flip", "noise")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=sessions(UDP_KINDS))
def test_fuzz_udp(udp_pair, items) -> None:
    """One datagram per item: each is accepted if valid, else rejected and counted once."""
    source, sender = udp_pair
    pusher = SamplePusher()
    bridge = Bridge(Decoder(DEFS), pusher)
    for _, datagram, _ in items:
        sender.sendto(datagram, source.address)
    c = bridge.decoder.counters
    deadline = time.monotonic() + 5.0
    while c.received < len(items) and time.monotonic() < deadline:
        _pump(source, bridge, ARGS)
    valid = [(seq, float(seq % 600)) for kind, _, seq in items if kind == "valid"]
    assert c.received == len(items)
    assert accepted_hk(pusher) == valid  # every valid one, in order, with its values
    assert c.accepted == len(valid)
    assert sum(c.rejected.values()) == len(items) - len(valid)
    assert c.rejected["out_of_range"] == sum(kind == "bad_value" for kind, _, _ in items)


TCP_KINDS = ("valid", "bad_value", "extend", "truncate", "flip", "noise", "garbage_hi")
# These end on a packet boundary or hold no byte that can begin a header. After any other
# piece, a frame may begin inside it (a truncated packet's header, surely) and reach up to
# one longest packet past its end, taking the start of what follows (that frame fails its
# CRC); a valid packet that begins beyond that reach is framed for certain.
HARMLESS = {"valid", "bad_value", "garbage_hi"}
LONGEST_PACKET_BYTES = max(p.length for p in DEFS.packets.values())


def certainly_framed(items: list[tuple[str, bytes, int | None]]) -> set[int]:
    """Counts of the valid packets in a stream that no damaged piece can reach."""
    out: set[int] = set()
    offset = 0
    reach = 0  # the furthest byte a frame begun in a damaged piece can extend to
    for kind, data, seq in items:
        if kind == "valid" and offset >= reach:
            assert seq is not None
            out.add(seq)
        offset += len(data)
        if kind not in HARMLESS and data:
            reach = offset + LONGEST_PACKET_BYTES
    return out


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=sessions(TCP_KINDS), n_pieces=st.integers(1, 4), n_status=st.integers(0, 10))
def test_fuzz_tcp(tcp_listener, items, n_pieces, n_status) -> None:
    """A mangled stream on one connection, valid packets on another, both at once."""
    source = tcp_listener
    pusher = SamplePusher()
    bridge = Bridge(Decoder(DEFS), pusher)
    stream = b"".join(data for _, data, _ in items)
    clean = status_packets(n_status)
    closed_before = source.closed["peer"]
    with connect(source.port) as fuzz, connect(source.port) as good:
        cut = len(stream) // n_pieces + 1
        cut_good = len(clean) // n_pieces + 1
        for i in range(n_pieces):  # interleaved: the two streams' bytes must not mix
            fuzz.sendall(stream[i * cut:(i + 1) * cut])
            good.sendall(clean[i * cut_good:(i + 1) * cut_good])
    deadline = time.monotonic() + 5.0
    while source.closed["peer"] < closed_before + 2 and time.monotonic() < deadline:
        _pump(source, bridge, ARGS)
    assert source.closed["peer"] == closed_before + 2 and not bridge.splitters
    c = bridge.decoder.counters
    assert c.received == c.accepted + sum(c.rejected.values())
    assert c.bytes_received + c.bytes_skipped == len(stream) + len(clean)  # every byte
    assert pusher.status_n == n_status  # the clean connection lost nothing
    got = accepted_hk(pusher)
    sent = {seq: float(seq % 600) for _, _, seq in items if seq is not None}
    assert all(sent.get(seq) == power for seq, power in got)  # nothing made up
    assert [s for s, _ in got] == sorted({s for s, _ in got})  # in order, once each
    assert certainly_framed(items) <= {s for s, _ in got}  # the valid ones still decode
    # Junk after an extended packet counts too; an empty piece is no input at all.
    damaged = sum(kind != "valid" and len(data) > 0 for kind, data, _ in items)
    assert (sum(c.rejected.values()) > 0) == (damaged > 0)  # nothing bad goes uncounted

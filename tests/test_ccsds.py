"""CCSDS decoding and validation against packets built independently with `spacepackets`.

Real UDP and TCP sockets on loopback; hypothesis interleaves corrupt packets of every kind
with valid ones and checks that nothing escapes, that the reject counters add up to what
was injected, and that every valid packet comes out, in order, with its values.
"""

from __future__ import annotations

import math
import re
import socket
import struct
import threading
import time
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spacepackets.ccsds.spacepacket import SequenceFlags, SpacePacket, SpacePacketHeader
from spacepackets.ccsds.time import CdsShortTimestamp
from spacepackets.ecss.tm import PusTm

from bridge.ccsds import Decoder, StreamSplitter, encode_packets
from bridge.definitions import DefinitionError, load_definitions, parse_definitions
from bridge.sources import TcpSource, UdpSource

DEFS_TOML = """
[testbed]
name = "fuzz"

[[packet]]
name = "a"
apid = 0x10
service = 3
subtype = 25

[[packet.parameter]]
name = "temp_k"
type = "f4"
offset = 0
min = 0.0
max = 1000.0

[[packet.parameter]]
name = "power_w"
type = "u2"
offset = 4
scale = 0.1
max = 1000.0

[[packet]]
name = "b"
apid = 0x20
secondary_header = "none"
crc = false

[[packet.parameter]]
name = "x_frac"
type = "i2"
offset = 0
scale = 1.0e-4
min = -1.0
max = 1.0
"""
DEFS = parse_definitions(DEFS_TOML, "test")
A_LENGTH_FIELD = DEFS.by_name("a").length_field
one_millisecond = 1e-3  # CDS short resolution
T0 = 1.8e9


def pkt_a(seq: int, temp_k: float, power_w: float, t_utc: float) -> bytes:
    """Packet "a" built with spacepackets (PUS-C TM, CDS short time, CRC)."""
    stamp = CdsShortTimestamp.from_datetime(datetime.fromtimestamp(t_utc, UTC)).pack()
    data = struct.pack(">fH", temp_k, round(power_w * 10))
    return bytes(PusTm(service=3, message_subtype=25, apid=0x10, seq_count=seq, timestamp=stamp,
                       source_data=data, message_counter=seq % 65536).pack())


def pkt_b(seq: int, x_frac: float, seq_flags: SequenceFlags = SequenceFlags.UNSEGMENTED
          ) -> bytes:
    """Packet "b" built with spacepackets (no secondary header, no CRC)."""
    data = struct.pack(">h", round(x_frac * 1e4))
    header = SpacePacketHeader.tm(apid=0x20, seq_count=seq, data_len=len(data) - 1,
                                  seq_flags=seq_flags)
    return bytes(SpacePacket(header, None, data).pack())


def with_header(packet: bytes, *, word0: int | None = None, length: int | None = None) -> bytes:
    b = bytearray(packet)
    if word0 is not None:
        b[0:2] = struct.pack(">H", word0)
    if length is not None:
        b[4:6] = struct.pack(">H", length)
    return bytes(b)


def word0(packet: bytes) -> int:
    return struct.unpack(">H", packet[:2])[0]


# -- basic decoding ------------------------------------------------------------------------


def test_spacepackets_packets_decode_to_their_values() -> None:
    dec = Decoder(DEFS)
    batches = dec.decode_datagrams([pkt_a(16383, 301.25, 123.4, T0 + 0.5), pkt_b(7, -0.25)])
    a, b = sorted(batches, key=lambda x: x.packet.apid)
    assert a.values["temp_k"][0] == pytest.approx(301.25)
    assert a.values["power_w"][0] == pytest.approx(123.4)
    assert a.t_utc[0] == pytest.approx(T0 + 0.5, abs=one_millisecond)
    assert a.seq[0] == 16383
    assert b.values["x_frac"][0] == pytest.approx(-0.25)
    assert dec.counters.accepted == 2 and sum(dec.counters.rejected.values()) == 0


def test_encoder_is_byte_exact_with_spacepackets() -> None:
    t = T0 + 12.345
    rows = encode_packets(DEFS.by_name("a"), {"temp_k": [301.25], "power_w": [123.4]},
                          np.array([42]), np.array([t]))
    assert rows[0].tobytes() == pkt_a(42, 301.25, 123.4, t)
    rows = encode_packets(DEFS.by_name("b"), {"x_frac": [-0.25]}, np.array([9]))
    assert rows[0].tobytes() == pkt_b(9, -0.25)


def test_bundled_flatsat_definitions_load() -> None:
    defs = load_definitions("flatsat")
    assert {p.name for p in defs.packets.values()} == {"hk", "status", "thermal_control"}
    assert defs.by_name("hk").length == 30


@pytest.mark.parametrize(("text", "key"), [
    ("[testbed]\nname='x'\n[[packet]]\nname='a'\napid=1\nbogus=1", "packet[0].bogus"),
    ("[testbed]\nname='x'\n[[packet]]\nname='a'\napid=2047\n[[packet.parameter]]\n"
     "name='v'\ntype='u1'\noffset=0", "packet[0].apid"),
    ("[testbed]\nname='x'\n[[packet]]\nname='a'\napid=1\n[[packet.parameter]]\n"
     "name='v'\ntype='u3'\noffset=0", "packet[0].parameter[0].type"),
])
def test_definition_errors_name_file_and_key(text: str, key: str) -> None:
    with pytest.raises(DefinitionError, match=rf"defs\.toml: {re.escape(key)}"):
        parse_definitions(text, "defs.toml")


# -- each rejection reason -----------------------------------------------------------------


def test_each_reason_is_counted_and_nothing_else_is_affected() -> None:
    good = pkt_a(0, 300.0, 100.0, T0)
    a1 = pkt_a(1, 300.0, 100.0, T0)
    corrupt = {
        "truncated": [good[:3], good[:-1]],
        "version": [with_header(good, word0=word0(good) | (1 << 13))],
        "not_telemetry": [with_header(good, word0=word0(good) | (1 << 12))],
        "unknown_apid": [with_header(good, word0=(word0(good) & ~0x7FF) | 0x30)],
        "idle": [with_header(good, word0=(word0(good) & ~0x7FF) | 0x7FF)],
        "length": [good + b"\x00", with_header(good, length=len(good) - 8)],
        "sec_header": [with_header(pkt_b(0, 0.1), word0=word0(pkt_b(0, 0.1)) | (1 << 11))],
        "segmented": [pkt_b(0, 0.1, SequenceFlags.FIRST_SEGMENT)],
        "crc": [good[:20] + bytes([good[20] ^ 0xFF]) + good[21:]],
    }
    dec = Decoder(DEFS)
    everything = [p for ps in corrupt.values() for p in ps]
    batches = dec.decode_datagrams([*everything, good, a1, a1, pkt_a(2, math.nan, 1.0, T0),
                                    pkt_a(3, 2000.0, 1.0, T0), pkt_a(4, 300.0, 1.0, T0)])
    rejected = dec.counters.rejected
    for reason, packets in corrupt.items():
        assert rejected[reason] == len(packets), reason
    assert rejected["duplicate"] == 1
    assert rejected["not_finite"] == 1 and rejected["out_of_range"] == 1
    assert [list(b.seq) for b in batches] == [[0, 1, 4]]
    assert dec.seq[0x10].gaps == 0  # NaN and out-of-range packets still advanced the count
    c = dec.counters
    assert c.received == c.accepted + sum(c.rejected.values())


# -- sequence accounting -------------------------------------------------------------------


def _seqs(dec: Decoder, counts: list[int], batch: int = 1000) -> list[int]:
    out: list[int] = []
    for i in range(0, len(counts), batch):
        for b in dec.decode_datagrams([pkt_b(s % 16384, 0.0) for s in counts[i:i + batch]]):
            out += [int(s) for s in b.seq]
    return out


@pytest.mark.parametrize("batch", [1, 7, 1000])
def test_sequence_drops_duplicates_reordering_and_wrap(batch: int) -> None:
    counts = list(range(16370, 16384)) + list(range(0, 20))  # wraps 16383 -> 0
    sent = list(counts)
    dropped = {16375, 2, 3, 4}  # 4 lost: 2 gaps (1 and 3 counts)
    sent = [s for s in sent if s not in dropped]
    sent.insert(sent.index(16380) + 1, 16380)  # a duplicate
    i = sent.index(10)
    sent[i], sent[i + 1] = sent[i + 1], sent[i]  # 11 arrives before 10: 10 is late
    dec = Decoder(DEFS)
    accepted = _seqs(dec, sent, batch)
    assert accepted == [s for s in counts if s not in dropped and s != 10]
    state = dec.seq[0x20]
    assert dec.counters.rejected["duplicate"] == 1
    assert dec.counters.rejected["out_of_order"] == 1
    assert state.gaps == 3  # 16375, 2..4, and 10 (jumped over when 11 came first)
    assert state.skipped == 1 + 3 + 1


def test_sequence_restarts_after_silence() -> None:
    now = {"t": 1000.0}
    dec = Decoder(DEFS, wall_clock=lambda: now["t"], seq_restart_s=5.0)
    assert _seqs(dec, [100, 101, 102]) == [100, 101, 102]
    now["t"] += 10.0  # the testbed restarted and counts from 0 again
    assert _seqs(dec, [0, 1]) == [0, 1]
    assert dec.seq[0x20].restarts == 1 and dec.counters.rejected["out_of_order"] == 0


# -- fuzzing: datagrams --------------------------------------------------------------------

KINDS = ("valid", "valid_b", "random", "truncate", "lying_length", "extra", "version", "tc",
         "unknown_apid", "bad_crc", "nan", "out_of_range")


@st.composite
def datagram_session(draw):
    """A list of (kind, datagram) and the structurally valid packets' expected values."""
    items = draw(st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 2**32 - 1)),
                          min_size=1, max_size=60))
    seq_a = draw(st.integers(0, 16383))
    seq_b = draw(st.integers(0, 16383))
    out, expected_a, expected_b = [], [], []
    for kind, r in items:
        rng = np.random.default_rng(r)
        temp = float(np.float32(rng.uniform(0, 1000)))
        power = round(float(rng.uniform(0, 1000)), 1)
        t = T0 + r * 1e-3
        base = pkt_a(rng.integers(16384), temp, power, t)
        if kind == "valid":
            out.append((kind, pkt_a(seq_a, temp, power, t)))
            expected_a.append((seq_a, temp, power))
            seq_a = (seq_a + 1) % 16384
        elif kind == "valid_b":
            x = round(float(rng.uniform(-1, 1)), 4)
            out.append((kind, pkt_b(seq_b, x)))
            expected_b.append((seq_b, x))
            seq_b = (seq_b + 1) % 16384
        elif kind in ("nan", "out_of_range"):
            bad = math.nan if kind == "nan" else 1000.5 + temp
            out.append((kind, pkt_a(seq_a, bad, power, t)))
            seq_a = (seq_a + 1) % 16384
        elif kind == "random":
            out.append((kind, draw(st.binary(max_size=64))))
        elif kind == "truncate":
            out.append((kind, base[:int(rng.integers(len(base)))]))
        elif kind == "lying_length":
            lie = int(rng.integers(65536))
            if lie == len(base) - 7:
                lie += 1
            out.append((kind, with_header(base, length=lie)))
        elif kind == "extra":
            out.append((kind, base + bytes(int(rng.integers(1, 9)))))
        elif kind == "version":
            out.append((kind, with_header(base, word0=word0(base) | int(rng.integers(1, 8)) << 13)))
        elif kind == "tc":
            out.append((kind, with_header(base, word0=word0(base) | 1 << 12)))
        elif kind == "unknown_apid":
            apid = int(rng.choice([a for a in range(1, 0x7FF) if a not in (0x10, 0x20)]))
            out.append((kind, with_header(base, word0=(word0(base) & ~0x7FF) | apid)))
        elif kind == "bad_crc":
            i = int(rng.integers(6, len(base) - 2))
            out.append((kind, base[:i] + bytes([base[i] ^ (1 + int(rng.integers(255)))])
                        + base[i + 1:]))
    return out, expected_a, expected_b


EXPECTED_REASON = {"version": {"version"}, "tc": {"not_telemetry"},
                   "unknown_apid": {"unknown_apid"}, "bad_crc": {"crc"}, "nan": {"not_finite"},
                   "out_of_range": {"out_of_range"}, "extra": {"length"},
                   "truncate": {"truncated"}, "lying_length": {"truncated", "length"}}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(session=datagram_session(), cuts=st.lists(st.integers(1, 20), max_size=10))
def test_fuzz_datagrams(session, cuts) -> None:
    items, expected_a, expected_b = session
    dec = Decoder(DEFS)
    got_a, got_b = [], []
    i = 0
    for size in [*cuts, len(items)]:  # random batch boundaries
        chunk = [d for _, d in items[i:i + size]]
        i += size
        for batch in dec.decode_datagrams(chunk):
            rows = zip(batch.seq, *batch.values.values(), strict=True)
            (got_a if batch.packet.name == "a" else got_b).extend(rows)
        if i >= len(items):
            break
    assert [(s, np.float32(t), round(p, 1)) for s, t, p in got_a] == \
        [(s, np.float32(t), p) for s, t, p in expected_a]
    assert [(s, round(x, 4)) for s, x in got_b] == expected_b
    c = dec.counters
    n_invalid = sum(kind not in ("valid", "valid_b") for kind, _ in items)
    assert c.received == len(items) and c.accepted == len(expected_a) + len(expected_b)
    assert sum(c.rejected.values()) == n_invalid
    n_random = sum(kind == "random" for kind, _ in items)
    for kind, reasons in EXPECTED_REASON.items():  # each kind is caught for its reason
        injected = sum(k == kind for k, _ in items)
        assert sum(c.rejected[r] for r in reasons) >= injected, kind
    reasons = set().union(*EXPECTED_REASON.values())
    injected = sum(k in EXPECTED_REASON for k, _ in items)
    assert 0 <= sum(c.rejected[r] for r in reasons) - injected <= n_random
    assert c.rejected["duplicate"] == c.rejected["out_of_order"] == 0


# -- fuzzing: a TCP-like stream ------------------------------------------------------------


@st.composite
def stream_session(draw):
    kinds = draw(st.lists(st.sampled_from(("valid", "valid_b", "garbage", "lying_length",
                                           "bad_crc", "nan")), min_size=1, max_size=40))
    seq_a, seq_b = 0, 0
    parts, expected, n_framing, n_crc, n_nan = [], 0, 0, 0, 0
    previous = None
    for j, kind in enumerate(kinds):
        t = T0 + j
        if kind == "valid":
            parts.append(pkt_a(seq_a, 300.0, 10.0, t))
            seq_a, expected = seq_a + 1, expected + 1
        elif kind == "valid_b":
            parts.append(pkt_b(seq_b, 0.5))
            seq_b, expected = seq_b + 1, expected + 1
        elif kind == "garbage":
            # 0xFF leads: version 7, never a plausible header, and no header hides inside.
            parts.append(b"\xff" * draw(st.integers(1, 50)))
        elif kind == "lying_length":
            lie = draw(st.integers(0, 60).filter(lambda x: x != A_LENGTH_FIELD))
            parts.append(with_header(pkt_a(0, 1.0, 1.0, t), length=lie))
        elif kind == "bad_crc":
            p = pkt_a(seq_a, 300.0, 10.0, t)
            parts.append(p[:-1] + bytes([p[-1] ^ 0x55]))
            n_crc += 1
        elif kind == "nan":
            parts.append(pkt_a(seq_a, math.nan, 10.0, t))
            seq_a, n_nan = seq_a + 1, n_nan + 1
        if kind in ("garbage", "lying_length") and previous not in ("garbage", "lying_length"):
            n_framing += 1
        previous = kind
    return b"".join(parts), expected, n_framing, n_crc, n_nan


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(session=stream_session(), chunk=st.integers(1, 200))
def test_fuzz_stream(session, chunk) -> None:
    data, expected, n_framing, n_crc, n_nan = session
    dec = Decoder(DEFS)
    splitter = StreamSplitter(dec)
    accepted = 0
    for i in range(0, len(data), chunk):
        accepted += sum(len(b) for b in splitter.feed(data[i:i + chunk]))
    c = dec.counters
    assert accepted == expected
    assert c.rejected["crc"] == n_crc and c.rejected["not_finite"] == n_nan
    assert c.rejected["framing"] <= n_framing
    assert c.received == c.accepted + sum(c.rejected.values())


# -- real sockets --------------------------------------------------------------------------


def test_udp_socket_every_packet_applied() -> None:
    source = UdpSource("127.0.0.1:0")
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        n = 500
        packets = [pkt_a(i % 16384, 250.0 + i * 0.01, i % 1000, T0 + i) for i in range(n)]
        packets.insert(100, b"\x00garbage")
        for p in packets:
            sender.sendto(p, source.address)
        dec = Decoder(DEFS)
        got = []
        deadline = time.monotonic() + 10.0
        while len(got) < n and time.monotonic() < deadline:
            for batch in dec.decode_datagrams(source.read(0.5)):
                got.extend(batch.seq.tolist())
        assert got == list(range(n))
        assert sum(dec.counters.rejected.values()) == 1
    finally:
        sender.close()
        source.close()


def test_tcp_stream_split_by_length_field() -> None:
    defs = load_definitions("flatsat")
    hk = defs.by_name("hk")
    n = 20_000
    rows = encode_packets(hk, {"util_frac": np.full(n, 0.5), "compute_power_w": np.arange(n) % 600,
                               "cold_plate_temp_c": np.full(n, 20.0),
                               "radiator_temp_c": np.full(n, -5.0)},
                          np.arange(n), T0 + np.arange(n) * 0.01)
    data = rows.tobytes()
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def serve() -> None:
        conn, _ = server.accept()
        rng = np.random.default_rng(1)
        i = 0
        while i < len(data):  # odd segment sizes: packets straddle reads
            step = int(rng.integers(1, 5000))
            conn.sendall(data[i:i + step])
            i += step
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    source = TcpSource(f"127.0.0.1:{server.getsockname()[1]}")
    dec = Decoder(defs)
    splitter = StreamSplitter(dec)
    power = []
    deadline = time.monotonic() + 20.0
    while len(power) < n and time.monotonic() < deadline:
        for batch in splitter.feed(source.read(0.2)):
            power.extend(batch.values["compute_power_w"].tolist())
    source.close()
    server.close()
    thread.join(5)
    assert np.allclose(power, np.arange(n) % 600)
    assert dec.counters.accepted == n and sum(dec.counters.rejected.values()) == 0

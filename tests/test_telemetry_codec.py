"""The ``tm`` message end to end: ``encode_telemetry`` framed, ``decode_telemetry`` read back.

Real bytes, as ZeroMQ hands them to the twin (each frame copied into ``bytes``); the codec is
``twin.protocol.telemetry``, the one module both the bridge and the mirror use.
"""

from __future__ import annotations

import re
from typing import Any

import msgpack
import numpy as np
import pytest

from twin.protocol.codec import PROTOCOL_VERSION, WireError
from twin.protocol.telemetry import decode_telemetry, encode_telemetry

T_UTC = np.array([1_700_000_000.0, 1_700_000_000.0, 1_700_000_000.5])
SEQ_COUNT = np.array([16383, 16384, 16385])  # past a 14-bit wrap: unwrapped counts are <i8


def _frames(**overrides: Any) -> list[bytes]:
    """Three samples of packet ``hk`` from ``flatsat``, as bytes on the wire."""
    kwargs: dict[str, Any] = {
        "seq": 7, "testbed": "flatsat", "packet": "hk", "t_utc": T_UTC,
        "values": {"compute_power_w": np.array([410.0, 412.5, 415.0]),
                   "cold_plate_temp_c": np.array([31.0, 31.25, 31.5])},
        "units": {"compute_power_w": "W", "cold_plate_temp_c": "degC"},
        "bridge": {"push": {"sent_messages": 6}}, "sent_utc": 1_700_000_001.0,
        "seq_count": SEQ_COUNT,
    }
    kwargs.update(overrides)
    return [bytes(f) for f in encode_telemetry(**kwargs)]


def _with_header(frames: list[bytes], **changes: Any) -> list[bytes]:
    header = msgpack.unpackb(frames[1], raw=False)
    header.update(changes)
    return [frames[0], msgpack.packb(header, use_bin_type=True), *frames[2:]]


def test_round_trip_keeps_header_and_columns() -> None:
    header, columns = decode_telemetry(_frames())

    assert header["v"] == PROTOCOL_VERSION
    assert (header["seq"], header["t_utc"]) == (7, 1_700_000_001.0)
    assert (header["testbed"], header["packet"], header["n"]) == ("flatsat", "hk", 3)
    assert header["bridge"] == {"push": {"sent_messages": 6}}
    assert [(f["name"], f["dtype"], f["shape"], f["unit"]) for f in header["fields"]] == [
        ("t_utc", "<f8", [3], "s"),
        ("seq_count", "<i8", [3], "1"),
        ("compute_power_w", "<f8", [3], "W"),
        ("cold_plate_temp_c", "<f8", [3], "degC"),
    ]
    assert list(columns) == ["t_utc", "seq_count", "compute_power_w", "cold_plate_temp_c"]
    assert columns["t_utc"].dtype == np.dtype("<f8")
    np.testing.assert_array_equal(columns["t_utc"], T_UTC)
    assert columns["seq_count"].dtype == np.dtype("<i8")
    np.testing.assert_array_equal(columns["seq_count"], SEQ_COUNT)
    np.testing.assert_array_equal(columns["compute_power_w"], [410.0, 412.5, 415.0])
    np.testing.assert_array_equal(columns["cold_plate_temp_c"], [31.0, 31.25, 31.5])


def test_optional_parts_are_left_out_when_not_given() -> None:
    header, columns = decode_telemetry(_frames(seq_count=None, bridge=None, units=None))

    assert "bridge" not in header
    assert list(columns) == ["t_utc", "compute_power_w", "cold_plate_temp_c"]
    assert {f["unit"] for f in header["fields"][1:]} == {""}


def test_encoder_frames_decode_in_place_without_copying() -> None:
    # The encoder's own frames (memoryviews, as send_multipart(copy=False) takes them) read
    # back directly, and the columns are views of those frames, not copies.
    frames = encode_telemetry(0, "flatsat", "hk", T_UTC, {"compute_power_w": np.ones(3)})
    _, columns = decode_telemetry(frames)

    assert not columns["t_utc"].flags.owndata
    np.testing.assert_array_equal(columns["t_utc"], T_UTC)


@pytest.mark.parametrize(("mangle", "problem"), [
    (lambda f: f[:2], "expected [b'tm', header, t_utc, ...], got 2 frame(s)"),
    (lambda f: f[:-1], "header lists 4 fields but 3 buffers follow"),
    (lambda f: [*f, f[-1]], "header lists 4 fields but 5 buffers follow"),
    (lambda f: _with_header(f, v=2), f"protocol version 2, expected {PROTOCOL_VERSION}"),
    (lambda f: _with_header(f, v="1"), f"protocol version '1', expected {PROTOCOL_VERSION}"),
    (lambda f: [b"state", *f[1:]], "topic b'state' is not 'tm'"),
    (lambda f: [*f[:2], f[2][:-8], *f[3:]], "field 't_utc': 16 bytes, <f8[3] needs 24"),
], ids=["too-few-frames", "missing-column", "extra-column", "version-2", "version-string",
        "wrong-topic", "short-column"])
def test_a_malformed_message_raises_wire_error_naming_the_problem(mangle, problem) -> None:
    with pytest.raises(WireError, match=re.escape(problem)):
        decode_telemetry(mangle(_frames()))

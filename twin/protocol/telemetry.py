"""The ``tm`` message: telemetry a bridge pushes to the twin's ingest socket.

The encoder (``encode_telemetry``, used by ``bridge.push``) and the decoder
(``decode_telemetry``, used by the mirror, ``twin.models.mirror``) live side by side so the
two ends of the wire cannot drift apart. docs/protocol.md ("Ingest") is the contract; one
message carries n samples of one packet type of one testbed, column by column::

    frame 0   b"tm"
    frame 1   msgpack header {v, seq, t_utc, testbed, packet, n, fields, [bridge]}
    frame 2.. raw little-endian columns of shape [n], in the order of header["fields"]:
              "t_utc" first (sample times, POSIX s, <f8), optionally "seq_count" (<i8,
              unwrapped packet sequence counts), then one column per parameter

``seq`` counts messages from one bridge from 0; ``t_utc`` is the wall time of sending;
``bridge`` (at most once a second) carries the bridge's own counters so the twin can show
them. Columns reuse the ``state`` framing, so one reader serves both.

The decoder faces any client: it checks every header value the mirror reads, and its
``WireError`` texts never quote more than a few characters of what was sent.
"""

from __future__ import annotations

import reprlib
import time
from typing import Any

import numpy as np

from twin.protocol.codec import (
    PROTOCOL_VERSION,
    TOPIC_TELEMETRY,
    WIRE_DTYPES,
    WireError,
    pack,
    unpack,
)

# Caps on what a client can make the twin work on (docs/reliability.md, "Telemetry ingest").
MAX_SAMPLES = 10_000_000
"""Largest ``n`` of one message (docs/protocol.md); its columns must hold that many values."""
MAX_NAME_CHARS = 128
"""Longest packet or field name."""
_QUOTE = reprlib.Repr()
_QUOTE.maxstring = _QUOTE.maxother = 40
_QUOTE.maxlevel = 2
quote = _QUOTE.repr
"""A client's value quoted for a log line: at most ~40 characters, however big it is."""


# -- encoder (the bridge's side) ----------------------------------------------------------


def encode_telemetry(seq: int, testbed: str, packet: str, t_utc: np.ndarray,
                     values: dict[str, np.ndarray], units: dict[str, str] | None = None,
                     bridge: dict[str, Any] | None = None, sent_utc: float | None = None,
                     seq_count: np.ndarray | None = None,
                     noise: dict[str, float] | None = None) -> list[Any]:
    """Frame one ``tm`` message.

    Args:
        seq: Message counter of this bridge.
        testbed: Testbed name (the mirror binds by it).
        packet: Packet (parameter group) name.
        t_utc: (k,) sample times, POSIX seconds, ascending.
        values: Parameter name (unit-carrying) -> (k,) values.
        units: Optional unit strings per parameter, for people.
        bridge: Optional bridge counters map.
        sent_utc: Send time (default: now).
        seq_count: Optional (k,) unwrapped packet sequence counts, sent as the ``<i8``
            column ``seq_count``; the twin uses them to order samples with equal times.
        noise: Optional sensor noise per parameter (one standard deviation, in the
            parameter's unit, from the testbed definition): the field's ``noise``.

    Returns:
        Frames for ``send_multipart(copy=False)``.
    """
    units = units or {}
    columns = [np.ascontiguousarray(t_utc, dtype="<f8")]
    fields = [{"name": "t_utc", "dtype": "<f8", "shape": [len(t_utc)], "unit": "s"}]
    if seq_count is not None:
        columns.append(np.ascontiguousarray(seq_count, dtype="<i8"))
        fields.append({"name": "seq_count", "dtype": "<i8", "shape": [len(t_utc)], "unit": "1"})
    for name, column in values.items():
        columns.append(np.ascontiguousarray(column, dtype="<f8"))
        spec = {"name": name, "dtype": "<f8", "shape": [len(t_utc)], "unit": units.get(name, "")}
        if noise and name in noise:
            spec["noise"] = float(noise[name])
        fields.append(spec)
    header: dict[str, Any] = {
        "v": PROTOCOL_VERSION, "seq": seq, "t_utc": time.time() if sent_utc is None else sent_utc,
        "testbed": testbed, "packet": packet, "n": len(t_utc), "fields": fields,
    }
    if bridge is not None:
        header["bridge"] = bridge
    return [TOPIC_TELEMETRY, pack(header), *(memoryview(c).cast("B") for c in columns)]


# -- decoder (the twin's side) ------------------------------------------------------------


def decode_telemetry(frames: list[Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Check a ``tm`` message against docs/protocol.md and return (header, columns).

    Every header value the mirror reads is checked for type and range here (``testbed`` a
    non-empty string, ``packet`` a string of at most ``MAX_NAME_CHARS``, ``n`` an int in
    1..``MAX_SAMPLES``, each ``fields`` entry a map with a unique name, a wire dtype and
    ``shape == [n]``, each buffer exactly ``n`` items), so nothing later trips on them.

    Returns:
        The header map, and column name -> (n,) array in its wire dtype, read in place
        from its frame (no copy).

    Raises:
        WireError: Naming what is wrong, without quoting more than a few characters of it.
    """
    if not isinstance(frames, list | tuple):
        raise WireError(f"expected a list of frames, got {type(frames).__name__}")
    if len(frames) < 3:
        raise WireError(f"expected [b'tm', header, t_utc, ...], got {len(frames)} frame(s)")
    views = [_frame_view(f, i) for i, f in enumerate(frames)]
    if views[0] != TOPIC_TELEMETRY:
        raise WireError(f"topic {quote(views[0][:16].tobytes())} is not 'tm'")
    header = unpack(views[1])
    if not isinstance(header, dict):
        raise WireError(f"header is a msgpack {type(header).__name__}, not a map")
    version = header.get("v")
    if type(version) is not int or version != PROTOCOL_VERSION:
        raise WireError(f"protocol version {quote(version)}, expected {PROTOCOL_VERSION}")
    testbed, n, specs = header.get("testbed"), header.get("n"), header.get("fields")
    packet = header.get("packet", "")
    if not isinstance(testbed, str) or not testbed:
        raise WireError(f"header 'testbed' is {_kind(testbed)}, expected a non-empty string")
    if not isinstance(packet, str) or len(packet) > MAX_NAME_CHARS:
        raise WireError(f"header 'packet' is {_kind(packet)}, expected a string of at most "
                        f"{MAX_NAME_CHARS} characters")
    if type(n) is not int or not 0 < n <= MAX_SAMPLES:
        raise WireError(f"header 'n' is {_kind(n)}, expected a sample count "
                        f"1..{MAX_SAMPLES:,}")
    if not isinstance(specs, list) or len(specs) != len(frames) - 2:
        raise WireError(f"header lists {len(specs) if isinstance(specs, list) else 'no'} "
                        f"fields but {len(frames) - 2} buffers follow")
    columns: dict[str, np.ndarray] = {}
    for i, (spec, buffer) in enumerate(zip(specs, views[2:], strict=True)):
        columns_name = _check_spec(spec, i, n, columns)
        dtype = np.dtype(spec["dtype"])
        if buffer.nbytes != n * dtype.itemsize:
            raise WireError(f"field {quote(columns_name)}: {buffer.nbytes} bytes, "
                            f"{dtype.str}[{n}] needs {n * dtype.itemsize}")
        columns[columns_name] = np.frombuffer(buffer, dtype=dtype)
    if "t_utc" not in columns:
        raise WireError("no 't_utc' column")
    return header, columns


def _frame_view(frame: Any, i: int) -> memoryview:
    """One frame as flat bytes (``bytes``, ``bytearray``, ``memoryview`` or a ``zmq.Frame``)."""
    if not isinstance(frame, bytes | bytearray | memoryview):
        buffer = getattr(frame, "buffer", None)  # zmq.Frame (recv_multipart(copy=False))
        if not isinstance(buffer, memoryview):
            raise WireError(f"frame {i} is {_kind(frame)}, expected bytes")
        frame = buffer
    view = memoryview(frame)
    if view.ndim != 1 or view.itemsize != 1:
        view = view.cast("B")  # TypeError when not contiguous: a bad message all the same
    return view


def _check_spec(spec: Any, i: int, n: int, seen: dict[str, np.ndarray]) -> str:
    """The name of ``fields[i]`` once its name, dtype and shape are checked."""
    if not isinstance(spec, dict):
        raise WireError(f"fields[{i}] is {_kind(spec)}, expected a map")
    name, dtype, shape = spec.get("name"), spec.get("dtype"), spec.get("shape")
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME_CHARS:
        raise WireError(f"fields[{i}] 'name' is {_kind(name)}, expected a string of 1.."
                        f"{MAX_NAME_CHARS} characters")
    if name in seen:
        raise WireError(f"fields[{i}] repeats the name {quote(name)}")
    if not isinstance(dtype, str) or dtype not in WIRE_DTYPES:
        raise WireError(f"field {quote(name)}: dtype is {_kind(dtype)}, expected one of "
                        f"{', '.join(sorted(WIRE_DTYPES))}")
    if not (isinstance(shape, list) and len(shape) == 1 and type(shape[0]) is int
            and shape[0] == n):
        raise WireError(f"field {quote(name)}: shape is {_kind(shape)}, expected [{n}]")
    return name


def _kind(value: Any) -> str:
    """A client's value described for a log line: its type and at most ~40 characters."""
    return f"{type(value).__name__} {quote(value)}"


"""The wire codec: how the twin's messages look on ZeroMQ (protocol version 1).

Every message is multipart: ``[topic, header, buffer_0, buffer_1, ...]``. The topic
is ASCII, the header a msgpack map, and the buffers raw little-endian C-order numpy
arrays described, in order, by the header's ``fields`` list. Nothing is pickled, so a
client in any language can read the stream from ``docs/protocol.md`` alone.

This module is the twin's public wire module: viewers and bridges import it (and the
scenario module) and nothing else from ``twin``.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

PROTOCOL_VERSION = 1

TOPIC_STATE = b"state"
TOPIC_EVENT = b"event"
TOPIC_META = b"meta"
TOPIC_HEARTBEAT = b"hb"
TOPICS = (TOPIC_STATE, TOPIC_EVENT, TOPIC_META, TOPIC_HEARTBEAT)

# Telemetry pushed by bridges to the twin's ingest socket.
TOPIC_TELEMETRY = b"tm"

DEFAULT_PUB_ADDRESS = "tcp://127.0.0.1:5555"
DEFAULT_COMMAND_ADDRESS = "tcp://127.0.0.1:5556"
DEFAULT_INGEST_ADDRESS = "tcp://127.0.0.1:5557"

SEVERITIES = ("info", "warning", "alarm")

# Only these dtypes travel; all little-endian, so any client can map them directly.
WIRE_DTYPES = frozenset({"|u1", "|i1", "<u2", "<i2", "<u4", "<i4", "<i8", "<f4", "<f8", "|b1"})


class WireError(ValueError):
    """A message that does not follow the documented framing."""


@dataclass(frozen=True)
class FieldSpec:
    """One array on the ``state`` stream.

    Attributes:
        name: Field name; its suffix carries the unit (``temp_compute_k``).
        dtype: numpy dtype string, little-endian (``"<f4"``).
        shape: Array shape; the first axis is the satellite axis where ``per_sat``.
        unit: Unit as written in docs/protocol.md (``"K"``, ``"W"``, ``"1"``).
        description: One line for people.
        per_sat: Whether axis 0 indexes satellites (viewers may colour by it).
        limits: Optional operating limits in the field's unit, for example
            ``{"warn_high": 353.15, "alarm_high": 358.15}``.
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    unit: str
    description: str = ""
    per_sat: bool = True
    limits: dict[str, float] = field(default_factory=dict)

    def header_entry(self) -> dict[str, Any]:
        """The compact entry that precedes this field's buffer in a ``state`` header."""
        return {
            "name": self.name, "dtype": self.dtype, "shape": list(self.shape), "unit": self.unit
        }

    def catalog_entry(self) -> dict[str, Any]:
        """The fuller entry in ``meta``'s field catalog."""
        entry = self.header_entry()
        entry.update(description=self.description, per_sat=self.per_sat, limits=dict(self.limits))
        return entry


def pack(obj: Any) -> bytes:
    """msgpack-encode a header or command map."""
    return msgpack.packb(obj, use_bin_type=True)


def unpack(data: bytes | memoryview) -> Any:
    """msgpack-decode bytes from the wire; raises ``WireError`` on garbage."""
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated exception types
        raise WireError(f"not valid msgpack: {exc}") from exc


def encode_state(header: dict[str, Any], specs: list[FieldSpec], arrays: list[np.ndarray]) -> list:
    """Frame a ``state`` message.

    Args:
        header: Map with at least ``v``, ``seq`` and ``t_utc``; ``fields`` is added here.
        specs: Field specs, one per array, in buffer order.
        arrays: Arrays matching ``specs`` in dtype and shape (C-contiguous).

    Returns:
        Frames for ``socket.send_multipart``. The buffers view the arrays' memory: send
        with ``copy=True`` if the arrays change before ZeroMQ has sent them.
    """
    header = dict(header)
    header["fields"] = [spec.header_entry() for spec in specs]
    frames: list = [TOPIC_STATE, pack(header)]
    for spec, array in zip(specs, arrays, strict=True):
        if array.dtype.str != spec.dtype or array.shape != spec.shape:
            raise WireError(
                f"field {spec.name}: array is {array.dtype.str}{array.shape}, "
                f"spec says {spec.dtype}{spec.shape}"
            )
        frames.append(_byte_view(array))
    return frames


def _byte_view(array: np.ndarray) -> memoryview:
    """The array's bytes as a flat view (an empty array, such as no stations, gives b"")."""
    if array.size == 0:
        return memoryview(b"")
    return memoryview(np.ascontiguousarray(array)).cast("B")


class StateEncoder:
    """Frames ``state`` messages for one fixed list of fields, fast enough for every step.

    Gives exactly the frames of `encode_state` (byte for byte), but does the per-field work
    once: the header's ``fields`` list is packed once and appended to the packed per-step
    header (a msgpack map is its entry count followed by its keys and values, so the two
    concatenate), and each array's byte view is built once and kept while the field keeps
    the same array object (fields are updated in place; a field given a new array is
    checked and viewed again).

    Args:
        specs: Field specs, in buffer order; they must not change afterwards.
    """

    def __init__(self, specs: list[FieldSpec]) -> None:
        self.specs = list(specs)
        self._fields_kv = pack("fields") + pack([spec.header_entry() for spec in self.specs])
        self._arrays: list[np.ndarray | None] = [None] * len(self.specs)
        self._views: list[memoryview | None] = [None] * len(self.specs)

    def encode(self, header: dict[str, Any], arrays: list[np.ndarray]) -> list:
        """Frames for ``header`` (without ``fields``) and ``arrays`` (one per spec).

        The buffers view the arrays' memory: send with ``copy=True``.

        Raises:
            WireError: if an array does not match its spec in dtype and shape.
        """
        if len(arrays) != len(self.specs) or "fields" in header:
            return encode_state(header, self.specs, arrays)
        body = pack(header)
        frames: list = [TOPIC_STATE, map_header(len(header) + 1)
                        + body[map_header_size(body[0]):] + self._fields_kv]
        known, views = self._arrays, self._views
        for k, array in enumerate(arrays):
            if array is known[k]:
                frames.append(views[k])
                continue
            spec = self.specs[k]
            if array.dtype.str != spec.dtype or array.shape != spec.shape:
                raise WireError(
                    f"field {spec.name}: array is {array.dtype.str}{array.shape}, "
                    f"spec says {spec.dtype}{spec.shape}"
                )
            view = _byte_view(array)
            if array.flags.c_contiguous:  # a strided array is copied: view it anew each time
                known[k], views[k] = array, view
            frames.append(view)
        return frames


def map_header(n: int) -> bytes:
    """msgpack map header for ``n`` entries (fixmap, map 16 or map 32)."""
    if n < 16:
        return bytes((0x80 | n,))
    if n < 1 << 16:
        return b"\xde" + n.to_bytes(2, "big")
    return b"\xdf" + n.to_bytes(4, "big")


def map_header_size(first_byte: int) -> int:
    """Bytes taken by the map header that starts with ``first_byte``."""
    return 1 if first_byte < 0xDE else 3 if first_byte == 0xDE else 5


def encode_map(topic: bytes, header: dict[str, Any]) -> list[bytes]:
    """Frame a message that is only a header: ``meta``, ``event`` or ``hb``."""
    return [topic, pack(header)]


@dataclass
class Message:
    """A decoded message: its topic, its header map and, for ``state``, its arrays."""

    topic: str
    header: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def seq(self) -> int:
        return int(self.header["seq"])

    @property
    def t_utc(self) -> float:
        return float(self.header["t_utc"])


def _frame_bytes(frame: Any) -> bytes | memoryview:
    # pyzmq gives Frame objects when received with copy=False; they expose .buffer.
    return frame.buffer if hasattr(frame, "buffer") else frame


def decode(frames: list) -> Message:
    """Decode one multipart message, checking it against the documented framing.

    Raises:
        WireError: naming what is wrong (topic, header keys, field sizes).
    """
    if len(frames) < 2:
        raise WireError(f"expected [topic, header, ...], got {len(frames)} frame(s)")
    topic = bytes(_frame_bytes(frames[0]))
    if topic not in TOPICS and topic != TOPIC_TELEMETRY:
        raise WireError(f"unknown topic {topic[:32]!r}")
    header = unpack(_frame_bytes(frames[1]))
    if not isinstance(header, dict):
        raise WireError("header is not a msgpack map")
    for key in ("v", "seq", "t_utc"):
        if key not in header:
            raise WireError(f"{topic.decode()} header lacks {key!r}")
    if header["v"] != PROTOCOL_VERSION:
        raise WireError(f"protocol version {header['v']!r}, this client reads {PROTOCOL_VERSION}")
    message = Message(topic.decode(), header)
    if topic != TOPIC_STATE:
        return message
    fields = header.get("fields")
    if not isinstance(fields, list) or len(fields) != len(frames) - 2:
        raise WireError(
            f"state header lists {len(fields) if isinstance(fields, list) else 'no'} fields "
            f"but {len(frames) - 2} buffers follow"
        )
    for entry, frame in zip(fields, frames[2:], strict=True):
        message.arrays[entry["name"]] = _decode_array(entry, _frame_bytes(frame))
    return message


def _decode_array(entry: dict[str, Any], buffer: bytes | memoryview) -> np.ndarray:
    try:
        name, dtype, shape = entry["name"], entry["dtype"], tuple(entry["shape"])
    except (KeyError, TypeError) as exc:
        raise WireError(f"field entry {entry!r} lacks name, dtype or shape") from exc
    if dtype not in WIRE_DTYPES:
        raise WireError(f"field {name}: dtype {dtype!r} is not one of the wire dtypes")
    expected = math.prod(shape) * np.dtype(dtype).itemsize
    if len(buffer) != expected:
        raise WireError(
            f"field {name}: buffer has {len(buffer)} bytes, {dtype}{shape} needs {expected}"
        )
    return np.frombuffer(buffer, dtype=dtype).reshape(shape)


ADDRESS_SCHEMES = ("tcp://", "ipc://", "inproc://")


def address_argument(text: str) -> str:
    """An ``argparse`` type for a ZeroMQ endpoint, with a message that shows the form."""
    if not text.startswith(ADDRESS_SCHEMES):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a ZeroMQ address; write it like tcp://127.0.0.1:5555"
        )
    return text


def ok(**payload: Any) -> dict[str, Any]:
    """A successful command reply."""
    return {"ok": True, **payload}


def error(message: str) -> dict[str, Any]:
    """A failed command reply; the twin changed nothing."""
    return {"ok": False, "error": message}

"""The wire codec: how the twin's messages look on ZeroMQ (protocol version 1).

Every message is multipart: ``[topic, header, buffer_0, buffer_1, ...]``. The topic
is ASCII, the header a msgpack map, and the buffers raw little-endian C-order numpy
arrays described, in order, by the header's ``fields`` list. Nothing is pickled, so a
client in any language can read the stream from ``docs/protocol.md`` alone.

This module is the twin's public wire module: viewers and bridges import it (and the
scenario module) and nothing else from ``twin``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

from twin.protocol.catalog import display_of, kind_of, labels_entry

PROTOCOL_VERSION = 1

TOPIC_STATE = b"state"
TOPIC_EVENT = b"event"
TOPIC_META = b"meta"
TOPIC_HEARTBEAT = b"hb"
TOPIC_ALARMS = b"alarms"
TOPIC_AGGREGATE = b"aggregate"
TOPICS = (TOPIC_STATE, TOPIC_EVENT, TOPIC_META, TOPIC_HEARTBEAT, TOPIC_ALARMS, TOPIC_AGGREGATE)
# A selective stream (twin.runtime.subscriptions): "sub/<id>", framed as ``state``.
TOPIC_SUBSCRIPTION_PREFIX = b"sub/"
MAX_TOPIC_CHARS = 64

# Telemetry pushed by bridges to the twin's ingest socket.
TOPIC_TELEMETRY = b"tm"

DEFAULT_PUB_ADDRESS = "tcp://127.0.0.1:5555"
DEFAULT_COMMAND_ADDRESS = "tcp://127.0.0.1:5556"
DEFAULT_INGEST_ADDRESS = "tcp://127.0.0.1:5557"

SEVERITIES = ("info", "warning", "alarm")
NODE_EVENTS_SUMMARY = "node_events_summary"
"""The event that stands for a step's many per-node events of one kind (docs/protocol.md,
"Mass changes: one summary event")."""

# Only these dtypes travel; all little-endian, so any client can map them directly.
WIRE_DTYPES = frozenset({"|u1", "|i1", "<u2", "<i2", "<u4", "<i4", "<i8", "<f4", "<f8", "|b1"})


FIELD_TIMES = ("instant", "step")
"""What time a field's values describe (``FieldSpec.over``)."""


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
        labels: Names of an enum's codes or a bitmask's bits (``{1: "thermal"}``).
        over: What time the values describe: ``"instant"``, the state at the step's end
            (``t_utc``); ``"step"``, the step's interval, ``dt_s`` up to ``t_utc``: a mean
            over it for a quantity (power, FLOP/s, utilization), every one that took part
            in it for a count (docs/protocol.md, "Instant or interval").
        infinite: What a value of +inf means, for people (``"none"``: no power cap);
            empty where +inf means nothing special. In the catalog only where set.
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    unit: str
    description: str = ""
    per_sat: bool = True
    limits: dict[str, float] = field(default_factory=dict)
    labels: dict[int, str] = field(default_factory=dict)
    over: str = "instant"
    infinite: str = ""

    def __post_init__(self) -> None:
        if self.over not in FIELD_TIMES:
            raise ValueError(f"field {self.name}: over={self.over!r}, not one of {FIELD_TIMES}")

    def header_entry(self) -> dict[str, Any]:
        """The compact entry that precedes this field's buffer in a ``state`` header."""
        return {
            "name": self.name, "dtype": self.dtype, "shape": list(self.shape), "unit": self.unit
        }

    def catalog_entry(self) -> dict[str, Any]:
        """The fuller entry in ``meta``'s field catalog."""
        entry = self.header_entry()
        entry.update(description=self.description, per_sat=self.per_sat, limits=dict(self.limits),
                     kind=kind_of(self.unit), labels=labels_entry(self.labels),
                     display=display_of(self.unit), over=self.over)
        if self.infinite:
            entry["infinite"] = self.infinite
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

    Any input gives either a `Message` whose framing keys have their documented types
    (``v`` 1, ``seq`` a non-negative int, ``t_utc`` a finite number, ``run_id`` an int
    where present) and whose arrays match their field entries, or a `WireError`: never
    another exception, whatever the bytes.

    Raises:
        WireError: naming what is wrong (topic, header keys, field sizes).
    """
    try:
        return _decode(frames)
    except WireError:
        raise
    except Exception as exc:  # a case the checks below missed: still the documented error
        raise WireError(f"malformed message ({type(exc).__name__}: {exc})") from exc


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _decode(frames: list) -> Message:
    if len(frames) < 2:
        raise WireError(f"expected [topic, header, ...], got {len(frames)} frame(s)")
    topic = bytes(_frame_bytes(frames[0]))
    selective = topic.startswith(TOPIC_SUBSCRIPTION_PREFIX) and len(topic) <= MAX_TOPIC_CHARS \
        and topic.isascii()
    if topic not in TOPICS and topic != TOPIC_TELEMETRY and not selective:
        raise WireError(f"unknown topic {topic[:32]!r}")
    header = unpack(_frame_bytes(frames[1]))
    if not isinstance(header, dict):
        raise WireError("header is not a msgpack map")
    for key in ("v", "seq", "t_utc"):
        if key not in header:
            raise WireError(f"{topic.decode()} header lacks {key!r}")
    if not _is_int(header["v"]) or header["v"] != PROTOCOL_VERSION:
        raise WireError(f"protocol version {_short(header['v'])}, this client reads "
                        f"{PROTOCOL_VERSION}")
    if not _is_int(header["seq"]) or header["seq"] < 0:
        raise WireError(f"seq is {_short(header['seq'])}, not a non-negative int")
    t_utc = header["t_utc"]
    if not _is_number(t_utc) or not math.isfinite(t_utc):
        raise WireError(f"t_utc is {_short(t_utc)}, not a finite number")
    if "run_id" in header and not _is_int(header["run_id"]):
        raise WireError(f"run_id is {_short(header['run_id'])}, not an int")
    message = Message(topic.decode(), header)
    if topic != TOPIC_STATE and not selective:
        return message
    fields = header.get("fields")
    if not isinstance(fields, list) or len(fields) != len(frames) - 2:
        raise WireError(
            f"state header lists {len(fields) if isinstance(fields, list) else 'no'} fields "
            f"but {len(frames) - 2} buffers follow"
        )
    for entry, frame in zip(fields, frames[2:], strict=True):
        name, array = _decode_array(entry, _frame_bytes(frame))
        if name in message.arrays:
            raise WireError(f"field {_short(name)} appears twice")
        message.arrays[name] = array
    return message


def _short(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters: error texts never quote a payload whole."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _decode_array(entry: Any, buffer: bytes | memoryview) -> tuple[str, np.ndarray]:
    if not isinstance(entry, dict) or not {"name", "dtype", "shape"} <= entry.keys():
        raise WireError(f"field entry {_short(entry)} lacks name, dtype or shape")
    name, dtype, shape = entry["name"], entry["dtype"], entry["shape"]
    if not isinstance(name, str) or not name:
        raise WireError(f"field name {_short(name)} is not a string")
    label = name if len(name) <= 60 else name[:59] + "…"
    if not isinstance(dtype, str) or dtype not in WIRE_DTYPES:
        raise WireError(f"field {label}: dtype {_short(dtype)} is not one of the wire dtypes")
    if not isinstance(shape, list) or not all(_is_int(k) and k >= 0 for k in shape):
        raise WireError(f"field {label}: shape {_short(shape)} is not a list of "
                        "non-negative ints")
    expected = math.prod(shape) * np.dtype(dtype).itemsize
    if len(buffer) != expected:
        raise WireError(
            f"field {label}: buffer has {len(buffer)} bytes, {dtype}{tuple(shape)} "
            f"needs {expected}"
        )
    return name, np.frombuffer(buffer, dtype=dtype).reshape(shape)


def ok(**payload: Any) -> dict[str, Any]:
    """A successful command reply."""
    return {"ok": True, **payload}


def error(message: str) -> dict[str, Any]:
    """A failed command reply; the twin changed nothing."""
    return {"ok": False, "error": message}

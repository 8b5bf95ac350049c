"""The ``replay`` stream message: what a replay of a recording says about itself.

A replay (``odc replay``, twin.recording.replay) republishes a recording's frames as they
were received live, byte for byte, and adds one message of its own on the topic ``replay``,
once a second and after every seek, pause, resume, warp change, step and end: the
recording's name and span, the replay's position in it, its warp and whether it is paused.
A live twin never sends it, so a viewer that has heard one knows it shows the past
(docs/protocol.md, "``replay``").

Viewers import this module with the codec; it depends on nothing else of the twin.
"""

from __future__ import annotations

import math
from typing import Any

from twin.protocol.codec import PROTOCOL_VERSION, Message, WireError, pack, unpack

TOPIC_REPLAY = b"replay"
MAX_NAME_CHARS = 200
"""Longest ``name`` a viewer takes (a scenario or file name; longer is a bad message)."""


def encode_replay(header: dict[str, Any]) -> list[bytes]:
    """The frames of a ``replay`` message: ``[b"replay", msgpack header]``."""
    return [TOPIC_REPLAY, pack(header)]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and \
        math.isfinite(value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:59] + "…"


def check_replay(header: dict[str, Any]) -> None:
    """Raise `WireError` unless a ``replay`` header has its documented keys and types.

    ``name`` a string; ``span_utc`` two finite numbers, start not after end;
    ``position_utc`` a finite number; ``warp`` a positive number; ``paused`` a bool;
    ``ended`` a bool and ``seeks`` a count where present.
    """
    name = header.get("name")
    if not isinstance(name, str) or len(name) > MAX_NAME_CHARS:
        raise WireError(f"replay 'name' is {_short(name)}, not a string of at most "
                        f"{MAX_NAME_CHARS} characters")
    span = header.get("span_utc")
    if not (isinstance(span, list) and len(span) == 2 and all(_is_number(t) for t in span)
            and span[0] <= span[1]):
        raise WireError(f"replay 'span_utc' is {_short(span)}, not [start, end] in POSIX s")
    for key in ("position_utc", "warp"):
        if not _is_number(header.get(key)):
            raise WireError(f"replay {key!r} is {_short(header.get(key))}, not a finite number")
    if header["warp"] <= 0:
        raise WireError(f"replay 'warp' is {_short(header['warp'])}, not positive")
    if not isinstance(header.get("paused"), bool):
        raise WireError(f"replay 'paused' is {_short(header.get('paused'))}, not a bool")
    if "ended" in header and not isinstance(header["ended"], bool):
        raise WireError(f"replay 'ended' is {_short(header['ended'])}, not a bool")
    if "seeks" in header and not (_is_int(header["seeks"]) and header["seeks"] >= 0):
        raise WireError(f"replay 'seeks' is {_short(header['seeks'])}, not a count")


def decode_replay(frames: list) -> Message:
    """Decode and check a ``replay`` message (its framing as every header's, then its keys).

    `twin.protocol.codec.decode` knows only the live twin's topics; this takes the one a
    replay adds, with the same framing rules (``v``, ``seq``, ``t_utc``, ``run_id``).

    Raises:
        WireError: Naming what is wrong; never another exception, whatever the bytes.
    """
    try:
        return _decode(frames)
    except WireError:
        raise
    except Exception as exc:  # a case the checks missed: still the documented error
        raise WireError(f"malformed replay message ({type(exc).__name__}: {exc})") from exc


def _decode(frames: list) -> Message:
    if len(frames) != 2:
        raise WireError(f"a replay message is [topic, header], got {len(frames)} frame(s)")
    parts = [f.buffer if hasattr(f, "buffer") else f for f in frames]
    if bytes(parts[0]) != TOPIC_REPLAY:
        raise WireError(f"topic {bytes(parts[0])[:32]!r} is not 'replay'")
    header = unpack(parts[1])
    if not isinstance(header, dict):
        raise WireError("replay header is not a msgpack map")
    for key in ("v", "seq", "t_utc"):
        if key not in header:
            raise WireError(f"replay header lacks {key!r}")
    if not _is_int(header["v"]) or header["v"] != PROTOCOL_VERSION:
        raise WireError(f"protocol version {_short(header['v'])}, this client reads "
                        f"{PROTOCOL_VERSION}")
    if not _is_int(header["seq"]) or header["seq"] < 0:
        raise WireError(f"seq is {_short(header['seq'])}, not a non-negative int")
    if not _is_number(header["t_utc"]):
        raise WireError(f"t_utc is {_short(header['t_utc'])}, not a finite number")
    if "run_id" in header and not _is_int(header["run_id"]):
        raise WireError(f"run_id is {_short(header['run_id'])}, not an int")
    check_replay(header)
    return Message("replay", header)

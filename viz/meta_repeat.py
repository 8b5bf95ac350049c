"""A ``meta`` the twin repeats, taken without decoding its body again.

A twin republishes ``meta`` every few seconds (late viewers need it). At a million nodes
its body is about 27 MB of msgpack (ids, names, groups), and decoding it costs a viewer
about 170 ms of CPU each time, then as much again to compare and index it: a viewer
beside a busy twin has a fraction of a core, and this was a fifth of it. The body after
the framing keys (``v``, ``seq``, ``t_utc``, ``run_id``, first in the map) is the same
bytes while the meta is the same, so a repeat is recognised by comparing those bytes
(milliseconds); its framing is decoded and checked as any message's, and the earlier
decoded header is kept, its framing values updated in place. Anything else (other
bytes, another run, framing not first) is decoded in full, as before.
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

from twin.protocol.codec import Message, decode, pack

FRAMING_KEYS = ("v", "seq", "t_utc", "run_id")
FRAMING_BYTES = 4096


def _frame_bytes(frame: Any) -> memoryview:
    return memoryview(frame.buffer if hasattr(frame, "buffer") else frame)


def _same_bytes(a: memoryview, b: bytes) -> bool:
    """Byte for byte equal (numpy compares 27 MB in milliseconds; a memoryview compares
    item by item, ten times slower)."""
    return len(a) == len(b) and bool(np.array_equal(np.frombuffer(a, np.uint8),
                                                    np.frombuffer(b, np.uint8)))


def split_framing(body: memoryview) -> tuple[dict[str, Any], memoryview] | None:
    """The framing keys at the head of a msgpack map and the bytes of the rest (None: not
    a map that starts with its framing keys)."""
    try:
        # The framing is at the head: only that is read (a longer one is not a repeat).
        unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
        unpacker.feed(body[:FRAMING_BYTES])
        entries = unpacker.read_map_header()
        framing: dict[str, Any] = {}
        for _ in range(min(entries, len(FRAMING_KEYS))):
            start = unpacker.tell()
            key = unpacker.unpack()
            if key not in FRAMING_KEYS:
                return (framing, body[start:]) if framing.keys() >= {"v", "seq",
                                                                      "t_utc"} else None
            framing[key] = unpacker.unpack()
        return framing, body[unpacker.tell():]
    except Exception:  # garbage: the full decode says what is wrong
        return None


class MetaRepeats:
    """The last decoded ``meta`` and its body's bytes past the framing."""

    def __init__(self) -> None:
        self.message: Message | None = None
        self.rest = b""

    def forget(self) -> None:
        self.message, self.rest = None, b""

    def take(self, frames: list) -> Message | None:
        """The last meta again, its framing from ``frames``, when ``frames`` is a repeat
        of it; else None (decode it in full, then ``remember``).

        Raises:
            WireError: the repeat's framing is invalid (as ``decode`` says).
        """
        last = self.message
        if last is None or len(frames) != 2 or bytes(_frame_bytes(frames[0])) != b"meta":
            return None
        body = _frame_bytes(frames[1])
        if len(body) < len(self.rest):
            return None
        split = split_framing(body)
        if split is None or split[0].get("run_id") != last.header.get("run_id") \
                or not _same_bytes(split[1], self.rest):
            return None
        framing = decode([b"meta", pack(split[0])]).header  # checked as any framing
        last.header.update(framing)
        return last

    def remember(self, message: Message, frames: list) -> None:
        """``message`` is the newest meta, decoded in full from ``frames``."""
        split = split_framing(_frame_bytes(frames[1])) if len(frames) == 2 else None
        if split is None:
            self.forget()
            return
        self.message, self.rest = message, bytes(split[1])

"""How the twin's stream is kept in an MCAP file: one channel per topic, the wire's own bytes.

A recording holds the stream exactly as subscribers received it, so a replay republishes
the same frames, byte for byte (docs/protocol.md is their only schema):

- one channel per stream topic (``CHANNELS``): ``/odc/state``, ``/odc/event``, ``/odc/meta``,
  ``/odc/hb``, ``/odc/alarms``, ``/odc/aggregate`` (not the clients' selective streams,
  ``sub/...``); message encoding ``odc-wire``, no MCAP schema (the wire
  documents itself through ``meta``);
- a message's data is the msgpack array of its ZeroMQ frames, each a ``bin`` (``pack_frames``;
  a ``state`` message is its topic, header and one frame per field array);
- ``log_time`` is the message's simulation time (its header's ``t_utc``) in integer
  nanoseconds, so the MCAP chunk index answers "the frame at simulation time T" without a
  scan; ``publish_time`` is the wall time it was received, ns;
- a metadata record ``odc.recording`` names the run: scenario, ``run_id``, twin version,
  protocol version, the recorder (``odc run --record`` or ``odc record``) and ``every``
  (every Nth state kept);
- the file is chunked (a chunk is closed at least once a second, so a killed recorder
  loses at most the last second), compressed (zstd by default, or lz4) and indexed.

Exports for other tools (Foxglove, Lichtblick) are separate files (twin.recording.export).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import msgpack

PROFILE = "odc"
"""The MCAP header's profile: recordings of this twin's stream."""
MESSAGE_ENCODING = "odc-wire"
CHANNELS: dict[bytes, str] = {
    b"state": "/odc/state",
    b"event": "/odc/event",
    b"meta": "/odc/meta",
    b"hb": "/odc/hb",
    b"alarms": "/odc/alarms",
    b"aggregate": "/odc/aggregate",
}
"""Stream topic -> MCAP channel topic."""
TOPICS: dict[str, bytes] = {channel: topic for topic, channel in CHANNELS.items()}
METADATA_NAME = "odc.recording"
MAX_FRAMES = 256
"""More frames than any stream message has (a state has one per field, ~60)."""


class RecordingError(ValueError):
    """A recording is not one of this twin's, is damaged, or asks for what it lacks; the
    message names the file and what is wrong."""


def pack_frames(frames: list[bytes | memoryview]) -> bytes:
    """A message's frames as MCAP message data."""
    return msgpack.packb([bytes(f) for f in frames], use_bin_type=True)


def unpack_frames(data: bytes) -> list[bytes]:
    """The frames of MCAP message data written by ``pack_frames``.

    Raises:
        RecordingError: The data is not a msgpack array of at most ``MAX_FRAMES`` bins.
    """
    try:
        frames = msgpack.unpackb(data, raw=True, max_array_len=MAX_FRAMES)
    except Exception as exc:  # any malformed bytes: one documented error
        raise RecordingError(f"message data is not odc-wire frames ({exc})") from exc
    if not isinstance(frames, list) or not all(isinstance(f, bytes) for f in frames):
        raise RecordingError("message data is not a list of byte frames (odc-wire)")
    return frames


def log_time_ns(t_utc: Any, fallback_ns: int) -> int:
    """The ``log_time`` of a message whose header says ``t_utc`` (POSIX s); ``fallback_ns``
    (the last one written) when it has none or a wrong one."""
    if isinstance(t_utc, int | float) and not isinstance(t_utc, bool) and math.isfinite(t_utc) \
            and 0 <= t_utc < 2**63 / 1e9:
        return round(t_utc * 1e9)
    return fallback_ns


# -- added with the recorder (twin.recording.writer); nothing above changes -------------------

METADATA_KEYS = ("scenario", "run_id", "twin_version", "protocol", "recorder", "every",
                 "compression", "file_index", "started_utc")
"""The keys of an ``odc.recording`` metadata record, all strings: the first six as named
above (``run_id`` in decimal, ``every`` the N of ``--every``); ``compression`` the chunks'
(``zstd`` or ``lz4``); ``file_index`` 1, 2, ... in a rotated set (``0`` for a single file);
``started_utc`` the wall time (ISO 8601) the recorder started this file. A file holds one
such record per twin run it saw (``odc record`` listening while the twin restarted), in
order, each written before that run's first message."""


def rotated_path(path: str | Path, index: int) -> Path:
    """The ``index``-th file (from 1) of a rotated recording of ``path``: ``run.mcap`` ->
    ``run-0001.mcap``, ``run-0002.mcap``, ... (a path without ``.mcap`` gets it added)."""
    path = Path(path)
    base = path.with_suffix("") if path.suffix == ".mcap" else path
    return base.with_name(f"{base.name}-{index:04d}.mcap")

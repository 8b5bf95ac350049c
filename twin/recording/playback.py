"""A recording opened for playback: checked once, then read by simulation time through its index.

`Recording` opens an MCAP file written as twin.recording.format describes and refuses, with
a `RecordingError` naming the file and what is wrong, anything a replay cannot serve: a
file that is not MCAP, one cut short (no footer or summary: ``odc record --recover``
rebuilds it), one of another profile or without the ``/odc/*`` channels, one without a
chunk index.

Every read goes through the summary's chunk index (``iter_messages`` with a start and an
end time), in windows of a few chunks, so finding the state nearest a time or the last
``meta`` before it reads a handful of chunks whatever the file's size, and playing from a
point reads on from there. Nothing here scans the file.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from mcap.exceptions import McapError
from mcap.reader import SeekingReader, make_reader

from twin.protocol.codec import WireError, unpack
from twin.recording.format import (
    CHANNELS,
    MESSAGE_ENCODING,
    METADATA_NAME,
    PROFILE,
    TOPICS,
    RecordingError,
    unpack_frames,
)

MCAP_MAGIC = b"\x89MCAP0\r\n"
WINDOW_CHUNKS = 8
"""Chunks' worth of simulation time read per query window (doubled while it finds nothing)."""
MIN_WINDOW_NS = 1_000_000


class Record(NamedTuple):
    """One recorded stream message."""

    topic: bytes
    """The stream topic (``b"state"``, ``b"meta"``, ...)."""
    log_time: int
    """Simulation time, ns (the header's ``t_utc``)."""
    publish_time: int
    """Wall time it was received, ns."""
    data: bytes
    """Its ZeroMQ frames, packed (twin.recording.format.pack_frames)."""

    def frames(self) -> list[bytes]:
        """The message's frames as they travelled.

        Raises:
            RecordingError: The data is not odc-wire frames.
        """
        return unpack_frames(self.data)

    def header(self) -> dict[str, Any]:
        """The message's msgpack header (frame 1), decoded; ``{}`` if it has none."""
        frames = self.frames()
        try:
            header = unpack(frames[1]) if len(frames) > 1 else {}
        except WireError:
            return {}
        return header if isinstance(header, dict) else {}


def _recover_hint(path: Path) -> str:
    return f"run `odc record --recover {path}` to rebuild its index"


class Recording:
    """An odc recording, checked and ready to be read by simulation time.

    Args:
        path: The MCAP file.

    Raises:
        RecordingError: The file cannot be read, is not MCAP, is cut short or has no
            summary (the message says to run ``odc record --recover``), is not an odc
            recording (another profile, no ``/odc/*`` channels), or holds no ``state``.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._file: io.BufferedReader = open(self.path, "rb")  # noqa: SIM115 (kept open)
        except OSError as exc:
            raise RecordingError(f"{self.path}: cannot open the recording "
                                 f"({exc.strerror or exc})") from None
        try:
            self._open()
        except RecordingError:
            self._file.close()
            raise
        except Exception as exc:  # anything the MCAP library raises on a damaged file
            self._file.close()
            raise RecordingError(f"{self.path}: unreadable MCAP ({type(exc).__name__}: "
                                 f"{exc}); {_recover_hint(self.path)}") from exc

    def _open(self) -> None:
        path, f = self.path, self._file
        head = f.read(len(MCAP_MAGIC))
        if head != MCAP_MAGIC:
            raise RecordingError(f"{path}: not an MCAP file (it does not begin with the MCAP "
                                 "magic); recordings are made by `odc record` or "
                                 "`odc run --record`")
        f.seek(-len(MCAP_MAGIC), io.SEEK_END)
        size = f.tell() + len(MCAP_MAGIC)
        if f.read() != MCAP_MAGIC or size < 2 * len(MCAP_MAGIC) + 1:
            raise RecordingError(f"{path}: cut short (no MCAP footer at its end: its "
                                 f"recorder was killed or its disk filled); "
                                 f"{_recover_hint(path)}")
        f.seek(0)
        reader = make_reader(f)
        assert isinstance(reader, SeekingReader)  # a file is seekable
        self._reader = reader
        header = reader.get_header()
        if header.profile != PROFILE:
            raise RecordingError(f"{path}: an MCAP file of profile {header.profile!r}, not an "
                                 f"odc recording (profile {PROFILE!r})")
        try:
            summary = reader.get_summary()
        except (McapError, ValueError, KeyError, EOFError) as exc:
            raise RecordingError(f"{path}: its summary is unreadable ({exc}); "
                                 f"{_recover_hint(path)}") from exc
        if summary is None:
            raise RecordingError(f"{path}: has no summary (the recording was not finished); "
                                 f"{_recover_hint(path)}")
        self.channels: dict[int, bytes] = {}
        for channel in summary.channels.values():
            if channel.topic not in TOPICS:
                continue
            if channel.message_encoding != MESSAGE_ENCODING:
                raise RecordingError(f"{path}: channel {channel.topic} has message encoding "
                                     f"{channel.message_encoding!r}, not {MESSAGE_ENCODING!r}")
            self.channels[channel.id] = TOPICS[channel.topic]
        if not self.channels:
            raise RecordingError(f"{path}: no odc channels ({', '.join(CHANNELS.values())}); "
                                 "not a recording of the twin's stream")
        self.topics = sorted(set(self.channels.values()))
        """Stream topics the recording has channels for."""
        chunks = sorted(summary.chunk_indexes, key=lambda c: c.message_start_time)
        if not chunks:
            raise RecordingError(f"{path}: has no chunk index (every read would scan the "
                                 f"file); {_recover_hint(path)}")
        self._chunk_starts = [c.message_start_time for c in chunks]
        stats = summary.statistics
        counts: dict[bytes, int] = dict.fromkeys(self.topics, 0)
        if stats is not None and stats.message_count:
            self.start_ns, self.end_ns = stats.message_start_time, stats.message_end_time
            for channel_id, count in stats.channel_message_counts.items():
                topic = self.channels.get(channel_id)
                if topic is not None:
                    counts[topic] += count
        else:  # no statistics record: the span from the chunk index, counts unknown
            self.start_ns = min(c.message_start_time for c in chunks)
            self.end_ns = max(c.message_end_time for c in chunks)
            counts = {}
        self.counts = counts
        """Messages per stream topic (empty when the file has no statistics record)."""
        if counts and not counts.get(b"state"):
            raise RecordingError(f"{path}: has no {CHANNELS[b'state']} messages: nothing to "
                                 "replay")
        # A query window: a few chunks' worth of simulation time (chunks are closed by wall
        # time, so their simulated length depends on the recorded warp).
        spread = (self._chunk_starts[-1] - self._chunk_starts[0]) / max(len(chunks) - 1, 1)
        self.window_ns = max(int(WINDOW_CHUNKS * max(spread, 1)), MIN_WINDOW_NS,
                             max(c.message_end_time - c.message_start_time for c in chunks))
        self.chunk_count = len(chunks)
        self.info: dict[str, str] = {}
        """The ``odc.recording`` metadata (twin.recording.format); empty if absent."""
        for metadata in reader.iter_metadata():
            if metadata.name == METADATA_NAME:
                self.info = dict(metadata.metadata)
                break
        if self.first_at_or_after(b"state", self.start_ns) is None:
            raise RecordingError(f"{path}: has no {CHANNELS[b'state']} messages: nothing to "
                                 "replay")

    # -- what it is -------------------------------------------------------------------

    @property
    def span_utc(self) -> tuple[float, float]:
        """First and last message's simulation time, POSIX s."""
        return self.start_ns / 1e9, self.end_ns / 1e9

    @property
    def run_id(self) -> int | None:
        """The recorded run's ``run_id`` from the metadata, if it says."""
        try:
            return int(self.info["run_id"])
        except (KeyError, ValueError):
            return None

    @functools.cached_property
    def name(self) -> str:
        """The recorded run's name: the metadata's ``name`` or ``scenario``, else the
        scenario named by its first ``meta``, else the file's stem."""
        for key in ("name", "scenario"):
            if self.info.get(key):
                return self.info[key]
        meta = self.first_at_or_after(b"meta", self.start_ns)
        scenario = meta.header().get("scenario") if meta is not None else None
        if isinstance(scenario, dict) and isinstance(scenario.get("name"), str):
            return scenario["name"]
        return self.path.stem

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading by time --------------------------------------------------------------

    def _query(self, topics: list[bytes], starting_at: int, ending_before: int,
               reverse: bool = False) -> Iterator[Record]:
        """Messages of ``topics`` in [starting_at, ending_before), by log time."""
        wanted = [CHANNELS[t] for t in topics if t in self.topics]
        if not wanted:
            return
        try:
            for _, channel, message in self._reader.iter_messages(
                    topics=wanted, starting_at=starting_at, ending_before=ending_before,
                    reverse=reverse):
                yield Record(self.channels[channel.id], message.log_time,
                             message.publish_time, message.data)
        except RecordingError:
            raise
        except Exception as exc:  # a damaged chunk: name where
            raise RecordingError(f"{self.path}: unreadable chunk near t_utc "
                                 f"{starting_at / 1e9:.3f} ({type(exc).__name__}: {exc})"
                                 ) from exc

    def first_at_or_after(self, topic: bytes, t_ns: int) -> Record | None:
        """The first ``topic`` message at or after simulation time ``t_ns``, or None."""
        lo, width = max(t_ns, self.start_ns), self.window_ns
        while lo <= self.end_ns:
            for record in self._query([topic], lo, lo + width):
                return record
            lo, width = lo + width, width * 2
        return None

    def last_at_or_before(self, topic: bytes, t_ns: int) -> Record | None:
        """The last ``topic`` message at or before simulation time ``t_ns``, or None."""
        hi, width = min(t_ns, self.end_ns) + 1, self.window_ns
        while hi > self.start_ns:
            lo = max(hi - width, self.start_ns)
            for record in self._query([topic], lo, hi, reverse=True):
                return record
            hi, width = lo, width * 2
        return None

    def nearest_state(self, t_ns: int) -> Record:
        """The ``state`` nearest simulation time ``t_ns`` (the earlier one on a tie)."""
        after = self.first_at_or_after(b"state", t_ns)
        before = self.last_at_or_before(b"state", t_ns - 1) if t_ns > self.start_ns else None
        if before is None or (after is not None and after.log_time - t_ns
                              < t_ns - before.log_time):
            if after is None:
                raise RecordingError(f"{self.path}: has no {CHANNELS[b'state']} messages")
            return after
        return before

    def messages(self, start_ns: int, after: Record | None = None) -> Iterator[Record]:
        """Every message from simulation time ``start_ns`` on, in simulation-time order
        (messages of the same time in the order they were received).

        Args:
            after: Skip the messages of its time up to and including it (a replay that
                published ``after`` on a seek goes on from there).
        """
        lo, skipping = max(start_ns, self.start_ns), after is not None
        width = self.window_ns
        while lo <= self.end_ns:
            hi = lo + width
            found = False
            for record in self._query(self.topics, lo, hi):
                found = True
                if skipping:
                    if record.log_time == after.log_time:
                        skipping = record[:3] != after[:3]
                        continue
                    skipping = False
                yield record
            # A window without messages (a gap in simulated time): the next one is wider,
            # so a long gap takes a few queries, not one per window.
            lo, width = hi, (self.window_ns if found else width * 2)

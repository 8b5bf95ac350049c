"""Reading a recording back: ``open_recording`` (the replay, export and history read through
it) and ``recover`` (``odc record --recover``) for a file cut short.

``open_recording(path)`` checks that the file is one of this twin's recordings (MCAP magic,
profile ``odc``) and returns a ``Recording``: its metadata records, its time range, and
``messages(topics, start_ns, end_ns)``, the recorded messages in the order they were
received, each with its frames exactly as they came off the wire. A whole file is read
through its index (only the chunks that hold the time range asked for are read). A file
without its summary, as a recorder killed outright leaves it, is read by a scan from the
start up to its last whole record (``Recording.indexed`` is False, ``truncated_at`` says
where the readable part ends); ``recover`` writes such a file out again whole and indexed.

Typical use (the replay republishes the frames as they are)::

    from twin.recording.reader import open_recording

    recording = open_recording("run.mcap")          # RecordingError if it is not one
    print(recording.info["scenario"], recording.start_ns, recording.end_ns)
    for message in recording.messages(["state", "event"], start_ns=t0, end_ns=t1):
        socket.send_multipart(message.frames)       # or message.decode() for arrays
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from mcap.exceptions import McapError
from mcap.opcode import Opcode
from mcap.reader import FOOTER_SIZE, SeekingReader
from mcap.records import Channel, Chunk, DataEnd, Header, Message, Metadata, Schema
from mcap.stream_reader import MAGIC_SIZE, StreamReader, breakup_chunk
from mcap.writer import CompressionType, Writer

from twin.protocol.codec import Message as WireMessage
from twin.protocol.codec import decode
from twin.recording.format import (
    CHANNELS,
    MESSAGE_ENCODING,
    METADATA_NAME,
    PROFILE,
    TOPICS,
    RecordingError,
    rotated_path,
    unpack_frames,
)

MCAP_MAGIC = b"\x89MCAP0\r\n"
# Errors a damaged or cut file can raise from the mcap library and its decompressors: each
# read of a record catches these and stops there, so a damaged file never gives a traceback.
_DAMAGE = (McapError, EOFError, struct.error, ValueError, KeyError, OSError, MemoryError,
           RuntimeError)
_RECORD_LIMIT = 1 << 31
"""Largest record a reader loads (2 GiB): a damaged length field must not ask for more."""


@dataclass(frozen=True, slots=True)
class RecordedMessage:
    """One recorded wire message.

    Attributes:
        topic: The stream topic, ``"state"``, ``"event"``, ``"meta"``, ``"hb"``, ``"alarms"``.
        log_time_ns: Its simulation time (the header's ``t_utc``), ns.
        publish_time_ns: The wall time the recorder received it, ns.
        sequence: Its ``seq`` (modulo 2**32).
        data: The MCAP message data (``odc-wire``); ``frames`` unpacks it.
    """

    topic: str
    log_time_ns: int
    publish_time_ns: int
    sequence: int
    data: bytes

    @property
    def frames(self) -> list[bytes]:
        """The message's ZeroMQ frames, byte for byte as received (``RecordingError`` if the
        data is not ``odc-wire``)."""
        return unpack_frames(self.data)

    def decode(self) -> WireMessage:
        """The message decoded as a client would (``twin.protocol.codec.decode``)."""
        return decode(self.frames)


@dataclass
class Recording:
    """A recording opened by ``open_recording``; reading it opens the file afresh each time,
    so several ``messages`` iterations may run side by side.

    Attributes:
        path: The file.
        library: Who wrote it (the MCAP header's library).
        metadata: Its ``odc.recording`` records, in file order: one per twin run.
        indexed: Whether its summary was read (False: cut short, read by a scan).
        truncated_at: Where the readable part of a cut file ends (bytes), else None.
        file_size: Its size, bytes.
        start_ns, end_ns: The first and last message's ``log_time`` (None: no messages).
        counts: Messages per stream topic.
        compression: The chunks' compression (``zstd``, ``lz4`` or ``""``).
    """

    path: Path
    library: str
    metadata: list[dict[str, str]]
    indexed: bool
    truncated_at: int | None
    file_size: int
    start_ns: int | None
    end_ns: int | None
    counts: dict[str, int] = field(default_factory=dict)
    compression: str = ""

    @property
    def info(self) -> dict[str, str]:
        """The first ``odc.recording`` metadata record (``{}`` if the file has none)."""
        return self.metadata[0] if self.metadata else {}

    def messages(self, topics: Iterable[str] | None = None, start_ns: int | None = None,
                 end_ns: int | None = None) -> Iterator[RecordedMessage]:
        """The recorded messages in the order received, optionally of some ``topics``
        (``"state"`` or ``"/odc/state"``) and with ``start_ns <= log_time < end_ns``.

        A cut file yields what it holds up to its last whole chunk, then stops.

        Raises:
            RecordingError: The file changed or became unreadable since it was opened.
        """
        channels = None if topics is None else {_channel_name(t) for t in topics}
        if self.indexed:
            yield from self._indexed_messages(channels, start_ns, end_ns)
        else:
            yield from self._scanned_messages(channels, start_ns, end_ns)

    def _indexed_messages(self, channels: set[str] | None, start_ns: int | None,
                          end_ns: int | None) -> Iterator[RecordedMessage]:
        with _open(self.path) as stream:
            reader = SeekingReader(stream, record_size_limit=_RECORD_LIMIT)
            iterator = reader.iter_messages(
                topics=sorted(channels) if channels is not None else None,
                starting_at=start_ns, ending_before=end_ns, log_time_order=False)
            while True:
                try:
                    _schema, channel, message = next(iterator)
                except StopIteration:
                    return
                except _DAMAGE as exc:
                    raise RecordingError(f"{self.path}: unreadable chunk ({exc}); try "
                                         "odc record --recover") from exc
                if channel.message_encoding == MESSAGE_ENCODING:
                    yield _recorded(channel, message)

    def _scanned_messages(self, channels: set[str] | None, start_ns: int | None,
                          end_ns: int | None) -> Iterator[RecordedMessage]:
        known: dict[int, Channel] = {}
        with _open(self.path) as stream:
            for record in _scan_records(stream):
                if isinstance(record, Channel):
                    known[record.id] = record
                    continue
                if not isinstance(record, Message):
                    continue
                channel = known.get(record.channel_id)
                if channel is None or channel.message_encoding != MESSAGE_ENCODING:
                    continue
                if channels is not None and channel.topic not in channels:
                    continue
                if (start_ns is not None and record.log_time < start_ns) or (
                        end_ns is not None and record.log_time >= end_ns):
                    continue
                yield _recorded(channel, record)

    def close(self) -> None:
        """Nothing to release (each reading opens and closes the file); kept for ``with``."""

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _channel_name(topic: str | bytes) -> str:
    """``"state"`` / ``b"state"`` / ``"/odc/state"`` -> ``"/odc/state"``."""
    if isinstance(topic, bytes):
        topic = topic.decode()
    return topic if topic.startswith("/") else CHANNELS.get(topic.encode(), f"/odc/{topic}")


def _topic_name(channel: str) -> str:
    topic = TOPICS.get(channel)
    return topic.decode() if topic is not None else channel.removeprefix("/odc/")


def _recorded(channel: Channel, message: Message) -> RecordedMessage:
    return RecordedMessage(_topic_name(channel.topic), message.log_time, message.publish_time,
                           message.sequence, bytes(message.data))


def _open(path: Path) -> BinaryIO:
    try:
        return open(path, "rb")  # the callers close it (``with``)
    except FileNotFoundError:
        raise RecordingError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise RecordingError(f"{path} is a folder, not a recording") from None
    except OSError as exc:
        raise RecordingError(f"cannot read {path}: {exc.strerror or exc}") from None


def _scan_records(stream: BinaryIO) -> Iterator[object]:
    """The records of the data section from the start, chunks opened into theirs, stopping
    quietly at the first record that is cut or damaged (or at the end of the data section).
    """
    for record in _scan_chunks(StreamReader(stream, emit_chunks=True,
                                            record_size_limit=_RECORD_LIMIT), stream, []):
        if not isinstance(record, Chunk):
            yield record


def _check_start(path: Path, stream: BinaryIO) -> Header:
    """The header of an odc recording, or ``RecordingError`` saying what the file is."""
    head = stream.read(MAGIC_SIZE)
    if not head:
        raise RecordingError(f"{path} is empty: not an MCAP recording")
    if head != MCAP_MAGIC:
        raise RecordingError(f"{path} is not an MCAP file (it does not start with the MCAP "
                             "magic bytes): not a recording")
    stream.seek(0)
    try:
        header = next(StreamReader(stream, record_size_limit=_RECORD_LIMIT).records)
    except (StopIteration, *_DAMAGE):
        raise RecordingError(f"{path} is cut short before its MCAP header ends: "
                             "nothing to read") from None
    if not isinstance(header, Header):
        raise RecordingError(f"{path}: the MCAP file does not start with a header record")
    if header.profile != PROFILE:
        raise RecordingError(f"{path} is an MCAP file of profile {header.profile!r}, not a "
                             f"recording of this twin (profile {PROFILE!r})")
    return header


def _has_footer(stream: BinaryIO, size: int) -> bool:
    if size < 2 * MAGIC_SIZE + FOOTER_SIZE:
        return False
    stream.seek(size - FOOTER_SIZE - MAGIC_SIZE)
    tail = stream.read(FOOTER_SIZE + MAGIC_SIZE)
    return tail[0] == Opcode.FOOTER and tail[-MAGIC_SIZE:] == MCAP_MAGIC


def open_recording(path: str | Path) -> Recording:
    """Open one of this twin's recordings for reading (see the module's docstring).

    A file without a usable summary (cut short) is opened all the same, by a scan of its
    records: ``indexed`` is False and ``truncated_at`` says where its readable part ends.

    Raises:
        RecordingError: No such file, not an MCAP file, an MCAP file of another profile,
            or one cut before its header ends; the message names the file and what is wrong.
    """
    path = Path(path)
    with _open(path) as stream:
        size = path.stat().st_size
        header = _check_start(path, stream)
        if _has_footer(stream, size):
            stream.seek(0)
            try:
                recording = _from_summary(path, header, stream, size)
            except _DAMAGE:
                recording = None  # a damaged summary: read the data section instead
            if recording is not None:
                return recording
        stream.seek(0)
        return _from_scan(path, header, stream, size)


def _from_summary(path: Path, header: Header, stream: BinaryIO, size: int
                  ) -> Recording | None:
    reader = SeekingReader(stream, record_size_limit=_RECORD_LIMIT)
    summary = reader.get_summary()
    if summary is None or summary.statistics is None:
        return None
    metadata = [dict(m.metadata) for m in reader.iter_metadata() if m.name == METADATA_NAME]
    stats = summary.statistics
    counts: dict[str, int] = {}
    for channel_id, n in stats.channel_message_counts.items():
        channel = summary.channels.get(channel_id)
        if channel is not None and channel.message_encoding == MESSAGE_ENCODING:
            counts[_topic_name(channel.topic)] = counts.get(_topic_name(channel.topic), 0) + n
    compression = summary.chunk_indexes[0].compression if summary.chunk_indexes else ""
    empty = stats.message_count == 0
    return Recording(path, header.library, metadata, True, None, size,
                     None if empty else stats.message_start_time,
                     None if empty else stats.message_end_time, counts, compression)


def _from_scan(path: Path, header: Header, stream: BinaryIO, size: int) -> Recording:
    """A recording without its summary: metadata and times from a pass over the records
    (chunks are decompressed to count their messages, so this reads the file once)."""
    metadata: list[dict[str, str]] = []
    ends: list[int] = []
    counts: dict[str, int] = {}
    channels: dict[int, Channel] = {}
    start = end = None
    compression = ""
    reader = StreamReader(stream, emit_chunks=True, record_size_limit=_RECORD_LIMIT)
    for record in _scan_chunks(reader, stream, ends):
        if isinstance(record, Metadata) and record.name == METADATA_NAME:
            metadata.append(dict(record.metadata))
        elif isinstance(record, Chunk):
            compression = compression or record.compression
        elif isinstance(record, Channel):
            channels[record.id] = record
        elif isinstance(record, Message):
            channel = channels.get(record.channel_id)
            if channel is None or channel.message_encoding != MESSAGE_ENCODING:
                continue
            topic = _topic_name(channel.topic)
            counts[topic] = counts.get(topic, 0) + 1
            start = record.log_time if start is None else min(start, record.log_time)
            end = record.log_time if end is None else max(end, record.log_time)
    return Recording(path, header.library, metadata, False, ends[-1] if ends else MAGIC_SIZE,
                     size, start, end, counts, compression)


def _scan_chunks(reader: StreamReader, stream: BinaryIO, ends: list[int]) -> Iterator[object]:
    """Like ``_scan_records``, but yields each whole ``Chunk`` before its records."""
    records = reader.records
    while True:
        try:
            record = next(records)
        except (StopIteration, *_DAMAGE):
            return
        if isinstance(record, DataEnd):
            return
        if isinstance(record, Chunk):
            try:
                inner = breakup_chunk(record, validate_crc=True)
            except _DAMAGE:
                return
            ends.append(stream.tell())
            yield record
            yield from inner
            continue
        ends.append(stream.tell())
        yield record


@dataclass(frozen=True)
class Recovered:
    """What ``recover`` wrote."""

    source: Path
    output: Path
    messages: int
    metadata: int
    readable_bytes: int
    """Bytes of the source that held whole records."""
    source_bytes: int
    was_whole: bool
    """The source had its summary already (the output is a plain copy of its records)."""
    end_ns: int | None
    """The last recovered message's ``log_time``."""

    def line(self) -> str:
        lost = self.source_bytes - self.readable_bytes
        what = ("the file was whole already" if self.was_whole
                else f"the last {lost} bytes were cut short and are left out")
        return (f"recovered {self.messages} messages and {self.metadata} metadata records "
                f"from {self.source} into {self.output} ({what})")


def default_recovered_path(source: str | Path) -> Path:
    """``run.mcap`` -> ``run.recovered.mcap``."""
    source = Path(source)
    stem = source.name.removesuffix(".mcap")
    return source.with_name(f"{stem}.recovered.mcap")


def recover(source: str | Path, output: str | Path | None = None) -> Recovered:
    """Write what a recording holds, up to its last whole chunk, into a new whole and
    indexed file (``odc record --recover``); the source is left as it is.

    Raises:
        RecordingError: The source is not a recording of this twin (``open_recording``'s
            checks), the output exists or is the source, or the output cannot be written.
    """
    source = Path(source)
    output = Path(output) if output is not None else default_recovered_path(source)
    recording = open_recording(source)
    if output.exists() and output.resolve() == source.resolve():
        raise RecordingError(f"{output} is the file to recover: write the recovered "
                             "recording to another path")
    if output.exists():
        raise RecordingError(f"{output} exists: remove it or give another output path")
    compression = {"lz4": CompressionType.LZ4, "": CompressionType.NONE}.get(
        recording.compression, CompressionType.ZSTD)
    messages = metadata = 0
    end_ns = None
    try:
        with _open(source) as stream, open(output, "wb") as out:
            header = _check_start(source, stream)
            stream.seek(0)
            writer = Writer(out, compression=compression)
            writer.start(profile=header.profile, library=header.library)
            schemas: dict[int, int] = {}
            channels: dict[int, int] = {}
            for record in _scan_records(stream):
                if isinstance(record, Schema):
                    schemas[record.id] = writer.register_schema(record.name, record.encoding,
                                                                record.data)
                elif isinstance(record, Channel):
                    channels[record.id] = writer.register_channel(
                        record.topic, record.message_encoding,
                        schemas.get(record.schema_id, 0), dict(record.metadata))
                elif isinstance(record, Message) and record.channel_id in channels:
                    writer.add_message(channels[record.channel_id], record.log_time,
                                       record.data, record.publish_time, record.sequence)
                    messages += 1
                    end_ns = record.log_time
                elif isinstance(record, Metadata):
                    # Closing the open chunk first keeps the record where it was: before the
                    # messages of the run it names.
                    writer.flush()
                    writer.add_metadata(record.name, dict(record.metadata))
                    metadata += 1
            writer.finish()
    except OSError as exc:
        raise RecordingError(f"cannot write {output}: {exc.strerror or exc}") from None
    readable = recording.truncated_at if recording.truncated_at is not None else \
        recording.file_size
    return Recovered(source, output, messages, metadata, readable, recording.file_size,
                     recording.indexed, end_ns)


def rotated_files(path: str | Path) -> list[Path]:
    """The files of a recording of ``path``, oldest first: ``[path]`` if it exists, else the
    rotated ``PATH-0001.mcap``, ``PATH-0002.mcap``, ... that exist (the oldest may have been
    deleted to keep a budget, so the first need not be ``-0001``)."""
    path = Path(path)
    if path.is_file():
        return [path]
    base = rotated_path(path, 1)
    stem = base.name.removesuffix("-0001.mcap")
    found = []
    for candidate in base.parent.glob(f"{stem}-*.mcap"):
        index = candidate.name.removeprefix(f"{stem}-").removesuffix(".mcap")
        if index.isdigit() and candidate == rotated_path(path, int(index)):
            found.append((int(index), candidate))
    return [p for _, p in sorted(found)]


__all__ = ["RecordedMessage", "Recording", "Recovered", "default_recovered_path",
           "open_recording", "recover", "rotated_files"]

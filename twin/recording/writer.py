"""The ``Recorder`` behind ``odc record`` and ``odc run --record``: the stream into MCAP.

A ``Recorder`` takes wire messages (lists of ZeroMQ frames, as received) and keeps them as
twin.recording.format says: one channel per topic, each message's frames as ``odc-wire``,
``log_time`` its simulation time, an ``odc.recording`` metadata record per twin run. It

- keeps every Nth ``state`` (``every``), and every ``event``, ``meta``, ``hb`` and ``alarms``;
- starts a run's messages at its first ``meta`` (a ``state`` cannot be read without the
  ``meta`` of its run, which names the satellites; the twin sends one every few seconds);
- closes a chunk and flushes the file at least every ``flush_interval_s`` of wall time,
  so a recorder killed outright leaves everything it received up to then readable
  (``odc record --recover`` makes such a file whole again);
- rotates by size and/or wall time into ``PATH-0001.mcap``, ``PATH-0002.mcap``, ..., each
  complete and standing alone (it starts with the run's metadata and its latest ``meta``),
  and deletes the oldest of them to stay under a disk budget;
- counts what it never received (gaps in a topic's ``seq``) and what it left out;
- never raises for a write failure (disk full, a path it cannot write): it stops, keeps
  the reason in ``error``, and its caller reports it (``odc run`` raises the
  ``recording_stopped`` alarm and runs on).

The recorder holds no socket and no thread: twin.recording.live and odc.record_cli feed it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import msgpack
from mcap.writer import CompressionType, Writer

from twin import __version__
from twin.recording.format import (
    CHANNELS,
    MAX_FRAMES,
    MESSAGE_ENCODING,
    METADATA_NAME,
    PROFILE,
    RecordingError,
    log_time_ns,
    rotated_path,
)

log = logging.getLogger("odc.recording")

COMPRESSIONS = {"zstd": CompressionType.ZSTD, "lz4": CompressionType.LZ4}
"""``--compression`` choices and the chunk compression each names."""
CHUNK_SIZE = 4 << 20
"""Uncompressed bytes after which a chunk closes: about 3 starlink states (1.4 MB each), a
few hundred of the default scenario's. Big enough to compress well, small enough that
reading one instant decompresses little."""
FLUSH_INTERVAL_S = 0.5
"""Wall seconds after which an open chunk is closed and the file flushed, whatever its size:
half of format.py's "at least once a second", so a recorder that is a little late (a
burst to write) still keeps the promise."""
LIBRARY = f"odc-twin {__version__}"
"""The MCAP header's library string."""
MAX_SEQUENCE = 2**32
"""MCAP's per-message sequence is 32 bits; the wire's ``seq`` is kept modulo this."""


@dataclass
class RecorderStats:
    """What a recorder wrote, left out, and never received."""

    written: dict[str, int] = field(default_factory=dict)
    """Messages written, per stream topic (``state``, ``event``, ...)."""
    wire_bytes: int = 0
    """The written messages' frames, bytes, before compression."""
    thinned: int = 0
    """States left out by ``every``."""
    before_meta: int = 0
    """Messages left out because their run's first ``meta`` had not come yet."""
    dropped: dict[str, int] = field(default_factory=dict)
    """Messages lost before the recorder saw them (gaps in ``seq``), per topic."""
    unreadable: int = 0
    """Messages of an unknown topic or with a header that is not a msgpack map."""
    runs: int = 0
    """Twin runs seen (a new ``run_id`` is a restart)."""
    files_deleted: list[Path] = field(default_factory=list)
    """Rotated files deleted to stay under the budget, oldest first."""

    @property
    def messages(self) -> int:
        return sum(self.written.values())

    def line(self) -> str:
        """One line for people: what was kept, left out and lost."""
        kept = ", ".join(f"{n} {topic}" for topic, n in sorted(self.written.items())) or "none"
        dropped = sum(self.dropped.values())
        text = (f"{self.messages} messages ({kept}), {self.wire_bytes / 1e6:.1f} MB of frames; "
                f"{dropped} lost before the recorder (seq gaps)")
        if self.thinned:
            text += f", {self.thinned} states left out (--every)"
        if self.before_meta:
            text += f", {self.before_meta} before the run's first meta"
        if self.unreadable:
            text += f", {self.unreadable} unreadable"
        if self.files_deleted:
            text += f", {len(self.files_deleted)} old files deleted (--budget-mb)"
        return text


def check_options(every: int, compression: str, rotate_bytes: int | None,
                  rotate_s: float | None, budget_bytes: int | None) -> None:
    """Raise ``ValueError`` naming the option if the recorder's options do not go together."""
    if every < 1:
        raise ValueError(f"--every must be at least 1, got {every}")
    if compression not in COMPRESSIONS:
        raise ValueError(f"--compression must be one of {', '.join(COMPRESSIONS)}, "
                         f"got {compression!r}")
    if rotate_bytes is not None and rotate_bytes <= 0:
        raise ValueError(f"--rotate-mb must be positive, got {rotate_bytes / 1e6:g}")
    if rotate_s is not None and rotate_s <= 0:
        raise ValueError(f"--rotate-s must be positive, got {rotate_s:g}")
    if budget_bytes is not None:
        if rotate_bytes is None and rotate_s is None:
            raise ValueError("--budget-mb keeps a rotated recording under a size by deleting "
                             "its oldest files: give --rotate-mb and/or --rotate-s with it")
        if rotate_bytes is not None and budget_bytes < 2 * rotate_bytes:
            raise ValueError(f"--budget-mb {budget_bytes / 1e6:g} must be at least twice "
                             f"--rotate-mb {rotate_bytes / 1e6:g}: the file being written and "
                             "the one before it must fit")


def first_path(path: str | Path, rotating: bool) -> Path:
    """The first file a recording of ``path`` writes."""
    return rotated_path(path, 1) if rotating else Path(path)


def check_new_path(path: str | Path, rotating: bool) -> None:
    """Refuse to overwrite a recording: raise ``RecordingError`` if the first file exists.

    Devices and pipes (``/dev/full``, a FIFO) are not refused: only regular files hold a
    recording that could be lost.
    """
    target = first_path(path, rotating)
    if target.is_file():
        raise RecordingError(f"{target} exists: remove it or record to another path "
                             "(a recording is never overwritten)")
    if target.is_dir():
        raise RecordingError(f"{target} is a folder: give a file path (run.mcap)")


def _bin_header(size: int) -> bytes:
    if size < 1 << 8:
        return b"\xc4" + size.to_bytes(1, "big")
    if size < 1 << 16:
        return b"\xc5" + size.to_bytes(2, "big")
    return b"\xc6" + size.to_bytes(4, "big")


def pack_frames_fast(frames: Sequence[Any]) -> bytes:
    """``format.pack_frames``, byte for byte, built with one copy of the frames.

    msgpack's packer grows its buffer as it goes (a third of the recorder's time on a
    1.4 MB starlink state, holding the GIL the twin's thread wants); a msgpack array of
    bins is just headers and the bytes, so it is joined here from the frames' own buffers
    (bytes, or pyzmq Frames received with copy=False). Checked against ``pack_frames`` in
    tests/test_recording.py.
    """
    n = len(frames)
    if n > MAX_FRAMES:
        raise ValueError(f"{n} frames, more than a message has ({MAX_FRAMES})")
    parts: list[Any] = [bytes((0x90 | n,)) if n < 16 else b"\xdc" + n.to_bytes(2, "big")]
    for frame in frames:
        view = memoryview(frame)
        parts.append(_bin_header(view.nbytes))
        parts.append(view)
    return b"".join(parts)


def _frame_bytes(frame: Any) -> bytes:
    """A frame as bytes: pyzmq's ``Frame`` (received with copy=False), or bytes already."""
    if isinstance(frame, bytes):
        return frame
    return frame.bytes if hasattr(frame, "bytes") else bytes(frame)


class Recorder:
    """Writes wire messages to an MCAP recording (see the module's docstring).

    Args:
        path: The file to write, or with rotation the base of ``PATH-0001.mcap``, ...
        recorder: Who records, for the metadata (``odc record``, ``odc run --record``).
        every: Keep every Nth state (by ``seq``); all other topics are kept whole.
        compression: ``zstd`` or ``lz4``.
        rotate_bytes: Start a new file once the current one holds this many bytes.
        rotate_s: Start a new file after this many wall seconds.
        budget_bytes: Delete the oldest rotated files to keep the set under this size.
        chunk_size: Uncompressed bytes per chunk (``CHUNK_SIZE``).
        flush_interval_s: Close the open chunk and flush at least this often (wall s).
        clock: Monotonic seconds (tests may pass their own).

    Raises:
        ValueError: Options that do not go together (``check_options``).
        RecordingError: The first file exists (a recording is never overwritten).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        recorder: str,
        every: int = 1,
        compression: str = "zstd",
        rotate_bytes: int | None = None,
        rotate_s: float | None = None,
        budget_bytes: int | None = None,
        chunk_size: int = CHUNK_SIZE,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        check_options(every, compression, rotate_bytes, rotate_s, budget_bytes)
        self.path = Path(path)
        self.recorder = recorder
        self.every = every
        self.compression = compression
        self.rotate_bytes = rotate_bytes
        self.rotate_s = rotate_s
        self.budget_bytes = budget_bytes
        self.rotating = rotate_bytes is not None or rotate_s is not None
        self.chunk_size = chunk_size
        self.flush_interval_s = flush_interval_s
        self._clock = clock
        check_new_path(self.path, self.rotating)
        self.stats = RecorderStats()
        self.error: str | None = None
        """Why recording stopped (a write failed: ``cannot write PATH: reason``); None while
        it goes on, or after a plain ``close``."""
        self.files: list[Path] = []
        """Every file this recorder wrote and has not deleted, oldest first."""
        self._closed_sizes: list[int] = []  # sizes of files[:-1] (closed), for the budget
        self._file: BinaryIO | None = None
        self._writer: Writer | None = None
        self._channel_ids: dict[bytes, int] = {}
        self._file_index = 0
        self._target = self.path  # the file being opened or written, for error messages
        self._file_opened_at = 0.0
        self._last_flush = 0.0
        self._unflushed = 0
        self._last_log_time = 0
        # The run being recorded: its run_id, last seq per topic, the seq of the last state
        # kept, its metadata and latest meta message (each new file starts with them).
        self._run_id: int | None = None
        self._last_seq: dict[bytes, int] = {}
        self._last_kept_state: int | None = None
        self._run_metadata: dict[str, str] | None = None
        self._last_meta: tuple[list[bytes], int, int, int] | None = None  # frames, seq, log, pub
        self._open_next()

    # -- state ------------------------------------------------------------------------

    @property
    def current(self) -> Path | None:
        """The file being written, or None once stopped."""
        return self.files[-1] if self._writer is not None and self.files else None

    @property
    def recording(self) -> bool:
        """Whether messages are still written (not closed, no failure)."""
        return self._writer is not None

    # -- writing ----------------------------------------------------------------------

    def write(self, frames: Sequence[Any], received_ns: int | None = None) -> None:
        """Take one wire message (its frames, bytes or pyzmq Frames), received at
        ``received_ns`` (wall ns; now if None). Never raises for I/O: see ``error``."""
        if self._writer is None:
            return
        frames = list(frames)  # bytes or pyzmq Frames: packed from their own buffers
        topic = _frame_bytes(frames[0]) if frames else b""
        header = self._header(frames)
        if topic not in CHANNELS or header is None:
            self.stats.unreadable += 1
            return
        seq = header.get("seq")
        seq = seq if isinstance(seq, int) and not isinstance(seq, bool) and seq >= 0 else None
        self._follow_run(header.get("run_id"))
        if seq is not None:
            last = self._last_seq.get(topic)
            if last is not None and seq > last + 1:
                self.stats.dropped[topic.decode()] = (self.stats.dropped.get(topic.decode(), 0)
                                                      + seq - last - 1)
            self._last_seq[topic] = seq
        received_ns = time.time_ns() if received_ns is None else received_ns
        log_time = log_time_ns(header.get("t_utc"), self._last_log_time)
        if topic == b"meta":
            frames = [_frame_bytes(f) for f in frames]  # kept for the next rotated file
            self._last_meta = (frames, seq or 0, log_time, received_ns)
            if self._run_metadata is None:
                self._run_metadata = self._metadata_for(header)
                if not self._guard(self._write_metadata):
                    return
        elif self._run_metadata is None:
            self.stats.before_meta += 1
            return
        if topic == b"state" and seq is not None:
            if self._last_kept_state is not None and seq - self._last_kept_state < self.every:
                self.stats.thinned += 1
                return
            self._last_kept_state = seq
        if not self._guard(self._add, topic, frames, seq or 0, log_time, received_ns):
            return
        self._last_log_time = log_time
        self.tick()

    def tick(self) -> None:
        """Flush, rotate by time and keep the budget when due; call at least every
        ``flush_interval_s`` while recording, messages or not."""
        if self._writer is None:
            return
        now = self._clock()
        if self._unflushed and now - self._last_flush >= self.flush_interval_s:
            self._guard(self._flush)
        if self._writer is None:
            return
        assert self._file is not None
        if (self.rotate_bytes is not None and self._file.tell() >= self.rotate_bytes) or (
                self.rotate_s is not None and now - self._file_opened_at >= self.rotate_s):
            self._guard(self._rotate)

    def seconds_to_next_tick(self) -> float:
        """How long the caller may wait for a message before ``tick`` is due."""
        if self._writer is None:
            return self.flush_interval_s
        now = self._clock()
        due = [self._last_flush + self.flush_interval_s] if self._unflushed else []
        if self.rotate_s is not None:
            due.append(self._file_opened_at + self.rotate_s)
        return max(0.0, min(due, default=now + self.flush_interval_s) - now)

    def count_lost_tail(self, next_seq: dict[bytes, int]) -> None:
        """Count as dropped the messages of the current run published after the last one
        received (``next_seq``: the publisher's next ``seq`` per topic), which no later
        message shows as a gap. For a recorder in the twin's own process, at its end."""
        for topic, upcoming in next_seq.items():
            last = self._last_seq.get(topic)
            missing = upcoming - 1 - (last if last is not None else -1)
            if missing > 0 and self._run_id is not None:
                name = topic.decode()
                self.stats.dropped[name] = self.stats.dropped.get(name, 0) + missing

    def close(self) -> None:
        """Finish the file being written (its summary and index); idempotent. A failure
        here is kept in ``error`` like any other."""
        if self._writer is None:
            return
        self._guard(self._finish)
        self._writer = None

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- inside -----------------------------------------------------------------------

    @staticmethod
    def _header(frames: list[Any]) -> dict[str, Any] | None:
        if len(frames) < 2 or len(frames) > MAX_FRAMES:
            return None
        try:
            header = msgpack.unpackb(memoryview(frames[1]), raw=False, strict_map_key=False)
        except Exception:  # any malformed bytes: counted as unreadable, never raised
            return None
        return header if isinstance(header, dict) else None

    def _follow_run(self, run_id: Any) -> None:
        """A new ``run_id`` is another twin process: its seq starts afresh, and its
        messages wait for its own ``meta`` (and metadata record)."""
        if not isinstance(run_id, int) or run_id == self._run_id:
            return
        self._run_id = run_id
        self.stats.runs += 1
        self._last_seq.clear()
        self._last_kept_state = None
        self._run_metadata = None
        self._last_meta = None

    def _metadata_for(self, meta: dict[str, Any]) -> dict[str, str]:
        scenario = meta.get("scenario")
        name = scenario.get("name") if isinstance(scenario, dict) else None
        return {
            "scenario": str(name if name is not None else "?"),
            "run_id": str(meta.get("run_id", "?")),
            "twin_version": str(meta.get("twin_version", "?")),
            "protocol": str(meta.get("protocol", meta.get("v", "?"))),
            "recorder": self.recorder,
            "every": str(self.every),
            "compression": self.compression,
            "file_index": str(self._file_index),
            "started_utc": "",  # set per file in _write_metadata
        }

    def _guard(self, action: Callable[..., None], *args: Any) -> bool:
        """Run a write; on failure stop recording with the reason. True if it went well."""
        try:
            action(*args)
        except (OSError, ValueError) as exc:  # ValueError: a write to a closed file
            self._fail(exc)
            return False
        return True

    def _fail(self, exc: BaseException) -> None:
        where = self._target
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        self.error = f"cannot write {where}: {reason}"
        log.error("recording stopped: %s", self.error)
        self._writer = None
        if self._file is not None:
            with contextlib.suppress(OSError, ValueError):  # it failed already: just let go
                self._file.close()
            self._file = None

    def _open_next(self) -> None:
        self._file_index = self._file_index + 1 if self.rotating else 0
        target = rotated_path(self.path, self._file_index) if self.rotating else self.path
        self._target = target
        try:
            self._file = open(target, "wb")  # noqa: SIM115 - held open for the recording
        except OSError as exc:
            self._fail(exc)
            return
        self.files.append(target)
        writer = Writer(self._file, chunk_size=self.chunk_size,
                        compression=COMPRESSIONS[self.compression])
        self._writer = writer
        self._file_opened_at = self._last_flush = self._clock()
        if not self._guard(self._start_file, writer):
            return

    def _start_file(self, writer: Writer) -> None:
        writer.start(profile=PROFILE, library=LIBRARY)
        self._channel_ids = {topic: writer.register_channel(channel, MESSAGE_ENCODING, 0)
                             for topic, channel in CHANNELS.items()}
        if self._run_metadata is not None and self._last_meta is not None:
            # A new file of a rotated set stands alone: the run's metadata and its meta.
            self._write_metadata()
            frames, seq, log_time, received_ns = self._last_meta
            self._add(b"meta", frames, seq, log_time, received_ns)
        self._flush()

    def _write_metadata(self) -> None:
        assert self._writer is not None and self._run_metadata is not None
        if self._unflushed:
            # A metadata record goes straight to the file: the open chunk (the previous
            # run's last messages) is written first, so the record precedes only its run.
            self._flush()
        self._run_metadata["file_index"] = str(self._file_index)
        self._run_metadata["started_utc"] = datetime.now(UTC).isoformat(timespec="seconds")
        self._writer.add_metadata(METADATA_NAME, dict(self._run_metadata))

    def _add(self, topic: bytes, frames: list[Any], seq: int, log_time: int,
             received_ns: int) -> None:
        assert self._writer is not None
        data = pack_frames_fast(frames)
        self._writer.add_message(self._channel_ids[topic], log_time, data, received_ns,
                                 seq % MAX_SEQUENCE)
        name = topic.decode()
        self.stats.written[name] = self.stats.written.get(name, 0) + 1
        self.stats.wire_bytes += len(data)
        self._unflushed += 1

    def _flush(self) -> None:
        assert self._writer is not None
        self._writer.flush()  # closes the open chunk and flushes the file (mcap >= 1.6)
        self._last_flush = self._clock()
        self._unflushed = 0
        self._keep_budget()

    def _finish(self) -> None:
        assert self._writer is not None and self._file is not None
        self._writer.finish()
        self._file.close()
        self._file = None

    def _rotate(self) -> None:
        self._finish()
        self._closed_sizes.append(self.files[-1].stat().st_size)
        self._open_next()
        self._keep_budget()

    def _keep_budget(self) -> None:
        """Delete the oldest closed files while the set is over budget."""
        if self.budget_bytes is None or self._file is None:
            return
        total = sum(self._closed_sizes) + self._file.tell()
        while total > self.budget_bytes and self._closed_sizes:
            oldest = self.files.pop(0)
            total -= self._closed_sizes.pop(0)
            try:
                oldest.unlink()
            except FileNotFoundError:
                pass  # someone removed it already: the budget holds all the same
            except OSError as exc:
                raise OSError(exc.errno, f"cannot delete {oldest} to stay under "
                              f"--budget-mb: {exc.strerror}") from exc
            self.stats.files_deleted.append(oldest)
            log.info("deleted %s to stay under the recording budget", oldest)

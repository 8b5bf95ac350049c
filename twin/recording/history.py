"""``odc history``: one field's values over time, out of a recording, as CSV or Parquet.

The recording's chunk index finds the states of the time range asked for (only the chunks
that hold them are read and decompressed), so an hour out of a day costs an hour's read.
A column per value: a per-node field gives one column per chosen node (``NAME``, or
``NAME[j]`` for a vector's components, ``STATION/NAME`` for a station-by-node field); a
fleet total gives one column. Each row starts with the state's time (``time_utc`` ISO 8601,
``t_utc`` POSIX seconds) and ``step``. Values are written in full precision (a float32 as
the exact decimal of its float64 widening); NaN stays ``nan``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from twin.protocol.codec import WireError
from twin.recording.format import RecordingError
from twin.recording.reader import Recording, open_recording
from twin.recording.select import field_entry, first_meta, resolve_sats

FORMATS = (".csv", ".parquet")


@dataclass(frozen=True)
class HistoryResult:
    """What ``history`` wrote."""

    output: Path
    rows: int
    columns: int
    indexed: bool
    """Whether the recording's index was used (False: a cut file, read by a scan)."""

    def line(self) -> str:
        return f"wrote {self.rows} rows of {self.columns} columns to {self.output}"


def parse_time(text: str, recording: Recording, flag: str) -> int:
    """``--from``/``--to``: ISO 8601 (UTC unless it says otherwise) or ``+SECONDS`` after the
    recording's first message; integer ns.

    Raises:
        RecordingError: Neither form (the message shows both).
    """
    text = text.strip()
    if text.startswith("+"):
        try:
            offset = float(text[1:])
        except ValueError:
            offset = math.nan
        if not math.isfinite(offset) or offset < 0:
            raise RecordingError(f"{flag} {text!r}: write +SECONDS (after the recording's "
                                 "start) or an ISO 8601 time, 2026-03-20T12:30:00Z")
        return (recording.start_ns or 0) + round(offset * 1e9)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise RecordingError(f"{flag} {text!r} is not a time: write an ISO 8601 time "
                             "(2026-03-20T12:30:00Z) or +SECONDS after the recording's "
                             "start") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return round(when.timestamp() * 1e9)


def _columns(entry: dict[str, Any], meta: dict[str, Any], sats: list[int] | None
             ) -> tuple[list[str], Any]:
    """Column names and a function picking their values out of the field's array."""
    names = [str(n) for n in (meta.get("sats") or {}).get("names", [])]
    stations = [str(s.get("name", f"station{k}")) for k, s in
                enumerate(meta.get("stations") or [])]
    n_sats = len(names)
    shape = [int(k) for k in entry.get("shape", [])]
    chosen = sats if sats is not None else list(range(n_sats))
    if shape and shape[0] == n_sats:  # per node: (N,) or (N, k)
        width = math.prod(shape[1:])
        columns = [names[s] if width == 1 else f"{names[s]}[{j}]"
                   for s in chosen for j in range(width)]
        return columns, lambda a: a[chosen].reshape(-1)
    if len(shape) == 2 and shape[1] == n_sats and shape[0] == len(stations):
        columns = [f"{station}/{names[s]}" for station in stations for s in chosen]
        return columns, lambda a: a[:, chosen].reshape(-1)
    if sats is not None:
        raise RecordingError(f"field {entry.get('name')!r} has shape {shape}: it has no "
                             "node axis, so --sat does not apply")
    return [f"{entry.get('name')}[{j}]" for j in range(math.prod(shape))], \
        lambda a: a.reshape(-1)


def _rows(recording: Recording, field: str, total: bool, pick: Any, start_ns: int | None,
          end_ns: int | None) -> Iterator[list[Any]]:
    for message in recording.messages(["state"], start_ns, end_ns):
        try:
            decoded = message.decode()
        except (WireError, RecordingError):
            continue  # a damaged state is left out, as a client would drop it
        header = decoded.header
        t_utc = float(header["t_utc"])
        when = datetime.fromtimestamp(t_utc, UTC).isoformat(timespec="milliseconds")
        row: list[Any] = [when.replace("+00:00", "Z"), t_utc, header.get("step")]
        if total:
            value = (header.get("fleet") or {}).get(field)
            row.append(value)
        else:
            array = decoded.arrays.get(field)
            if array is None:
                continue  # a state of another run without this field
            row.extend(pick(array).tolist())
        yield row


def _text(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, bool | np.bool_):
        return "1" if value else "0"
    return "" if value is None else str(value)


def history(source: str | Path, field: str, output: str | Path,
            sats: Iterable[str] | None = None, start: str | None = None,
            end: str | None = None) -> HistoryResult:
    """Write ``field``'s values over ``[start, end)`` to ``output`` (``.csv``/``.parquet``).

    Raises:
        RecordingError: The source is not a usable recording, the field or a satellite is
            not in it, a time is malformed, or the output cannot be written (Parquet needs
            pyarrow).
    """
    source, output = Path(source), Path(output)
    suffix = output.suffix.lower()
    if suffix not in FORMATS:
        raise RecordingError(f"--out {output}: write .csv or .parquet")
    if suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401 - only to know it is there
        except ImportError:
            raise RecordingError("--out .parquet needs pyarrow, which is not installed "
                                 "(pip install pyarrow); write a .csv instead") from None
    recording = open_recording(source)
    meta = first_meta(recording)
    where = str(source)
    totals = meta.get("totals") or {}
    total = field in totals and field not in {f.get("name") for f in meta.get("fields", [])}
    chosen = resolve_sats(meta, sats, where) if sats is not None else None
    if total:
        if chosen is not None:
            raise RecordingError(f"{field!r} is a fleet total: it has no value per node, so "
                                 "--sat does not apply")
        columns, pick = [field], None
    else:
        columns, pick = _columns(field_entry(meta, field, where), meta, chosen)
    start_ns = parse_time(start, recording, "--from") if start is not None else None
    end_ns = parse_time(end, recording, "--to") if end is not None else None
    if start_ns is not None and end_ns is not None and end_ns <= start_ns:
        raise RecordingError(f"--to {end} is not after --from {start}")
    header = ["time_utc", "t_utc", "step", *columns]
    rows = _rows(recording, field, total, pick, start_ns, end_ns)
    try:
        if suffix == ".csv":
            count = _write_csv(output, header, rows)
        else:
            count = _write_parquet(output, header, rows)
    except OSError as exc:
        raise RecordingError(f"cannot write {output}: {exc.strerror or exc}") from None
    return HistoryResult(output, count, len(header), recording.indexed)


def _write_csv(output: Path, header: list[str], rows: Iterable[list[Any]]) -> int:
    count = 0
    with open(output, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(header)
        for row in rows:
            writer.writerow([_text(v) for v in row])
            count += 1
    return count


def _write_parquet(output: Path, header: list[str], rows: Iterable[list[Any]]
                   ) -> int:  # pragma: no cover - pyarrow is not a dependency
    import pyarrow as pa
    import pyarrow.parquet as pq

    # Opened first, so an unwritable path fails before the recording is read.
    with open(output, "wb") as stream:
        table = list(zip(*rows, strict=True)) or [() for _ in header]
        columns = {name: pa.array(list(values)) for name, values in zip(header, table,
                                                                          strict=True)}
        pq.write_table(pa.table(columns), stream)
        return len(table[0])

"""A node's trends read from a recording, for the detail screen (`h`).

``read_trend`` reads only the state channel of a recording (twin.recording.reader), picks at
most ``limit`` states spread evenly over the whole file (the first and last always) and
decodes only those, so a big file stays quick. The node is found by its name in the
recording's ``meta`` (the recording may be of another fleet), else by its index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from twin.recording.reader import open_recording


class RecordedTrendError(ValueError):
    """What keeps a node's trend from being read from a recording, said in one line."""


@dataclass
class RecordedTrend:
    """Samples of a node's trend fields from a recording, oldest first, SI."""

    file_name: str
    node: str
    t_utc: np.ndarray
    series: dict[str, np.ndarray]

    @property
    def start_utc(self) -> float:
        return float(self.t_utc[0])

    @property
    def end_utc(self) -> float:
        return float(self.t_utc[-1])


def _node_index(recording, file_name: str, name: str, sat: int) -> int:
    """The node's index in the recording: by name from its first ``meta``, else ``sat``."""
    for message in recording.messages(["meta"]):
        names = (message.decode().header.get("sats") or {}).get("names") or []
        names = [str(x) for x in names]
        if name in names:
            return names.index(name)
        if names:
            raise RecordedTrendError(f"node {name} is not in {file_name}")
        break
    return sat


def read_trend(path: str | Path, fields: Sequence[str], name: str, sat: int,
               limit: int) -> RecordedTrend:
    """Node ``name`` (index ``sat`` in the live fleet)'s ``fields`` over all of ``path``.

    Raises:
        RecordedTrendError: no such file, not a recording, no states, the node or none of
            the fields in it.
    """
    path = Path(path).expanduser()
    file_name = path.name or str(path)
    try:
        recording = open_recording(path)
    except ValueError as exc:  # RecordingError: names the file and what is wrong
        raise RecordedTrendError(str(exc)) from None
    total = recording.counts.get("state", 0)
    if not recording.indexed:  # a cut file's counts come from the scan: count states alone
        total = sum(1 for _ in recording.messages(["state"]))
    if not total:
        raise RecordedTrendError(f"{file_name} holds no states")
    index = _node_index(recording, file_name, name, sat)
    picked = set(np.unique(np.linspace(0, total - 1, max(min(limit, total), 1)).round()
                           .astype(int)).tolist())
    times: list[float] = []
    values: dict[str, list[float]] = {f: [] for f in fields}
    seen: set[str] = set()
    for i, message in enumerate(recording.messages(["state"])):
        if i not in picked:
            continue
        state = message.decode()
        times.append(float(state.header.get("t_utc", message.log_time_ns / 1e9)))
        for field in fields:
            array = state.arrays.get(field)
            if array is not None and array.ndim == 1 and index < array.shape[0]:
                values[field].append(float(array[index]))
                seen.add(field)
            else:
                values[field].append(np.nan)
        arrays = [a for a in state.arrays.values() if a.ndim >= 1]
        if arrays and all(index >= a.shape[0] for a in arrays):
            raise RecordedTrendError(f"node {name} (index {index}) is not in {file_name}")
    if not times:
        raise RecordedTrendError(f"{file_name} holds no readable states")
    if not seen:
        raise RecordedTrendError(f"none of {', '.join(fields) or 'the trend fields'} "
                                 f"of {name} is in {file_name}")
    return RecordedTrend(file_name, name, np.array(times),
                         {f: np.array(v, np.float32) for f, v in values.items()})

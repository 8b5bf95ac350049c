"""``odc export foxglove``: a recording rewritten as JSON channels Foxglove and Lichtblick
draw with their own panels (plots, log, 3D).

The recording itself keeps the wire's bytes, which those tools cannot read; the export is
a separate MCAP file (profile empty, as theirs) whose every channel has a JSON Schema
(schema encoding ``jsonschema``, message encoding ``json``):

- ``/fleet``: the ``state`` header's fleet totals, one number per key (plottable:
  ``/fleet.n_in_eclipse``);
- ``/nodes/<field>``: one per chosen per-node field, ``{"timestamp", "unit", "values":
  {sat: value}}``; satellite names are made plain identifiers (``mid-53-01-01`` ->
  ``mid_53_01_01``) so a plot's message path needs no quoting
  (``/nodes/temp_compute_k.values.mid_53_01_01``);
- ``/events``: the twin's events as ``foxglove.Log`` (info 2, warning 3, alarm 4);
- ``/alarms``: the alarm table (``odc.AlarmTable``) each time it changed: counts, and each
  alarm's kind, node, parameter, severity, state and message;
- ``/scene``: ``foxglove.SceneUpdate`` in frame ``earth`` (ITRS, Earth-fixed, in units of
  1000 km so the default camera sees the whole shell): the Earth, and a sphere per node
  coloured by sunlight (yellow in sun, blue in shadow);
- ``/tf``: ``foxglove.FrameTransform`` from ``gcrs`` (inertial) to ``earth``, so the 3D
  panel can follow either frame.

Every message's ``log_time`` is its state's simulation time, as in the recording.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from mcap.writer import CompressionType, Writer

from twin import __version__
from twin.protocol.codec import WireError
from twin.recording.format import RecordingError
from twin.recording.foxglove_schemas import (
    ALARM_TABLE,
    FRAME_TRANSFORM,
    LOG,
    SCENE_UPDATE,
    time_schema,
)
from twin.recording.reader import open_recording
from twin.recording.select import field_entry, first_meta, resolve_sats

DEFAULT_FIELDS = ("temp_compute_k", "temp_battery_k", "soc_frac", "utilization_frac",
                  "p_solar_w", "p_load_w", "compute_power_w")
"""The per-node fields exported when none are chosen (those the recording has)."""
SCENE_FRAME = "earth"
INERTIAL_FRAME = "gcrs"
SCENE_UNIT_KM = 1000.0
"""Scene units: 1 = 1000 km (Foxglove's default camera reaches a few thousand units)."""
EARTH_EQUATORIAL_KM = 6378.137
EARTH_POLAR_KM = 6356.752
NODE_DIAMETER_KM = 120.0
LOG_LEVELS = {"info": 2, "warning": 3, "alarm": 4}
_NOT_IDENTIFIER = re.compile(r"[^A-Za-z0-9_]")


@dataclass
class Exported:
    """What ``export_foxglove`` wrote."""

    output: Path
    states: int = 0
    events: int = 0
    alarm_tables: int = 0
    channels: list[str] = field(default_factory=list)
    skipped: int = 0
    """States left out: another run's (different satellites), or unreadable."""

    def line(self) -> str:
        def count(n: int, what: str) -> str:
            return f"{n} {what}" + ("" if n == 1 else "s")

        return (f"wrote {self.output}: {count(self.states, 'state')}, "
                f"{count(self.events, 'event')} and {count(self.alarm_tables, 'alarm table')} "
                f"on {count(len(self.channels), 'channel')} ({', '.join(self.channels)})"
                + (f"; {count(self.skipped, 'state')} left out" if self.skipped else ""))


def stamp(log_time_ns: int) -> dict[str, int]:
    """A Foxglove ``time`` from integer nanoseconds."""
    return {"sec": log_time_ns // 1_000_000_000, "nsec": log_time_ns % 1_000_000_000}


def plain_keys(names: list[str]) -> list[str]:
    """Names as JSON keys a message path takes unquoted; unique (a clash gets ``_2``...)."""
    keys: list[str] = []
    for name in names:
        key = _NOT_IDENTIFIER.sub("_", name) or "sat"
        if key[0].isdigit():
            key = "sat_" + key
        base, n = key, 2
        while key in keys:
            key, n = f"{base}_{n}", n + 1
        keys.append(key)
    return keys


def quaternion(matrix: np.ndarray) -> dict[str, float]:
    """The unit quaternion (x, y, z, w) of a 3x3 rotation matrix (Shepperd's method)."""
    m = np.asarray(matrix, dtype=float)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * math.sqrt(trace + 1.0)
        w, x = 0.25 * s, (m[2, 1] - m[1, 2]) / s
        y, z = (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        w, x = (m[2, 1] - m[1, 2]) / s, 0.25 * s
        y, z = (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        w, x = (m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s
        y, z = 0.25 * s, (m[1, 2] + m[2, 1]) / s
    else:
        s = 2.0 * math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        w, x = (m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s
        y, z = (m[1, 2] + m[2, 1]) / s, 0.25 * s
    norm = math.sqrt(w * w + x * x + y * y + z * z)
    return {"x": x / norm, "y": y / norm, "z": z / norm, "w": w / norm}


def _finite(value: Any) -> float | int | bool | None:
    """A JSON value: numbers as they are, NaN and infinities as null (JSON has neither)."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _dumps(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode()


def fleet_schema(totals: dict[str, Any], sample: dict[str, Any]) -> dict[str, Any]:
    """``/fleet``: one property per fleet total (its unit and description from ``meta``)."""
    properties: dict[str, Any] = {"timestamp": time_schema("Simulation time of the state")}
    for key in sample:
        entry = totals.get(key) if isinstance(totals.get(key), dict) else {}
        kind = "boolean" if isinstance(sample[key], bool) else "number"
        text = f"{entry.get('description', key)} [{entry.get('unit', '?')}]"
        properties[key] = {"type": [kind, "null"], "description": text}
    return {"title": "odc.Fleet", "description": "Fleet totals of one state of the twin",
            "type": "object", "properties": properties, "required": ["timestamp"]}


def node_schema(name: str, entry: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    """``/nodes/<field>``: one property per chosen satellite."""
    text = f"{entry.get('description', name)} [{entry.get('unit', '?')}]"
    return {
        "title": f"odc.nodes.{name}", "description": text, "type": "object",
        "properties": {
            "timestamp": time_schema("Simulation time of the state"),
            "unit": {"type": "string", "description": "Unit of the values"},
            "values": {"type": "object", "description": f"{name} per node, by node name",
                       "properties": {key: {"type": ["number", "boolean", "null"]}
                                      for key in keys},
                       "additionalProperties": False},
        },
        "required": ["timestamp", "values"],
    }


class _Channels:
    """Channel ids by topic, each registered with its schema."""

    def __init__(self, writer: Writer) -> None:
        self.writer = writer
        self.ids: dict[str, int] = {}

    def add(self, topic: str, schema: dict[str, Any]) -> None:
        schema_id = self.writer.register_schema(schema["title"], "jsonschema",
                                                json.dumps(schema).encode())
        self.ids[topic] = self.writer.register_channel(topic, "json", schema_id)

    def write(self, topic: str, log_time: int, message: dict[str, Any]) -> None:
        self.writer.add_message(self.ids[topic], log_time, _dumps(message), log_time)


def _empty_entity(log_time: int, entity_id: str) -> dict[str, Any]:
    return {"timestamp": stamp(log_time), "frame_id": SCENE_FRAME, "id": entity_id,
            "lifetime": {"sec": 0, "nsec": 0}, "frame_locked": False, "metadata": [],
            "arrows": [], "cubes": [], "spheres": [], "cylinders": [], "lines": [],
            "triangles": [], "texts": [], "models": []}


_IDENTITY = {"x": 0.0, "y": 0.0, "z": 0.0, "w": 1.0}


def _sphere(x: float, y: float, z: float, size: dict[str, float],
            color: dict[str, float]) -> dict[str, Any]:
    return {"pose": {"position": {"x": x, "y": y, "z": z}, "orientation": _IDENTITY},
            "size": size, "color": color}


def alarm_table(header: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """An ``alarms`` header as ``odc.AlarmTable`` (no timestamp): what a person reads of
    each alarm, the node by name; a malformed entry is left out, never the table."""
    def count(value: Any) -> int:
        return int(value) if isinstance(value, int) and value >= 0 else 0

    rows = []
    for alarm in header.get("alarms") or []:
        if not isinstance(alarm, dict):
            continue
        sat = alarm.get("sat", -1)
        rows.append({
            "id": alarm["id"] if isinstance(alarm.get("id"), int) else -1,
            "kind": str(alarm.get("kind", "")),
            "node": names[sat] if isinstance(sat, int) and 0 <= sat < len(names) else "",
            "parameter": str(alarm.get("parameter", "")),
            "severity": "alarm" if alarm.get("severity") == "alarm" else "warning",
            "state": str(alarm.get("state", "")), "active": alarm.get("active") is True,
            "message": str(alarm.get("message", "")), "count": count(alarm.get("count"))})
    return {"n_active": count(header.get("n_active")),
            "n_unacknowledged": count(header.get("n_unacknowledged")),
            "n_shelved": count(header.get("n_shelved")), "alarms": rows}


def scene_update(log_time: int, positions_km: np.ndarray, sunlit: np.ndarray | None,
                 names: list[str]) -> dict[str, Any]:
    """The Earth and one sphere per node (positions ITRS, km) for ``/scene``."""
    earth = _empty_entity(log_time, "earth")
    d_eq = 2 * EARTH_EQUATORIAL_KM / SCENE_UNIT_KM
    earth["spheres"] = [_sphere(0.0, 0.0, 0.0,
                                {"x": d_eq, "y": d_eq, "z": 2 * EARTH_POLAR_KM / SCENE_UNIT_KM},
                                {"r": 0.15, "g": 0.35, "b": 0.75, "a": 0.6})]
    fleet = _empty_entity(log_time, "nodes")
    size = {axis: NODE_DIAMETER_KM / SCENE_UNIT_KM for axis in "xyz"}
    spheres = []
    for k, (x, y, z) in enumerate(positions_km / SCENE_UNIT_KM):
        if not (math.isfinite(x) and math.isfinite(y) and math.isfinite(z)):
            continue  # SGP4 failed for this node: nothing to draw
        light = float(sunlit[k]) if sunlit is not None and math.isfinite(sunlit[k]) else 1.0
        color = {"r": 0.2 + 0.8 * light, "g": 0.3 + 0.55 * light, "b": 1.0 - 0.8 * light,
                 "a": 1.0}
        spheres.append(_sphere(float(x), float(y), float(z), size, color))
    fleet["spheres"] = spheres
    fleet["metadata"] = [{"key": "nodes", "value": ",".join(names)}]
    return {"deletions": [], "entities": [earth, fleet]}


def frame_transform(log_time: int, gcrs_to_itrs: Any) -> dict[str, Any] | None:
    """``/tf``: the Earth-fixed frame in the inertial one (None if the header lacks it)."""
    try:
        matrix = np.asarray(gcrs_to_itrs, dtype=float).reshape(3, 3)
    except (TypeError, ValueError):
        return None
    if not np.all(np.isfinite(matrix)):
        return None
    # r_itrs = M r_gcrs, so a point given in ``earth`` is M^T r in ``gcrs``: the child
    # frame's rotation within its parent.
    return {"timestamp": stamp(log_time), "parent_frame_id": INERTIAL_FRAME,
            "child_frame_id": SCENE_FRAME, "translation": {"x": 0.0, "y": 0.0, "z": 0.0},
            "rotation": quaternion(matrix.T)}


def _choose_fields(meta: dict[str, Any], wanted: Iterable[str] | None, where: str,
                   n_sats: int) -> list[tuple[str, dict[str, Any]]]:
    if wanted is None:
        names = [f["name"] for f in meta.get("fields", []) if f.get("name") in DEFAULT_FIELDS]
    else:
        names = [name.strip() for name in wanted if name.strip()]
    chosen = []
    for name in names:
        entry = field_entry(meta, name, where)
        if list(entry.get("shape", [])) != [n_sats]:
            scalars = [f["name"] for f in meta.get("fields", [])
                       if list(f.get("shape", [])) == [n_sats]]
            raise RecordingError(f"{where}: field {name!r} has shape {entry.get('shape')}, "
                                 f"not one value per node; per-node fields are "
                                 f"{', '.join(scalars[:8])}, ...")
        chosen.append((name, entry))
    return chosen


def export_foxglove(source: str | Path, output: str | Path, fields: Iterable[str] | None = None,
                    sats: Iterable[str] | None = None, every: int = 1) -> Exported:
    """Write ``output``, a Foxglove/Lichtblick MCAP file of ``source``'s states and events.

    Args:
        source: The recording.
        output: The file to write (never the source).
        fields: Per-node fields for ``/nodes/<field>`` (``DEFAULT_FIELDS`` when None).
        sats: Names or ids of the nodes to export (``/nodes`` and ``/scene``); all if None.
        every: Keep every Nth state of the recording.

    Raises:
        RecordingError: The source is not a usable recording, a field or satellite is not
            in it, or the output cannot be written.
    """
    source, output = Path(source), Path(output)
    if every < 1:
        raise RecordingError(f"--every must be at least 1, got {every}")
    recording = open_recording(source)
    if output.exists() and output.resolve() == source.resolve():
        raise RecordingError(f"{output} is the recording itself: write the export elsewhere")
    meta = first_meta(recording)
    where = str(source)
    sat_meta = meta.get("sats") or {}
    all_names = [str(n) for n in sat_meta.get("names", [])]
    n_sats = len(all_names)
    chosen_sats = (resolve_sats(meta, sats, where) if sats is not None
                   else list(range(n_sats)))
    names = [all_names[k] for k in chosen_sats]
    keys = plain_keys(names)
    chosen_fields = _choose_fields(meta, fields, where, n_sats)
    report = Exported(output)
    index = np.asarray(chosen_sats, dtype=int)
    try:
        with open(output, "wb") as stream:
            writer = Writer(stream, compression=CompressionType.ZSTD)
            writer.start(profile="", library=f"odc-twin {__version__} (odc export foxglove)")
            channels = _Channels(writer)
            channels.add("/events", LOG)
            channels.add("/alarms", ALARM_TABLE)
            last_table: dict[str, Any] | None = None
            channels.add("/scene", SCENE_UPDATE)
            channels.add("/tf", FRAME_TRANSFORM)
            for name, entry in chosen_fields:
                channels.add(f"/nodes/{name}", node_schema(name, entry, keys))
            fleet_ready = False
            seen = 0
            for message in recording.messages(["state", "event", "alarms"]):
                try:
                    decoded = message.decode()
                except (WireError, RecordingError):
                    report.skipped += message.topic == "state"
                    continue
                log_time = message.log_time_ns
                header = decoded.header
                if message.topic == "event":
                    sat = header.get("sat", -1)
                    sat_name = all_names[sat] if isinstance(sat, int) and 0 <= sat < n_sats \
                        else ""
                    channels.write("/events", log_time, {
                        "timestamp": stamp(log_time),
                        "level": LOG_LEVELS.get(str(header.get("severity")), 0),
                        "message": str(header.get("message", "")),
                        "name": str(header.get("kind", "")), "file": sat_name, "line": 0})
                    report.events += 1
                    continue
                if message.topic == "alarms":  # resent once a second: kept when it changed
                    if header.get("run_id") != meta.get("run_id"):
                        continue  # another run's, whose nodes these names are not
                    table = alarm_table(header, all_names)
                    if table != last_table:
                        channels.write("/alarms", log_time,
                                       {"timestamp": stamp(log_time), **table})
                        last_table = table
                        report.alarm_tables += 1
                    continue
                if header.get("n_sats") != n_sats:
                    report.skipped += 1  # another run's state, with other satellites
                    continue
                seen += 1
                if (seen - 1) % every:
                    continue
                fleet = header.get("fleet") if isinstance(header.get("fleet"), dict) else {}
                if not fleet_ready:
                    channels.add("/fleet", fleet_schema(meta.get("totals") or {}, fleet))
                    fleet_ready = True
                totals = {key: _finite(value) for key, value in fleet.items()}
                channels.write("/fleet", log_time, {"timestamp": stamp(log_time), **totals})
                arrays = decoded.arrays
                for name, entry in chosen_fields:
                    values = arrays.get(name)
                    if values is None:
                        continue
                    picked = values[index].tolist()
                    channels.write(f"/nodes/{name}", log_time, {
                        "timestamp": stamp(log_time), "unit": str(entry.get("unit", "")),
                        "values": {key: _finite(v) for key, v in zip(keys, picked,
                                                                     strict=True)}})
                positions = arrays.get("pos_itrs_km")
                if positions is not None:
                    sunlit = arrays.get("sunlit_frac")
                    channels.write("/scene", log_time, scene_update(
                        log_time, positions[index], None if sunlit is None else sunlit[index],
                        names))
                transform = frame_transform(log_time, header.get("gcrs_to_itrs"))
                if transform is not None:
                    channels.write("/tf", log_time, transform)
                report.states += 1
            writer.finish()
    except OSError as exc:
        raise RecordingError(f"cannot write {output}: {exc.strerror or exc}") from None
    report.channels = sorted(channels.ids)
    return report

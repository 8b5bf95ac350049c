"""Packet definitions: which CCSDS packets a testbed sends and where each parameter sits.

A definition file is TOML (see ``assets/testbeds/flatsat.toml``)::

    [testbed]
    name = "flatsat"
    sink_temp_k = 250.0            # what the unit radiates to (a lab: its room or shroud), K
    # sink_temp_param = "room_temp_c"   # or a measured parameter (odc calibrate reads it)
    radiating_area_m2 = 1.2        # the unit's radiator, all radiating faces together

    [[packet]]
    name = "hk"
    apid = 0x101
    secondary_header = "pus_c"     # or "none"
    timestamp = "cds_short"        # PUS-C time field: "cds_short" (7 bytes) or "none"
    crc = true                     # CRC-16-CCITT (ibm-3740) in the last two bytes
    service = 3                    # PUS-C service / subtype checked when given
    subtype = 25

    [[packet.parameter]]
    name = "compute_power_w"       # the name carries its unit
    type = "u2"                    # u1 u2 u4 i1 i2 i4 f4 f8, big-endian on the wire
    offset = 0                     # bytes from the start of the user data (after headers)
    scale = 0.01                   # value = raw * scale + add
    add = 0.0
    unit = "W"
    min = 0.0                      # physical bounds after scaling; outside = packet dropped
    max = 600.0
    noise = 0.5                    # optional: the sensor's noise, one standard deviation, in
                                   # the parameter's unit; the twin's state estimator weighs
                                   # the channel by it (docs/models.md, "State estimation")

Every packet of a definition has a fixed length (headers + ``user_data_bytes`` + CRC), so
a stream can be split and resynchronised on it. All errors name the file and key.

An ``[mqtt]`` table maps MQTT topics to parameters (``bridge.mqtt_topics``, docs/bridge.md);
a file needs at least one ``[[packet]]`` or one ``[[mqtt.topic]]``.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from twin.core.assets import assets_dir

PRIMARY_HEADER_BYTES = 6
PUS_C_HEADER_BYTES = 7  # version/time-ref, service, subtype, message counter (2), dest id (2)
TIMESTAMP_BYTES = {"none": 0, "cds_short": 7}
CRC_BYTES = 2
MAX_APID = 0x7FF
IDLE_APID = 0x7FF  # CCSDS idle packets; never a telemetry definition

PARAM_TYPES = {"u1": ">u1", "u2": ">u2", "u4": ">u4", "i1": ">i1", "i2": ">i2", "i4": ">i4",
               "f4": ">f4", "f8": ">f8"}

TESTBEDS_DIR = assets_dir() / "testbeds"


class DefinitionError(ValueError):
    """A packet definition file that cannot be used; the message names file and key."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        where = f"{source}: {key}" if key else source
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class Parameter:
    """One telemetry parameter inside a packet's user data.

    Attributes:
        name: Unit-carrying name (``cold_plate_temp_c``).
        type: Key of ``PARAM_TYPES``.
        offset: Byte offset from the start of the user data field.
        scale, add: Engineering value = raw * scale + add.
        unit: Unit for people (``"degC"``).
        min, max: Physical bounds of the engineering value (inclusive).
        noise: The sensor's noise, one standard deviation in the parameter's unit (None:
            not declared).
    """

    name: str
    type: str
    offset: int
    scale: float = 1.0
    add: float = 0.0
    unit: str = ""
    min: float = -math.inf
    max: float = math.inf
    noise: float | None = None

    @property
    def size(self) -> int:
        return np.dtype(PARAM_TYPES[self.type]).itemsize


@dataclass(frozen=True)
class PacketDef:
    """A fixed-length telemetry packet identified by its APID."""

    name: str
    apid: int
    parameters: tuple[Parameter, ...]
    secondary_header: str = "pus_c"
    timestamp: str = "cds_short"
    crc: bool = True
    service: int | None = None
    subtype: int | None = None
    user_data_bytes: int = 0

    @property
    def has_sec_header(self) -> bool:
        return self.secondary_header == "pus_c"

    @property
    def data_offset(self) -> int:
        """Byte offset of the user data from the start of the packet."""
        if not self.has_sec_header:
            return PRIMARY_HEADER_BYTES
        return PRIMARY_HEADER_BYTES + PUS_C_HEADER_BYTES + TIMESTAMP_BYTES[self.timestamp]

    @property
    def length(self) -> int:
        """Total packet length in bytes."""
        return self.data_offset + self.user_data_bytes + (CRC_BYTES if self.crc else 0)

    @property
    def length_field(self) -> int:
        """The primary header's data length field: packet data field bytes minus one."""
        return self.length - PRIMARY_HEADER_BYTES - 1

    def dtype(self) -> np.dtype:
        """A numpy structured dtype laying one whole packet out (big-endian fields)."""
        names = ["id", "seqctl", "length"]
        formats: list[Any] = [">u2", ">u2", ">u2"]
        offsets = [0, 2, 4]
        if self.has_sec_header:
            names += ["pus_version", "service", "subtype"]
            formats += ["u1", "u1", "u1"]
            offsets += [6, 7, 8]
            if self.timestamp == "cds_short":
                # CCSDS 301.0-B: P-field 0x40 (CDS, 1958 epoch, 16-bit day), day, ms of day.
                names += ["cds_pfield", "cds_days", "cds_ms"]
                formats += ["u1", ">u2", ">u4"]
                offsets += [13, 14, 16]
        for param in self.parameters:
            names.append("p_" + param.name)
            formats.append(PARAM_TYPES[param.type])
            offsets.append(self.data_offset + param.offset)
        if self.crc:
            names.append("crc")
            formats.append(">u2")
            offsets.append(self.length - CRC_BYTES)
        return np.dtype({"names": names, "formats": formats, "offsets": offsets,
                         "itemsize": self.length})


@dataclass(frozen=True)
class Definitions:
    """All packets of one testbed, by APID."""

    testbed: str
    packets: dict[int, PacketDef] = field(default_factory=dict)
    source: str = "<string>"
    description: str = ""
    mqtt: Any = None  # bridge.mqtt_topics.MqttTable, from the optional [mqtt] table
    sink_temp_k: float | None = None  # [testbed] sink_temp_k: the unit's radiative sink, K
    sink_temp_param: str = ""  # [testbed] sink_temp_param: a parameter measuring the sink
    radiating_area_m2: float | None = None  # [testbed] radiating_area_m2: all faces, m2

    def by_name(self, name: str) -> PacketDef:
        for packet in self.packets.values():
            if packet.name == name:
                return packet
        raise KeyError(f"no packet named {name!r} in {self.source}")


def load_definitions(name_or_path: str | Path) -> Definitions:
    """Load a definition file by path, or a bundled one by name (``"flatsat"``).

    Raises:
        DefinitionError: The file is missing or invalid (message names file and key).
    """
    path = Path(name_or_path)
    bundled = TESTBEDS_DIR / f"{name_or_path}.toml"
    if not path.is_file() and bundled.is_file():
        path = bundled
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in TESTBEDS_DIR.glob("*.toml")))
        raise DefinitionError(str(path), "", f"no such definition file (bundled: {known})")
    return parse_definitions(path.read_text(encoding="utf-8"), str(path))


def parse_definitions(text: str, source: str = "<string>") -> Definitions:
    """Parse and validate definition TOML text."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DefinitionError(source, "", f"not valid TOML: {exc}") from exc
    unknown = set(doc) - {"testbed", "packet", "mqtt"}
    if unknown:
        raise DefinitionError(source, sorted(unknown)[0], "unknown table; expected [testbed],"
                              " [[packet]] and [mqtt]")
    testbed = doc.get("testbed", {})
    name = testbed.get("name")
    if not isinstance(name, str) or not name:
        raise DefinitionError(source, "testbed.name", "needs a non-empty string name")
    packets: dict[int, PacketDef] = {}
    names: set[str] = set()
    for i, table in enumerate(doc.get("packet", [])):
        packet = _parse_packet(table, f"packet[{i}]", source)
        if packet.apid in packets:
            raise DefinitionError(source, f"packet[{i}].apid", f"APID {packet.apid:#x} defined"
                                  " twice")
        if packet.name in names:
            raise DefinitionError(source, f"packet[{i}].name", f"{packet.name!r} used twice")
        packets[packet.apid] = packet
        names.add(packet.name)
    mqtt = None
    if "mqtt" in doc:
        from bridge.mqtt_topics import parse_mqtt_table  # it imports this module

        mqtt = parse_mqtt_table(doc["mqtt"], source)
        # Each topic is a packet name at the twin, which remembers 64 per testbed
        # (twin.models.mirror.ingest.MAX_PACKETS_PER_BINDING); past them it drops messages.
        if len(packets) + len(mqtt.topics) > 64:
            raise DefinitionError(source, "mqtt.topic", f"{len(packets)} packets and "
                                  f"{len(mqtt.topics)} topics: at most 64 together")
    if not packets and mqtt is None:
        raise DefinitionError(source, "packet", "define at least one [[packet]] (or an [mqtt]"
                              " table)")
    sink, sink_param, area = _testbed_physics(testbed, packets, source)
    return Definitions(name, packets, source, str(testbed.get("description", "")), mqtt,
                       sink, sink_param, area)


# Bounds of the [testbed] table's physical keys: a sink between the 2.7 K sky and a hot
# oven; a radiator between a coin and a football pitch.
SINK_BOUNDS_K = (2.7, 400.0)
AREA_BOUNDS_M2 = (1.0e-4, 1.0e4)


def _testbed_physics(testbed: dict[str, Any], packets: dict[int, PacketDef], source: str
                     ) -> tuple[float | None, str, float | None]:
    """The ``[testbed]`` table's sink and radiator keys, checked (calibration reads them)."""
    allowed = {"name", "description", "sink_temp_k", "sink_temp_param", "radiating_area_m2"}
    for key in testbed:
        if key not in allowed:
            raise DefinitionError(source, f"testbed.{key}", f"unknown key; allowed: "
                                  f"{', '.join(sorted(allowed))}")
    number = (int, float)
    sink = _get(testbed, "sink_temp_k", number, "testbed", source, None)
    if sink is not None and not SINK_BOUNDS_K[0] <= sink <= SINK_BOUNDS_K[1]:
        raise DefinitionError(source, "testbed.sink_temp_k", f"{sink} K is outside "
                              f"{SINK_BOUNDS_K[0]:g}..{SINK_BOUNDS_K[1]:g} K")
    sink_param = _get(testbed, "sink_temp_param", str, "testbed", source, "")
    names = {p.name for packet in packets.values() for p in packet.parameters}
    if sink_param and sink_param not in names:
        raise DefinitionError(source, "testbed.sink_temp_param", f"{sink_param!r} is not a "
                              "parameter of any [[packet]]")
    if sink_param and not sink_param.endswith(("_k", "_c")):
        raise DefinitionError(source, "testbed.sink_temp_param", f"{sink_param!r} must be a "
                              "temperature (name ending _k or _c)")
    area = _get(testbed, "radiating_area_m2", number, "testbed", source, None)
    if area is not None and not AREA_BOUNDS_M2[0] <= area <= AREA_BOUNDS_M2[1]:
        raise DefinitionError(source, "testbed.radiating_area_m2", f"{area} m2 is outside "
                              f"{AREA_BOUNDS_M2[0]:g}..{AREA_BOUNDS_M2[1]:g} m2")
    return (None if sink is None else float(sink), sink_param,
            None if area is None else float(area))


def _get(table: dict[str, Any], key: str, types: type | tuple[type, ...], path: str,
         source: str, default: Any = ...) -> Any:
    if key not in table:
        if default is ...:
            raise DefinitionError(source, f"{path}.{key}", "is required")
        return default
    value = table[key]
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise DefinitionError(source, f"{path}.{key}", f"expected a number, got {value!r}")
    if not isinstance(value, types):
        raise DefinitionError(source, f"{path}.{key}", f"has the wrong type ({value!r})")
    return value


def _parse_packet(table: dict[str, Any], path: str, source: str) -> PacketDef:
    allowed = {"name", "apid", "secondary_header", "timestamp", "crc", "service", "subtype",
               "user_data_bytes", "parameter"}
    for key in table:
        if key not in allowed:
            raise DefinitionError(source, f"{path}.{key}", f"unknown key; allowed: "
                                  f"{', '.join(sorted(allowed))}")
    name = _get(table, "name", str, path, source)
    apid = _get(table, "apid", int, path, source)
    if not 0 <= apid < IDLE_APID:
        raise DefinitionError(source, f"{path}.apid", f"{apid} outside 0..{IDLE_APID - 1}"
                              " (0x7FF is the idle APID)")
    sec = _get(table, "secondary_header", str, path, source, "pus_c")
    if sec not in ("pus_c", "none"):
        raise DefinitionError(source, f"{path}.secondary_header", "must be 'pus_c' or 'none'")
    stamp = _get(table, "timestamp", str, path, source, "cds_short" if sec == "pus_c" else "none")
    if stamp not in TIMESTAMP_BYTES or (sec == "none" and stamp != "none"):
        raise DefinitionError(source, f"{path}.timestamp", "must be 'cds_short' or 'none'"
                              " (a timestamp needs secondary_header = 'pus_c')")
    crc = _get(table, "crc", bool, path, source, True)
    service = _get(table, "service", int, path, source, None)
    subtype = _get(table, "subtype", int, path, source, None)
    params = tuple(_parse_parameter(p, f"{path}.parameter[{j}]", source)
                   for j, p in enumerate(table.get("parameter", [])))
    if not params:
        raise DefinitionError(source, f"{path}.parameter", "define at least one parameter")
    end = max(p.offset + p.size for p in params)
    user_bytes = _get(table, "user_data_bytes", int, path, source, end)
    if user_bytes < end:
        raise DefinitionError(source, f"{path}.user_data_bytes", f"{user_bytes} is shorter than"
                              f" the parameters need ({end})")
    seen: set[str] = set()
    for param in params:
        if param.name in seen:
            raise DefinitionError(source, f"{path}.parameter", f"{param.name!r} defined twice")
        seen.add(param.name)
    return PacketDef(name, apid, params, sec, stamp, crc, service, subtype, user_bytes)


def _parse_parameter(table: dict[str, Any], path: str, source: str) -> Parameter:
    allowed = {"name", "type", "offset", "scale", "add", "unit", "min", "max", "noise"}
    for key in table:
        if key not in allowed:
            raise DefinitionError(source, f"{path}.{key}", f"unknown key; allowed: "
                                  f"{', '.join(sorted(allowed))}")
    name = _get(table, "name", str, path, source)
    if not name.isidentifier():
        raise DefinitionError(source, f"{path}.name", f"{name!r} is not an identifier")
    ptype = _get(table, "type", str, path, source)
    if ptype not in PARAM_TYPES:
        raise DefinitionError(source, f"{path}.type", f"{ptype!r} is not one of "
                              f"{', '.join(PARAM_TYPES)}")
    offset = _get(table, "offset", int, path, source)
    if offset < 0:
        raise DefinitionError(source, f"{path}.offset", "must be >= 0")
    number = (int, float)
    scale = float(_get(table, "scale", number, path, source, 1.0))
    add = float(_get(table, "add", number, path, source, 0.0))
    lo = float(_get(table, "min", number, path, source, -math.inf))
    hi = float(_get(table, "max", number, path, source, math.inf))
    if not (math.isfinite(scale) and scale != 0.0 and math.isfinite(add)):
        raise DefinitionError(source, f"{path}.scale", "scale must be finite and non-zero")
    if lo > hi:
        raise DefinitionError(source, f"{path}.min", f"min {lo} > max {hi}")
    unit = _get(table, "unit", str, path, source, "")
    noise = _get(table, "noise", number, path, source, None)
    if noise is not None and not (math.isfinite(noise) and noise >= 0.0):
        raise DefinitionError(source, f"{path}.noise", f"{noise!r}: expected a finite number"
                              " >= 0 (one standard deviation, in the parameter's unit)")
    return Parameter(name, ptype, offset, scale, add, unit, lo, hi,
                     None if noise is None else float(noise))

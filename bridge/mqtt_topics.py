"""The ``[mqtt]`` table of a testbed definition, and turning one MQTT payload into one value.

A lab sensor bus publishes one reading per message. The table maps each topic to one
parameter the bridge pushes to the twin::

    [mqtt]
    subscribe = ["lab/flatsat/#"]   # filters; default: the mapped topics themselves
    max_payload_bytes = 4096        # a larger message is rejected unread (too_large)
    qos = 0                         # 0 or 1
    protocol = "5"                  # "5" or "3.1.1" (for a broker without MQTT 5)

    [[mqtt.topic]]
    topic = "lab/flatsat/cold_plate"
    parameter = "cold_plate_temp_k" # pushed name; ends in the SI suffix of `unit`
    payload = "json"                # "json" (a number at `key`) or "number" (plain text)
    key = "reading.value"           # dotted path; a list index is a number ("values.0")
    unit = "degC"                   # the payload's unit; the bridge converts to SI
    scale = 1.0                     # optional sensor calibration in that unit:
    add = 0.0                       #   value = payload * scale + add
    min = 193.15                    # bounds of the SI value (the parameter's unit), required
    max = 423.15

Nothing here evaluates a payload: JSON goes through ``json.loads`` (after the size check,
with ``NaN``/``Infinity`` refused) and plain numbers through one regular expression.
Every check that fails names the reason the bridge counts it under (``REASONS``).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from bridge.definitions import DefinitionError, _get

# The payload's unit -> (SI suffix the parameter must end in, scale, offset):
# si = value * scale + offset. Suffixes the twin's mirror reads are _k, _w, _frac, _hz, _s
# (twin.models.mirror.bindings); the others reach the twin and are counted there as ignored.
UNITS: dict[str, tuple[str, float, float]] = {
    "K": ("_k", 1.0, 0.0), "degC": ("_k", 1.0, 273.15),
    "degF": ("_k", 5.0 / 9.0, 273.15 - 32.0 * 5.0 / 9.0),
    "W": ("_w", 1.0, 0.0), "mW": ("_w", 1e-3, 0.0), "kW": ("_w", 1e3, 0.0),
    "1": ("_frac", 1.0, 0.0), "%": ("_frac", 0.01, 0.0),
    "Hz": ("_hz", 1.0, 0.0), "kHz": ("_hz", 1e3, 0.0), "MHz": ("_hz", 1e6, 0.0),
    "GHz": ("_hz", 1e9, 0.0),
    "s": ("_s", 1.0, 0.0), "ms": ("_s", 1e-3, 0.0),
    "V": ("_v", 1.0, 0.0), "mV": ("_v", 1e-3, 0.0),
    "A": ("_a", 1.0, 0.0), "mA": ("_a", 1e-3, 0.0),
    "Pa": ("_pa", 1.0, 0.0), "hPa": ("_pa", 1e2, 0.0), "kPa": ("_pa", 1e3, 0.0),
    "bar": ("_pa", 1e5, 0.0),
}
SI_UNITS = {"_k": "K", "_w": "W", "_frac": "1", "_hz": "Hz", "_s": "s", "_v": "V", "_a": "A",
            "_pa": "Pa"}

# Bounds on what a definition may ask for (docs/reliability.md, "Bridge").
MAX_TOPICS = 48
"""Mapped topics; with the CCSDS packets they stay under the 64 packet names the twin
remembers per testbed (twin.models.mirror.ingest.MAX_PACKETS_PER_BINDING)."""
MAX_SUBSCRIPTIONS = 16
MAX_TOPIC_CHARS = 256
MAX_KEY_DEPTH = 8
DEFAULT_PAYLOAD_BYTES = 4096
MAX_PAYLOAD_BYTES = 65536
PACKET_PREFIX = "mqtt/"
"""Each parameter travels to the twin as its own packet ``mqtt/<parameter>``, so the twin
orders each topic's samples on their own."""

# Why a message is not applied (the bridge's counters: decoder.rejected.<reason>).
REASONS = ("unknown_topic", "too_large", "not_text", "not_json", "missing_key", "not_a_number",
           "not_finite", "out_of_bounds", "retained", "queue_full")

# A plain decimal number: no "nan", "inf", "0x..", "1_000" that float() would take.
_NUMBER = re.compile(rb"\s*[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?\s*")


class PayloadRejected(ValueError):
    """A payload that gives no value; ``reason`` is one of ``REASONS``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class TopicMap:
    """One topic and the parameter its messages carry.

    Attributes:
        topic: Exact MQTT topic (no wildcards).
        parameter: Name pushed to the twin, ending in the SI suffix of ``unit``.
        payload: ``"json"`` or ``"number"``.
        key: JSON path as a tuple (str keys, int list indices); empty for ``"number"``.
        unit: The payload's unit (a key of ``UNITS``).
        scale, add: Calibration in the payload's unit: value = payload * scale + add.
        min, max: Bounds of the SI value, inclusive.
    """

    topic: str
    parameter: str
    payload: str
    key: tuple[str | int, ...]
    unit: str
    scale: float
    add: float
    min: float
    max: float

    @property
    def packet(self) -> str:
        return PACKET_PREFIX + self.parameter

    @property
    def si_unit(self) -> str:
        return SI_UNITS[UNITS[self.unit][0]]

    def value_si(self, payload: bytes) -> float:
        """The SI value a payload carries, checked against the bounds.

        Raises:
            PayloadRejected: Naming the reason (never quoting the payload).
        """
        raw = _json_number(payload, self.key) if self.payload == "json" else _plain_number(payload)
        _, unit_scale, unit_offset = UNITS[self.unit]
        value = (raw * self.scale + self.add) * unit_scale + unit_offset
        if not math.isfinite(value):
            raise PayloadRejected("not_finite", "the value is not finite")
        if not self.min <= value <= self.max:
            unit = "" if self.si_unit == "1" else f" {self.si_unit}"
            raise PayloadRejected("out_of_bounds", f"{value:.6g}{unit} outside "
                                  f"{self.min:g}..{self.max:g}{unit}")
        return value


@dataclass(frozen=True)
class MqttTable:
    """The ``[mqtt]`` table: topics by name, subscription filters and limits."""

    topics: dict[str, TopicMap]
    subscribe: tuple[str, ...]
    max_payload_bytes: int = DEFAULT_PAYLOAD_BYTES
    qos: int = 0
    protocol: str = "5"


def parse_mqtt_table(table: Any, source: str) -> MqttTable:
    """Validate the ``[mqtt]`` table of definition file ``source``.

    Raises:
        DefinitionError: Naming the file and key.
    """
    if not isinstance(table, dict):
        raise DefinitionError(source, "mqtt", "must be a table ([mqtt])")
    allowed = {"subscribe", "max_payload_bytes", "qos", "protocol", "topic"}
    _no_unknown(table, allowed, "mqtt", source)
    rows = table.get("topic", [])
    if not isinstance(rows, list) or not rows:
        raise DefinitionError(source, "mqtt.topic", "define at least one [[mqtt.topic]]")
    if len(rows) > MAX_TOPICS:
        raise DefinitionError(source, "mqtt.topic", f"{len(rows)} topics; at most {MAX_TOPICS}")
    topics: dict[str, TopicMap] = {}
    parameters: set[str] = set()
    for i, row in enumerate(rows):
        path = f"mqtt.topic[{i}]"
        topic = _parse_topic(row, path, source)
        if topic.topic in topics:
            raise DefinitionError(source, f"{path}.topic", f"{topic.topic!r} mapped twice")
        if topic.parameter in parameters:
            raise DefinitionError(source, f"{path}.parameter", f"{topic.parameter!r} used twice")
        topics[topic.topic] = topic
        parameters.add(topic.parameter)
    # Without filters, each mapped topic is its own subscription.
    filters = _get(table, "subscribe", list, "mqtt", source, list(topics))
    if "subscribe" in table and not 0 < len(filters) <= MAX_SUBSCRIPTIONS:
        raise DefinitionError(source, "mqtt.subscribe", f"give 1..{MAX_SUBSCRIPTIONS} filters")
    for j, text in enumerate(filters):
        _check_topic(text, f"mqtt.subscribe[{j}]", source, wildcards=True)
    for topic in topics:
        if not any(topic_matches(f, topic) for f in filters):
            raise DefinitionError(source, "mqtt.subscribe", f"no filter receives {topic!r}")
    size = _get(table, "max_payload_bytes", int, "mqtt", source, DEFAULT_PAYLOAD_BYTES)
    if not 1 <= size <= MAX_PAYLOAD_BYTES:
        raise DefinitionError(source, "mqtt.max_payload_bytes", f"{size} outside "
                              f"1..{MAX_PAYLOAD_BYTES}")
    qos = _get(table, "qos", int, "mqtt", source, 0)
    if qos not in (0, 1):
        raise DefinitionError(source, "mqtt.qos", "must be 0 or 1")
    protocol = _get(table, "protocol", str, "mqtt", source, "5")
    if protocol not in ("5", "3.1.1"):
        raise DefinitionError(source, "mqtt.protocol", "must be '5' or '3.1.1'")
    return MqttTable(topics, tuple(filters), size, qos, protocol)


def _parse_topic(row: Any, path: str, source: str) -> TopicMap:
    if not isinstance(row, dict):
        raise DefinitionError(source, path, "must be a table ([[mqtt.topic]])")
    _no_unknown(row, {"topic", "parameter", "payload", "key", "unit", "scale", "add", "min",
                      "max"}, path, source)
    topic = _get(row, "topic", str, path, source)
    _check_topic(topic, f"{path}.topic", source, wildcards=False)
    parameter = _get(row, "parameter", str, path, source)
    if not parameter.isidentifier() or len(parameter) > 64:
        raise DefinitionError(source, f"{path}.parameter", f"{parameter!r} is not an identifier"
                              " of at most 64 characters")
    unit = _get(row, "unit", str, path, source)
    if unit not in UNITS:
        raise DefinitionError(source, f"{path}.unit", f"{unit!r} is not one of "
                              f"{', '.join(UNITS)}")
    suffix = UNITS[unit][0]
    if not parameter.endswith(suffix):
        raise DefinitionError(source, f"{path}.parameter", f"{parameter!r} must end in "
                              f"{suffix!r}: the bridge sends it in {SI_UNITS[suffix]} ({unit} "
                              "converted)")
    kind = _get(row, "payload", str, path, source)
    if kind not in ("json", "number"):
        raise DefinitionError(source, f"{path}.payload", "must be 'json' or 'number'")
    key: tuple[str | int, ...] = ()
    if kind == "json":
        key = _parse_key(_get(row, "key", str, path, source), f"{path}.key", source)
    elif "key" in row:
        raise DefinitionError(source, f"{path}.key", "only a 'json' payload has a key")
    number = (int, float)
    scale = float(_get(row, "scale", number, path, source, 1.0))
    add = float(_get(row, "add", number, path, source, 0.0))
    if not (math.isfinite(scale) and scale != 0.0 and math.isfinite(add)):
        raise DefinitionError(source, f"{path}.scale", "scale must be finite and non-zero, "
                              "add finite")
    # Required: anyone who may publish on the broker reaches this parameter.
    low = float(_get(row, "min", number, path, source))
    high = float(_get(row, "max", number, path, source))
    if not (math.isfinite(low) and math.isfinite(high) and low <= high):
        raise DefinitionError(source, f"{path}.min", f"min {low} and max {high} must be finite,"
                              " min <= max")
    return TopicMap(topic, parameter, kind, key, unit, scale, add, low, high)


def _parse_key(text: str, path: str, source: str) -> tuple[str | int, ...]:
    parts = text.split(".")
    if not text or any(not p for p in parts) or len(parts) > MAX_KEY_DEPTH:
        raise DefinitionError(source, path, f"{text!r}: give 1..{MAX_KEY_DEPTH} non-empty "
                              "names separated by dots")
    return tuple(int(p) if p.isdigit() else p for p in parts)


def _check_topic(text: Any, path: str, source: str, wildcards: bool) -> None:
    if not isinstance(text, str) or not 0 < len(text) <= MAX_TOPIC_CHARS or "\0" in text:
        raise DefinitionError(source, path, f"a topic is a string of 1..{MAX_TOPIC_CHARS} "
                              "characters without NUL")
    levels = text.split("/")
    for i, level in enumerate(levels):
        if not wildcards and ("+" in level or "#" in level):
            raise DefinitionError(source, path, f"{text!r}: a mapped topic has no wildcards "
                                  "(put them in mqtt.subscribe)")
        if ("+" in level and level != "+") or ("#" in level and
                                               (level != "#" or i != len(levels) - 1)):
            raise DefinitionError(source, path, f"{text!r}: '+' and '#' fill a whole level, "
                                  "'#' only the last")


def topic_matches(pattern: str, topic: str) -> bool:
    """Whether subscription filter ``pattern`` receives ``topic`` (MQTT 3.1.1, 4.7)."""
    want, have = pattern.split("/"), topic.split("/")
    for i, level in enumerate(want):
        if level == "#":
            return True
        if i >= len(have) or (level != "+" and level != have[i]):
            return False
    return len(want) == len(have)


def _no_unknown(table: dict[str, Any], allowed: set[str], path: str, source: str) -> None:
    for key in table:
        if key not in allowed:
            raise DefinitionError(source, f"{path}.{key}", f"unknown key; allowed: "
                                  f"{', '.join(sorted(allowed))}")


# -- payloads --------------------------------------------------------------------------------

def _refuse_constant(name: str) -> float:
    raise PayloadRejected("not_finite", f"JSON {name} is not a measurement")


def _json_number(payload: bytes, key: tuple[str | int, ...]) -> float:
    try:
        doc = json.loads(payload, parse_constant=_refuse_constant)
    except PayloadRejected:
        raise
    except UnicodeDecodeError:
        raise PayloadRejected("not_text", "not UTF-8 text") from None
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        raise PayloadRejected("not_json", f"not JSON ({type(exc).__name__})") from None
    node = doc
    for part in key:
        if isinstance(part, int) and isinstance(node, list) and part < len(node):
            node = node[part]
        elif isinstance(node, dict) and str(part) in node:
            node = node[str(part)]
        else:
            raise PayloadRejected("missing_key", f"no {'.'.join(map(str, key))!r} in the JSON")
    if isinstance(node, bool) or not isinstance(node, int | float):
        raise PayloadRejected("not_a_number", f"{'.'.join(map(str, key))!r} is not a number")
    try:
        return float(node)
    except OverflowError:  # an integer with hundreds of digits
        raise PayloadRejected("not_finite", "the number is too large") from None


def _plain_number(payload: bytes) -> float:
    if _NUMBER.fullmatch(payload) is None:
        raise PayloadRejected("not_a_number", "not a plain decimal number")
    return float(payload)

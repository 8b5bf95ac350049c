"""What the viewers accept from the stream: per-topic checks beyond the wire framing.

`twin.protocol.codec.decode` guarantees the framing: a known topic, ``v``, ``seq`` and ``t_utc`` of
their documented types, arrays that match their field entries. The checks here say
whether a decoded message means something a viewer can draw (docs/protocol.md): the
documented header keys have their documented types, a ``state``'s arrays agree with its
``n_sats`` and with ``meta``'s catalog, ``meta``'s lists and maps are lists and maps of
what they should hold, an ``event`` has a kind, a severity and an integer ``sat``.

A message that fails is a *bad message*: the viewer drops it whole, counts it and shows
the count and the last reason (`BadMessages`; docs/reliability.md, "Viewers"). It is never
half-applied. Values inside arrays are not checked: NaN and inf are data (an SGP4 error
row, an uncapped power limit) and the viewers draw them as "no data" or the range's end.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from twin.core.ratelog import RateLimitedLog, shorten
from twin.protocol.codec import WIRE_DTYPES, Message, WireError
from twin.scenario import MAX_SATELLITES

# The last bad message's reason as shown in a header or HUD line.
SHOWN_ERROR_CHARS = 100
# Longer runs of lost messages than this are not believed: a forward jump of ``seq`` by more
# than this (a day of states at 10 Hz) within one twin run is a bad message, not a gap.
MAX_SEQ_JUMP = 1_000_000
# How far from orthonormal a published rotation matrix may be.
ROTATION_TOLERANCE = 1e-6
# Positions and velocities: (n_sats, 3) wherever they appear.
VECTOR_FIELDS = ("pos_gcrs_km", "pos_itrs_km", "vel_gcrs_km_s", "vel_itrs_km_s")


class BadMessages:
    """Bad stream messages: counted always, logged at a bounded rate, the last one kept.

    Only the count, the last reason (shortened) and per-reason counts (bounded by
    `RateLimitedLog`) are kept, never the messages themselves, so memory stays bounded
    whatever a publisher sends.

    Args:
        logger: Where the rate-limited lines go.
    """

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.count = 0
        self.last = ""
        self.last_wall = 0.0
        self.log = RateLimitedLog(logger or logging.getLogger("odc.viz"))

    def add(self, reason: str, text: str) -> None:
        """Count one bad message; ``reason`` is a short fixed tag, ``text`` says what was wrong."""
        self.count += 1
        self.last = shorten(text, SHOWN_ERROR_CHARS)
        self.last_wall = time.monotonic()
        self.log.log(reason, "bad stream message dropped (%s): %s", reason, text)

    @property
    def by_reason(self) -> dict[str, int]:
        return dict(self.log.counts)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _bad(what: str, value: Any, expected: str) -> WireError:
    text = repr(value)
    return WireError(f"{what} is {shorten(text, 60)}, not {expected}")


def _optional(header: Mapping[str, Any], key: str, ok: Any, expected: str,
              topic: str) -> None:
    if key in header and not ok(header[key]):
        raise _bad(f"{topic} {key!r}", header[key], expected)


def _count(value: Any) -> bool:
    """A fleet size: a twin refuses a scenario without satellites, or with too many."""
    return _is_int(value) and 1 <= value <= MAX_SATELLITES


def _numbers(n: int) -> Any:
    return lambda v: isinstance(v, list) and len(v) == n and all(_is_number(x) for x in v)


def _rotation(value: Any) -> bool:
    """Nine numbers, row-major, of a rotation (orthonormal to 1e-6: the twin's is to 1e-15)."""
    if not _numbers(9)(value):
        return False
    m = np.asarray(value, dtype=float).reshape(3, 3)
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.all(np.abs(m @ m.T - np.eye(3)) < ROTATION_TOLERANCE))


def _clock_keys(header: Mapping[str, Any], topic: str) -> None:
    """``paused``, ``warp``, ``step``, ``n_sats``: shared by ``state`` and ``hb``."""
    _optional(header, "paused", lambda v: isinstance(v, bool), "a bool", topic)
    _optional(header, "warp", lambda v: _is_number(v) and v > 0, "a positive number", topic)
    _optional(header, "step", lambda v: _is_int(v) and v >= 0, "a step count", topic)
    _optional(header, "n_sats", _count, f"a count from 1 to {MAX_SATELLITES:,}", topic)


def check_state(message: Message, meta: Mapping[str, Any] | None = None) -> None:
    """Raise `WireError` unless a ``state`` can be drawn (against ``meta`` of the same run).

    Args:
        message: A decoded ``state``.
        meta: The ``meta`` body of the same twin run, if known: then ``n_sats`` must be its
            ``sats.n`` and each array listed in its catalog must have the listed dtype and
            shape.
    """
    header, arrays = message.header, message.arrays
    if "n_sats" not in header:
        raise WireError("state header lacks 'n_sats'")
    _clock_keys(header, "state")
    n = header["n_sats"]
    _optional(header, "dt_s", _is_number, "a number", "state")
    _optional(header, "gast_rad", _is_number, "a finite number", "state")
    _optional(header, "sun_gcrs_km", _numbers(3), "3 finite numbers", "state")
    _optional(header, "gcrs_to_itrs", _rotation, "9 numbers of a rotation matrix", "state")
    _optional(header, "fleet", lambda v: isinstance(v, dict) and all(
        isinstance(k, str) for k in v), "a map with string keys", "state")
    for name in VECTOR_FIELDS:
        if name in arrays and arrays[name].shape != (n, 3):
            raise WireError(f"state field {name} has shape {arrays[name].shape}, "
                            f"n_sats {n} needs {(n, 3)}")
    if meta is None:
        return
    meta_n = meta["sats"]["n"]
    if n != meta_n:
        raise WireError(f"state n_sats {n} does not match meta's {meta_n} nodes")
    for entry in meta.get("fields", []):
        array = arrays.get(entry["name"])
        if array is None:
            continue
        if array.dtype.str != entry.get("dtype", array.dtype.str) or \
                list(array.shape) != list(entry["shape"]):
            raise WireError(f"state field {shorten(entry['name'], 40)} is "
                            f"{array.dtype.str}{array.shape}, meta's catalog says "
                            f"{entry.get('dtype')}{tuple(entry['shape'])}")


def check_event(message: Message) -> None:
    """Raise `WireError` unless an ``event`` has a kind, a severity and an integer ``sat``."""
    header = message.header
    for key in ("kind", "severity"):
        if not isinstance(header.get(key), str):
            raise _bad(f"event {key!r}", header.get(key), "a string")
    _optional(header, "sat", lambda v: _is_int(v) and -1 <= v < MAX_SATELLITES,
              "a satellite index or -1", "event")
    _optional(header, "message", lambda v: isinstance(v, str), "a string", "event")


ALARM_STATES = ("active_unack", "active_ack", "rtn_unack", "shelved")


def check_alarms(message: Message) -> None:
    """Raise `WireError` unless an ``alarms`` message holds a list of alarm entries, each
    with an integer ``id`` and ``sat``, string ``kind``, ``parameter`` and ``message``, a
    known ``state`` and a ``severity``."""
    alarms = message.header.get("alarms")
    if not _is_map_list(alarms):
        raise _bad("alarms 'alarms'", alarms, "a list of maps")
    for entry in alarms:
        if not (_is_int(entry.get("id")) and _is_int(entry.get("sat"))
                and -1 <= entry["sat"] < MAX_SATELLITES):
            raise _bad("alarm 'id'/'sat'", entry.get("id"), "integers")
        for key in ("kind", "parameter", "message", "severity"):
            if not isinstance(entry.get(key), str):
                raise _bad(f"alarm {key!r}", entry.get(key), "a string")
        if entry.get("state") not in ALARM_STATES:
            raise _bad("alarm 'state'", entry.get("state"), " or ".join(ALARM_STATES))


def check_heartbeat(message: Message) -> None:
    """Raise `WireError` unless an ``hb``'s clock keys have their documented types."""
    _clock_keys(message.header, "hb")


def _is_map_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(x, dict) for x in value)


def check_meta(body: Any) -> None:
    """Raise `WireError` unless ``body`` (a ``meta`` header, or a ``meta`` reply) can be used.

    ``sats.n`` is a count and ``sats.names``, ``ids``, ``groups`` are lists of that
    length; ``stations`` a list of maps with a name and finite coordinates; ``fields`` a
    list of catalog entries (string name, wire dtype, shape of ints, limits a map of
    numbers); ``scenario``, ``clock`` and ``subsystems`` maps.
    """
    if not isinstance(body, dict):
        raise _bad("meta", body, "a map")
    sats = body.get("sats")
    if not isinstance(sats, dict) or not _count(sats.get("n")):
        raise _bad("meta 'sats'", sats, f"a map with a count 'n' from 1 to {MAX_SATELLITES:,}")
    n = sats["n"]
    for key in ("names", "ids", "groups", "norad_ids"):
        if key in sats and not (isinstance(sats[key], list) and len(sats[key]) == n):
            raise _bad(f"meta 'sats.{key}'", sats[key], f"a list of {n}")
    for key in ("scenario", "clock", "subsystems"):
        _optional(body, key, lambda v: isinstance(v, dict), "a map", "meta")
    stations = body.get("stations", [])
    if not _is_map_list(stations):
        raise _bad("meta 'stations'", stations, "a list of maps")
    for station in stations:
        if not isinstance(station.get("name", ""), str):
            raise _bad("meta station name", station.get("name"), "a string")
        for key in ("lat_deg", "lon_deg", "alt_m"):
            _optional(station, key, _is_number, "a finite number", "meta station")
    fields = body.get("fields", [])
    if not _is_map_list(fields):
        raise _bad("meta 'fields'", fields, "a list of maps")
    for entry in fields:
        _check_catalog_entry(entry)


def _check_catalog_entry(entry: dict[str, Any]) -> None:
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise _bad("meta field name", name, "a string")
    shape = entry.get("shape")
    if not isinstance(shape, list) or not all(_is_int(k) and k >= 0 for k in shape):
        raise _bad(f"meta field {shorten(name, 40)} shape", shape, "a list of counts")
    _optional(entry, "dtype", lambda v: isinstance(v, str) and v in WIRE_DTYPES,
              "a wire dtype", "meta field")
    for key in ("unit", "description"):
        _optional(entry, key, lambda v: isinstance(v, str), "a string", "meta field")
    _optional(entry, "per_sat", lambda v: isinstance(v, bool), "a bool", "meta field")
    _optional(entry, "limits", lambda v: isinstance(v, dict) and all(
        isinstance(k, str) and isinstance(x, int | float) and not isinstance(x, bool)
        for k, x in v.items()), "a map of numbers", "meta field")

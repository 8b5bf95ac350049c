"""Fuzzed scenarios: a valid file, mutated, either loads and steps or is a clean ScenarioError.

The start is a small valid scenario with every subsystem table at its defaults (read from
the parameter dataclasses that twin.paramdoc documents). Hypothesis then replaces values
with wrong types, NaN, infinities, huge, negative and boundary numbers, removes, misspells
and adds keys, and swaps tables for arrays. Loading may only succeed or raise
``ScenarioError`` that points into the file; a scenario that loads must build an Engine
whose first steps give finite numbers.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from datetime import UTC, datetime
from typing import Any

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from twin.astro.constellation import SunSynchronousShell, WalkerShell
from twin.core.clock import SimClock
from twin.core.engine import Engine
from twin.scenario import ClockSettings, GroundStation, ScenarioError, parse_scenario
from twin.scenario.paramdoc import SECTIONS

SOURCE = "fuzz.toml"
MAX_STEPPED_SATS = 300
"""Scenarios that load with more satellites are not stepped: the fuzz stays fast."""


def _defaults(cls: type) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for spec in dataclasses.fields(cls):
        if spec.default is not dataclasses.MISSING:
            value = spec.default
        elif spec.default_factory is not dataclasses.MISSING:
            value = spec.default_factory()
        else:
            continue
        if dataclasses.is_dataclass(value):
            value = _defaults(type(value))
        elif isinstance(value, tuple):
            value = list(value)
        if value is not None:
            table[spec.name] = value
    return table


BASE: dict[str, Any] = {
    "scenario": {"name": "fuzz", "epoch": "2026-03-20T12:00:00Z", "seed": 3},
    "clock": {"rate_hz": 10.0, "warp": 60.0},
    "walker": [{"name": "w", "altitude_km": 550.0, "inclination_deg": 53.0, "planes": 2,
                "sats_per_plane": 2, "phasing": 1}],
    "sun_synchronous": [{"name": "s", "altitude_km": 650.0, "ltan_h": 18.0, "planes": 1,
                         "sats_per_plane": 2}],
    "station": [{"name": "Svalbard", "lat_deg": 78.23, "lon_deg": 15.41, "alt_m": 500.0}],
    **{name: _defaults(cls) for name, cls in SECTIONS},
}

# Field metadata per table, for boundary values.
_CLASSES: dict[str, type] = {"clock": ClockSettings, "walker": WalkerShell,
                             "sun_synchronous": SunSynchronousShell, "station": GroundStation,
                             **dict(SECTIONS)}


def _metadata(section: str, key: str) -> dict[str, Any]:
    cls = _CLASSES.get(section)
    fields = {f.name: f for f in dataclasses.fields(cls)} if cls else {}
    return dict(fields[key].metadata) if key in fields else {}


# ------------------------------------------------------------------------------------------
# A small TOML writer (tomllib reads only): inline values, tables and arrays of tables.


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def to_toml(doc: dict[str, Any]) -> str:
    top = [f"{json.dumps(k)} = {_value(v)}" for k, v in doc.items()
           if not isinstance(v, dict) and not (isinstance(v, list) and v
                                               and all(isinstance(i, dict) for i in v))]
    lines = [*top, ""]
    for key, value in doc.items():
        if isinstance(value, dict):
            lines.append(f"[{json.dumps(key)}]")
            lines += [f"{json.dumps(k)} = {_value(v)}" for k, v in value.items()]
        elif isinstance(value, list) and value and all(isinstance(i, dict) for i in value):
            for item in value:
                lines.append(f"[[{json.dumps(key)}]]")
                lines += [f"{json.dumps(k)} = {_value(v)}" for k, v in item.items()]
        lines.append("")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------
# Mutations

WEIRD = st.sampled_from([
    math.nan, math.inf, -math.inf, 1e308, -1e308, 1e-300, -1.0, 0, 0.0, -0, 2**63 - 1, -2**63,
    10**6, "", "x", "550", "nan", "2060-01-01T00:00:00Z", True, False, [], [1, 2], [[]],
    {}, {"a": 1}, [{"a": 1}], datetime(2026, 3, 20, tzinfo=UTC), "é" * 300,
])


def _tables(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every (section name, table) in the document, arrays of tables item by item."""
    found = []
    for name, value in doc.items():
        if isinstance(value, dict):
            found.append((name, value))
            found += [(name, v) for v in value.values() if isinstance(v, dict)]
        elif isinstance(value, list):
            found += [(name, item) for item in value if isinstance(item, dict)]
    return found


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    doc = json.loads(json.dumps(BASE))  # a deep copy of plain data
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["in_range", "in_range", "in_range", "value", "value",
                                     "bound", "remove", "misspell", "add", "shape",
                                     "section"]))
        tables = _tables(doc)
        if kind == "section":
            name = draw(st.sampled_from([*BASE, "walkr", "thermals", "x"]))
            doc[name] = draw(st.one_of(WEIRD, st.just([]), st.just({})))
            continue
        if not tables:
            continue
        section, table = draw(st.sampled_from(tables))
        keys = sorted(table)
        if kind == "add" or not keys:
            table[draw(st.sampled_from(["extra", "Name", "altitude", "rate"]))] = draw(WEIRD)
            continue
        key = draw(st.sampled_from(keys))
        if kind == "value":
            table[key] = draw(WEIRD)
        elif kind == "in_range":
            meta = _metadata(section, key)
            low = meta.get("min", meta.get("gt"))
            high = meta.get("max", meta.get("lt"))
            if isinstance(table[key], bool) or low is None or high is None:
                continue
            if isinstance(table[key], int):
                # Counts stay small: the fuzz is about values, not about fleet size.
                table[key] = draw(st.integers(int(low), int(min(high, low + 64))))
            else:
                table[key] = draw(st.floats(float(low), float(high),
                                            exclude_min="gt" in meta, exclude_max="lt" in meta))
        elif kind == "bound":
            meta = _metadata(section, key)
            edges = [meta[b] for b in ("min", "max", "gt", "lt") if b in meta]
            if edges:
                edge = draw(st.sampled_from(edges))
                table[key] = draw(st.sampled_from(
                    [edge, edge * (1 + 1e-12) if edge else 1e-12, edge - 1, edge + 1]))
        elif kind == "remove":
            del table[key]
        elif kind == "misspell":
            table[key[:-1] or "k"] = table.pop(key)
        elif kind == "shape":
            # A table where an array of tables belongs, or the other way round.
            if isinstance(doc.get(section), list):
                doc[section] = doc[section][0] if doc[section] else {}
            else:
                doc[section] = [doc[section]]
    return doc


SLOW_SECTIONS = ("compute", "workload")
"""Loaded and built, but not stepped when mutated: valid extremes (arrival rates and an
initial backlog that queue up to workload.max_queue = 10 million jobs, added one by one)
make a step take minutes. Radiation is stepped: past 10,000 upsets a step, its draw
saturates (``upsets_saturated``)."""


NO_CAP_IS_INF = {"compute_cap_w", "power_cap_w", "relay_latency_s", "user_latency_s",
                 "user_target_latency_s"}
"""Fields where +inf is a value by design: "no cap in force", "no route" (links)."""


def _finite_where_flying(engine: Engine) -> None:
    """Every float field finite, except orbit rows of satellites SGP4 reports as failed."""
    failed = engine.orbit.status.array != 0
    for field in engine.fields:
        array = field.array
        if array.dtype.kind != "f":
            continue
        bad = ~np.isfinite(array)
        if field.spec.name in NO_CAP_IS_INF:
            bad &= ~np.isposinf(array)
        if field.spec.per_sat and array.ndim >= 1 and array.shape[0] == len(failed):
            bad &= failed.reshape((-1,) + (1,) * (array.ndim - 1)) == 0
        assert not bad.any(), f"{field.spec.name} has non-finite values"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_a_mutated_scenario_loads_and_steps_or_is_a_clean_error(doc: dict[str, Any]) -> None:
    text = to_toml(doc)
    try:
        scenario = parse_scenario(text, source=SOURCE)
        if len(scenario.satellites) > MAX_STEPPED_SATS:
            return
        clock = SimClock(scenario.epoch_utc, scenario.clock.rate_hz, scenario.clock.warp,
                         fast=True)
        engine = Engine(scenario, clock)
        if any(doc.get(name) != BASE[name] for name in SLOW_SECTIONS):
            event("built, not stepped (slow section mutated)")
            return
    except ScenarioError as exc:
        event("refused")
        message = str(exc)
        assert message.startswith(f"{SOURCE}: "), message
        if exc.key:
            section = exc.key.split(".")[0].split("[")[0]
            assert section in doc, (exc.key, message)
            assert message.startswith(f"{SOURCE}: {exc.key}: "), message
        assert "Traceback" not in message
        return
    event("loaded and stepped")
    check = _finite_where_flying
    check(engine)
    for _ in range(3):
        engine.step()
        check(engine)


def test_the_base_scenario_is_valid_and_covers_every_section() -> None:
    scenario = parse_scenario(to_toml(BASE), source=SOURCE)
    assert len(scenario.satellites) == 6
    assert set(scenario.sections) == {name for name, _ in SECTIONS}
    assert typing.get_type_hints(ClockSettings)  # the schema the bounds come from is typed

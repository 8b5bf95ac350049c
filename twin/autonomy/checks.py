"""Checks shared by timelines and rules: tables, keys, units, command maps.

Everything an autonomy file holds is data: a field name, an operator from a fixed set, a
threshold with its unit, and command maps checked against the command catalog as the
command socket would check them (twin.protocol.commands.check_request). Nothing is ever
evaluated as code. Every problem is a ``ScenarioError`` naming the file and the key
(``rule[2].when.op``).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from twin.core.subsystem import CommandRejected
from twin.protocol.commands import CommandSpec, SatelliteNames, check_request, is_finite_number
from twin.scenario.errors import ScenarioError, suggest

OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
    "==": operator.eq, "!=": operator.ne,
}
"""The only comparisons a condition may use (numpy ufuncs through the operator module)."""
OPPOSITE = {">": "<=", ">=": "<", "<": ">=", "<=": ">", "==": "!=", "!=": "=="}
"""A condition's negation: what holds while a rule clears."""

# Threshold unit -> (field unit, to SI). Identity for a field's own unit is always allowed.
UNIT_CONVERSIONS: dict[tuple[str, str], Callable[[float], float]] = {
    ("degC", "K"): lambda x: x + 273.15,
    ("%", "1"): lambda x: x / 100.0,
    ("kW", "W"): lambda x: x * 1e3,
    ("h", "s"): lambda x: x * 3600.0,
    ("min", "s"): lambda x: x * 60.0,
}
MAX_ACTIONS = 8
"""Command maps per rule action list or timeline entry: a few, never a script."""


class Table:
    """One ``[[rule]]`` or ``[[timeline]]`` table (or a nested inline table) with its key
    path, so every error names file and key."""

    def __init__(self, source: str, key: str, raw: Any, allowed: set[str]) -> None:
        if not isinstance(raw, Mapping):
            raise ScenarioError(source, key, f"must be a table, got {type(raw).__name__}")
        for name in raw:
            if name not in allowed:
                raise ScenarioError(source, f"{key}.{name}", f"unknown key.{suggest(name, allowed)}"
                                    f" Known keys: {', '.join(sorted(allowed))}")
        self.source, self.key, self.raw = source, key, raw

    def error(self, name: str, problem: str) -> ScenarioError:
        return ScenarioError(self.source, f"{self.key}.{name}" if name else self.key, problem)

    def has(self, name: str) -> bool:
        return name in self.raw

    def text(self, name: str, default: str | None = None, choices: tuple[str, ...] = ()) -> str:
        value = self.raw.get(name, default)
        if value is None:
            raise self.error(name, "required (a string)")
        if not isinstance(value, str) or not value.strip() or len(value) > 200:
            raise self.error(name, f"must be a non-empty string, got {value!r:.60}")
        if choices and value not in choices:
            raise self.error(name, f"{value!r:.60} is not one of {', '.join(choices)}")
        return value

    def number(self, name: str, default: float | None = None, low: float = 0.0,
               high: float = 1e12) -> float:
        value = self.raw.get(name, default)
        if value is None:
            raise self.error(name, "required (a number)")
        if not is_finite_number(value) or not low <= value <= high:
            raise self.error(name, f"must be a number in [{low:g}, {high:g}], got {value!r:.60}")
        return float(value)

    def table(self, name: str, allowed: set[str], default: Any = None) -> Table:
        raw = self.raw.get(name, default)
        if raw is None:
            raise self.error(name, "required (a table)")
        return Table(self.source, f"{self.key}.{name}", raw, allowed)


def threshold_in_field_unit(table: Table, field_unit: str, name: str = "threshold") -> float:
    """The table's threshold converted into the field's unit (its ``unit`` key names its
    own; absent means the field's)."""
    value = table.number(name, low=-1e18, high=1e18)
    unit = table.raw.get("unit", field_unit)
    if unit == field_unit:
        return value
    convert = UNIT_CONVERSIONS.get((unit, field_unit)) if isinstance(unit, str) else None
    if convert is None:
        known = sorted(u for u, f in UNIT_CONVERSIONS if f == field_unit)
        raise table.error("unit", f"{unit!r:.40} does not convert to the field's unit "
                          f"{field_unit!r}; use {', '.join([repr(field_unit), *known])}")
    return convert(value)


def check_commands(table: Table, name: str, specs: Mapping[str, CommandSpec],
                   satellites: SatelliteNames, node_sat: bool) -> tuple[dict[str, Any], ...]:
    """The command maps under ``name``, each checked against the catalog.

    Args:
        node_sat: The maps act on the rule's node: ``sat`` must not be given (it is filled
            in with the firing node) and is checked with node 0 standing in.

    Raises:
        ScenarioError: An unknown command or a request its declaration refuses, naming
            ``key.name[i]``.
    """
    raw = table.raw.get(name)
    if isinstance(raw, Mapping):
        raw = [raw]
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_ACTIONS:
        raise table.error(name, f"must be a command map or a list of 1 to {MAX_ACTIONS}, "
                          "e.g. {cmd = \"set_power_cap\", power_w = 6000.0}")
    commands = []
    for i, request in enumerate(raw):
        where = f"{name}[{i}]"
        if not isinstance(request, Mapping) or not isinstance(request.get("cmd"), str):
            raise table.error(where, "must be a command map with a string 'cmd', as on the "
                              "command socket")
        cmd = request["cmd"]
        spec = specs.get(cmd)
        if spec is None:
            raise table.error(f"{where}.cmd", f"unknown command {cmd!r:.60}."
                              f"{suggest(cmd, specs)} Known: {', '.join(sorted(specs))}")
        request = dict(request)
        if node_sat:
            if "sat" in request:
                raise table.error(f"{where}.sat", "a rule acts on the node it fires on: leave "
                                  "'sat' out (it is filled in)")
            if "sat" not in {arg.name for arg in spec.args}:
                raise table.error(f"{where}.cmd", f"{cmd} takes no 'sat': a rule's action "
                                  "acts on its node")
            probe = {**request, "sat": 0}
        else:
            probe = request
        try:
            check_request(spec, probe, satellites)
        except CommandRejected as exc:
            raise table.error(where, f"{cmd}: {exc}") from exc
        commands.append(request)
    return tuple(commands)


def per_node_field(table: Table, name: str, fields: Mapping[str, Any], n_sats: int) -> Any:
    """The per-node field named by ``table[name]`` (an ``(n,)`` array of numbers)."""
    field_name = table.text(name)
    field = fields.get(field_name)
    if field is None:
        raise table.error(name, f"unknown field {field_name!r:.60}.{suggest(field_name, fields)}"
                          " Fields are in meta.fields (docs/protocol.md)")
    if field.array.shape != (n_sats,) or field.array.dtype.kind not in "biuf":
        raise table.error(name, f"{field_name} is not a per-node number (shape "
                          f"{field.array.shape}); a condition reads one value per node")
    return field


def holding(value: np.ndarray, op: str, threshold: float) -> np.ndarray:
    """Where ``value op threshold`` holds, NaN never holding (an unknown is not a breach)."""
    with np.errstate(invalid="ignore"):
        result = np.asarray(OPERATORS[op](value, threshold), dtype=bool)
    if value.dtype.kind == "f":
        result &= np.isfinite(value)  # NaN != x is True, yet NaN is no reading at all
    return result

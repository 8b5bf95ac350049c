"""On-board rules (FDIR): a condition on a node's field held for a time fires actions on it.

A rule is data (``[[rule]]`` in the scenario, docs/procedures.md)::

    [[rule]]
    name = "junction_hot"
    when = { field = "temp_junction_k", op = ">", threshold = 95.0, unit = "degC", for_s = 30 }
    clear = { threshold = 90.0, unit = "degC", for_s = 60 }
    actions = [ { cmd = "set_power_cap", power_w = 6000.0 } ]
    clear_actions = [ { cmd = "set_power_cap" } ]

Evaluated once per step over the whole fleet as array comparisons; every per-node timer is
an array. For each node the rule is *armed* until it fires, then *latched* until its clear
condition (the opposite comparison against the clear threshold, the firing threshold by
default) has held for ``clear.for_s``: that is the hysteresis. A token bucket per node
allows at most ``max_firings`` per ``rate_window_s``. ``when.increase_over_s`` makes the
condition apply to a counter's increase over that window (``upsets`` rising by 3 in an
hour), sampled in ``WINDOW_BUCKETS`` buckets.

Timing: a condition first seen at the step ending at t0 fires at the first step ending at
or after t0 + for_s; a condition that began inside a step is seen at that step's end, so
a firing is late by at most one step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from twin.autonomy.checks import (
    OPERATORS,
    OPPOSITE,
    Table,
    check_commands,
    holding,
    per_node_field,
    threshold_in_field_unit,
)
from twin.protocol.commands import CommandSpec, SatelliteNames
from twin.scenario.errors import ScenarioError

GATES = ("none", "contact", "confirm")
"""``none``: act at once; ``contact``: act at the node's next ground contact; ``confirm``:
at the next contact ask the ground, act on ``rule_confirm``."""
SEVERITIES = ("warning", "alarm")
WINDOW_BUCKETS = 60
MAX_RULES = 64
MAX_EVENTS_PER_RULE_STEP = 20
"""Firing events of one rule in one step; past it one summary event counts the rest (every
action is still audited in the file)."""
RULE_KEYS = {"name", "description", "when", "clear", "actions", "clear_actions", "gate",
             "max_firings", "rate_window_s", "severity", "enabled"}
WHEN_KEYS = {"field", "op", "threshold", "unit", "for_s", "increase_over_s"}
CLEAR_KEYS = {"threshold", "unit", "for_s"}

Dispatch = Callable[[dict[str, Any], str], dict[str, Any]]
"""Runs a command map as the named actor through the command path; returns the reply."""


@dataclass(frozen=True)
class RuleSpec:
    """One validated rule (thresholds in the field's unit)."""

    name: str
    description: str
    field: str
    op: str
    threshold: float
    for_s: float
    increase_over_s: float
    clear_threshold: float
    clear_for_s: float
    actions: tuple[dict[str, Any], ...]
    clear_actions: tuple[dict[str, Any], ...]
    gate: str
    max_firings: int
    rate_window_s: float
    severity: str
    enabled: bool
    unit: str

    @property
    def actor(self) -> str:
        """Who the audit names for this rule's commands."""
        return f"rule:{self.name}"


def parse_rules(raw: Any, source: str, fields: Mapping[str, Any], n_sats: int,
                specs: Mapping[str, CommandSpec], satellites: SatelliteNames
                ) -> tuple[RuleSpec, ...]:
    """Validate ``[[rule]]`` tables against the field and command catalogs.

    Raises:
        ScenarioError: Naming the file and key (``rule[1].when.op``).
    """
    if not isinstance(raw, list) or len(raw) > MAX_RULES:
        raise ScenarioError(source, "rule", f"must be [[rule]] tables, at most {MAX_RULES}")
    rules: list[RuleSpec] = []
    for i, item in enumerate(raw):
        table = Table(source, f"rule[{i}]", item, RULE_KEYS)
        name = table.text("name")
        if any(r.name == name for r in rules) or not name.replace("_", "").replace(
                "-", "").isalnum():
            raise table.error("name", f"{name!r:.60} must be unique, letters, digits, _ and -")
        when = table.table("when", WHEN_KEYS)
        field = per_node_field(when, "field", fields, n_sats)
        op = when.text("op")
        if op not in OPERATORS:
            raise when.error("op", f"{op!r:.20} is not an operator; one of "
                             f"{' '.join(OPERATORS)}")
        unit = field.spec.unit
        threshold = threshold_in_field_unit(when, unit)
        clear = table.table("clear", CLEAR_KEYS, default={})
        clear_threshold = (threshold_in_field_unit(clear, unit) if clear.has("threshold")
                           else threshold)
        if (op in (">", ">=") and clear_threshold > threshold) or \
                (op in ("<", "<=") and clear_threshold < threshold):
            raise clear.error("threshold", "clears on the far side of the firing threshold: "
                              "a rule must clear before it can fire again")
        rules.append(RuleSpec(
            name=name, description=str(table.raw.get("description", ""))[:200],
            field=field.spec.name, op=op, threshold=threshold,
            for_s=when.number("for_s", 0.0, 0.0, 30 * 86400.0),
            increase_over_s=when.number("increase_over_s", 0.0, 0.0, 30 * 86400.0),
            clear_threshold=clear_threshold,
            clear_for_s=clear.number("for_s", 0.0, 0.0, 30 * 86400.0),
            actions=check_commands(table, "actions", specs, satellites, node_sat=True),
            clear_actions=(check_commands(table, "clear_actions", specs, satellites, True)
                           if table.has("clear_actions") else ()),
            gate=table.text("gate", "none", GATES),
            max_firings=int(table.number("max_firings", 1, 1, 1000)),
            rate_window_s=table.number("rate_window_s", 3600.0, 1.0, 30 * 86400.0),
            severity=table.text("severity", "warning", SEVERITIES),
            enabled=_flag(table, "enabled"), unit=unit))
    return tuple(rules)


def _flag(table: Table, name: str) -> bool:
    value = table.raw.get(name, True)
    if not isinstance(value, bool):
        raise table.error(name, f"must be true or false, got {value!r:.40}")
    return value


class RuleState:
    """One rule over the fleet: its per-node timers and latches as arrays.

    Args:
        spec: The validated rule.
        n_sats: Nodes in the fleet.
        t_utc: Simulation time now (the counter window starts here).
    """

    def __init__(self, spec: RuleSpec, n_sats: int, t_utc: float) -> None:
        self.spec = spec
        self.enabled = spec.enabled
        self.since = np.full(n_sats, np.nan)        # condition holding since (s)
        self.clear_since = np.full(n_sats, np.nan)  # clear condition holding since (s)
        self.latched = np.zeros(n_sats, bool)       # fired, not yet cleared
        self.waiting = np.zeros(n_sats, bool)       # fired, gated: waiting for contact
        self.asking = np.zeros(n_sats, bool)        # gate confirm: the ground was asked
        self.tokens = np.full(n_sats, float(spec.max_firings))
        self.firings = np.zeros(n_sats, np.int64)
        self.suppressed = np.zeros(n_sats, np.int64)  # ready but over the rate limit
        self._ring: np.ndarray | None = None
        self._ring_index = 0
        self._next_sample = t_utc
        self._bucket_s = spec.increase_over_s / WINDOW_BUCKETS

    def reset(self) -> None:
        """Disabled: forget timers and latches (enabling it again starts afresh)."""
        self.since[:] = np.nan
        self.clear_since[:] = np.nan
        self.latched[:] = False
        self.waiting[:] = False
        self.asking[:] = False

    def value(self, array: np.ndarray, t_utc: float) -> np.ndarray:
        """The compared value: the field, or its increase over ``increase_over_s``."""
        value = np.asarray(array, dtype=np.float64)
        if not self.spec.increase_over_s:
            return value
        if self._ring is None:
            self._ring = np.repeat(value[None, :], WINDOW_BUCKETS, axis=0)
        while t_utc >= self._next_sample:  # a sample per bucket; the oldest ~ a window ago
            self._ring[self._ring_index % WINDOW_BUCKETS] = value
            self._ring_index += 1
            self._next_sample += self._bucket_s
        return value - self._ring[self._ring_index % WINDOW_BUCKETS]

    def evaluate(self, array: np.ndarray, t_utc: float, dt_s: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Advance one step: (nodes that fire, nodes that clear, the compared values)."""
        spec = self.spec
        value = self.value(array, t_utc)
        holds = holding(value, spec.op, spec.threshold)
        self.since = np.where(holds, np.where(np.isnan(self.since), t_utc, self.since), np.nan)
        self.tokens = np.minimum(self.tokens + dt_s * spec.max_firings / spec.rate_window_s,
                                 spec.max_firings)
        ready = holds & ~self.latched & (t_utc - self.since >= spec.for_s - 1e-9)
        fire = ready & (self.tokens >= 1.0)
        self.suppressed += ready & ~fire
        self.tokens -= fire
        self.firings += fire
        self.latched |= fire
        clears = self.latched & holding(value, OPPOSITE[spec.op], spec.clear_threshold)
        self.clear_since = np.where(clears, np.where(np.isnan(self.clear_since), t_utc,
                                                     self.clear_since), np.nan)
        cleared = clears & (t_utc - self.clear_since >= spec.clear_for_s - 1e-9)
        self.latched &= ~cleared
        self.clear_since[cleared] = np.nan
        return fire, cleared, value

    def entry(self) -> dict[str, Any]:
        """What ``rule_list`` and ``meta.rules`` show."""
        spec = self.spec
        return {"name": spec.name, "description": spec.description, "enabled": self.enabled,
                "field": spec.field, "op": spec.op, "threshold": spec.threshold,
                "unit": spec.unit, "for_s": spec.for_s, "increase_over_s": spec.increase_over_s,
                "clear_threshold": spec.clear_threshold, "clear_for_s": spec.clear_for_s,
                "gate": spec.gate, "max_firings": spec.max_firings,
                "rate_window_s": spec.rate_window_s,
                "actions": [a["cmd"] for a in spec.actions],
                "firings": int(self.firings.sum()), "latched": int(self.latched.sum()),
                "waiting": np.flatnonzero(self.waiting).tolist()[:100],
                "asking": np.flatnonzero(self.asking).tolist()[:100],
                "suppressed": int(self.suppressed.sum())}



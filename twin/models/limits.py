"""Limit monitoring: warning and alarm levels with hysteresis on any per-satellite field.

A field declares its operating limits in ``FieldSpec.limits`` (``warn_low``, ``warn_high``,
``alarm_low``, ``alarm_high``, in the field's unit); a scenario's ``[limits]`` table may
override or add them per field. Each step, every monitored field is classified for the whole
fleet at once. A value enters a level when it crosses the level's threshold and leaves it
only when it is back by the hysteresis, so a value sitting on a threshold raises one event,
not one per step. Entering a level raises ``limit`` (severity ``warning`` or ``alarm``);
returning within all limits raises ``limit_clear`` (``info``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from twin.core.subsystem import CommandHandler, EventLog, Field, StepContext, make_field
from twin.scenario import Scenario, ScenarioError

LEVEL_KEYS = ("alarm_low", "warn_low", "warn_high", "alarm_high")
DEFAULT_HYSTERESIS_BY_UNIT = {"K": 1.0, "1": 0.01, "W": 10.0}
"""Hysteresis, in the field's unit, where neither the scenario nor a rule below gives one."""
_LEVEL_NAMES = {1: "warn", 2: "alarm"}
_NO_CHANGE = np.empty(0, dtype=np.intp)
_NO_CHANGE.flags.writeable = False


@dataclass(frozen=True)
class LimitLevels:
    """Thresholds of one field, in its unit; ``None`` where a level is not set.

    Attributes:
        alarm_low, warn_low, warn_high, alarm_high: Thresholds. A value at or beyond a
            threshold is in that level.
        hysteresis: How far back inside a threshold a value must come to leave the level.
    """

    alarm_low: float | None = None
    warn_low: float | None = None
    warn_high: float | None = None
    alarm_high: float | None = None
    hysteresis: float = 0.0

    def problem(self) -> str | None:
        """Why these levels are inconsistent, or None when they are fine."""
        present = [(k, getattr(self, k)) for k in LEVEL_KEYS if getattr(self, k) is not None]
        if not present:
            return "no level set: give at least one of " + ", ".join(LEVEL_KEYS)
        for (k1, v1), (k2, v2) in itertools.pairwise(present):
            if not v1 <= v2 or ("low" in k1 and "high" in k2 and not v1 < v2):
                return f"{k1} = {v1:g} must be below {k2} = {v2:g}"
        if self.hysteresis < 0.0 or not math.isfinite(self.hysteresis):
            return f"hysteresis = {self.hysteresis:g} must be a number >= 0"
        lows = [v for k, v in present if "low" in k]
        highs = [v for k, v in present if "high" in k]
        if lows and highs and self.hysteresis >= max(highs[0] - lows[-1], 0.0):
            return (f"hysteresis = {self.hysteresis:g} must be smaller than the gap between"
                    f" the highest low level ({lows[-1]:g}) and the lowest high level"
                    f" ({highs[0]:g})")
        return None

    def as_dict(self) -> dict[str, float]:
        """The set levels, as published in ``FieldSpec.limits``."""
        return {k: float(getattr(self, k)) for k in LEVEL_KEYS if getattr(self, k) is not None}

    def threshold(self, state: int) -> tuple[str, float]:
        """Level name and threshold of a signed state (+1 warn high ... -2 alarm low)."""
        key = f"{_LEVEL_NAMES[abs(state)]}_{'high' if state > 0 else 'low'}"
        value = getattr(self, key)
        if value is None:  # an alarm without a warning level (or the reverse)
            key = f"{_LEVEL_NAMES[3 - abs(state)]}_{'high' if state > 0 else 'low'}"
            value = getattr(self, key)
        return key, float(value)


def default_hysteresis(unit: str, levels: Mapping[str, float]) -> float:
    """1 K for temperatures, 0.01 for fractions, 10 W for powers, else 1% of the largest
    threshold magnitude (capped below the low-high gap by the caller's validation)."""
    if unit in DEFAULT_HYSTERESIS_BY_UNIT:
        return DEFAULT_HYSTERESIS_BY_UNIT[unit]
    return 0.01 * max((abs(v) for v in levels.values()), default=0.0)


class LimitMonitor:
    """Classifies one per-satellite array against its levels, with hysteresis, per step.

    The state of each satellite is signed: 0 within limits, +1/+2 at warning/alarm high,
    -1/-2 at warning/alarm low. Usable on its own by any subsystem.

    Args:
        field_name: Name shown in events (the wire field's name).
        unit: Unit shown in events.
        levels: The thresholds.
        n_sats: Satellites.
    """

    def __init__(self, field_name: str, unit: str, levels: LimitLevels, n_sats: int) -> None:
        why = levels.problem()
        if why:
            raise ValueError(f"limits of {field_name}: {why}")
        self.field_name = field_name
        self.unit = unit
        self.levels = levels
        self._n_out = 0  # satellites not within limits (state != 0)
        self.state = np.zeros(n_sats, dtype=np.int8)
        # An absent level is NaN: no value reaches it, not even an infinite one
        # (``nn_dist_m`` is +inf on nodes outside any cluster, which has only low levels).
        nan = math.nan
        self._wh = nan if levels.warn_high is None else levels.warn_high
        self._ah = nan if levels.alarm_high is None else levels.alarm_high
        self._wl = nan if levels.warn_low is None else levels.warn_low
        self._al = nan if levels.alarm_low is None else levels.alarm_low
        # The innermost levels: a satellite within limits whose value lies strictly between
        # them stays within limits, whatever the hysteresis.
        self._inner_high = min((v for v in (self._wh, self._ah) if not math.isnan(v)),
                               default=math.inf)
        self._inner_low = max((v for v in (self._wl, self._al) if not math.isnan(v)),
                              default=-math.inf)

    @property
    def state(self) -> np.ndarray:
        """(n,) int8 signed states; replaced (not modified) when a state changes."""
        return self._state

    @state.setter
    def state(self, value: np.ndarray) -> None:
        self._state = value
        self._n_out = int(np.count_nonzero(value))

    @property
    def n_out(self) -> int:
        """Satellites not within limits (state != 0)."""
        return self._n_out

    def forget(self, nodes: np.ndarray, events: EventLog, values: np.ndarray,
               sat_names: list[str]) -> None:
        """Stop watching ``nodes`` (out of service): those in a level return to normal,
        with a ``limit_clear`` each (the alarm table clears on it) that says why."""
        held = nodes[self._state[nodes] != 0]
        if not held.size:
            return
        old = self._state[held].astype(np.int64)
        new = self._state.copy()
        new[held] = 0
        self.state = new
        states = np.unique(old)  # at most four levels: the loop is over them, not nodes
        keys, limits = zip(*(self.levels.threshold(int(k)) for k in states), strict=True)
        at = np.searchsorted(states, old)

        def message(i: int) -> str:
            node = int(held[i])
            name = sat_names[node] if node < len(sat_names) else f"sat {node}"
            return f"{name}: {self.field_name} no longer watched (node out of service)"

        events.raise_node_events(
            "limit_clear", "info", held, message, field=self.field_name,
            value=values[held].astype(np.float64), level="ok",
            cleared=np.array(keys)[at], limit=np.array(limits, dtype=np.float64)[at],
            unit=self.unit)

    def _high(self, values: np.ndarray) -> np.ndarray:
        return np.where(values >= self._ah, 2, (values >= self._wh).astype(np.int8))

    def _low(self, values: np.ndarray) -> np.ndarray:
        return np.where(values <= self._al, 2, (values <= self._wl).astype(np.int8))

    def update(self, values: np.ndarray) -> np.ndarray:
        """Classify ``values`` ((n,), the field's unit); returns indices whose state changed.

        A level is entered at its threshold and kept until the value is back inside it by
        the hysteresis: new = max(level(v), min(old, level(v ± h))). NaN keeps the old state.
        """
        old = self.state
        # Almost every satellite is within limits and well inside them: the rule can only
        # change (or keep non-zero) the state of the others, so it runs on those alone.
        # With no satellite out of limits, two reductions usually settle the whole fleet
        # (NaN makes both comparisons false and takes the careful path).
        if not self._n_out and values.size and (
                values.min() > self._inner_low and values.max() < self._inner_high):
            return _NO_CHANGE
        inside = values > self._inner_low
        inside &= values < self._inner_high
        if self._n_out:
            inside &= old == 0
        candidates = np.flatnonzero(~inside)  # NaN is a candidate: it keeps its state
        if not candidates.size:
            return _NO_CHANGE
        v = values[candidates]
        before = old[candidates]
        after = self._rule(v, before)
        moved = after != before
        if not moved.any():
            return _NO_CHANGE
        changed = candidates[moved]
        new = old.copy()
        new[changed] = after[moved]
        self.state = new
        return changed

    def _rule(self, values: np.ndarray, old: np.ndarray) -> np.ndarray:
        """new = max(level(v), min(old, level(v ± h))), per side; NaN keeps ``old``."""
        h = self.levels.hysteresis
        old_high = np.maximum(old, 0)
        old_low = np.maximum(-old, 0)
        high = np.maximum(self._high(values), np.minimum(old_high, self._high(values + h)))
        low = np.maximum(self._low(values), np.minimum(old_low, self._low(values - h)))
        return np.where(np.isnan(values), old, high - low).astype(np.int8)

    def raise_events(self, events: EventLog, changed: np.ndarray, previous: np.ndarray,
                     values: np.ndarray, sat_names: list[str]) -> None:
        """One event per satellite whose state changed (``previous`` = states before)."""
        if changed.size > events.per_node_limit:  # a mass crossing: summaries, no loop
            self._raise_many(events, changed, previous, values, sat_names)
            return
        for i in changed:
            new, old = int(self.state[i]), int(previous[i])
            value = float(values[i])
            name = sat_names[i] if i < len(sat_names) else f"sat {i}"
            if new == 0:
                key, limit = self.levels.threshold(old)
                events.raise_event(
                    "limit_clear", "info",
                    f"{name}: {self.field_name} back within limits ({value:.4g} {self.unit})",
                    sat=int(i), field=self.field_name, value=value, level="ok",
                    cleared=key, limit=limit, unit=self.unit)
                continue
            key, limit = self.levels.threshold(new)
            side = "above" if new > 0 else "below"
            severity = "alarm" if abs(new) == 2 else "warning"
            back = " (down from alarm)" if abs(new) < abs(old) and new * old > 0 else ""
            events.raise_event(
                "limit", severity,
                f"{name}: {self.field_name} {value:.4g} {self.unit} {side} {key}"
                f" {limit:.4g}{back}",
                sat=int(i), field=self.field_name, value=value, level=key, limit=limit,
                unit=self.unit)


    def _raise_many(self, events: EventLog, changed: np.ndarray, previous: np.ndarray,
                    values: np.ndarray, sat_names: list[str]) -> None:
        """``raise_events`` for more nodes than a step publishes one by one: by kind and
        severity, each a summary past the threshold (twin.core.events)."""
        new = self.state[changed].astype(np.int64)
        for kind, severity, chosen in (
                ("limit_clear", "info", new == 0),
                ("limit", "warning", np.abs(new) == 1),
                ("limit", "alarm", np.abs(new) == 2)):
            nodes = changed[chosen]
            levels = np.array([self.levels.threshold(int(k))[0] if k else "ok"
                               for k in np.unique(new[chosen])])
            level = levels[np.searchsorted(np.unique(new[chosen]), new[chosen])] \
                if nodes.size else levels

            def message(i: int, nodes: np.ndarray = nodes, kind: str = kind) -> str:
                node = int(nodes[i])
                name = sat_names[node] if node < len(sat_names) else f"sat {node}"
                what = "back within limits" if kind == "limit_clear" else "outside limits"
                return (f"{name}: {self.field_name} {float(values[node]):.4g} {self.unit}"
                        f" {what}")

            events.raise_node_events(kind, severity, nodes, message, field=self.field_name,
                                     value=values[nodes].astype(np.float64), level=level,
                                     unit=self.unit)


FLEET_TOTALS: dict[str, tuple[str, str]] = {
    "n_limit_warning": ("count", "nodes whose worst state is a warning"),
    "n_limit_alarm": ("count", "nodes whose worst state is an alarm"),
}
"""The fleet totals this model publishes: name -> (unit, description) (meta.totals)."""


class LimitsModel:
    """Monitors every per-satellite field that has limits; steps last.

    Args:
        fields: The fields of the subsystems stepped before this one.
        scenario: Its ``[limits]`` table overrides levels and hysteresis per field, e.g.
            ``temp_compute_k = { warn_high = 350.0, alarm_high = 355.0, hysteresis = 2.0 }``.
            The effective levels are written back into each field's ``FieldSpec.limits``,
            so ``meta`` shows what is enforced.
        sat_names: Names for event messages.
    """

    name = "limits"
    reads: tuple[str, ...] = ()  # the fields it watches, given at construction
    publishes = None

    def __init__(self, fields: list[Field], scenario: Scenario | None = None,
                 sat_names: list[str] | None = None) -> None:
        n = len(scenario.satellites) if scenario is not None else (
            fields[0].array.shape[0] if fields else 0)
        self.n_sats = n
        self.sat_names = sat_names or (
            [s.name for s in scenario.satellites] if scenario is not None
            else [f"sat {i}" for i in range(n)])
        overrides = dict(scenario.sections.get("limits", {})) if scenario is not None else {}
        source = scenario.source if scenario is not None else "<limits>"
        by_name = {f.spec.name: f for f in fields}
        for key in overrides:
            target = by_name.get(key)
            if target is None or not _monitorable(target, n):
                candidates = sorted(k for k, f in by_name.items() if _monitorable(f, n))
                raise ScenarioError(source, f"limits.{key}", f"no per-satellite field named"
                                    f" {key!r} to monitor; fields: {', '.join(candidates)}")
        self.monitors: list[tuple[Field, LimitMonitor]] = []
        for f in fields:
            if not _monitorable(f, n) or not (f.spec.limits or f.spec.name in overrides):
                continue
            levels = _levels(f, overrides.get(f.spec.name), source)
            f.spec.limits.clear()
            f.spec.limits.update(levels.as_dict())
            self.monitors.append((f, LimitMonitor(f.spec.name, f.spec.unit, levels, n)))
        self.worst = make_field("limit_level", "|u1", (n,), "code",
                                "Worst limit state over monitored fields: 0 ok, 1 warning,"
                                " 2 alarm", labels={0: "ok", 1: "warning", 2: "alarm"})
        # Warning and alarm counts of ``worst``: known to be none while every satellite is
        # within limits (the usual step), else counted when asked.
        self._counts: tuple[int, int] | None = (0, 0)

    def fields(self) -> list[Field]:
        return [self.worst]

    def step(self, ctx: StepContext) -> None:
        worst = self.worst.array
        worst[:] = 0
        self._counts = (0, 0)
        # Nodes out of service (the lifecycle's, last step's) are not watched: a passivated
        # or re-entered node goes cold for good, and an alarm on it would never clear.
        lifecycle = getattr(ctx, "lifecycle", None)
        retired = None if lifecycle is None else lifecycle.out_of_service_nodes
        if retired is not None and not retired.size:
            retired = None
        for f, monitor in self.monitors:
            values = f.array
            if retired is not None:
                monitor.forget(retired, ctx.events, values, self.sat_names)
                values = values.astype(float)  # a copy: NaN keeps the (cleared) state
                values[retired] = np.nan
            previous = monitor.state
            changed = monitor.update(values)
            if monitor.n_out:  # all-zero states cannot raise the worst level
                np.maximum(worst, np.abs(monitor.state), out=worst, casting="unsafe")
                self._counts = None
            if changed.size:
                monitor.raise_events(ctx.events, changed, previous, values, self.sat_names)

    def fleet(self) -> dict[str, float]:
        if self._counts is None:
            worst = self.worst.array
            self._counts = (int(np.count_nonzero(worst == 1)), int(np.count_nonzero(worst == 2)))
        return {"n_limit_warning": self._counts[0], "n_limit_alarm": self._counts[1]}

    def meta(self) -> dict[str, Any]:
        return {"monitored": {
            f.spec.name: {**m.levels.as_dict(), "hysteresis": m.levels.hysteresis,
                          "unit": f.spec.unit}
            for f, m in self.monitors}}

    def commands(self) -> dict[str, CommandHandler]:
        return {}


def _monitorable(f: Field, n: int) -> bool:
    return (f.spec.per_sat and f.array.ndim == 1 and f.array.shape[0] == n
            and f.array.dtype.kind in "fiu")


def _levels(f: Field, override: Any, source: str) -> LimitLevels:
    """Merge a field's own limits with its ``[limits]`` override; validate."""
    key = f"limits.{f.spec.name}"
    values: dict[str, float] = dict(f.spec.limits)
    hysteresis = None
    if override is not None:
        if not isinstance(override, dict):
            raise ScenarioError(source, key, f"{override!r} is not a table: expected e.g."
                                f" {f.spec.name} = {{ warn_high = 350.0, alarm_high = 355.0 }}")
        for sub, value in override.items():
            if sub not in (*LEVEL_KEYS, "hysteresis"):
                raise ScenarioError(source, f"{key}.{sub}", f"unknown key: expected"
                                    f" {', '.join(LEVEL_KEYS)} or hysteresis")
            if isinstance(value, bool) or not isinstance(value, int | float) or not (
                    math.isfinite(value)):
                raise ScenarioError(source, f"{key}.{sub}", f"{value!r} is not a number: expected"
                                    f" a value in {f.spec.unit}")
            if sub == "hysteresis":
                hysteresis = float(value)
            else:
                values[sub] = float(value)
    if hysteresis is None:
        hysteresis = default_hysteresis(f.spec.unit, values)
    levels = LimitLevels(**{k: values.get(k) for k in LEVEL_KEYS}, hysteresis=hysteresis)
    why = levels.problem()
    if why:
        raise ScenarioError(source, key, why)
    return levels

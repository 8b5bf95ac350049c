"""The faults subsystem: which parts of each node are broken, as health multipliers.

Faults are injected and cleared by command (an operator rehearsing a failure, or a test).
The subsystem owns the fault state and publishes it (``FaultOutputs``) for the models that
feel it, 1.0 meaning healthy:

- ``accelerators_ok`` (n,) int: working accelerators (compute runs jobs only on these);
- ``radiator_health_frac`` (n,): fraction of radiator capacity left (thermal);
- ``solar_health_frac`` (n,): fraction of solar array output left (power);
- ``battery_health_frac`` (n,): fraction of battery capacity left, 0 = failed (power).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from twin.core.interfaces import FaultOutputs
from twin.core.subsystem import (
    CommandHandler,
    CommandRejected,
    Field,
    StepContext,
    make_field,
    only_keys,
)
from twin.protocol.codec import ok
from twin.protocol.commands import (
    Arg,
    CommandSpec,
    sat_arg,
)
from twin.scenario import Scenario

# Fault commands take effect at once, but their events wait for the next step: while paused
# a client could queue any number. Past this many, events are only counted, then summed.
MAX_PENDING_EVENTS = 1000

FAULT_KINDS: dict[str, int] = {"accelerator": 1, "radiator": 2, "battery": 4, "solar": 8}
"""Fault kind -> bit in the ``fault_flags`` field."""

DEFAULT_HEALTH_FRAC: dict[str, float] = {"radiator": 0.5, "battery": 0.0, "solar": 0.5}
"""Health left after an injected fault when the command gives no ``health_frac``: a radiator
loses half its capacity (one panel of two), a battery fails outright, a solar array loses
one wing of two."""


def health_frac(health: Any) -> np.ndarray:
    """A fault multiplier clipped to 0..1; NaN (unknown) counts as healthy."""
    return np.fmax(np.fmin(np.asarray(health, dtype=np.float64), 1.0), 0.0)


def degraded_frac(health: Any) -> np.ndarray | None:
    """``health_frac`` of a fault multiplier, or None when it is absent or every satellite is
    healthy (>= 1): the usual case costs one reduction instead of a clip and a product."""
    if health is None:
        return None
    values = np.asarray(health)
    if values.size == 0 or np.minimum.reduce(values, axis=None) >= 1.0:  # NaN: careful
        return None
    return health_frac(values)


COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("inject_fault", "fail accelerators or degrade a radiator, battery or "
                "solar array", "hazardous", (
        sat_arg("the node"),
        Arg("kind", "choice", "what fails", choices=("accelerator", "radiator", "battery",
                                                      "solar"), required=True),
        Arg("count", "integer", "accelerators to fail (kind accelerator)", min=1, max=64,
            default=1),
        Arg("health_frac", "number", "capacity left (other kinds)", unit="1", min=0.0,
            max=0.999),
    ), role="engineer"),
    CommandSpec("clear_fault", "restore a node's health (every node: confirm)", "operational", (
        sat_arg("the node, or all", allow_all=True),
        Arg("kind", "choice", "one kind or all", choices=("accelerator", "radiator",
                                                           "battery", "solar", "all"),
            default="all"),
    ), role="engineer", confirm_for_all=True),
)
"""The commands this model answers (meta.commands; docs/protocol.md)."""


FLEET_TOTALS: dict[str, tuple[str, str]] = {
    "n_nodes_faulted": ("count", "nodes with an active fault"),
    "accelerators_failed": ("count", "failed accelerators"),
}
"""The fleet totals this model publishes: name -> (unit, description) (meta.totals)."""


class FaultModel:
    """Per-node fault state, changed only by command; published as health multipliers.

    Args:
        scenario: The loaded scenario (satellite names for commands).
        accelerators_per_node: Installed accelerators per node (``[compute]``).
    """

    name = "faults"
    reads: tuple[str, ...] = ("lifecycle",)
    publishes = "faults"

    def __init__(self, scenario: Scenario, accelerators_per_node: int) -> None:
        self.scenario = scenario
        n = len(scenario.satellites)
        self.n_sats = n
        self.installed = int(accelerators_per_node)
        f = make_field
        self.accelerators_ok = f("accelerators_ok", "|u1", (n,), "count",
                                 "Working accelerators (installed minus failed)",
                                 fill=self.installed)
        self.radiator = f("radiator_health_frac", "<f4", (n,), "1",
                          "Radiator capacity left, 1 = healthy", fill=1.0)
        self.solar = f("solar_health_frac", "<f4", (n,), "1",
                       "Solar array output left, 1 = healthy", fill=1.0)
        self.battery = f("battery_health_frac", "<f4", (n,), "1",
                         "Battery capacity left, 1 = healthy, 0 = failed", fill=1.0)
        self.flags = f("fault_flags", "|u1", (n,), "bitmask",
                       "Active faults: 1 accelerator, 2 radiator, 4 battery, 8 solar",
                       labels={bit: kind for kind, bit in FAULT_KINDS.items()})
        # Commands change these arrays in place: published once, for good.
        self.outputs = FaultOutputs(
            accelerators_ok=self.accelerators_ok.array, radiator_health_frac=self.radiator.array,
            solar_health_frac=self.solar.array, battery_health_frac=self.battery.array,
            fault_flags=self.flags.array)
        self._pending: list[tuple[str, str, int]] = []
        self._pending_dropped = 0  # events past MAX_PENDING_EVENTS, summed into one
        self._fleet: dict[str, float] | None = None  # the fleet map; None after a command
        # Accelerators the lifecycle has lost for good (ageing; no repair in orbit): no
        # command brings them back. Applied when the lifecycle's version changes.
        self._lost = np.zeros(n, dtype=np.int64)
        self._lost_version: int | None = None

    def fields(self) -> list[Field]:
        return [self.accelerators_ok, self.radiator, self.solar, self.battery, self.flags]

    def step(self, ctx: StepContext) -> None:
        lifecycle = ctx.lifecycle  # last step's (it steps later)
        if (lifecycle.accelerators_lost_version is not None
                and lifecycle.accelerators_lost_version != self._lost_version):
            self._apply_lost(lifecycle.accelerators_lost)
            self._lost_version = lifecycle.accelerators_lost_version
        # Fault state changes only by command; events for them are raised in step order.
        for kind, message, sat in self._pending:
            severity = "info" if kind == "fault_cleared" else "warning"
            ctx.events.raise_event(kind, severity, message, sat=sat)
        self._pending.clear()
        if self._pending_dropped:
            ctx.events.raise_event("fault_commands_summarised", "warning",
                                   f"{self._pending_dropped} more fault commands took effect "
                                   "while paused; their events are summed here",
                                   count=self._pending_dropped)
            self._pending_dropped = 0

    def _apply_lost(self, lost: np.ndarray) -> None:
        """Take the lifecycle's lost accelerators out of service, for good."""
        np.copyto(self._lost, lost, casting="unsafe")
        ok = self.accelerators_ok.array
        np.minimum(ok, np.maximum(self.installed - self._lost, 0), out=ok, casting="unsafe")
        self.flags.array[self._lost > 0] |= np.uint8(FAULT_KINDS["accelerator"])
        self._fleet = None

    def fleet(self) -> dict[str, float]:
        # Fault state changes only by command: count it again only after one.
        if self._fleet is None:
            self._fleet = {
                "n_nodes_faulted": int(np.count_nonzero(self.flags.array)),
                "accelerators_failed": int(self.installed * self.n_sats
                                           - self.accelerators_ok.array.sum(dtype=np.int64)),
            }
        return dict(self._fleet)

    def meta(self) -> dict[str, Any]:
        return {
            "kinds": dict(FAULT_KINDS),
            "default_health_frac": dict(DEFAULT_HEALTH_FRAC),
            "accelerators_per_node": self.installed,
        }

    def commands(self) -> dict[str, CommandHandler]:
        return {"inject_fault": self.inject, "clear_fault": self.clear}

    # ----------------------------------------------------------------------------------
    # Commands

    def _note(self, kind: str, message: str, sat: int) -> None:
        """Queue a command's event for the next step; past the cap, only count it."""
        if len(self._pending) < MAX_PENDING_EVENTS:
            self._pending.append((kind, message, sat))
        else:
            self._pending_dropped += 1

    def inject(self, request: dict[str, Any]) -> dict[str, Any]:
        """``inject_fault``: sat, kind, and ``count`` (accelerator) or ``health_frac``.

        The request is checked against the command's declaration (twin.runtime.dispatch):
        here only what the declaration cannot say, which arguments go with which kind and
        the node's own accelerator count.
        """
        kind = request["kind"]
        if kind == "accelerator":
            only_keys(request, {"sat", "kind", "count"})
        else:
            only_keys(request, {"sat", "kind", "health_frac"})
        sat = request["sat"]
        name = self.scenario.satellites[sat].name
        if kind == "accelerator":
            working = int(self.accelerators_ok.array[sat])
            count = request.get("count", 1)
            if count > self.installed:
                raise CommandRejected(f"'count' = {count} out of range [1, {self.installed}] "
                                      "(the node's accelerators)")
            if working == 0:
                raise CommandRejected(f"{name}: every accelerator has already failed")
            failed = min(int(count), working)
            self.accelerators_ok.array[sat] = working - failed
            detail = f"{failed} accelerator(s) failed, {working - failed} left"
            reply = {"accelerators_ok": working - failed}
        else:
            health = float(request.get("health_frac", DEFAULT_HEALTH_FRAC[kind]))
            target = {"radiator": self.radiator, "solar": self.solar, "battery": self.battery}
            target[kind].array[sat] = health
            detail = f"{kind} health {health:.0%}"
            reply = {"health_frac": health}
        self.flags.array[sat] |= FAULT_KINDS[kind]
        self._fleet = None
        self._note("fault_injected", f"{name}: fault injected, {detail}", sat)
        return ok(sat=sat, kind=kind, **reply)

    def clear(self, request: dict[str, Any]) -> dict[str, Any]:
        """``clear_fault``: sat (a node, or ``all``) and ``kind`` (one kind, or ``all``,
        the default)."""
        kind = request.get("kind", "all")
        sat = request["sat"]
        nodes: slice | int = slice(None) if sat == "all" else sat
        kinds = list(FAULT_KINDS) if kind == "all" else [kind]
        for k in kinds:
            if k == "accelerator":  # all but those the lifecycle lost for good
                self.accelerators_ok.array[nodes] = self.installed - self._lost[nodes]
            else:
                {"radiator": self.radiator, "solar": self.solar,
                 "battery": self.battery}[k].array[nodes] = 1.0
            self.flags.array[nodes] &= ~np.uint8(FAULT_KINDS[k])
        self.flags.array[self._lost > 0] |= np.uint8(FAULT_KINDS["accelerator"])
        self._fleet = None
        if sat == "all":
            self._note("fault_cleared", f"every node: {kind} fault(s) cleared", -1)
        else:
            name = self.scenario.satellites[sat].name
            self._note("fault_cleared", f"{name}: {kind} fault(s) cleared", sat)
        return ok(sat=sat, kind=kind)

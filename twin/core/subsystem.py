"""The contract between the engine and the models it composes (orbit, thermal, power, ...).

A subsystem owns preallocated per-satellite arrays, declares them as wire fields, and
updates them in place on each step from a :class:`StepContext`. Arrays are
published straight from their owner's memory, so a step copies nothing it need not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from twin.core.events import EventLog
from twin.core.interfaces import (
    QUANTITY_OWNERS,
    ComputeOutputs,
    DriverOutputs,
    EnvironmentOutputs,
    FaultOutputs,
    LifecycleOutputs,
    LinkOutputs,
    OrbitOutputs,
    PowerOutputs,
    ThermalOutputs,
    find_quantity,
)
from twin.protocol.codec import FieldSpec

__all__ = ["CheckedHandler", "CommandHandler", "CommandRejected", "EventLog", "Field",
           "StepContext", "Subsystem", "make_field", "only_keys"]

CommandHandler = Callable[[dict[str, Any]], dict[str, Any]]


class CommandRejected(ValueError):
    """A command that is understood but not acceptable; the message goes to the client."""


@dataclass(frozen=True)
class CheckedHandler:
    """A command handler with the checks that depend on the twin's state, runnable on
    their own: the twin runs them before it holds a hazardous command for confirmation,
    so that what would be refused anyway is said at once, not after the operator confirmed
    (twin.runtime.dispatch). The handler runs them again when it runs.
    """

    run: CommandHandler
    check: Callable[[dict[str, Any]], None]
    """Raises ``CommandRejected`` naming why the request cannot be carried out now."""

    def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
        return self.run(request)


def only_keys(request: dict[str, Any], allowed: set[str]) -> None:
    """Reject arguments a command does not take, so a typo is not silently ignored."""
    extra = set(request) - allowed - {"cmd", "id"}
    if extra:
        takes = ", ".join(sorted(allowed)) or "no arguments"
        # Keys may be of any msgpack type (numbers, bytes); name a few, in a stable order.
        named = sorted(extra, key=repr)
        shown = ", ".join(repr(k)[:40] for k in named[:5])
        more = f" and {len(named) - 5} more" if len(named) > 5 else ""
        raise CommandRejected(f"unexpected argument(s) {shown}{more}; takes {takes}")


@dataclass
class Field:
    """A wire field and the live array behind it (updated in place each step)."""

    spec: FieldSpec
    array: np.ndarray


def make_field(
    name: str,
    dtype: str,
    shape: tuple[int, ...],
    unit: str,
    description: str,
    *,
    per_sat: bool = True,
    limits: dict[str, float] | None = None,
    fill: float = 0.0,
    labels: dict[int, str] | None = None,
    over: str = "instant",
    infinite: str = "",
) -> Field:
    """Allocate an array and its spec together so they can never disagree.

    ``over``: ``"instant"`` (the state at the step's end) or ``"step"`` (the step's
    interval: a mean for a quantity, every one that took part for a count), as the
    catalog says (``FieldSpec.over``); ``infinite``: what +inf means (``FieldSpec.infinite``).
    """
    spec = FieldSpec(name, dtype, shape, unit, description, per_sat, dict(limits or {}),
                     dict(labels or {}), over, infinite)
    return Field(spec, np.full(shape, fill, dtype=np.dtype(dtype)))


@dataclass
class StepContext:
    """What every subsystem sees during a step.

    Attributes:
        t_utc: Simulation time at the end of the step, Unix seconds.
        dt_s: Step length in seconds.
        events: Where subsystems raise events.
        rng: The twin's one seeded random generator.
        orbit, faults, drivers, links, compute, environment, power, thermal, lifecycle: The
            outputs each model publishes for the others (twin.core.interfaces), one writer
            each; a model reads those it declares in ``reads``.
        step_dt_s: In a sub-step of the control loop (twin.core.engine), the whole step's
            length, s; None in a step that is not cut.
        substep: In a sub-step, its index from 0.
    """

    t_utc: float
    dt_s: float
    events: EventLog
    rng: np.random.Generator
    orbit: OrbitOutputs = field(default_factory=OrbitOutputs)
    faults: FaultOutputs = field(default_factory=FaultOutputs)
    drivers: DriverOutputs = field(default_factory=DriverOutputs)
    links: LinkOutputs = field(default_factory=LinkOutputs)
    compute: ComputeOutputs = field(default_factory=ComputeOutputs)
    environment: EnvironmentOutputs = field(default_factory=EnvironmentOutputs)
    power: PowerOutputs = field(default_factory=PowerOutputs)
    thermal: ThermalOutputs = field(default_factory=ThermalOutputs)
    step_dt_s: float | None = None
    substep: int = 0
    lifecycle: LifecycleOutputs = field(default_factory=LifecycleOutputs)

    def quantity(self, name: str) -> Any:
        """A published quantity by name (None if unpublished); see ``find_quantity``."""
        return find_quantity(self, name)

    @classmethod
    def with_quantities(cls, t_utc: float, dt_s: float, events: EventLog,
                        rng: np.random.Generator, **quantities: Any) -> StepContext:
        """A context whose outputs hold ``quantities`` by name: to step a model alone.

        Raises:
            KeyError: A name no outputs declare.
        """
        ctx = cls(t_utc, dt_s, events, rng)
        for name, value in quantities.items():
            setattr(getattr(ctx, QUANTITY_OWNERS[name]), name, value)
        return ctx


class Subsystem(Protocol):
    """What the engine asks of a model.

    ``reads`` names the outputs (``StepContext`` attributes) the model reads; a model that
    publishes outputs holds them as ``outputs`` and names their attribute in ``publishes``.
    """

    name: str
    reads: tuple[str, ...]
    publishes: str | None

    def fields(self) -> list[Field]:
        """The wire fields this subsystem owns, in publish order."""
        ...

    def step(self, ctx: StepContext) -> None:
        """Advance to ``ctx.t_utc``, updating the arrays in place."""
        ...

    def fleet(self) -> dict[str, float]:
        """Fleet totals for the ``state`` header, each name carrying its unit."""
        ...

    def meta(self) -> dict[str, Any]:
        """Static facts for ``meta`` (parameters, limits), keyed under the subsystem name."""
        ...

    def commands(self) -> dict[str, CommandHandler]:
        """Extra commands this subsystem answers, by command name."""
        ...

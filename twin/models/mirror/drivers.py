"""The mirror's drivers half: measured inputs of live mirrored nodes, before the models.

``MirrorDrivers`` steps before compute, power and thermal. It decides which bindings are
live (an applied sample within ``lost_after_s`` of wall time; events ``mirror_acquired``,
``mirror_lost``, ``mirror_regained``) and publishes the measured drivers of the live ones
(``DriverOutputs``). Each model applies the measured values of its own inputs (compute its
utilization and power, power its bus and heater power): the mirror writes no model's arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from twin.core.interfaces import DriverOutputs
from twin.core.subsystem import CommandHandler, Field, StepContext
from twin.models.mirror.bindings import BindingState
from twin.models.mirror.states import Mirror


class MirrorDrivers:
    """The drivers half of the mirror, stepped before the models whose inputs it drives."""

    name = "mirror_drivers"
    reads: tuple[str, ...] = ()
    publishes = "drivers"

    def __init__(self, mirror: Mirror) -> None:
        self.mirror = mirror
        self.outputs = DriverOutputs()

    def fields(self) -> list[Field]:
        return []

    def step(self, ctx: StepContext) -> None:
        """Update each binding's liveness; publish measured drivers of live mirrors."""
        mirror = self.mirror
        if not mirror.bindings:
            return
        now = mirror.wall_clock()
        # Paired by position, not looked up: two bindings may hold equal states.
        for lv, binding in zip(mirror.live, mirror.bindings, strict=True):
            self._update_liveness(lv, binding.name, now, ctx)
        pairs = [(lv, b) for lv, b in zip(mirror.live, mirror.bindings, strict=True) if lv.live]
        out = self.outputs
        out.mirror_sat = np.array([lv.sat for lv, _ in pairs], dtype=np.int64)
        out.measured_drivers = {
            q: np.array([lv.measured.get(q, np.nan) if q in b.drivers.values() else np.nan
                         for lv, b in pairs])
            for q in mirror.driver_keys} if pairs else {}

    def _update_liveness(self, lv: BindingState, name: str, now: float,
                         ctx: StepContext) -> None:
        mirror = self.mirror
        live = now - lv.last_applied_wall <= mirror.params.lost_after_s
        if live and not lv.live:
            kind = "mirror_regained" if lv.ever_live else "mirror_acquired"
            ctx.events.raise_event(kind, "info", f"testbed {name!r} is live on node {lv.sat}; "
                                   "measured drivers replace the model's", sat=lv.sat,
                                   testbed=name)
            lv.ever_live = True
        elif lv.live and not live:
            lv.lost_count += 1
            ctx.events.raise_event("mirror_lost", "warning", f"no telemetry from {name!r} for "
                                   f"{mirror.params.lost_after_s:g} s; node {lv.sat} falls back "
                                   "to the model", sat=lv.sat, testbed=name)
        lv.live = live

    def fleet(self) -> dict[str, float]:
        return {}

    def meta(self) -> dict[str, Any]:
        return {"drives": self.mirror.driver_keys}

    def commands(self) -> dict[str, CommandHandler]:
        return {}

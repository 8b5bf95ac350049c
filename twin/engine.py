"""The engine: one clock, one random generator, and the models stepped in order.

The engine knows nothing of sockets. It steps, it describes its fields, and it answers
commands; ``twin.server`` moves what it produces onto the wire.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

import numpy as np

from twin import __version__
from twin.clock import SimClock
from twin.compute import ComputeModel
from twin.faults import FaultModel
from twin.limits import LimitsModel
from twin.mirror import Mirror, MirrorDrivers
from twin.orbit import OrbitModel
from twin.power import PowerModel
from twin.scenario import Scenario
from twin.subsystem import CommandHandler, EventLog, Field, StepContext, Subsystem
from twin.thermal import ThermalModel
from twin.wire import PROTOCOL_VERSION, FieldSpec


class Engine:
    """Composes the subsystems of one twin and steps them together.

    Args:
        scenario: The loaded scenario.
        clock: The simulation clock (the engine advances it).
        seed: Overrides the scenario's seed when given.
    """

    def __init__(self, scenario: Scenario, clock: SimClock, seed: int | None = None) -> None:
        self.scenario = scenario
        self.clock = clock
        self.seed = scenario.seed if seed is None else seed
        self.rng = np.random.default_rng(self.seed)
        self.events = EventLog(t_utc=clock.t_utc)
        self.orbit = OrbitModel(scenario, clock)
        # Not ``self.compute``: that is the engine's step method.
        self.compute_model = ComputeModel(scenario)
        self.faults = FaultModel(scenario, self.compute_model.params.accelerators_per_node)
        # Step order matters: each subsystem reads what earlier ones put in ctx.shared.
        # The mirror is two steps: measured drivers overwrite the model's inputs right after
        # compute (before power and thermal read them); measured states are compared last.
        self.mirror = Mirror(scenario, clock)
        self.ingest_handler = self.mirror.ingest
        self.power = PowerModel.from_scenario(scenario)
        self.thermal = ThermalModel.from_scenario(scenario)
        before_limits: list[Subsystem] = [self.orbit, self.faults, self.compute_model,
                                          MirrorDrivers(self.mirror), self.power, self.thermal]
        # Limits watches every field with limits of the subsystems stepped before it.
        self.limits = LimitsModel([f for s in before_limits for f in s.fields()], scenario)
        self.subsystems: list[Subsystem] = [*before_limits, self.limits, self.mirror]
        self._fields: list[Field] = [f for s in self.subsystems for f in s.fields()]
        self.shared: dict[str, Any] = {}
        # Step 0 is the state at the epoch, so the first frame published is complete.
        self.compute(0.0)

    @property
    def n_sats(self) -> int:
        return len(self.scenario.satellites)

    @property
    def fields(self) -> list[Field]:
        """Every wire field, in publish order."""
        return self._fields

    @property
    def field_specs(self) -> list[FieldSpec]:
        return [f.spec for f in self._fields]

    def step(self) -> None:
        """Advance the clock one step and every subsystem with it."""
        dt_s = self.clock.advance()
        self.compute(dt_s)

    def context(self, dt_s: float) -> StepContext:
        """The context for a step ending at the clock's current time."""
        self.events.t_utc = self.clock.t_utc
        return StepContext(self.clock.t_utc, dt_s, self.events, self.rng, self.shared)

    def compute(self, dt_s: float) -> None:
        """Bring every subsystem to the clock's current time (``dt_s`` after the last)."""
        ctx = self.context(dt_s)
        for subsystem in self.subsystems:
            subsystem.step(ctx)

    def header(self) -> dict[str, Any]:
        """Per-step facts for the ``state`` header besides the framing keys."""
        fleet: dict[str, float] = {}
        for subsystem in self.subsystems:
            fleet.update(subsystem.fleet())
        return {
            "step": self.clock.steps,
            "dt_s": self.clock.dt_s,
            "warp": self.clock.warp,
            "paused": self.clock.paused,
            "n_sats": self.n_sats,
            "fleet": fleet,
            **self.orbit.header(),
        }

    def meta(self) -> dict[str, Any]:
        """What a viewer needs to draw before the first frame (the ``meta`` body)."""
        scenario = self.scenario
        sats = scenario.satellites
        subsystems = {s.name: s.meta() for s in self.subsystems}
        return {
            "twin_version": __version__,
            "protocol": PROTOCOL_VERSION,
            "scenario": {
                "name": scenario.name,
                "description": scenario.description,
                "source": scenario.source,
                "epoch_utc": scenario.epoch_utc.astimezone(UTC).isoformat(),
                "epoch_t_utc": scenario.epoch_utc.timestamp(),
                "seed": self.seed,
            },
            "clock": {"rate_hz": self.clock.rate_hz, "warp": self.clock.warp},
            "sats": {
                "n": len(sats),
                "ids": [s.sat_id for s in sats],
                "names": [s.name for s in sats],
                "groups": [s.group for s in sats],
                "norad_ids": [s.norad_id for s in sats],
            },
            "stations": [
                {
                    "name": st.name, "lat_deg": st.lat_deg, "lon_deg": st.lon_deg,
                    "alt_m": st.alt_m, "min_elevation_deg": st.min_elevation_deg,
                    "downlink_bps": st.downlink_bps,
                }
                for st in scenario.stations
            ],
            "fields": [spec.catalog_entry() for spec in self.field_specs],
            "subsystems": subsystems,
        }

    def commands(self) -> dict[str, CommandHandler]:
        """Commands contributed by subsystems (the server adds the clock's own)."""
        handlers: dict[str, CommandHandler] = {}
        for subsystem in self.subsystems:
            handlers.update(subsystem.commands())
        return handlers


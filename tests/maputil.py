"""The twin's own states for the map and ground-track tests: a real engine (fast clock,
the scenario's seed) stepped in this process, each state framed through the real codec."""

from __future__ import annotations

from twin.core.clock import SimClock
from twin.core.engine import Engine
from twin.protocol.codec import PROTOCOL_VERSION, Message, StateEncoder, decode
from twin.scenario import load_scenario


class EngineStates:
    """An engine on a bundled scenario; :meth:`step` returns the next state as a viewer
    receives it (``Message``), :attr:`meta` the ``meta`` body.

    Args:
        scenario: Bundled scenario name.
        step_s: Simulated seconds per step.
    """

    def __init__(self, scenario: str = "default", step_s: float = 60.0) -> None:
        loaded = load_scenario(scenario)
        self.clock = SimClock(loaded.epoch_utc, rate_hz=1.0, warp=step_s, fast=True)
        self.engine = Engine(loaded, self.clock, seed=7)
        self.encoder = StateEncoder(self.engine.field_specs)
        self.meta = self.engine.meta()
        self.seq = 0

    def step(self) -> Message:
        self.engine.step()
        header = {"v": PROTOCOL_VERSION, "seq": self.seq, "t_utc": self.clock.t_utc,
                  **self.engine.header()}
        self.seq += 1
        frames = self.encoder.encode(header, [f.array for f in self.engine.fields])
        return decode([bytes(f) for f in frames])

"""What propagating the catalog adds to the cost of the rest of the twin's step.

`SatrecArray` keeps one ~1 kB record per satellite: 4.4 MB for the `starlink` catalog,
all read by every propagation, with SGP4's own code and branches. On these machines
(512 kB L2 per core, an L3 shared with the host's other guests) the step that follows
then finds the interpreter's and numpy's working set (code and data) out of cache, and
every model pays to fetch it back. bench/step.py's ratios include that.

This script steps the whole twin (engine, `starlink` scenario) four ways, in blocks of
steps, in one process:

- ``sgp4``: as the twin does;
- ``replay``: the propagator hands back copies of propagations made in advance for
  the same instants, so every model sees the fleet move as it would, but no SGP4 pass
  runs between steps;
- ``replay + sweep``: the same, with a pass over a buffer of the SatrecArray's size
  where the propagation was (4.4 MB read in one stream, none of SGP4's code);
- ``replay + sgp4 1/3``: the same, with SGP4 of every third satellite of the catalog
  (SGP4's code, a third of its records) where the propagation was.

It prints median milliseconds per step: the propagation call, the orbit less that call
("orbit extras"), power, thermal, compute, the state header's fleet summary, and
everything but the propagation. The difference between ``sgp4`` and ``replay`` is what
the propagation adds to the rest of the step.

Run: ``.venv/bin/python bench/sgp4_cache.py [--steps N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from twin.astro.propagate import Propagator  # noqa: E402
from twin.core.clock import SimClock  # noqa: E402
from twin.core.engine import Engine  # noqa: E402
from twin.models.orbit import OrbitModel  # noqa: E402
from twin.runtime.allocator import keep_temporaries_in_heap  # noqa: E402
from twin.runtime.cli import count_argument  # noqa: E402
from twin.scenario import load_scenario  # noqa: E402

MODES = ("sgp4", "replay", "replay + sweep", "replay + sgp4 1/3")


class TimedPropagation:
    """Wraps the orbit's propagator: times it, or replays propagations made in advance.

    Replayed propagations are those of the very instants the clock will step to, so every
    model downstream sees the fleet move exactly as it would.
    """

    def __init__(self, model: OrbitModel) -> None:
        self.real = model.propagator.propagate
        self.mode = "sgp4"
        self.seconds = 0.0
        self._ahead: dict[tuple[float, float], tuple[np.ndarray, ...]] = {}
        # As large as the SatrecArray's records, so the sweep reads as many bytes.
        self._sweep = np.ones(model.n_sats * 1000 // 8)
        self._third = Propagator([s.satrec for s in model.scenario.satellites[::3]])
        model.propagator.propagate = self  # type: ignore[method-assign]

    def prepare(self, clock: SimClock, steps: int) -> None:
        """Propagate now for the clock's next ``steps`` instants (on a copy of the clock)."""
        ahead = copy.deepcopy(clock)
        self._ahead.clear()
        for _ in range(steps):
            ahead.advance()
            instant = ahead.jd_utc
            self._ahead[instant] = tuple(a.copy() for a in self.real(*instant))

    def __call__(self, jd_whole: float, jd_frac: float) -> tuple[np.ndarray, ...]:
        started = time.perf_counter()
        if self.mode == "sgp4":
            out = self.real(jd_whole, jd_frac)
        else:
            if self.mode == "replay + sweep":
                np.add.reduce(self._sweep)
            elif self.mode == "replay + sgp4 1/3":
                self._third.propagate(jd_whole, jd_frac)
            out = tuple(a.copy() for a in self._ahead[(jd_whole, jd_frac)])
        self.seconds = time.perf_counter() - started
        return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=count_argument(20), default=300,
                        help="steps per block, the first 10 not timed (300)")
    parser.add_argument("--rounds", type=count_argument(1), default=2,
                        help="blocks per mode (2)")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    keep_temporaries_in_heap()
    scenario = load_scenario("starlink")
    clock = SimClock(scenario.epoch_utc, rate_hz=10.0, warp=10.0, fast=True)
    engine = Engine(scenario, clock)
    propagation = TimedPropagation(engine.orbit)
    names = [subsystem.name for subsystem in engine.subsystems]
    # mode -> column -> samples, s: the orbit less its propagation call, every other
    # subsystem, and the fleet summary of the state header.
    columns = ["orbit extras", *names[1:], "header"]
    samples = {mode: {column: [] for column in ["propagation", *columns]} for mode in MODES}
    for _ in range(args.rounds):
        for mode in MODES:
            propagation.mode = mode
            if mode != "sgp4":
                propagation.prepare(clock, args.steps)
            for k in range(args.steps):
                ctx = engine.context(clock.advance())
                times = []
                for subsystem in engine.subsystems:
                    started = time.perf_counter()
                    subsystem.step(ctx)
                    times.append(time.perf_counter() - started)
                started = time.perf_counter()
                engine.header()
                times.append(time.perf_counter() - started)
                engine.events.drain()
                if k < 10:  # the block's first steps settle the new mode
                    continue
                times[0] -= propagation.seconds
                samples[mode]["propagation"].append(propagation.seconds)
                for column, seconds in zip(columns, times, strict=True):
                    samples[mode][column].append(seconds)
    print(f"{engine.n_sats} satellites, {args.rounds} x {args.steps} steps per mode; "
          "median ms per step")
    shown = ["propagation", "orbit extras", "power", "thermal", "compute", "header"]
    print(f"  {'mode':18s}" + "".join(f"{c:>14s}" for c in shown) + f"{'all but SGP4':>14s}")
    for mode in MODES:
        medians = {c: 1e3 * statistics.median(v) for c, v in samples[mode].items()}
        beyond = sum(m for c, m in medians.items() if c != "propagation")
        print(f"  {mode:18s}" + "".join(f"{medians[c]:14.3f}" for c in shown)
              + f"{beyond:14.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

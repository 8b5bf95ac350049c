"""Single-event effects of a scenario by device class: expected (from the rates) and drawn.

Usage:
    .venv/bin/python bench/see_counts.py [--scenario default] [--days 30]

Steps the twin at 60 s on the fast clock and prints, per device class of
``twin.models.compute.radiation``, the events the rates predict over the run and the
events the seeded draw gave, and the single-event environment per year averaged per
plane (docs/models.md, "Single-event effects per device class").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from twin.core.clock import SimClock  # noqa: E402
from twin.core.constants import SECONDS_PER_DAY  # noqa: E402
from twin.core.engine import Engine  # noqa: E402
from twin.models.compute.radiation import DEVICE_CLASSES, PER_ACCELERATOR  # noqa: E402
from twin.scenario import load_scenario  # noqa: E402

STEP_S = 60.0
RAD_PER_GY = 100.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="default")
    parser.add_argument("--days", type=float, default=30.0)
    args = parser.parse_args()
    scenario = load_scenario(args.scenario)
    engine = Engine(scenario, SimClock(scenario.epoch_utc, rate_hz=1.0, warp=STEP_S, fast=True))
    radiation = engine.compute_model.radiation
    accelerators = engine.compute_model.params.accelerators_per_node
    see_gy = np.zeros(len(scenario.satellites))
    for _ in range(int(args.days * SECONDS_PER_DAY / STEP_S)):
        engine.step()
        engine.events.drain()
        see_gy += radiation.see_gy_s * STEP_S  # the environment of the step just taken
    print(f"{args.scenario}: {len(see_gy)} nodes, {args.days:g} days, seed {scenario.seed}")
    print(f"{'class':16} {'expected':>9} {'drawn':>6}")
    for k, name in enumerate(DEVICE_CLASSES):
        devices = accelerators if PER_ACCELERATOR[k] else 1
        expected = float(see_gy.sum()) * devices * radiation.class_per_gy[k]
        print(f"{name:16} {expected:9.1f} {int(radiation.class_counts[k]):6d}")
    per_year = RAD_PER_GY * 365.25 / args.days
    for plane in sorted({sat.group for sat in scenario.satellites}):
        rows = [i for i, sat in enumerate(scenario.satellites) if sat.group == plane]
        print(f"single-event environment, {plane}: {see_gy[rows].mean() * per_year:.0f} "
              "rad(Si)/yr")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

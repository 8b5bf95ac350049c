"""Run a scenario over a simulated year (fast) and report what its power design does.

Usage:
    .venv/bin/python bench/design_year.py [--scenario default] [--days 365] [--dt 60]

Steps the whole twin (fast mode, ``--dt`` simulated seconds a step) from the scenario's
epoch and prints, per orbit family (the shells' names): the lowest battery state of
charge, the deepest depth of discharge below ``soc_max_frac``, the battery and bus
temperature range, the longest eclipse of one orbit and the dates a family sees any
eclipse at all; then the limit events by field and severity, the power-cap events, and
the node-hours thermally throttled. Counts come from the engine's own limit and event
machinery (``limit`` events with their field and severity), as an operator sees them.
docs/models.md, "Design point and sizing", records a run. The worst weeks of a year run
in the test suite (``tests/test_design_point.py``), which uses ``survey`` below.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from twin.core.clock import SimClock  # noqa: E402
from twin.core.engine import Engine  # noqa: E402
from twin.models.power import PowerParams  # noqa: E402
from twin.runtime.cli import count_argument, positive_argument  # noqa: E402
from twin.scenario import Scenario, load_scenario, parse_section  # noqa: E402

THERMALLY_THROTTLED = 1
"""``throttle_code`` of a node whose clock the junction or HBM limit holds."""


@dataclass
class FamilyRecord:
    """What one orbit family (a shell's name) went through over the run."""

    soc_min: float = np.inf
    battery_min_k: float = np.inf
    battery_max_k: float = -np.inf
    bus_min_k: float = np.inf
    bus_max_k: float = -np.inf
    plate_max_k: float = -np.inf
    junction_max_k: float = -np.inf
    longest_eclipse_s: float = 0.0
    eclipse_days: set[str] = field(default_factory=set)


@dataclass
class Survey:
    """A run's record: per family, the events by kind, and the throttled node-hours."""

    soc_max_frac: float
    families: dict[str, FamilyRecord]
    events: collections.Counter[str]
    throttled_node_h: float = 0.0
    steps: int = 0
    wall_s: float = 0.0

    def depth_of_discharge(self, family: str) -> float:
        """Deepest discharge below the charge limit, as a fraction of capacity."""
        return self.soc_max_frac - self.families[family].soc_min

    def report(self) -> str:
        lines = [f"{self.steps} steps in {self.wall_s:.0f} s"]
        for name, rec in self.families.items():
            days = sorted(rec.eclipse_days)
            season = f"{days[0]} .. {days[-1]} ({len(days)} days)" if days else "none"
            lines.append(
                f"{name}: min SoC {rec.soc_min:.3f}, max DoD {self.depth_of_discharge(name):.3f},"
                f" battery {rec.battery_min_k - 273.15:.1f} .. {rec.battery_max_k - 273.15:.1f} C,"
                f" bus {rec.bus_min_k - 273.15:.1f} .. {rec.bus_max_k - 273.15:.1f} C,"
                f" plate max {rec.plate_max_k - 273.15:.1f} C,"
                f" junction max {rec.junction_max_k - 273.15:.1f} C,"
                f" longest eclipse {rec.longest_eclipse_s / 60:.1f} min, eclipse days {season}")
        lines.append("events: " + (", ".join(f"{k} {v}" for k, v in sorted(self.events.items()))
                                   or "none"))
        lines.append(f"thermally throttled: {self.throttled_node_h:.0f} node-hours")
        return "\n".join(lines)


def _event_key(event: dict) -> str | None:
    kind = event["kind"]
    if kind == "limit":
        return f"limit {event['field']} {event['severity']}"
    if kind in ("power_cap", "thermal_throttle"):
        return kind
    return None


def survey(scenario: Scenario, steps: int, dt_s: float = 60.0,
           start_utc: datetime | None = None) -> Survey:
    """Step ``scenario`` ``steps`` steps of ``dt_s`` and record the run.

    ``start_utc`` starts the clock later than the scenario's epoch: the satellites are
    still those the scenario defines at its epoch, propagated there, and the run opens at
    the steady state of that moment ("Starting state" in docs/models.md).
    """
    start = scenario.epoch_utc if start_utc is None else start_utc
    engine = Engine(scenario, SimClock(start, rate_hz=1.0, warp=dt_s, fast=True))
    groups = np.array([s.group for s in scenario.satellites])
    names = list(dict.fromkeys(groups.tolist()))
    members = {name: groups == name for name in names}
    record = Survey(parse_section(PowerParams, scenario, "power").soc_max_frac,
                    {name: FamilyRecord() for name in names}, collections.Counter())
    power, thermal = engine.power, engine.thermal
    throttle = engine.models["compute"].node_fields.throttle
    dark_run_s = np.zeros(len(groups))
    started = time.perf_counter()
    for _ in range(steps):
        engine.step()
        sunlit = engine.quantity("sunlit_frac")
        dark = sunlit < 1.0
        dark_run_s = np.where(dark, dark_run_s + (1.0 - sunlit) * dt_s, 0.0)
        day = datetime.fromtimestamp(engine.clock.t_utc, UTC).date().isoformat()
        soc, battery, bus = power.soc.array, thermal.temp_battery.array, thermal.temp_bus.array
        plate, junction = thermal.temp_compute.array, thermal.temp_junction.array
        for name, mask in members.items():
            rec = record.families[name]
            rec.soc_min = min(rec.soc_min, float(soc[mask].min()))
            rec.battery_min_k = min(rec.battery_min_k, float(battery[mask].min()))
            rec.battery_max_k = max(rec.battery_max_k, float(battery[mask].max()))
            rec.bus_min_k = min(rec.bus_min_k, float(bus[mask].min()))
            rec.bus_max_k = max(rec.bus_max_k, float(bus[mask].max()))
            rec.plate_max_k = max(rec.plate_max_k, float(plate[mask].max()))
            rec.junction_max_k = max(rec.junction_max_k, float(junction[mask].max()))
            rec.longest_eclipse_s = max(rec.longest_eclipse_s, float(dark_run_s[mask].max()))
            if dark[mask].any():
                rec.eclipse_days.add(day)
        record.throttled_node_h += np.count_nonzero(throttle.array == THERMALLY_THROTTLED) \
            * dt_s / 3600.0
        for event in engine.events.drain():
            key = _event_key(event)
            if key is not None:
                record.events[key] += 1
    record.steps = steps
    record.wall_s = time.perf_counter() - started
    return record


def main() -> int:
    # Here, not at the top: tests/test_design_point.py loads this file for ``survey``
    # without bench/ on sys.path (a script run puts it there).
    from benchargs import checked_scenario

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=checked_scenario, default="default")
    parser.add_argument("--days", type=positive_argument("days", 3660.0), default=365.0)
    parser.add_argument("--dt", type=count_argument(1), default=60, help="step, seconds")
    args = parser.parse_args()
    scenario = load_scenario(args.scenario)
    steps = round(args.days * 86400.0 / args.dt)
    print(f"{args.scenario}: {len(scenario.satellites)} nodes from {scenario.epoch_utc:%Y-%m-%d},"
          f" {args.days:g} days at {args.dt} s steps")
    print(survey(scenario, steps, float(args.dt)).report())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A simulated week of the default fleet with faults injected, with and without its rules.

Usage:
    .venv/bin/python bench/rules_week.py [--days 7] [--dt 60] [--json PATH]

Two runs of the default scenario (seed 7, a fast clock, ``--dt`` simulated seconds per
step), identical but for the on-board rules (assets/scenarios/default.toml's
``[[rule]]`` tables, or none). The same faults are injected at the same times through
the same command path in both (``FAULTS``):

- radiators lose 40 % of their capacity on nodes 0-3 after 6 h (the junction heats to
  its throttle);
- solar arrays lose 40 % on nodes 10-13 after day 2 (the battery runs down);
- batteries lose half their capacity on nodes 16-17 after day 3;
- three accelerator upsets in 30 min on nodes 20-21 on day 4.

Compared: the fleet's lowest state of charge and hottest junction, node-hours past the
design envelope (junction above its 85 degC throttle point, SoC below 25 %), delivered
compute (FLOP, the sum of ``delivered_flop_s`` over the week) and the rules' firings.
Prints a Markdown table (docs/performance.md, "On-board rules over a week").
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twin.core.clock import SimClock
from twin.core.engine import Engine
from twin.runtime.server import Addresses, TwinServer
from twin.scenario import parse_scenario
from twin.scenario.loader import SCENARIOS_DIR

SEED = 7
ANY = "tcp://127.0.0.1:*"
HOUR = 3600.0
JUNCTION_LIMIT_K = 358.15
SOC_FLOOR = 0.25
FAULTS: list[tuple[float, dict[str, Any]]] = [
    *((6 * HOUR, {"cmd": "inject_fault", "sat": s, "kind": "radiator", "health_frac": 0.6})
      for s in range(0, 4)),
    *((48 * HOUR, {"cmd": "inject_fault", "sat": s, "kind": "solar", "health_frac": 0.6})
      for s in range(10, 14)),
    *((72 * HOUR, {"cmd": "inject_fault", "sat": s, "kind": "battery", "health_frac": 0.5})
      for s in range(16, 18)),
    *((96 * HOUR + k * 600.0, {"cmd": "inject_upset", "sat": s})
      for s in (20, 21) for k in range(3)),
]


def scenario(with_rules: bool):
    text = (SCENARIOS_DIR / "default.toml").read_text()
    if not with_rules:
        text = text[:text.index("# On-board rules (FDIR")]
    return parse_scenario(text, source=str(SCENARIOS_DIR / "default.toml"),
                          base_dir=SCENARIOS_DIR)


def run(with_rules: bool, days: float, dt_s: float) -> dict[str, Any]:
    sc = scenario(with_rules)
    clock = SimClock(sc.epoch_utc, rate_hz=1.0, warp=dt_s, fast=True)
    server = TwinServer(Engine(sc, clock, seed=SEED), Addresses(ANY, ANY, ANY))
    fields = {f.spec.name: f.array for f in server.engine.fields}
    epoch = sc.epoch_utc.timestamp()
    pending = sorted(FAULTS, key=lambda f: f[0])
    acc = {"soc_min": 1.0, "tj_max_k": 0.0, "flop": 0.0, "tj_over_node_s": 0.0,
           "soc_under_node_s": 0.0}

    def tick(srv: TwinServer) -> None:
        while pending and srv.clock.t_utc - epoch >= pending[0][0]:
            reply = srv.dispatcher.dispatch(dict(pending.pop(0)[1]), confirmed=True)
            assert reply["ok"], reply
        soc, tj = fields["soc_frac"], fields["temp_junction_k"]
        acc["soc_min"] = min(acc["soc_min"], float(soc.min()))
        acc["tj_max_k"] = max(acc["tj_max_k"], float(tj.max()))
        acc["flop"] += float(fields["delivered_flop_s"].sum(dtype=np.float64)) * dt_s
        acc["tj_over_node_s"] += float((tj > JUNCTION_LIMIT_K).sum()) * dt_s
        acc["soc_under_node_s"] += float((soc < SOC_FLOOR).sum()) * dt_s

    started = time.perf_counter()
    try:
        server.run(max_steps=int(days * 86400.0 / dt_s), on_tick=tick)
        rules = {r["name"]: r["firings"] for r in server.autonomy.meta()["rules"]}
    finally:
        server.close()
    return {"rules": with_rules, "wall_s": time.perf_counter() - started,
            "soc_min_pct": 100.0 * acc["soc_min"], "tj_max_c": acc["tj_max_k"] - 273.15,
            "tj_over_node_h": acc["tj_over_node_s"] / HOUR,
            "soc_under_node_h": acc["soc_under_node_s"] / HOUR,
            "delivered_eflop": acc["flop"] / 1e18, "firings": rules}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--dt", type=float, default=60.0, help="simulated s per step")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = [run(False, args.days, args.dt), run(True, args.days, args.dt)]
    print("| run | min SoC | max junction | junction > 85 degC | SoC < 25 % | delivered "
          "compute | firings | wall |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        fired = ", ".join(f"{k} {v}" for k, v in r["firings"].items()) or "-"
        print(f"| {'with rules' if r['rules'] else 'without rules'} | {r['soc_min_pct']:.1f} % "
              f"| {r['tj_max_c']:.1f} degC | {r['tj_over_node_h']:.1f} node-h "
              f"| {r['soc_under_node_h']:.1f} node-h | {r['delivered_eflop']:.4g} EFLOP "
              f"| {fired} | {r['wall_s']:.0f} s |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

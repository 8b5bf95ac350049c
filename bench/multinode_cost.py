"""Cost of the multi-node jobs' step and of a network_aware placement on `suncatcher`.

Usage:
    .venv/bin/python bench/multinode_cost.py

Steps the bundled `suncatcher` scenario (81 members, one 16-node job) for 20 steps, then
times 2,000 calls to ``MultiNodeJobs.step``, 200 ``choose_group`` placements on the
81-node link graph, and 200 whole engine steps (docs/performance.md, "Multi-node jobs and
the network-aware policy").
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from twin.core.clock import SimClock  # noqa: E402
from twin.core.engine import Engine  # noqa: E402
from twin.models.compute.multinode import choose_group  # noqa: E402
from twin.scenario import load_scenario  # noqa: E402


def main() -> int:
    scenario = load_scenario("suncatcher")
    engine = Engine(scenario, SimClock(scenario.epoch_utc, rate_hz=10.0, warp=60.0,
                                       fast=True))
    for _ in range(20):
        engine.step()
    multinode = engine.compute_model.multinode
    ctx = engine._last_context  # the last step's outputs, links included
    delivered = np.asarray(engine.compute_model.delivered.array, dtype=float)
    calls = 2000
    t0 = time.perf_counter()
    for _ in range(calls):
        multinode.step(ctx, delivered, 0.0, "network_aware")
    print(f"MultiNodeJobs.step: {(time.perf_counter() - t0) / calls * 1e6:.1f} us")
    graph = multinode.read_links(ctx)
    everyone = np.ones(len(scenario.satellites), dtype=bool)
    t0 = time.perf_counter()
    for _ in range(200):
        choose_group(graph, everyone, multinode.k, "network_aware")
    print(f"choose_group network_aware: {(time.perf_counter() - t0) / 200 * 1e3:.2f} ms")
    t0 = time.perf_counter()
    for _ in range(200):
        engine.step()
    print(f"engine step (6 s): {(time.perf_counter() - t0) / 200 * 1e3:.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

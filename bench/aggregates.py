"""Cost of the fleet aggregates and the selective streams (issue 22), per step.

Usage:
    .venv/bin/python bench/aggregates.py [--sizes starlink,100000] [--repeat 20] [--json PATH]

For each fleet (a bundled scenario by name, or a number: a generated fleet of two Walker
shells, sun-synchronous 600 km and 30 deg 550 km, half each) one twin is built with every
model, stepped 3 times, then timed best and median of ``--repeat`` calls of: one engine
step; the aggregate body (``FleetAggregates.compute``); the whole publish of a step (the
default ``state``, the ``aggregate`` and, where subscribed, the selective streams); and
one selective stream's encoding (float32 ITRS positions of every 10th node). It prints
the bytes a default subscriber receives per step (``state`` plus ``aggregate``) and the
same per million satellites. Nothing is sent anywhere but the twin's own loopback PUB
socket, which nobody reads.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import zmq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from twin.core.clock import SimClock
from twin.core.engine import Engine
from twin.runtime.server import Addresses, TwinServer
from twin.scenario import load_scenario, parse_scenario

ANY = "tcp://127.0.0.1:*"


def generated(n: int) -> str:
    planes = 100
    per_plane = max(1, n // (2 * planes))
    return f"""
[scenario]
name = "generated-{n}"
epoch = "2026-03-20T12:00:00Z"
seed = 1
[[walker]]
name = "sso"
altitude_km = 600.0
inclination_deg = 97.8
planes = {planes}
sats_per_plane = {per_plane}
phasing = 1
[[walker]]
name = "mid"
altitude_km = 550.0
inclination_deg = 30.0
planes = {planes}
sats_per_plane = {per_plane}
phasing = 1
"""


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1e3, statistics.median(times) * 1e3


def measure(size: str, repeat: int) -> dict:
    scenario = parse_scenario(generated(int(size))) if size.isdigit() else load_scenario(size)
    clock = SimClock(scenario.epoch_utc, rate_hz=10.0, warp=60.0, fast=True)
    engine = Engine(scenario, clock)
    server = TwinServer(engine, Addresses(ANY, ANY, ANY))
    # A client taking the aggregate, else the twin skips it (twin.runtime.streams).
    taker = zmq.Context.instance().socket(zmq.SUB)
    taker.connect(server.bound.pub)
    taker.setsockopt(zmq.SUBSCRIBE, b"aggregate")
    try:
        for _ in range(3):
            engine.step()
        streams = server.streams
        deadline = time.monotonic() + 10
        while not streams.aggregate_wanted and time.monotonic() < deadline:
            streams.read_subscriptions()
            time.sleep(0.01)
        step = timed(engine.step, max(3, repeat // 4))
        aggregate = timed(streams.aggregates.compute, repeat)
        publish = timed(streams.publish_step, repeat)
        state_bytes, aggregate_bytes = streams.last_state_bytes, streams.last_aggregate_bytes
        sub = streams.hub.subscribe({"fields": "pos_itrs_km", "dtype": "float32",
                                     "every": 10})
        selective = timed(lambda: streams.hub.publish(
            lambda frames: None, lambda: {"v": 1, "t_utc": 0.0, "run_id": 0},
            engine.header()), repeat)
        n = engine.n_sats
        return {"fleet": scenario.name, "n_sats": n, "groups": len(scenario.groups),
                "key_fields": len(streams.aggregates.fields),
                "step_ms": step, "aggregate_ms": aggregate, "publish_ms": publish,
                "selective_ms": selective, "selective_bytes": sub.bytes_sent // max(
                    1, sub.encodings),
                "default_state_bytes": state_bytes, "aggregate_bytes": aggregate_bytes,
                "default_bytes_per_million": (state_bytes + aggregate_bytes) * 1e6 / n,
                "reduced": streams.reduced}
    finally:
        taker.close(linger=0)
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="starlink,100000")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = [measure(size, args.repeat) for size in args.sizes.split(",")]
    print("| fleet | nodes | groups | key fields | step ms | aggregate ms | publish ms "
          "| selective ms | default bytes/step | per million | reduced |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['fleet']} | {r['n_sats']:,} | {r['groups']} | {r['key_fields']} "
              f"| {r['step_ms'][0]:.1f} ({r['step_ms'][1]:.1f}) "
              f"| {r['aggregate_ms'][0]:.2f} ({r['aggregate_ms'][1]:.2f}) "
              f"| {r['publish_ms'][0]:.2f} ({r['publish_ms'][1]:.2f}) "
              f"| {r['selective_ms'][0]:.2f} ({r['selective_ms'][1]:.2f}), "
              f"{r['selective_bytes']:,} B "
              f"| {r['default_state_bytes'] + r['aggregate_bytes']:,} "
              f"| {r['default_bytes_per_million'] / 1e6:.2f} MB | {r['reduced']} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()

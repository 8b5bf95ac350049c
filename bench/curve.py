"""What CURVE costs on the twin's stream: step time and CPU with keys against without.

Runs the same scenario twice in one process, one after the other, each time a twin in a
thread at the scenario's own rate (the default rate, not --fast) with SUBSCRIBERS clients
draining its stream: once without keys, once with a key folder (every socket CURVE, each
subscriber with its own registered key). For each it reports, per step, the twin thread's
wall time (step and publish), the whole process's CPU time (libzmq's I/O threads encrypt
the frames, outside the twin's thread) and the frames the subscribers got.

    python bench/curve.py --scenario starlink --seconds 20 --subscribers 2

The cost of CURVE is reported as a fraction of the step time without keys (issue 14's
target: at most 10 % at the default rate); docs/performance.md has the numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import zmq
from benchargs import checked_scenario

from twin.core.clock import SimClock
from twin.core.engine import Engine
from twin.runtime.cli import count_argument, positive_argument
from twin.runtime.server import Addresses, TwinServer
from twin.scenario import load_scenario
from twin.security.auth import connect_curve
from twin.security.keys import new_key, server_key_paths

ANY_PORT = "tcp://127.0.0.1:*"


def drain(address: str, keys: Path | None, name: str, stop: threading.Event,
          got: dict[str, int]) -> None:
    """A subscriber taking every frame until told to stop; counts state messages."""
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.rcvtimeo = 200
    sock.setsockopt(zmq.RCVHWM, 100)
    if keys is not None:
        connect_curve(sock, keys / f"{name}.key_secret", server_key_paths(keys)[0])
    sock.setsockopt(zmq.SUBSCRIBE, b"state")
    sock.connect(address)
    while not stop.is_set():
        try:
            sock.recv_multipart(copy=False)
        except zmq.Again:
            continue
        got[name] = got.get(name, 0) + 1
    sock.close(linger=0)


def run(scenario_name: str, seconds: float, subscribers: int, keys: Path | None,
        plain_stream: bool = False) -> dict[str, Any]:
    scenario = load_scenario(scenario_name)
    clock = SimClock(scenario.epoch_utc, rate_hz=scenario.clock.rate_hz,
                     warp=scenario.clock.warp)
    server = TwinServer(Engine(scenario, clock), Addresses(ANY_PORT, ANY_PORT, ANY_PORT),
                        keys_dir=keys, plain_stream=plain_stream)
    stream_keys = None if plain_stream else keys
    stop, got = threading.Event(), {}
    readers = [threading.Thread(target=drain, args=(server.bound.pub, stream_keys, f"sub{k}",
                                                    stop, got), daemon=True)
               for k in range(subscribers)]
    for reader in readers:
        reader.start()
    time.sleep(1.0)  # connected (and, with keys, the handshakes done) before measuring
    process = psutil.Process()
    cpu0, wall0 = process.cpu_times(), time.perf_counter()
    steps0 = clock.steps
    server.run(duration_s=None, max_steps=None,
               on_tick=lambda s: s.stop() if time.perf_counter() - wall0 > seconds else None)
    wall, cpu1 = time.perf_counter() - wall0, process.cpu_times()
    stop.set()
    for reader in readers:
        reader.join(5)
    steps = clock.steps - steps0
    counters = server.counters
    server.close()
    cpu_s = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    return {"keys": keys is not None, "plain_stream": plain_stream, "steps": steps, "wall_s": wall,
            "step_ms": 1e3 * counters.step_time_total_s / max(1, counters.state_published),
            "cpu_ms_per_step": 1e3 * cpu_s / max(1, steps),
            "frames_received": sum(got.values()), "subscribers": subscribers}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=checked_scenario, default="starlink")
    parser.add_argument("--seconds", type=positive_argument("seconds", 600.0), default=20.0)
    parser.add_argument("--subscribers", type=count_argument(1, 16), default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        keys = Path(folder)
        for k in range(args.subscribers):
            new_key(keys, f"sub{k}", ["viewer"])
        plain = run(args.scenario, args.seconds, args.subscribers, None)
        curve = run(args.scenario, args.seconds, args.subscribers, keys)
        plain_stream = run(args.scenario, args.seconds, args.subscribers, keys, True)
    base = plain["step_ms"]
    period_ms = 1e3 / load_scenario(args.scenario).clock.rate_hz
    summary: dict[str, Any] = {"scenario": args.scenario, "step_period_ms": period_ms,
                               "no_keys": plain}
    for name, run_ in (("curve", curve), ("curve_plain_stream", plain_stream)):
        extra_cpu = run_["cpu_ms_per_step"] - plain["cpu_ms_per_step"]
        summary[name] = {**run_,
                         "step_cost_frac": (run_["step_ms"] - base) / base,
                         "cpu_cost_frac_of_step": extra_cpu / base,
                         "cpu_cost_frac_of_period": extra_cpu / period_ms}
    json.dump(summary, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

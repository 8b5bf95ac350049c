"""What recording costs, how big recordings get and how fast they read back (issue 15).

In one process:

1. **Cost.** A ``starlink`` twin (4,428 satellites) runs in this thread at the scenario's
   own rate (10 Hz, warp 1; not ``--fast``), a subscriber draining its stream as a viewer
   would, in blocks of ``--seconds``: without a recorder, with ``odc run --record``'s
   in-process recorder (zstd), without, with lz4, and again (``--repeats``). Per block it
   takes the twin thread's step time (step and publish, as ``odc run`` counts it), the
   whole process's CPU per step, and the recorder thread's own CPU per step. The cost is
   given against the step time without a recorder: the step's own slow-down (what the
   twin's loop feels) and the CPU the recorder adds (what the machine pays).
2. **Size.** Bytes per simulated hour: from the starlink blocks' files (36,000 states an
   hour at 10 Hz, warp 1), and from a ``default`` twin recorded for one simulated hour
   (600 states at its 6 s step, run ``--fast``), each with zstd and lz4.
3. **Reading.** The largest starlink file and the default one read back through
   ``open_recording`` (frames only, then decoded into arrays), and one node's field over
   the whole file through ``odc history``'s code, as multiples of the recording's real
   time (its states at the scenario's rate).

    python bench/recording.py --seconds 8 --repeats 2

docs/performance.md, "Recording", has the numbers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import zmq

from twin.core.clock import SimClock
from twin.core.engine import Engine
from twin.recording.history import history
from twin.recording.live import LiveRecording
from twin.recording.reader import open_recording
from twin.recording.writer import Recorder
from twin.runtime.allocator import keep_temporaries_in_heap
from twin.runtime.cli import count_argument, positive_argument
from twin.runtime.server import Addresses, TwinServer
from twin.scenario import load_scenario

ANY_PORT = "tcp://127.0.0.1:*"
HOUR_S = 3600.0


def drain(address: str, stop: threading.Event) -> None:
    """A subscriber taking every message until told to stop (a viewer's load)."""
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.rcvtimeo = 200
    sock.setsockopt(zmq.RCVHWM, 100)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    sock.connect(address)
    while not stop.is_set():
        try:
            sock.recv_multipart(copy=False)
        except zmq.Again:
            continue
    sock.close(linger=0)


def block(server: TwinServer, seconds: float, record: Path | None, compression: str
          ) -> dict[str, Any]:
    """Run ``server`` for ``seconds`` of wall time, recording to ``record`` if given."""
    live = None
    if record is not None:
        live = LiveRecording.attach(server, Recorder(record, recorder="bench",
                                                     compression=compression))
    counters, clock = server.counters, server.clock
    process = psutil.Process()
    steps0, published0 = clock.steps, counters.state_published
    step_total0 = counters.step_time_total_s
    cpu0, wall0 = process.cpu_times(), time.perf_counter()
    server._stop_requested = False  # the same server runs block after block
    server.run(on_tick=lambda s: s.stop() if time.perf_counter() - wall0 > seconds else None)
    cpu1 = process.cpu_times()
    recorder_cpu = 0.0
    if live is not None:
        # The recorder thread's own CPU clock, read while it still runs.
        recorder_cpu = time.clock_gettime(time.pthread_getcpuclockid(live._thread.ident))
        live.close()
        server.recording = None
        assert live.recorder.error is None, live.recorder.error
    steps = clock.steps - steps0
    published = counters.state_published - published0
    cpu_s = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    result = {"mode": compression if record is not None else "off", "steps": steps,
              "step_ms": 1e3 * (counters.step_time_total_s - step_total0) / max(1, published),
              "cpu_ms_per_step": 1e3 * cpu_s / max(1, steps),
              "recorder_cpu_ms_per_step": 1e3 * recorder_cpu / max(1, steps)}
    if live is not None:
        stats = live.recorder.stats
        result.update(file=str(record), file_bytes=record.stat().st_size,
                      states_recorded=stats.written.get("state", 0),
                      lost=sum(stats.dropped.values()))
    return result


def cost(seconds: float, repeats: int, folder: Path) -> dict[str, Any]:
    scenario = load_scenario("starlink")
    clock = SimClock(scenario.epoch_utc, rate_hz=scenario.clock.rate_hz,
                     warp=scenario.clock.warp)
    server = TwinServer(Engine(scenario, clock), Addresses(ANY_PORT, ANY_PORT, ANY_PORT))
    stop = threading.Event()
    reader = threading.Thread(target=drain, args=(server.bound.pub, stop), daemon=True)
    reader.start()
    time.sleep(1.0)
    block(server, min(seconds, 3.0), None, "")  # warm-up, not counted
    blocks = []
    for k in range(repeats):
        for compression in ("zstd", "lz4"):
            blocks.append(block(server, seconds, None, ""))
            blocks.append(block(server, seconds, folder / f"starlink-{compression}-{k}.mcap",
                                compression))
            print(f"  {blocks[-2]['mode']:4s} {blocks[-2]['step_ms']:.2f} ms/step, "
                  f"{blocks[-1]['mode']:4s} {blocks[-1]['step_ms']:.2f} ms/step "
                  f"(recorder {blocks[-1]['recorder_cpu_ms_per_step']:.2f} ms CPU)",
                  file=sys.stderr, flush=True)
    stop.set()
    reader.join(5)
    dt_s = clock.dt_s
    server.close()
    off = [b for b in blocks if b["mode"] == "off"]
    base_step = statistics.median(b["step_ms"] for b in off)
    base_cpu = statistics.median(b["cpu_ms_per_step"] for b in off)
    summary: dict[str, Any] = {"scenario": "starlink", "rate_hz": scenario.clock.rate_hz,
                               "step_ms_without": base_step, "cpu_ms_per_step_without": base_cpu,
                               "blocks": blocks}
    for compression in ("zstd", "lz4"):
        runs = [b for b in blocks if b["mode"] == compression]
        step = statistics.median(b["step_ms"] for b in runs)
        cpu = statistics.median(b["cpu_ms_per_step"] for b in runs)
        thread = statistics.median(b["recorder_cpu_ms_per_step"] for b in runs)
        biggest = max(runs, key=lambda b: b["states_recorded"])
        summary[compression] = {
            "step_ms": step, "step_cost_frac": (step - base_step) / base_step,
            "cpu_ms_per_step": cpu, "cpu_cost_frac_of_step": (cpu - base_cpu) / base_step,
            "recorder_cpu_ms_per_step": thread,
            "recorder_cpu_frac_of_step": thread / base_step,
            "lost": sum(b["lost"] for b in runs),
            "bytes_per_state": biggest["file_bytes"] / max(1, biggest["states_recorded"]),
            "bytes_per_sim_hour": biggest["file_bytes"] / max(1, biggest["states_recorded"])
            * HOUR_S / dt_s,
            "file": biggest["file"]}
    return summary


def default_hour(folder: Path) -> dict[str, Any]:
    """The default scenario recorded for one simulated hour, zstd and lz4."""
    out: dict[str, Any] = {"scenario": "default"}
    for compression in ("zstd", "lz4"):
        scenario = load_scenario("default")
        clock = SimClock(scenario.epoch_utc, rate_hz=scenario.clock.rate_hz,
                         warp=scenario.clock.warp, fast=True)
        server = TwinServer(Engine(scenario, clock), Addresses(ANY_PORT, ANY_PORT, ANY_PORT))
        path = folder / f"default-{compression}.mcap"
        live = LiveRecording.attach(server, Recorder(path, recorder="bench",
                                                     compression=compression))
        steps = round(HOUR_S / clock.dt_s)
        server.run(max_steps=steps)
        server.close()
        assert live.recorder.error is None and not live.recorder.stats.dropped
        out[compression] = {"states": live.recorder.stats.written["state"],
                            "bytes_per_sim_hour": path.stat().st_size
                            * HOUR_S / (steps * clock.dt_s),
                            "wire_bytes_per_sim_hour": live.recorder.stats.wire_bytes
                            * HOUR_S / (steps * clock.dt_s),
                            "file": str(path), "rate_hz": scenario.clock.rate_hz}
    return out


def read_speed(path: Path, rate_hz: float, sat: str, folder: Path) -> dict[str, Any]:
    """Reading ``path`` back, as multiples of its real time (its states at ``rate_hz``)."""
    recording = open_recording(path)
    states = recording.counts["state"]
    real_s = states / rate_hz
    started = time.perf_counter()
    n = sum(len(m.frames) for m in recording.messages())
    frames_s = time.perf_counter() - started
    started = time.perf_counter()
    for message in recording.messages(["state"]):
        message.decode()
    decode_s = time.perf_counter() - started
    started = time.perf_counter()
    history(path, "temp_compute_k", folder / "history.csv", sats=[sat])
    history_s = time.perf_counter() - started
    return {"file": str(path), "states": states, "frames": n, "real_s": real_s,
            "frames_x_real_time": real_s / frames_s, "decoded_x_real_time": real_s / decode_s,
            "history_x_real_time": real_s / history_s,
            "frames_mb_per_s": path.stat().st_size / 1e6 / frames_s}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=positive_argument("seconds", 600.0), default=8.0,
                        help="wall seconds per block (default: %(default)s)")
    parser.add_argument("--repeats", type=count_argument(1, 20), default=2,
                        help="rounds of off/zstd/off/lz4 blocks (default: %(default)s)")
    args = parser.parse_args()
    keep_temporaries_in_heap()  # as odc run does: the step's temporaries stay in the heap
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        summary: dict[str, Any] = {"cost": cost(args.seconds, args.repeats, folder)}
        summary["default_hour"] = default_hour(folder)
        starlink = load_scenario("starlink")
        summary["read_starlink"] = read_speed(Path(summary["cost"]["zstd"]["file"]),
                                              starlink.clock.rate_hz,
                                              starlink.satellites[0].name, folder)
        default = summary["default_hour"]
        summary["read_default"] = read_speed(Path(default["zstd"]["file"]),
                                             default["zstd"]["rate_hz"],
                                             load_scenario("default").satellites[0].name,
                                             folder)
    json.dump(summary, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

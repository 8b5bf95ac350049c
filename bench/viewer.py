"""Benchmark the 3D viewer offscreen against a live twin: frame rate and frame latency.

Usage:
    .venv/bin/python bench/viewer.py [--scenario starlink] [--size 1280x720] [--seconds 10]

Starts ``python -m twin`` (a separate process, on random loopback ports) and an offscreen
viewer in this process, with the twin running the whole time, and reports:

- live: states received and drawn per second, states skipped (latest wins), and the
  receive-to-rendered latency (from the moment ``poll`` returned the state to the end of
  ``render()`` plus ``glFinish``), median and 95th percentile;
- throughput: frames per second when every loop iteration redraws the newest state
  (update arrays in place + render + glFinish), which is what the window can sustain;
- the cost split: array update vs render;
- motion: frames per second while following the stream, with the fleet moved on by its
  velocities between states (``ViewerApp.move_on``), which is what the window shows, and
  the cost of one such frame (``FleetScene.advance`` + render) on its own.
Machines here are shared and CPU-only (Mesa llvmpipe): compare runs on the same machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchargs import checked_scenario, window_size  # noqa: E402

from twin.runtime.cli import count_argument, positive_argument, rate_argument  # noqa: E402
from viz.viewer import ViewerApp, ViewOptions, prefer_egl  # noqa: E402

prefer_egl()


def start_twin(scenario: str, rate_hz: float | None) -> tuple[subprocess.Popen, str, str]:
    """``python -m twin`` on random ports; returns the process and its stream/command addresses."""
    cmd = [sys.executable, "-m", "twin", "--quiet", "--scenario", scenario,
           "--pub", "tcp://127.0.0.1:*", "--cmd", "tcp://127.0.0.1:*",
           "--ingest", "tcp://127.0.0.1:*"]
    if rate_hz:
        cmd += ["--rate", str(rate_hz)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    addresses: dict[str, str] = {}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(addresses) < 2:
        line = proc.stderr.readline()
        if not line:
            break
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("stream", "commands"):
            addresses[parts[0]] = parts[1]
    if len(addresses) < 2:
        proc.kill()
        raise RuntimeError("the twin did not report its addresses")
    return proc, addresses["stream"], addresses["commands"]


def pct(samples: list[float], q: float) -> float:
    return sorted(samples)[min(len(samples) - 1, int(q * len(samples)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=checked_scenario, default="starlink")
    parser.add_argument("--size", type=window_size, default="1280x720",
                        help="offscreen window, WIDTHxHEIGHT pixels (1280x720)")
    parser.add_argument("--seconds", type=positive_argument("seconds", 3600.0), default=10.0)
    parser.add_argument("--rate", type=rate_argument, default=None,
                        help="twin publish rate, Hz")
    parser.add_argument("--frames", type=count_argument(1), default=200,
                        help="throughput frames")
    args = parser.parse_args()
    width, height = args.size

    import pyvista as pv

    from viz.stream import CommandClient, StreamClient

    twin, pub, cmd = start_twin(args.scenario, args.rate)
    stream, commands = StreamClient(pub), CommandClient(cmd)
    plotter = pv.Plotter(off_screen=True, window_size=[width, height])
    try:
        app = ViewerApp(plotter, stream, commands, ViewOptions())
        if not app.wait_for_frame(120.0):
            print("no frame from the twin", file=sys.stderr)
            return 1
        renderer = plotter.ren_win
        n_sats = app.scene.n_sats
        status = commands.send("status")
        print(f"scenario {args.scenario}: {n_sats} satellites, twin at "
              f"{status.get('rate_hz')} Hz, {width}x{height}, {renderer.GetClassName()}")

        # Live: follow the stream as the window's timer does (a non-blocking tick, again
        # as soon as the last one is done, at most every 15 ms): draw each newest state
        # once and, between states, move the fleet on with its velocities.
        latencies: list[float] = []
        drawn0, received0, skipped0 = app.frames_drawn, app.states_received, app.states_skipped
        renders0 = app.renders
        start = time.monotonic()
        while time.monotonic() - start < args.seconds:
            batch_t = time.monotonic()
            if app.tick(timeout_ms=0.0):
                renderer.WaitForCompletion()
                latencies.append(time.monotonic() - max(batch_t, app.last_receive_wall))
            time.sleep(max(0.0, batch_t + 0.015 - time.monotonic()))
        live_s = time.monotonic() - start
        drawn = app.frames_drawn - drawn0
        print(f"screen: {(app.renders - renders0) / live_s:.1f} frames/s while following "
              "the stream (states drawn + motion between them)")
        print(f"live: {drawn / live_s:.1f} states drawn/s, "
              f"{(app.states_received - received0) / live_s:.1f} received/s, "
              f"{app.states_skipped - skipped0} skipped (latest wins), "
              f"missed on the wire {stream.missed}")
        if latencies:
            print(f"latency receive->rendered: median {1e3 * statistics.median(latencies):.1f} ms, "
                  f"p95 {1e3 * pct(latencies, 0.95):.1f} ms")

        # Throughput: redraw the newest state every iteration, as fast as possible, while
        # the twin keeps running (its states queue in ZeroMQ and are dropped, latest wins).
        scene = app.scene
        update_s, render_s, cpu_s = [], [], []
        start = time.monotonic()
        for _ in range(args.frames):
            c0 = time.process_time()
            t0 = time.perf_counter()
            scene.redraw()
            app.refresh_hud(force=True)
            t1 = time.perf_counter()
            app.render()
            renderer.WaitForCompletion()
            t2 = time.perf_counter()
            update_s.append(t1 - t0)
            render_s.append(t2 - t1)
            # CPU time of this process, llvmpipe's render threads included.
            cpu_s.append(time.process_time() - c0)
        elapsed = time.monotonic() - start
        print(f"throughput: {args.frames / elapsed:.1f} frames/s "
              f"(update {1e3 * statistics.median(update_s):.1f} ms, "
              f"render {1e3 * statistics.median(render_s):.1f} ms median wall per frame; "
              f"{1e3 * statistics.median(cpu_s):.1f} ms CPU per frame, all threads)")
        # Motion alone: the frame the window draws between states.
        motion_s = []
        start = time.monotonic()
        for i in range(args.frames):
            t0 = time.perf_counter()
            scene.advance(0.05 * (i % 20))
            app.render()
            renderer.WaitForCompletion()
            motion_s.append(time.perf_counter() - t0)
        elapsed = time.monotonic() - start
        print(f"motion: {args.frames / elapsed:.1f} frames/s moving the fleet between states "
              f"({1e3 * statistics.median(motion_s):.1f} ms median per frame)")
        load = os.getloadavg()[0]
        print(f"machine: {os.cpu_count()} CPUs, load average {load:.1f} at the end "
              "(other processes share these cores)")
        return 0
    finally:
        plotter.close()
        stream.close()
        commands.close()
        twin.terminate()
        twin.wait(10)


if __name__ == "__main__":
    sys.exit(main())

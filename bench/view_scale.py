"""The 3D viewer at fleet scale, offscreen: frames per second from 40 to 1,000,000 nodes.

Usage:
    .venv/bin/python bench/view_scale.py [--nodes 4428,100000,1000000] [--frames 20]
                                         [--size 1280x720] [--shots /tmp/shots/megafleet]

For each size, a synthetic fleet (circular orbits in megafleet's shells: 500 to 2,000 km,
30 degrees and sun-synchronous; the closed-form state of tests/viewerstate.py, no twin) is
drawn by the real ``ViewerApp`` in an offscreen window, and the bench reports:

- motion: frames per second of what the window shows between states (the fleet moved on
  by its velocities, ``FleetScene.advance`` + render, ending with ``glFinish``);
- new state: the cost of drawing a new state (``apply_state``: colours, flags, placement,
  render);
- how many nodes the level of detail draws and at what point size.

Screenshots of each size go to ``--shots``. Mesa llvmpipe (CPU) is the renderer here.

``--live SCENARIO`` measures ``odc view`` against a live twin instead: ``python -m twin
--scenario SCENARIO`` on loopback ports with its defaults (no ``--full-state-max-sats``:
a megafleet's ``state`` has no node rows and the viewer subscribes, viz.view_subscription),
then the real ``ViewerApp`` following it for ``--seconds``: screen frames per second (new
states and the motion between them, as the window's 15 ms timer would draw them), states
drawn per second, CPU per frame, and what the subscription costs the twin.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from benchargs import window_size  # noqa: E402
from viewerstate import (  # noqa: E402
    GM_EARTH_KM3_S2,
    R_EARTH_KM,
    STATIONS,
    STATUS_LABELS,
    T_UTC,
    TOTAL_UNITS,
    _rz,
    display_keys,
    gmst_rad,
)

from twin.protocol.codec import Message  # noqa: E402
from twin.runtime.cli import count_argument  # noqa: E402
from viz import scene  # noqa: E402
from viz.viewer import ViewerApp, ViewOptions, prefer_egl  # noqa: E402

prefer_egl()

# (altitude km, inclination deg, share of the fleet): megafleet's shells.
SHELLS = ((550.0, 97.6, 0.2), (900.0, 99.0, 0.15), (1400.0, 101.4, 0.1), (1950.0, 104.0, 0.08),
          (500.0, 30.0, 0.2), (800.0, 30.0, 0.15), (1200.0, 30.0, 0.08), (2000.0, 30.0, 0.04))


def fleet(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GCRS positions (km), velocities (km/s) and group index of ``n`` nodes on circles."""
    rng = np.random.default_rng(seed)
    shares = np.array([s[2] for s in SHELLS])
    group = np.minimum(np.searchsorted(np.cumsum(shares / shares.sum()),
                                       (np.arange(n) + 0.5) / n), len(SHELLS) - 1)
    radius = R_EARTH_KM + np.array([s[0] for s in SHELLS])[group]
    inc = np.radians(np.array([s[1] for s in SHELLS])[group])
    raan = np.radians(rng.integers(0, 72, n) * 5.0)  # planes 5 deg apart, as shells have
    u = rng.uniform(0.0, 2.0 * np.pi, n)
    speed = np.sqrt(GM_EARTH_KM3_S2 / radius)
    x, y = np.cos(u), np.sin(u)
    cr, sr, ci, si = np.cos(raan), np.sin(raan), np.cos(inc), np.sin(inc)

    def rotate(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.stack([a * cr - b * ci * sr, a * sr + b * ci * cr, b * si], axis=1)

    return rotate(radius * x, radius * y), rotate(-speed * y, speed * x), group


def meta_and_state(n: int) -> tuple[dict, Message]:
    """The ``meta`` and one ``state`` of a synthetic fleet of ``n`` (tests/viewerstate.py's
    fields and catalog, vectorized for a million)."""
    pos_gcrs, vel_gcrs, group = fleet(n)
    gast = gmst_rad(T_UTC)
    m = _rz(gast)
    pos_itrs = pos_gcrs @ m.T
    sun = np.array([1.495e8, -1.0e5, -4.0e4])
    s_hat = sun / np.linalg.norm(sun)
    along = pos_gcrs @ s_hat
    off_axis = np.linalg.norm(pos_gcrs - along[:, None] * s_hat, axis=1)
    sunlit = np.where((along < 0) & (off_axis < R_EARTH_KM), 0.0, 1.0).astype(np.float32)
    r = np.linalg.norm(pos_itrs, axis=1)
    station_itrs = scene.geodetic_to_itrs_km([s[1] for s in STATIONS], [s[2] for s in STATIONS])
    up = station_itrs / np.linalg.norm(station_itrs, axis=1, keepdims=True)
    in_contact = np.zeros((len(STATIONS), n), bool)
    for k in range(len(STATIONS)):  # one station at a time: (n, 3) temporaries, not (6, n, 3)
        los = pos_itrs - station_itrs[k]
        in_contact[k] = los @ up[k] >= np.sin(np.radians(10.0)) * np.linalg.norm(los, axis=1)
    contact_station = np.where(in_contact.any(axis=0), np.argmax(in_contact, axis=0),
                               -1).astype(np.int16)
    idx = np.arange(n)
    temp_k = (300.0 + 55.0 * (0.5 + 0.5 * np.sin(idx * 0.7))).astype(np.float32)
    temp_k[idx % 50_000 == 5] = 361.0  # a few nodes in alarm
    arrays = {
        "pos_gcrs_km": pos_gcrs, "pos_itrs_km": pos_itrs, "vel_gcrs_km_s": vel_gcrs,
        "alt_km": r - R_EARTH_KM, "sunlit_frac": sunlit, "status": np.zeros(n, np.uint8),
        "in_contact": in_contact, "contact_station": contact_station,
        "temp_compute_k": temp_k,
        "soc_frac": (0.35 + 0.6 * (0.5 + 0.5 * np.cos(idx * 0.3))).astype(np.float32),
    }
    catalog = [
        ("pos_gcrs_km", "km", True, {}), ("pos_itrs_km", "km", True, {}),
        ("vel_gcrs_km_s", "km/s", True, {}), ("alt_km", "km", True, {}),
        ("sunlit_frac", "1", True, {}), ("status", "code", True, {}),
        ("in_contact", "bool", False, {}), ("contact_station", "index", True, {}),
        ("temp_compute_k", "K", True, {"warn_high": 353.15, "alarm_high": 358.15}),
        ("soc_frac", "1", True, {"warn_low": 0.3, "alarm_low": 0.2}),
    ]
    names = [f"N{i:07d}" for i in range(n)]
    groups = [f"shell-{g}" for g in group.tolist()]
    meta = {
        "v": 1, "seq": 0, "t_utc": T_UTC,
        "scenario": {"name": f"scale-{n}", "description": "synthetic", "seed": 1},
        "clock": {"rate_hz": 1.0, "warp": 1.0},
        "sats": {"n": n, "ids": names, "names": names, "groups": groups, "norad_ids": [0] * n},
        "stations": [{"name": name, "lat_deg": la, "lon_deg": lo, "alt_m": 0.0,
                      "min_elevation_deg": 10.0, "downlink_bps": 1e8}
                     for name, la, lo in STATIONS],
        "fields": [{"name": nm, "dtype": arrays[nm].dtype.str, "shape": list(arrays[nm].shape),
                    "unit": unit, "description": "", "per_sat": per_sat, "limits": limits,
                    **display_keys(unit, STATUS_LABELS if nm == "status" else None)}
                   for nm, unit, per_sat, limits in catalog],
        "totals": {k: {"unit": u, "description": "", **display_keys(u)}
                   for k, u in TOTAL_UNITS.items()},
        "subsystems": {},
    }
    header = {"v": 1, "seq": 0, "t_utc": T_UTC, "step": 0, "dt_s": 1.0, "warp": 1.0,
              "paused": False, "n_sats": n, "fleet": {},
              "sun_gcrs_km": [float(x) for x in sun], "gast_rad": gast,
              "gcrs_to_itrs": [float(x) for x in m.ravel()]}
    return meta, Message("state", header, arrays)


def finish(app: ViewerApp) -> None:
    app.pl.ren_win.WaitForCompletion()  # glFinish: the frame is on screen, not queued


def measure(n: int, frames: int, size: tuple[int, int], shots: Path | None) -> dict[str, Any]:
    import pyvista as pv

    meta, state = meta_and_state(n)
    app = ViewerApp(pv.Plotter(off_screen=True, window_size=list(size)), None, None,
                    ViewOptions(show_fps=False))
    started = time.perf_counter()
    app.apply_meta(meta)
    build_s = time.perf_counter() - started
    app.apply_state(state, connection="LIVE")
    app.render()
    finish(app)
    new_state, motion = [], []
    for _ in range(max(3, frames // 5)):
        t0 = time.perf_counter()
        app.apply_state(state, connection="LIVE")
        app.render()
        finish(app)
        new_state.append(time.perf_counter() - t0)
    cpu0 = time.process_time()
    for k in range(frames):
        t0 = time.perf_counter()
        app.scene.advance(0.05 * (k + 1))
        app.render()
        finish(app)
        motion.append(time.perf_counter() - t0)
    # CPU seconds of this process (llvmpipe's threads included) per frame: what the frame
    # costs when the machine is shared and the wall time waits for other processes.
    motion_cpu_s = (time.process_time() - cpu0) / frames
    if shots is not None:
        shots.mkdir(parents=True, exist_ok=True)
        app.pl.screenshot(str(shots / f"fleet_{n}.png"))
    drawn = app.scene.sats.n_points
    point_px = app.scene.sats_actor.GetProperty().GetPointSize()
    subscribed_s = subscribed_state_s(app, meta, state)
    app.pl.close()
    return {"n": n, "build_s": build_s, "new_state_s": statistics.median(new_state),
            "motion_s": statistics.median(motion), "motion_cpu_s": motion_cpu_s,
            "drawn": drawn, "point_px": point_px, "subscribed_s": subscribed_s}


def subscribed_state_s(app: ViewerApp, meta: dict, state: Message, repeat: int = 5) -> float:
    """CPU seconds to draw a state as ``odc view`` gets it from a reduced twin: the
    subscription's message (every k-th node, float32; viz.view_subscription) written into
    the fleet's buffers (``SelectionFrames.frame``), then ``apply_state`` and a render."""
    from viz import lod

    n = int(meta["sats"]["n"])
    every = lod.subscription_every(n)
    index = lod.strided_nodes(n, every)
    arrays: dict[str, np.ndarray] = {}
    if index is not None:
        arrays["sat_index"] = index.astype("<i4")
    for name in ("pos_gcrs_km", "pos_itrs_km", "vel_gcrs_km_s", "sunlit_frac", "status",
                 "in_contact", "temp_compute_k"):
        array = state.arrays[name]
        if index is not None:
            array = array[:, index] if name == "in_contact" else array[index]
        arrays[name] = array.astype("<f4") if array.dtype == np.float64 else array
    message = Message("sub/bench", {**state.header, "sub": "bench"}, arrays)
    app.scene.sample_every = every
    app.scene.build(meta)
    app.selection_frames.configure(meta)
    times = []
    for _ in range(repeat):
        t0 = time.process_time()
        app.apply_state(app.selection_frames.frame(message), connection="LIVE")
        app.render()
        finish(app)
        times.append(time.process_time() - t0)
    return statistics.median(times)


def measure_live(scenario: str, seconds: float, size: tuple[int, int],
                 shots: Path | None, warmup_s: float = 0.0,
                 twin_flags: tuple[str, ...] = ()) -> dict[str, Any]:
    """``odc view`` following a live twin of ``scenario``: frames per second and more."""
    import os
    import socket
    import subprocess

    import pyvista as pv
    from procutil import stop_process

    from viz.stream import CommandClient, StreamClient

    def free_port() -> int:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return int(probe.getsockname()[1])

    pub, cmd, ingest = (f"tcp://127.0.0.1:{free_port()}" for _ in range(3))
    started = time.monotonic()
    # A megafleet takes minutes to load and build on a busy machine: the viewer waits
    # for it as an operator's would (it connects before the twin binds).
    twin = subprocess.Popen([sys.executable, "-m", "twin", "--quiet", "--scenario", scenario,
                             "--pub", pub, "--cmd", cmd, "--ingest", ingest, *twin_flags],
                            cwd=ROOT)
    try:
        stream = StreamClient(pub)
        commands = CommandClient(cmd, timeout_s=5.0)
        app = ViewerApp(pv.Plotter(off_screen=True, window_size=list(size)), stream,
                        commands, ViewOptions())
        try:
            if not app.wait_for_frame(600.0):
                raise SystemExit(f"view_scale: no frame from the {scenario} twin in 600 s")
            first_frame_s = time.monotonic() - started
            settle = time.monotonic()
            while time.monotonic() - settle < warmup_s:  # past the first steps' event flood
                app.tick(2.0)
            renders, drawn, cpu0 = app.renders, app.frames_drawn, time.process_time()
            load = os.getloadavg()[0]
            t0 = time.monotonic()
            while time.monotonic() - t0 < seconds:
                app.tick(2.0)
            wall = time.monotonic() - t0
            cpu = time.process_time() - cpu0
            frames = app.renders - renders
            subs = commands.send("subscriptions").get("subscriptions", [])
            status = commands.send("status")
            if shots is not None:
                shots.mkdir(parents=True, exist_ok=True)
                app.render()
                app.pl.screenshot(str(shots / f"live_{scenario}.png"))
            return {"scenario": scenario, "n": app.scene.n_sats, "first_frame_s": first_frame_s,
                    "fps": frames / wall, "states_per_s": (app.frames_drawn - drawn) / wall,
                    "cpu_per_frame_ms": 1e3 * cpu / max(1, frames), "load": load,
                    "load_end": os.getloadavg()[0], "receiving": app.receiving_line(),
                    "sub_bytes": [s["bytes_sent"] // max(1, s["encodings"]) for s in subs],
                    "step_ms": status.get("counters", {}).get("step_time_mean_ms")}
        finally:
            app.close_subscription()
            app.pl.close()
            stream.close()
            commands.close()
    finally:
        stop_process(twin)


def node_counts(text: str) -> list[int]:
    try:
        counts = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"a comma-separated list of counts, got {text!r}"
                                         ) from None
    if not counts or not all(1 <= c <= 1_000_000 for c in counts):
        raise argparse.ArgumentTypeError(f"counts from 1 to 1,000,000, got {text!r}")
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=node_counts, default=[4428, 100_000, 1_000_000])
    parser.add_argument("--frames", type=count_argument(1), default=20)
    parser.add_argument("--size", type=window_size, default=(1280, 720))
    parser.add_argument("--shots", type=Path, default=None, help="folder for screenshots")
    parser.add_argument("--live", metavar="SCENARIO",
                        help="measure odc view against a live twin of this scenario instead")
    parser.add_argument("--seconds", type=float, default=30.0,
                        help="with --live: how long to follow the twin")
    parser.add_argument("--twin-flag", action="append", default=[], metavar="FLAG",
                        help="with --live: one more flag for the twin (--twin-flag=--workers "
                        "--twin-flag=1)")
    parser.add_argument("--warmup", type=float, default=0.0,
                        help="with --live: follow this long before measuring")
    args = parser.parse_args()
    if args.live:
        r = measure_live(args.live, args.seconds, args.size, args.shots, args.warmup,
                         tuple(args.twin_flag))
        print(f"live {r['scenario']}: {r['n']:,} nodes; {r['receiving']}")
        print(f"first frame {r['first_frame_s']:.0f} s after start; after {args.warmup:g} s, "
              f"over {args.seconds:g} s: "
              f"{r['fps']:.1f} fps on screen, {r['states_per_s']:.2f} states drawn a second, "
              f"{r['cpu_per_frame_ms']:.0f} ms CPU (this process) a frame; subscription "
              f"frames {r['sub_bytes']} bytes; twin step mean {r['step_ms']} ms; load "
              f"average {r['load']:.1f} -> {r['load_end']:.1f}")
        return 0
    print("| nodes | drawn | point (px) | build (s) | new state (ms) | motion frame (ms) |"
          " motion fps | CPU per motion frame (ms) | CPU per subscribed state (ms) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in args.nodes:
        r = measure(n, args.frames, args.size, args.shots)
        print(f"| {n:,} | {r['drawn']:,} | {r['point_px']:.1f} | {r['build_s']:.1f} |"
              f" {1e3 * r['new_state_s']:.0f} | {1e3 * r['motion_s']:.0f} |"
              f" {1 / r['motion_s']:.1f} | {1e3 * r['motion_cpu_s']:.0f} |"
              f" {1e3 * r['subscribed_s']:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

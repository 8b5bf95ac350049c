"""The operator 3D viewer: the fleet around a real, Sun-lit Earth, live from the twin's stream.

`odc view` opens a window; `--offscreen --screenshot out.png` waits for meta and a full
frame and saves it; `--movie out.mp4 --seconds N` records the live stream. pyvista and VTK
are imported inside `run()`, so `odc --help` stays quick.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from twin.protocol.codec import DEFAULT_COMMAND_ADDRESS, DEFAULT_PUB_ADDRESS
from twin.runtime.addresses import address_argument
from twin.security.clients import add_key_arguments, keys_from_args
from twin.security.keys import KeyFileError

log = logging.getLogger("odc.viz.view")


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"window size must look like 1280x720, not {text!r}") from None
    if not (64 <= w <= 8192 and 64 <= h <= 8192):
        raise argparse.ArgumentTypeError(f"window size {w}x{h} outside 64..8192 pixels")
    return w, h


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pub", type=address_argument, default=DEFAULT_PUB_ADDRESS,
                        help="the twin's stream address (default: %(default)s)")
    parser.add_argument("--cmd", type=address_argument, default=DEFAULT_COMMAND_ADDRESS,
                        help="the twin's command address (default: %(default)s)")
    parser.add_argument("--offscreen", action="store_true",
                        help="render without a window (for --screenshot and --movie)")
    parser.add_argument("--screenshot", metavar="PNG", type=Path,
                        help="save one image once meta and a full frame arrived, then exit")
    parser.add_argument("--movie", metavar="MP4", type=Path,
                        help="record the live stream to a video file, then exit")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="length of --movie in wall seconds (default: %(default)s)")
    parser.add_argument("--fps", type=float, default=20.0,
                        help="frame rate of --movie (default: %(default)s)")
    parser.add_argument("--size", type=_size, default=(1280, 720), metavar="WxH",
                        help="window size in pixels (default: 1280x720)")
    parser.add_argument("--field", help="colour nodes by this per-satellite field (default: "
                        "a temperature or utilization when the twin publishes one)")
    parser.add_argument("--cmap", default="turbo", help="matplotlib colormap (default: turbo)")
    parser.add_argument("--earth-fixed", action="store_true",
                        help="start in the Earth-fixed view instead of the inertial one")
    parser.add_argument("--no-trails", action="store_true", help="start without orbit trails")
    parser.add_argument("--no-orbit", action="store_true",
                        help="start without the selected node's full orbit (key O)")
    parser.add_argument("--labels", action="store_true", help="start with station labels")
    parser.add_argument("--select", type=int, metavar="INDEX", help="start with this node selected")
    parser.add_argument("--camera-lat", type=float, metavar="DEG",
                        help="camera above this latitude (default: 20)")
    parser.add_argument("--camera-lon", type=float, metavar="DEG",
                        help="camera above this longitude (default: 70 deg west of the Sun)")
    parser.add_argument("--camera-distance", type=float, metavar="EARTH_RADII",
                        help="camera distance from the Earth's centre (default: fit the fleet)")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="headless: seconds to wait for the twin (default: %(default)s)")
    add_key_arguments(parser)


def run(args: argparse.Namespace) -> int:
    try:
        keys = keys_from_args(args)
    except KeyFileError as exc:
        print(f"odc view: {exc}", file=sys.stderr)
        return 2
    from viz.viewer import ViewerApp, ViewOptions, prefer_egl

    headless = bool(args.offscreen or args.screenshot or args.movie)
    if headless:
        prefer_egl()
    import pyvista as pv

    from viz.stream import CommandClient, StreamClient

    if args.camera_lat is not None and not -90.0 <= args.camera_lat <= 90.0:
        print(f"odc view: --camera-lat {args.camera_lat} is outside -90..90", file=sys.stderr)
        return 2
    if args.camera_distance is not None and args.camera_distance <= 1.05:
        print("odc view: --camera-distance must be above 1.05 Earth radii", file=sys.stderr)
        return 2
    options = ViewOptions(
        field=args.field, earth_fixed=args.earth_fixed, trails=not args.no_trails,
        orbit=not args.no_orbit,
        labels=args.labels, camera_lat_deg=args.camera_lat, camera_lon_deg=args.camera_lon,
        camera_distance_re=args.camera_distance, cmap=args.cmap,
    )
    stream = StreamClient(args.pub, keys=keys)
    commands = CommandClient(args.cmd, timeout_s=1.0, keys=keys)
    plotter = pv.Plotter(off_screen=headless, window_size=list(args.size))
    try:
        app = ViewerApp(plotter, stream, commands, options)
        if args.select is not None:
            app.scene.selected = args.select
        if not headless:
            app.run_interactive()
            return 0
        if not app.wait_for_frame(args.timeout):
            why = stream.refused or "is the twin running? `odc run`"
            print(f"odc view: no meta and full frame from {args.pub} within {args.timeout:g} s "
                  f"({why})", file=sys.stderr)
            return 1
        if args.field and (app.scene.field is None or app.scene.field.name != args.field):
            names = ", ".join(f.name for f in app.scene.fields)
            print(f"odc view: --field {args.field!r} is not a per-satellite field of this twin; "
                  f"it has: {names}", file=sys.stderr)
            return 2
        if args.movie:
            _record(app, plotter, args.movie, args.seconds, args.fps)
            print(f"odc view: wrote {args.movie} ({args.seconds:g} s at {args.fps:g} fps)")
        if args.screenshot:
            app.tick(timeout_ms=0.0)  # the newest frame, if one came meanwhile
            plotter.render()
            plotter.screenshot(str(args.screenshot))
            print(f"odc view: wrote {args.screenshot}")
        return 0
    finally:
        plotter.close()
        stream.close()
        commands.close()


def _record(app, plotter, path: Path, seconds: float, fps: float) -> None:
    """Write the live stream at a fixed frame rate: each video frame is the newest state."""
    plotter.open_movie(str(path), framerate=fps, quality=7)
    period = 1.0 / fps
    start = time.monotonic()
    frames = 0
    while frames < max(1, round(seconds * fps)):
        app.tick(timeout_ms=max(0.0, (start + frames * period - time.monotonic()) * 1000.0))
        plotter.write_frame()
        frames += 1
    log.info("movie: %d frames, %d states drawn", frames, app.frames_drawn)

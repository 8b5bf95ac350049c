"""The operator 3D viewer: the fleet around a real, Sun-lit Earth, live from the twin's stream.

`odc view` opens a window; `--offscreen --screenshot out.png` waits for meta and a full
frame and saves it; `--movie out.mp4 --seconds N` records N wall seconds of the live
stream at its own pace (`--time-lapse`: one movie frame per state instead). pyvista and
VTK are imported inside `run()`, so `odc --help` stays quick; without a display (and
without `--offscreen`) it says so before VTK loads, and exits 1.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
            f"window size must look like 1920x1080 (WIDTHxHEIGHT), not {text!r}") from None
    if not (64 <= w <= 8192 and 64 <= h <= 8192):
        raise argparse.ArgumentTypeError(f"window size {w}x{h} outside 64..8192 pixels")
    return w, h


def _colormap(name: str) -> str:
    import matplotlib  # only when --cmap is given: its colormap registry

    if name not in matplotlib.colormaps:
        raise argparse.ArgumentTypeError(
            f"no matplotlib colormap {name!r} (try viridis, plasma, turbo, RdYlGn)")
    return name


def _positive(flag: str):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} must be a number, not {text!r}") from None
        if not (0.0 < value <= 86_400.0) or not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{flag} {text} is outside 0..86400")
        return value

    return parse


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
    parser.add_argument("--seconds", type=_positive("--seconds"), default=10.0,
                        help="--movie records this many wall seconds of the stream, at "
                        "the stream's own pace (the twin's warp as it runs): the movie "
                        "lasts exactly this long at --fps, and recording takes about as "
                        "long (default: %(default)s)")
    parser.add_argument("--fps", type=_positive("--fps"), default=20.0,
                        help="frame rate of --movie (default: %(default)s)")
    parser.add_argument("--time-lapse", action="store_true",
                        help="--movie: one movie frame per state received instead, for "
                        "--seconds of wall time; the movie then plays faster than the "
                        "stream by --fps over the states per second (it says by how much)")
    parser.add_argument("--size", type=_size, default=(1280, 720), metavar="WxH",
                        help="window, screenshot and movie size in pixels, e.g. 1920x1080 "
                        "(default: 1280x720); text scales with the height")
    parser.add_argument("--field", help="colour nodes by this per-satellite field (default: "
                        "a temperature or utilization when the twin publishes one)")
    parser.add_argument("--cmap", default=None, type=_colormap,
                        help="matplotlib colormap for every field (default: one per field "
                        "by its meaning: charge red to green, temperatures blue to red, "
                        "others viridis)")
    parser.add_argument("--earth-fixed", action="store_true",
                        help="start in the Earth-fixed view instead of the inertial one")
    trails = parser.add_mutually_exclusive_group()
    trails.add_argument("--trails", dest="trails", action="store_const", const=True,
                        help="start with orbit trails (the default up to 1,000 nodes; key t)")
    trails.add_argument("--no-trails", dest="trails", action="store_const", const=False,
                        help="start without orbit trails")
    parser.add_argument("--no-orbit", action="store_true",
                        help="start without the selected node's full orbit (key O)")
    parser.add_argument("--labels", action="store_true", help="start with station labels")
    links = parser.add_mutually_exclusive_group()
    links.add_argument("--links", dest="links", action="store_const", const=True,
                       help="start with the optical inter-satellite links drawn (the default "
                       "up to 1,000 nodes; key L)")
    links.add_argument("--no-links", dest="links", action="store_const", const=False,
                       help="start without the optical links (for movies and screenshots "
                       "of the fleet alone)")
    parser.add_argument("--map", action="store_true",
                        help="start on the 2D map instead of the globe (key v)")
    parser.add_argument("--cluster", action="store_true",
                        help="start on the formation cluster close-up (key v), when the twin"
                             " has a [[cluster]]")
    parser.add_argument("--ground-track", action="store_true",
                        help="start with the selected node's ground track (key g)")
    parser.add_argument("--select", type=int, metavar="INDEX", help="start with this node selected")
    parser.add_argument("--camera-lat", type=float, metavar="DEG",
                        help="camera above this latitude (default: 20)")
    parser.add_argument("--camera-lon", type=float, metavar="DEG",
                        help="camera above this longitude (default: 50 deg west of the Sun;"
                        " a cluster or a concentrated fleet: above it, following it)")
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
    from viz.viewer import ViewerApp, ViewOptions, display_missing, prefer_egl

    headless = bool(args.offscreen or args.screenshot or args.movie)
    if headless:
        prefer_egl()
    elif (why := display_missing()) is not None:
        print(f"odc view: {why}: no window can open here. Render without one: "
              "`odc view --offscreen --screenshot fleet.png` or "
              "`odc view --offscreen --movie fleet.mp4 --seconds 20`", file=sys.stderr)
        return 1
    import pyvista as pv

    from viz.stream import CommandClient, StreamClient

    if args.camera_lat is not None and not -90.0 <= args.camera_lat <= 90.0:
        print(f"odc view: --camera-lat {args.camera_lat} is outside -90..90", file=sys.stderr)
        return 2
    if args.camera_distance is not None and args.camera_distance <= 1.05:
        print("odc view: --camera-distance must be above 1.05 Earth radii", file=sys.stderr)
        return 2
    options = ViewOptions(
        field=args.field, earth_fixed=args.earth_fixed, trails=args.trails,
        orbit=not args.no_orbit, links=args.links,
        labels=args.labels, camera_lat_deg=args.camera_lat, camera_lon_deg=args.camera_lon,
        camera_distance_re=args.camera_distance, cmap=args.cmap,
    )
    stream = StreamClient(args.pub, keys=keys)
    commands = CommandClient(args.cmd, timeout_s=1.0, keys=keys)
    plotter = pv.Plotter(off_screen=headless, window_size=list(args.size))
    app: ViewerApp | None = None
    try:
        app = ViewerApp(plotter, stream, commands, options)
        if args.select is not None:
            app.scene.selected = args.select
        if args.ground_track:
            app.toggle_ground_track()
        if args.map:
            app.next_view()
        app.start_on_cluster = args.cluster
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
            record = _time_lapse if args.time_lapse else _record
            with _ctrl_c_stops() as stop:
                said = record(app, plotter, args.movie, args.seconds, args.fps, stop)
            print(f"odc view: wrote {args.movie} ({said})")
            if stop.requested:
                print("odc view: interrupted (ctrl+c); the movie is playable up to there",
                      file=sys.stderr)
                return 130
        if args.screenshot:
            app.tick(timeout_ms=0.0)  # the newest frame, if one came meanwhile
            plotter.render()
            plotter.screenshot(str(args.screenshot))
            print(f"odc view: wrote {args.screenshot}")
        return 0
    except KeyboardInterrupt:
        # Ctrl-C while waiting or recording: close the movie (playable up to here), exit.
        print("odc view: interrupted (ctrl+c)", file=sys.stderr)
        return 130
    finally:
        if app is not None:
            app.close_subscription()
        plotter.close()
        stream.close()
        commands.close()


class _Stop:
    """Set by Ctrl-C while a movie records; the recording loop ends at its next frame."""

    requested = False


@contextlib.contextmanager
def _ctrl_c_stops() -> Iterator[_Stop]:
    """Ctrl-C ends the recording between frames instead of raising KeyboardInterrupt.

    A KeyboardInterrupt raised inside a VTK callback during rendering does not reach our
    ``except``: VTK's Python wrapping prints "Caught a Ctrl-C within python" and exits with
    status 1, leaving an unfinished movie. A flag checked between frames cannot land there.
    """
    stop = _Stop()

    def on_interrupt(_signum: int, _frame: Any) -> None:
        stop.requested = True

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def _open_movie(plotter: Any, path: Path, fps: float) -> None:
    # A 1080-row frame is not a multiple of 16 rows: blocks of 2 keep its size exact.
    # x264's "veryfast" preset: encoding keeps up with the recording on a busy CPU.
    plotter.open_movie(str(path), framerate=fps, quality=7, macro_block_size=2,
                       ffmpeg_params=["-preset", "veryfast"])


def _record(app: Any, plotter: Any, path: Path, seconds: float, fps: float,
            stop: _Stop) -> str:
    """Record ``seconds`` of wall time at the stream's own pace: ``seconds * fps`` frames.

    Movie frame ``k`` shows the fleet as it is at wall time ``start + k / fps`` (the newest
    state, moved on with its velocities). When rendering and encoding fall behind, the
    newest image fills the frames it missed, so the movie never runs faster than the
    stream and recording never takes much longer than ``seconds``.
    """
    _open_movie(plotter, path, fps)
    period, total = 1.0 / fps, max(1, round(seconds * fps))
    start = time.monotonic()
    written = repeated = 0
    while written < total and not stop.requested:
        due = start + written * period
        got = app.tick(timeout_ms=max(0.0, (due - time.monotonic()) * 1000.0))
        if time.monotonic() < due:
            continue  # a message came before this frame's time: wait on for the time
        if not got:
            app.move_on(every_s=0.0)  # no new state: the fleet moved on, rendered once
        image = plotter.screenshot(return_img=True)
        # Every frame whose time has come gets this image (at least one).
        slots = min(total - written, max(1, int((time.monotonic() - start) / period) - written))
        for _ in range(slots):
            plotter.mwriter.append_data(image)
        written += slots
        repeated += slots - 1
    plotter.mwriter.close()
    plotter.mwriter = None
    wall = time.monotonic() - start
    log.info("movie: %d frames (%d repeated), %d states drawn, %.1f s", written, repeated,
             app.frames_drawn, wall)
    return (f"{written} frames at {fps:g} fps: {written / fps:g} s of the stream at its own "
            f"pace, recorded in {wall:.1f} s" +
            (f"; {repeated} frames repeated (rendering fell behind)" if repeated else ""))


def _time_lapse(app: Any, plotter: Any, path: Path, seconds: float, fps: float,
                stop: _Stop) -> str:
    """One movie frame per state received during ``seconds`` of wall time (a time-lapse)."""
    _open_movie(plotter, path, fps)
    start = time.monotonic()
    frames = 0
    while time.monotonic() - start < seconds and not stop.requested:
        remaining_ms = (start + seconds - time.monotonic()) * 1000.0
        if app.tick(timeout_ms=max(0.0, min(100.0, remaining_ms))):
            plotter.mwriter.append_data(plotter.screenshot(return_img=True))
            frames += 1
    if not frames:  # not one state: still a valid movie of the last view
        plotter.mwriter.append_data(plotter.screenshot(return_img=True))
        frames = 1
    plotter.mwriter.close()
    plotter.mwriter = None
    wall = time.monotonic() - start
    speed = (frames / fps) and wall / (frames / fps)
    return (f"time-lapse: {frames} states as {frames} frames at {fps:g} fps, "
            f"{frames / fps:g} s of movie for {wall:.1f} s of stream: {speed:.2g}x its pace")

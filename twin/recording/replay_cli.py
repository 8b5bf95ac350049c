"""`odc replay`: serve a recording (MCAP) as the twin's stream and commands, with seek.

Viewers (`odc tui`, `odc view`) follow a replay exactly as they follow a running twin, on the
same default addresses, and show REPLAY with a time bar. A file that is not a recording, is
cut short or of another profile ends the command with a message and exit status 2.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import TextIO

from twin.core.clock import MAX_WARP, MIN_WARP
from twin.protocol.codec import DEFAULT_COMMAND_ADDRESS, DEFAULT_PUB_ADDRESS
from twin.recording.format import RecordingError
from twin.recording.playback import Recording
from twin.recording.replay import ReplayAddresses, ReplayServer, iso
from twin.runtime.addresses import address_argument
from twin.runtime.cli import warp_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `odc replay`."""
    parser.add_argument("path", type=Path, metavar="PATH.mcap",
                        help="the recording (`odc record`, `odc run --record`)")
    parser.add_argument("--warp", type=warp_argument,
                        help=f"recorded simulated seconds played per wall second, {MIN_WARP:g}"
                        f" to {MAX_WARP:g} (default: the recorded twin's warp)")
    parser.add_argument("--paused", action="store_true",
                        help="start paused on the first recorded state")
    parser.add_argument("--loop", action="store_true",
                        help="at the end, play again from the start")
    parser.add_argument("--pub", type=address_argument, default=DEFAULT_PUB_ADDRESS,
                        help="PUB address for the stream, loopback only "
                        "(default: %(default)s)")
    parser.add_argument("--cmd", type=address_argument, default=DEFAULT_COMMAND_ADDRESS,
                        help="ROUTER address for commands, loopback only "
                        "(default: %(default)s)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no live status line")


class StatusLine:
    """Where the replay is: rewritten in place on a terminal, a line a while otherwise."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.interval_s = 0.5 if self.tty else 5.0
        self._next = 0.0

    def __call__(self, server: ReplayServer) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.interval_s
        start, end = server.recording.span_utc
        position = server.position_ns / 1e9
        done = 100.0 * (position - start) / (end - start) if end > start else 100.0
        state = "ENDED" if server.ended else "PAUSED" if server.paused else "playing"
        text = (f"{iso(position)}  {done:5.1f} %  warp {server.warp:g}x  {state}  "
                f"states {server.published.get('state', 0)}  seeks {server.seeks}")
        self.stream.write(("\r\x1b[2K" + text) if self.tty else text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\n")


def run(args: argparse.Namespace) -> int:
    """Serve the recording until interrupted; returns the exit status."""
    try:
        recording = Recording(args.path)
    except RecordingError as exc:
        print(f"odc replay: {exc}", file=sys.stderr)
        return 2
    try:
        server = ReplayServer(recording, ReplayAddresses(args.pub, args.cmd), warp=args.warp,
                              paused=args.paused, loop=args.loop)
    except (OSError, ValueError, RecordingError) as exc:
        recording.close()
        print(f"odc replay: {exc}", file=sys.stderr)
        return 2
    bound = server.bound
    start, end = recording.span_utc
    counts = ", ".join(f"{n} {t.decode()}" for t, n in sorted(recording.counts.items()) if n)
    print(
        f"odc replay: {recording.path}: {recording.name!r}, {iso(start)} .. {iso(end)} "
        f"({end - start:.1f} s simulated{', ' + counts if counts else ''}), warp "
        f"{server.warp:g}{', paused' if args.paused else ''}{', looping' if args.loop else ''}"
        f"\n  stream   {bound.pub}\n  commands {bound.command}",
        file=sys.stderr, flush=True,
    )
    status = None if args.quiet else StatusLine(sys.stderr)

    def request_stop(signum: int, frame: object) -> None:
        server.stop()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run(on_tick=status)
    except RecordingError as exc:  # the recording went bad under the replay's feet
        print(f"\nodc replay: {exc}", file=sys.stderr)
        return 2
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if status is not None:
            status(server)
            status.finish()
        server.close()
        recording.close()
    print(f"odc replay: stopped at {iso(server.position_ns / 1e9)} after "
          f"{server.published.get('state', 0)} states and {server.seeks} seeks",
          file=sys.stderr)
    return 0

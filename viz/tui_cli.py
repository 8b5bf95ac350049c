"""The terminal dashboard: the whole fleet as numbers, trends and alarms, live from the stream.

`odc tui` subscribes to the twin's stream and sends commands on its command socket; it
computes nothing itself. It keeps running when the twin goes away (STALE) and picks the
stream up again when the twin returns.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator

from twin.protocol.codec import DEFAULT_COMMAND_ADDRESS, DEFAULT_PUB_ADDRESS
from twin.runtime.addresses import address_argument
from twin.security.clients import add_key_arguments, keys_from_args
from twin.security.keys import KeyFileError


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not 0 < value < 1e6:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `odc tui`."""
    parser.add_argument("--pub", type=address_argument, default=DEFAULT_PUB_ADDRESS,
                        help="the twin's stream (PUB) address (default: %(default)s)")
    parser.add_argument("--cmd", type=address_argument, default=DEFAULT_COMMAND_ADDRESS,
                        help="the twin's command (ROUTER) address (default: %(default)s)")
    parser.add_argument("--stale-after", type=_positive, default=3.0, metavar="SECONDS",
                        help="seconds of silence before the twin shows as STALE "
                        "(default: %(default)s)")
    parser.add_argument("--max-fps", type=_positive, default=10.0, metavar="HZ",
                        help="most table redraws per second (default: %(default)s)")
    parser.add_argument("--recording", default="", metavar="PATH",
                        help="a recording the detail screen's `h` (load a node's trend from a "
                        "recording) offers first")
    add_key_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run the dashboard until the operator quits; returns the exit status."""
    try:
        keys = keys_from_args(args)
    except KeyFileError as exc:
        print(f"odc tui: {exc}", file=sys.stderr)
        return 2
    from viz.tui.app import DashboardApp  # textual loads only when the dashboard runs

    app = DashboardApp(args.pub, args.cmd, stale_after_s=args.stale_after, max_fps=args.max_fps,
                       keys=keys, recording=args.recording)
    with _logging_off_the_terminal():
        app.run()
    return int(app.return_code or 0)


@contextlib.contextmanager
def _logging_off_the_terminal() -> Iterator[None]:
    """Log lines go to textual's log, not the terminal the dashboard draws on, while it runs.

    A line written to stderr lands in the middle of the screen (a bad stream message is
    logged, at a bounded rate); the dashboard shows them in its own events log.
    """
    from textual.logging import TextualHandler

    root = logging.getLogger()
    terminal = [h for h in root.handlers if isinstance(h, logging.StreamHandler)
                and getattr(h, "stream", None) in (sys.stderr, sys.stdout)]
    for handler in terminal:
        root.removeHandler(handler)
    quiet = TextualHandler()
    root.addHandler(quiet)
    try:
        yield
    finally:
        root.removeHandler(quiet)
        for handler in terminal:
            root.addHandler(handler)

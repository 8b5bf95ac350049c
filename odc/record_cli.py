"""Record the twin's stream to an MCAP file, or make a recording that was cut short whole.

``odc record tcp://127.0.0.1:5555 run.mcap`` subscribes to the twin's stream and writes
every message it receives, as received, until SIGINT or SIGTERM (Ctrl-C) or ``--duration``
wall seconds; then it finishes the file (summary and index) and prints what it kept, left
out and never received. The recording starts at the twin's next ``meta`` (every few
seconds). ``--every N`` keeps every Nth state (events, meta and heartbeats all);
``--rotate-mb``/``--rotate-s`` write ``run-0001.mcap``, ``run-0002.mcap``, ... instead, each
standing alone, and ``--budget-mb`` deletes the oldest of them to stay under a size.

A recorder killed outright (SIGKILL, power) leaves a file without its summary, readable up
to at most a second before it stopped: ``odc record --recover run.mcap [out.mcap]`` writes
what it holds into a whole, indexed file (``run.recovered.mcap`` by default).

Exit status: 0 when the recording was written whole, 1 when writing failed on the way (the
file is readable up to there) or the twin refused the recorder's key (or lack of one)
throughout, 2 for a bad command line or a path it cannot start on.
docs/recording.md has the details.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import time

from twin.recording.format import CHANNELS, RecordingError
from twin.recording.writer import COMPRESSIONS
from twin.runtime.addresses import check_address
from twin.runtime.cli import positive_argument
from twin.security.clients import add_key_arguments, keys_from_args
from twin.security.keys import KeyFileError

RECEIVE_QUEUE = 100
"""Messages the subscriber queues while the recorder writes (the twin's PUB queues up to
50 more): 140 MB of starlink states at most; past that whole messages drop and are counted."""
MAX_MESSAGE_BYTES = 512 * 2**20
"""Largest message part taken (as the viewers): a state of 100,000 nodes is tens of MB."""
BURST = 1000
"""Messages written per wake before the recorder looks at its flush timer again."""


def _every(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `odc record`."""
    parser.add_argument("source", metavar="ADDRESS|IN.mcap",
                        help="the twin's stream address (tcp://127.0.0.1:5555); with "
                        "--recover, the recording to recover")
    parser.add_argument("path", metavar="PATH.mcap", nargs="?",
                        help="the recording to write; with --recover, the recovered file "
                        "(default: IN.recovered.mcap)")
    parser.add_argument("--every", type=_every, default=1, metavar="N",
                        help="keep every Nth state; events, meta and heartbeats all "
                        "(default: %(default)s)")
    parser.add_argument("--compression", choices=sorted(COMPRESSIONS), default="zstd",
                        help="chunk compression (default: %(default)s; lz4 is faster, larger)")
    parser.add_argument("--rotate-mb", type=positive_argument("--rotate-mb", 1e7), metavar="MB",
                        help="start a new file (PATH-0001.mcap, -0002, ...) at this size")
    parser.add_argument("--rotate-s", type=positive_argument("--rotate-s", 1e9), metavar="SECONDS",
                        help="start a new file after this many wall seconds")
    parser.add_argument("--budget-mb", type=positive_argument("--budget-mb", 1e9), metavar="MB",
                        help="with rotation: delete the oldest files to stay under this size")
    parser.add_argument("--duration", type=positive_argument("--duration", 1e9), metavar="SECONDS",
                        help="stop after this many wall seconds (default: at Ctrl-C or SIGTERM)")
    parser.add_argument("--recover", action="store_true",
                        help="write what a cut-short recording IN.mcap holds into a whole, "
                        "indexed file")
    add_key_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Record, or recover with ``--recover``; returns the exit status."""
    if args.recover:
        return _recover(args)
    return _record(args)


def _recover(args: argparse.Namespace) -> int:
    from twin.recording.reader import recover

    ignored = [flag for flag, value, default in (
        ("--every", args.every, 1), ("--compression", args.compression, "zstd"),
        ("--rotate-mb", args.rotate_mb, None), ("--rotate-s", args.rotate_s, None),
        ("--budget-mb", args.budget_mb, None), ("--duration", args.duration, None),
        ("--key", args.key, None), ("--server-key", args.server_key, None)) if value != default]
    if ignored:
        print(f"odc record --recover: {', '.join(ignored)} do not apply to a recovery "
              "(it copies what the file holds, as it is)", file=sys.stderr)
        return 2
    try:
        recovered = recover(args.source, args.path)
    except RecordingError as exc:
        print(f"odc record --recover: {exc}", file=sys.stderr)
        return 2
    print(f"odc record: {recovered.line()}", file=sys.stderr)
    return 0


def _record(args: argparse.Namespace) -> int:
    import zmq

    from twin.recording.writer import Recorder
    from twin.security.clients import HandshakeWatch

    try:
        address = check_address(args.source)
    except ValueError as exc:
        print(f"odc record: {exc} (to recover a file, give --recover)", file=sys.stderr)
        return 2
    if args.path is None:
        print("odc record: give the recording's path after the address: odc record "
              f"{address} run.mcap", file=sys.stderr)
        return 2
    try:
        keys = keys_from_args(args)
        recorder = Recorder(
            args.path, recorder="odc record", every=args.every, compression=args.compression,
            rotate_bytes=None if args.rotate_mb is None else round(args.rotate_mb * 1e6),
            rotate_s=args.rotate_s,
            budget_bytes=None if args.budget_mb is None else round(args.budget_mb * 1e6))
    except (KeyFileError, RecordingError, ValueError) as exc:
        print(f"odc record: {exc}", file=sys.stderr)
        return 2
    if recorder.error is not None:  # the first file could not be made: nothing started
        print(f"odc record: {recorder.error}", file=sys.stderr)
        return 2
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, RECEIVE_QUEUE)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
    sock.setsockopt(zmq.RECONNECT_IVL, 100)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
    for topic in CHANNELS:  # not the clients' selective streams (sub/...)
        sock.setsockopt(zmq.SUBSCRIBE, topic)
    try:
        if keys is not None:
            keys.apply(sock)
    except KeyFileError as exc:
        sock.close(linger=0)
        recorder.close()
        print(f"odc record: {exc}", file=sys.stderr)
        return 2
    watch = HandshakeWatch(sock, address, keys)
    sock.connect(address)
    stop = {"now": False}

    def request_stop(signum: int, frame: object) -> None:
        stop["now"] = True

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    print(f"odc record: recording {address} to {recorder.current}"
          + (" (and on, rotating)" if recorder.rotating else "")
          + "; Ctrl-C to stop", file=sys.stderr, flush=True)
    deadline = math.inf if args.duration is None else time.monotonic() + args.duration
    refused = ""
    try:
        while not stop["now"] and recorder.recording and time.monotonic() < deadline:
            wait_s = min(0.2, recorder.seconds_to_next_tick(), deadline - time.monotonic())
            if sock.poll(max(0.0, wait_s) * 1000.0, zmq.POLLIN):
                for _ in range(BURST):
                    try:
                        frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    recorder.write(frames, time.time_ns())
            recorder.tick()
            if (why := watch.check()) and why != refused:
                print(f"odc record: {why}", file=sys.stderr, flush=True)
            refused = why
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        recorder.close()
        watch.close()
        sock.close(linger=0)
    files = ", ".join(str(p) for p in recorder.files) or "nothing"
    print(f"odc record: wrote {files}: {recorder.stats.line()}", file=sys.stderr)
    if recorder.error is not None:
        print(f"odc record: recording stopped: {recorder.error} (what was written before is "
              "readable; odc record --recover makes a cut file whole)", file=sys.stderr)
        return 1
    if refused and not recorder.stats.messages:
        return 1  # the twin refused this recorder throughout: said above, nothing recorded
    return 0

"""Start the twin and its viewers together: the one-command demo that `make run` runs.

`odc demo` starts the twin (`python -m twin`) on the `default` scenario, opens the
terminal dashboard, and where a display is available ($DISPLAY or $WAYLAND_DISPLAY) the
3D viewer too. Quitting the dashboard stops everything it started. `odc demo --headless
--duration S` runs for S wall seconds with no UI at all and prints a short summary (CI,
machines without a terminal).
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from twin.protocol.codec import (
    DEFAULT_COMMAND_ADDRESS,
    DEFAULT_INGEST_ADDRESS,
    DEFAULT_PUB_ADDRESS,
)
from twin.runtime.addresses import address_argument
from twin.runtime.cli import positive_argument, rate_argument, warp_argument

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
ADDRESS_LINE = re.compile(r"\s+(stream|commands|ingest)\s+(\S+://\S+)")


MAX_DURATION_S = 1.0e6
"""Longest --headless run, wall seconds (11.6 days)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `odc demo`."""
    parser.add_argument("--scenario", "-s", default="default", metavar="NAME_OR_PATH",
                        help="scenario for the twin (default: %(default)s)")
    parser.add_argument("--warp", type=warp_argument,
                        help="simulated seconds per wall second (as in odc run)")
    parser.add_argument("--rate", type=rate_argument, metavar="HZ",
                        help="steps per wall second (as in odc run)")
    parser.add_argument("--headless", action="store_true",
                        help="no UI: follow the stream for --duration seconds, print a summary")
    parser.add_argument("--duration", type=positive_argument("duration", MAX_DURATION_S),
                        default=10.0, metavar="SECONDS",
                        help="wall seconds a --headless run lasts (default: %(default)s)")
    parser.add_argument("--no-view", action="store_true",
                        help="do not open the 3D viewer even where a display is available")
    parser.add_argument("--pub", type=address_argument, default=DEFAULT_PUB_ADDRESS,
                        help="stream address the twin binds (default: %(default)s; "
                        "tcp://127.0.0.1:* picks a free port)")
    parser.add_argument("--cmd", type=address_argument, default=DEFAULT_COMMAND_ADDRESS,
                        help="command address the twin binds (default: %(default)s)")
    parser.add_argument("--ingest", type=address_argument, default=DEFAULT_INGEST_ADDRESS,
                        help="telemetry address the twin binds (default: %(default)s)")


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM if the demo dies without cleaning up (Linux)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the normal shutdown path still stops the children


@dataclass
class Child:
    """A process the demo started, with the tail of its stderr kept for error reports."""

    name: str
    proc: subprocess.Popen
    tail: collections.deque = field(default_factory=lambda: collections.deque(maxlen=40))

    def drain(self) -> None:
        """Keep reading stderr in a thread so a full pipe never blocks the child."""
        def read() -> None:
            for line in self.proc.stderr:
                self.tail.append(line.rstrip("\n"))

        threading.Thread(target=read, name=f"{self.name}-stderr", daemon=True).start()

    def stop(self) -> int | None:
        """SIGINT (a clean shutdown), then SIGKILL after a grace period; the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_twin(args: argparse.Namespace) -> tuple[Child, dict[str, str]]:
    """Start `python -m twin` and wait for the addresses it bound.

    Raises:
        RuntimeError: the twin exited or said nothing within the start timeout; the
            message carries the end of its stderr.
    """
    command = [sys.executable, "-m", "twin", "--quiet", "--scenario", args.scenario,
               "--pub", args.pub, "--cmd", args.cmd, "--ingest", args.ingest]
    if args.warp:
        command += ["--warp", f"{args.warp:g}"]
    if args.rate:
        command += ["--rate", f"{args.rate:g}"]
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_die_with_parent)
    twin = Child("twin", proc)
    addresses: dict[str, str] = {}
    deadline = time.monotonic() + START_TIMEOUT_S
    while len(addresses) < 3 and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        twin.tail.append(line.rstrip("\n"))
        if match := ADDRESS_LINE.match(line):
            addresses[match.group(1)] = match.group(2)
    if len(addresses) < 3:
        twin.stop()
        why = "\n  ".join(twin.tail) or "(no output)"
        raise RuntimeError(f"the twin did not start:\n  {why}")
    twin.drain()
    return twin, addresses


def start_viewer(addresses: dict[str, str]) -> tuple[Child, Path] | None:
    """Open the 3D viewer where a display is available; its output goes to a log file."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return None
    if importlib.util.find_spec("viz.viewer_cli") is None:
        return None
    # A private folder (mode 0700, unpredictable name): a fixed name in a shared /tmp
    # could be a link another user planted.
    log_path = Path(tempfile.mkdtemp(prefix="odc-demo-")) / "view.log"
    log = log_path.open("x")
    proc = subprocess.Popen(
        [sys.executable, "-m", "odc.cli", "view", "--pub", addresses["stream"],
         "--cmd", addresses["commands"]],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        preexec_fn=_die_with_parent)
    log.close()
    return Child("viewer", proc), log_path


def headless(addresses: dict[str, str], duration_s: float, twin: Child) -> int:
    """Follow the stream for ``duration_s`` wall seconds and print what happened."""
    from viz.stream import CommandClient, StreamClient
    from viz.tui.model import FleetModel, utc_text

    stream = StreamClient(addresses["stream"])
    commands = CommandClient(addresses["commands"], timeout_s=2.0)
    model = FleetModel(trend_samples=2)
    severities: collections.Counter[str] = collections.Counter()
    first_t = None
    end = time.monotonic() + duration_s
    try:
        # Ask for meta now rather than wait up to one broadcast interval for it.
        reply = commands.send("meta")
        if isinstance(reply.get("meta"), dict):
            model.apply_meta(reply["meta"])
        while time.monotonic() < end and twin.proc.poll() is None:
            batch = stream.poll(timeout_ms=100)
            if batch.meta is not None:
                model.apply_meta(batch.meta)
            if batch.state is not None:
                model.apply_state(batch.state)
                first_t = batch.state.t_utc if first_t is None else first_t
            for event in batch.events:
                severities[str(event.header.get("severity", "?"))] += 1
        status = commands.send("status")
    finally:
        commands.close()
        stream.close()
    states = stream.received.get("state", 0)
    scenario = (model.meta.get("scenario") or {}).get("name", "?")
    print(f"odc demo: {duration_s:g} s headless on scenario {scenario!r}, {model.n} nodes")
    print(f"  stream    {states} states, {sum(severities.values())} events "
          f"({', '.join(f'{n} {k}' for k, n in sorted(severities.items())) or 'none'}), "
          f"{stream.missed} missed, connection {stream.connection}")
    if first_t is not None:
        last_t = float(model.header.get("t_utc", first_t))
        print(f"  simulated {utc_text(first_t)} → {utc_text(last_t)} UTC "
              f"({last_t - first_t:.0f} s at warp {model.header.get('warp', 0):g}×)")
    headline, _ = model.fleet_items()
    if headline:
        print("  fleet     " + "  ".join(f"{label} {value}" for label, value in headline))
    if status.get("ok"):
        counters = status.get("counters", {})
        print(f"  twin      step {status.get('step')}, mean step "
              f"{float(counters.get('step_time_mean_ms', 0.0)):.2f} ms, "
              f"{counters.get('commands_ok', 0)} commands ok")
    else:
        print(f"  twin      status failed: {status.get('error')}")
    return 0 if states > 0 and status.get("ok") else 1


def run(args: argparse.Namespace) -> int:
    """Run the demo; every process it starts is stopped before it returns."""
    try:
        twin, addresses = start_twin(args)
    except (RuntimeError, OSError) as exc:
        print(f"odc demo: {exc}", file=sys.stderr)
        return 2
    children = [twin]
    viewer_log: Path | None = None
    # SIGTERM (a kill, a closing terminal) takes the same clean path as quitting.
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    status = 0
    try:
        if args.headless:
            status = headless(addresses, args.duration, twin)
        else:
            if not args.no_view and (started := start_viewer(addresses)) is not None:
                children.append(started[0])
                viewer_log = started[1]
            from viz.tui.app import DashboardApp

            app = DashboardApp(addresses["stream"], addresses["commands"])
            app.run()
            status = int(app.return_code or 0)
    except KeyboardInterrupt:
        status = 130
    finally:
        for child in reversed(children):
            code = child.stop()
            if code not in (0, -signal.SIGINT, 130) and child is twin:
                print(f"odc demo: the twin exited with status {code}:\n  "
                      + "\n  ".join(twin.tail), file=sys.stderr)
        signal.signal(signal.SIGTERM, previous)
        if viewer_log is not None and len(children) > 1 and children[1].proc.returncode:
            print(f"odc demo: the 3D viewer stopped early; its log is {viewer_log}",
                  file=sys.stderr)
        elif viewer_log is not None:
            shutil.rmtree(viewer_log.parent, ignore_errors=True)
    if twin.proc.returncode not in (0, -signal.SIGINT, 130) and status == 0:
        status = 1
    return status

"""`odc run` (also `python -m twin`): load a scenario and serve the twin until told to stop."""

from __future__ import annotations

import argparse
import logging
import math
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from twin.astro.shards import ShardError, default_workers
from twin.astro.sun import EPHEMERIS_END_T_UTC, EPHEMERIS_END_UTC
from twin.core.clock import (
    MAX_RATE_HZ,
    MAX_WARP,
    MIN_RATE_HZ,
    MIN_WARP,
    SimClock,
    check_step,
)
from twin.core.engine import Engine
from twin.protocol.codec import (
    DEFAULT_COMMAND_ADDRESS,
    DEFAULT_INGEST_ADDRESS,
    DEFAULT_PUB_ADDRESS,
)
from twin.runtime.addresses import address_argument
from twin.runtime.allocator import keep_temporaries_in_heap
from twin.runtime.blas import limit_blas_threads
from twin.runtime.server import Addresses, TwinServer
from twin.runtime.subscriptions import FULL_STATE_MAX_SATS
from twin.scenario import ScenarioError, bundled_scenarios, load_scenario
from twin.scenario.loader import MAX_SATELLITES

log = logging.getLogger("odc.twin")


def positive_argument(kind: str, upper: float) -> type:
    """An ``argparse`` type for a number in (0, upper], named in its messages."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{kind} must be a number, got {text!r}") from None
        if not math.isfinite(value) or not 0 < value <= upper:
            raise argparse.ArgumentTypeError(f"{kind} must be in (0, {upper:g}], got {text}")
        return value

    parse.__name__ = kind
    return parse  # type: ignore[return-value]


def bounded_argument(kind: str, low: float, high: float, unit: str = "") -> type:
    """An ``argparse`` type for a finite number in [low, high], named in its messages."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{kind} must be a number, got {text!r}") from None
        if not math.isfinite(value) or not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"{kind} must be in [{low:g}, {high:g}]{unit}, got {text}")
        return value

    parse.__name__ = kind
    return parse  # type: ignore[return-value]


warp_argument = bounded_argument("warp", MIN_WARP, MAX_WARP, " simulated s per wall s")
"""``--warp``: the clock's own bounds (twin.clock.MIN_WARP, MAX_WARP)."""
rate_argument = bounded_argument("rate", MIN_RATE_HZ, MAX_RATE_HZ, " Hz")
"""``--rate``: the clock's own bounds (twin.clock.MIN_RATE_HZ, MAX_RATE_HZ)."""

MAX_WORKERS = 256
"""Most ``--workers``: far past any machine's cores, a bound on what a typo can start."""

MAX_SEED = 2**63 - 1
"""Largest seed, as in a scenario's ``[scenario].seed``."""


def count_argument(minimum: int = 0, maximum: int | None = None) -> type:
    """An ``argparse`` type for a whole number of at least ``minimum`` (and at most ``maximum``)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(
                f"must be zero or more, got {value}" if minimum == 0
                else f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum}, got {value}")
        return value

    return parse  # type: ignore[return-value]


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `odc run`, shared with commands that start a twin (`odc demo`)."""
    parser.add_argument(
        "--scenario", "-s", default="default", metavar="NAME_OR_PATH",
        help=f"bundled scenario ({', '.join(bundled_scenarios())}) or a TOML file "
        "(default: %(default)s)",
    )
    parser.add_argument("--warp", type=warp_argument,
                        help=f"simulated seconds per wall second, {MIN_WARP:g} to {MAX_WARP:g}"
                        " (default: the scenario's)")
    parser.add_argument("--rate", type=rate_argument, metavar="HZ",
                        help=f"steps and publishes per wall second, {MIN_RATE_HZ:g} to"
                        f" {MAX_RATE_HZ:g} (default: the scenario's); warp / rate is the"
                        " simulated step")
    parser.add_argument("--fast", action="store_true",
                        help="step as fast as possible, ignoring the wall clock")
    parser.add_argument("--duration", type=positive_argument("duration", 1e9), metavar="SECONDS",
                        help="stop after this much simulated time")
    parser.add_argument("--steps", type=count_argument(), metavar="N", help="stop after N steps")
    parser.add_argument("--workers", type=count_argument(1, MAX_WORKERS), metavar="N",
                        help="processes SGP4 runs on, one shard of the fleet each (default: "
                        "the cores, fewer for a small fleet; 1: in the twin's process)")
    parser.add_argument("--full-state-max-sats", type=count_argument(0, MAX_SATELLITES),
                        metavar="N", default=FULL_STATE_MAX_SATS,
                        help="largest fleet whose default state carries every node's fields "
                        f"(default {FULL_STATE_MAX_SATS:,}); above it clients that ask "
                        "nothing get the fleet summary and subscribe for rows "
                        "(docs/protocol.md, \"Selective streams\")")
    parser.add_argument("--seed", type=count_argument(0, MAX_SEED),
                        help="random seed, 0 to 2^63-1 (default: the scenario's)")
    parser.add_argument("--paused", action="store_true", help="start paused")
    parser.add_argument("--pub", type=address_argument, default=DEFAULT_PUB_ADDRESS,
                        help="PUB address for the stream (default: %(default)s)")
    parser.add_argument("--cmd", type=address_argument, default=DEFAULT_COMMAND_ADDRESS,
                        help="ROUTER address for commands (default: %(default)s)")
    parser.add_argument("--ingest", type=address_argument, default=DEFAULT_INGEST_ADDRESS,
                        help="PULL address for bridge telemetry (default: %(default)s)")
    parser.add_argument("--keys", type=Path, metavar="DIR",
                        help="key folder (odc keys new): CURVE on every socket, only its "
                        "registered keys admitted, binds beyond loopback allowed (default: "
                        "the scenario's [security] keys, else none: loopback only)")
    parser.add_argument("--audit", type=Path, metavar="FILE",
                        help="audit file, one JSON line per command (default: DIR/audit.jsonl"
                        " with --keys, else none)")
    parser.add_argument("--plain-stream", action="store_true",
                        help="with --keys: the stream without CURVE, bound on loopback or "
                        "ipc:// only (commands and ingest stay CURVE); saves the stream's "
                        "encryption (docs/security.md)")
    parser.add_argument("--timeline", type=Path, metavar="FILE", action="append", default=[],
                        help="a TOML file of [[timeline]] entries to add to the scenario's "
                        "(docs/procedures.md); may be given more than once")
    parser.add_argument("--quiet", "-q", action="store_true", help="no live status line")
    parser.add_argument("--record", type=Path, metavar="PATH.mcap",
                        help="record the stream to this MCAP file as it runs (docs/recording.md)")
    parser.add_argument("--record-every", type=count_argument(1), default=1, metavar="N",
                        help="with --record: keep every Nth state (events, meta and heartbeats "
                        "all; default: %(default)s)")


def check_run_span(epoch_t_utc: float, dt_s: float, steps: int | None,
                   duration_s: float | None) -> None:
    """Raise ``ValueError`` if ``--steps`` or ``--duration`` would run past the ephemeris.

    Args:
        epoch_t_utc: Start of the run, Unix seconds.
        dt_s: Simulated seconds per step.
        steps: ``--steps``, or None.
        duration_s: ``--duration``, or None.
    """
    left_s = EPHEMERIS_END_T_UTC - epoch_t_utc
    end = f"{EPHEMERIS_END_UTC:%Y-%m-%d}"
    if duration_s is not None and duration_s > left_s:
        raise ValueError(f"--duration {duration_s:g} s runs past {end}, where the Sun"
                         f" ephemeris (DE421) ends: at most {left_s:.0f} s from this epoch")
    if steps is not None and steps * dt_s > left_s:
        raise ValueError(f"--steps {steps} of {dt_s:g} s runs past {end}, where the Sun"
                         f" ephemeris (DE421) ends: at most {int(left_s // dt_s)} steps")


def build_twin(args: argparse.Namespace) -> TwinServer:
    """Load the scenario and bind the sockets; raises ScenarioError, ValueError or OSError."""
    scenario = load_scenario(args.scenario)
    rate_hz = args.rate or scenario.clock.rate_hz
    warp = args.warp or scenario.clock.warp
    try:
        check_step(warp, rate_hz)
    except ValueError as exc:
        raise ValueError(f"--warp/--rate (or the scenario's [clock]): {exc}") from None
    check_run_span(scenario.epoch_utc.timestamp(), warp / rate_hz, args.steps, args.duration)
    clock = SimClock(scenario.epoch_utc, rate_hz=rate_hz, warp=warp, fast=args.fast,
                     paused=args.paused)
    workers = getattr(args, "workers", None) or default_workers(len(scenario.satellites))
    engine = Engine(scenario, clock, seed=args.seed, workers=workers)
    keys = getattr(args, "keys", None) or (Path(scenario.security.keys)
                                           if scenario.security.keys else None)
    audit = getattr(args, "audit", None) or (Path(scenario.security.audit)
                                             if scenario.security.audit else None)
    if getattr(args, "plain_stream", False) and keys is None:
        engine.close()
        raise ValueError("--plain-stream goes with --keys: without keys no socket has CURVE")
    try:
        server = TwinServer(engine, Addresses(args.pub, args.cmd, args.ingest), keys_dir=keys,
                            audit_path=audit, plain_stream=getattr(args, "plain_stream", False),
                            full_state_max_sats=getattr(args, "full_state_max_sats",
                                                        FULL_STATE_MAX_SATS))
    except BaseException:
        engine.close()  # its workers and shared memory
        raise
    try:
        for path in getattr(args, "timeline", None) or ():
            server.autonomy.load_timeline_path(path)
    except ScenarioError:
        server.close()
        raise
    return server


class StatusLine:
    """A live one-line status: rewritten in place on a terminal, a line a while otherwise."""

    def __init__(self, stream: TextIO, interval_s: float | None = None) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.interval_s = interval_s or (0.5 if self.tty else 5.0)
        self._next = 0.0
        self._last_steps = 0
        self._last_wall = time.monotonic()

    def __call__(self, server: TwinServer) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.interval_s
        clock, counters = server.clock, server.counters
        rate = (clock.steps - self._last_steps) / max(now - self._last_wall, 1e-9)
        self._last_steps, self._last_wall = clock.steps, now
        fleet = server.engine.header()["fleet"]
        when = datetime.fromtimestamp(clock.t_utc, UTC).strftime("%Y-%m-%d %H:%M:%S")
        mean_ms = 1e3 * counters.step_time_total_s / max(counters.state_published, 1)
        text = (
            f"{when} UTC  step {clock.steps}  warp {clock.warp:g}x  {rate:.1f} steps/s  "
            f"step {mean_ms:.1f} ms  sats {fleet['n_sats']}  eclipse {fleet['n_in_eclipse']}  "
            f"contact {fleet['n_in_contact']}  commands {counters.commands_ok} ok, "
            f"{counters.commands_rejected} rejected"
            + (f"  multi-node {fleet['multi_node_running']} running,"
               f" {fleet['multi_node_stalled']} stalled,"
               f" {fleet['multi_node_progress_frac']:.2%} done"
               if "multi_node_running" in fleet else "")
            + ("  PAUSED" if clock.paused else "")
        )
        if self.tty:
            self.stream.write("\r\x1b[2K" + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\n")

    def clear(self) -> None:
        """Blank the line in place (on a terminal), so what is written next starts at its
        left edge; the next status rewrites it."""
        if self.tty:
            self.stream.write("\r\x1b[2K")

    def logging_filter(self) -> logging.Filter:
        """A filter for the log handlers writing to this terminal: each log line clears
        the status line first (a warning used to run on from "... 0 rejected")."""
        status = self

        class ClearStatusFirst(logging.Filter):
            def filter(self, record: logging.LogRecord) -> bool:
                status.clear()
                return True

        return ClearStatusFirst()


def _workers_line(engine: Engine) -> str:
    """The start-up banner's line on the SGP4 shards (docs/architecture.md, "Every core")."""
    shm_name = getattr(getattr(engine.orbit, "propagator", None), "shm_name", None)
    if shm_name is None:
        return f"\n  workers  {engine.workers} (SGP4 in the twin's process)"
    return (f"\n  workers  {engine.workers} (SGP4 in {engine.workers} shards; shared memory "
            f"/dev/shm/{shm_name.lstrip('/')})")


def run(args: argparse.Namespace) -> int:
    """Run the twin from parsed `odc run` arguments; returns the exit status."""
    keep_temporaries_in_heap()
    limit_blas_threads(1)  # the cores are the SGP4 workers' (twin/runtime/blas.py)
    try:
        server = build_twin(args)
    except ScenarioError as exc:
        print(f"odc run: bad scenario: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:  # KeyFileError is a ValueError
        print(f"odc run: {exc}", file=sys.stderr)
        return 2
    except ShardError as exc:  # the SGP4 workers would not start
        print(f"odc run: {exc}", file=sys.stderr)
        return 1
    if getattr(args, "record", None) is None and getattr(args, "record_every", 1) != 1:
        print("odc run: --record-every goes with --record PATH.mcap", file=sys.stderr)
        server.close()
        return 2
    if getattr(args, "record", None) is not None:
        from twin.recording.format import RecordingError
        from twin.recording.live import LiveRecording
        try:
            LiveRecording.start(server, args.record, args.record_every)
        except (RecordingError, ValueError) as exc:
            print(f"odc run: --record: {exc}", file=sys.stderr)
            server.close()
            return 2
    bound = server.bound
    scenario = server.engine.scenario
    print(
        f"odc twin: scenario {scenario.name!r}, {server.engine.n_sats} satellites, "
        f"{len(scenario.stations)} ground station{'' if len(scenario.stations) == 1 else 's'}, "
        f"epoch {scenario.epoch_utc.isoformat()}\n"
        f"  stream   {bound.pub}\n  commands {bound.command}\n  ingest   {bound.ingest}\n"
        f"  keys     {server.guard.keys_dir or 'none (loopback only)'}; audit "
        f"{server.guard.audit_log.path if server.guard.audit_log else 'none'}"
        + (f"\n  record   {args.record}" if getattr(args, "record", None) else "")
        + _workers_line(server.engine),
        file=sys.stderr,
    )
    status = None if args.quiet else StatusLine(sys.stderr)
    # Log lines on the status line's terminal start on a line of their own.
    log_handlers = [handler for handler in logging.getLogger().handlers
                    if getattr(handler, "stream", None) is sys.stderr] if status else []
    clear_first = status.logging_filter() if status else None
    for handler in log_handlers:
        handler.addFilter(clear_first)

    def request_stop(signum: int, frame: object) -> None:
        server.stop()

    def request_reload(signum: int, frame: object) -> None:
        server.request_key_reload()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, request_reload)
    try:
        server.run(max_steps=args.steps, duration_s=args.duration, on_tick=status)
    except ShardError as exc:  # a worker that would not come back: stop, say why
        print(f"odc run: {exc}", file=sys.stderr)
        server.close()
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for log_handler in log_handlers:
            log_handler.removeFilter(clear_first)
        if status is not None:
            status(server)
            status.finish()
        counters = server.counters
        print(
            f"odc twin: stopped after {server.clock.steps} steps, "
            f"{server.clock.elapsed_s:.1f} s simulated, {counters.state_published} frames, "
            f"{counters.events_published} events published",
            file=sys.stderr,
        )
        multinode = getattr(getattr(server.engine, "compute_model", None), "multinode", None)
        for job in [] if multinode is None else multinode.jobs:  # a handful
            print(f"odc twin: multi-node job {job.number} {job.state}"
                  f"{' (stalled)' if job.stalled else ''}: {job.iterations:.0f} of"
                  f" {job.total_iterations:.0f} iterations on {job.members.size} nodes,"
                  f" bottleneck {job.bottleneck_bps / 1e9:.4g} Gb/s, all-reduce"
                  f" {job.comm_frac:.1%} of an iteration, {job.rollbacks} rollbacks,"
                  f" {job.checkpoints} checkpoints of {multinode.write_s:.3g} s"
                  f" ({job.writing_s / max(job.running_s, 1e-9):.2%} of its running time)",
                  file=sys.stderr)
        server.close()
        if server.recording is not None:
            recorder = server.recording.recorder
            print(f"odc twin: recorded {', '.join(map(str, recorder.files)) or 'nothing'}: "
                  f"{recorder.stats.line()}" + (f"; {recorder.error}" if recorder.error else ""),
                  file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m twin",
        description="Run the ODC twin: step a scenario and stream it over ZeroMQ.",
    )
    add_run_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return run(build_parser().parse_args(argv))


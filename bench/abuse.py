"""Abuse a running twin: flood each input a client can reach, check it keeps its targets.

Usage:
    .venv/bin/python bench/abuse.py [--scenario default --scenario starlink] [--seconds 10]
        [--classes meta_noread,garbage] [--rate HZ] [--json PATH]

Per scenario one twin runs as its own process (``python -m twin``, stderr to a temporary
log file). The bench first measures the nominal step rate with no flood, then runs each
flood class for ``--seconds`` from a client in its own process, as fast as it can. This
process meanwhile subscribes to ``state`` and checks every published float (fields and
fleet totals), sends a bad command every 200 ms from a well-behaved DEALER and times the
reply, and samples the twin's resident memory. After the client leaves it waits up to
10 s for the memory to come back. The twin is restarted (and the crash reported) if it
died. Targets, from issue 12, each PASS or FAIL per class and scenario:

- no crash, no traceback in the twin's log, no non-finite published value (``*_cap_w``
  may be +inf, ``mirror_*`` NaN, orbit fields NaN where ``status`` is nonzero);
- every bad request answered ``ok: false`` with an error within 100 ms;
- step rate at least 90 % of nominal during the flood;
- RSS within 100 MB of steady state during the flood, back to it within 10 s;
- log growth at most 1 MB per minute of flood.

Exit status 0 when every target is met, 1 otherwise. Loopback only; the whole default run
(two scenarios, ten classes, 10 s each) takes about six minutes.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import queue
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import zmq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchargs import checked_scenario  # noqa: E402

from twin.protocol.codec import TOPIC_STATE, WireError, decode, pack, unpack  # noqa: E402
from twin.protocol.telemetry import encode_telemetry  # noqa: E402
from twin.runtime.cli import count_argument, positive_argument, rate_argument  # noqa: E402

# Targets (issue 12).
RATE_TARGET_FRAC = 0.9
BAD_REPLY_TARGET_MS = 100.0
RSS_TARGET_MB = 100.0
LOG_TARGET_MB_PER_MIN = 1.0
# "Back to steady state": within this much of the RSS before the flood, within AFTER_S.
RSS_RETURN_MB = 10.0
AFTER_S = 10.0
# Measurement.
PROBE_INTERVAL_S = 0.2
PROBE_TIMEOUT_S = 1.0  # a reply later than this counts as missing
RSS_INTERVAL_S = 0.1
BASELINE_S = 2.0  # before each class: the RSS steady state
SETTLE_MIN_S = 2.0  # after each class, even when the RSS is back at once
RESUME_WINDOW_S = 3.0  # paused_jobs: steps timed after the resume (after the first one)
RESUME_WAIT_MAX_S = 15.0  # paused_jobs: the longest wait for that first step
STARTUP_TIMEOUT_S = 120.0
BAD_PROBE = {"cmd": "warp", "value": -1}
ANY_PORT = "tcp://127.0.0.1:*"
ADDRESS_LINE = re.compile(rb"^\s+(stream|commands|ingest)\s+(tcp://127\.0\.0\.1:\d+)\s*$", re.M)
# Orbit fields are NaN for a satellite SGP4 cannot propagate (status nonzero), by design.
ORBIT_FIELDS = frozenset({
    "pos_gcrs_km", "vel_gcrs_km_s", "pos_itrs_km", "vel_itrs_km_s", "lat_deg", "lon_deg",
    "alt_km", "sunlit_frac", "beta_deg", "elevation_deg", "range_km",
})
CLASSES = ("meta_noread", "status_rw", "garbage", "oversized", "multiframe", "tm_valid",
           "tm_bad", "slow_sub", "many_conns", "paused_jobs")


# -- the flood clients (each runs in its own process, so it never shares our GIL) ------


def _socket(ctx: zmq.Context, kind: int, address: str, **options: int) -> zmq.Socket:
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    for name, value in options.items():
        sock.setsockopt(getattr(zmq, name.upper()), value)
    sock.connect(address)
    return sock


def _send(sock: zmq.Socket, frames: list, stats: Counter) -> bool:
    """Send without blocking; on a full queue wait at most 10 ms for room."""
    try:
        sock.send_multipart(frames, zmq.NOBLOCK, copy=False)
    except zmq.Again:
        stats["blocked"] += 1
        sock.poll(10, zmq.POLLOUT)
        return False
    stats["sent"] += 1
    return True


def _drain_replies(sock: zmq.Socket, stats: Counter, limit: int = 1000) -> int:
    """Read the replies waiting; count them, and any ``ok: true`` among bad requests."""
    got = 0
    for _ in range(limit):
        try:
            frames = sock.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            break
        got += 1
        try:
            reply = unpack(frames[-1])
        except WireError:
            stats["unreadable_replies"] += 1
            continue
        ok = isinstance(reply, dict) and reply.get("ok") is True
        stats["replies_ok" if ok else "replies_error"] += 1
    stats["replies"] += got
    return got


def _windowed(sock: zmq.Socket, deadline: float, request: Callable[[], list], stats: Counter,
              window: int = 16) -> None:
    """Keep ``window`` requests in flight, reading replies as fast as they come."""
    in_flight, last_reply = 0, time.monotonic()
    while time.monotonic() < deadline:
        while in_flight < window and _send(sock, request(), stats):
            in_flight += 1
        if sock.poll(20, zmq.POLLIN):
            got = _drain_replies(sock, stats)
            in_flight -= got
            last_reply = time.monotonic()
        elif time.monotonic() - last_reply > PROBE_TIMEOUT_S:  # replies lost: start afresh
            stats["stalls"] += 1
            in_flight, last_reply = 0, time.monotonic()


def flood_meta_noread(ctx: zmq.Context, addr: dict, deadline: float, rng: Any, n_sats: int,
                      stats: Counter) -> None:
    sock = _socket(ctx, zmq.DEALER, addr["commands"], rcvhwm=16)
    body = pack({"cmd": "meta"})
    while time.monotonic() < deadline:
        _send(sock, [b"", body], stats)
    sock.close()


def flood_status_rw(ctx: zmq.Context, addr: dict, deadline: float, rng: Any, n_sats: int,
                    stats: Counter) -> None:
    sock = _socket(ctx, zmq.DEALER, addr["commands"])
    body = pack({"cmd": "status"})
    _windowed(sock, deadline, lambda: [b"", body], stats)
    sock.close()


def flood_garbage(ctx: zmq.Context, addr: dict, deadline: float, rng: Any, n_sats: int,
                  stats: Counter) -> None:
    sock = _socket(ctx, zmq.DEALER, addr["commands"])
    pool = [rng.bytes(int(size)) for size in rng.integers(1, 1024, 256)]
    k = 0
    while time.monotonic() < deadline:
        junk = pool[k % len(pool)]
        # With and without the empty delimiter frame: both are envelopes a DEALER may send.
        _send(sock, [b"", junk] if k % 2 else [junk], stats)
        k += 1
        if k % 64 == 0:
            _drain_replies(sock, stats)
    sock.close()


def flood_oversized(ctx: zmq.Context, addr: dict, deadline: float, rng: Any, n_sats: int,
                    stats: Counter) -> None:
    # 100 kB: past the twin's command limit, answered with an error. 2 MB: past its frame
    # limit, which makes libzmq drop the connection (the client reconnects by itself).
    big = _socket(ctx, zmq.DEALER, addr["commands"], sndhwm=4)
    huge = _socket(ctx, zmq.DEALER, addr["commands"], sndhwm=2)
    body_100k = pack({"cmd": "status", "pad": "x" * 100_000})
    body_2m = rng.bytes(2_000_000)
    k = 0
    while time.monotonic() < deadline:
        if k % 4 == 3:
            _send(huge, [b"", body_2m], stats)
        else:
            _send(big, [b"", body_100k], stats)
        _drain_replies(big, stats)
        k += 1
    big.close()
    huge.close()


def flood_multiframe(ctx: zmq.Context, addr: dict, deadline: float, rng: Any, n_sats: int,
                     stats: Counter) -> None:
    sock = _socket(ctx, zmq.DEALER, addr["commands"], sndhwm=64)
    cmd = pack({"cmd": "status"})
    envelopes = [
        [b"", cmd, cmd],                 # two bodies
        [cmd, cmd],                      # two bodies, no delimiter
        [b"", b"", cmd],                 # a second delimiter
        [b""],                           # no body at all
        [b""] * 70,                      # seventy empty frames
        [b"", cmd] + [b"x"] * 7,         # eight frames
        [b""] + [bytes(1024)] * 40,      # forty kilobyte frames
    ]
    k = 0
    while time.monotonic() < deadline:
        _send(sock, envelopes[k % len(envelopes)], stats)
        k += 1
        if k % 32 == 0:
            _drain_replies(sock, stats)
    sock.close()


def flood_tm_valid(ctx: zmq.Context, addr: dict, deadline: float, rng: Any, n_sats: int,
                   stats: Counter) -> None:
    sock = _socket(ctx, zmq.PUSH, addr["ingest"], sndhwm=1000)
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz0123456789_-", dtype="S1")
    seq = 0
    while time.monotonic() < deadline:
        if seq % 2:
            testbed = b"".join(rng.choice(letters, int(rng.integers(4, 40)))).decode()
        else:
            testbed = "abuse_testbed_nobody_binds"
        n = int(rng.integers(1, 8))
        t_utc = time.time() - 0.5 + np.arange(n) * 1e-3
        frames = encode_telemetry(seq, testbed, "hk", t_utc, {
            "util_frac": rng.random(n), "compute_power_w": rng.random(n) * 500.0})
        _send(sock, frames, stats)
        seq += 1
    sock.close()


def flood_tm_bad(ctx: zmq.Context, addr: dict, deadline: float, rng: Any, n_sats: int,
                 stats: Counter) -> None:
    sock = _socket(ctx, zmq.PUSH, addr["ingest"], sndhwm=8)
    blob = rng.bytes(300_000)
    lying_header = pack({"v": 1, "seq": 0, "t_utc": time.time(), "testbed": "x", "packet": "hk",
                         "n": 1, "fields": [{"name": "t_utc", "dtype": "<f8", "shape": [1],
                                             "unit": "s"}]})
    pool = [
        [b"tm", rng.bytes(64), blob],           # 300 kB, garbage header
        [b"tm", lying_header, blob],            # 300 kB column where 8 bytes are declared
        [b"tm"] + [b"12345678"] * 69,           # seventy frames
        [b"tm", rng.bytes(200)],                # garbage header alone
        [rng.bytes(16)],                        # one garbage frame
        [rng.bytes(8), rng.bytes(100), rng.bytes(1000)],
    ]
    k = 0
    while time.monotonic() < deadline:
        _send(sock, pool[k % len(pool)], stats)
        k += 1
    sock.close()


def flood_slow_sub(ctx: zmq.Context, addr: dict, deadline: float, rng: Any, n_sats: int,
                   stats: Counter) -> None:
    # A one-message queue and a small kernel buffer: libzmq on this side stops reading at
    # once, so the twin's own queue for this subscriber fills as it would for a stuck viewer.
    sock = _socket(ctx, zmq.SUB, addr["stream"], rcvhwm=1, rcvbuf=4096)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    time.sleep(max(0.0, deadline - time.monotonic()))  # connected, never reading
    sock.close()


def flood_many_conns(ctx: zmq.Context, addr: dict, deadline: float, rng: Any, n_sats: int,
                     stats: Counter) -> None:
    socks = [_socket(ctx, zmq.DEALER, addr["commands"], rcvhwm=16) for _ in range(8)]
    body = pack({"cmd": "meta"})
    k = 0
    while time.monotonic() < deadline:
        _send(socks[k % len(socks)], [b"", body], stats)
        k += 1
    for sock in socks:
        sock.close()


def flood_paused_jobs(ctx: zmq.Context, addr: dict, deadline: float, rng: Any, n_sats: int,
                      stats: Counter) -> None:
    sock = _socket(ctx, zmq.DEALER, addr["commands"])
    submit = pack({"cmd": "submit_job", "kind": "inference"})
    upsets = [pack({"cmd": "inject_upset", "sat": int(s)}) for s in range(min(n_sats, 512))]
    k = 0

    def request() -> list:
        nonlocal k
        k += 1
        return [b"", submit if k % 2 else upsets[k % len(upsets)]]

    _windowed(sock, deadline, request, stats)
    sock.close()


FLOODS: dict[str, Callable[..., None]] = {
    name: globals()[f"flood_{name}"] for name in CLASSES
}


def run_flood(name: str, addr: dict, seconds: float, n_sats: int, results: Any) -> None:
    """A flood client's process: flood for ``seconds``, close everything, report counts."""
    ctx = zmq.Context()
    stats: Counter = Counter()
    results.put("started")
    try:
        FLOODS[name](ctx, addr, time.monotonic() + seconds, np.random.default_rng(12), n_sats,
                     stats)
    finally:
        ctx.destroy(linger=0)
        results.put(dict(stats))


# -- the twin under test --------------------------------------------------------------


class Twin:
    """``python -m twin`` as a subprocess on loopback, its stderr going to a log file."""

    def __init__(self, scenario: str, rate_hz: float | None, workdir: Path, tag: str) -> None:
        self.log_path = workdir / f"twin-{tag}.log"
        command = [sys.executable, "-m", "twin", "--scenario", scenario, "--pub", ANY_PORT,
                   "--cmd", ANY_PORT, "--ingest", ANY_PORT]
        if rate_hz:
            command += ["--rate", f"{rate_hz:g}"]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL,
                                         stderr=log)
        self.handle = psutil.Process(self.proc.pid)
        self.addresses = self._wait_for_banner()

    def _wait_for_banner(self) -> dict[str, str]:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline and self.proc.poll() is None:
            found = dict((k.decode(), v.decode()) for k, v in
                         ADDRESS_LINE.findall(self.log_path.read_bytes()))
            if len(found) == 3:
                return found
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the twin did not start; its log:\n{self.log_tail()}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss_mb(self) -> float:
        try:
            return self.handle.memory_info().rss / 1e6
        except psutil.Error:
            return float("nan")

    def log_bytes(self) -> int:
        return self.log_path.stat().st_size

    def log_since(self, offset: int) -> str:
        with open(self.log_path, "rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def log_tail(self, chars: int = 2000) -> str:
        return self.log_since(0)[-chars:]

    def stop(self) -> int:
        """SIGINT, then SIGKILL after 15 s; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


# -- what this process watches while a client floods ---------------------------------


def count_nonfinite(arrays: dict[str, np.ndarray], header: dict[str, Any]) -> Counter:
    """Non-finite values in one ``state``, by field name, the by-design ones left out."""
    status = arrays.get("status")
    good = None if status is None or not status.any() else status == 0
    found: Counter = Counter()
    for name, array in arrays.items():
        if array.dtype.kind != "f" or name.startswith("mirror_"):
            continue
        if good is not None and name in ORBIT_FIELDS:
            array = array[good] if array.shape[0] == good.size else array[:, good]
        bad = ~np.isfinite(array)
        if name.endswith("_cap_w"):
            bad &= ~np.isposinf(array)
        if bad.any():
            found[name] += int(bad.sum())
    scalars = [(f"fleet.{k}", v) for k, v in header.get("fleet", {}).items()]
    scalars += [(f"sun_gcrs_km[{i}]", v) for i, v in enumerate(header.get("sun_gcrs_km", []))]
    scalars += [(f"gcrs_to_itrs[{i}]", v) for i, v in enumerate(header.get("gcrs_to_itrs", []))]
    scalars += [("gast_rad", header.get("gast_rad", 0.0)), ("dt_s", header.get("dt_s", 0.0))]
    for name, value in scalars:
        by_design = (name.endswith("_cap_w") and value == np.inf) or ".mirror_" in name
        if isinstance(value, float) and not np.isfinite(value) and not by_design:
            found[name] += 1
    if "models_failing" in header:
        found["models_failing"] += 1
    return found


@dataclass
class Watch:
    """Timestamped observations: states received, RSS samples, bad-command probes."""

    states: list[tuple[float, int]] = field(default_factory=list)  # (wall, step)
    rss: list[tuple[float, float]] = field(default_factory=list)  # (wall, MB)
    probes: list[tuple[float, float | None, bool]] = field(default_factory=list)
    nonfinite: list[tuple[float, Counter]] = field(default_factory=list)
    states_checked: list[float] = field(default_factory=list)


class Watcher:
    """Subscribes, probes and samples the twin from this process, one loop, no threads."""

    def __init__(self, ctx: zmq.Context, twin: Twin) -> None:
        self.twin = twin
        self.sub = _socket(ctx, zmq.SUB, twin.addresses["stream"], rcvhwm=100)
        self.sub.setsockopt(zmq.SUBSCRIBE, TOPIC_STATE)
        self.probe = _socket(ctx, zmq.DEALER, twin.addresses["commands"])
        self.req = _socket(ctx, zmq.DEALER, twin.addresses["commands"])
        self.seen = Watch()
        self._probe_id = 0
        self._in_flight: dict[int, float] = {}
        self._next_probe = time.monotonic()
        self._next_rss = time.monotonic()

    def close(self) -> None:
        for sock in (self.sub, self.probe, self.req):
            sock.close()

    def run_for(self, seconds: float, until: Callable[[], bool] | None = None) -> None:
        """Watch for ``seconds`` (or until ``until()`` is true, checked each RSS sample)."""
        deadline = time.monotonic() + seconds
        poller = zmq.Poller()
        poller.register(self.sub, zmq.POLLIN)
        poller.register(self.probe, zmq.POLLIN)
        while (now := time.monotonic()) < deadline:
            if now >= self._next_probe:
                self._send_probe(now)
            if now >= self._next_rss:
                self._next_rss = now + RSS_INTERVAL_S
                self.seen.rss.append((now, self.twin.rss_mb()))
                self._expire_probes(now)
                if until is not None and until():
                    return
            wait_s = max(0.0, min(self._next_probe, self._next_rss, deadline) - time.monotonic())
            events = dict(poller.poll(wait_s * 1e3))
            if self.probe in events:  # first: its latency is what is timed
                self._read_probes()
            if self.sub in events:
                self._read_states()

    def _send_probe(self, now: float) -> None:
        self._next_probe = now + PROBE_INTERVAL_S
        self._probe_id += 1
        try:
            self.probe.send_multipart([b"", pack({**BAD_PROBE, "id": self._probe_id})],
                                      zmq.NOBLOCK)
        except zmq.Again:
            self.seen.probes.append((now, None, False))
            return
        self._in_flight[self._probe_id] = time.perf_counter()

    def _read_probes(self) -> None:
        for _ in range(100):
            try:
                frames = self.probe.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            received = time.perf_counter()
            reply = unpack(frames[-1])
            sent = self._in_flight.pop(reply.get("id"), None) if isinstance(reply, dict) else None
            if sent is None:
                continue  # late: already counted as missing
            clear = (reply.get("ok") is False and isinstance(reply.get("error"), str)
                     and len(reply["error"]) > 10)
            self.seen.probes.append((time.monotonic(), 1e3 * (received - sent), clear))

    def _expire_probes(self, now: float) -> None:
        limit = time.perf_counter() - PROBE_TIMEOUT_S
        for probe_id, sent in list(self._in_flight.items()):
            if sent < limit:
                del self._in_flight[probe_id]
                self.seen.probes.append((now, None, False))

    def _read_states(self) -> None:
        for _ in range(20):
            try:
                frames = self.sub.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            now = time.monotonic()
            message = decode(frames)
            self.seen.states.append((now, int(message.header["step"])))
            found = count_nonfinite(message.arrays, message.header)
            self.seen.states_checked.append(now)
            if found:
                self.seen.nonfinite.append((now, found))

    def look_away(self) -> None:
        """Before this process blocks elsewhere: a probe in flight is left untimed.

        While it blocks (a command of its own, a flood client starting), nothing reads the
        probe socket, and a reply waiting there would be timed late: the bench's delay,
        not the twin's.
        """
        self._read_probes()
        self._in_flight.clear()

    def command(self, request: dict[str, Any], timeout_s: float = 5.0) -> dict[str, Any]:
        """A well-behaved request and its reply (None-safe: {} when no reply came)."""
        self.look_away()
        self.req.send_multipart([b"", pack(request)])
        if not self.req.poll(timeout_s * 1e3, zmq.POLLIN):
            return {}
        return unpack(self.req.recv_multipart()[-1])


# -- one class, one row ---------------------------------------------------------------


def step_rate(states: list[tuple[float, int]], t0: float, t1: float) -> float:
    """Steps per wall second from the states received in [t0, t1] (robust to drops)."""
    inside = [(t, s) for t, s in states if t0 <= t <= t1]
    if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
        return 0.0
    return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])


@dataclass
class Row:
    cls: str
    scenario: str
    rate_frac: float = float("nan")
    rss_during_mb: float = float("nan")
    rss_after_mb: float = float("nan")
    rss_back_s: float | None = None
    log_mb_per_min: float = float("nan")
    bad_p50_ms: float = float("nan")
    bad_max_ms: float = float("nan")
    bad_missing: int = 0
    bad_unclear: int = 0
    nonfinite: int = 0
    nonfinite_fields: list[str] = field(default_factory=list)
    states_checked: int = 0
    crashed: bool = False
    tracebacks: int = 0
    client: dict[str, int] = field(default_factory=dict)
    notes: str = ""
    failed: list[str] = field(default_factory=list)

    def judge(self) -> None:
        checks = {
            "crash": not self.crashed,
            "traceback": self.tracebacks == 0,
            "nonfinite": self.nonfinite == 0,
            "bad_reply": (self.bad_missing == 0 and self.bad_unclear == 0
                          and self.bad_max_ms <= BAD_REPLY_TARGET_MS),
            "rate": self.rate_frac >= RATE_TARGET_FRAC,
            # paused_jobs leaves work behind: the jobs it submitted are accepted, queued
            # state (~0.4 kB each in the job table), not memory the flood made the twin
            # hold, so only the bound during the flood applies to it.
            "rss": self.rss_during_mb <= RSS_TARGET_MB
            and (self.rss_back_s is not None or self.cls == "paused_jobs"),
            "log": self.log_mb_per_min <= LOG_TARGET_MB_PER_MIN,
        }
        self.failed = [name for name, passed in checks.items() if not passed]


def run_class(name: str, scenario: str, twin: Twin, watcher: Watcher, nominal_hz: float,
              seconds: float, n_sats: int) -> Row:
    row = Row(name, scenario)
    seen = watcher.seen
    watcher.run_for(BASELINE_S)
    now = time.monotonic()
    steady_mb = statistics.median(mb for t, mb in seen.rss if t >= now - BASELINE_S)
    log_start = twin.log_bytes()
    before = watcher.command({"cmd": "status"}).get("counters", {})
    if name == "paused_jobs":
        watcher.command({"cmd": "pause"})
    spawn = multiprocessing.get_context("spawn")
    results = spawn.Queue()
    client = spawn.Process(target=run_flood, args=(name, twin.addresses, seconds, n_sats,
                                                   results), daemon=True)
    watcher.look_away()
    client.start()
    results.get(timeout=60)  # the client's imports done: the flood starts now
    started = time.monotonic()
    watcher.run_for(seconds + 5.0, until=lambda: not client.is_alive())
    if client.is_alive():
        client.kill()
        row.notes += "client killed; "
    client.join()
    try:
        row.client = results.get(timeout=1)
    except queue.Empty:  # a client that died reports nothing
        row.client = {}
    left = flood_end = time.monotonic()
    rate_window = (started + 0.5, left)
    if name == "paused_jobs":
        watcher.command({"cmd": "resume"})
        resumed = time.monotonic()
        # The first step should follow within a period; wait longer (bounded) to time it.
        watcher.run_for(RESUME_WAIT_MAX_S, until=lambda: seen.states[-1][0] >= resumed)
        watcher.run_for(RESUME_WINDOW_S)
        flood_end = time.monotonic()
        arrivals = [t for t, _ in seen.states if t >= resumed]
        first_ms = 1e3 * (arrivals[0] - resumed) if arrivals else float("inf")
        gap_ms = 1e3 * np.diff(arrivals).max() if len(arrivals) > 1 else float("inf")
        after = watcher.command({"cmd": "status"}).get("counters", {})
        row.notes += (f"after resume: first state in {first_ms:.0f} ms, "
                      f"max gap between states {gap_ms:.0f} ms, "
                      f"step_time_max {after.get('step_time_max_ms', float('nan')):.0f} ms "
                      f"(before {before.get('step_time_max_ms', float('nan')):.0f}); "
                      f"{after.get('commands_ok', 0) - before.get('commands_ok', 0)} "
                      "commands accepted (their jobs stay queued); ")
        rate_window = (resumed, flood_end)
    if counters := watcher.command({"cmd": "status"}).get("counters", {}):
        row.client.update({
            f"twin_{key}": counters[key] - before.get(key, 0) for key in (
                "commands_ok", "commands_rejected", "replies_dropped", "ingest_messages",
                "ingest_dropped") if key in counters})
    else:
        rate_window = (started + 0.5, left)
    # Memory back to steady state: wait up to AFTER_S, at least SETTLE_MIN_S.
    back: list[float] = []

    def is_back() -> bool:
        t, mb = seen.rss[-1]
        if not back and mb <= steady_mb + RSS_RETURN_MB:
            back.append(t - left)
        return bool(back) and t - left >= SETTLE_MIN_S

    watcher.run_for(AFTER_S, until=is_back)
    row.rss_back_s = back[0] if back else None
    row.rss_after_mb = seen.rss[-1][1] - steady_mb
    during = [mb for t, mb in seen.rss if started <= t <= flood_end]
    row.rss_during_mb = (max(during) if during else float("nan")) - steady_mb
    row.rate_frac = step_rate(seen.states, *rate_window) / nominal_hz
    log_text = twin.log_since(log_start)
    row.log_mb_per_min = len(log_text.encode()) / 1e6 / (max(seconds, flood_end - started) / 60)
    row.tracebacks = log_text.count("Traceback")
    probes = [p for p in seen.probes if started <= p[0] <= flood_end + PROBE_TIMEOUT_S]
    latencies = [ms for _, ms, _ in probes if ms is not None]
    row.bad_missing = sum(ms is None for _, ms, _ in probes)
    row.bad_unclear = sum(ms is not None and not clear for _, ms, clear in probes)
    if latencies:
        row.bad_p50_ms, row.bad_max_ms = statistics.median(latencies), max(latencies)
    found: Counter = Counter()
    for t, counts in seen.nonfinite:
        if t >= started:
            found.update(counts)
    row.nonfinite = sum(found.values())
    row.nonfinite_fields = sorted(found)[:8]
    row.states_checked = sum(t >= started for t in seen.states_checked)
    row.crashed = not twin.alive()
    if row.crashed:
        row.notes += f"twin died (exit {twin.proc.returncode}); "
    row.judge()
    return row


# -- the run --------------------------------------------------------------------------


HEADER = (f"{'class':12s} {'scenario':9s} {'rate':>5s} {'rss+MB':>7s} {'after':>6s} "
          f"{'logMB/m':>7s} {'bad p50/max ms':>15s} {'nonfin':>6s}  result")


def format_row(row: Row) -> str:
    result = "PASS" if not row.failed else "FAIL " + ",".join(row.failed)
    back = "" if row.rss_back_s is not None else "!"
    return (f"{row.cls:12s} {row.scenario:9s} {row.rate_frac:5.2f} {row.rss_during_mb:7.1f} "
            f"{row.rss_after_mb:5.1f}{back:1s} {row.log_mb_per_min:7.3f} "
            f"{row.bad_p50_ms:7.2f}/{row.bad_max_ms:<7.1f} {row.nonfinite:6d}  {result}")


def run_scenario(scenario: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    restarts = 0
    twin = Twin(scenario, args.rate, workdir, f"{scenario}-{restarts}")
    ctx = zmq.Context()
    watcher = Watcher(ctx, twin)
    n_sats = int(watcher.command({"cmd": "status"}, timeout_s=30).get("n_sats", 1))
    watcher.run_for(args.nominal_seconds)
    now = time.monotonic()
    nominal_hz = step_rate(watcher.seen.states, now - args.nominal_seconds + 1.0, now)
    print(f"\n{scenario}: {n_sats} satellites, nominal {nominal_hz:.2f} steps/s "
          f"(configured {args.rate or 'the scenario rate'}), steady RSS "
          f"{watcher.seen.rss[-1][1]:.0f} MB, twin pid {twin.proc.pid}", flush=True)
    print(HEADER, flush=True)
    rows = []
    for name in args.classes:
        if not twin.alive():
            watcher.close()
            restarts += 1
            twin = Twin(scenario, args.rate, workdir, f"{scenario}-{restarts}")
            watcher = Watcher(ctx, twin)
            watcher.run_for(2.0)
        row = run_class(name, scenario, twin, watcher, nominal_hz or float("nan"),
                        args.seconds, n_sats)
        rows.append(row)
        print(format_row(row) + (f"  [{row.notes.rstrip('; ')}]" if row.notes else ""),
              flush=True)
    watcher.close()
    ctx.destroy(linger=0)
    tail_offset = twin.log_bytes()
    exit_status = twin.stop()
    tail = twin.log_since(tail_offset)
    clean = exit_status == 0 and "Traceback" not in tail
    print(f"{scenario}: twin stopped with exit status {exit_status}"
          f"{'' if clean else ' (NOT CLEAN)'}; {restarts} restart(s)", flush=True)
    return {"scenario": scenario, "n_sats": n_sats, "nominal_hz": nominal_hz,
            "exit_status": exit_status, "clean_exit": clean, "restarts": restarts,
            "rows": [asdict(r) for r in rows]}


def no_nan(value: Any) -> Any:
    """``value`` with every non-finite float as None, so the JSON is strict."""
    if isinstance(value, dict):
        return {str(k): no_nan(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [no_nan(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def class_list(text: str) -> list[str]:
    """An argparse ``type``: class names, comma separated, from ``CLASSES``."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in CLASSES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown class {', '.join(unknown) or '(none given)'}; choose from "
            f"{', '.join(CLASSES)}")
    return names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=checked_scenario, action="append",
                        help="scenario to abuse, repeatable (default: default and starlink)")
    parser.add_argument("--seconds", type=positive_argument("seconds", 600.0), default=10.0,
                        help="flood length per class (default: %(default)s)")
    parser.add_argument("--classes", type=class_list, default=list(CLASSES),
                        help=f"comma-separated subset of {','.join(CLASSES)}")
    parser.add_argument("--rate", type=rate_argument, metavar="HZ",
                        help="the twin's step rate (default: the scenario's)")
    parser.add_argument("--nominal-seconds", type=count_argument(2), default=4,
                        help="seconds of undisturbed stepping that set the nominal rate")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the results here")
    parser.add_argument("--log-dir", type=Path, metavar="DIR",
                        help="keep the twins' logs here (default: a temporary folder)")
    args = parser.parse_args()
    scenarios = args.scenario or ["default", "starlink"]
    # paused_jobs leaves a long job queue behind it: run it last, whatever the order given.
    args.classes = sorted(args.classes, key=lambda name: name == "paused_jobs")
    print("load average {:.2f} {:.2f} {:.2f} (1, 5, 15 min), {} cpus".format(
        *os.getloadavg(), os.cpu_count()), flush=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="odc-abuse-") as tmp:
        workdir = args.log_dir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        results = [run_scenario(scenario, args, workdir) for scenario in scenarios]
    failed = [f"{row['cls']}/{row['scenario']}: {','.join(row['failed'])}"
              for result in results for row in result["rows"] if row["failed"]]
    failed += [f"{r['scenario']}: unclean exit" for r in results if not r["clean_exit"]]
    print(f"\n{len(failed)} failing row(s) in {time.monotonic() - started:.0f} s"
          + "".join(f"\n  {line}" for line in failed))
    if args.json:
        args.json.write_text(json.dumps(no_nan({"results": results, "failed": failed}),
                                        indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Replay: how fast a recording reads and plays against its real time, and how fast a seek lands.

Writes a large recording as twin.recording.format says (a real engine's states, framed as
the twin frames them, with its meta every 30 states, a heartbeat every 10 and its events;
a chunk per SECONDS_PER_CHUNK of the recorded run, zstd) until it reaches --size-gb, then:

- read: every message through twin.recording.playback, frames unpacked, as a replay does
  before it sends; against the recording's real time (its simulated span over the recorded
  warp: how long the run took live). Target: at least 10x.
- play: the same through a real ReplayServer at the highest warp, a subscriber draining it.
- seek: --seeks seeks to random times (fixed seed) on a paused replay, each timed from the
  request to the landed state's arrival at a subscriber. Target: under 0.5 s. With --cold
  the file is dropped from the OS page cache before each seek (posix_fadvise DONTNEED on
  this file alone), so every seek reads its chunks from the disk.

    python bench/replay.py --scenario starlink --size-gb 2 --seeks 30

The file goes to --out (a temporary folder by default) and is removed unless --keep;
--path reuses an existing recording instead of writing one. The OS page cache holds a
file that fits in memory: seeks on a cold cache add the reading of a few chunks from disk.
docs/performance.md ("Replay") has the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import zmq
from benchargs import checked_scenario
from mcap.writer import CompressionType, Writer

from twin import __version__
from twin.core.clock import MAX_WARP, SimClock
from twin.core.engine import Engine
from twin.protocol.codec import (
    PROTOCOL_VERSION,
    TOPIC_EVENT,
    TOPIC_HEARTBEAT,
    TOPIC_META,
    StateEncoder,
    encode_map,
    pack,
    unpack,
)
from twin.recording.format import CHANNELS, MESSAGE_ENCODING, METADATA_NAME, PROFILE, pack_frames
from twin.recording.playback import Recording
from twin.recording.replay import ReplayAddresses, ReplayServer
from twin.runtime.cli import count_argument, positive_argument
from twin.scenario import load_scenario

ANY_PORT = "tcp://127.0.0.1:*"
RUN_ID = 0xBE7C4
META_EVERY, HB_EVERY = 30, 10


def write_recording(path: Path, scenario_name: str, size_bytes: int,
                    states_per_chunk: int) -> dict[str, Any]:
    """Step a real engine and record what the twin would publish until the file is
    ``size_bytes``; a chunk per ``states_per_chunk`` states (a second at 10 Hz)."""
    scenario = load_scenario(scenario_name)
    clock = SimClock(scenario.epoch_utc, rate_hz=scenario.clock.rate_hz,
                     warp=scenario.clock.warp, fast=True)
    engine = Engine(scenario, clock)
    encoder = StateEncoder([f.spec for f in engine.fields])
    seq = {b"state": 0, TOPIC_EVENT: 0, TOPIC_META: 0, TOPIC_HEARTBEAT: 0}
    started = time.perf_counter()
    wall_ns = time.time_ns()
    with open(path, "wb") as f:
        writer = Writer(f, chunk_size=1 << 30, compression=CompressionType.ZSTD)
        writer.start(profile=PROFILE, library=f"odc-twin bench {__version__}")
        channels = {topic: writer.register_channel(name, MESSAGE_ENCODING, 0)
                    for topic, name in CHANNELS.items()}
        writer.add_metadata(METADATA_NAME, {
            "scenario": scenario.name, "run_id": str(RUN_ID), "twin_version": __version__,
            "protocol": str(PROTOCOL_VERSION), "recorder": "bench/replay.py", "every": "1"})

        def add(topic: bytes, frames: list) -> None:
            t_ns = round(clock.t_utc * 1e9)
            writer.add_message(channels[topic], t_ns, pack_frames(frames), wall_ns)

        def framing(topic: bytes) -> dict[str, Any]:
            header = {"v": PROTOCOL_VERSION, "seq": seq[topic], "t_utc": clock.t_utc,
                      "run_id": RUN_ID}
            seq[topic] += 1
            return header

        states = 0
        while f.tell() < size_bytes:
            if states % META_EVERY == 0:
                add(TOPIC_META, encode_map(TOPIC_META, {**framing(TOPIC_META),
                                                        **engine.meta()}))
            engine.step()
            header = framing(b"state")
            header.update(engine.header())
            add(b"state", encoder.encode(header, [fl.array for fl in engine.fields]))
            for event in engine.events.drain():
                add(TOPIC_EVENT, encode_map(TOPIC_EVENT, {**framing(TOPIC_EVENT), **event}))
            states += 1
            wall_ns += round(1e9 / clock.rate_hz)  # as received live at the scenario's rate
            if states % HB_EVERY == 0:
                add(TOPIC_HEARTBEAT, encode_map(TOPIC_HEARTBEAT, {
                    **framing(TOPIC_HEARTBEAT), "wall_utc": wall_ns / 1e9, "step": clock.steps,
                    "paused": False, "warp": clock.warp, "rate_hz": clock.rate_hz,
                    "scenario": scenario.name, "n_sats": engine.n_sats}))
            if states % states_per_chunk == 0:
                writer.flush()  # the recorder closes a chunk each second
        writer.finish()
    return {"states": states, "bytes": path.stat().st_size, "n_sats": engine.n_sats,
            "write_s": time.perf_counter() - started}


def read_all(path: Path) -> dict[str, Any]:
    """Every message through the index, frames unpacked (a replay's reading, no socket)."""
    opened = time.perf_counter()
    with Recording(path) as recording:
        open_s = time.perf_counter() - opened
        started = time.perf_counter()
        n, size, first_state = 0, 0, None
        for record in recording.messages(recording.start_ns):
            frames = record.frames()
            n += 1
            size += sum(len(frame) for frame in frames)
            if first_state is None and record.topic == b"state":
                first_state = record.header()
        read_s = time.perf_counter() - started
        span_s = (recording.end_ns - recording.start_ns) / 1e9
        warp = float(first_state["warp"])
        return {"open_s": open_s, "messages": n, "frame_bytes": size, "read_s": read_s,
                "span_s": span_s, "recorded_warp": warp, "real_time_s": span_s / warp,
                "read_x_real_time": span_s / warp / read_s, "chunks": recording.chunk_count}


def _subscriber(address: str, topics: tuple[bytes, ...]) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, 0)
    sock.setsockopt(zmq.RCVTIMEO, 10_000)
    for topic in topics:
        sock.setsockopt(zmq.SUBSCRIBE, topic)
    sock.connect(address)
    return sock


def _request(sock: zmq.Socket, cmd: dict[str, Any]) -> dict[str, Any]:
    sock.send(pack(cmd))
    return unpack(sock.recv())


def drop_from_cache(path: Path) -> None:
    """Ask the OS to forget this file's cached pages (this file only; no privileges)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def serve(path: Path, seeks: int, seed: int, cold: bool = False,
          play: bool = True) -> dict[str, Any]:
    """Play the whole recording at the highest warp, then time random seeks."""
    recording = Recording(path)
    server = ReplayServer(recording, ReplayAddresses(ANY_PORT, ANY_PORT), paused=True)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    sub = _subscriber(server.bound.pub, (b"state", b"replay"))
    req = zmq.Context.instance().socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    req.setsockopt(zmq.RCVTIMEO, 30_000)
    req.connect(server.bound.command)
    try:
        time.sleep(1.5)  # subscribed; the first replay messages drained below
        while sub.poll(0):
            sub.recv_multipart()
        start, end = recording.span_utc
        out: dict[str, Any] = {}
        if play:
            _request(req, {"cmd": "warp", "value": MAX_WARP})
            started = time.perf_counter()
            _request(req, {"cmd": "resume"})
            received = 0
            while True:
                frames = sub.recv_multipart(copy=False)
                topic = frames[0].bytes
                if topic == b"state":
                    received += 1
                elif unpack(frames[1].bytes).get("ended"):
                    break
            play_s = time.perf_counter() - started
            published = server.published.get("state", 0)
            out = {"play_s": play_s, "states_published": published,
                   "states_received": received, "play_states_per_s": published / play_s}
        # Seeks: each timed from the request to the landed state's arrival.
        rng = random.Random(seed)
        latencies, replies = [], []
        for _ in range(seeks):
            target = rng.uniform(start, end)
            if cold:
                drop_from_cache(path)
            sent = time.perf_counter()
            reply = _request(req, {"cmd": "seek", "t_utc": target})
            replies.append(time.perf_counter() - sent)
            assert reply["ok"], reply
            while True:
                frames = sub.recv_multipart()
                if frames[0] == b"state" and \
                        unpack(frames[1])["t_utc"] == reply["position_utc"]:
                    break
            latencies.append(time.perf_counter() - sent)
        quantiles = statistics.quantiles(latencies, n=20) if len(latencies) >= 2 else latencies
        return {**out, "seek_median_s": statistics.median(latencies), "cold": cold,
                "seek_p95_s": quantiles[-1], "seek_max_s": max(latencies),
                "seek_reply_median_s": statistics.median(replies)}
    finally:
        server.stop()
        thread.join(10)
        server.close()
        recording.close()
        sub.close(linger=0)
        req.close(linger=0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=checked_scenario, default="starlink",
                        help="scenario whose states are recorded (default: %(default)s)")
    parser.add_argument("--size-gb", type=positive_argument("size", 64.0), default=2.0,
                        help="recording size to write, GB (default: %(default)s)")
    parser.add_argument("--states-per-chunk", type=count_argument(1), default=10,
                        help="states per chunk: the recorder closes one a second, 10 at "
                        "10 Hz (default: %(default)s)")
    parser.add_argument("--seeks", type=count_argument(1), default=30,
                        help="random seeks timed (default: %(default)s)")
    parser.add_argument("--seed", type=count_argument(), default=15)
    parser.add_argument("--out", type=Path, help="where to write the recording "
                        "(default: a temporary folder)")
    parser.add_argument("--path", type=Path, help="an existing recording to use instead")
    parser.add_argument("--keep", action="store_true", help="keep the written recording")
    parser.add_argument("--seeks-only", action="store_true",
                        help="time seeks only (no read or play of the whole file)")
    parser.add_argument("--cold", action="store_true",
                        help="drop the file from the OS page cache before each seek")
    args = parser.parse_args()

    results: dict[str, Any] = {"scenario": args.scenario}
    tmp = None
    if args.path is not None:
        path = args.path
    else:
        if args.out is None:
            tmp = tempfile.TemporaryDirectory(prefix="odc-replay-bench-")
            path = Path(tmp.name) / "bench.mcap"
        else:
            path = args.out
        print(f"writing {args.size_gb:g} GB of {args.scenario} to {path} ...", file=sys.stderr)
        results["write"] = write_recording(path, args.scenario, int(args.size_gb * 1e9),
                                           args.states_per_chunk)
        print(json.dumps(results["write"]), file=sys.stderr)
    try:
        if not args.seeks_only:
            results["read"] = read_all(path)
            print(json.dumps(results["read"]), file=sys.stderr)
        results["serve"] = serve(path, args.seeks, args.seed, args.cold, not args.seeks_only)
        size_gb = path.stat().st_size / 1e9
    finally:
        if tmp is not None and not args.keep:
            tmp.cleanup()
    read, served = results.get("read"), results["serve"]
    print(f"recording: {path} ({size_gb:.2f} GB)")
    if read:
        print(f"read:  {read['read_s']:.1f} s for {read['real_time_s']:.0f} s of real time "
              f"({read['span_s']:.0f} s simulated at warp {read['recorded_warp']:g}): "
              f"{read['read_x_real_time']:.1f}x real time; open {read['open_s'] * 1e3:.0f} ms")
        print(f"play:  {served['play_s']:.1f} s, {served['play_states_per_s']:.0f} states/s "
              f"({read['real_time_s'] / served['play_s']:.1f}x real time), "
              f"{served['states_received']} received after resume of {served['states_published']}")
    print(f"seek:  median {served['seek_median_s'] * 1e3:.0f} ms, p95 "
          f"{served['seek_p95_s'] * 1e3:.0f} ms, max {served['seek_max_s'] * 1e3:.0f} ms "
          f"({args.seeks} seeks{', cold cache' if args.cold else ''}; reply median "
          f"{served['seek_reply_median_s'] * 1e3:.0f} ms)")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

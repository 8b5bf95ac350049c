"""Ingest throughput: CCSDS packets per second decoded, validated and applied to the mirror.

Two measurements, both on one core of this process:

1. decode: packets already in memory through ``StreamSplitter`` + ``Decoder`` (framing,
   CRC, sequence, bounds), in 64 KiB reads as from a socket;
2. end to end over TCP: a sender process streams N flatsat ``hk`` packets over loopback TCP;
   this process reads, splits, decodes, validates, pushes ``tm`` messages over a ZeroMQ
   PUSH/PULL pair and applies them with the twin's ``Mirror.ingest``. It checks that no
   packet was lost: the mirror applied exactly N samples.

Run: ``.venv/bin/python bench/ingest.py [--packets 1000000]``. Target: >= 100,000 pkt/s.
"""

from __future__ import annotations

import argparse
import multiprocessing
import socket
import time

import numpy as np
import zmq

from bridge.bridge_cli import Bridge
from bridge.ccsds import Decoder, StreamSplitter, encode_packets
from bridge.definitions import load_definitions
from bridge.push import TelemetryPusher
from bridge.sources import TcpSource
from twin.models.mirror import Mirror
from twin.runtime.cli import count_argument
from twin.scenario import load_scenario

READ_BYTES = 1 << 16


def make_stream(n: int, t0: float) -> bytes:
    hk = load_definitions("flatsat").by_name("hk")
    rng = np.random.default_rng(0)
    rows = encode_packets(hk, {"util_frac": rng.random(n), "compute_power_w": rng.random(n) * 500,
                               "cold_plate_temp_c": 20 + rng.random(n) * 30,
                               "radiator_temp_c": -10 + rng.random(n) * 20},
                          np.arange(n), t0 + np.arange(n) * 1e-5)
    return rows.tobytes()


def bench_decode(data: bytes) -> float:
    dec = Decoder(load_definitions("flatsat"))
    splitter = StreamSplitter(dec)
    started = time.perf_counter()
    for i in range(0, len(data), READ_BYTES):
        splitter.feed(data[i:i + READ_BYTES])
    elapsed = time.perf_counter() - started
    assert dec.counters.accepted == len(data) // 30, dec.status()
    return dec.counters.accepted / elapsed


def _serve(port_queue: multiprocessing.Queue, data: bytes) -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port_queue.put(server.getsockname()[1])
    conn, _ = server.accept()
    conn.sendall(data)
    conn.close()
    server.close()


def bench_tcp(n: int) -> tuple[float, dict]:
    scenario = load_scenario("assets/testbeds/flatsat_mirror.toml")
    mirror = Mirror(scenario)
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.setsockopt(zmq.RCVHWM, 100_000)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    pusher = TelemetryPusher(f"tcp://127.0.0.1:{port}", "flatsat", ctx)
    data = make_stream(n, time.time() - 5.0)
    queue: multiprocessing.Queue = multiprocessing.Queue()
    sender = multiprocessing.Process(target=_serve, args=(queue, data), daemon=True)
    sender.start()
    source = TcpSource(f"127.0.0.1:{queue.get(timeout=30)}")
    bridge = Bridge(Decoder(load_definitions("flatsat")), pusher)
    started = None
    deadline = time.monotonic() + 120.0
    while mirror.counters["samples_applied"] < n and time.monotonic() < deadline:
        chunk = source.read(0.05)
        if chunk and started is None:
            started = time.perf_counter()
        bridge.handle_stream(chunk)
        while True:  # the twin's side: drain the ingest socket and apply
            try:
                frames = pull.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            mirror.ingest(frames)
    elapsed = time.perf_counter() - (started or time.perf_counter())
    sender.join(10)
    source.close()
    pusher.close()
    pull.close()
    ctx.term()
    counters = mirror.status()["counters"]
    assert counters["samples_applied"] == n, (counters, bridge.status())
    return n / elapsed, counters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=count_argument(1), default=1_000_000)
    args = parser.parse_args()
    data = make_stream(args.packets, time.time())
    rate = bench_decode(data)
    print(f"decode+validate (in memory, 30-byte PUS-C packets with CRC): {rate:,.0f} pkt/s")
    rate, counters = bench_tcp(args.packets)
    print(f"TCP -> split -> decode -> validate -> push -> mirror.ingest: {rate:,.0f} pkt/s, "
          f"{counters['samples_applied']:,} of {args.packets:,} applied, "
          f"dropped {counters['samples_dropped']}")


if __name__ == "__main__":
    main()

"""A client written from docs/protocol.md alone, against a real `python -m twin` process.

This file deliberately imports nothing from the twin: only ZeroMQ, msgpack and numpy,
as a client in another language would. If the protocol page and the twin disagree,
these tests fail.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq
from procutil import twin_process

ROOT = Path(__file__).resolve().parent.parent
RECEIVE_TIMEOUT_MS = 5000
DOCUMENTED_DTYPES = {"<f8", "<f4", "<i2", "<i4", "<i8", "<u2", "<u4", "|u1", "|i1", "|b1"}


@contextmanager
def socket(kind: int, address: str, **options: object) -> Iterator[zmq.Socket]:
    sock = zmq.Context.instance().socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, RECEIVE_TIMEOUT_MS)
    for name, value in options.items():
        sock.setsockopt(getattr(zmq, name), value)
    sock.connect(address)
    try:
        yield sock
    finally:
        sock.close(linger=0)


def read(sock: zmq.Socket) -> tuple[str, dict, list[bytes]]:
    frames = sock.recv_multipart()
    topic = frames[0].decode("ascii")
    header = msgpack.unpackb(frames[1], raw=False)
    assert header["v"] == 1
    return topic, header, frames[2:]


def decode_state(header: dict, buffers: list[bytes]) -> dict[str, np.ndarray]:
    """Decode a state message exactly as docs/protocol.md describes it."""
    assert len(header["fields"]) == len(buffers)
    arrays = {}
    for entry, buffer in zip(header["fields"], buffers, strict=True):
        assert entry["dtype"] in DOCUMENTED_DTYPES, entry
        dtype = np.dtype(entry["dtype"])
        assert len(buffer) == int(np.prod(entry["shape"])) * dtype.itemsize, entry["name"]
        arrays[entry["name"]] = np.frombuffer(buffer, dtype).reshape(entry["shape"])
    return arrays


def command(sock: zmq.Socket, payload: object) -> dict:
    sock.send(msgpack.packb(payload) if not isinstance(payload, bytes) else payload)
    return msgpack.unpackb(sock.recv(), raw=False)


def test_stream_decodes_from_the_documentation_alone() -> None:
    with twin_process("--scenario", "default", "--rate", "20", "--warp", "60") as (_, addr), \
            socket(zmq.SUB, addr["stream"], SUBSCRIBE=b"") as sub:
        states, metas = [], []
        deadline = time.monotonic() + 20
        while (len(states) < 30 or not metas) and time.monotonic() < deadline:
            topic, header, buffers = read(sub)
            if topic == "state":
                states.append((header, decode_state(header, buffers)))
            elif topic == "meta":
                metas.append(header)
        assert len(states) >= 30 and metas, "no meta within 20 s: late joiners cannot draw"
        seqs = [h["seq"] for h, _ in states]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "state seq has gaps"
        header, arrays = states[-1]
        meta = metas[-1]
        n = meta["sats"]["n"]
        assert header["n_sats"] == n == len(meta["sats"]["names"])
        assert 24 <= n <= 48
        assert arrays["pos_gcrs_km"].shape == (n, 3)
        radius_km = np.linalg.norm(arrays["pos_gcrs_km"], axis=1)
        assert np.all((radius_km > 6378 + 400) & (radius_km < 6378 + 800))
        assert np.all(np.abs(arrays["lat_deg"]) <= 90)
        assert np.all((arrays["sunlit_frac"] >= 0) & (arrays["sunlit_frac"] <= 1))
        n_stations = len(meta["stations"])
        assert arrays["in_contact"].shape == (n_stations, n)
        catalog = {f["name"]: f for f in meta["fields"]}
        for entry in header["fields"]:
            assert catalog[entry["name"]]["unit"] == entry["unit"]
        times = [h["t_utc"] for h, _ in states]
        assert np.allclose(np.diff(times), 60 / 20), "each step is warp / rate seconds"


def test_commands_and_bad_commands_keep_the_twin_running() -> None:
    with twin_process("--scenario", "default", "--rate", "20") as (proc, addr), \
            socket(zmq.REQ, addr["commands"]) as req:
        status = command(req, {"cmd": "status"})
        assert status["ok"] is True and status["n_sats"] > 0
        listing = command(req, {"cmd": "commands"})["commands"]
        assert {"status", "meta", "pause", "resume", "step", "warp", "rate"} <= set(listing)
        bad = [
            b"\xc1 not msgpack",
            ["a", "list"],
            {"no": "cmd"},
            {"cmd": "warp"},
            {"cmd": "warp", "value": -5},
            {"cmd": "warp", "value": "fast"},
            {"cmd": "warp", "value": 10, "typo": 1},
            {"cmd": "step"},  # not paused
            {"cmd": "launch_missiles"},
        ]
        for payload in bad:
            reply = command(req, payload)
            assert reply["ok"] is False, payload
            assert isinstance(reply["error"], str) and reply["error"], payload
        assert "unknown command" in command(req, {"cmd": "launch_missiles"})["error"]
        assert command(req, {"cmd": "pause"})["ok"]
        paused_at = command(req, {"cmd": "status"})["step"]
        time.sleep(0.3)  # a fixed wait on purpose: paused, no step may come in it
        assert command(req, {"cmd": "status"})["step"] == paused_at
        assert command(req, {"cmd": "step", "n": 3})["ok"]
        deadline = time.monotonic() + 5
        while command(req, {"cmd": "status"})["step"] < paused_at + 3:
            assert time.monotonic() < deadline, "single steps were not taken"
            time.sleep(0.05)
        assert command(req, {"cmd": "warp", "value": 120, "id": 7}) == {
            "ok": True, "warp": 120.0, "dt_s": 6.0, "id": 7}
        assert command(req, {"cmd": "resume"})["ok"]
        status = command(req, {"cmd": "status"})
        assert status["counters"]["commands_rejected"] >= len(bad)
        deadline = time.monotonic() + 5  # resumed: it steps again (later when loaded)
        while command(req, {"cmd": "status"})["step"] <= status["step"]:
            assert time.monotonic() < deadline, "resume did not take"
            time.sleep(0.05)
        assert proc.poll() is None


def test_meta_on_request_reaches_a_late_joiner() -> None:
    with twin_process("--scenario", "default", "--rate", "10") as (_, addr), \
            socket(zmq.SUB, addr["stream"], SUBSCRIBE=b"meta") as sub, \
            socket(zmq.DEALER, addr["commands"]) as dealer:
        time.sleep(0.3)  # let the subscription reach the twin
        dealer.send_multipart([b"", msgpack.packb({"cmd": "meta"})])
        empty, reply = dealer.recv_multipart()
        assert empty == b"" and msgpack.unpackb(reply)["ok"]
        topic, header, _ = read(sub)
        assert topic == "meta"
        assert header["scenario"]["name"] == "default"
        assert len(header["stations"]) >= 4


@pytest.mark.timeout(180)
def test_starlink_fast_run_streams_whole_catalog_frames() -> None:
    with twin_process("--scenario", "starlink", "--fast", "--steps", "100000") as (_, addr), \
            socket(zmq.SUB, addr["stream"], SUBSCRIBE=b"state", RCVHWM=4) as sub:
        _, header, buffers = read(sub)
        arrays = decode_state(header, buffers)
        assert header["n_sats"] == 4428
        assert arrays["pos_itrs_km"].shape == (4428, 3)
        ok = arrays["status"] == 0
        assert ok.sum() > 4000
        assert np.all(np.isfinite(arrays["pos_itrs_km"][ok]))

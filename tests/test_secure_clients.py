"""Clients with keys: CURVE on real sockets against the twin's own ZAP handler.

A real CURVE server (``twin.security.auth.serve_curve`` with a ``KeyAuthenticator`` over a
real key folder, random loopback ports) gets what a client with a registered key sends,
and nothing from a client without one or with a revoked one; those clients say why. The
client flags (``--key``/``--server-key``) are checked the way a user meets them: real
processes, one clear line, exit status 2.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import zmq
from faketwin import fake_twin

from bridge.push import TelemetryPusher
from twin.protocol.codec import PROTOCOL_VERSION, TOPIC_HEARTBEAT, encode_map
from twin.security.auth import KeyAuthenticator, serve_curve
from twin.security.clients import ClientKeys
from twin.security.keys import KeyRegistry, new_key, revoke_key
from viz.stream import CommandClient, StreamClient

ROOT = Path(__file__).resolve().parent.parent
REFUSAL_WAIT_S = 1.0  # a refused client's message would have arrived long before this


@pytest.fixture(scope="module")
def key_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("keys")
    new_key(folder, "alice", ["operator"])
    new_key(folder, "lab", ["testbed:flatsat"])
    new_key(folder, "mallory", ["admin"])
    revoke_key(folder, "mallory")
    return folder


def keys_of(folder: Path, name: str) -> ClientKeys:
    return ClientKeys.checked(folder / f"{name}.key_secret", folder / "server.key")


def echo(request: dict) -> dict:
    return {"ok": True, "cmd": request.get("cmd")}


def test_command_client_with_a_key_reaches_a_curve_twin(key_folder: Path) -> None:
    with fake_twin(echo, key_folder) as twin:
        client = CommandClient(twin.address, timeout_s=3.0, keys=keys_of(key_folder, "alice"))
        try:
            reply = client.send("status")
        finally:
            client.close()
        assert reply == {"ok": True, "cmd": "status"}
        [request] = twin.wait_for(1)
        assert request["cmd"] == "status" and request["_user"] == "alice"


@pytest.mark.parametrize("who, expected", [
    (None, "--key NAME.key_secret --server-key server.key"),
    ("mallory", "refused key 'mallory'"),
])
def test_without_a_registered_key_nothing_arrives(key_folder: Path, who: str | None,
                                                  expected: str) -> None:
    with fake_twin(echo, key_folder) as twin:
        keys = keys_of(key_folder, who) if who else None
        client = CommandClient(twin.address, timeout_s=3.0, keys=keys)
        try:
            started = time.monotonic()
            reply = client.send("status")
            waited = time.monotonic() - started
        finally:
            client.close()
        assert reply["ok"] is False and expected in reply["error"], reply
        assert waited < 2.5, "a refusal should answer before the timeout"
        time.sleep(REFUSAL_WAIT_S)
        assert twin.requests == []
        assert twin.authenticator is not None
        assert who is None or twin.authenticator.refused >= 1


@contextmanager
def curve_server(kind: int, folder: Path) -> Iterator[tuple[zmq.Socket, str]]:
    """A CURVE socket of ``kind`` admitting ``folder``'s keys, bound to a random port."""
    context = zmq.Context()
    authenticator = KeyAuthenticator(context, KeyRegistry.load(folder))
    authenticator.start()
    sock = context.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    serve_curve(sock, folder)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    try:
        yield sock, f"tcp://127.0.0.1:{port}"
    finally:
        sock.close(linger=0)
        authenticator.stop()
        context.term()


def heartbeat(seq: int) -> list[bytes]:
    return encode_map(TOPIC_HEARTBEAT, {"v": PROTOCOL_VERSION, "seq": seq, "t_utc": 1.75e9,
                                        "run_id": 1, "paused": False, "warp": 60.0})


def test_stream_client_with_a_key_follows_a_curve_stream(key_folder: Path) -> None:
    with curve_server(zmq.PUB, key_folder) as (pub, address):
        keyed = StreamClient(address, keys=keys_of(key_folder, "alice"))
        plain = StreamClient(address)
        try:
            got_hb, seq = False, 0
            deadline = time.monotonic() + 5.0
            while not got_hb and time.monotonic() < deadline:
                pub.send_multipart(heartbeat(seq))
                seq += 1
                got_hb = keyed.poll(timeout_ms=50).heartbeat is not None
            assert got_hb, "the keyed subscriber got no heartbeat within 5 s"
            for _ in range(10):
                pub.send_multipart(heartbeat(seq))
                seq += 1
                assert plain.poll(timeout_ms=50).empty
            assert "admits registered keys only" in plain.refused
            assert keyed.refused == ""
        finally:
            keyed.close()
            plain.close()


def test_pusher_with_a_testbed_key_reaches_a_curve_ingest(key_folder: Path) -> None:
    with curve_server(zmq.PULL, key_folder) as (pull, address):
        pusher = TelemetryPusher(address, "flatsat", keys=keys_of(key_folder, "lab"))
        try:
            assert pusher.send("hk", np.array([1.75e9]), {"temp_c": np.array([21.5])})
            assert pull.poll(5000), "nothing arrived at the ingest socket within 5 s"
            frames = pull.recv_multipart(copy=False)
            assert frames[0].bytes == b"tm" and frames[-1].get("User-Id") == "lab"
            assert pusher.refused == ""
        finally:
            pusher.close()


def odc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "odc.cli", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=60)


def test_client_flags_go_together_and_name_the_wrong_file(key_folder: Path) -> None:
    secret, server = str(key_folder / "alice.key_secret"), str(key_folder / "server.key")
    cases = [
        (("tui", "--key", secret), "--key needs --server-key"),
        (("view", "--offscreen", "--server-key", server), "--server-key needs --key"),
        (("bridge", "--key", secret), "--key needs --server-key"),
        (("cmd", "status", "--server-key", server), "--server-key needs --key"),
        (("tui", "--key", server, "--server-key", server), "holds no secret key"),
        (("view", "--key", secret, "--server-key", secret), "holds a secret key"),
        (("bridge", "--key", "/nonexistent.key_secret", "--server-key", server),
         "--key /nonexistent.key_secret: not a CURVE secret key file"),
    ]
    for args, expected in cases:
        result = odc(*args)
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], (args, result.stderr)
    testbed = odc("testbed", "--help")
    assert "[--key" not in testbed.stdout and "takes no keys" in testbed.stdout
    for tool in ("tui", "view", "bridge", "cmd"):
        assert "--server-key" in odc(tool, "--help").stdout, tool

"""`odc cmd` and ``odc.client.TwinClient`` against a twin that holds a command for confirmation.

The twin is ``faketwin``'s real ROUTER on a random loopback port; `odc cmd` runs as its own
process, as a user runs it; the stream is a real PUB socket.
"""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import zmq
from faketwin import SUMMARY, TOKEN, confirming, fake_twin

from odc.client import TwinClient, connect, needs_confirmation
from twin.protocol.codec import PROTOCOL_VERSION, TOPIC_EVENT, TOPIC_HEARTBEAT, encode_map
from twin.security.auth import serve_curve
from twin.security.keys import KeyFileError, new_key

ROOT = Path(__file__).resolve().parent.parent


def odc_cmd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "odc.cli", "cmd", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=60, stdin=subprocess.DEVNULL)


def test_odc_cmd_yes_confirms_with_the_twins_token() -> None:
    with fake_twin(confirming()) as twin:
        result = odc_cmd("inject_fault", "sat=3", "kind=radiator", "health_frac=0.5",
                         "--cmd", twin.address, "--yes")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {"ok": True, "confirmed": "inject_fault"}
        assert SUMMARY in result.stderr and "--yes" in result.stderr
        first, second = twin.wait_for(2)
        # Values parse as JSON where they can, else stay strings.
        assert (first["cmd"], first["sat"], first["kind"], first["health_frac"]) == \
            ("inject_fault", 3, "radiator", 0.5)
        assert second["cmd"] == "confirm" and second["token"] == TOKEN
        assert set(second) == {"cmd", "token", "id", "_user"}


def test_odc_cmd_without_yes_and_no_terminal_confirms_nothing() -> None:
    with fake_twin(confirming()) as twin:
        result = odc_cmd("inject_fault", "sat=3", "kind=radiator", "--cmd", twin.address)
        assert result.returncode == 1
        reply = json.loads(result.stdout)
        assert reply["confirm_required"] is True and reply["summary"] == SUMMARY
        assert "not confirmed" in result.stderr and "--yes" in result.stderr
        time.sleep(0.3)
        assert [r["cmd"] for r in twin.wait_for(1)] == ["inject_fault"]


def test_odc_cmd_values_replies_and_errors() -> None:
    with fake_twin(lambda r: {"ok": r["cmd"] != "bad", "got": {k: v for k, v in r.items()
                                                               if k not in ("id", "_user")}}) \
            as twin:
        result = odc_cmd("warp", "value=120", "flag=true", "none=null", "policy=sun_aware",
                         "list=[1,2]", "--cmd", twin.address)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["got"] == {
            "cmd": "warp", "value": 120, "flag": True, "none": None, "policy": "sun_aware",
            "list": [1, 2]}
        refused = odc_cmd("bad", "--cmd", twin.address)
        assert refused.returncode == 1 and json.loads(refused.stdout)["ok"] is False
    for args, expected in [(("warp", "value"), "should look like key=value"),
                           (("warp", "id=3"), "set by odc cmd itself"),
                           (("warp", "value=1", "value=2"), "given twice")]:
        result = odc_cmd(*args, "--cmd", "tcp://127.0.0.1:9")
        assert result.returncode == 2 and expected in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def test_odc_cmd_prints_strict_json_even_for_infinities() -> None:
    """An uncapped node's ``power_cap_w`` is +inf: printed as the string "inf" (JSON has no
    infinity; Python's "Infinity" is refused by strict readers, and jq reads 1.8e308)."""
    inf = float("inf")
    with fake_twin(lambda r: {"ok": True, "row": {"power_cap_w": inf, "x": -inf,
                                                  "y": float("nan"), "z": [1.5, inf]}}) \
            as twin:
        result = odc_cmd("node", "sat=0", "--cmd", twin.address)
    assert result.returncode == 0, result.stderr

    def refuse(constant: str) -> None:
        raise AssertionError(f"not strict JSON: {constant}")

    reply = json.loads(result.stdout, parse_constant=refuse)
    assert reply["row"] == {"power_cap_w": "inf", "x": "-inf", "y": "nan", "z": [1.5, "inf"]}


def test_odc_cmd_says_when_no_twin_answers() -> None:
    with zmq.Context() as context, context.socket(zmq.ROUTER) as silent:
        port = silent.bind_to_random_port("tcp://127.0.0.1")
        result = odc_cmd("status", "--cmd", f"tcp://127.0.0.1:{port}", "--timeout", "0.5")
        silent.close(linger=0)
    assert result.returncode == 1
    assert "no reply from the twin" in json.loads(result.stdout)["error"]


def test_twin_client_confirms_only_when_told() -> None:
    with fake_twin(confirming()) as twin, connect(twin.address, timeout_s=3.0) as client:
        held = client.command("inject_fault", sat=3, kind="radiator")
        assert needs_confirmation(held) and held["summary"] == SUMMARY
        time.sleep(0.3)
        assert len(twin.requests) == 1, "the client confirmed by itself"
        assert client.confirm(held["token"]) == {"ok": True, "confirmed": "inject_fault"}
        assert twin.wait_for(2)[1]["token"] == TOKEN
        assert client.command("status") == {"ok": True}
        with pytest.raises(ValueError, match="'id' is set by the client itself"):
            client.command("status", id="mine")  # (its reply would be lost: a timeout)


def test_twin_client_frames_decodes_the_stream() -> None:
    with zmq.Context() as context, context.socket(zmq.PUB) as pub:
        pub.setsockopt(zmq.LINGER, 0)
        port = pub.bind_to_random_port("tcp://127.0.0.1")
        client = TwinClient("tcp://127.0.0.1:9", f"tcp://127.0.0.1:{port}", timeout_s=0.5)
        try:
            # A SUB joins a moment after it connects: publish until the first arrives.
            received = []
            deadline = time.monotonic() + 5.0
            seq = 0
            while not received and time.monotonic() < deadline:
                pub.send_multipart([b"event", b"\xc1 not msgpack"])  # skipped, counted
                pub.send_multipart(encode_map(TOPIC_HEARTBEAT, {"v": PROTOCOL_VERSION,
                                                                "seq": seq, "t_utc": 1.75e9}))
                pub.send_multipart(encode_map(TOPIC_EVENT, {
                    "v": PROTOCOL_VERSION, "seq": seq, "t_utc": 1.75e9, "kind": "limit"}))
                seq += 1
                received = list(client.frames(topics=["event"], idle_timeout_s=0.2))
            assert received, "no event within 5 s"
            assert {m.topic for m in received} == {"event"}
            assert received[0].header["kind"] == "limit" and client.bad_frames >= 1
            with pytest.raises(ValueError, match="unknown topic"):
                next(client.frames(topics=["state", "nope"]))
        finally:
            client.close()
        pub.close(linger=0)
    with TwinClient("tcp://127.0.0.1:9") as commands_only, \
            pytest.raises(ValueError, match="needs the stream address"):
        next(commands_only.frames())
    with pytest.raises(KeyFileError, match="go together"):
        TwinClient("tcp://127.0.0.1:9", key="alice.key_secret")


def test_the_documented_python_example_runs(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """docs/security.md's example, as written, against a CURVE twin stand-in."""
    doc = (ROOT / "docs" / "security.md").read_text()
    code = re.search(r"```python\n(.*?)```", doc, re.S).group(1)
    folder = tmp_path / "keys"
    new_key(folder, "alice", ["engineer"])
    held = confirming()

    def answer(request: dict) -> dict:
        return {"ok": True, "t_utc": 1.75e9} if request["cmd"] == "status" else held(request)

    with fake_twin(answer, folder) as twin:
        pub = twin.context.socket(zmq.PUB)
        pub.setsockopt(zmq.LINGER, 0)
        serve_curve(pub, folder)
        pub_address = f"tcp://127.0.0.1:{pub.bind_to_random_port('tcp://127.0.0.1')}"
        stop = threading.Event()

        def publish() -> None:
            for seq in range(40):  # then silence, so the example's frames() loop ends
                if stop.wait(0.05):
                    return
                pub.send_multipart(encode_map(TOPIC_EVENT, {
                    "v": PROTOCOL_VERSION, "seq": seq, "t_utc": 1.75e9, "kind": "contact",
                    "message": "node 3 in contact"}))

        publisher = threading.Thread(target=publish, daemon=True)
        publisher.start()
        code = (code.replace("tcp://127.0.0.1:5556", twin.address)
                .replace("tcp://127.0.0.1:5555", pub_address)
                .replace("keys/", f"{folder}/").replace("idle_timeout_s=5.0", "idle_timeout_s=1.0"))
        try:
            exec(compile(code, "docs/security.md", "exec"), {})
        finally:
            stop.set()
            publisher.join(timeout=5)
            pub.close(linger=0)
        assert [r["cmd"] for r in twin.requests] == ["status", "inject_fault", "confirm"]
        assert {r["_user"] for r in twin.requests} == {"alice"}
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "1750000000.0" and "contact node 3 in contact" in printed[1:]


@pytest.mark.parametrize("typed, confirmed", [("yes\n", True), ("no\n", False)])
def test_odc_cmd_asks_on_a_terminal(typed: str, confirmed: bool) -> None:
    controller, terminal = pty.openpty()
    with fake_twin(confirming()) as twin:
        proc = subprocess.Popen([sys.executable, "-m", "odc.cli", "cmd", "inject_fault", "sat=3",
                                 "kind=radiator", "--cmd", twin.address], cwd=ROOT, text=True,
                                stdin=terminal, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        os.close(terminal)
        try:
            twin.wait_for(1, timeout_s=30)  # the question is asked once the twin held it
            os.write(controller, typed.encode())
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(controller)
        assert "type yes to confirm" in err and SUMMARY in err
        time.sleep(0.2)
        commands = [r["cmd"] for r in twin.requests]
    if confirmed:
        assert proc.returncode == 0 and commands == ["inject_fault", "confirm"]
        assert json.loads(out) == {"ok": True, "confirmed": "inject_fault"}
    else:
        assert proc.returncode == 1 and commands == ["inject_fault"]
        assert "not confirmed" in err and json.loads(out)["confirm_required"] is True

"""docs/security.md's lab, end to end: a twin on a non-loopback address with keys.

An operator's dashboard commands it; a viewer's 3D view follows the stream and its
commands are refused; a testbed's bridge feeds its own testbed and another testbed's key
cannot; the audit file shows all of it. Real processes, real CURVE sockets, real files.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zmq
from procutil import ROOT, odc_process, twin_process

from twin.protocol.codec import pack, unpack
from twin.protocol.telemetry import encode_telemetry
from twin.security.auth import connect_curve
from twin.security.clients import ClientKeys
from twin.security.keys import server_key_paths
from viz.tui.app import DashboardApp

SCENARIO = (ROOT / "assets" / "testbeds" / "flatsat_mirror.toml").read_text()
ANY = "tcp://0.0.0.0:*"


def local(address: str) -> str:
    """A wildcard bind as a client on this machine reaches it."""
    return address.replace("0.0.0.0", "127.0.0.1")


def odc(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "odc.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def ask(address: str, keys: Path, name: str, request: dict) -> dict:
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.rcvtimeo = 5000
    connect_curve(sock, keys / f"{name}.key_secret", server_key_paths(keys)[0])
    sock.connect(address)
    try:
        sock.send(pack(request))
        return unpack(sock.recv())
    finally:
        sock.close(linger=0)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(240)
def test_the_lab_of_docs_security_md(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    for name, role in (("ana", "engineer"), ("ben", "operator"), ("wall", "viewer"),
                       ("bench", "testbed:flatsat"), ("rogue", "testbed:other")):
        assert odc("keys", "new", name, "--role", role, "--dir", str(keys)).returncode == 0
    scenario = tmp_path / "lab.toml"
    scenario.write_text(SCENARIO)
    audit = keys / "audit.jsonl"
    server_key = str(server_key_paths(keys)[0])
    with twin_process("--scenario", str(scenario), "--keys", str(keys), "--rate", "10",
                      pub=ANY, cmd=ANY, ingest=ANY) as (_, addresses):
        pub, cmd, ingest = (local(addresses[k]) for k in ("stream", "commands", "ingest"))

        # Ben's dashboard, as an operator, pauses and resumes the twin.
        async def dashboard() -> None:
            app = DashboardApp(pub, cmd, keys=ClientKeys.checked(keys / "ben.key_secret",
                                                                 server_key))
            async with app.run_test(size=(160, 50)) as pilot:
                deadline = time.monotonic() + 30
                while not (app.model.n and app.model.names):
                    assert time.monotonic() < deadline, "the dashboard saw no stream"
                    await pilot.pause(0.1)
                await pilot.press("space")
                while not app.paused:
                    assert time.monotonic() < deadline, "pause did not take"
                    await pilot.pause(0.1)
                await pilot.press("space")
                while app.paused:
                    assert time.monotonic() < deadline, "resume did not take"
                    await pilot.pause(0.1)

        asyncio.run(dashboard())

        # The wall's 3D view follows the stream; its key commands nothing.
        shot = tmp_path / "wall.png"
        view = odc("view", "--pub", pub, "--cmd", cmd, "--offscreen", "--screenshot", str(shot),
                   "--key", str(keys / "wall.key_secret"), "--server-key", server_key)
        assert view.returncode == 0 and shot.stat().st_size > 10_000, view.stderr[-2000:]
        refused = odc("cmd", "pause", "--cmd", cmd, "--key", str(keys / "wall.key_secret"),
                      "--server-key", server_key)
        assert refused.returncode == 1
        assert "needs role 'operator'; key 'wall' has 'viewer'" in refused.stdout

        # Ana, an engineer, injects a fault: two steps.
        fault = odc("cmd", "inject_fault", "sat=0", "kind=radiator", "health_frac=0.5", "--yes",
                    "--cmd", cmd, "--key", str(keys / "ana.key_secret"), "--server-key",
                    server_key)
        assert fault.returncode == 0, fault.stdout + fault.stderr

        # The bench's bridge feeds its testbed; a key for another testbed cannot.
        port = free_udp_port()
        with odc_process("bridge", "--udp", f"127.0.0.1:{port}", "--ingest", ingest, "--quiet",
                         "--key", str(keys / "bench.key_secret"), "--server-key", server_key), \
                odc_process("testbed", "--udp", f"127.0.0.1:{port}", "--rate", "20", "--quiet"):
            deadline = time.monotonic() + 30
            while not ask(cmd, keys, "ana", {"cmd": "mirror_status"})["bindings"][0]["live"]:
                assert time.monotonic() < deadline, "the bench never went live"
                time.sleep(0.2)
        rogue = zmq.Context.instance().socket(zmq.PUSH)
        rogue.setsockopt(zmq.LINGER, 1000)
        connect_curve(rogue, keys / "rogue.key_secret", server_key_paths(keys)[0])
        rogue.connect(ingest)
        rogue.send_multipart(encode_telemetry(1, "flatsat", "thermal", np.array([time.time()]),
                                              {"cold_plate_temp_c": np.array([90.0])}))
        rogue.close()
        deadline = time.monotonic() + 10
        while True:
            counters = ask(cmd, keys, "ana", {"cmd": "mirror_status"})["counters"]
            if counters["messages_dropped"]["not_authorized"] == 1:
                break
            assert time.monotonic() < deadline, counters
            time.sleep(0.2)

    # The audit shows all of it, key by key.
    entries = [json.loads(line) for line in audit.read_text().splitlines()]
    seen = {(e["key"], e["cmd"], e["outcome"]) for e in entries}
    assert {("ben", "pause", "ok"), ("ben", "resume", "ok"), ("wall", "pause", "rejected"),
            ("ana", "inject_fault", "confirm_required"),
            ("ana", "inject_fault", "confirmed")} <= seen, seen
    shown = odc("audit", str(audit), "--who", "ana")
    assert shown.returncode == 0 and "inject_fault" in shown.stdout and "ben" not in shown.stdout

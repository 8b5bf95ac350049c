"""Keys, roles, two-step hazardous commands and the audit: real CURVE sockets on loopback.

Every receive has a timeout. A twin runs in a thread (or its own process where it is killed)
with a key folder made by twin.security.keys, as `odc keys new` makes it.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq
from procutil import ROOT, twin_process
from twinutil import running_twin

from twin.models.registry import command_catalog
from twin.protocol.codec import pack, unpack
from twin.protocol.commands import CommandSpec
from twin.protocol.telemetry import encode_telemetry
from twin.runtime.confirm import Confirmations
from twin.security.auth import connect_curve
from twin.security.keys import new_key, revoke_key, server_key_paths
from twin.security.roles import RANKED_ROLES, grants

TIMEOUT_MS = 3000
DEFAULT_TOML = (ROOT / "assets" / "scenarios" / "default.toml").read_text()
TWO_TESTBEDS = DEFAULT_TOML + """
[mirror]
lost_after_s = 30.0
max_sample_age_s = 30.0

[[mirror.testbed]]
name = "bench-a"
node = 0
states = { cold_plate_temp_c = "temp_compute_k" }

[[mirror.testbed]]
name = "bench-b"
node = 1
states = { cold_plate_temp_c = "temp_compute_k" }
"""


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A key folder: one key per ranked role, two testbeds and a spare operator."""
    folder = tmp_path_factory.mktemp("keys")
    for role in RANKED_ROLES:
        new_key(folder, role, [role])
    new_key(folder, "bench-a", ["testbed:bench-a"])
    new_key(folder, "bench-b", ["testbed:bench-b"])
    return folder


@contextmanager
def client(kind: int, address: str, folder: Path | None, name: str | None) -> Iterator[zmq.Socket]:
    """A socket with a receive timeout; CURVE with key ``name`` when given."""
    sock = zmq.Context.instance().socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    # A socket whose handshake was refused has no peer: a send waits for one for ever.
    sock.rcvtimeo = sock.sndtimeo = TIMEOUT_MS
    if name is not None and folder is not None:
        connect_curve(sock, folder / f"{name}.key_secret", server_key_paths(folder)[0])
    sock.connect(address)
    try:
        yield sock
    finally:
        sock.close(linger=0)


def ask(sock: zmq.Socket, request: dict[str, Any]) -> dict[str, Any]:
    sock.send(pack(request))
    return unpack(sock.recv())


def test_key_files_and_registry(keys: Path) -> None:
    secret = keys / "operator.key_secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert 'roles = ["operator"]' in (keys / "registry.toml").read_text()
    assert server_key_paths(keys)[1].exists()


def test_unregistered_keys_and_plain_clients_are_refused_at_the_handshake(
        keys: Path, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger"
    new_key(stranger, "mallory", ["admin"])  # a real key, of another folder
    with running_twin("default", keys_dir=keys) as twin:
        guard = twin.server.guard
        with client(zmq.DEALER, twin.addresses.command, None, None) as plain, \
                zmq.Context.instance().socket(zmq.DEALER) as foreign:
            foreign.setsockopt(zmq.LINGER, 0)
            foreign.rcvtimeo = foreign.sndtimeo = 1500
            connect_curve(foreign, stranger / "mallory.key_secret", server_key_paths(keys)[0])
            foreign.connect(twin.addresses.command)
            plain.rcvtimeo = plain.sndtimeo = 1500
            before = twin.server.counters.commands_rejected + twin.server.counters.commands_ok
            for sock in (plain, foreign):
                # Refused at the handshake: the send finds no peer, or no reply comes.
                with pytest.raises(zmq.Again):
                    sock.send(pack({"cmd": "status"}))
                    sock.recv()
            # Nothing of theirs reached the twin; both refusals are counted.
            assert (twin.server.counters.commands_rejected
                    + twin.server.counters.commands_ok) == before
            assert guard.authenticator is not None and guard.authenticator.refused >= 1
            deadline = time.monotonic() + 5
            while guard.handshakes_failed < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert guard.handshakes_failed >= 2
        with client(zmq.REQ, twin.addresses.command, keys, "viewer") as viewer:
            status = ask(viewer, {"cmd": "status"})
            assert status["ok"] and status["counters"]["keys_refused"] >= 1


def minimal_request(spec: CommandSpec) -> dict[str, Any]:
    """A request with every required argument, of a valid type (from the catalog alone)."""
    samples = {"number": 1.0, "integer": 1, "bool": False, "sat": 0, "token": "t"}
    request: dict[str, Any] = {"cmd": spec.name}
    for arg in spec.args:
        if arg.required:
            value = arg.choices[0] if arg.type == "choice" else samples[arg.type]
            if arg.type in ("number", "integer") and arg.min is not None:
                value = type(value)(arg.min)
            request[arg.name] = value
    return request


def test_every_role_against_every_command_from_the_catalog(keys: Path) -> None:
    catalog = command_catalog()
    assert len(catalog) >= 20  # the whole catalog: a new command is in the matrix at once
    with running_twin("default", keys_dir=keys, paused=True) as twin:
        for role in RANKED_ROLES:
            with client(zmq.REQ, twin.addresses.command, keys, role) as sock:
                for name, spec in sorted(catalog.items()):
                    if name == "reload_keys":
                        continue  # its own test: it resets every connection
                    reply = ask(sock, minimal_request(spec))
                    refused = f"needs role '{spec.role}'" in reply.get("error", "")
                    assert refused != grants((role,), spec.role), (role, name, reply)
                    if refused:
                        assert f"key '{role}' has '{role}'" in reply["error"]
        # A testbed key is no role for commands at all.
        with client(zmq.REQ, twin.addresses.command, keys, "bench-a") as sock:
            reply = ask(sock, {"cmd": "status"})
            assert "needs role 'viewer'; key 'bench-a' has 'none'" in reply["error"]


def tm(testbed: str, t_utc: float, value_c: float) -> list[Any]:
    return encode_telemetry(1, testbed, "thermal", np.array([t_utc]),
                            {"cold_plate_temp_c": np.array([value_c])})


def test_a_testbed_key_feeds_its_own_testbed_only(keys: Path) -> None:
    with running_twin(TWO_TESTBEDS, keys_dir=keys) as twin:
        mirror = twin.engine.mirror
        with client(zmq.PUSH, twin.addresses.ingest, keys, "bench-a") as push:
            push.send_multipart(tm("bench-b", time.time(), 30.0))
            push.send_multipart(tm("bench-a", time.time(), 31.0))
            deadline = time.monotonic() + 5
            while mirror.counters["messages"] < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
        assert mirror.counters["messages_dropped"]["not_authorized"] == 1
        assert mirror.counters["messages_applied"] == 1
        assert mirror.telemetry.live[0].measured and not mirror.telemetry.live[1].measured


def test_a_revoked_key_loses_access_at_reload(keys: Path, tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    new_key(folder, "alice", ["operator"])
    new_key(folder, "root", ["admin"])
    with running_twin("default", keys_dir=folder) as twin:
        with client(zmq.DEALER, twin.addresses.command, folder, "alice") as alice, \
                client(zmq.REQ, twin.addresses.command, folder, "root") as admin:
            alice.send_multipart([b"", pack({"cmd": "pause"})])
            assert unpack(alice.recv_multipart()[-1])["ok"]
            revoke_key(folder, "alice")
            reply = ask(admin, {"cmd": "reload_keys"})
            assert reply["ok"] and reply["connections_reset"] is True
            time.sleep(0.5)  # every socket is bound anew; alice's reconnect is refused
            alice.rcvtimeo = alice.sndtimeo = 2000
            with pytest.raises(zmq.Again):  # no peer to send to, or no reply
                alice.send_multipart([b"", pack({"cmd": "resume"})])
                alice.recv_multipart()
        assert twin.server.clock.paused  # her resume never ran
        with client(zmq.REQ, twin.addresses.command, folder, "root") as admin:
            assert ask(admin, {"cmd": "status"})["counters"]["keys_refused"] >= 1


def test_hazardous_commands_take_two_steps_from_the_same_key(keys: Path) -> None:
    with running_twin("default", keys_dir=keys, paused=True) as twin:
        twin.server.dispatcher.confirmations = Confirmations(window_s=0.5)
        health = twin.engine.faults.radiator.array
        fault = {"cmd": "inject_fault", "sat": 2, "kind": "radiator", "health_frac": 0.3}
        with client(zmq.REQ, twin.addresses.command, keys, "engineer") as eng, \
                client(zmq.REQ, twin.addresses.command, keys, "admin") as other:
            held = ask(eng, fault)
            assert held["ok"] is False and held["confirm_required"] is True
            assert "on " in held["summary"] and "(sat 2)" in held["summary"]
            assert health[2] == 1.0  # nothing changed
            for token, sock in (("not-a-token", eng), (held["token"], other)):
                reply = ask(sock, {"cmd": "confirm", "token": token})
                assert reply["ok"] is False and health[2] == 1.0, reply
            assert "another client" in ask(other, {"cmd": "confirm",
                                                    "token": held["token"]})["error"]
            done = ask(eng, {"cmd": "confirm", "token": held["token"]})
            assert done["ok"] and health[2] == pytest.approx(0.3)
            replay = ask(eng, {"cmd": "confirm", "token": held["token"]})
            assert replay["ok"] is False and "no hazardous command waits" in replay["error"]
            late = ask(eng, {**fault, "sat": 3})
            time.sleep(0.8)
            expired = ask(eng, {"cmd": "confirm", "token": late["token"]})
            assert expired["ok"] is False and health[3] == 1.0
            # Every node at once: an operational command that needs confirming then.
            cap = ask(eng, {"cmd": "set_power_cap", "sat": "all", "power_w": 100.0})
            assert cap["confirm_required"] and "on every node" in cap["summary"]


def test_a_bind_beyond_loopback_without_keys_exits_with_how_to_make_keys() -> None:
    proc = subprocess.run([sys.executable, "-m", "twin", "--quiet", "--pub",
                           "tcp://0.0.0.0:*"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert "cannot bind tcp://0.0.0.0:*" in proc.stderr and "odc keys new" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_audit_has_one_line_per_command_and_survives_sigkill(keys: Path,
                                                                  tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    sent = []
    with twin_process("--scenario", "default", "--keys", str(keys), "--audit", str(audit),
                      pub="tcp://0.0.0.0:*", cmd="tcp://0.0.0.0:*",
                      ingest="tcp://0.0.0.0:*") as (proc, addresses):
        command = addresses["commands"].replace("0.0.0.0", "127.0.0.1")
        with client(zmq.REQ, command, keys, "operator") as op, \
                client(zmq.REQ, command, keys, "viewer") as viewer:
            for sock, who, request in ((op, "operator", {"cmd": "pause"}),
                                       (viewer, "viewer", {"cmd": "pause"}),
                                       (viewer, "viewer", {"cmd": "status"}),
                                       (op, "operator", {"cmd": "warp", "value": -1}),
                                       (op, "operator", {"cmd": "resume"})):
                ask(sock, request)
                sent.append((who, request["cmd"]))
        time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    lines = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [(e["key"], e["cmd"]) for e in lines] == sent
    assert [e["outcome"] for e in lines] == ["ok", "rejected", "ok", "rejected", "ok"]
    assert "needs role 'operator'" in lines[1]["error"]
    assert lines[0]["peer"] == "127.0.0.1" and lines[0]["sim_utc"] and lines[0]["wall_utc"]
    assert stat.S_IMODE(os.stat(audit).st_mode) == 0o600


def test_two_clients_sharing_a_key_hold_a_subscription_each(keys: Path) -> None:
    """Holders are connections, not keys: two dashboards with one key (on one host) each
    hold the subscription, and the first to let go leaves it running for the other."""
    with running_twin("default", keys_dir=keys, paused=True) as twin, \
            client(zmq.REQ, twin.addresses.command, keys, "viewer") as first, \
            client(zmq.REQ, twin.addresses.command, keys, "viewer") as second:
        asked = {"cmd": "subscribe", "fields": "lat_deg", "every": 5}
        sub = ask(first, asked)["sub"]
        assert ask(second, asked)["sub"] == sub
        (listed,) = ask(first, {"cmd": "subscriptions"})["subscriptions"]
        assert listed["holders"] == 2
        assert ask(first, {"cmd": "unsubscribe", "sub": sub}) == {
            "ok": True, "sub": sub, "ended": False, "holders": 1}
        assert ask(second, {"cmd": "unsubscribe", "sub": sub})["ended"] is True

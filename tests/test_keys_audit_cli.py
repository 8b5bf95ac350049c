"""`odc keys` and `odc audit` as a user runs them: real processes on real files."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import zmq.auth

ROOT = Path(__file__).resolve().parent.parent


def odc(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "odc.cli", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=60)


def test_keys_new_list_revoke_round_trip(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    made = odc("keys", "new", "alice", "--role", "operator", "--dir", str(folder))
    assert made.returncode == 0, made.stderr
    assert f"--key {folder}/alice.key_secret --server-key {folder}/server.key" in made.stdout
    assert "SIGHUP" in made.stdout and "reload_keys" in made.stdout
    bridge = odc("keys", "new", "lab", "--role", "testbed:flatsat", "--dir", str(folder))
    assert bridge.returncode == 0, bridge.stderr
    for name in ("server", "alice", "lab"):
        secret = folder / f"{name}.key_secret"
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600, f"{secret} readable by others"
        public, secret_key = zmq.auth.load_certificate(secret)
        assert secret_key and zmq.auth.load_certificate(folder / f"{name}.key")[0] == public
    registry = tomllib.loads((folder / "registry.toml").read_text())["keys"]
    assert registry["alice"]["roles"] == ["operator"]
    assert registry["lab"]["roles"] == ["testbed:flatsat"]
    assert registry["alice"]["public_key"] == \
        zmq.auth.load_certificate(folder / "alice.key")[0].decode()

    revoked = odc("keys", "revoke", "lab", "--dir", str(folder))
    assert revoked.returncode == 0, revoked.stderr
    assert "SIGHUP" in revoked.stdout and "reload_keys" in revoked.stdout
    listed = odc("keys", "list", "--dir", str(folder))
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line.split() for line in listed.stdout.splitlines()[1:]}
    assert rows["alice"][1] == "operator" and rows["alice"][-1] == "-"
    assert rows["lab"][1] == "testbed:flatsat" and rows["lab"][-1].startswith("20")
    assert "revoked_utc" in tomllib.loads((folder / "registry.toml").read_text())["keys"]["lab"]


def test_keys_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    folder = str(tmp_path / "keys")
    assert odc("keys", "new", "alice", "--dir", folder).returncode == 0
    cases = {
        ("keys", "new", "alice", "--dir", folder): "exists already",
        ("keys", "new", "server", "--dir", folder): "twin's own key pair",
        ("keys", "new", "../evil", "--dir", folder): "key name",
        ("keys", "revoke", "nobody", "--dir", folder): "no key named 'nobody'",
        ("keys", "list", "--dir", str(tmp_path / "none")): "no key folder",
        ("keys", "new", "bob", "--role", "boss", "--dir", folder): "unknown role 'boss'",
    }
    for args, expected in cases.items():
        result = odc(*args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert expected in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert len(odc("keys", "revoke", "x", "--dir", folder).stderr.splitlines()) == 1
    # A pair on disk the registry does not know is not overwritten.
    (tmp_path / "keys" / "carol.key_secret").write_text("not mine to overwrite")
    result = odc("keys", "new", "carol", "--dir", folder)
    assert result.returncode == 2 and "exists but 'carol' is not in" in result.stderr
    assert (tmp_path / "keys" / "carol.key_secret").read_text() == "not mine to overwrite"


def _entry(wall: datetime, key: str, cmd: str, outcome: str, error: str | None = None,
           **args: object) -> str:
    return json.dumps({"wall_utc": wall.isoformat().replace("+00:00", "Z"),
                       "sim_utc": "2025-03-01T00:00:00Z", "key": key, "peer": "127.0.0.1:41000",
                       "cmd": cmd, "args": args, "outcome": outcome, "error": error})


def test_audit_filters_a_real_file_with_a_cut_last_line(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    old, recent = now - timedelta(days=3), now - timedelta(minutes=5)
    lines = [
        _entry(old, "alice", "pause", "ok"),
        _entry(recent, "bob", "inject_fault", "confirm_required", sat=3, kind="radiator"),
        _entry(recent, "bob", "confirm", "confirmed", token="t1"),
        "[1, 2, 3]",
        _entry(recent, "alice", "warp", "rejected", "warp: value -5 is below 0.001", value=-5),
        _entry(recent, "bob", "inject_fault", "confirm_required", sat=4)[:57],  # a crash
    ]
    audit = tmp_path / "audit.jsonl"
    audit.write_text("\n".join(lines))

    table = odc("audit", str(audit))
    assert table.returncode == 0, table.stderr
    rows = table.stdout.splitlines()
    assert rows[0].split()[:3] == ["WALL", "UTC", "KEY"] and len(rows) == 1 + 4
    assert "confirm_required" in rows[2] and "sat=3" in rows[2] and "kind=\"radiator\"" in rows[2]
    assert "warp: value -5 is below 0.001" in rows[4]
    assert "skipped 2" in table.stderr and "line 4" in table.stderr and "line 6" in table.stderr

    def shown(*flags: str) -> list[dict]:
        result = odc("audit", str(audit), "--json", *flags)
        assert result.returncode == 0, result.stderr
        return [json.loads(line) for line in result.stdout.splitlines()]

    assert [e["cmd"] for e in shown("--since", "1h")] == ["inject_fault", "confirm", "warp"]
    assert [e["cmd"] for e in shown("--since", "4d")] == ["pause", "inject_fault", "confirm",
                                                          "warp"]
    iso = (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")  # no zone: UTC
    assert len(shown("--since", iso)) == 3
    assert [e["cmd"] for e in shown("--who", "alice")] == ["pause", "warp"]
    assert [e["key"] for e in shown("--cmd", "inject_fault")] == ["bob"]
    assert shown("--who", "bob", "--cmd", "warp") == []
    assert [e["cmd"] for e in shown("--outcome", "confirmed")] == ["confirm"]
    # --json prints the lines as they are in the file.
    assert odc("audit", str(audit), "--json", "--who", "alice").stdout.splitlines() == \
        [lines[0], lines[4]]

    bad = odc("audit", str(audit), "--since", "last tuesday")
    assert bad.returncode == 2 and "neither an ISO 8601 time" in bad.stderr
    missing = odc("audit", str(tmp_path / "nothing.jsonl"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    assert "Traceback" not in bad.stderr + missing.stderr

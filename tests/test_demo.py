"""`odc demo`: the headless run exits cleanly and leaves no process behind."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
ANY_PORT = "tcp://127.0.0.1:*"
DEMO = [sys.executable, "-m", "odc.cli", "demo", "--pub", ANY_PORT, "--cmd", ANY_PORT,
        "--ingest", ANY_PORT]


def _children_while_running(proc: subprocess.Popen, timeout_s: float = 60.0) -> list:
    """The demo's child processes, once the twin has started."""
    parent = psutil.Process(proc.pid)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        children = parent.children(recursive=True)
        if children:
            return children
        time.sleep(0.05)
    return []


def _assert_gone(processes: list, timeout_s: float = 5.0) -> None:
    _, alive = psutil.wait_procs(processes, timeout=timeout_s)
    assert not alive, f"left behind: {[p.pid for p in alive]}"


def test_headless_demo_runs_prints_a_summary_and_exits_cleanly() -> None:
    proc = subprocess.Popen([*DEMO, "--headless", "--duration", "3"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        children = _children_while_running(proc)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert children, "the demo started no twin"
    _assert_gone(children)
    assert "headless on scenario 'default', 40 nodes" in out
    states = int(out.split("stream")[1].split("states")[0])
    assert states >= 5, out
    assert re.search(r"\d+ missed, connection LIVE", out) and "fleet" in out, out


def test_sigterm_stops_the_demo_and_its_twin() -> None:
    proc = subprocess.Popen([*DEMO, "--headless", "--duration", "60"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        children = _children_while_running(proc)
        assert children, "the demo started no twin"
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0  # interrupted, and says so
    _assert_gone(children)


def test_a_bad_scenario_is_reported_and_nothing_is_left() -> None:
    result = subprocess.run([*DEMO, "--headless", "--scenario", "no_such_scenario"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "the twin did not start" in result.stderr and "no_such_scenario" in result.stderr

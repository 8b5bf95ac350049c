"""Silent drops: a bridge aimed at a twin that does not mirror its testbed says so.

Real processes and sockets on random loopback ports: `odc bridge --host-sensors` pushes to a
twin whose scenario has no ``[[mirror.testbed]] name = "host"``. The twin counts the samples
and raises ``mirror_unknown_testbed`` (rate-limited); the bridge reads the twin's counters
through ``mirror_status`` and warns, instead of reporting "pushed N samples" alone.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from tests.procutil import odc_process
from tests.twinutil import connected, receive, request, running_twin

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = (ROOT / "assets" / "testbeds" / "flatsat_mirror.toml").read_text()


def _events(sub: zmq.Socket, kind: str, seconds: float) -> list:
    found, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            message = receive(sub, None, timeout_s=deadline - time.monotonic())
        except (TimeoutError, zmq.Again):
            break
        if message.topic == "event" and message.header["kind"] == kind:
            found.append(message.header)
    return found


@pytest.mark.timeout(90)
def test_bridge_warns_when_the_twin_drops_its_testbed() -> None:
    with running_twin(SCENARIO, rate_hz=20.0, warp=1.0) as twin, \
            connected(zmq.SUB, twin.addresses.pub, SUBSCRIBE=b"") as sub, \
            connected(zmq.REQ, twin.addresses.command) as cmd:
        with odc_process("bridge", "--host-sensors", "--period", "0.1", "--duration", "5",
                         "--ingest", twin.addresses.ingest, "--command",
                         twin.addresses.command, "--quiet") as bridge:
            events = _events(sub, "mirror_unknown_testbed", 6.0)
            bridge.wait(20)
            stderr = bridge.stderr.read().decode()
        assert bridge.returncode == 0, stderr
        # The bridge learnt it from the twin's counters, and said so.
        assert "WARNING: the twin has no [[mirror.testbed]] named 'host'" in stderr, stderr
        assert "it mirrors: flatsat" in stderr
        assert "the twin dropped them all" in stderr.splitlines()[-1], stderr
        # The twin: one event at once, then at most one every 10 s, each with its counts.
        assert len(events) == 1, events
        assert events[0]["testbed"] == "host" and events[0]["samples"] >= 1
        assert "bound: flatsat" in events[0]["message"]
        status = request(cmd, {"cmd": "mirror_status"})
        unknown = status["unknown_testbed"]
        assert unknown["samples"] >= 10 and unknown["newest_testbed"] == "host"
        assert status["counters"]["messages_dropped"]["unknown_testbed"] == unknown["messages"]


@pytest.mark.timeout(90)
def test_bridge_says_which_node_mirrors_it() -> None:
    text = SCENARIO.replace('name = "flatsat"', 'name = "host"').replace(
        "drivers = { compute_power_w", "# drivers = { compute_power_w").replace(
        "states = {", "# states = {").replace("thresholds = {", "# thresholds = {").replace(
        "# thresholds = {", 'drivers = { cpu_util_frac = "utilization_frac" }\n# thresholds = {')
    with running_twin(text, rate_hz=20.0, warp=1.0) as twin, \
            odc_process("bridge", "--host-sensors", "--period", "0.1", "--duration", "3",
                        "--ingest", twin.addresses.ingest, "--command",
                        twin.addresses.command, "--quiet") as bridge:
        bridge.wait(20)
        stderr = bridge.stderr.read().decode()
        assert "the twin mirrors testbed 'host' on node 0" in stderr, stderr
        assert "WARNING" not in stderr
        assert np.isfinite(twin.engine.mirror.live[0].last_applied_wall)

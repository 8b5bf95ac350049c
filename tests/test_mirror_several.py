"""Several testbeds at once, each mirrored on its own node.

End to end with real processes on random loopback ports: two `odc testbed` stand-ins at
different utilizations, two `odc bridge`s sending them under two testbed names, one twin
whose scenario binds each name to its own node. Each node is driven by its own testbed's
measured power (P = 40 W + u (300 W - 40 W), bridge.testbed defaults), never the other's.
Then the dashboard lists both mirrored nodes with their health.
"""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tuiutil

from tests.procutil import odc_process
from tests.twinutil import connected, receive, running_twin
from twin.core.clock import SimClock
from twin.core.engine import Engine
from twin.protocol.telemetry import encode_telemetry
from twin.scenario import ScenarioError, parse_scenario
from viz.stream import LIVE
from viz.tui.app import DashboardApp, StreamUpdate

ROOT = Path(__file__).resolve().parent.parent
SHOTS = Path("/tmp/shots/calib")
BASE = (ROOT / "assets" / "testbeds" / "flatsat_mirror.toml").read_text()
SECOND = """
[[mirror.testbed]]
name = "flatsat-b"
node = "dawn-dusk-01-09"
drivers = { compute_power_w = "compute_power_w", util_frac = "utilization_frac" }
states = { cold_plate_temp_c = "temp_compute_k", radiator_temp_c = "temp_radiator_k" }
"""
TWO = BASE.replace('name = "flatsat" ', 'name = "flatsat-a"') + SECOND
UTIL = {"flatsat-a": 0.2, "flatsat-b": 0.8}
one_centiwatt = 0.01


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_bindings_on_one_node_are_refused() -> None:
    same = TWO.replace('node = "dawn-dusk-01-09"', 'node = "dawn-dusk-01-01"')
    scenario = parse_scenario(same, source="two.toml")
    with pytest.raises(ScenarioError, match=r"two.toml: mirror.testbed\[1\].node: .*already "
                       "mirrors testbed 'flatsat-a'"):
        Engine(scenario, SimClock(scenario.epoch_utc, rate_hz=1.0, warp=1.0, fast=True))


@pytest.mark.timeout(120)
def test_two_testbeds_mirror_two_nodes() -> None:
    ports = {name: _free_udp_port() for name in UTIL}
    with running_twin(TWO, rate_hz=20.0, warp=1.0) as twin, \
            connected(zmq.SUB, twin.addresses.pub, SUBSCRIBE=b"") as sub:
        processes = []
        for name, util in UTIL.items():
            processes.append(odc_process("testbed", "--udp", f"127.0.0.1:{ports[name]}",
                                         "--util", str(util), "--rate", "20", "--no-noise",
                                         "--quiet"))
            processes.append(odc_process("bridge", "--udp", f"127.0.0.1:{ports[name]}",
                                         "--testbed", name, "--ingest", twin.addresses.ingest,
                                         "--command", twin.addresses.command, "--quiet"))
        started = [p.__enter__() for p in processes]
        try:
            deadline = time.monotonic() + 40
            arrays = None
            while time.monotonic() < deadline:
                message = receive(sub, "state", timeout_s=deadline - time.monotonic())
                if message.arrays["mirror_live"].all():
                    arrays = message.arrays
                    break
            assert arrays is not None, "both mirrors never live together"
        finally:
            for proc, context in zip(started, processes, strict=True):
                context.__exit__(None, None, None)
                del proc
        sats = {b.name: s for b, s in zip(twin.engine.mirror.bindings,
                                          arrays["mirror_sat"], strict=True)}
        assert sats == {"flatsat-a": 0, "flatsat-b": 8}
        for j, (name, util) in enumerate(UTIL.items()):
            power = 40.0 + util * 260.0
            assert float(arrays["mirror_measured_compute_power_w"][j]) == pytest.approx(
                power, abs=one_centiwatt)
            assert float(arrays["compute_power_w"][sats[name]]) == pytest.approx(power, abs=1e-3)
            assert float(arrays["utilization_frac"][sats[name]]) == pytest.approx(util)
        status = twin.engine.mirror.status()
        assert [b["applied"] > 0 for b in status["bindings"]] == [True, True]
        assert set(status["bridges"]) == set(UTIL)


# -- the dashboard lists every mirrored node -----------------------------------------------


class TwoTestbedFeed(tuiutil.TwinFeed):
    """tuiutil's deterministic feed with two bindings: ``flatsat`` on node 5 (live, its
    states 15 K and -7 K off the model: past its threshold) and ``lab-b`` on node 9, quiet
    after step 5 (lost 3 s of wall time later)."""

    def __init__(self) -> None:
        section = tuiutil.MIRROR_SECTION
        binding = section.split("[[mirror.testbed]]")[1].replace('"flatsat"', '"lab-b"')
        binding = binding.replace(f"node = {tuiutil.MIRROR_SAT}", "node = 9")
        super().__init__(mirror=True, mirror_section=f"{section}\n[[mirror.testbed]]{binding}")

    def _push_telemetry(self, k: int) -> None:
        super()._push_telemetry(k)
        if k < 5:
            t = np.array([self.wall_s])
            frames = encode_telemetry(k, "lab-b", "hk", t, {
                "compute_power_w": np.array([90.0]), "util_frac": np.array([0.2]),
                "cold_plate_temp_c": np.array([30.0]), "radiator_temp_c": np.array([5.0])},
                sent_utc=self.wall_s, seq_count=np.array([k]))
            self.engine.ingest_handler([bytes(f) for f in frames])


def test_dashboard_lists_every_mirrored_node() -> None:
    import asyncio

    feed = TwoTestbedFeed()

    async def run() -> str:
        app = DashboardApp("tcp://127.0.0.1:1", "tcp://127.0.0.1:1", connect=False)
        async with app.run_test(size=(150, 40)) as pilot:
            app.feed(StreamUpdate(meta=feed.meta(), connection=LIVE))
            for step in range(61):
                app.feed(StreamUpdate(state=feed.state(step), events=feed.events(step, step),
                                      connection=LIVE))
            await tuiutil.drawn(pilot, app)  # the panel comes with the next draw
            panel = app.query_one("#mirrors")
            assert panel.display
            SHOTS.mkdir(parents=True, exist_ok=True)
            app.save_screenshot("mirrors_main.svg", str(SHOTS))
            return str(panel.render())

    text = asyncio.run(run())
    lines = text.splitlines()
    assert len(lines) == 4, text  # two per mirrored node
    assert feed.name(tuiutil.MIRROR_SAT) in lines[0] and "flatsat" in lines[0]
    assert " LIVE " in lines[0] and "+15.00 K > ±10.00 K" in lines[1]
    assert feed.name(9) in lines[2] and "lab-b" in lines[2]
    assert " LOST " in lines[2] and "runs on the model (lost)" in lines[3]


def test_no_mirror_no_panel() -> None:
    import asyncio

    async def run() -> bool:
        app = DashboardApp("tcp://127.0.0.1:1", "tcp://127.0.0.1:1", connect=False)
        async with app.run_test(size=(130, 40)) as pilot:
            app.feed(StreamUpdate(meta=tuiutil.meta(), connection=LIVE))
            app.feed(StreamUpdate(state=tuiutil.state(1), connection=LIVE))
            await tuiutil.drawn(pilot, app)  # hidden after the draw, not only before it
            return bool(app.query_one("#mirrors").display)

    assert asyncio.run(run()) is False

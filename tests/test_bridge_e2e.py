"""End to end: `odc testbed` -> UDP -> `odc bridge` -> twin ingest -> mirror -> subscriber.

Real processes, real sockets. The testbed runs at a fixed utilization so the measured
compute power is known: P = 40 W + 0.5 (300 W - 40 W) = 170 W (bridge.testbed defaults).
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from tests.procutil import odc_process
from tests.twinutil import connected, request, running_twin, wait_event, wait_state

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = (ROOT / "assets" / "testbeds" / "flatsat_mirror.toml").read_text()
SCENARIO = SCENARIO.replace("lost_after_s = 3.0", "lost_after_s = 1.0")
EXPECTED_POWER_W = 170.0
one_centiwatt = 0.01  # the packet's resolution for compute_power_w


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]




@pytest.mark.timeout(90)
def test_testbed_bridge_twin_subscriber() -> None:
    port = _free_udp_port()
    testbed_args = ("testbed", "--udp", f"127.0.0.1:{port}", "--util", "0.5", "--no-noise",
                    "--rate", "20", "--quiet")
    with running_twin(SCENARIO, rate_hz=20.0, warp=1.0) as twin, \
            connected(zmq.SUB, twin.addresses.pub, SUBSCRIBE=b"") as sub, \
            connected(zmq.REQ, twin.addresses.command) as cmd, \
            odc_process("bridge", "--udp", f"127.0.0.1:{port}", "--ingest",
                        twin.addresses.ingest, "--quiet"):
        with odc_process(*testbed_args):
            live = wait_state(sub, lambda a: bool(a["mirror_live"][0]))
            arrays = live.arrays
            sat = int(arrays["mirror_sat"][0])
            assert sat == 0
            measured = float(arrays["mirror_measured_compute_power_w"][0])
            assert measured == pytest.approx(EXPECTED_POWER_W, abs=one_centiwatt)
            # The driver replaced the model's input: compute's own field shows it too.
            assert float(arrays["compute_power_w"][sat]) == pytest.approx(measured, abs=1e-3)
            assert float(arrays["mirror_measured_utilization_frac"][0]) == pytest.approx(0.5)
            # ... and so did the measured utilization, with what follows from it.
            assert float(arrays["utilization_frac"][sat]) == pytest.approx(0.5)
            assert int(arrays["accelerators_busy"][sat]) == 4
            assert float(arrays["delivered_flop_s"][sat]) == pytest.approx(
                4 * float(arrays["clock_frac"][sat]) * 989e12, rel=1e-6)
            for q in ("temp_compute_k", "temp_radiator_k"):
                m = float(arrays[f"mirror_measured_{q}"][0])
                p = float(arrays[f"mirror_predicted_{q}"][0])
                r = float(arrays[f"mirror_residual_{q}"][0])
                assert 150.0 < m < 450.0
                if q not in arrays:  # no thermal model registered: nothing to predict
                    assert np.isnan(p) and np.isnan(r)
                    continue
                assert r == pytest.approx(m - p, abs=1e-3)
                assert p == pytest.approx(float(arrays[q][sat]), abs=1e-3)
            assert live.header["fleet"]["mirror_live_n"] == 1.0
        # Testbed stopped: the mirror is lost and the node falls back to the model.
        wait_event(sub, "mirror_lost")
        lost = wait_state(sub, lambda a: not bool(a["mirror_live"][0]))
        assert np.isnan(lost.arrays["mirror_residual_temp_compute_k"][0])
        model = lost.arrays  # the model's occupancy again: a busy count over 8 accelerators
        assert float(model["utilization_frac"][sat]) == int(model["accelerators_busy"][sat]) / 8
        status = request(cmd, {"cmd": "mirror_status"})
        assert status["ok"] and status["bindings"][0]["lost_count"] == 1
        counters = status["counters"]
        assert counters["samples_applied"] > 0
        assert counters["samples_received"] == (counters["samples_applied"]
                                                + counters["samples_ignored"]
                                                + sum(counters["samples_dropped"].values()))
        bridge = status["bridges"]["flatsat"]
        assert bridge["decoder"]["accepted"] > 0 and bridge["decoder"]["rejected_total"] == 0
        # Telemetry returns (a restarted testbed, its sequence counts from 0 again).
        with odc_process(*testbed_args):
            wait_event(sub, "mirror_regained")
            wait_state(sub, lambda a: bool(a["mirror_live"][0]))
        assert request(cmd, {"cmd": "status"})["counters"]["ingest_messages"] > 0


def test_mirror_status_without_mirror_config() -> None:
    with running_twin("default", rate_hz=20.0) as twin, \
            connected(zmq.REQ, twin.addresses.command) as cmd:
        reply = request(cmd, {"cmd": "mirror_status"})
        assert reply["ok"] and reply["bindings"] == []
        assert request(cmd, {"cmd": "mirror_status", "x": 1})["ok"] is False


# -- the mirror's ingest judgement, without sockets ----------------------------------------


def _mirror(now: dict[str, float]):
    from twin.models.mirror import Mirror
    from twin.scenario import parse_scenario

    return Mirror(parse_scenario(SCENARIO), wall_clock=lambda: now["t"])


def _tm(t: list[float], power: list[float], seq: int = 0, testbed: str = "flatsat",
        counts: list[int] | None = None) -> list:
    from twin.protocol.telemetry import encode_telemetry

    return encode_telemetry(seq, testbed, "hk", np.array(t), {"compute_power_w": np.array(power)},
                            seq_count=None if counts is None else np.array(counts))


def test_mirror_drops_late_out_of_order_duplicate_and_counts() -> None:
    now = {"t": 2.0e9}
    mirror = _mirror(now)
    t0 = now["t"] - 1.0
    mirror.ingest(_tm([t0, t0 + 0.1, t0 + 0.1, t0 + 0.05, t0 + 0.2], [1, 2, 3, 4, 5]))
    mirror.ingest(_tm([t0 - 100.0, t0 + 60.0, float("nan")], [6, 7, 8]))  # late, future, NaN
    mirror.ingest(_tm([t0 + 0.3, t0 + 0.3, t0 + 0.3], [9, 10, 11], counts=[5, 6, 6]))
    mirror.ingest([b"tm", b"\x93garbage"])
    mirror.ingest(_tm([t0 + 0.4], [12], testbed="nobody"))
    c = mirror.counters
    assert c["samples_dropped"] == {"late": 1, "future": 1, "out_of_order": 1, "duplicate": 2,
                                    "not_finite": 1, "out_of_bounds": 0}
    assert c["samples_applied"] == 3 + 2
    assert c["messages_dropped"] == {"bad_message": 1, "unknown_testbed": 1,
                                     "not_authorized": 0, "too_many_packets": 0}
    assert (c["messages_applied"], c["messages_ignored"]) == (2, 1)
    assert c["samples_received"] == (c["samples_applied"] + c["samples_ignored"]
                                     + sum(c["samples_dropped"].values()))
    assert mirror.live[0].measured["compute_power_w"] == 10.0  # the newest applied sample


def test_host_sensors_with_an_absent_gpu_mocked() -> None:
    from bridge.sources import HostSensors

    class FakeNvml:  # stands in for the NVIDIA GPU this machine does not have
        NVML_TEMPERATURE_GPU = 0

        def nvmlInit(self) -> None: ...
        def nvmlDeviceGetCount(self) -> int: return 2
        def nvmlDeviceGetHandleByIndex(self, i: int) -> int: return i
        def nvmlDeviceGetPowerUsage(self, h: int) -> int: return 250_000 + 1000 * h  # mW
        def nvmlDeviceGetTemperature(self, h: int, kind: int) -> int: return 60 + h

        def nvmlDeviceGetUtilizationRates(self, h: int):
            return type("Rates", (), {"gpu": 50 + 10 * h})()

    host = HostSensors(nvml=FakeNvml())
    sample = host.sample()
    assert 0.0 <= sample["cpu_util_frac"] <= 1.0 and 0.0 < sample["mem_used_frac"] < 1.0
    assert sample["load_1m"] >= 0.0
    assert sample["gpu_power_w"] == pytest.approx(501.0)
    assert sample["gpu_util_frac"] == pytest.approx(0.55)
    assert sample["gpu_temp_k"] == pytest.approx(61 + 273.15)


def test_record_and_replay_scaled(tmp_path: Path) -> None:
    from bridge.ccsds import Decoder
    from bridge.definitions import load_definitions
    from bridge.sources import Recorder, ReplaySource
    from bridge.testbed import Testbed

    recorder = Recorder(tmp_path / "s.odcrec")
    clock = {"t": 1.8e9}
    testbed = Testbed(lambda data: recorder.write(data, clock["t"]), utilization=lambda: 0.25)
    for _ in range(20):
        testbed.tick(clock["t"])
        clock["t"] += 0.1
    recorder.close()
    replay = ReplaySource(tmp_path / "s.odcrec", speed=4.0)  # 2 s of session in 0.5 s
    started = time.monotonic()
    records = []
    while not replay.finished and time.monotonic() - started < 5.0:
        records += replay.read(0.2)
    elapsed = time.monotonic() - started
    assert len(records) == testbed.sent and 0.4 < elapsed < 1.5
    dec = Decoder(load_definitions("flatsat"))
    batches = dec.decode_datagrams([r[1] for r in records])
    hk = next(b for b in batches if b.packet.name == "hk")
    assert len(hk) == 20 and np.allclose(hk.values["util_frac"], 0.25)
    # Re-timed onto the present: spacing shrinks by the speed factor.
    assert np.diff(replay.retime(hk.t_utc)) == pytest.approx(0.1 / 4.0, abs=1e-3)


# -- measured drivers reach the node's published compute fields ------------------------------


def _mirrored_engine(scenario_text: str, now: dict[str, float]):
    from twin.core.clock import SimClock
    from twin.core.engine import Engine
    from twin.scenario import parse_scenario

    scenario = parse_scenario(scenario_text)
    engine = Engine(scenario, SimClock(scenario.epoch_utc, rate_hz=10.0, warp=1.0, fast=True))
    engine.mirror.wall_clock = lambda: now["t"]
    return engine


def _flatsat_tm(now_s: float, util: float, power_w: float | None = None) -> list:
    from twin.protocol.telemetry import encode_telemetry

    values = {"util_frac": np.array([util])}
    if power_w is not None:
        values["compute_power_w"] = np.array([power_w])
    return encode_telemetry(0, "flatsat", "hk", np.array([now_s - 0.05]), values)


def _field(engine, name: str) -> np.ndarray:
    return next(f.array for f in engine.fields if f.spec.name == name)


def _model_utilization(engine, sat: int) -> float:
    jobs = engine.compute_model.jobs
    run = jobs.running()
    busy = np.bincount(jobs.node[run], jobs.accels[run], minlength=engine.n_sats)[sat]
    return busy / engine.compute_model.params.accelerators_per_node


def test_measured_utilization_drives_the_nodes_compute_fields() -> None:
    """Measured utilization and power replace the model's on the node, then fall back."""
    now = {"t": time.time()}
    engine = _mirrored_engine(SCENARIO, now)
    cm = engine.compute_model
    sat = engine.mirror.live[0].sat
    for _ in range(3):
        engine.step()
    model_util = _model_utilization(engine, sat)
    assert model_util == 1.0  # the run opens with a backlog: the model's node is full
    engine.mirror.ingest(_flatsat_tm(now["t"], util=0.5, power_w=EXPECTED_POWER_W))
    engine.step()
    assert bool(_field(engine, "mirror_live")[0])
    assert float(cm.utilization.array[sat]) == 0.5
    assert int(cm.busy.array[sat]) == 4
    clock = float(cm.clock.array[sat])
    assert float(cm.delivered.array[sat]) == pytest.approx(4 * clock * cm.params.peak_flop_s,
                                                           rel=1e-6)
    assert float(cm.power.array[sat]) == pytest.approx(EXPECTED_POWER_W, abs=1e-3)
    assert engine.quantity("compute_power_w")[sat] == cm.power.array[sat]  # power reads it
    fleet = engine.header()["fleet"]
    assert fleet["delivered_pflop_s"] == pytest.approx(
        cm.delivered.array.sum(dtype=np.float64) / 1e15, rel=1e-9)
    # Telemetry stops: after lost_after_s the node's fields are the model's again.
    now["t"] += 1.5
    engine.step()
    assert not bool(_field(engine, "mirror_live")[0])
    assert float(cm.utilization.array[sat]) == _model_utilization(engine, sat) == model_util
    assert int(cm.busy.array[sat]) == 8
    assert float(cm.power.array[sat]) > 1000.0  # 8 busy accelerators, not the flatsat's 170 W


def test_measured_utilization_alone_sets_the_nodes_power() -> None:
    """With only utilization measured, the node's power follows from it by the model.

    Hand check, 8 x H100-class defaults at full clock, 4 of 8 busy, with the 400 W host
    (50 W per accelerator) the node was sized for, and die limits out of reach (its fully
    busy hot case sits at them, and the throttle would trim the clock):
    P = 400 W host + 4 x 700 W + 4 x 15 W asleep = 3,260 W; 4 x 989 TFLOP/s delivered.
    """
    text = SCENARIO.replace('compute_power_w = "compute_power_w", ', "")
    text += ("\n[compute]\nhost_power_per_accelerator_w = 50.0\nthrottle_temp_k = 373.15\n"
             "hbm_throttle_temp_k = 383.15\n")
    now = {"t": time.time()}
    engine = _mirrored_engine(text, now)
    cm = engine.compute_model
    sat = engine.mirror.live[0].sat
    engine.step()
    cm.operator_cap_w[:] = np.inf
    engine.mirror.ingest(_flatsat_tm(now["t"], util=0.5))
    engine.step()
    assert np.isinf(cm.cap.array[sat]) and not cm.thermal_on[sat]  # nothing slows the clock
    assert float(cm.utilization.array[sat]) == 0.5
    assert float(cm.clock.array[sat]) == 1.0
    assert float(cm.power.array[sat]) == pytest.approx(3260.0, abs=1e-3)
    assert float(cm.delivered.array[sat]) == pytest.approx(4 * 989e12, rel=1e-6)
    # A power cap in force lowers the clock of the measured load, and the power with it.
    engine.mirror.ingest(_flatsat_tm(now["t"] + 0.1, util=0.5))
    now["t"] += 0.1
    cm.operator_cap_w[sat] = 2000.0
    engine.step()
    assert float(cm.cap.array[sat]) == 2000.0
    assert float(cm.power.array[sat]) == pytest.approx(2000.0, rel=1e-6)
    assert 0.35 <= float(cm.clock.array[sat]) < 1.0 and int(cm.throttle.array[sat]) == 2

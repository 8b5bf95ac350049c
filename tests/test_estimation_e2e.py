"""End to end: `odc testbed --inject radiator@T/R` -> UDP -> `odc bridge` -> twin -> diagnosis.

Real processes, real sockets, the twin at warp 1 on the flatsat mirror scenario (its
``[estimation]`` table holds the stand-in's own parameters). The radiator loses 30 % of its
emission over 10 s from 3 s after the stand-in starts; the twin's estimator must name the
radiator. The ten-run statistics per fault are tests/test_estimation.py's, in-process.
"""

from __future__ import annotations

import math
import time

import pytest
import zmq

from tests.procutil import odc_process
from tests.test_bridge_e2e import SCENARIO, _free_udp_port
from tests.twinutil import connected, receive, running_twin, wait_state

ONSET_S, RAMP_S = 3.0, 10.0
DETECTION_S = 60.0  # from the onset, at 20 samples a second (observed ~28 s)


@pytest.mark.timeout(120)
def test_an_injected_radiator_fault_reaches_the_twin_as_a_radiator_diagnosis() -> None:
    port = _free_udp_port()
    with running_twin(SCENARIO, rate_hz=10.0, warp=1.0) as twin, \
            connected(zmq.SUB, twin.addresses.pub, SUBSCRIBE=b"") as sub, \
            odc_process("bridge", "--udp", f"127.0.0.1:{port}", "--ingest",
                        twin.addresses.ingest, "--quiet"), \
            odc_process("testbed", "--udp", f"127.0.0.1:{port}", "--util", "0.5",
                        "--rate", "20", "--seed", "5", "--quiet",
                        "--inject", f"radiator@{ONSET_S:g}/{RAMP_S:g}"):
        started = time.monotonic()
        arrays = wait_state(sub, lambda a: bool(a["mirror_live"][0])
                             and math.isfinite(a["mirror_estimate_temp_compute_k"][0])).arrays
        # Measurement, estimate with its sigma and the open loop, side by side.
        measured = float(arrays["mirror_measured_temp_compute_k"][0])
        estimate = float(arrays["mirror_estimate_temp_compute_k"][0])
        sigma = float(arrays["mirror_estimate_sigma_temp_compute_k"][0])
        assert 0.0 < sigma < 1.0 and abs(estimate - measured) < 1.0
        assert math.isfinite(arrays["mirror_open_loop_temp_radiator_k"][0])
        assert float(arrays["mirror_estimate_temp_junction_k"][0]) > estimate
        deadline = started + ONSET_S + DETECTION_S + 10.0
        diagnosis = None
        while time.monotonic() < deadline and diagnosis is None:
            message = receive(sub, None, timeout_s=max(0.1, deadline - time.monotonic()))
            if message.topic == "event" and message.header["kind"] == "diagnosis":
                diagnosis = message.header
        assert diagnosis is not None, "no diagnosis in time"
        assert diagnosis["cause"] == "radiator" and diagnosis["severity"] == "alarm"
        assert diagnosis["confidence"] >= 0.9 and "radiator" in diagnosis["evidence"]
        print(f"diagnosed {time.monotonic() - started - ONSET_S:.1f} s after the onset")
        assert time.monotonic() - started < ONSET_S + DETECTION_S + 5.0
        after = wait_state(sub, lambda a: int(a["mirror_diagnosis_code"][0]) != 0).arrays
        assert float(after["mirror_track_radiator_frac"][0]) < 0.97  # seen falling

"""Calibration recovers known thermal parameters from a synthetic recorded session.

The session is made by the flatsat's own model (bridge.testbed.FlatsatModel: explicit
Euler at 0.1 s, an integrator independent of the fit's), encoded as real CCSDS packets with
0.01 °C quantization, recorded to a file and fitted through ``odc calibrate``.
Tolerance: 3 % on each parameter, and a post-fit RMS below 0.05 K.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import numpy as np
import pytest

from bridge.calibrate import THERMAL_DEFAULTS, node_params, thermal_overrides, write_thermal
from bridge.ccsds import encode_packets
from bridge.definitions import load_definitions
from bridge.sources import Recorder
from bridge.testbed import STEFAN_BOLTZMANN_W_M2_K4, FlatsatModel, FlatsatParams
from odc.cli import main as odc_main
from twin.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent
PARAM_TOLERANCE = 0.03  # 3 % relative on C_c, C_r, G and k
RMS_AFTER_K = 0.05


def _record_session(path: Path, params: FlatsatParams) -> None:
    model = FlatsatModel(params)
    hk = load_definitions("flatsat").by_name("hk")
    dt, n = 0.5, 7200  # one hour at 2 Hz
    profile = np.repeat([0.1, 1.0, 0.3, 0.9, 0.0, 0.6], n // 6)  # utilization steps
    rec = {"util_frac": [], "compute_power_w": [], "cold_plate_temp_c": [],
           "radiator_temp_c": []}
    for u in profile:
        for _ in range(5):
            model.step(dt / 5, u)
        rec["util_frac"].append(u)
        rec["compute_power_w"].append(model.power_w)
        rec["cold_plate_temp_c"].append(model.temp_compute_k - 273.15)
        rec["radiator_temp_c"].append(model.temp_radiator_k - 273.15)
    rows = encode_packets(hk, {k: np.array(v) for k, v in rec.items()}, np.arange(n),
                          1.8e9 + dt * np.arange(n))
    recorder = Recorder(path)
    for i, row in enumerate(rows):
        recorder.write(row.tobytes(), 1.8e9 + dt * i)
    recorder.close()


def test_calibrate_recovers_known_parameters(tmp_path: Path, capsys) -> None:
    truth = FlatsatParams()
    recording = tmp_path / "session.odcrec"
    _record_session(recording, truth)
    out = tmp_path / "calibrated.toml"
    code = odc_main(["calibrate", str(recording), "--scenario",
                     str(ROOT / "assets/testbeds/flatsat_mirror.toml"),
                     "--sink-temp-k", str(truth.sink_temp_k), "--output", str(out)])
    report = capsys.readouterr().out
    assert code == 0, report
    thermal = tomllib.loads(out.read_text())["thermal"]
    fitted = node_params(thermal)
    # The flatsat radiates from one face: eps sigma A; the twin counts both faces.
    k_true = truth.radiator_emissivity * STEFAN_BOLTZMANN_W_M2_K4 * truth.radiator_area_m2
    expected = [truth.c_compute_j_k, truth.c_radiator_j_k, truth.g_compute_radiator_w_k, k_true]
    np.testing.assert_allclose(fitted, expected, rtol=PARAM_TOLERANCE)
    rms = [float(x.split()[0]) for x in report.split("before ")[1:2]]
    after = float(report.split("after ")[-1].split()[0])
    assert after < RMS_AFTER_K < rms[0]
    # The written file is still a valid scenario with the mirror binding.
    assert load_scenario(str(out)).sections["mirror"]["testbed"][0]["name"] == "flatsat"


def test_defaults_match_the_twin_thermal_model() -> None:
    from twin.models.thermal import ThermalParams

    defaults = {f.name: f.default for f in dataclasses.fields(ThermalParams)}
    for key, value in THERMAL_DEFAULTS.items():
        assert defaults[key] == value, key


def test_overrides_round_trip_and_scenario_text() -> None:
    params = np.array([1234.0, 5678.0, 42.0, 3.0e-8])
    values = thermal_overrides(params, {})
    np.testing.assert_allclose(node_params(values), params, rtol=1e-12)
    text = write_thermal("[scenario]\nname='x'\n\n[thermal]\nloop_ua_w_k = 1.0\n", values, "n")
    assert tomllib.loads(text)["thermal"]["loop_ua_w_k"] == pytest.approx(
        values["loop_ua_w_k"], rel=1e-5)
    with pytest.raises(ValueError, match="coolant flow"):
        thermal_overrides(np.array([1.0, 1.0, 1e6, 1e-8]), {})

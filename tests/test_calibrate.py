"""Calibration recovers known thermal parameters from a synthetic recorded session.

The session is made by the flatsat's own model (bridge.testbed.FlatsatModel: explicit
Euler at 0.1 s, an integrator independent of the fit's), encoded as real CCSDS packets with
0.01 °C quantization, recorded to a file and fitted through ``odc calibrate``.
Tolerance: 3 % on each parameter, and a post-fit RMS below 0.05 K. The fit is written for
the mirrored node only: the rest of the fleet runs as before.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import numpy as np
import pytest

from bridge.calibrate import (
    THERMAL_DEFAULTS,
    node_params,
    thermal_overrides,
    write_node_class,
)
from bridge.ccsds import encode_packets
from bridge.definitions import TESTBEDS_DIR, load_definitions, parse_definitions
from bridge.sources import Recorder
from bridge.testbed import STEFAN_BOLTZMANN_W_M2_K4, FlatsatModel, FlatsatParams
from odc.cli import main as odc_main
from twin.core.clock import SimClock
from twin.core.engine import Engine
from twin.scenario import load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parent.parent
PARAM_TOLERANCE = 0.03  # 3 % relative on C_c, C_r, G and k
RMS_AFTER_K = 0.05
ROOM_PARAM = """
[[packet.parameter]]
name = "room_temp_c"
type = "i2"
offset = 8
scale = 0.01
unit = "degC"
min = -80.0
max = 150.0
"""


def _record_session(path: Path, params: FlatsatParams, hk=None,
                    room_k: np.ndarray | None = None) -> None:
    model = FlatsatModel(params)
    hk = hk or load_definitions("flatsat").by_name("hk")
    dt, n = 0.5, 7200  # one hour at 2 Hz
    profile = np.repeat([0.1, 1.0, 0.3, 0.9, 0.0, 0.6], n // 6)  # utilization steps
    rec: dict[str, list[float]] = {"util_frac": [], "compute_power_w": [],
                                   "cold_plate_temp_c": [], "radiator_temp_c": []}
    for i, u in enumerate(profile):
        if room_k is not None:
            model.p = dataclasses.replace(model.p, sink_temp_k=float(room_k[i]))
        for _ in range(5):
            model.step(dt / 5, u)
        rec["util_frac"].append(u)
        rec["compute_power_w"].append(model.power_w)
        rec["cold_plate_temp_c"].append(model.temp_compute_k - 273.15)
        rec["radiator_temp_c"].append(model.temp_radiator_k - 273.15)
    values = {k: np.array(v) for k, v in rec.items()}
    if room_k is not None:
        values["room_temp_c"] = room_k - 273.15
    rows = encode_packets(hk, values, np.arange(n), 1.8e9 + dt * np.arange(n))
    recorder = Recorder(path)
    for i, row in enumerate(rows):
        recorder.write(row.tobytes(), 1.8e9 + dt * i)
    recorder.close()


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    recording = tmp_path_factory.mktemp("session") / "session.odcrec"
    _record_session(recording, FlatsatParams())
    return recording


def _written(report: str) -> dict[str, float]:
    """The ``key = value`` lines odc calibrate printed after 'wrote'."""
    lines = report.split("wrote ", 1)[1].splitlines()[1:]
    return {k.strip(): float(v) for k, v in (line.split("=") for line in lines if "=" in line)}


def _node_class(path: Path) -> dict:
    (found,) = tomllib.loads(path.read_text())["node_class"]
    return found


def test_calibrate_recovers_known_parameters_from_anywhere(
        session: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    # From another folder, with the default scenario and the definition's sink.
    monkeypatch.chdir(tmp_path)
    truth = FlatsatParams()
    code = odc_main(["calibrate", str(session), "--output", "calibrated.toml"])
    report = capsys.readouterr()
    assert code == 0, report
    out = tmp_path / "calibrated.toml"
    written = _node_class(out)
    assert written["nodes"] == ["dawn-dusk-01-01"]
    assert written["name"] == "calibrated-flatsat"
    thermal = written["thermal"]
    # What it prints is exactly what it writes.
    assert _written(report.out) == thermal
    assert "sink 250 K ([testbed] sink_temp_k of" in report.out
    assert "for node 'dawn-dusk-01-01' only" in report.out
    # The fleet's [thermal] is untouched.
    scenario = tomllib.loads(out.read_text())
    assert "thermal" not in scenario
    fitted = node_params(thermal)
    # The flatsat radiates from one face: eps sigma A; the twin counts both faces.
    k_true = truth.radiator_emissivity * STEFAN_BOLTZMANN_W_M2_K4 * truth.radiator_area_m2
    expected = [truth.c_compute_j_k, truth.c_radiator_j_k, truth.g_compute_radiator_w_k, k_true]
    np.testing.assert_allclose(fitted, expected, rtol=PARAM_TOLERANCE)
    # The definition gives the unit's radiating area: the emissivity is the unit's own.
    assert thermal["radiator_area_m2"] == pytest.approx(truth.radiator_area_m2 / 2)
    assert thermal["radiator_emissivity"] == pytest.approx(truth.radiator_emissivity,
                                                           rel=PARAM_TOLERANCE)
    after = float(report.out.split("after ")[-1].split()[0])
    before = float(report.out.split("before ")[1].split()[0])
    assert after < RMS_AFTER_K < before
    assert load_scenario(str(out)).sections["mirror"]["testbed"][0]["name"] == "flatsat"


def _run_temps(scenario_path: Path | str, steps: int = 30) -> np.ndarray:
    # One fixed epoch for both runs: the scenario's "now" would differ between two loads.
    path = Path(scenario_path)
    text = path.read_text().replace('epoch = "now"', 'epoch = "2026-03-20T12:00:00Z"')
    scenario = parse_scenario(text, str(path), path.parent)
    engine = Engine(scenario, SimClock(scenario.epoch_utc, rate_hz=1.0, warp=60.0, fast=True))
    temps = []
    for _ in range(steps):
        engine.step()
        temps.append(engine.thermal.temps_k.copy())
    return np.array(temps)


def test_calibrated_scenario_leaves_the_fleet_alone(session: Path, tmp_path: Path,
                                                   capsys) -> None:
    """Regression: the fit of a 300 W bench unit was the fleet's [thermal] (504 °C)."""
    original = TESTBEDS_DIR / "flatsat_mirror.toml"
    out = tmp_path / "calibrated.toml"
    assert odc_main(["calibrate", str(session), "--output", str(out)]) == 0
    plain, calibrated = _run_temps(original), _run_temps(out)
    node = load_scenario(str(out)).node_classes[0].sats[0]
    others = np.arange(plain.shape[2]) != node
    assert np.array_equal(calibrated[:, :, others], plain[:, :, others])  # bit for bit
    assert np.abs(calibrated[:, :, node] - plain[:, :, node]).max() > 1.0
    # Calibrating again replaces the class rather than adding a second one.
    again = tmp_path / "again.toml"
    capsys.readouterr()
    assert odc_main(["calibrate", str(session), "--scenario", str(out), "--output",
                     str(again)]) == 0
    assert len(load_scenario(str(again)).node_classes) == 1
    # "before" is the node as the scenario has it: already calibrated.
    before = float(capsys.readouterr().out.split("before ")[1].split()[0])
    assert before < RMS_AFTER_K


def test_deep_space_sink_is_refused(session: Path, tmp_path: Path, capsys) -> None:
    """Regression: a lab session fitted against 2.7 K reported success (emissivity 0.04)."""
    out = tmp_path / "calibrated.toml"
    code = odc_main(["calibrate", str(session), "--sink-temp-k", "2.7", "--output", str(out)])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "fit refused, nothing written" in err
    assert not out.exists()


def test_no_sink_anywhere_is_an_error(session: Path, tmp_path: Path, capsys) -> None:
    text = (TESTBEDS_DIR / "flatsat.toml").read_text()
    defs = tmp_path / "nosink.toml"
    defs.write_text(text.replace("sink_temp_k = 250.0", ""))
    code = odc_main(["calibrate", str(session), "--definitions", str(defs), "--output",
                     str(tmp_path / "x.toml")])
    err = capsys.readouterr().err
    assert code == 2
    assert "no sink temperature" in err and "nosink.toml" in err


def test_measured_sink_channel(tmp_path: Path, capsys) -> None:
    text = (TESTBEDS_DIR / "flatsat.toml").read_text().replace("sink_temp_k = 250.0",
                                                              'sink_temp_param = "room_temp_c"')
    # The room parameter goes into the hk packet, after the radiator temperature.
    head, tail = text.split("\n[[packet]]\nname = \"thermal_control\"", 1)
    defs_path = tmp_path / "room.toml"
    defs_path.write_text(head + ROOM_PARAM + "\n[[packet]]\nname = \"thermal_control\"" + tail)
    defs = parse_definitions(defs_path.read_text(), str(defs_path))
    assert defs.sink_temp_param == "room_temp_c"
    recording = tmp_path / "room.odcrec"
    room = 240.0 + 20.0 * np.linspace(0.0, 1.0, 7200)  # the room warms over the hour
    _record_session(recording, FlatsatParams(), defs.by_name("hk"), room)
    out = tmp_path / "calibrated.toml"
    code = odc_main(["calibrate", str(recording), "--definitions", str(defs_path),
                     "--output", str(out)])
    report = capsys.readouterr()
    assert code == 0, report
    assert "measured room_temp_c, 240.0..260.0 K" in report.out
    truth = FlatsatParams()
    assert _node_class(out)["thermal"]["radiator_emissivity"] == pytest.approx(
        truth.radiator_emissivity, rel=PARAM_TOLERANCE)


def test_definition_sink_matches_the_stand_in() -> None:
    defs = load_definitions("flatsat")
    assert defs.sink_temp_k == FlatsatParams().sink_temp_k
    assert defs.radiating_area_m2 == FlatsatParams().radiator_area_m2


def test_defaults_match_the_twin_thermal_model() -> None:
    from twin.models.thermal import ThermalParams

    defaults = {f.name: f.default for f in dataclasses.fields(ThermalParams)}
    for key, value in THERMAL_DEFAULTS.items():
        assert defaults[key] == value, key


def test_overrides_round_trip_and_scenario_text() -> None:
    params = np.array([1234.0, 5678.0, 42.0, 3.0e-8])
    values = thermal_overrides(params, {})
    np.testing.assert_allclose(node_params(values), params, rtol=1e-5)  # 6 digits written
    text = write_node_class("[scenario]\nname='x'\n\n[thermal]\nloop_ua_w_k = 1.0\n", "c",
                            "node-1", values, "n")
    doc = tomllib.loads(text)
    assert doc["thermal"]["loop_ua_w_k"] == 1.0  # the fleet's, untouched
    assert doc["node_class"][0]["thermal"] == values
    assert doc["node_class"][0]["nodes"] == ["node-1"]
    with pytest.raises(ValueError, match="coolant flow"):
        thermal_overrides(np.array([1.0, 1.0, 1e6, 1e-8]), {})


@pytest.mark.parametrize(("line", "key", "words"), [
    ("sink_temp_k = 1000.0", "testbed.sink_temp_k", "outside 2.7..400 K"),
    ('sink_temp_param = "nope_c"', "testbed.sink_temp_param", "not a parameter"),
    ('sink_temp_param = "util_frac"', "testbed.sink_temp_param", "must be a temperature"),
    ("sink_temp_k = 250.0\nradiating_area_m2 = 0.0", "testbed.radiating_area_m2", "outside"),
    ("sink_temp = 250.0", "testbed.sink_temp", "unknown key"),
])
def test_definition_physics_keys_are_checked(line: str, key: str, words: str) -> None:
    from bridge.definitions import DefinitionError

    text = (TESTBEDS_DIR / "flatsat.toml").read_text().replace("radiating_area_m2 = 1.2", "")
    text = text.replace("sink_temp_k = 250.0", line)
    with pytest.raises(DefinitionError) as err:
        parse_definitions(text, "bench.toml")
    assert str(err.value).startswith(f"bench.toml: {key}: ") and words in str(err.value)

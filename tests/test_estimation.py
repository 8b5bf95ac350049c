"""Live state estimation, parameter tracking and fault diagnosis (twin.models.estimation).

The filter's consistency is judged on synthetic data from this file's own integrator
(Euler-Maruyama at 0.05 s, with the process and sensor noise the filter is told); the
tracking and diagnosis on the flatsat stand-in (bridge.testbed) sampled once a second and
fed in-process (tests/estimutil.py), ten seeded runs at once.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy.stats import chi2

from bridge.definitions import DefinitionError, parse_definitions
from bridge.testbed_faults import FAULT_KINDS, Injection, parse_injection
from tests.estimutil import flatsat_network, run_standins
from twin.core.constants import STEFAN_BOLTZMANN_W_M2_K4
from twin.models.estimation.estimator import MirrorEstimator
from twin.models.estimation.params import EstimationParams
from twin.models.estimation.signatures import CAUSES

ONSET_S = 300.0
# Detection time stated per cause (docs/models.md): from the fault's onset to the diagnosis,
# sampling at 1 Hz, the stand-in's faults as bridge/testbed_faults.py makes them.
DETECTION_S = {"radiator": 600.0, "coolant": 120.0, "heater": 120.0, "stuck_sensor": 60.0,
               "biased_sensor": 5.0, "power_drift": 300.0}
# Utilization of each fault's runs: the heater is on only when the radiator runs cold.
FAULT_UTIL = {"heater": 0.0}


def test_the_injectable_faults_are_the_causes_a_diagnosis_names() -> None:
    assert set(FAULT_KINDS) == set(CAUSES) == set(DETECTION_S)


@pytest.mark.parametrize("text, complaint", [
    ("radiator", "expected KIND@T"), ("rust@5", "unknown fault kind 'rust'"),
    ("radiator@soon", "is not a number"), ("coolant@-3", "must be 0.."),
    ("heater@nan", "must be 0.."), ("radiator@5/x", "R 'x' is not"),
    ("radiator@5/-1", "R must be")])
def test_bad_injections_are_refused_with_what_is_allowed(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        parse_injection(text)


def test_odc_testbed_refuses_a_bad_inject_with_a_clear_error() -> None:
    done = subprocess.run([sys.executable, "-m", "odc.cli", "testbed", "--inject", "radiator@5",
                           "--inject", "rust@5", "--duration", "0.1", "--quiet"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "unknown fault kind 'rust'" in done.stderr and "radiator" in done.stderr


def test_a_negative_noise_in_a_definition_is_refused() -> None:
    text = """[testbed]\nname = "t"\n[[packet]]\nname = "hk"\napid = 1\n
[[packet.parameter]]\nname = "a_k"\ntype = "u2"\noffset = 0\nnoise = -1.0\n"""
    with pytest.raises(DefinitionError, match=r"packet\[0\].parameter\[0\].noise"):
        parse_definitions(text, "t.toml")


# -- filter consistency on synthetic data with known noise ---------------------------------

C_C, C_R, G, EPS_A, T_SINK = 3000.0, 6000.0, 20.0, 1.056, 250.0
R_J_NOMINAL, R_J_TRUE = 0.1, 0.105  # the truth's junction resistance is 5 % off nominal


def _synthetic(n_runs: int, seconds: int, sensor_k: float, power_w: float, q_k2_s: float,
               seed: int) -> dict[str, np.ndarray]:
    """Truth and readings once a second, from an Euler-Maruyama integrator at 0.05 s."""
    rng = np.random.default_rng(seed)
    k_rad = EPS_A * STEFAN_BOLTZMANN_W_M2_K4
    util = np.repeat(rng.uniform(0.0, 1.0, size=(seconds // 600 + 1, n_runs)), 600, axis=0)
    tc, tr = np.full(n_runs, 300.0), np.full(n_runs, 290.0)
    h, sub = 0.05, 20
    out = {k: np.empty((seconds, n_runs)) for k in ("tc", "tr", "p", "yc", "yr", "pm")}
    for s in range(seconds):
        p = 40.0 + 260.0 * util[s]
        for _ in range(sub):
            flow = G * (tc - tr)
            tc = tc + h * (p - flow) / C_C + rng.normal(0, np.sqrt(q_k2_s * h), n_runs)
            tr = (tr + h * (flow - k_rad * (tr**4 - T_SINK**4)) / C_R
                  + rng.normal(0, np.sqrt(q_k2_s * h), n_runs))
        out["tc"][s], out["tr"][s], out["p"][s] = tc, tr, p
        out["yc"][s] = tc + rng.normal(0, sensor_k, n_runs)
        out["yr"][s] = tr + rng.normal(0, sensor_k, n_runs)
        out["pm"][s] = p + rng.normal(0, power_w, n_runs)
    return out


def test_the_filter_is_consistent_and_the_junction_estimate_holds_the_truth() -> None:
    """NEES of [T_c, T_r] inside its 99 % chi-square interval on >= 95 % of steps.

    The time-averaged NEES (Bar-Shalom, Li & Kirubarajan 2001, §5.4) is below its 95 %
    upper bound (the filter is not overconfident); it is ~1.6 for 2 degrees of freedom:
    slightly conservative, as the filter lets the conductances wander and the truth's stay
    put. The never-measured junction stays within 2 sigma of the truth on every step.
    """
    n_runs, seconds, sensor_k, power_w, q = 8, 3600, 0.05, 0.5, 1.0e-6
    data = _synthetic(n_runs, seconds, sensor_k, power_w, q, seed=11)
    params = EstimationParams(temp_process_k2_s=q)
    network = flatsat_network_of(n_runs)
    est = MirrorEstimator(params, network, R_J_NOMINAL,
                          np.stack([data["yc"][0], data["yr"][0]], axis=1))
    sigma = np.full((n_runs, 2), sensor_k)
    nees, junction_z = [], []
    for s in range(1, seconds):
        est.step(1.0, data["pm"][s], np.zeros(n_runs),
                 np.stack([data["yc"][s], data["yr"][s]], axis=1), sigma,
                 np.full(n_runs, power_w))
        err = np.stack([est.tracker.x[:, 0] - data["tc"][s],
                        est.tracker.x[:, 1] - data["tr"][s]], axis=1)
        cov = est.tracker.cov[:, :2, :2]
        nees.append(np.einsum("ni,nij,nj->n", err, np.linalg.inv(cov), err))
        tj, tj_sd = est.estimate("temp_junction_k")
        junction_z.append(np.abs(tj - (data["tc"][s] + R_J_TRUE * data["p"][s])) / tj_sd)
    nees_arr = np.array(nees[60:])  # after the first minute (starting from one reading)
    low, high = chi2.ppf([0.005, 0.995], df=2)
    inside = ((nees_arr > low) & (nees_arr < high)).mean()
    assert inside >= 0.95, f"NEES inside its 99 % interval on {inside:.1%} of steps"
    mean_high = chi2.ppf(0.975, df=2 * nees_arr.size) / nees_arr.size
    assert 1.0 < nees_arr.mean() < mean_high, nees_arr.mean()
    assert np.max(junction_z) < 2.0, f"junction {np.max(junction_z):.2f} sigma off"


def flatsat_network_of(n: int):
    from bridge.testbed import FlatsatParams

    p = FlatsatParams(c_compute_j_k=C_C, c_radiator_j_k=C_R, g_compute_radiator_w_k=G,
                      radiator_area_m2=EPS_A / 0.88, radiator_emissivity=0.88,
                      sink_temp_k=T_SINK)
    return flatsat_network(p, n)


def test_an_unmeasured_radiator_is_estimated_within_its_uncertainty() -> None:
    n_runs, seconds, sensor_k, power_w, q = 8, 3600, 0.05, 0.5, 1.0e-6
    data = _synthetic(n_runs, seconds, sensor_k, power_w, q, seed=12)
    guess = np.stack([data["yc"][0], data["yc"][0] - 5.0], axis=1)  # radiator: a guess
    est = MirrorEstimator(EstimationParams(temp_process_k2_s=q, initial_sigma_k=10.0),
                          flatsat_network_of(n_runs), R_J_NOMINAL, guess,
                          measured=np.tile([True, False], (n_runs, 1)))
    z = []
    for s in range(1, seconds):
        est.step(1.0, data["pm"][s], np.zeros(n_runs),
                 np.stack([data["yc"][s], data["yr"][s]], axis=1),
                 np.full((n_runs, 2), sensor_k), np.full(n_runs, power_w))
        value, sd = est.estimate("temp_radiator_k")
        z.append(np.abs(value - data["tr"][s]) / sd)
    z_arr = np.array(z[600:])
    assert (z_arr < 2.0).mean() >= 0.95 and (z_arr < 3.0).all(), z_arr.max()


# -- parameter tracking -------------------------------------------------------------------


def test_a_radiator_losing_30_percent_is_tracked_within_5_percent_and_raises_a_drift_alarm(
        ) -> None:
    session = run_standins(1, 4200.0, (Injection("radiator", 600.0),), util=0.5, seed=3,
                           keep=("radiator_frac",))
    truth = np.array(session.truth["radiator_frac"])[:, 0]
    value = np.array(session.estimate["radiator_frac"])[:, 0]
    assert truth[-1] == pytest.approx(0.7)
    error = np.abs(value - truth) / truth
    assert error[300:].max() < 0.05, f"tracked within {error[300:].max():.1%}"
    alarms = [d for _, d in session.drift if d.parameter == "radiator_frac" and d.out]
    assert len(alarms) == 1
    alarm = alarms[0]
    assert alarm.value < 1.0 - alarm.band and 0.0 < alarm.sigma < 0.05
    assert alarm.trend_per_h < -0.3  # truth: -0.6 per hour during the ramp
    assert all(d.parameter == "radiator_frac" for _, d in session.drift)


# -- diagnosis ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_each_injected_fault_is_diagnosed_in_9_of_10_seeded_runs(kind: str) -> None:
    runs = 10
    session = run_standins(runs, ONSET_S + DETECTION_S[kind] + 30.0,
                           (Injection(kind, ONSET_S),), util=FAULT_UTIL.get(kind, 0.5),
                           seed=100 + FAULT_KINDS.index(kind))
    right = 0
    for n in range(runs):
        first = session.first_diagnosis(n)
        assert first is None or first.diagnosed_s >= ONSET_S, "diagnosed before the fault"
        if (first is not None and first.cause == kind
                and first.diagnosed_s - ONSET_S <= DETECTION_S[kind]):
            right += 1
            assert first.confidence >= 0.9 and first.evidence
    assert right >= 9, f"{kind}: right in {right} of {runs}"


def test_a_biased_sensor_is_estimated_once_diagnosed_and_raises_a_bias_drift_alarm() -> None:
    """The bias is held until the jump names the sensor; then the tracker estimates it."""
    from bridge.testbed_faults import BIAS_STEP_K

    session = run_standins(5, ONSET_S + 300.0, (Injection("biased_sensor", ONSET_S),),
                           util=0.5, seed=9, keep=("bias_compute_k",))
    bias = np.array(session.estimate["bias_compute_k"])
    assert np.all(bias[: int(ONSET_S) - 1] == 0.0)  # held before
    assert np.abs(bias[-1] - BIAS_STEP_K).max() < 0.2 * BIAS_STEP_K
    alarms = [d for _, d in session.drift if d.parameter == "bias_compute_k" and d.out]
    assert len(alarms) == 5 and all(a.value > a.band for a in alarms)


def _varying_util(t_s: float) -> float:
    """Idle, light and heavy phases of ten minutes: the heater cycles in the idle ones."""
    return (0.0, 0.3, 0.9, 0.5, 0.05, 0.7)[int(t_s // 600) % 6]


def test_a_healthy_hour_raises_no_diagnosis_and_no_drift_alarm() -> None:
    session = run_standins(10, 3600.0, (), util=_varying_util, seed=7)
    assert session.diagnoses == [] and session.drift == []


# -- the sensors' noise travels from the definition to the mirror --------------------------


def test_the_declared_noise_reaches_the_mirror_in_si_and_odd_values_are_ignored() -> None:
    from pathlib import Path

    from twin.models.mirror import Mirror
    from twin.protocol.codec import pack, unpack
    from twin.protocol.telemetry import encode_telemetry
    from twin.scenario import parse_scenario

    text = (Path(__file__).parent.parent / "assets" / "testbeds"
            / "flatsat_mirror.toml").read_text()
    mirror = Mirror(parse_scenario(text))
    now = 1.8e9
    mirror.wall_clock = lambda: now

    def message(t: float) -> list:
        return encode_telemetry(
            0, "flatsat", "hk", np.array([t]),
            {"cold_plate_temp_c": np.array([20.0]), "radiator_temp_c": np.array([10.0]),
             "compute_power_w": np.array([170.0]), "util_frac": np.array([0.5])},
            noise={"cold_plate_temp_c": 0.05, "compute_power_w": 0.5})

    mirror.ingest(message(now))
    assert mirror.live[0].noise == {"temp_compute_k": 0.05, "compute_power_w": 0.5}
    frames = message(now + 0.1)
    header = unpack(frames[1])
    for spec, odd in zip(header["fields"][1:], ("a lot", -1.0, float("nan"), True),
                         strict=True):
        spec["noise"] = odd
    frames[1] = pack(header)
    now += 0.1
    mirror.ingest(frames)
    assert mirror.counters["samples_applied"] == 2  # applied: only the odd noises ignored
    assert mirror.live[0].noise == {"temp_compute_k": 0.05, "compute_power_w": 0.5}


def test_two_mirrored_nodes_each_get_their_own_estimate_and_diagnosis() -> None:
    """Two stand-ins bound to two nodes of one twin: each node's estimate follows its own
    hardware, and a fault on one is diagnosed on that node only."""
    import time
    from pathlib import Path

    from bridge.testbed import Testbed
    from twin.core.clock import SimClock
    from twin.core.engine import Engine
    from twin.protocol.telemetry import encode_telemetry
    from twin.scenario import parse_scenario

    text = (Path(__file__).parent.parent / "assets" / "testbeds"
            / "flatsat_mirror.toml").read_text()
    binding = text[text.index("[[mirror.testbed]]"):text.index("\n# The state estimator")]
    second = binding.replace('name = "flatsat"', 'name = "flatsat2"').replace(
        'node = "dawn-dusk-01-01"', 'node = "dawn-dusk-01-05"')
    scenario = parse_scenario(text.replace(binding, binding + "\n" + second))
    engine = Engine(scenario, SimClock(scenario.epoch_utc, rate_hz=10.0, warp=1.0, fast=True))
    now = {"t": time.time()}
    engine.mirror.wall_clock = lambda: now["t"]
    beds = {"flatsat": Testbed(lambda _b: None, utilization=lambda: 0.5, seed=1),
            "flatsat2": Testbed(lambda _b: None, utilization=lambda: 0.1, seed=2,
                                injections=(Injection("coolant", 5.0, 5.0),))}
    for k in range(700):  # 70 s at 10 Hz
        now["t"] += 0.1
        for name, bed in beds.items():
            r = bed.measure(now["t"])
            engine.ingest_handler([bytes(f) for f in encode_telemetry(
                k, name, "hk", np.array([now["t"]]),
                {key: np.array([r[key]]) for key in ("compute_power_w", "util_frac",
                                                     "cold_plate_temp_c", "radiator_temp_c")},
                noise={"cold_plate_temp_c": 0.05, "radiator_temp_c": 0.05,
                       "compute_power_w": 0.5})])
        engine.step()
    arrays = {f.spec.name: f.array for f in engine.fields}
    for j, bed in enumerate(beds.values()):
        estimate = arrays["mirror_estimate_temp_compute_k"][j]
        assert abs(estimate - bed.model.temp_compute_k) < 0.2, (j, estimate)
    assert arrays["mirror_diagnosis_code"].tolist() == [0, 2]  # 2: coolant, on flatsat2


def test_a_calibrated_node_class_is_the_estimators_model() -> None:
    """``odc calibrate`` writes the mirrored node's fit as a ``[[node_class]]``; without
    ``[estimation]`` keys the filter's network comes from the node's own ``[thermal]``, that
    class's (before, from the fleet's table: the calibration never reached the filter)."""
    import math
    import time
    from pathlib import Path

    from bridge.testbed import Testbed
    from twin.core.clock import SimClock
    from twin.core.engine import Engine
    from twin.protocol.telemetry import encode_telemetry
    from twin.scenario import parse_scenario

    text = (Path(__file__).parent.parent / "assets" / "testbeds"
            / "flatsat_mirror.toml").read_text()
    network_keys = text[text.index("[estimation]\n"):].split("\n\n")[0]
    fit = {"compute_heat_capacity_j_k": 3100.0, "radiator_heat_capacity_j_k": 6200.0,
           "radiator_emissivity": 0.88, "radiator_area_m2": 0.6, "loop_ua_w_k": 25.0}
    text = text.replace(network_keys, "[estimation]") + (
        '\n[[node_class]]\nname = "flatsat-fit"\nnodes = ["dawn-dusk-01-01"]\n'
        "[node_class.thermal]\n" + "".join(f"{k} = {v}\n" for k, v in fit.items()))
    scenario = parse_scenario(text)
    engine = Engine(scenario, SimClock(scenario.epoch_utc, rate_hz=10.0, warp=1.0, fast=True))
    estimation = engine.models["estimation"]
    sat = engine.scenario.satellites.index(next(
        s for s in engine.scenario.satellites if s.name == "dawn-dusk-01-01"))
    fleet = estimation.thermal
    flow_cp = fleet.coolant_flow_kg_s * fleet.coolant_cp_j_kg_k
    network, _ = estimation.network(sat)
    assert network.c_compute_j_k[0] == 3100.0 and network.c_radiator_j_k[0] == 6200.0
    assert network.radiator_emissive_area_m2[0] == pytest.approx(2 * 0.88 * 0.6)
    assert network.loop_conductance_w_k[0] == pytest.approx(
        flow_cp * (1 - math.exp(-25.0 / flow_cp)))
    other, _ = estimation.network(sat + 1)  # not in the class: the fleet's table
    assert other.c_compute_j_k[0] != 3100.0
    # And the estimator the twin starts on the node's first samples runs that network.
    now = {"t": time.time()}
    engine.mirror.wall_clock = lambda: now["t"]
    bed = Testbed(lambda _b: None, utilization=lambda: 0.5, seed=1)
    for k in range(20):
        now["t"] += 0.1
        r = bed.measure(now["t"])
        engine.ingest_handler([bytes(f) for f in encode_telemetry(
            k, "flatsat", "hk", np.array([now["t"]]),
            {key: np.array([r[key]]) for key in ("compute_power_w", "util_frac",
                                                 "cold_plate_temp_c", "radiator_temp_c")})])
        engine.step()
    running = estimation.estimators[0]
    assert running is not None
    assert running.model.p.c_compute_j_k[0] == 3100.0
    assert running.model.p.radiator_emissive_area_m2[0] == pytest.approx(2 * 0.88 * 0.6)

"""The flatsat stand-in's telemetry fed to the estimator in-process, many seeded runs at once.

Each run is its own stand-in (``bridge.testbed.Testbed``: its model, sensor noise and
injected faults) sampled once a second, as fast as the CPU goes; the runs' readings are
stacked and one ``MirrorEstimator`` steps them all together (one node per run).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from bridge.testbed import STAND_IN, FlatsatModel, FlatsatParams, Testbed
from bridge.testbed_faults import Injection
from twin.core.constants import KELVIN_PER_CELSIUS, STEFAN_BOLTZMANN_W_M2_K4
from twin.models.estimation.estimator import Diagnosis, MirrorEstimator
from twin.models.estimation.filter import NetworkParams
from twin.models.estimation.params import EstimationParams
from twin.models.estimation.tracking import DriftChange

START_UTC = 1.8e9


def flatsat_network(p: FlatsatParams, n: int) -> NetworkParams:
    """The stand-in's own parameters as the filter's nominal network (a calibrated node)."""
    return NetworkParams(np.full(n, p.c_compute_j_k), np.full(n, p.c_radiator_j_k),
                         np.full(n, p.g_compute_radiator_w_k),
                         np.full(n, p.radiator_emissivity * p.radiator_area_m2),
                         np.full(n, p.sink_temp_k))


def settled_model(p: FlatsatParams, util: float) -> FlatsatModel:
    """A stand-in model at the steady state of a constant utilization (heater included)."""
    model = FlatsatModel(p)
    power = model.power_for(util)
    k = p.radiator_emissivity * STEFAN_BOLTZMANN_W_M2_K4 * p.radiator_area_m2
    tr = (p.sink_temp_k**4 + power / k) ** 0.25
    if p.heater_power_w > 0.0 and tr < p.heater_off_k:
        model.heater_on = True
        tr = (p.sink_temp_k**4 + (power + p.heater_power_w) / k) ** 0.25
    model.temp_radiator_k, model.temp_compute_k = tr, tr + power / p.g_compute_radiator_w_k
    model.power_w = power
    return model


@dataclass
class Session:
    """What a batch of runs produced: per-step histories (T, N) and the findings."""

    t_s: list[float] = field(default_factory=list)
    truth: dict[str, list[np.ndarray]] = field(default_factory=dict)
    estimate: dict[str, list[np.ndarray]] = field(default_factory=dict)
    sigma: dict[str, list[np.ndarray]] = field(default_factory=dict)
    drift: list[tuple[float, DriftChange]] = field(default_factory=list)
    diagnoses: list[Diagnosis] = field(default_factory=list)

    def first_diagnosis(self, node: int) -> Diagnosis | None:
        return next((d for d in self.diagnoses if d.node == node), None)


def run_standins(n_runs: int, duration_s: float, injections: tuple[Injection, ...] = (),
                 util: float | Callable[[float], float] = 0.5, seed: int = 0,
                 truth_params: FlatsatParams = STAND_IN,
                 params: EstimationParams | None = None, dt_s: float = 1.0,
                 keep: tuple[str, ...] = ()) -> Session:
    """Run ``n_runs`` seeded stand-ins for ``duration_s`` and the estimator on their readings.

    Args:
        util: Constant utilization or a function of elapsed seconds.
        keep: Tracked or estimated names whose histories to keep (``radiator_frac``, ...).
    """
    u0 = util if isinstance(util, float) else util(0.0)
    util_at = (lambda _t: util) if isinstance(util, float) else util
    clock = {"t": START_UTC}
    beds = [Testbed(lambda _b: None, model=settled_model(truth_params, u0),
                    utilization=lambda: util_at(clock["t"] - START_UTC),
                    injections=injections, seed=seed * 1000 + i) for i in range(n_runs)]
    first = [bed.measure(START_UTC) for bed in beds]
    temps = np.array([[r["cold_plate_temp_c"], r["radiator_temp_c"]] for r in first])
    params = params or EstimationParams()
    estimator = MirrorEstimator(params, flatsat_network(truth_params, n_runs), 0.1,
                                temps + KELVIN_PER_CELSIUS)
    noise = {p.name: p.noise for p in beds[0].hk.parameters}
    sigma = np.tile([noise["cold_plate_temp_c"], noise["radiator_temp_c"]], (n_runs, 1))
    power_sigma = np.full(n_runs, noise["compute_power_w"])
    session = Session()
    steps = round(duration_s / dt_s)
    for k in range(1, steps + 1):
        clock["t"] = START_UTC + k * dt_s
        readings = [bed.measure(clock["t"]) for bed in beds]
        measured = np.array([[r["cold_plate_temp_c"], r["radiator_temp_c"]]
                             for r in readings]) + KELVIN_PER_CELSIUS
        power = np.array([r["compute_power_w"] for r in readings])
        heater = np.array([r["heater_power_w"] for r in readings])
        drift, diagnoses = estimator.step(dt_s, power, heater, measured, sigma, power_sigma)
        session.drift += [(k * dt_s, d) for d in drift]
        session.diagnoses += diagnoses
        if keep:
            session.t_s.append(k * dt_s)
            for name in keep:
                _keep(session, estimator, beds, name)
    session.estimator = estimator  # type: ignore[attr-defined]
    return session


def _keep(session: Session, estimator: MirrorEstimator, beds: list[Testbed], name: str
          ) -> None:
    truth = {"temp_compute_k": [b.model.temp_compute_k for b in beds],
             "temp_radiator_k": [b.model.temp_radiator_k for b in beds],
             "radiator_frac": [b.model.radiator_frac for b in beds],
             "loop_frac": [b.model.loop_frac for b in beds]}
    if name in truth:
        session.truth.setdefault(name, []).append(np.array(truth[name]))
    t = estimator.tracker
    if name in t.index:
        session.estimate.setdefault(name, []).append(t.value(name).copy())
        session.sigma.setdefault(name, []).append(t.sigma(name).copy())


def with_params(**changes: float) -> EstimationParams:
    return replace(EstimationParams(), **changes)

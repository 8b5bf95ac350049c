"""The estimator of N mirrored nodes: two filters, the open-loop model, detectors, diagnosis.

- the **tracker** (``ThermalEKF`` with the radiator and loop conductance factors and the
  two sensor biases) gives the estimate with its ±1σ and tracks the slow parameters
  (``DriftMonitor`` raises drift alarms);
- the **detector** (``ThermalEKF`` with the unexplained heats ``d_c``, ``d_r`` on the
  nominal network) feeds the change detectors (CUSUM on its normalised innovations, the
  heat test) and the signature table (``signatures``);
- the **open loop** runs the nominal network on the measured inputs alone, from the first
  measured state, never corrected: what the model would say without the hardware.

Pure numpy, no twin types: the twin's ``Estimation`` model feeds it from the mirror, and
the tests feed it the stand-in's telemetry in-process.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from twin.models.estimation.detectors import Cusum, JumpCheck, StuckCheck, heat_statistic
from twin.models.estimation.filter import NetworkParams, ProcessNoise, ThermalEKF
from twin.models.estimation.params import EstimationParams
from twin.models.estimation.signatures import CAUSES, HEAT_SIGNATURES, heat_posteriors
from twin.models.estimation.tracking import TRACKED, DriftChange, DriftMonitor

STATES = ("temp_compute_k", "temp_radiator_k", "temp_junction_k")
"""Estimated quantities, as the mirror names them (the junction is never measured)."""
HEAT_TEST_STEPS = 3
REOPENED_BIAS_SIGMA_K = 5.0


@dataclass(frozen=True)
class Diagnosis:
    """The most likely cause of a detected change on node ``node``."""

    node: int
    cause: str
    confidence: float
    evidence: str
    why: str
    detected_s: float
    diagnosed_s: float
    channel: str = ""
    posteriors: dict[str, float] = field(default_factory=dict)


class MirrorEstimator:
    """Estimation, tracking and diagnosis for N nodes stepped together.

    Args:
        params: The ``[estimation]`` table.
        network: Nominal network parameters, arrays of shape (N,).
        junction_resistance_k_w: Junction above the plate per watt of payload (K/W).
        initial_temp_k: (N, 2) first measured (or guessed) [T_c, T_r].
        measured: (N, 2) which channels are measured at all (False: estimated only).
    """

    def __init__(self, params: EstimationParams, network: NetworkParams,
                 junction_resistance_k_w: float, initial_temp_k: np.ndarray,
                 measured: np.ndarray | None = None) -> None:
        self.params = params
        n = len(network.c_compute_j_k)
        self.n = n
        noise = ProcessNoise(temp_k2_s=params.temp_process_k2_s,
                             radiator_frac2_s=params.conductance_drift_frac2_s,
                             loop_frac2_s=params.conductance_drift_frac2_s,
                             bias_k2_s=params.bias_drift_k2_s,
                             heat_w2_s=params.heat_drift_w2_s)
        sigma0 = {"temp": params.initial_sigma_k,
                  "radiator_frac": params.conductance_prior_frac,
                  "loop_frac": params.conductance_prior_frac,
                  "bias_compute_k": params.bias_prior_k, "bias_radiator_k": params.bias_prior_k,
                  "heat_compute_w": 1.0, "heat_radiator_w": 1.0}
        self.tracker = ThermalEKF(network, TRACKED, noise, initial_temp_k, sigma0)
        self.detector = ThermalEKF(network, ("heat_compute_w", "heat_radiator_w"), noise,
                                   initial_temp_k, sigma0)
        self.model = ThermalEKF(network, (), noise, initial_temp_k, {})
        self.open_loop_k = np.array(initial_temp_k, dtype=float).reshape(n, 2)
        self.junction_r = junction_resistance_k_w
        self.measured = np.ones((n, 2), bool) if measured is None else np.asarray(measured)
        self.excluded = ~self.measured
        self.cusum = Cusum(n, 2, params.cusum_allowance, params.cusum_threshold)
        self.stuck = StuckCheck(n, 2)
        self.jump = JumpCheck(n, 2, params.jump_sigma)
        self.drift = DriftMonitor(n, params.drift_band_frac, params.bias_band_k,
                                  params.trend_window_s)
        self.heat_over = np.zeros(n, dtype=np.int64)
        self.leading = np.full(n, -1)  # the heat cause leading the posteriors, and since when
        self.leading_since_s = np.zeros(n)
        self.detected_s = np.full(n, np.nan)
        self.cause = np.zeros(n, dtype=np.int64)  # 0 none, else CAUSES index + 1
        self.confidence = np.zeros(n)
        self.power_w = np.zeros(n)
        self.power_sigma_w = np.zeros(n)
        self.nis = np.full(n, np.nan)
        self.t_s = 0.0

    # -- one step ----------------------------------------------------------------------

    def step(self, dt_s: float, power_w: np.ndarray, heater_w: np.ndarray,
             measured_k: np.ndarray, sigma_k: np.ndarray, power_sigma_w: np.ndarray
             ) -> tuple[list[DriftChange], list[Diagnosis]]:
        """Predict over ``dt_s``, correct with the new readings, run detectors and diagnosis.

        Args:
            dt_s: Time since the last step (s).
            power_w: (N,) measured compute power over the step (W).
            heater_w: (N,) commanded heater power (W).
            measured_k: (N, 2) new readings [T_c, T_r] (NaN: none new).
            sigma_k: (N, 2) their noise (K).
            power_sigma_w: (N,) the power reading's noise (W).

        Returns:
            Drift band crossings and new diagnoses.
        """
        self.t_s += dt_s
        self.power_w, self.power_sigma_w = np.asarray(power_w, float), np.asarray(power_sigma_w)
        for f in (self.tracker, self.detector):
            f.predict(dt_s, power_w, heater_w, power_sigma_w)
        self.open_loop_k, _ = self.model.propagate(self.open_loop_k, dt_s, power_w, heater_w,
                                                   jacobian=False)
        readings = np.where(self.excluded, np.nan, measured_k)
        repeats = self.stuck.update(readings)
        self.tracker.update(readings, sigma_k)
        innovation, innovation_sd = self.detector.update(readings, sigma_k)
        e = innovation / innovation_sd
        self.nis = np.nansum(e**2, axis=1)
        self.jump.update(self.t_s, readings, sigma_k)
        changed = self.cusum.update(e)
        heat = self.detector.x[:, 2:4]
        heat_cov = self.detector.cov[:, 2:4, 2:4]
        over = heat_statistic(heat, heat_cov) > self.params.heat_test_threshold
        self.heat_over = np.where(over, self.heat_over + 1, 0)
        detected = changed | (self.heat_over >= HEAT_TEST_STEPS)
        fresh = detected & np.isnan(self.detected_s) & (self.cause == 0)
        self.detected_s[fresh] = self.t_s
        tracked = np.stack([self.tracker.value(p) for p in TRACKED], axis=1)
        tracked_sd = np.stack([self.tracker.sigma(p) for p in TRACKED], axis=1)
        drift = self.drift.update(self.t_s, tracked, tracked_sd)
        diagnoses = self._diagnose(repeats, detected, heat, heat_cov,
                                   np.asarray(heater_w) > 0.0)
        return drift, diagnoses

    def _diagnose(self, repeats: np.ndarray, detected: np.ndarray, heat: np.ndarray,
                  heat_cov: np.ndarray, heater_on: np.ndarray) -> list[Diagnosis]:
        p = self.params
        open_nodes = self.cause == 0
        out: list[Diagnosis] = []
        stuck = (repeats >= p.stuck_samples) & ~self.excluded
        for n, c in np.argwhere(stuck & open_nodes[:, None]):
            out.append(self._decide(int(n), "stuck_sensor", 0.99, int(c),
                                    f"{_CHANNEL_TEXT[c]} reading unchanged for "
                                    f"{repeats[n, c]} samples in a row",
                                    "its declared noise makes that practically impossible "
                                    "for a live sensor"))
            self.excluded[n, c] = True  # the estimate goes on from the model and the rest
        open_nodes = self.cause == 0
        recent = (self.t_s - self.jump.when_s) <= p.jump_window_s
        for n in np.flatnonzero(detected & open_nodes & recent.any(axis=1)):
            c = int(np.argmax(self.jump.when_s[n]))
            size = self.jump.size[n, c]
            out.append(self._decide(int(n), "biased_sensor", 0.95, c,
                                    f"{_CHANNEL_TEXT[c]} reading jumped {size:+.2f} K in one "
                                    "sample, the other channel within its noise",
                                    "no heat flow moves a temperature that fast"))
            bias = ("bias_compute_k", "bias_radiator_k")[c]
            mask = np.zeros(self.n, bool)
            mask[n] = True
            self.tracker.reopen(mask, bias, REOPENED_BIAS_SIGMA_K)
        open_nodes = (self.cause == 0) & detected
        # A channel repeating itself may be sticking: let the stuck check speak first.
        open_nodes &= ~((repeats >= 3) & ~self.excluded).any(axis=1)
        if open_nodes.any():
            post = heat_posteriors(heat, heat_cov, heater_on)
            best = np.where(post.max(axis=1) >= p.confidence_frac, np.argmax(post, axis=1), -1)
            new_lead = best != self.leading
            self.leading_since_s[new_lead] = self.t_s
            self.leading = best
            held = (best >= 0) & (self.t_s - self.leading_since_s >= p.confirm_s)
            for n in np.flatnonzero(open_nodes & held):
                k = int(np.argmax(post[n]))
                sig = HEAT_SIGNATURES[k]
                sd = np.sqrt(np.diag(heat_cov[n]))
                out.append(self._decide(
                    int(n), sig.cause, float(post[n, k]), -1,
                    f"{heat[n, 1]:+.1f} ± {sd[1]:.1f} W unexplained at the radiator, "
                    f"{heat[n, 0]:+.1f} ± {sd[0]:.1f} W at the compute node", sig.why,
                    {s.cause: float(post[n, i]) for i, s in enumerate(HEAT_SIGNATURES)}))
        return out

    def _decide(self, n: int, cause: str, confidence: float, channel: int, evidence: str,
                why: str, posteriors: dict[str, float] | None = None) -> Diagnosis:
        self.cause[n] = CAUSES.index(cause) + 1
        self.confidence[n] = confidence
        detected = self.detected_s[n] if np.isfinite(self.detected_s[n]) else self.t_s
        return Diagnosis(n, cause, confidence, evidence, why, detected,
                         self.t_s, _CHANNELS[channel] if channel >= 0 else "",
                         posteriors or {cause: confidence})

    # -- what it publishes ---------------------------------------------------------------

    def estimate(self, quantity: str) -> tuple[np.ndarray, np.ndarray]:
        """(N,) estimate and its standard deviation of one of ``STATES``."""
        t = self.tracker
        if quantity == "temp_junction_k":
            rise = self.junction_r * self.power_w
            var = (t.sigma("temp_compute_k") ** 2
                   + (self.params.junction_resistance_sigma_frac * rise) ** 2
                   + (self.junction_r * self.power_sigma_w) ** 2)
            return t.value("temp_compute_k") + rise, np.sqrt(var)
        return t.value(quantity), t.sigma(quantity)

    def open_loop(self, quantity: str) -> np.ndarray:
        """(N,) the never-corrected model's value of one of ``STATES``."""
        if quantity == "temp_junction_k":
            return self.open_loop_k[:, 0] + self.junction_r * self.power_w
        return self.open_loop_k[:, ("temp_compute_k", "temp_radiator_k").index(quantity)]


_CHANNELS = ("temp_compute_k", "temp_radiator_k")
_CHANNEL_TEXT = ("cold-plate temperature", "radiator temperature")

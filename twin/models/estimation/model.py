"""The twin's ``Estimation`` model: live state estimation and diagnosis of mirrored nodes.

Stepped after the mirror. For each live ``[[mirror.testbed]]`` binding that maps the cold
plate or the radiator temperature it runs a ``MirrorEstimator`` (one node each: the few
mirrored nodes are looped over, never the fleet): the measured compute power and heater
power are its inputs, each new temperature reading corrects it with the noise the bridge
declares for that channel (the testbed definition's ``noise``; ``default_noise_k``
otherwise). It publishes, per binding, the open-loop prediction, the estimate and its
±1σ beside the mirror's measurement, the tracked parameters, and raises
``estimation_drift`` (a tracked parameter out of its band) and ``diagnosis`` (the most
likely cause of a detected change) events. A binding that loses its telemetry starts
afresh when it returns.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from twin.core.subsystem import CommandHandler, Field, StepContext, make_field
from twin.models.estimation.estimator import STATES, Diagnosis, MirrorEstimator
from twin.models.estimation.filter import NetworkParams
from twin.models.estimation.params import EstimationParams, network_from
from twin.models.estimation.signatures import CAUSE_CODES, CAUSE_TEXT
from twin.models.estimation.tracking import TRACKED, TRACKED_TEXT, DriftChange
from twin.models.mirror import Mirror
from twin.models.mirror.bindings import BindingState, MirrorBinding
from twin.models.thermal import ThermalParams
from twin.scenario import Scenario, parse_section
from twin.scenario.node_class import node_params, per_node_params

CHANNELS = ("temp_compute_k", "temp_radiator_k")
MAX_GAP_S = 60.0
"""Longest gap between samples the filter predicts across; past it, it starts afresh."""
FLEET_TOTALS: dict[str, tuple[str, str]] = {
    "mirror_diagnosed_n": ("count", "mirrored nodes with a diagnosis"),
}


class Estimation:
    """Kalman filter, parameter tracking and fault diagnosis for each mirrored node."""

    name = "estimation"
    reads: tuple[str, ...] = ()
    publishes = None

    def __init__(self, scenario: Scenario, mirror: Mirror) -> None:
        self.params = parse_section(EstimationParams, scenario, "estimation")
        # Per node: a mirrored node's class (odc calibrate's fit) holds its own thermal keys.
        self.thermal = per_node_params(parse_section(ThermalParams, scenario, "thermal"),
                                       scenario, "thermal")
        self.mirror = mirror
        self.bindings: list[MirrorBinding] = [
            b for b in mirror.bindings if self.params.enabled
            and any(q in b.states.values() for q in CHANNELS)]
        self.index = [mirror.bindings.index(b) for b in self.bindings]
        self.estimators: list[MirrorEstimator | None] = [None] * len(self.bindings)
        self.fed_utc = [np.full(len(CHANNELS), -np.inf) for _ in self.bindings]
        self.step_utc = [np.nan] * len(self.bindings)
        self._fields = self._make_fields()
        self._f = {f.spec.name: f.array for f in self._fields}

    def _make_fields(self) -> list[Field]:
        m = len(self.mirror.bindings)
        if not self.bindings:
            return []

        def field_(name: str, unit: str, text: str, dtype: str = "<f4",
                   labels: dict[int, str] | None = None) -> Field:
            return make_field(name, dtype, (m,), unit, text, per_sat=False,
                              fill=0 if labels else np.nan, labels=labels)

        out = []
        for q in STATES:
            out += [field_(f"mirror_estimate_{q}", "K", f"filter's estimate of {q}"),
                    field_(f"mirror_estimate_sigma_{q}", "K", f"one standard deviation of the "
                           f"estimate of {q}"),
                    field_(f"mirror_open_loop_{q}", "K", f"{q} of the estimator's model on the "
                           "measured inputs alone, never corrected")]
        for p in TRACKED:
            unit = "1" if p.endswith("_frac") else "K"
            out += [field_(f"mirror_track_{p}", unit, f"tracked {TRACKED_TEXT[p]}"
                           + (" (1 = nominal)" if unit == "1" else "")),
                    field_(f"mirror_track_sigma_{p}", unit, f"one standard deviation of the "
                           f"tracked {TRACKED_TEXT[p]}")]
        out += [field_("mirror_nis", "1", "normalised innovation squared of the newest "
                       "readings (chi-square while the model holds)"),
                field_("mirror_diagnosis_code", "code", "the diagnosed cause (0: none)",
                       dtype="|u1", labels={v: k for k, v in CAUSE_CODES.items()}),
                field_("mirror_diagnosis_confidence_frac", "1", "confidence of the diagnosis")]
        return out

    # -- subsystem contract -----------------------------------------------------------

    def fields(self) -> list[Field]:
        return self._fields

    def step(self, ctx: StepContext) -> None:
        """Step each live mirrored node's estimator; publish; raise drift and diagnosis."""
        for k, (b, j) in enumerate(zip(self.bindings, self.index, strict=True)):
            lv = self.mirror.live[j]
            if not lv.live:
                self.estimators[k] = None
                self.fed_utc[k][:] = -np.inf
                self._clear(j)
                continue
            self._step_one(k, b, j, lv, ctx)

    def _step_one(self, k: int, b: MirrorBinding, j: int, lv: BindingState,
                  ctx: StepContext) -> None:
        """Step binding ``k``'s estimator to its newest temperature sample, if a new one came.

        The filter's clock is the samples' own time stamps, not the twin's steps: a twin
        running late does not stretch the hardware's time.
        """
        p = self.params
        mapped = np.array([q in b.states.values() for q in CHANNELS])
        sample_utc = np.array([lv.measured_utc.get(q, -np.inf) if mapped[c] else -np.inf
                               for c, q in enumerate(CHANNELS)])
        fresh = sample_utc > self.fed_utc[k]
        if not fresh.any():
            return
        self.fed_utc[k] = np.maximum(self.fed_utc[k], sample_utc)
        now_utc = float(sample_utc[fresh].max())
        readings = np.array([lv.measured[q] if fresh[c] else np.nan
                             for c, q in enumerate(CHANNELS)])
        power = lv.measured.get("compute_power_w")
        if power is None:
            model_power = ctx.quantity("compute_power_w")
            power = float(model_power[lv.sat]) if isinstance(model_power, np.ndarray) else 0.0
        heater = lv.measured.get("heater_power_w", 0.0)
        est = self.estimators[k]
        dt_s = now_utc - self.step_utc[k]
        if est is not None and not 0.0 <= dt_s <= MAX_GAP_S:
            est = None  # a gap the model cannot bridge, or time went back: start afresh
        self.step_utc[k] = now_utc
        if est is None:
            self.estimators[k] = self._start(readings, power, mapped, lv.sat)
            return
        sigma = np.array([lv.noise.get(q, p.default_noise_k) for q in CHANNELS])
        power_sigma = lv.noise.get("compute_power_w", p.default_power_noise_w)
        drift, diagnoses = est.step(dt_s, np.array([power]), np.array([heater]),
                                    readings[None, :], sigma[None, :], np.array([power_sigma]))
        for change in drift:
            self._drift_event(change, b, lv, ctx)
        for diagnosis in diagnoses:
            self._diagnosis_event(diagnosis, b, lv, ctx)
        self._publish(j, est)

    def network(self, sat: int) -> tuple[NetworkParams, float]:
        """Node ``sat``'s filter network and junction resistance: ``[estimation]``'s keys,
        else the node's own ``[thermal]`` (its ``[[node_class]]``'s where it has one)."""
        return network_from(self.params, node_params(self.thermal, sat), 1)

    def _start(self, readings: np.ndarray, power_w: float, mapped: np.ndarray, sat: int
               ) -> MirrorEstimator:
        network, junction = self.network(sat)
        guess = np.where(mapped, readings, np.nan)
        # An unmeasured channel starts from the other one across the loop's steady drop.
        drop = power_w / float(network.loop_conductance_w_k[0])
        if not np.isfinite(guess[1]):
            guess[1] = guess[0] - drop
        if not np.isfinite(guess[0]):
            guess[0] = guess[1] + drop
        return MirrorEstimator(self.params, network, junction, guess[None, :], mapped[None, :])

    def _publish(self, j: int, est: MirrorEstimator) -> None:
        f = self._f
        for q in STATES:
            value, sigma = est.estimate(q)
            f[f"mirror_estimate_{q}"][j] = value[0]
            f[f"mirror_estimate_sigma_{q}"][j] = sigma[0]
            f[f"mirror_open_loop_{q}"][j] = est.open_loop(q)[0]
        for p in TRACKED:
            f[f"mirror_track_{p}"][j] = est.tracker.value(p)[0]
            f[f"mirror_track_sigma_{p}"][j] = est.tracker.sigma(p)[0]
        f["mirror_nis"][j] = est.nis[0]
        f["mirror_diagnosis_code"][j] = est.cause[0]
        f["mirror_diagnosis_confidence_frac"][j] = est.confidence[0]

    def _clear(self, j: int) -> None:
        for name, array in self._f.items():
            if name == "mirror_diagnosis_code":
                array[j] = 0
            else:
                array[j] = np.nan

    def _drift_event(self, c: DriftChange, b: MirrorBinding, lv: BindingState,
                     ctx: StepContext) -> None:
        unit = "" if c.parameter.endswith("_frac") else " K"
        nominal = "1" if c.parameter.endswith("_frac") else "0"
        what = TRACKED_TEXT[c.parameter]
        if c.out:
            ctx.events.raise_event(
                "estimation_drift", "warning", f"{b.name}: {what} {c.value:.3f} ± {c.sigma:.3f}"
                f"{unit}, outside its band {nominal} ± {c.band:g}{unit}; trend "
                f"{c.trend_per_h:+.3f}{unit} per hour", sat=lv.sat, testbed=b.name,
                parameter=c.parameter, value=c.value, sigma=c.sigma,
                trend_per_h=c.trend_per_h, band=c.band)
        else:
            ctx.events.raise_event(
                "estimation_drift_cleared", "info", f"{b.name}: {what} back within its band "
                f"({c.value:.3f}{unit})", sat=lv.sat, testbed=b.name, parameter=c.parameter)

    def _diagnosis_event(self, d: Diagnosis, b: MirrorBinding, lv: BindingState,
                         ctx: StepContext) -> None:
        ctx.events.raise_event(
            "diagnosis", "alarm", f"{b.name}: {CAUSE_TEXT[d.cause]} ({d.confidence:.0%}): "
            f"{d.evidence}", sat=lv.sat, testbed=b.name, cause=d.cause,
            confidence=d.confidence, evidence=f"{d.evidence}: {d.why}", channel=d.channel,
            detected_after_s=d.diagnosed_s - d.detected_s, posteriors=d.posteriors)

    def fleet(self) -> dict[str, float]:
        if not self.bindings:
            return {}
        return {"mirror_diagnosed_n": float(sum(
            int(e.cause[0] != 0) for e in self.estimators if e is not None))}

    def meta(self) -> dict[str, Any]:
        return {"estimated": [self.mirror.bindings[j].name for j in self.index],
                "states": list(STATES), "tracked": list(TRACKED),
                "causes": [c for c in CAUSE_CODES if c != "none"]}

    def commands(self) -> dict[str, CommandHandler]:
        return {}

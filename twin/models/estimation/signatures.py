"""The fault-signature table: which residual pattern points at which cause.

Two kinds of evidence (docs/models.md, "State estimation and diagnosis"):

- Sensor faults show in one channel's readings themselves: a **stuck** sensor repeats the
  same value (a healthy one, with its declared noise well above its resolution, practically
  never does so for ``stuck_samples`` readings in a row); a **biased** sensor jumps: its
  innovation leaps past ``jump_sigma`` standard deviations in one sample while the other
  channel stays quiet, far faster than any heat flow can move a temperature.
- Plant faults and a drifting power sensor show as unexplained heat: the detector filter
  estimates the heat ``d = (d_c, d_r)`` (W) entering the compute node and the radiator that
  its nominal model does not explain. Each cause pushes ``d`` along its own direction
  (``HEAT_SIGNATURES``); a generalised likelihood ratio per direction, with the estimate's
  covariance, ranks them (Basseville & Nikiforov 1993, ch. 7, directional GLR tests).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CAUSES = ("radiator", "coolant", "heater", "stuck_sensor", "biased_sensor", "power_drift")
"""Every cause a diagnosis may name (also the kinds of ``odc testbed --inject``)."""
CAUSE_CODES = {"none": 0, **{cause: i + 1 for i, cause in enumerate(CAUSES)}}
"""Cause -> the enum code of the ``mirror_diagnosis_code`` field."""
CAUSE_TEXT = {
    "radiator": "radiator degradation",
    "coolant": "loss of coolant flow",
    "heater": "radiator heater failure",
    "stuck_sensor": "stuck temperature sensor",
    "biased_sensor": "biased temperature sensor",
    "power_drift": "compute power sensor drift",
}


@dataclass(frozen=True)
class HeatSignature:
    """A cause that shows as unexplained heat along ``direction`` = (d_c, d_r).

    ``two_sided``: the heat may have either sign along it (a drift up or down);
    ``needs_heater``: only possible while the heater is commanded on.
    """

    cause: str
    direction: tuple[float, float]
    two_sided: bool = False
    needs_heater: bool = False
    why: str = ""


HEAT_SIGNATURES = (
    HeatSignature("radiator", (0.0, 1.0), why="the radiator rejects less than its model: "
                  "heat is left over at the radiator, d_r > 0, d_c = 0"),
    HeatSignature("coolant", (1.0, -1.0), why="the loop carries less: heat stays in the "
                  "compute node and misses the radiator, d_c = -d_r > 0"),
    HeatSignature("heater", (0.0, -1.0), needs_heater=True, why="the heater is commanded on "
                  "but its heat is missing at the radiator, d_r < 0, d_c = 0"),
    HeatSignature("power_drift", (1.0, 0.0), two_sided=True, why="the measured power the "
                  "model burns differs from the true one: heat off at the compute node "
                  "alone, d_c != 0, d_r = 0"),
)


def heat_posteriors(heat_w: np.ndarray, heat_cov: np.ndarray, heater_on: np.ndarray
                    ) -> np.ndarray:
    """Posterior probability of each ``HEAT_SIGNATURES`` cause, per node (equal priors).

    For direction ``s`` the GLR fits the magnitude ``mu = s'W d / s'W s`` (``W`` the
    inverse covariance; one-sided causes take ``max(mu, 0)``) and scores
    ``log L = mu (s'W d) - mu^2 (s'W s) / 2``; the posteriors are the scores' softmax.

    Args:
        heat_w: (N, 2) estimated unexplained heat (d_c, d_r), W.
        heat_cov: (N, 2, 2) its covariance.
        heater_on: (N,) whether the heater is commanded on.

    Returns:
        (N, len(HEAT_SIGNATURES)) probabilities summing to 1 per node.
    """
    weight = np.linalg.inv(heat_cov + 1e-9 * np.eye(2))
    wd = np.einsum("nij,nj->ni", weight, heat_w)
    scores = np.empty((len(heat_w), len(HEAT_SIGNATURES)))
    for k, sig in enumerate(HEAT_SIGNATURES):
        s = np.asarray(sig.direction) / np.hypot(*sig.direction)
        swd = wd @ s
        sws = np.einsum("i,nij,j->n", s, weight, s)
        mu = swd / sws
        if not sig.two_sided:
            mu = np.maximum(mu, 0.0)
        scores[:, k] = mu * swd - 0.5 * mu**2 * sws
        if sig.needs_heater:
            scores[~heater_on, k] = -np.inf
    scores -= scores.max(axis=1, keepdims=True)
    p = np.exp(scores)
    return p / p.sum(axis=1, keepdims=True)

"""A mirrored node's state estimate, read from a state's arrays (shared by both viewers).

The twin's ``estimation`` model publishes per mirror binding (docs/protocol.md, "State
estimation and diagnosis of mirrored nodes"): the open-loop prediction, the estimate with
its ±1σ, the tracked parameters and the diagnosis. Beside them, the measurement is the
mirror's own ``mirror_measured_<state>``. Everything here reads arrays by name and the
catalog for units: nothing is known of the twin's models.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from viz.mirror import MirrorBinding
from viz.quantity import Catalog

ESTIMATED = ("temp_compute_k", "temp_radiator_k", "temp_junction_k")
LABELS = {"temp_compute_k": "T comp", "temp_radiator_k": "T rad",
          "temp_junction_k": "T junction"}
TRACKED = (("radiator_frac", "radiator conductance"), ("loop_frac", "loop conductance"),
           ("bias_compute_k", "T comp sensor bias"), ("bias_radiator_k", "T rad sensor bias"))


@dataclass(frozen=True)
class EstimateRow:
    """One estimated quantity of a mirrored node (K; NaN where absent)."""

    quantity: str
    label: str
    measured: float
    open_loop: float
    estimate: float
    sigma: float


@dataclass(frozen=True)
class TrackedRow:
    """One tracked parameter: value, one standard deviation, its unit (``""`` or ``K``)."""

    name: str
    label: str
    value: float
    sigma: float
    unit: str


def _value(arrays: Mapping[str, np.ndarray], name: str, j: int) -> float:
    values = arrays.get(name)
    if values is None or values.ndim != 1 or not 0 <= j < len(values):
        return math.nan
    return float(values[j])


def has_estimate(arrays: Mapping[str, np.ndarray]) -> bool:
    """Whether the state carries the estimator's fields at all."""
    return "mirror_estimate_temp_compute_k" in arrays


def estimate_rows(arrays: Mapping[str, np.ndarray], binding: MirrorBinding
                  ) -> list[EstimateRow]:
    """Measured, open loop and estimate ±1σ of each estimated quantity of ``binding``."""
    j = binding.index
    return [EstimateRow(q, LABELS[q], _value(arrays, f"mirror_measured_{q}", j),
                        _value(arrays, f"mirror_open_loop_{q}", j),
                        _value(arrays, f"mirror_estimate_{q}", j),
                        _value(arrays, f"mirror_estimate_sigma_{q}", j)) for q in ESTIMATED]


def tracked_rows(arrays: Mapping[str, np.ndarray], binding: MirrorBinding) -> list[TrackedRow]:
    j = binding.index
    return [TrackedRow(name, label, _value(arrays, f"mirror_track_{name}", j),
                       _value(arrays, f"mirror_track_sigma_{name}", j),
                       "" if name.endswith("_frac") else " K") for name, label in TRACKED]


def diagnosis_text(arrays: Mapping[str, np.ndarray], catalog: Catalog,
                   binding: MirrorBinding) -> str:
    """``radiator (99 %)``, or ``none`` (empty when the state has no diagnosis field)."""
    code = _value(arrays, "mirror_diagnosis_code", binding.index)
    if not math.isfinite(code):
        return ""
    if code == 0:
        return "none"
    name = catalog.field("mirror_diagnosis_code").label_of(code)
    confidence = _value(arrays, "mirror_diagnosis_confidence_frac", binding.index)
    return f"{name} ({confidence:.0%})" if math.isfinite(confidence) else name


def kelvin_text(catalog: Catalog, value: float) -> str:
    """A temperature in the catalog's display unit for ``temp_compute_k`` (°C)."""
    return catalog.field("temp_compute_k").format(value)


def sigma_text(sigma: float) -> str:
    """``±0.031 K``: a temperature difference in kelvin, two significant digits."""
    if not math.isfinite(sigma):
        return "—"
    return f"±{sigma:.2g} K"


def tracked_text(row: TrackedRow) -> str:
    """``0.842 ± 0.008`` or ``+1.98 ± 0.05 K``; ``held at 0 K`` for a bias not estimated.

    The twin holds a sensor's bias at zero (standard deviation 0) until a diagnosis names
    that sensor biased (docs/models.md).
    """
    if not math.isfinite(row.value):
        return "—"
    if row.unit and row.sigma == 0.0:
        return f"held at {row.value:.0f}{row.unit}"
    if row.unit:
        return f"{row.value:+.2f} ± {row.sigma:.2f}{row.unit}"
    return f"{row.value:.3f} ± {row.sigma:.3f}"


def hud_lines(arrays: Mapping[str, np.ndarray], catalog: Catalog, binding: MirrorBinding
              ) -> list[str]:
    """The 3D viewer's node-panel block: measured, open loop, estimate ±1σ; parameters."""
    if not has_estimate(arrays):
        return []
    lines = [f"{'ESTIMATE':10s}  {'measured':>9s} {'open loop':>9s} {'estimate':>9s}  ±1 sd"]
    for row in estimate_rows(arrays, binding):
        measured = ("—" if row.quantity == "temp_junction_k"
                    else kelvin_text(catalog, row.measured))
        lines.append(f"{row.label:10s}  {measured:>9s} {kelvin_text(catalog, row.open_loop):>9s}"
                     f" {kelvin_text(catalog, row.estimate):>9s}  "
                     f"{sigma_text(row.sigma)}")
    tracked = {row.name: row for row in tracked_rows(arrays, binding)}
    lines.append(f"radiator conductance {tracked_text(tracked['radiator_frac'])}, "
                 f"loop {tracked_text(tracked['loop_frac'])}")
    diagnosis = diagnosis_text(arrays, catalog, binding)
    if diagnosis:
        lines.append(f"DIAGNOSIS {diagnosis}" if diagnosis != "none" else "diagnosis: none")
    return lines

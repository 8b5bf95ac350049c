"""Faults the flatsat stand-in can develop (``odc testbed --inject KIND@T``).

Each kind is one of the causes the twin's diagnosis names (``twin.models.estimation
.signatures.CAUSES``; a test keeps the two lists equal). ``T`` is seconds after the stand-in
starts; ``KIND@T/R`` also sets the ramp ``R`` (seconds) of the faults that develop
gradually (radiator, coolant, power drift: R is then the time to reach the drift's
maximum). What each does to the stand-in, from ``T`` on:

- ``radiator``: the radiator's emissivity falls linearly to 70 % of its value over
  ``RADIATOR_RAMP_S`` (coating degradation, contamination);
- ``coolant``: the loop conductance falls to 20 % over ``COOLANT_RAMP_S`` (a failing pump);
- ``heater``: the radiator heater's element opens: its controller still reports the
  commanded power, but no heat arrives;
- ``stuck_sensor``: the radiator temperature reading freezes at its value at ``T``;
- ``biased_sensor``: the cold-plate reading jumps by ``BIAS_STEP_K`` and stays offset;
- ``power_drift``: the compute power reading drifts up at ``POWER_DRIFT_W_S`` (W/s), to at
  most ``POWER_DRIFT_MAX_W``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

FAULT_KINDS = ("radiator", "coolant", "heater", "stuck_sensor", "biased_sensor",
               "power_drift")
RADIATOR_RAMP_S = 1800.0
RADIATOR_FINAL_FRAC = 0.7
COOLANT_RAMP_S = 60.0
COOLANT_FINAL_FRAC = 0.2
BIAS_STEP_K = 2.0
POWER_DRIFT_W_S = 0.1
POWER_DRIFT_MAX_W = 60.0
MAX_INJECT_S = 1.0e7


@dataclass(frozen=True)
class Injection:
    """One fault of kind ``kind`` developing from ``at_s`` seconds after the start.

    ``ramp_s``: how long it takes to develop fully (None: the kind's default).
    """

    kind: str
    at_s: float
    ramp_s: float | None = None

    def ramp(self, default_s: float) -> float:
        return default_s if self.ramp_s is None else self.ramp_s

    def progress(self, elapsed_s: float, ramp_s: float) -> float:
        """How far the fault has developed at ``elapsed_s``: 0 before it, 1 when complete."""
        if elapsed_s < self.at_s:
            return 0.0
        return 1.0 if ramp_s <= 0.0 else min(1.0, (elapsed_s - self.at_s) / ramp_s)


def parse_injection(text: str) -> Injection:
    """``KIND@T`` (``radiator@600``) as an ``Injection``.

    Raises:
        ValueError: Naming what is wrong and what is allowed.
    """
    kind, at, when = text.partition("@")
    seconds, slash, ramp = when.partition("/")
    if not at:
        raise ValueError(f"--inject {text!r}: expected KIND@T or KIND@T/R (e.g. radiator@600 "
                         f"or radiator@600/120), KIND one of {', '.join(FAULT_KINDS)}, T "
                         "seconds after the start, R the seconds it takes to develop")
    if kind not in FAULT_KINDS:
        raise ValueError(f"--inject {text!r}: unknown fault kind {kind!r}; known: "
                         f"{', '.join(FAULT_KINDS)}")
    try:
        at_s = float(seconds)
    except ValueError:
        raise ValueError(f"--inject {text!r}: T {seconds!r} is not a number of seconds") from None
    if not (math.isfinite(at_s) and 0.0 <= at_s <= MAX_INJECT_S):
        raise ValueError(f"--inject {text!r}: T must be 0..{MAX_INJECT_S:g} s")
    if not slash:
        return Injection(kind, at_s)
    try:
        ramp_s = float(ramp)
    except ValueError:
        raise ValueError(f"--inject {text!r}: R {ramp!r} is not a number of seconds") from None
    if not (math.isfinite(ramp_s) and 0.0 <= ramp_s <= MAX_INJECT_S):
        raise ValueError(f"--inject {text!r}: R must be 0..{MAX_INJECT_S:g} s")
    return Injection(kind, at_s, ramp_s)


@dataclass
class FaultEffects:
    """What the injected faults do at one moment (1 / 0 / False: healthy)."""

    radiator_frac: float = 1.0
    loop_frac: float = 1.0
    heater_works: bool = True
    stuck_radiator: bool = False
    compute_bias_k: float = 0.0
    power_offset_w: float = 0.0


def effects_at(injections: tuple[Injection, ...], elapsed_s: float) -> FaultEffects:
    """The combined effect of ``injections`` at ``elapsed_s`` seconds after the start."""
    e = FaultEffects()
    for inj in injections:
        if elapsed_s < inj.at_s:
            continue
        if inj.kind == "radiator":
            e.radiator_frac *= 1.0 - (1.0 - RADIATOR_FINAL_FRAC) * inj.progress(
                elapsed_s, inj.ramp(RADIATOR_RAMP_S))
        elif inj.kind == "coolant":
            e.loop_frac *= 1.0 - (1.0 - COOLANT_FINAL_FRAC) * inj.progress(
                elapsed_s, inj.ramp(COOLANT_RAMP_S))
        elif inj.kind == "heater":
            e.heater_works = False
        elif inj.kind == "stuck_sensor":
            e.stuck_radiator = True
        elif inj.kind == "biased_sensor":
            e.compute_bias_k += BIAS_STEP_K
        elif inj.kind == "power_drift":
            e.power_offset_w += POWER_DRIFT_MAX_W * inj.progress(
                elapsed_s, inj.ramp(POWER_DRIFT_MAX_W / POWER_DRIFT_W_S))
    return e

"""Least-squares calibration of a mirrored node's thermal parameters from a recorded session.

The node is the compute-radiator pair of the twin's thermal network (docs/models.md,
"Bridge and mirror"), driven by the measured compute power ``P``:

    C_c dT_c/dt = P - G (T_c - T_r)
    C_r dT_r/dt = G (T_c - T_r) - k (T_r^4 - T_sink^4)

Unknowns: heat capacities ``C_c``, ``C_r`` (J/K), loop conductance ``G`` (W/K) and the
radiator's radiative coupling ``k = 2 eps sigma A`` (W/K^4, both faces). Two stages, numpy
only:

1. integral equation error: over windows of the session the equations integrate to
   ``C ΔT = ∫ heat dt``, which is linear in the unknowns, solved with ``lstsq`` (integrals
   instead of derivatives, so the 0.01 K quantization of the telemetry does not explode);
2. output error: Levenberg-Marquardt on the log-parameters, minimizing the RMS difference
   between the simulated and measured temperatures of both nodes.

The fit error is reported before (the scenario's parameters) and after. Results are
written to a scenario's ``[thermal]`` table (fleet-wide parameters: loop_ua_w_k from ``G``,
radiator_emissivity from ``k``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bridge.ccsds import Decoder, StreamSplitter
from bridge.definitions import Definitions
from bridge.sources import read_recording
from twin.core.constants import KELVIN_PER_CELSIUS, STEFAN_BOLTZMANN_W_M2_K4

MAX_GRID_POINTS = 4000
# The twin's [thermal] defaults (ThermalParams in twin/models/thermal/params.py;
# tests/test_calibrate.py checks they agree). bridge/ may import only twin.wire, twin.scenario
# and twin's leaf modules (constants, ratelog, addresses), not the models, hence the copy.
THERMAL_DEFAULTS = {
    "compute_heat_capacity_j_k": 80.0e3, "radiator_heat_capacity_j_k": 112.0e3,
    "loop_ua_w_k": 1500.0, "coolant_flow_kg_s": 0.15, "coolant_cp_j_kg_k": 4700.0,
    "radiator_area_m2": 13.5, "radiator_emissivity": 0.90, "sink_temp_k": 2.7,
}
PARAM_NAMES = ("c_compute_j_k", "c_radiator_j_k", "g_loop_w_k", "k_rad_w_k4")


@dataclass(frozen=True)
class Session:
    """A recorded session on a uniform time grid (SI).

    Attributes:
        t_s: (m,) seconds from the start.
        power_w: (m,) compute power.
        temp_compute_k, temp_radiator_k: (m,) measured temperatures.
    """

    t_s: np.ndarray
    power_w: np.ndarray
    temp_compute_k: np.ndarray
    temp_radiator_k: np.ndarray


@dataclass(frozen=True)
class Fit:
    """Calibration result: parameters (``PARAM_NAMES`` order) and RMS errors in K."""

    params: np.ndarray
    rms_before_k: float
    rms_after_k: float
    rms_equation_k: float
    iterations: int

    def as_dict(self) -> dict[str, float]:
        return dict(zip(PARAM_NAMES, map(float, self.params), strict=True))


def _to_si(name: str, values: np.ndarray) -> np.ndarray:
    return values + KELVIN_PER_CELSIUS if name.endswith("_c") else values


def load_session(recording: str | Path, defs: Definitions, power: str, temp_compute: str,
                 temp_radiator: str) -> Session:
    """Decode a recording and resample the three mapped parameters onto a uniform grid.

    Args:
        recording: ``.odcrec`` file (``odc bridge --record``).
        defs: Its packet definitions.
        power, temp_compute, temp_radiator: Parameter names (``_c`` converts to kelvin).
    """
    decoder = Decoder(defs, seq_restart_s=math.inf)
    splitter = StreamSplitter(decoder)
    series: dict[str, list[np.ndarray]] = {"t": [], power: [], temp_compute: [],
                                           temp_radiator: []}
    for t_rx, data in read_recording(recording):
        for batch in splitter.feed(data, t_rx):
            if all(p in batch.values for p in (power, temp_compute, temp_radiator)):
                series["t"].append(batch.t_utc)
                for p in (power, temp_compute, temp_radiator):
                    series[p].append(batch.values[p])
    if not series["t"]:
        raise ValueError(f"{recording}: no packet carries {power}, {temp_compute} and "
                         f"{temp_radiator} together")
    t = np.concatenate(series["t"])
    order = np.argsort(t, kind="stable")
    t = t[order]
    cols = {p: _to_si(p, np.concatenate(series[p])[order]) for p in series if p != "t"}
    if t[-1] - t[0] <= 0:
        raise ValueError(f"{recording}: the session has no duration")
    dt = max(float(np.median(np.diff(t))) if len(t) > 1 else 1.0,
             (t[-1] - t[0]) / MAX_GRID_POINTS)
    grid = np.arange(t[0], t[-1], dt)
    return Session(grid - t[0], np.interp(grid, t, cols[power]),
                   np.interp(grid, t, cols[temp_compute]), np.interp(grid, t, cols[temp_radiator]))


def simulate(session: Session, params: np.ndarray, sink_temp_k: float) -> np.ndarray:
    """Temperatures of the two-node model from the session's first measured state.

    Args:
        session: Drives (power) and the initial state.
        params: (p, 4) parameter sets (``PARAM_NAMES`` order), simulated together.
        sink_temp_k: Radiative sink temperature, K.

    Returns:
        (2, p, m) compute and radiator temperatures, K. Semi-implicit Euler on the
        conductance (exact for the linear link over a step), explicit on radiation.
    """
    params = np.atleast_2d(params)
    c_c, c_r, g, k = params.T
    m = len(session.t_s)
    out = np.empty((2, len(params), m))
    tc = np.full(len(params), session.temp_compute_k[0])
    tr = np.full(len(params), session.temp_radiator_k[0])
    out[0, :, 0], out[1, :, 0] = tc, tr
    sink4 = sink_temp_k**4
    dts = np.diff(session.t_s)
    power = session.power_w
    for i in range(1, m):
        h = dts[i - 1]
        p_w = 0.5 * (power[i - 1] + power[i])
        # Linearized backward Euler for the 2x2 system (radiation linearized about tr).
        kr3 = k * tr**3
        a11 = c_c / h + g
        a22 = c_r / h + g + 4.0 * kr3
        b1 = c_c / h * tc + p_w
        b2 = c_r / h * tr + 3.0 * kr3 * tr + k * sink4
        det = a11 * a22 - g * g
        tc, tr = (b1 * a22 + g * b2) / det, (a11 * b2 + g * b1) / det
        out[0, :, i], out[1, :, i] = tc, tr
    return out


def rms_error_k(session: Session, params: np.ndarray, sink_temp_k: float) -> np.ndarray:
    """(p,) RMS of simulated minus measured temperatures over both nodes, K."""
    sim = simulate(session, params, sink_temp_k)
    meas = np.stack((session.temp_compute_k, session.temp_radiator_k))[:, None, :]
    return np.sqrt(np.mean((sim - meas) ** 2, axis=(0, 2)))


def equation_error_fit(session: Session, sink_temp_k: float, window: int = 20) -> np.ndarray:
    """Stage 1: integral equation-error least squares. Returns (4,) parameters."""
    t, p = session.t_s, session.power_w
    tc, tr = session.temp_compute_k, session.temp_radiator_k

    def integral(y: np.ndarray) -> np.ndarray:
        cum = np.concatenate(([0.0], np.cumsum(0.5 * (y[1:] + y[:-1]) * np.diff(t))))
        return cum[window::window] - cum[:-window:window]

    d_tc = tc[window::window] - tc[:-window:window]
    d_tr = tr[window::window] - tr[:-window:window]
    i_link = integral(tc - tr)
    # C_c ΔT_c + G ∫(T_c - T_r) = ∫P
    (c_c, g), *_ = np.linalg.lstsq(np.column_stack((d_tc, i_link)), integral(p), rcond=None)
    # C_r ΔT_r + k ∫(T_r⁴ - T_s⁴) = G ∫(T_c - T_r)
    a = np.column_stack((d_tr, integral(tr**4 - sink_temp_k**4)))
    (c_r, k), *_ = np.linalg.lstsq(a, g * i_link, rcond=None)
    guess = np.array([c_c, c_r, g, k])
    # Unidentifiable or unphysical (a flat session): fall back to a positive scale.
    return np.where(guess > 0, guess, np.abs(guess) + 1e-12)


def fit(session: Session, before: np.ndarray, sink_temp_k: float, iterations: int = 40
        ) -> Fit:
    """Both stages. ``before``: (4,) the scenario's parameters, for the 'before' error."""
    rms_before = float(rms_error_k(session, before, sink_temp_k)[0])
    start = equation_error_fit(session, sink_temp_k)
    rms_eq = float(rms_error_k(session, start, sink_temp_k)[0])
    if not np.isfinite(rms_eq) or rms_eq > rms_before:
        start = before.copy()
    meas = np.concatenate((session.temp_compute_k, session.temp_radiator_k))
    x = np.log(start)
    lam = 1e-2
    step = 1e-4

    def residuals(xs: np.ndarray) -> np.ndarray:
        sim = simulate(session, np.exp(xs), sink_temp_k)
        return np.concatenate((sim[0], sim[1]), axis=1) - meas

    r = residuals(x[None])[0]
    cost = float(r @ r)
    done = 0
    for done in range(1, iterations + 1):  # noqa: B007 (reported)
        # Forward-difference Jacobian, all perturbations simulated in one pass.
        xs = np.vstack((x, x + step * np.eye(4)))
        rs = residuals(xs)
        jac = ((rs[1:] - rs[0]) / step).T
        jtj, jtr = jac.T @ jac, jac.T @ rs[0]
        improved = False
        for _ in range(10):
            delta = np.linalg.solve(jtj + lam * np.diag(np.diag(jtj) + 1e-12), -jtr)
            r_new = residuals((x + delta)[None])[0]
            new_cost = float(r_new @ r_new)
            if np.isfinite(new_cost) and new_cost < cost:
                x, r, lam, improved = x + delta, r_new, lam / 3.0, True
                converged = cost - new_cost < 1e-10 * cost
                cost = new_cost
                break
            lam *= 4.0
        if not improved or converged:
            break
    params = np.exp(x)
    return Fit(params, rms_before, float(rms_error_k(session, params, sink_temp_k)[0]), rms_eq,
               done)


# -- scenario [thermal] <-> node parameters ------------------------------------------------


def node_params(thermal: dict[str, Any]) -> np.ndarray:
    """(4,) node parameters implied by a ``[thermal]`` table (missing keys: defaults)."""
    p = {**THERMAL_DEFAULTS, **thermal}
    mc = p["coolant_flow_kg_s"] * p["coolant_cp_j_kg_k"]
    g = mc * -math.expm1(-p["loop_ua_w_k"] / mc) if mc > 0 else 0.0
    k = 2.0 * p["radiator_emissivity"] * STEFAN_BOLTZMANN_W_M2_K4 * p["radiator_area_m2"]
    return np.array([p["compute_heat_capacity_j_k"], p["radiator_heat_capacity_j_k"], g, k])


def thermal_overrides(params: np.ndarray, thermal: dict[str, Any]) -> dict[str, float]:
    """``[thermal]`` keys that realise the fitted node parameters.

    Raises:
        ValueError: The conductance exceeds what the coolant flow can carry.
    """
    p = {**THERMAL_DEFAULTS, **thermal}
    c_c, c_r, g, k = map(float, params)
    mc = p["coolant_flow_kg_s"] * p["coolant_cp_j_kg_k"]
    if not g < mc:
        raise ValueError(f"fitted loop conductance {g:.4g} W/K needs more coolant flow than "
                         f"{p['coolant_flow_kg_s']} kg/s can give ({mc:.4g} W/K)")
    out = {"compute_heat_capacity_j_k": c_c, "radiator_heat_capacity_j_k": c_r,
           "loop_ua_w_k": -mc * math.log1p(-g / mc)}
    emissivity = k / (2.0 * STEFAN_BOLTZMANN_W_M2_K4 * p["radiator_area_m2"])
    if emissivity <= 1.0:
        out["radiator_emissivity"] = emissivity
    else:  # an emissivity above 1 is impossible: the radiator must be larger instead
        out["radiator_emissivity"] = p["radiator_emissivity"]
        out["radiator_area_m2"] = k / (2.0 * STEFAN_BOLTZMANN_W_M2_K4 * p["radiator_emissivity"])
    return out


def write_thermal(text: str, values: dict[str, float], note: str) -> str:
    """Scenario TOML ``text`` with ``values`` set in its ``[thermal]`` table (added if absent)."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == "[thermal]"), None)
    if start is None:
        block = ["", f"# {note}", "[thermal]", *(f"{k} = {v:.6g}" for k, v in values.items())]
        return "\n".join(lines + block) + "\n"
    end = next((i for i in range(start + 1, len(lines))
                if lines[i].lstrip().startswith("[")), len(lines))
    remaining = dict(values)
    for i in range(start + 1, end):
        found = re.match(r"\s*(\w+)\s*=", lines[i])
        if found and found.group(1) in remaining:
            lines[i] = f"{found.group(1)} = {remaining.pop(found.group(1)):.6g}  # {note}"
    extra = [f"{k} = {v:.6g}  # {note}" for k, v in remaining.items()]
    return "\n".join(lines[:end] + extra + lines[end:]) + "\n"

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

The fit error is reported before (the scenario's parameters) and after. A fit outside
physical bounds (``check_fit``) or with a poor residual is a failure. Results are written
as a ``[[node_class]]`` for the mirrored node only (``write_node_class``): the rest of the
fleet keeps the scenario's ``[thermal]``, never a bench unit's parameters.
"""

from __future__ import annotations

import json
import math
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
# Physical bounds of a fit (check_fit). Heat capacities: a 1 kg of anything to a 100 t
# spacecraft; emissivity: below 0.05 is bare polished metal, never a radiator coating (a
# lower fit means a wrong sink temperature or radiator area, not a real surface).
CAPACITY_BOUNDS_J_K = (10.0, 1.0e8)
MIN_EMISSIVITY = 0.05
# A fit describes the unit when what it misses is the sensors' noise: its RMS error may be
# at most NOISE_FACTOR times the noise the session shows (noise_rms_k), and never less than
# RMS_FLOOR_K is asked. A wrong sink leaves a systematic error well above that (a flatsat
# session fitted against 2.7 K instead of its 250 K room: 0.2 K, against 0.006 K).
NOISE_FACTOR = 5.0
RMS_FLOOR_K = 0.05


@dataclass(frozen=True)
class Session:
    """A recorded session on a uniform time grid (SI).

    Attributes:
        t_s: (m,) seconds from the start.
        power_w: (m,) compute power.
        temp_compute_k, temp_radiator_k: (m,) measured temperatures.
        sink_temp_k: (m,) the measured sink temperature, or None (a fixed one is given).
    """

    t_s: np.ndarray
    power_w: np.ndarray
    temp_compute_k: np.ndarray
    temp_radiator_k: np.ndarray
    sink_temp_k: np.ndarray | None = None


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
                 temp_radiator: str, sink: str = "") -> Session:
    """Decode a recording and resample the mapped parameters onto a uniform grid.

    Args:
        recording: ``.odcrec`` file (``odc bridge --record``).
        defs: Its packet definitions.
        power, temp_compute, temp_radiator: Parameter names (``_c`` converts to kelvin).
        sink: A parameter measuring the sink temperature (the definition's
            ``sink_temp_param``), or ``""``.
    """
    decoder = Decoder(defs, seq_restart_s=math.inf)
    splitter = StreamSplitter(decoder)
    names = [p for p in (power, temp_compute, temp_radiator, sink) if p]
    series: dict[str, list[np.ndarray]] = {"t": [], **{p: [] for p in names}}
    for t_rx, data in read_recording(recording):
        for batch in splitter.feed(data, t_rx):
            if all(p in batch.values for p in names):
                series["t"].append(batch.t_utc)
                for p in names:
                    series[p].append(batch.values[p])
    if not series["t"]:
        raise ValueError(f"{recording}: no packet carries {', '.join(names)} together")
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
                   np.interp(grid, t, cols[temp_compute]), np.interp(grid, t, cols[temp_radiator]),
                   np.interp(grid, t, cols[sink]) if sink else None)


def simulate(session: Session, params: np.ndarray, sink_temp_k: float | np.ndarray
             ) -> np.ndarray:
    """Temperatures of the two-node model from the session's first measured state.

    Args:
        session: Drives (power) and the initial state.
        params: (p, 4) parameter sets (``PARAM_NAMES`` order), simulated together.
        sink_temp_k: Radiative sink temperature, K: one, or (m,) over the session.

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
    sink4 = np.broadcast_to(np.asarray(sink_temp_k, dtype=np.float64) ** 4, (m,))
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
        b2 = c_r / h * tr + 3.0 * kr3 * tr + k * sink4[i]
        det = a11 * a22 - g * g
        tc, tr = (b1 * a22 + g * b2) / det, (a11 * b2 + g * b1) / det
        out[0, :, i], out[1, :, i] = tc, tr
    return out


def rms_error_k(session: Session, params: np.ndarray, sink_temp_k: float | np.ndarray
                ) -> np.ndarray:
    """(p,) RMS of simulated minus measured temperatures over both nodes, K."""
    sim = simulate(session, params, sink_temp_k)
    meas = np.stack((session.temp_compute_k, session.temp_radiator_k))[:, None, :]
    return np.sqrt(np.mean((sim - meas) ** 2, axis=(0, 2)))


def equation_error_fit(session: Session, sink_temp_k: float | np.ndarray, window: int = 20
                       ) -> np.ndarray:
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


def fit(session: Session, before: np.ndarray, sink_temp_k: float | np.ndarray,
        iterations: int = 40) -> Fit:
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
        with np.errstate(over="ignore", invalid="ignore"):  # a wild step reads as inf cost
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


def thermal_overrides(params: np.ndarray, thermal: dict[str, Any],
                      radiating_area_m2: float | None = None) -> dict[str, float]:
    """``[thermal]`` keys that realise the fitted node parameters, rounded as written.

    Args:
        params: (4,) fitted parameters (``PARAM_NAMES`` order).
        thermal: The scenario's ``[thermal]`` table (coolant flow, radiator area).
        radiating_area_m2: The unit's radiating area (all faces), from its testbed
            definition; None: the scenario's radiator (both faces of ``radiator_area_m2``).

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
    # The twin's radiator radiates from two faces of radiator_area_m2: k = 2 eps sigma A.
    face_m2 = p["radiator_area_m2"] if radiating_area_m2 is None else radiating_area_m2 / 2.0
    out["radiator_area_m2"] = face_m2
    emissivity = k / (2.0 * STEFAN_BOLTZMANN_W_M2_K4 * face_m2)
    if emissivity <= 1.0 or radiating_area_m2 is not None:
        out["radiator_emissivity"] = emissivity
    else:  # an emissivity above 1 is impossible: the radiator must be larger instead
        out["radiator_emissivity"] = p["radiator_emissivity"]
        out["radiator_area_m2"] = k / (2.0 * STEFAN_BOLTZMANN_W_M2_K4 * p["radiator_emissivity"])
    # What is printed, written and read back is one set of numbers.
    return {key: float(f"{value:.6g}") for key, value in out.items()}


def noise_rms_k(session: Session) -> float:
    """The temperature sensors' noise, K: from second differences, which a smooth thermal
    response all but cancels (white noise of σ gives var = 6 σ²), robustly (median absolute
    deviation, so the power steps' kinks do not count)."""
    d2 = np.concatenate((np.diff(session.temp_compute_k, 2), np.diff(session.temp_radiator_k, 2)))
    if d2.size == 0:
        return 0.0
    mad = float(np.median(np.abs(d2 - np.median(d2))))
    return 1.4826 * mad / math.sqrt(6.0)


def max_rms_k(session: Session) -> float:
    """The largest RMS error a fit of ``session`` may keep, K (see ``NOISE_FACTOR``)."""
    return max(RMS_FLOOR_K, NOISE_FACTOR * noise_rms_k(session))


def check_fit(fitted: Fit, values: dict[str, float], max_rms_k: float) -> list[str]:
    """Why a fit cannot be written (empty: it can): parameters outside physical bounds, or
    a residual too large for the model to describe the unit."""
    problems = []
    if not np.all(np.isfinite(fitted.params)) or not np.isfinite(fitted.rms_after_k):
        return ["the fit did not converge to finite values"]
    low, high = CAPACITY_BOUNDS_J_K
    for key in ("compute_heat_capacity_j_k", "radiator_heat_capacity_j_k"):
        if not low <= values[key] <= high:
            problems.append(f"{key} = {values[key]:.6g} J/K is outside {low:g}..{high:g} J/K")
    emissivity = values["radiator_emissivity"]
    if not MIN_EMISSIVITY <= emissivity <= 1.0:
        problems.append(f"radiator_emissivity = {emissivity:.3g} is outside {MIN_EMISSIVITY:g}"
                        f"..1 for a radiating area of {2.0 * values['radiator_area_m2']:.4g}"
                        " m2: check the sink temperature and the unit's radiator area")
    if fitted.rms_after_k > max_rms_k:
        problems.append(f"the fitted model still misses the measurements by "
                        f"{fitted.rms_after_k:.3g} K RMS, more than the {max_rms_k:.3g} K the "
                        "sensors' noise allows: the session does not fit a two-node unit with "
                        "this sink (a wrong sink temperature, missing channels, or a session "
                        "without power steps); --max-rms-k raises the limit")
    return problems


CLASS_BEGIN = "# >>> odc calibrate: node class {name} (rewritten by the next calibration)"
CLASS_END = "# <<< odc calibrate: node class {name}"


def write_node_class(text: str, name: str, node: str | int, values: dict[str, float],
                     note: str) -> str:
    """Scenario TOML ``text`` with a ``[[node_class]]`` ``name`` giving ``values`` (keys of
    ``[thermal]``) to ``node`` only; a block an earlier calibration wrote under the same
    name is replaced. The fleet's ``[thermal]`` is left as it is."""
    begin, end = CLASS_BEGIN.format(name=name), CLASS_END.format(name=name)
    lines = text.rstrip("\n").splitlines()
    if begin in lines and end in lines[lines.index(begin):]:
        i = lines.index(begin)
        j = lines.index(end, i)
        del lines[i:j + 1]
        while lines and not lines[-1].strip():
            lines.pop()
    block = ["", begin, f"# {note}", "[[node_class]]", f"name = {_toml_str(name)}",
             f"nodes = [{node if isinstance(node, int) else _toml_str(node)}]",
             f"description = {_toml_str(note)}", "[node_class.thermal]",
             *(f"{k} = {v!r}" for k, v in values.items()), end]
    return "\n".join(lines + block) + "\n"


def _toml_str(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's for these characters)."""
    return json.dumps(text, ensure_ascii=False)

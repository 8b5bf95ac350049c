"""Thermal model: a four-node lumped network per satellite, stepped implicitly, all numpy.

Nodes: 0 radiator (deployed two-sided panel), 1 compute (chips, cold plates and coolant),
2 bus (structure and electronics, with a body-mounted radiator), 3 battery. Links form a
chain: radiator —pumped loop— compute —mount— bus —mount— battery, so each backward-Euler
step is a 4x4 tridiagonal solve done column-wise over the fleet (the chain's ends
eliminated into a 2x2 system for the middle two), with Newton iterations on the T⁴ terms.
Environment: direct Sun (attitude law), Earth albedo and Earth infrared through view
factors from altitude. Equations and sizing: docs/models.md.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from twin.astro.attitude import ATTITUDE_LAWS, sun_exposure
from twin.core.constants import STEFAN_BOLTZMANN_W_M2_K4
from twin.core.interfaces import (
    BATTERY,
    BUS,
    COMPUTE,
    RADIATOR,
    THERMAL_NODES,
    ThermalOutputs,
)
from twin.core.subsystem import (
    CommandHandler,
    CommandRejected,
    Field,
    StepContext,
    make_field,
    only_keys,
)
from twin.models.environment import COS_THETA_ZERO_COLUMN
from twin.models.faults import degraded_frac
from twin.models.ledger import EnergyLedger
from twin.protocol.codec import ok
from twin.protocol.commands import Arg, CommandSpec
from twin.scenario import Scenario, parse_section

NEWTON_ITERATIONS = 1  # per step: T⁴ linearized about the last state; the residual,
# 6 k T² ΔT², is < 1e-4 of the flux for the ~1 K a node moves in a 60 s step
STEADY_ITERATIONS = 40  # for the initial steady state, started far from the answer
STEADY_INV_DT = 1.0e-9  # 1/s: a 30-year step is the steady state, yet keeps a node that has
# no path to space (a scenario without a bus radiator) finite instead of singular
SETTLE_TOLERANCE_K = 1.0e-4  # the settle iterates valve <-> steady state until no node of any
# satellite moves more than this in one iteration; it contracts 7-20x an iteration (measured
# on starlink), so the state is then within ~1e-5 K of the fixed point (stated: 1 mK)
SETTLE_MAX_ITERATIONS = 30  # per round; 7-9 are used, the rest is the margin to report
SETTLE_REFINE_NEWTON = 8  # Newton iterations per solve after the first: warm-started
SETTLE_ROUNDS = 4  # discrete switches (loop heater, battery heater, valve freeze mode) only
# switch on during the settle, each at most once a satellite: 3 rounds + 1 that confirms
NODE_NAMES = THERMAL_NODES  # the node order thermal publishes its temperatures in

# Default operating limits (K) published in FieldSpec.limits; [limits] in a scenario overrides.
COMPUTE_LIMITS_K = {"alarm_low": 273.15, "warn_low": 278.15,  # chips: 0..85 °C operating
                    "warn_high": 353.15, "alarm_high": 358.15}
BATTERY_LIMITS_K = {"alarm_low": 273.15, "warn_low": 278.15,  # Li-ion: 0..45 °C operating
                    "warn_high": 313.15, "alarm_high": 318.15}
BUS_LIMITS_K = {"alarm_low": 253.15, "warn_low": 263.15,  # electronics: -20..+60 °C
                "warn_high": 323.15, "alarm_high": 333.15}
RADIATOR_LIMITS_K = {"alarm_low": 200.0, "warn_low": 205.0}  # ammonia freezes at 195.4 K


def _m(unit: str, **bounds: float) -> dict[str, Any]:
    return {"unit": unit, **bounds}


@dataclass(frozen=True)
class ThermalParams:
    """The ``[thermal]`` table. Defaults are the design point sized in docs/models.md.

    Areas are per face; capacities J/K; conductances W/K; optical properties 0..1.
    """

    attitude: str = field(default="yaw_steering", metadata={"choices": ATTITUDE_LAWS})
    albedo_frac: float = field(default=0.30, metadata=_m("1", min=0.0, max=1.0))
    earth_ir_w_m2: float = field(default=237.0, metadata=_m("W/m2", min=0.0, max=500.0))
    sink_temp_k: float = field(default=2.7, metadata=_m("K", min=0.0, max=400.0))
    radiator_area_m2: float = field(default=6.0, metadata=_m("m2", min=0.0, max=1.0e4))
    radiator_emissivity: float = field(default=0.90, metadata=_m("1", min=0.0, max=1.0))
    radiator_absorptivity: float = field(default=0.15, metadata=_m("1", min=0.0, max=1.0))
    radiator_heat_capacity_j_k: float = field(default=50.0e3, metadata=_m("J/K", gt=0.0))
    compute_heat_capacity_j_k: float = field(default=80.0e3, metadata=_m("J/K", gt=0.0))
    coolant_flow_kg_s: float = field(default=0.15, metadata=_m("kg/s", min=0.0, max=100.0))
    coolant_cp_j_kg_k: float = field(default=4700.0, metadata=_m("J/(kg K)", gt=0.0))
    loop_ua_w_k: float = field(default=1500.0, metadata=_m("W/K", min=0.0, max=1.0e7))
    loop_setpoint_k: float = field(default=298.15, metadata=_m("K", min=0.0, max=500.0))
    min_radiator_flow_frac: float = field(default=0.005, metadata=_m("1", min=0.0, max=1.0))
    valve_time_constant_s: float = field(default=300.0, metadata=_m("s", min=0.0, max=1.0e6))
    radiator_freeze_guard_k: float = field(default=211.15, metadata=_m("K", min=0.0,
                                                                       max=500.0))
    bus_radiator_area_m2: float = field(default=3.2, metadata=_m("m2", min=0.0, max=1.0e4))
    bus_emissivity: float = field(default=0.90, metadata=_m("1", min=0.0, max=1.0))
    bus_absorptivity: float = field(default=0.15, metadata=_m("1", min=0.0, max=1.0))
    bus_heat_capacity_j_k: float = field(default=300.0e3, metadata=_m("J/K", gt=0.0))
    battery_heat_capacity_j_k: float = field(default=80.0e3, metadata=_m("J/K", gt=0.0))
    compute_bus_conductance_w_k: float = field(default=2.0, metadata=_m("W/K", min=0.0))
    bus_battery_conductance_w_k: float = field(default=30.0, metadata=_m("W/K", min=0.0))

    @property
    def capacities_j_k(self) -> np.ndarray:
        """(4,) heat capacities in node order, J/K."""
        return np.array([self.radiator_heat_capacity_j_k, self.compute_heat_capacity_j_k,
                         self.bus_heat_capacity_j_k, self.battery_heat_capacity_j_k])


def loop_conductance_w_k(flow_kg_s: np.ndarray, cp_j_kg_k: float, ua_w_k: float) -> np.ndarray:
    """Pumped-loop conductance G = ṁ c_p (1 - exp(-UA / ṁ c_p)), W/K (ε-NTU, one exchanger)."""
    capacity_rate = np.asarray(flow_kg_s, dtype=np.float64) * cp_j_kg_k
    with np.errstate(divide="ignore", over="ignore"):
        return np.where(capacity_rate > 0.0,
                        capacity_rate * -np.expm1(-ua_w_k / capacity_rate), 0.0)


# --------------------------------------------------------------------------------------------
# The network solver


class _SolveConstants(NamedTuple):
    """Per-row constants of ``implicit_step`` for one dt (see there), (rows, 1) arrays."""

    c_dt: np.ndarray  # (4, 1) C / dt, W/K
    k_sink4: np.ndarray  # (2, 1) k T_sink⁴ of the radiating rows, W
    k3: np.ndarray  # (2, 1) 3 k, W/K⁴
    k4: np.ndarray  # (2, 1) 4 k, W/K⁴
    diag_const: np.ndarray  # (2, 1) the radiating rows' diagonals without the T³ term, W/K
    a_t: float  # the battery row's diagonal, W/K
    share_t: float  # g_bt / a_t


@functools.lru_cache(maxsize=16)
def _solve_constants(capacities_j_k: tuple[float, ...], inv_dt: float, g_cb: float,
                     g_bt: float, k_rad: float, k_bus: float, sink4: float) -> _SolveConstants:
    """``implicit_step``'s constants, built once per dt (read-only arrays)."""
    c_r, c_c, c_b, c_t = (c * inv_dt for c in capacities_j_k)
    k = np.array([[k_rad], [k_bus]])
    # The battery row, T_t = (r_t + g_bt T_b) / a_t with a_t = c_t + g_bt, folds into the bus
    # row: its diagonal loses g_bt² / a_t (g_bt - g_bt² / a_t = g_bt c_t / a_t, a number),
    # its right-hand side gains (g_bt / a_t) r_t.
    a_t = np.float64(c_t) + g_bt  # numpy's: a battery with neither gives inf, not an error
    arrays = [np.array([[c_r], [c_c], [c_b], [c_t]]), k * sink4, 3.0 * k, 4.0 * k,
              np.array([[c_r], [c_b + g_cb + g_bt * (c_t / a_t)]])]
    for array in arrays:
        array.flags.writeable = False
    return _SolveConstants(*arrays, a_t=a_t, share_t=g_bt / a_t)


class SolveWork:
    """Scratch for ``implicit_step`` over n satellites, kept from call to call.

    ``rows`` (10, n): four for the radiating nodes' T⁴ and T³ terms, then three pairs, each
    a per-satellite row over a row that is one number of the step's dt: [G, g_bt],
    [a_r, a_t], [G / a_r, g_bt / a_t] (see ``implicit_step``). A pair is one operand, so the
    radiator and the battery, the two ends of the chain, take one pass each. ``g_loop`` is
    the first pair's first row: a caller may write G there.

    Args:
        n_sats: Satellites.
        rows: (10, n) array to use; allocated when None.
    """

    def __init__(self, n_sats: int, rows: np.ndarray | None = None) -> None:
        self.n_sats = n_sats
        self.rows = np.empty((10, n_sats)) if rows is None else rows
        self.g_loop = self.rows[4]
        self._numbers: tuple[float, float, float] | None = None

    def fill(self, g_bt: float, a_t: float, share_t: float) -> None:
        """Set the pairs' rows of numbers (kept while they stay the same)."""
        numbers = (g_bt, a_t, share_t)
        if numbers != self._numbers:
            self.rows[5], self.rows[7], self.rows[9] = numbers
            self._numbers = numbers


def implicit_step(temps_k: np.ndarray, inv_dt: float, capacities_j_k: np.ndarray,
                  g_loop: np.ndarray | float, g_cb: float, g_bt: float,
                  k_rad: np.ndarray | float, k_bus: np.ndarray | float, heat_w: np.ndarray,
                  sink4: float, iterations: int, out: np.ndarray | None = None,
                  work: SolveWork | None = None, rhs: np.ndarray | None = None
                  ) -> np.ndarray:
    """One backward-Euler step of the chain network, Newton on the T⁴ terms.

    Solves, per satellite, C (T - T0) / dt = Q - k (T⁴ - T_sink⁴) + Σ G (T_other - T) for the
    four nodes (radiator, compute, bus, battery). ``inv_dt = 0`` gives the steady state.
    The chain's two ends are eliminated into the middle (the radiator into the compute row,
    the battery into the bus row), leaving a 2x2 system per satellite, solved by Cramer's
    rule. Rows alike in their arithmetic are handled together as (2, n) views (the
    radiating nodes, rows 0 and 2; the chain's ends, rows 0 and 3; the middle, rows 1 and
    2), halving the passes, and intermediate values live in ``work`` and in ``out`` before
    the result: few distinct arrays, so that they stay in cache.

    Args:
        temps_k: (4, n) temperatures at the start of the step, K (the first Newton guess).
        inv_dt: 1 / dt, 1/s.
        capacities_j_k: (4,) heat capacities, J/K.
        g_loop: (n,) radiator-compute conductance, W/K (or one for all).
        g_cb: compute-bus conductance, W/K.
        g_bt: bus-battery conductance, W/K.
        k_rad: (n,) ε σ A of the radiator (both faces), W/K⁴ (or one for all).
        k_bus: (n,) ε σ A of the bus radiator, W/K⁴ (or one for all).
        heat_w: (4, n) absorbed plus internal heat into each node, W.
        sink4: T_sink⁴, K⁴.
        iterations: Newton iterations.
        out: (4, n) array for the result (not ``temps_k``); allocated when None.
        work: Scratch for n satellites; allocated when None.
        rhs: (4, n) array for the right-hand sides; may be ``heat_w`` itself, which is then
            overwritten; allocated when None.

    Returns:
        (4, n) temperatures at the end of the step, K.
    """
    n = temps_k.shape[1]
    if out is None:
        out = np.empty_like(temps_k)
    if work is None:
        work = SolveWork(n)
    if rhs is None:
        rhs = np.empty_like(temps_k)
    capacities = tuple(capacities_j_k.tolist())
    if isinstance(k_rad, float) and isinstance(k_bus, float):
        k = _solve_constants(capacities, inv_dt, g_cb, g_bt, k_rad, k_bus, sink4)
    else:
        k_rows = np.empty((2, n))
        k_rows[0], k_rows[1] = k_rad, k_bus
        k = _solve_constants(capacities, inv_dt, g_cb, g_bt, 1.0, 1.0, sink4)
        k = k._replace(k_sink4=k_rows * sink4, k3=3.0 * k_rows, k4=4.0 * k_rows)
    work.fill(g_bt, k.a_t, k.share_t)
    rows = work.rows
    if g_loop is not work.g_loop:
        np.copyto(work.g_loop, g_loop)
    g_loop = work.g_loop
    # Right-hand sides that do not depend on the guess: C T0 / dt + Q, plus k T_sink⁴ on the
    # radiating rows (``out`` holds C T0 / dt until the result).
    np.add(heat_w, np.multiply(temps_k, k.c_dt, out=out), out=rhs)
    rhs[0::2] += k.k_sink4
    rhs_rb = rhs[0::2].copy() if iterations > 1 else None  # each guess adds its own term
    c_c = k.c_dt[COMPUTE, 0]
    fourth, diag = rows[0:2], rows[2:4]
    a_r, share = rows[6], rows[8]
    ends = out[0::3]  # [t_r, t_t]: first the ends' reduced right-hand sides, then the result
    guess = temps_k[0::2]
    for _ in range(iterations):
        # k T⁴ ≈ k T*⁴ + 4 k T*³ (T - T*): slope on the diagonal, 3 k T*⁴ on the right.
        np.multiply(guess, guess, out=fourth)
        np.multiply(fourth, guess, out=diag)
        fourth *= fourth
        fourth *= k.k3
        if rhs_rb is None:
            rhs[0::2] += fourth
        else:
            np.add(rhs_rb, fourth, out=rhs[0::2])
        diag *= k.k4
        diag += k.diag_const  # [radiator without the loop, bus with the battery folded in]
        d_r, d_b = diag
        # The radiator row, T_r = (r_r + G T_c) / a_r with a_r = d_r + G, folds into the
        # compute row: its diagonal becomes a_c = c_c + g_cb + G d_r / a_r, its right side
        # r_c + (G / a_r) r_r. The battery row likewise into the bus row: its right side
        # r_b + (g_bt / a_t) r_t (its diagonal's share is a number, in diag_const).
        np.add(d_r, g_loop, out=a_r)
        np.divide(g_loop, a_r, out=share)
        np.multiply(rows[8:10], rhs[0::3], out=ends)
        ends += rhs[1:3]
        a_c = d_r
        a_c *= share
        a_c += c_c + g_cb
        # Left: [a_c, -g_cb; -g_cb, d_b] [T_c; T_b] = [t_r; t_t], diagonally dominant; by
        # Cramer's rule, [T_c; T_b] = ([d_b; a_c] [t_r; t_t] + g_cb [t_t; t_r]) / det, the
        # operands (2, n) views of ``work`` and ``out`` in the order they need.
        det = np.multiply(a_c, d_b, out=share)
        det -= g_cb * g_cb
        middle = out[1:3]
        np.multiply(rows[3:1:-1], ends, out=middle)
        middle += np.multiply(out[3::-3], g_cb, out=fourth)
        middle /= det
        # The ends from their rows: [T_r; T_t] = ([r_r; r_t] + [G; g_bt] [T_c; T_b])
        # / [a_r; a_t].
        np.multiply(rows[4:6], out[1:3], out=ends)
        ends += rhs[0::3]
        ends /= rows[6:8]
        guess = out[0::2]
    return out


# --------------------------------------------------------------------------------------------
# The subsystem

# Rows of ThermalModel's scratch pool: the step's heat flows (W); heat into each node (W,
# also the solver's right-hand sides) and the bus radiator's absorbed heat, four rows after
# the radiator's so that the two are one (2, n) operand; the bus's internal heat (W); the
# solver's rows (SolveWork: the first four are scratch that each phase reuses, the albedo
# lookup, the valve, the solver, the rejected heat; then the valve's conductance, W/K).
_POOL = ("absorbed", "rejected", "generated", "heat_radiator", "heat_compute", "heat_bus",
         "heat_battery", "q_bus", "bus_internal") + ("solver",) * 10
FLOW_ROWS = slice(0, 3)
HEAT_ROWS = slice(3, 7)
ABSORBED_PAIR = slice(3, 8, 4)  # [radiator, bus radiator], W
Q_BUS, BUS_INTERNAL, SOLVER = 7, 8, 9


COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("set_coolant_flow", "the coolant loop's flow, as a fraction of design",
                "hazardous", (
        Arg("value", "number", "flow over design flow", unit="1", min=0.0, max=1.5,
            required=True),
        Arg("sat", "integer", "the node's index, or -1 for all", min=-1, default=-1),
    )),
)
"""The commands this model answers (meta.commands; docs/protocol.md)."""


FLEET_TOTALS: dict[str, tuple[str, str]] = {
    "q_absorbed_total_w": ("W", "environmental heat absorbed"),
    "q_rejected_total_w": ("W", "heat radiated to space"),
    "temp_compute_max_k": ("K", "hottest accelerator cold plate"),
    "temp_battery_min_k": ("K", "coldest battery"),
}
"""The fleet totals this model publishes: name -> (unit, description) (meta.totals)."""


class ThermalModel:
    """Temperatures and heat flows of every node, updated in place each step.

    Reads (twin.core.interfaces): ``beta_deg`` from orbit; the step's sunlight, solar flux
    and Earth view from the environment; heat from power (``payload_power_w``,
    ``bus_power_w``, ``heater_power_w``, ``loop_heater_power_w`` (into the compute node),
    ``battery_loss_w``, ``regulation_loss_w``, or compute's ``compute_power_w`` before
    power's first step) and power's ``settle_heaters_w`` while it settles (docs/models.md,
    "Starting state"); ``radiator_health_frac`` from faults. Publishes the four
    temperatures, from its first step on.

    Args:
        n_sats: Number of satellites.
        params: The ``[thermal]`` parameters.
    """

    name = "thermal"
    reads: tuple[str, ...] = ("orbit", "faults", "environment", "compute", "power")
    publishes = "thermal"

    def __init__(self, n_sats: int, params: ThermalParams | None = None) -> None:
        self.params = p = params or ThermalParams()
        self.n_sats = n = n_sats
        f = make_field
        self.temp_compute = f("temp_compute_k", "<f4", (n,), "K",
                              "Compute node: accelerators on their cold plates",
                              limits=COMPUTE_LIMITS_K)
        self.temp_radiator = f("temp_radiator_k", "<f4", (n,), "K",
                               "Deployed radiator panel (and the coolant in it)",
                               limits=RADIATOR_LIMITS_K)
        self.temp_bus = f("temp_bus_k", "<f4", (n,), "K", "Bus structure and electronics",
                          limits=BUS_LIMITS_K)
        self.temp_battery = f("temp_battery_k", "<f4", (n,), "K", "Battery cells",
                              limits=BATTERY_LIMITS_K)
        self.q_absorbed = f("q_absorbed_w", "<f4", (n,), "W",
                            "Environmental heat absorbed: Sun, albedo, Earth IR")
        self.q_rejected = f("q_rejected_w", "<f4", (n,), "W",
                            "Heat radiated to space by the radiators")
        self.q_generated = f("q_generated_w", "<f4", (n,), "W",
                             "Heat dissipated inside the node (all electrical loads and losses)")
        self.flow = f("coolant_flow_frac", "<f4", (n,), "1",
                      "Pumped-loop flow setting, fraction of the design flow", fill=1.0)
        # The four temperature fields are rows of one float32 block in node order, and the
        # three heat-flow fields rows of another: one copy each publishes them.
        self._temps_f4 = np.zeros((4, n), dtype=np.float32)
        for row, fld in zip((RADIATOR, COMPUTE, BUS, BATTERY),
                            (self.temp_radiator, self.temp_compute, self.temp_bus,
                             self.temp_battery), strict=True):
            fld.array = self._temps_f4[row]
        self._flows_f4 = np.zeros((3, n), dtype=np.float32)  # absorbed, rejected, generated
        self._temps_min = np.zeros(4, dtype=np.float32)  # of each field, NaN aside
        self.outputs = ThermalOutputs()  # published once the first step has set them
        self._fleet_sums: list[float] | None = None  # last step's absorbed, rejected totals
        self.q_absorbed.array, self.q_rejected.array, self.q_generated.array = self._flows_f4
        self.temps_k = np.full((4, n), 293.15)  # float64 state; fields are float32 copies
        self._temps_spare = np.empty((4, n))  # the next step's result goes here
        self.capacities = p.capacities_j_k
        self._g_loop = np.empty(n)  # valve fully open, W/K
        self._g_loop_min = np.empty(n)  # valve at its minimum radiator flow, W/K
        self._g_bounds: tuple[Any, Any] = (self._g_loop_min, self._g_loop)
        self._set_flow(np.ones(n, dtype=bool), 1.0)
        self._initialized = False
        # β (deg) and the albedo table's column of cos θ (see EarthView.albedo_at): the last
        # finite ones are kept. Column 60 is cos θ = 0.
        self._env = {"beta": np.zeros(n), "column": np.full(n, COS_THETA_ZERO_COLUMN)}
        # Energy ledger since the first step, J (float64): absorbed + generated - rejected
        # equals stored up to the Newton residual. Rows of one block in the order of the
        # step's flows, [absorbed, rejected, generated], so one pass adds a step.
        self._ledger = EnergyLedger(3, n)
        # Scratch, rewritten every step, in one block so that the step keeps touching the
        # same few arrays (they stay in cache): heat into each node, W (also the solver's
        # right-hand sides), then rows named by _POOL.
        self._pool = np.empty((len(_POOL), n))
        self._heat = self._pool[HEAT_ROWS]
        self._flows = self._pool[FLOW_ROWS]  # [absorbed, rejected, generated], W
        self._work = SolveWork(n, self._pool[SOLVER:])
        self._scratch = self._pool[SOLVER:SOLVER + 4]  # free between the phases' uses
        self._masks = (np.empty(n, dtype=bool), np.empty(n, dtype=bool))
        self._k_pair = np.empty(2)  # ε σ A of the radiating rows, W/K⁴, for one for all
        # Absorbed heat per face area and albedo factor, and for Earth IR, of the radiator
        # and the bus radiator, W (yaw steering: rewritten with the Sun's distance).
        self._albedo_w = np.zeros((2, 1))
        self._ir_w = np.array([[2.0 * p.radiator_area_m2 * p.radiator_emissivity],
                               [p.bus_radiator_area_m2 * p.bus_emissivity]]) * p.earth_ir_w_m2
        self._valve_numbers: tuple[float, np.ndarray, np.ndarray] | None = None
        # ε σ A of the radiator (both faces) and the bus radiator, W/K⁴, of a healthy fleet.
        self._k_healthy = (
            2.0 * p.radiator_emissivity * STEFAN_BOLTZMANN_W_M2_K4 * p.radiator_area_m2,
            p.bus_emissivity * STEFAN_BOLTZMANN_W_M2_K4 * p.bus_radiator_area_m2)
        self._temps_start = self.temps_k.copy()
        self.bad_input_steps = 0  # satellite-steps skipped for non-finite heat inputs
        self._radiator_health: np.ndarray | None = None  # this step's, None: all healthy
        # The last settle (docs/models.md, "Starting state"): satellites not converged to
        # SETTLE_TOLERANCE_K, valves started in freeze mode, and the switches started on
        # with no consistent steady state (they cycle in operation).
        self.settle_unconverged = np.zeros(0, dtype=np.intp)
        self.settle_switched_on = 0
        self.settle_cycling = np.zeros(0, dtype=np.intp)

    @classmethod
    def from_scenario(cls, scenario: Scenario) -> ThermalModel:
        return cls(len(scenario.satellites), parse_section(ThermalParams, scenario, "thermal"))

    # ---- contract

    def fields(self) -> list[Field]:
        return [self.temp_compute, self.temp_radiator, self.temp_bus, self.temp_battery,
                self.q_absorbed, self.q_rejected, self.q_generated, self.flow]

    def step(self, ctx: StepContext) -> None:
        p = self.params
        power = ctx.power
        self._radiator_health = degraded_frac(ctx.faults.radiator_health_frac)
        heat, pool = self._heat, self._pool
        flows = self._flows  # [absorbed, rejected, generated], W
        q_abs_rad, q_abs_bus = self._absorbed_w(ctx)
        np.add(q_abs_rad, q_abs_bus, out=flows[0])
        # Internal heat, W: compute node (payload and the loop heater), bus (its loads and
        # the regulation loss), battery (its heater and losses). Before power's first step
        # (never in the engine, where power steps first) the payload is compute's demand.
        payload = power.payload_power_w
        if payload is None:
            payload = ctx.compute.compute_power_w
        # The settle decides the heaters itself, from all off (docs/models.md, "Starting
        # state"), through power's thermostats when power is there.
        thermostats = None if self._initialized else power.settle_heaters_w
        if thermostats is not None:
            loop_w, battery_heater_w = thermostats(None)
        else:
            loop_w, battery_heater_w = power.loop_heater_power_w, power.heater_power_w
        # Power's block of the nodes' internal heat while no heater runs (not in the settle,
        # which switches heaters itself): [compute, bus, battery], W.
        internal = power.internal_heat_w if thermostats is None else None
        if internal is not None:
            np.copyto(heat[COMPUTE:], internal)
            heat[BUS] += q_abs_bus
        else:
            _sum_into(heat[COMPUTE], payload, loop_w)
            _sum_into(pool[BUS_INTERNAL], power.bus_power_w, power.regulation_loss_w)
            np.add(q_abs_bus, pool[BUS_INTERNAL], out=heat[BUS])
            _sum_into(heat[BATTERY], battery_heater_w, power.battery_loss_w)

        k_rad, k_bus = (self._k_healthy if self._radiator_health is None
                        else self._radiating_k())
        sink4 = p.sink_temp_k**4
        dt = float(ctx.dt_s)
        integrate = dt > 0.0
        if not self._initialized:
            # Start at the steady state of the working loads: the bus alone would otherwise
            # take hours to settle. The epoch (dt 0) has no job running yet, so the state is
            # settled again on the first timed step, whose loads include the jobs the
            # epoch's scheduling placed; that step sets the state instead of integrating.
            # What the settle switches on is this step's heater power: power's thermostats
            # start the next step from it (power's arrays, which it publishes).
            self._settle(heat, k_rad, k_bus, sink4, thermostats)
            self._report_settle(ctx)
            if integrate:
                self._initialized = True
                integrate = False
        # Generated: everything inside the node (after the settle has set the heaters).
        if internal is not None:
            generated = np.add.reduce(internal, axis=0, out=flows[2])
        else:
            generated = np.add(heat[COMPUTE], heat[BATTERY], out=flows[2])
            generated += pool[BUS_INTERNAL]
        if integrate:
            g_loop = self._valve_conductance_w_k(heat[COMPUTE], dt, out=self._work.g_loop)
            # The heat is not read after this: the solver builds its right-hand sides there.
            new = implicit_step(self.temps_k, 1.0 / dt, self.capacities, g_loop,
                                p.compute_bus_conductance_w_k, p.bus_battery_conductance_w_k,
                                k_rad, k_bus, heat, sink4, NEWTON_ITERATIONS,
                                out=self._temps_spare, work=self._work, rhs=heat)
            # A non-finite input (NaN power) must not poison a node for ever: keep its state.
            if not math.isfinite(float(np.add.reduce(new, axis=None))):
                bad = ~np.isfinite(new).all(axis=0)
                self.bad_input_steps += int(np.count_nonzero(bad))
                new[:, bad] = self.temps_k[:, bad]
                # Absorbed still counts what came in. Generated, the heat less the absorbed,
                # counts none: the node's heat is not taken in (less the bus radiator's
                # absorbed part, as the heat it is taken from includes it).
                generated[bad] = -q_abs_bus[bad]
            self._temps_spare, self.temps_k = self.temps_k, new
        temps = self.temps_k
        # Rejected: k (T⁴ - T_sink⁴) of the radiator and the bus radiator, rows 0 and 2.
        fourth = np.multiply(temps[0::2], temps[0::2], out=self._scratch[:2])
        fourth *= fourth
        if isinstance(k_rad, float) and isinstance(k_bus, float):
            k_pair = self._k_pair
            k_pair[0], k_pair[1] = k_rad, k_bus
            np.dot(k_pair, fourth, out=flows[1])  # k_r T_r⁴ + k_b T_b⁴ in one pass
            flows[1] -= (k_rad + k_bus) * sink4
        else:
            fourth -= sink4
            fourth[0] *= k_rad
            fourth[1] *= k_bus
            np.add(fourth[0], fourth[1], out=flows[1])
        np.copyto(self._temps_f4, temps, casting="same_kind")
        np.fmin.reduce(self._temps_f4, axis=1, out=self._temps_min)  # for power's thermostats
        np.copyto(self._flows_f4, flows, casting="same_kind")
        # The fleet's totals while the rows are at hand: absorbed and rejected in one pass.
        self._fleet_sums = np.add.reduce(flows[:2], axis=1).tolist()
        if integrate:
            self._ledger.add(flows, dt)
        out = self.outputs
        if out.temp_block_k is None:  # the arrays are updated in place from now on
            out.temp_compute_k, out.temp_radiator_k = (self.temp_compute.array,
                                                       self.temp_radiator.array)
            out.temp_bus_k, out.temp_battery_k = self.temp_bus.array, self.temp_battery.array
            out.temp_block_k, out.temp_min_k = self._temps_f4, self._temps_min

    def fleet(self) -> dict[str, float]:
        if self._fleet_sums is not None:  # the last step's, from its float64 rows
            absorbed_w, rejected_w = self._fleet_sums
            # The step's per-temperature minima (NaN ignored, NaN when nothing is finite).
            battery_min = float(self._temps_min[BATTERY])
            battery_min = battery_min if math.isfinite(battery_min) else 0.0
        else:
            absorbed_w = float(self.q_absorbed.array.sum(dtype=np.float64))
            rejected_w = float(self.q_rejected.array.sum(dtype=np.float64))
            battery_min = _min(self.temp_battery.array)
        return {
            "q_absorbed_total_w": absorbed_w,
            "q_rejected_total_w": rejected_w,
            "temp_compute_max_k": _max(self.temp_compute.array),
            "temp_battery_min_k": battery_min,
        }

    def meta(self) -> dict[str, Any]:
        p = self.params
        return {
            "nodes": list(NODE_NAMES),
            "attitude": p.attitude,
            "params": {k: v for k, v in vars(p).items()},
            "loop_conductance_design_w_k": float(loop_conductance_w_k(
                p.coolant_flow_kg_s, p.coolant_cp_j_kg_k, p.loop_ua_w_k)),
        }

    def commands(self) -> dict[str, CommandHandler]:
        return {"set_coolant_flow": self._cmd_set_coolant_flow}

    # ---- ledger

    @property
    def e_absorbed_j(self) -> np.ndarray:
        """(n,) environmental heat absorbed since the first step, J."""
        return self._ledger.joules()[0]

    @property
    def e_rejected_j(self) -> np.ndarray:
        """(n,) heat radiated to space since the first step, J."""
        return self._ledger.joules()[1]

    @property
    def e_generated_j(self) -> np.ndarray:
        """(n,) heat dissipated inside the node since the first step, J."""
        return self._ledger.joules()[2]

    def stored_j(self) -> np.ndarray:
        """(n,) heat stored since the first step, Σ C (T - T_start), J."""
        return self.capacities @ (self.temps_k - self._temps_start)

    def ledger_residual_j(self) -> np.ndarray:
        """(n,) absorbed + generated - rejected - stored since the first step, J."""
        return self.e_absorbed_j + self.e_generated_j - self.e_rejected_j - self.stored_j()

    # ---- internals

    def _absorbed_w(self, ctx: StepContext) -> tuple[np.ndarray, np.ndarray]:
        """Environmental heat on the radiator and bus radiator, W, written into the pool's
        rows (the radiator's heat and ``Q_BUS``) and returned, (n,) each."""
        p = self.params
        q_rad, q_bus = pair = self._pool[ABSORBED_PAIR]
        env = self._env
        yaw = p.attitude == "yaw_steering"
        beta = ctx.orbit.beta_deg
        if beta is not None and not yaw:  # yaw steering's exposure does not depend on β
            np.copyto(env["beta"], beta, where=np.isfinite(beta))
        # The step's sunlight, flux and Earth view: the environment's, the same as power's.
        environment = ctx.environment
        view, s_w_m2 = environment.earth_view, environment.solar_flux_w_m2
        sun_avg, along = environment.sunlit_step.mean, environment.sun_along_step_km
        column = env["column"]
        if along is not None:
            # cos θ = r̂·ŝ with |r| ≈ R_E H (geodetic height: < 0.3 % off at the poles), as
            # the albedo table's column r·ŝ x_scale + 60; a non-finite one keeps the last.
            if view.complete and math.isfinite(float(np.add.reduce(along, axis=None))):
                np.multiply(along, view.x_scale, out=column)  # r·ŝ finite everywhere
                column += COS_THETA_ZERO_COLUMN
            else:
                with np.errstate(invalid="ignore"):
                    ratio = along * view.x_scale
                ratio += COS_THETA_ZERO_COLUMN
                np.copyto(column, ratio, where=np.isfinite(ratio))

        f_earth = view.f_vertical
        g_albedo = view.albedo_at(column, self._scratch, self._pool[BUS_INTERNAL])
        health = self._radiator_health
        if yaw and health is None:
            # Radiators edge-on to the Sun: albedo and Earth IR only, both ∝ F. Per face,
            # q = F (a α S g + ε IR) (albedo and IR come from Earth: no eclipse factor); the
            # radiator (two faces) and the bus radiator as one (2, n) operand.
            albedo_w = p.albedo_frac * s_w_m2
            coeffs = self._albedo_w
            coeffs[0, 0] = 2.0 * p.radiator_area_m2 * p.radiator_absorptivity * albedo_w
            coeffs[1, 0] = p.bus_radiator_area_m2 * p.bus_absorptivity * albedo_w
            np.multiply(g_albedo, coeffs, out=pair)
            pair += self._ir_w
            pair *= f_earth
            return q_rad, q_bus
        exposure = sun_exposure(p.attitude, env["beta"])
        # Per m² of a vertical face: albedo and IR (no eclipse factor: they come from Earth).
        albedo_w_m2 = (p.albedo_frac * s_w_m2) * f_earth * g_albedo
        ir_w_m2 = p.earth_ir_w_m2 * f_earth
        area_rad = p.radiator_area_m2 if health is None else p.radiator_area_m2 * health
        q_rad[:] = area_rad * (p.radiator_absorptivity * (s_w_m2 * sun_avg
                                                          * exposure.radiator_cos
                                                          + 2.0 * albedo_w_m2)
                               + 2.0 * p.radiator_emissivity * ir_w_m2)
        q_bus[:] = p.bus_radiator_area_m2 * (
            p.bus_absorptivity * (s_w_m2 * sun_avg * exposure.bus_radiator_cos + albedo_w_m2)
            + p.bus_emissivity * ir_w_m2)
        return q_rad, q_bus

    def _radiating_k(self) -> tuple[np.ndarray | float, np.ndarray | float]:
        """ε σ A of the radiator (both faces, scaled by radiator health) and bus radiator,
        W/K⁴: one number each for a healthy fleet, else (n,) for the radiator."""
        k_rad, k_bus = self._k_healthy
        health = self._radiator_health
        return (k_rad if health is None else k_rad * health), k_bus

    def _settle(self, heat: np.ndarray, k_rad: np.ndarray | float, k_bus: np.ndarray | float,
                sink4: float, thermostats: Any = None) -> tuple[np.ndarray, np.ndarray] | None:
        """Set every node to the starting state for ``heat`` ((4, n) W, updated in place).

        The rule (docs/models.md, Thermal, "Starting state"): the continuous part (steady
        valve <-> steady state) is iterated to ``SETTLE_TOLERANCE_K``; the discrete part
        (the valve's freeze mode and, through ``thermostats``, power's heaters) starts off
        and only switches on, where the settled state reads cold, then settles again: the
        result depends on the loads alone, not on the first guess or an earlier state.

        Args:
            heat: (4, n) W, with the heaters off when ``thermostats`` is given.
            k_rad: ε σ A of the radiator, W/K⁴, (n,) or one for all.
            k_bus: ε σ A of the bus radiator, W/K⁴.
            sink4: T_sink⁴, K⁴.
            thermostats: Power's ``settle_heaters_w``: called with (4, n) temperatures it
                switches on the heaters whose thermostats read cold and returns (loop heater,
                battery heater) power, (n,) W each; None: the heaters are as ``heat`` has them.

        Returns:
            The heaters' (loop, battery) power at the settled state, W, or None without
            ``thermostats``. Restarts the energy ledger there; a satellite whose inputs are
            not finite keeps its temperatures.
        """
        guard_k = self.params.radiator_freeze_guard_k
        freeze_mode = np.zeros(self.n_sats, dtype=bool)
        base = heat[[COMPUTE, BATTERY]]  # copies: heat without the heaters
        heaters = None
        temps = self.temps_k
        for _ in range(SETTLE_ROUNDS):
            temps, moved = self._settle_continuous(heat, freeze_mode, temps, k_rad, k_bus,
                                                   sink4)
            # NaN reads warm: a satellite with bad inputs switches nothing.
            switched = bool(np.any(temps[RADIATOR] < guard_k, where=~freeze_mode))
            freeze_mode |= temps[RADIATOR] < guard_k
            if thermostats is not None:
                heaters = thermostats(temps)
                before = heat[[COMPUTE, BATTERY]]
                np.add(base[0], heaters[0], out=heat[COMPUTE])
                np.add(base[1], heaters[1], out=heat[BATTERY])
                switched |= not np.array_equal(heat[[COMPUTE, BATTERY]], before,
                                               equal_nan=True)
            if not switched:
                break
        self.settle_unconverged = np.flatnonzero(moved > SETTLE_TOLERANCE_K)
        self.settle_switched_on = int(np.count_nonzero(freeze_mode))
        # A switch on whose settled state reads warm enough to switch it off again has no
        # consistent steady state: it cycles in operation, and starts in its on phase.
        warm = temps[RADIATOR] >= guard_k
        self.settle_cycling = np.flatnonzero(freeze_mode & warm)
        bad = ~np.isfinite(temps).all(axis=0)
        temps[:, bad] = self.temps_k[:, bad]
        self.temps_k = temps
        self._temps_start = temps.copy()
        self._ledger.reset()
        return heaters

    def _settle_continuous(self, heat: np.ndarray, freeze_mode: np.ndarray, temps: np.ndarray,
                           k_rad: np.ndarray | float, k_bus: np.ndarray | float, sink4: float
                           ) -> tuple[np.ndarray, np.ndarray]:
        """Steady state of ``heat`` ((4, n) W) with the steady valve, iterated from ``temps``
        ((4, n) K) until no node moves more than ``SETTLE_TOLERANCE_K``.

        Returns:
            (4, n) temperatures, K, and (n,) the largest move of the last iteration, K (NaN
            for a satellite whose inputs are not finite).
        """
        p = self.params
        newton = STEADY_ITERATIONS
        moved = np.full(self.n_sats, np.inf)
        for _ in range(SETTLE_MAX_ITERATIONS):
            g_loop = self._steady_valve_w_k(heat[COMPUTE], temps, freeze_mode)
            new = implicit_step(temps, STEADY_INV_DT, self.capacities, g_loop,
                                p.compute_bus_conductance_w_k, p.bus_battery_conductance_w_k,
                                k_rad, k_bus, heat, sink4, newton, work=self._work)
            with np.errstate(invalid="ignore"):
                moved = np.abs(new - temps).max(axis=0)
            temps = new
            newton = SETTLE_REFINE_NEWTON
            if not np.any(moved > SETTLE_TOLERANCE_K):  # NaN compares false
                break
        return temps, moved

    def _steady_valve_w_k(self, compute_heat_w: np.ndarray, temps_k: np.ndarray,
                          freeze_mode: np.ndarray) -> np.ndarray:
        """The valve's steady setting, (n,) W/K, at temperatures ``temps_k`` ((4, n) K).

        Normal mode: G = P / (T_set - T_rad), fully open with the radiator at or above the
        setpoint. Freeze mode (``freeze_mode`` (n,) bool): the stepped valve passes at least
        P / (T_c - T_rad), so in steady state the mount to the bus carries nothing and the
        chips sit at the bus temperature: G >= P / (T_bus - T_rad). That is the fixed point
        of the stepped rule, solved for directly (iterating P / (T_c - T_rad) converges to
        it only by ~25 % an iteration, and not at all with no mount). Clipped to the valve's
        range.
        """
        t_rad = temps_k[RADIATOR]
        with np.errstate(divide="ignore", invalid="ignore"):
            wanted = np.where(t_rad < self.params.loop_setpoint_k,
                              compute_heat_w / (self.params.loop_setpoint_k - t_rad), np.inf)
            if freeze_mode.any():
                gap = temps_k[BUS] - t_rad
                through = np.where(freeze_mode & (gap > 0.0), compute_heat_w / gap, 0.0)
                wanted = np.fmax(wanted, through)
        g_min, g_max = self._g_bounds
        return np.clip(wanted, g_min, g_max)

    def _report_settle(self, ctx: StepContext) -> None:
        """One warning event when some satellite's starting state did not converge."""
        missed = self.settle_unconverged
        if missed.size:
            shown = ", ".join(str(int(i)) for i in missed[:10])
            ctx.events.raise_event(
                "thermal_settle", "warning",
                f"starting state of {missed.size} satellite(s) not converged to"
                f" {SETTLE_TOLERANCE_K:g} K in {SETTLE_MAX_ITERATIONS} iterations"
                f" (sats {shown}{', ...' if missed.size > 10 else ''})",
                n_sats=int(missed.size))

    def _valve_conductance_w_k(self, compute_heat_w: np.ndarray, dt_s: float,
                               temps_k: np.ndarray | None = None,
                               out: np.ndarray | None = None) -> np.ndarray:
        """Loop conductance after the radiator bypass valve, (n,) W/K, for a step of dt_s.

        The valve (a mixing valve on the radiator bypass) brings the compute node to
        ``loop_setpoint_k`` with the first-order time constant ``valve_time_constant_s``:
        it aims the step's end at T* = T_c + (T_set - T_c) dt / (τ + dt) and lets through the
        radiator the conductance that lands there, G = (P + C (T_c - T_set) / (τ + dt)) /
        (T* - T_rad), from the step's start temperatures. dt = inf gives the steady setting
        P / (T_set - T_rad). G stays between ``min_radiator_flow_frac`` of the flow (freeze
        protection: coolant keeps moving through the radiator) and all of it; with a
        radiator at or above the setpoint it is fully open. Below
        ``radiator_freeze_guard_k`` the radiator nears freezing: the valve then never
        passes less than the heat the compute node takes in (P / (T_c - T_rad)), so chips
        below the setpoint hold their temperature instead of warming on heat the radiator
        needs (the loop heater's, when power turns it on for freeze protection).

        Args:
            out: (n,) array for the result; allocated when None.
        """
        p = self.params
        temps = self.temps_k if temps_k is None else temps_k
        t_rad = temps[RADIATOR]
        t_set = p.loop_setpoint_k
        g_min, g_max = self._g_bounds
        if out is None:
            out = np.empty_like(t_rad)
        if math.isinf(dt_s):
            need_w = compute_heat_w
            gap = t_set - t_rad
        else:
            # Heat the loop must carry, P + C (T_c - T_set) / (τ + dt), W, and the gap to the
            # target, T* - T_rad = T_set + (T_c - T_set) τ / (τ + dt) - T_rad, K: both
            # linear in T_c, one (2, n) pass.
            terms = self._valve_numbers
            if terms is None or terms[0] != dt_s:
                terms = self._valve_terms(dt_s)
            need_gap = np.multiply(temps[COMPUTE], terms[1], out=self._scratch[:2])
            need_gap += terms[2]
            need_w, gap = need_gap
            need_w += compute_heat_w
            gap -= t_rad
        with np.errstate(divide="ignore", invalid="ignore"):  # and the freeze guard's
            wanted = np.divide(need_w, gap, out=out)
            # gap <= 0: the radiator is at least as warm as the target. A node that needs
            # cooling then gets all the flow there is (inf, clipped below); one that needs
            # heat gets what it asked (both < 0).
            settable, below = self._masks
            np.greater(gap, 0.0, out=settable)
            settable |= np.less(need_w, 0.0, out=below)
            settable &= np.less(t_rad, t_set, out=below)
            if np.count_nonzero(settable) < settable.size:  # any valve at a stop?
                np.putmask(wanted, np.logical_not(settable, out=settable), np.inf)
            self._freeze_guard(wanted, compute_heat_w, temps)
        np.maximum(wanted, g_min, out=wanted)
        return np.minimum(wanted, g_max, out=wanted)

    def _valve_terms(self, dt_s: float) -> tuple[float, np.ndarray, np.ndarray]:
        """dt_s, then the (2, 1) slopes in T_c and offsets of the valve's [heat to carry,
        gap to target] for a step of dt_s, kept as ``_valve_numbers``."""
        p = self.params
        tau, t_set = p.valve_time_constant_s, p.loop_setpoint_k
        per_k = self.capacities[COMPUTE] / (tau + dt_s)  # W/K of lag behind the setpoint
        share = tau / (tau + dt_s)
        self._valve_numbers = (dt_s, np.array([[per_k], [share]]),
                               np.array([[-t_set * per_k], [t_set * (1.0 - share)]]))
        return self._valve_numbers

    def _freeze_guard(self, wanted: np.ndarray, compute_heat_w: np.ndarray,
                      temps: np.ndarray) -> None:
        """Below ``radiator_freeze_guard_k`` pass at least the heat the compute node takes
        in, P / (T_c - T_rad), W/K: ``wanted`` (n,) is raised in place. Divides by zero
        where T_c = T_rad: the caller ignores floating-point errors.

        Dense over the fleet: a cold radiator is common (an idle node in eclipse), and a
        masked write costs less than gathering and scattering the cold ones.
        """
        t_rad = temps[RADIATOR]
        cold, warmer = self._masks
        if not np.count_nonzero(np.less(t_rad, self.params.radiator_freeze_guard_k, out=cold)):
            return
        gap = np.subtract(temps[COMPUTE], t_rad, out=self._scratch[0])
        cold &= np.greater(gap, 0.0, out=warmer)  # chips warmer than the radiator
        through = np.divide(compute_heat_w, gap, out=gap)  # (errors ignored by the caller)
        np.fmax(wanted, through, out=through)
        np.putmask(wanted, cold, through)

    def _set_flow(self, which: np.ndarray, flow_frac: float) -> None:
        p = self.params
        self.flow.array[which] = flow_frac
        flow_kg_s = self.flow.array * p.coolant_flow_kg_s
        self._g_loop[:] = loop_conductance_w_k(flow_kg_s, p.coolant_cp_j_kg_k, p.loop_ua_w_k)
        self._g_loop_min[:] = loop_conductance_w_k(flow_kg_s * p.min_radiator_flow_frac,
                                                   p.coolant_cp_j_kg_k, p.loop_ua_w_k)
        # One flow for the whole fleet (the usual case): the valve's bounds are numbers.
        uniform = self.n_sats > 0 and (self._g_loop == self._g_loop[0]).all() and (
            self._g_loop_min == self._g_loop_min[0]).all()
        self._g_bounds = ((float(self._g_loop_min[0]), float(self._g_loop[0])) if uniform
                          else (self._g_loop_min, self._g_loop))

    def _cmd_set_coolant_flow(self, request: dict[str, Any]) -> dict[str, Any]:
        only_keys(request, {"value", "sat"})
        value = request.get("value")
        if isinstance(value, bool) or not isinstance(value, int | float) or not (
                0.0 <= float(value) <= 1.5):
            raise CommandRejected(f"value {value!r}: expected the flow as a fraction of the"
                                  " design flow, a number in 0..1.5")
        sat = request.get("sat", -1)
        if isinstance(sat, bool) or not isinstance(sat, int) or not -1 <= sat < self.n_sats:
            raise CommandRejected(f"sat {sat!r}: expected a satellite index 0..{self.n_sats - 1}"
                                  " or -1 for all")
        which = np.ones(self.n_sats, dtype=bool) if sat == -1 else np.arange(self.n_sats) == sat
        self._set_flow(which, float(value))
        return ok(sat=sat, coolant_flow_frac=float(value),
                  loop_conductance_w_k=float(self._g_loop[max(sat, 0)]))


def _max(values: np.ndarray) -> float:
    """Largest value ignoring NaN, 0 when nothing is finite: one pass when all is finite."""
    if values.size:
        top = float(np.maximum.reduce(values, axis=None))
        if math.isfinite(top):
            return top
    return float(np.nanmax(values)) if values.size and np.isfinite(values).any() else 0.0


def _min(values: np.ndarray) -> float:
    """Smallest value ignoring NaN, 0 when nothing is finite: one pass when all is finite."""
    if values.size:
        bottom = float(np.minimum.reduce(values, axis=None))
        if math.isfinite(bottom):
            return bottom
    return float(np.nanmin(values)) if values.size and np.isfinite(values).any() else 0.0


def _sum_into(out: np.ndarray, *terms: np.ndarray | None) -> None:
    """``out`` (n,) = the sum of the terms left to right, None counting as zero."""
    present = [t for t in terms if t is not None]
    if not present:
        out[:] = 0.0
    elif len(present) == 1:
        np.copyto(out, present[0])
    else:
        np.add(present[0], present[1], out=out)
        for term in present[2:]:
            out += term

"""ThermalModel: the thermal subsystem of every satellite, stepped in place each step.

It gathers each node's heat (the radiating surfaces' absorbed heat, power's loads and
losses), sets the coolant loop's valve, steps the four-node network (``solver``), and
publishes the temperatures and heat flows; on its first steps it settles the starting
state instead (``settle``). The parts: ``params``, ``surfaces``, ``loop``, ``solver``,
``settle``. Equations and sizing: docs/models.md, "Thermal".
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from twin.core.interfaces import BATTERY, BUS, COMPUTE, RADIATOR, ThermalOutputs
from twin.core.slices import SlicePool
from twin.core.subsystem import (
    CommandHandler,
    Field,
    StepContext,
    make_field,
)
from twin.models.faults import degraded_frac
from twin.models.ledger import EnergyLedger
from twin.models.thermal.junction import DEFAULT_DIE_THROTTLE_K, DieTemperatures
from twin.models.thermal.loop import CoolantLoop, loop_conductance_w_k
from twin.models.thermal.params import (
    BATTERY_LIMITS_K,
    BUS_LIMITS_K,
    COMPUTE_LIMITS_K,
    NODE_NAMES,
    RADIATOR_LIMITS_K,
    ThermalParams,
)
from twin.models.thermal.settle import (
    PayloadAt,
    StartingState,
    Thermostats,
    report_unconverged,
)
from twin.models.thermal.solver import NEWTON_ITERATIONS, SlicedSolve, SolveWork
from twin.models.thermal.surfaces import RadiatorSurfaces
from twin.protocol.codec import ok
from twin.protocol.commands import Arg, CommandSpec, sat_arg
from twin.scenario import Scenario, parse_section
from twin.scenario.node_class import classes_meta, per_node_params

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
BUS_INTERNAL, SOLVER = 8, 9


COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("set_coolant_flow", "the coolant loop's flow, as a fraction of design",
                "hazardous", (
        Arg("value", "number", "flow over design flow", unit="1", min=0.0, max=1.5,
            required=True),
        sat_arg("the node, or all (the default)", required=False, allow_all=True),
    ), role="engineer"),
)
"""The commands this model answers (meta.commands; docs/protocol.md)."""


FLEET_TOTALS: dict[str, tuple[str, str]] = {
    "q_absorbed_total_w": ("W", "environmental heat absorbed"),
    "q_rejected_total_w": ("W", "heat radiated to space"),
    "temp_compute_max_k": ("K", "hottest accelerator cold plate"),
    "temp_junction_max_k": ("K", "hottest accelerator die (junction)"),
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
    "Starting state"); ``radiator_health_frac`` from faults; compute's
    ``accelerator_power_w`` for the die and HBM over the plate. Publishes the four node
    temperatures and the junction and HBM temperatures, from its first step on.

    Args:
        n_sats: Number of satellites.
        params: The ``[thermal]`` parameters; a per-node key (``per_node`` metadata) may be
            an (n,) array (``[[node_class]]``, twin.scenario.node_class).
        classes: The scenario's node classes, for meta.
    """

    name = "thermal"
    reads: tuple[str, ...] = ("orbit", "faults", "environment", "compute", "power",
                              "lifecycle")
    publishes = "thermal"

    def __init__(self, n_sats: int, params: ThermalParams | None = None,
                 die_throttle_k: tuple[float, float] = DEFAULT_DIE_THROTTLE_K,
                 classes: list[dict[str, Any]] | None = None) -> None:
        self.params = p = params or ThermalParams()
        self.node_classes = classes or []
        self.fleet_params = p  # the fleet-wide table (meta); from_scenario sets it
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
                            "Environmental heat absorbed: Sun, albedo, Earth IR", over="step")
        self.q_rejected = f("q_rejected_w", "<f4", (n,), "W",
                            "Heat radiated to space by the radiators", over="step")
        self.q_generated = f("q_generated_w", "<f4", (n,), "W",
                             "Heat dissipated inside the node (all electrical loads and losses)",
                             over="step")
        self.dies = DieTemperatures(n, p, die_throttle_k)
        self.temp_junction, self.temp_hbm = self.dies.junction, self.dies.hbm
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
        self._initialized = False
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
        masks = (np.empty(n, dtype=bool), np.empty(n, dtype=bool))
        self._surfaces = RadiatorSurfaces(n, p, self._pool[ABSORBED_PAIR], self._scratch,
                                          self._pool[BUS_INTERNAL])
        self._loop = CoolantLoop(n, p, self.capacities[COMPUTE], self._scratch, masks)
        self._g_loop = self._loop.g_open  # valve fully open, W/K (updated in place)
        self._set_flow(np.ones(n, dtype=bool), 1.0)
        self._starting_state = StartingState(n, p, self.capacities, self._loop, self._work)
        self._solve = SlicedSolve(self._work, self._surfaces.pool)  # the step's integration
        self._temps_start = self.temps_k.copy()
        self.bad_input_steps = 0  # satellite-steps skipped for non-finite heat inputs
        # One accelerator's power over the plate a settle found this step (None: compute's).
        self._settle_accelerator_w: np.ndarray | None = None
        self._radiator_health: np.ndarray | None = None  # this step's, None: all healthy
        # The last settle (docs/models.md, "Starting state"): satellites not converged to
        # SETTLE_TOLERANCE_K, valves started in freeze mode, and the switches started on
        # with no consistent steady state (they cycle in operation).
        self.settle_unconverged = np.zeros(0, dtype=np.intp)
        self.settle_switched_on = 0
        self.settle_cycling = np.zeros(0, dtype=np.intp)

    @classmethod
    def from_scenario(cls, scenario: Scenario, compute: Any = None) -> ThermalModel:
        """The model of a scenario; ``compute`` (its ``ComputeParams``) sets the die and HBM
        fields' limits from the throttle temperatures."""
        throttle_k = DEFAULT_DIE_THROTTLE_K if compute is None else (
            compute.throttle_temp_k, compute.hbm_throttle_temp_k)
        fleet = parse_section(ThermalParams, scenario, "thermal")
        model = cls(len(scenario.satellites), per_node_params(fleet, scenario, "thermal"),
                    throttle_k, [c for c in classes_meta(scenario) if "thermal" in c["tables"]])
        model.fleet_params = fleet
        return model

    # ---- contract

    def run_on_workers(self, workers: int) -> None:
        """Compute the surfaces' absorbed heat and the network's integration in ``workers``
        row slices on threads (the engine's ``workers``; twin.core.slices): the same bits
        for any number."""
        self.close()
        self._surfaces.pool = pool = SlicePool(self.n_sats, workers)
        self._solve = SlicedSolve(self._work, pool)

    def close(self) -> None:
        """End the row slices' threads, if any."""
        self._surfaces.pool.close()

    def fields(self) -> list[Field]:
        return [self.temp_compute, self.temp_radiator, self.temp_bus, self.temp_battery,
                self.temp_junction, self.temp_hbm, self.q_absorbed, self.q_rejected,
                self.q_generated, self.flow]

    def step(self, ctx: StepContext) -> None:
        p = self.params
        power = ctx.power
        self._radiator_health = degraded_frac(ctx.faults.radiator_health_frac)
        heat, pool = self._heat, self._pool
        flows = self._flows  # [absorbed, rejected, generated], W
        q_abs_rad, q_abs_bus = self._surfaces.absorbed_w(
            ctx.orbit, ctx.environment, self._radiator_health,
            ctx.lifecycle.radiator_absorptivity_rise)
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

        k_rad, k_bus = self._surfaces.radiating_k(self._radiator_health)
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
            payload_at = ctx.compute.settle_payload_w
            settle_payload = None if payload_at is None else (payload_at, payload)
            self._settle(heat, k_rad, k_bus, sink4, thermostats, settle_payload)
            report_unconverged(ctx.events, self.settle_unconverged)
            if integrate:
                self._initialized = True
                integrate = False
        # Generated: everything inside the node (after the settle has set the heaters).
        if internal is not None:
            generated = np.add.reduce(internal, axis=0, out=flows[2])
        else:
            generated = np.add(heat[COMPUTE], heat[BATTERY], out=flows[2])
            generated += pool[BUS_INTERNAL]
        slices = self._surfaces.pool
        if integrate:
            g_loop = self._work.g_loop
            self._loop.valve_terms(dt)  # made once, read by every slice
            slices.run(self._valve_rows, heat[COMPUTE], dt, self.temps_k, g_loop)
            # The heat is not read after this: the solver builds its right-hand sides there.
            # Column by column: in row slices on threads (``run_on_workers``).
            new = self._solve.step(self.temps_k, 1.0 / dt, self.capacities, g_loop,
                                   p.compute_bus_conductance_w_k, p.bus_battery_conductance_w_k,
                                   k_rad, k_bus, heat, sink4, NEWTON_ITERATIONS,
                                   out=self._temps_spare, rhs=heat)
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
        if self._settle_accelerator_w is not None:  # this step settled with compute's view
            dies_from = (self._settle_accelerator_w, None, None)
            self._settle_accelerator_w = None
        else:
            dies_from = (ctx.compute.accelerator_power_w, ctx.compute.compute_power_w,
                         power.payload_power_w)
        # What the rows give after the solve, in row slices on threads (elementwise).
        slices.run(self._after_solve_rows, k_rad, k_bus, sink4, dies_from)
        np.fmin.reduce(self._temps_f4, axis=1, out=self._temps_min)  # for power's thermostats
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
            out.temp_junction_k, out.temp_hbm_k = self.temp_junction.array, self.temp_hbm.array
            out.die_resistance_k_w = self.dies.rise_k_w

    def _valve_rows(self, start: int, stop: int, compute_heat_w: np.ndarray, dt_s: float,
                    temps_k: np.ndarray, out: np.ndarray) -> None:
        self._loop.valve_w_k(compute_heat_w, dt_s, temps_k, out=out, rows=slice(start, stop))

    def _after_solve_rows(self, start: int, stop: int, k_rad: np.ndarray | float,
                          k_bus: np.ndarray | float, sink4: float,
                          dies_from: tuple[Any, Any, Any]) -> None:
        """Rejected heat, the float32 copies and the dies of the satellites [start, stop)."""
        cut = slice(start, stop)
        temps, flows = self.temps_k, self._flows
        self._surfaces.rejected_w(temps, k_rad, k_bus, sink4, out=flows[1], rows=cut)
        np.copyto(self._temps_f4[:, cut], temps[:, cut], casting="same_kind")
        self.dies.update(temps[COMPUTE], *dies_from, rows=cut)
        np.copyto(self._flows_f4[:, cut], flows[:, cut], casting="same_kind")

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
            "temp_junction_max_k": _max(self.temp_junction.array),
            "temp_battery_min_k": battery_min,
        }

    def fields_rewritten(self) -> None:
        """The engine wrote the step's means into the flow fields after sub-steps: the
        totals follow from them."""
        self._fleet_sums = None

    def meta(self) -> dict[str, Any]:
        p = self.params
        # The fleet's numbers; the keys a node class sets are listed under node_classes.
        fleet = dict(vars(self.fleet_params))
        out = {
            "nodes": list(NODE_NAMES),
            "attitude": p.attitude,
            "params": fleet,
            "loop_conductance_design_w_k": float(loop_conductance_w_k(
                fleet["coolant_flow_kg_s"], fleet["coolant_cp_j_kg_k"], fleet["loop_ua_w_k"])),
        }
        if self.node_classes:
            out["node_classes"] = self.node_classes
        return out

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
        if self.capacities.ndim > 1:  # per-node capacities (a node class)
            return np.einsum("ij,ij->j", self.capacities, self.temps_k - self._temps_start)
        return self.capacities @ (self.temps_k - self._temps_start)

    def ledger_residual_j(self) -> np.ndarray:
        """(n,) absorbed + generated - rejected - stored since the first step, J."""
        return self.e_absorbed_j + self.e_generated_j - self.e_rejected_j - self.stored_j()

    # ---- internals

    def _settle(self, heat: np.ndarray, k_rad: np.ndarray | float, k_bus: np.ndarray | float,
                sink4: float, thermostats: Thermostats | None = None,
                payload: tuple[PayloadAt, np.ndarray] | None = None
                ) -> tuple[np.ndarray, np.ndarray] | None:
        """Set every node to the starting state for ``heat`` ((4, n) W, updated in place)
        (``StartingState.settle``) and restart the energy ledger there.

        Returns:
            The heaters' (loop, battery) power at the settled state, W, or None without
            ``thermostats``.
        """
        # The next step's result buffer is free in a settle step (it integrates nothing):
        # the solver's right-hand sides go there.
        settled = self._starting_state.settle(heat, self.temps_k, k_rad, k_bus, sink4,
                                              thermostats, payload, rhs=self._temps_spare)
        # The dies over the settled plate draw what the payload does there (held by the
        # throttle where it must be), not what compute asked at full clock.
        self._settle_accelerator_w = (None if payload is None
                                      else payload[0](settled.temps_k[COMPUTE])[1])
        self.settle_unconverged = settled.unconverged
        self.settle_switched_on = settled.switched_on
        self.settle_cycling = settled.cycling
        self.temps_k = settled.temps_k
        self._temps_start = settled.temps_k.copy()
        self._ledger.reset()
        return settled.heaters_w

    def _set_flow(self, which: np.ndarray, flow_frac: float) -> None:
        """Set the coolant flow of the satellites ``which`` ((n,) bool) to ``flow_frac`` of
        the design flow."""
        self.flow.array[which] = flow_frac
        self._loop.set_flow(self.flow.array)

    def _cmd_set_coolant_flow(self, request: dict[str, Any]) -> dict[str, Any]:
        """``set_coolant_flow``: ``value`` and ``sat`` (an index or ``"all"``), as checked
        against the command's declaration (twin.runtime.dispatch)."""
        value = float(request["value"])
        sat = request.get("sat", "all")
        which = np.ones(self.n_sats, dtype=bool) if sat == "all" else np.arange(self.n_sats) == sat
        self._set_flow(which, value)
        return ok(sat=sat, coolant_flow_frac=value,
                  loop_conductance_w_k=float(self._g_loop[0 if sat == "all" else sat]))


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

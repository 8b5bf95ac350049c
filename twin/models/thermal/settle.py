"""Thermal's starting state: the steady state of the first loads, with the valve and the
heaters' thermostats settled consistently with it (docs/models.md, Thermal, "Starting
state").

The bus alone would take hours to settle from a guess, so the run starts at the steady
state instead. The continuous part (steady valve <-> steady state) is iterated to
``SETTLE_TOLERANCE_K``; the discrete part (the valve's freeze mode and, through power's
thermostats, the heaters) starts off and only switches on where the settled state reads
cold, then settles again, so the result depends on the loads alone.

Each satellite iterates until it has itself converged, and settles again only where its
own switches or heat changed: a node's starting state depends on its own loads and
parameters, never on how long another node takes (a node class, docs/scenarios.md, leaves
the rest of the fleet bit for bit as it was).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from twin.core.interfaces import BATTERY, COMPUTE, RADIATOR
from twin.core.subsystem import EventLog
from twin.models.thermal.loop import CoolantLoop
from twin.models.thermal.params import ThermalParams
from twin.models.thermal.solver import SolveWork, implicit_step

STEADY_ITERATIONS = 40  # for the initial steady state, started far from the answer
STEADY_INV_DT = 1.0e-9  # 1/s: a 30-year step is the steady state, yet keeps a node that has
# no path to space (a scenario without a bus radiator) finite instead of singular
SETTLE_TOLERANCE_K = 1.0e-4  # the settle iterates valve <-> steady state until no node of any
# satellite moves more than this in one iteration; it contracts 7-20x an iteration (measured
# on starlink), so the state is then within ~1e-5 K of the fixed point (stated: 1 mK)
SETTLE_MAX_ITERATIONS = 30  # per round; 7-9 are used, the rest is the margin to report
SETTLE_REFINE_NEWTON = 8  # Newton iterations per solve after the first: warm-started
PAYLOAD_DAMPING = 0.25  # of the step towards a held payload's value, per iteration
SETTLE_ROUNDS = 4  # discrete switches (loop heater, battery heater, valve freeze mode) only
# switch on during the settle, each at most once a satellite: 3 rounds + 1 that confirms

Thermostats = Callable[[np.ndarray | None], tuple[np.ndarray, np.ndarray]]
"""Power's ``settle_heaters_w`` (``PowerOutputs``)."""
PayloadAt = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""Compute's ``settle_payload_w`` (``ComputeOutputs``): payload and one accelerator's power,
W, over given plate temperatures."""


class SettledState(NamedTuple):
    """What ``StartingState.settle`` found."""

    temps_k: np.ndarray
    """(4, n) the starting temperatures, K (a satellite whose inputs are not finite keeps
    the temperatures it had)."""
    heaters_w: tuple[np.ndarray, np.ndarray] | None
    """The heaters' (loop, battery) power at the settled state, (n,) W each, or None
    without thermostats."""
    unconverged: np.ndarray
    """Satellites not converged to ``SETTLE_TOLERANCE_K``."""
    switched_on: int
    """Valves started in freeze mode."""
    cycling: np.ndarray
    """Satellites whose valve started in freeze mode with no consistent steady state (it
    cycles in operation)."""


class StartingState:
    """Settles the thermal network of n satellites to its starting state.

    Args:
        n_sats: Satellites.
        params: The ``[thermal]`` parameters.
        capacities_j_k: (4,) heat capacities, J/K.
        loop: The coolant loop, whose valve settles with the temperatures.
        work: The solver's scratch.
    """

    def __init__(self, n_sats: int, params: ThermalParams, capacities_j_k: np.ndarray,
                 loop: CoolantLoop, work: SolveWork) -> None:
        self.n_sats = n_sats
        self.params = params
        self.capacities = capacities_j_k
        self.loop = loop
        self._work = work

    def settle(self, heat: np.ndarray, temps_k: np.ndarray, k_rad: np.ndarray | float,
               k_bus: np.ndarray | float, sink4: float,
               thermostats: Thermostats | None = None,
               payload: tuple[PayloadAt, np.ndarray] | None = None,
               rhs: np.ndarray | None = None) -> SettledState:
        """The starting state for ``heat`` ((4, n) W, updated in place), from ``temps_k``.

        The rule (docs/models.md, Thermal, "Starting state"): the continuous part (steady
        valve <-> steady state) is iterated to ``SETTLE_TOLERANCE_K``; the discrete part
        (the valve's freeze mode and, through ``thermostats``, power's heaters) starts off
        and only switches on, where the settled state reads cold, then settles again: the
        result depends on the loads alone, not on the first guess or an earlier state.

        Args:
            heat: (4, n) W, with the heaters off when ``thermostats`` is given.
            temps_k: (4, n) the first guess, K (not written).
            k_rad: ε σ A of the radiator, W/K⁴, (n,) or one for all.
            k_bus: ε σ A of the bus radiator, W/K⁴.
            sink4: T_sink⁴, K⁴.
            thermostats: Power's ``settle_heaters_w``: called with (4, n) temperatures it
                switches on the heaters whose thermostats read cold and returns (loop heater,
                battery heater) power, (n,) W each; None: the heaters are as ``heat`` has them.
            payload: Compute's ``settle_payload_w`` and the payload ``heat`` holds now,
                (n,) W: the compute node's payload then follows the plate as the steady
                state iterates (a throttled load draws less on a hotter plate); None: the
                payload is as ``heat`` has it.
            rhs: (4, n) scratch for the solver's right-hand sides (any values; neither
                ``heat`` nor ``temps_k``), or None to allocate one each iteration: at a
                million satellites 32 MB less at the settle's peak.
        """
        guard_k = self.params.radiator_freeze_guard_k
        freeze_mode = np.zeros(self.n_sats, dtype=bool)
        base = heat[[COMPUTE, BATTERY]]  # copies: heat without the heaters
        heaters = None
        temps = temps_k
        payload_at, compute_rest = None, None
        if payload is not None:  # the compute node's heat less its payload (loop heater)
            payload_at, compute_rest = payload[0], heat[COMPUTE] - payload[1]
            base[0] = compute_rest
        active = np.ones(self.n_sats, dtype=bool)  # the satellites this round settles
        moved = np.zeros(self.n_sats)
        for _ in range(SETTLE_ROUNDS):
            temps, moved_now = self._settle_continuous(heat, freeze_mode, temps, k_rad, k_bus,
                                                       sink4, payload_at, compute_rest, active,
                                                       rhs)
            np.copyto(moved, moved_now, where=active)
            # NaN reads warm: a satellite with bad inputs switches nothing.
            switched = (temps[RADIATOR] < guard_k) & ~freeze_mode
            freeze_mode |= switched
            if thermostats is not None:
                heaters = thermostats(temps)
                if payload_at is not None:
                    rest = base[0] + heaters[0]
                    compute = payload_at(temps[COMPUTE])[0] + rest
                else:
                    rest, compute = None, base[0] + heaters[0]
                battery = base[1] + heaters[1]
                # Per satellite: only one whose own heat changed settles again.
                changed = ~(_same(compute, heat[COMPUTE]) & _same(battery, heat[BATTERY]))
                switched |= changed
                np.copyto(heat[COMPUTE], compute, where=changed)
                np.copyto(heat[BATTERY], battery, where=changed)
                if rest is not None and compute_rest is not None:
                    np.copyto(compute_rest, rest, where=changed)
            if not switched.any():
                break
            active = switched
        unconverged = np.flatnonzero(moved > SETTLE_TOLERANCE_K)
        switched_on = int(np.count_nonzero(freeze_mode))
        # A switch on whose settled state reads warm enough to switch it off again has no
        # consistent steady state: it cycles in operation, and starts in its on phase.
        warm = temps[RADIATOR] >= guard_k
        cycling = np.flatnonzero(freeze_mode & warm)
        bad = ~np.isfinite(temps).all(axis=0)
        temps[:, bad] = temps_k[:, bad]
        return SettledState(temps, heaters, unconverged, switched_on, cycling)

    def _settle_continuous(self, heat: np.ndarray, freeze_mode: np.ndarray, temps: np.ndarray,
                           k_rad: np.ndarray | float, k_bus: np.ndarray | float, sink4: float,
                           payload_at: PayloadAt | None = None,
                           compute_rest: np.ndarray | None = None,
                           active: np.ndarray | None = None,
                           rhs: np.ndarray | None = None
                           ) -> tuple[np.ndarray, np.ndarray]:
        """Steady state of ``heat`` ((4, n) W) with the steady valve, iterated from ``temps``
        ((4, n) K), each satellite until it moves no more than ``SETTLE_TOLERANCE_K``, then
        held; with ``payload_at``, the compute node's heat is its payload over the plate of
        the last iteration plus ``compute_rest`` (W), updated in ``heat``.

        Args:
            active: (n,) the satellites to settle (default all); the others are held.
            rhs: The solver's scratch (``settle``).

        Returns:
            (4, n) temperatures, K, and (n,) the largest move of each satellite's last
            iteration, K (NaN for a satellite whose inputs are not finite; 0 if held).
        """
        p = self.params
        newton = STEADY_ITERATIONS
        moving = np.ones(self.n_sats, dtype=bool) if active is None else active.copy()
        moved = np.where(moving, np.inf, 0.0)
        for _ in range(SETTLE_MAX_ITERATIONS):
            if payload_at is not None and compute_rest is not None:
                # Damped: a held load draws ~230 W less per kelvin of plate, and the plate
                # moves ~1/70 K per watt in the steady state: undamped, the iteration
                # would overshoot threefold and never settle.
                target = payload_at(temps[COMPUTE])[0] + compute_rest
                step = PAYLOAD_DAMPING * (target - heat[COMPUTE])
                np.add(heat[COMPUTE], step, out=heat[COMPUTE], where=moving)
            g_loop = self.loop.steady_valve_w_k(heat[COMPUTE], temps, freeze_mode)
            new = implicit_step(temps, STEADY_INV_DT, self.capacities, g_loop,
                                p.compute_bus_conductance_w_k, p.bus_battery_conductance_w_k,
                                k_rad, k_bus, heat, sink4, newton, work=self._work,
                                rhs=rhs)
            with np.errstate(invalid="ignore"):  # in place: one (4, n) temporary, not two
                moves = np.subtract(new, temps)
                moved_now = np.abs(moves, out=moves).max(axis=0)
            del moves  # not held through the next iteration's solve
            np.copyto(new, temps, where=~moving)  # a settled satellite is held
            np.copyto(moved, moved_now, where=moving)
            temps = new
            newton = SETTLE_REFINE_NEWTON
            moving &= moved_now > SETTLE_TOLERANCE_K  # NaN compares false
            if not moving.any():
                break
        return temps, moved


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n,) where ``a`` and ``b`` hold the same number (NaN equal to NaN)."""
    return (a == b) | (np.isnan(a) & np.isnan(b))


def report_unconverged(events: EventLog, unconverged: np.ndarray) -> None:
    """One warning event when some satellite's starting state did not converge."""
    if unconverged.size:
        shown = ", ".join(str(int(i)) for i in unconverged[:10])
        events.raise_event(
            "thermal_settle", "warning",
            f"starting state of {unconverged.size} satellite(s) not converged to"
            f" {SETTLE_TOLERANCE_K:g} K in {SETTLE_MAX_ITERATIONS} iterations"
            f" (sats {shown}{', ...' if unconverged.size > 10 else ''})",
            n_sats=int(unconverged.size))

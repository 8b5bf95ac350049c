"""Thermal's radiating surfaces: the deployed radiator (two faces) and the bus radiator.

What they absorb from the environment (direct Sun by the attitude law, Earth albedo and
Earth infrared through the environment's view factors) and what they radiate to space,
k (T⁴ - T_sink⁴) with k = ε σ A. Equations: docs/models.md, "Thermal".
"""

from __future__ import annotations

import math

import numpy as np

from twin.astro.attitude import sun_exposure
from twin.core.constants import STEFAN_BOLTZMANN_W_M2_K4
from twin.core.interfaces import EnvironmentOutputs, OrbitOutputs
from twin.core.slices import SlicePool, rows_of
from twin.models.environment import COS_THETA_ZERO_COLUMN
from twin.models.thermal.params import ThermalParams


class RadiatorSurfaces:
    """Heat absorbed and rejected by the radiator and the bus radiator of n satellites.

    Args:
        n_sats: Satellites.
        params: The ``[thermal]`` parameters.
        absorbed: (2, n) rows the absorbed heat of [radiator, bus radiator] is written to, W.
        scratch: (4, n) float64 rows that each call may overwrite.
        spare: (n,) float64 row that ``absorbed_w`` may overwrite.
    """

    def __init__(self, n_sats: int, params: ThermalParams, absorbed: np.ndarray,
                 scratch: np.ndarray, spare: np.ndarray) -> None:
        p = self.params = params
        self._absorbed = absorbed
        self._scratch = scratch
        self._spare = spare
        # β (deg) and the albedo table's column of cos θ (see EarthView.albedo_at): the last
        # finite ones are kept. Column 60 is cos θ = 0.
        self._env = {"beta": np.zeros(n_sats), "column": np.full(n_sats,
                                                                 COS_THETA_ZERO_COLUMN)}
        # Absorbed heat per face area and albedo factor, and for Earth IR, of the radiator
        # and the bus radiator, W (yaw steering: rewritten with the Sun's distance).
        # (2, 1), or (2, n) when a node class gives the radiator its own area or emissivity.
        per_node = np.ndim(p.radiator_area_m2) or np.ndim(p.radiator_emissivity)
        self._albedo_w = np.zeros((2, n_sats if per_node else 1))
        self._ir_w = np.stack(np.broadcast_arrays(
            np.atleast_1d(2.0 * p.radiator_area_m2 * p.radiator_emissivity),
            np.atleast_1d(p.bus_radiator_area_m2 * p.bus_emissivity))) * p.earth_ir_w_m2
        # ε σ A of the radiator (both faces) and the bus radiator, W/K⁴, of a healthy fleet
        # (the radiator's (n,) when a node class sets its area or emissivity).
        self.k_healthy = (
            2.0 * p.radiator_emissivity * STEFAN_BOLTZMANN_W_M2_K4 * p.radiator_area_m2,
            p.bus_emissivity * STEFAN_BOLTZMANN_W_M2_K4 * p.bus_radiator_area_m2)
        self._k_pair = np.empty(2)  # ε σ A of the radiating rows, W/K⁴, for one for all
        self.pool = SlicePool(n_sats, 1)  # the row slices (ThermalModel.run_on_workers)

    def radiating_k(self, health: np.ndarray | None
                    ) -> tuple[np.ndarray | float, np.ndarray | float]:
        """ε σ A of the radiator (both faces, scaled by radiator ``health``, (n,) or None
        for healthy) and bus radiator, W/K⁴: one number each for a healthy fleet, else (n,)
        for the radiator."""
        k_rad, k_bus = self.k_healthy
        return (k_rad if health is None else k_rad * health), k_bus

    def absorbed_w(self, orbit: OrbitOutputs, environment: EnvironmentOutputs,
                   health: np.ndarray | None, absorptivity_rise: float | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
        """Environmental heat on the radiator and bus radiator, W, written into the
        ``absorbed`` rows and returned, (n,) each.

        Every satellite's heat depends on its own row alone, so the rows are computed in
        ``pool``'s slices (twin.core.slices): the same bits for any slicing.

        Args:
            orbit: Orbit's outputs (``beta_deg``).
            environment: The step's sunlight, solar flux and Earth view.
            health: (n,) radiator health (area left), or None for a healthy fleet.
            absorptivity_rise: The radiator coating's ageing (lifecycle), added to its
                solar absorptivity; None or 0 for a new coating.
        """
        p = self.params
        alpha_rad = p.radiator_absorptivity + (absorptivity_rise or 0.0)
        view, along = environment.earth_view, environment.sun_along_step_km
        # The fleet-wide test (is r·ŝ finite everywhere?) comes first, whole.
        along_finite = (along is not None and view.complete
                        and math.isfinite(float(np.add.reduce(along, axis=None))))
        yaw = p.attitude == "yaw_steering"
        if yaw and health is None:
            # Absorbed heat per face area and albedo factor: radiator (two faces), bus.
            albedo_w = p.albedo_frac * environment.solar_flux_w_m2
            coeffs = self._albedo_w
            coeffs[0] = 2.0 * p.radiator_area_m2 * alpha_rad * albedo_w
            coeffs[1] = p.bus_radiator_area_m2 * p.bus_absorptivity * albedo_w
        self.pool.run(self._absorbed_rows, orbit, environment, health, alpha_rad,
                      along_finite)
        q_rad, q_bus = self._absorbed
        return q_rad, q_bus

    def _absorbed_rows(self, start: int, stop: int, orbit: OrbitOutputs,
                       environment: EnvironmentOutputs, health: np.ndarray | None,
                       alpha_rad: float, along_finite: bool) -> None:
        """`absorbed_w` for the rows [start, stop)."""
        p = self.params
        cut = slice(start, stop)
        pair = self._absorbed[:, cut]
        q_rad, q_bus = pair
        yaw = p.attitude == "yaw_steering"
        env_beta = self._env["beta"][cut]
        beta = orbit.beta_deg
        if beta is not None and not yaw:  # yaw steering's exposure does not depend on β
            np.copyto(env_beta, beta[cut], where=np.isfinite(beta[cut]))
        # The step's sunlight, flux and Earth view: the environment's, the same as power's.
        view, s_w_m2 = environment.earth_view, environment.solar_flux_w_m2
        sun_avg, along = environment.sunlit_step.mean[cut], environment.sun_along_step_km
        column = self._env["column"][cut]
        if along is not None:
            # cos θ = r̂·ŝ with |r| ≈ R_E H (geodetic height: < 0.3 % off at the poles), as
            # the albedo table's column r·ŝ x_scale + 60; a non-finite one keeps the last.
            if along_finite:
                np.multiply(along[cut], view.x_scale[cut], out=column)
                column += COS_THETA_ZERO_COLUMN
            else:
                with np.errstate(invalid="ignore"):
                    ratio = along[cut] * view.x_scale[cut]
                ratio += COS_THETA_ZERO_COLUMN
                np.copyto(column, ratio, where=np.isfinite(ratio))

        f_earth = view.f_vertical[cut]
        g_albedo = view.albedo_at(column, np.empty((4, column.size)), self._spare[cut], cut)
        if yaw and health is None:
            # Radiators edge-on to the Sun: albedo and Earth IR only, both ∝ F. Per face,
            # q = F (a α S g + ε IR) (albedo and IR come from Earth: no eclipse factor); the
            # radiator (two faces) and the bus radiator as one (2, n) operand.
            np.multiply(g_albedo, rows_of(self._albedo_w, cut), out=pair)
            pair += rows_of(self._ir_w, cut)
            pair *= f_earth
            return
        exposure = sun_exposure(p.attitude, env_beta)
        # Per m² of a vertical face: albedo and IR (no eclipse factor: they come from Earth).
        albedo_w_m2 = (p.albedo_frac * s_w_m2) * f_earth * g_albedo
        ir_w_m2 = p.earth_ir_w_m2 * f_earth
        area = rows_of(p.radiator_area_m2, cut)
        area_rad = area if health is None else area * health[cut]
        q_rad[:] = area_rad * (alpha_rad * (s_w_m2 * sun_avg * exposure.radiator_cos
                                            + 2.0 * albedo_w_m2)
                               + 2.0 * rows_of(p.radiator_emissivity, cut) * ir_w_m2)
        q_bus[:] = p.bus_radiator_area_m2 * (
            p.bus_absorptivity * (s_w_m2 * sun_avg * exposure.bus_radiator_cos + albedo_w_m2)
            + p.bus_emissivity * ir_w_m2)

    def rejected_w(self, temps_k: np.ndarray, k_rad: np.ndarray | float,
                   k_bus: np.ndarray | float, sink4: float, out: np.ndarray,
                   rows: slice | None = None) -> None:
        """Heat radiated to space, k (T⁴ - T_sink⁴) of the radiator and the bus radiator
        (rows 0 and 2 of ``temps_k``, (4, n) K), summed into ``out`` (n,), W; for the
        satellites ``rows`` alone when given (a row slice: elementwise, the same bits for
        any slicing)."""
        cut = slice(None) if rows is None else rows
        radiating = temps_k[0::2, cut]
        fourth = np.multiply(radiating, radiating, out=self._scratch[:2, cut])
        fourth *= fourth
        if isinstance(k_rad, float) and isinstance(k_bus, float):
            fourth[0] *= k_rad
            fourth[1] *= k_bus
            np.add(fourth[0], fourth[1], out=out[cut])
            out[cut] -= (k_rad + k_bus) * sink4
        else:
            fourth -= sink4
            fourth[0] *= rows_of(k_rad, cut)
            fourth[1] *= rows_of(k_bus, cut)
            np.add(fourth[0], fourth[1], out=out[cut])

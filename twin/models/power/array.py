"""The solar arrays: output at the maximum power point, from the Sun's flux, the attitude
law's incidence, degradation and the array's quasi-steady temperature. Equations:
docs/models.md, "Power".
"""

from __future__ import annotations

import numpy as np

from twin.astro.attitude import sun_exposure
from twin.core.constants import STEFAN_BOLTZMANN_W_M2_K4
from twin.core.interfaces import EnvironmentOutputs, FaultOutputs, OrbitOutputs
from twin.core.slices import SlicePool
from twin.core.subsystem import Field
from twin.models.environment import COS_THETA_ZERO_COLUMN, earth_view_factor
from twin.models.faults import degraded_frac
from twin.models.power.params import PowerParams
from twin.models.thermal import ThermalParams


class SolarArray:
    """The arrays of n satellites.

    Args:
        n_sats: Satellites.
        params: The ``[power]`` parameters.
        thermal: The ``[thermal]`` parameters (attitude law, Earth IR).
        temp_field: The array temperature field, written each step, K.
    """

    def __init__(self, n_sats: int, params: PowerParams, thermal: ThermalParams,
                 temp_field: Field) -> None:
        self.params = params
        self.thermal = thermal
        self._temp_field = temp_field
        # The last finite β (deg) and cos θ, θ the Sun's angle from the local zenith (0: edge-on
        # to the Earth, both faces seeing it as vertical plates, until the Sun is known).
        self._env = {"beta": np.zeros(n_sats), "cos_theta": np.zeros(n_sats)}
        self._column = np.empty(n_sats)
        self._fx = np.empty(n_sats)
        # Scratch, (n,) float64: rewritten every step, never kept across one.
        self._temp = np.empty(n_sats)
        self._eta = np.empty(n_sats)
        self._eta_ref = params.array_efficiency_ref_frac  # params are frozen
        self.pool = SlicePool(n_sats, 1)  # the row slices (PowerModel.run_on_workers)

    def output_per_sunlit_w(self, orbit: OrbitOutputs, environment: EnvironmentOutputs,
                            faults: FaultOutputs) -> np.ndarray:
        """(n,) array output at maximum power point per unit visible Sun, W (this object's
        scratch, valid until the next call); sets the array temperature field.

        Every satellite's output depends on its own row alone, so the rows are computed in
        ``pool``'s slices (twin.core.slices): the same bits for any slicing.
        """
        # The one fleet-wide reduction (is any array degraded?) comes first, whole.
        health = degraded_frac(faults.solar_health_frac)
        self.pool.run(self._output_rows, orbit, environment, health)
        return self._eta

    def _output_rows(self, start: int, stop: int, orbit: OrbitOutputs,
                     environment: EnvironmentOutputs, health: np.ndarray | None) -> None:
        """`output_per_sunlit_w` for the rows [start, stop)."""
        p = self.params
        cut = slice(start, stop)
        s_w_m2, step_sun = environment.solar_flux_w_m2, environment.sunlit_step

        # Sun on the arrays per unit visible Sun, W/m²: a number under yaw steering (the
        # arrays face the Sun exactly), per satellite otherwise.
        sun_in: float | np.ndarray = s_w_m2
        if self.thermal.attitude != "yaw_steering":
            env_beta = self._env["beta"][cut]
            beta = orbit.beta_deg
            if beta is not None:
                np.copyto(env_beta, beta[cut], where=np.isfinite(beta[cut]))
            sun_in = s_w_m2 * sun_exposure(self.thermal.attitude, env_beta).array_cos
        eta_ref = self._eta_ref
        # Quasi-steady array temperature: absorbed Sun minus the electrical output, plus
        # what the Earth sends each face, radiated from both faces:
        # T⁴ = (S f (α - η) + q_earth) / (ε σ), ε = ε_f + ε_b.
        eps = p.array_emissivity_front + p.array_emissivity_back
        per_t4 = 1.0 / (eps * STEFAN_BOLTZMANN_W_M2_K4)
        temp = np.multiply(step_sun.mean[cut],
                           sun_in * ((p.array_absorptivity - eta_ref) * per_t4),
                           out=self._temp[cut])
        temp += self._earth_w_m2(environment, s_w_m2, cut) * per_t4
        np.sqrt(temp, out=temp)
        np.sqrt(temp, out=temp)
        self._temp_field.array[cut] = temp
        # Efficiency falls linearly with temperature (never below zero); with a number for
        # the Sun the output's scale is folded in too: max(x, 0) K = max(x K, 0) for K >= 0.
        scale = p.array_area_m2 * eta_ref * sun_in if isinstance(sun_in, float) else 1.0
        eta = np.multiply(temp, p.array_temp_coeff_per_k * scale, out=self._eta[cut])
        eta += (1.0 - p.array_temp_coeff_per_k * p.array_ref_temp_k) * scale
        np.maximum(eta, 0.0, out=eta)
        if health is not None:
            eta *= health[cut]
        if not isinstance(sun_in, float):
            eta *= p.array_area_m2 * eta_ref
            eta *= sun_in

    def _earth_w_m2(self, environment: EnvironmentOutputs, s_w_m2: float, cut: slice
                    ) -> np.ndarray:
        """(m,) Earth IR on both faces and albedo on the back face, absorbed per m² of
        array, W/m², for the rows ``cut`` (a fresh array).

        The array's normal lies along the Sun line, so the back face's normal makes the
        angle θ with nadir (cos θ = r̂·ŝ) and the front face's 180° - θ: flat-plate view
        factors to the sphere F_b = F(H, cos θ), F_f = F(H, -cos θ). Albedo as the
        radiators take it (no eclipse factor: it comes from the Earth), on the back face only:
        q = IR (ε_f F_f + ε_b F_b) + α_b a S F_b g(H, cos θ).
        """
        p, t = self.params, self.thermal
        view, along = environment.earth_view, environment.sun_along_step_km
        cos_theta = self._env["cos_theta"][cut]
        if along is not None:
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio = along[cut] / view.r_km[cut]
            np.copyto(cos_theta, np.clip(ratio, -1.0, 1.0), where=np.isfinite(ratio))
        h = view.h[cut]
        f_back = earth_view_factor(h, cos_theta)
        f_front = earth_view_factor(h, -cos_theta)
        column = np.multiply(cos_theta, COS_THETA_ZERO_COLUMN, out=self._column[cut])
        column += COS_THETA_ZERO_COLUMN
        g_albedo = view.albedo_at(column, np.empty((4, column.size)), self._fx[cut], cut)
        q = f_front * (t.earth_ir_w_m2 * p.array_emissivity_front)
        q += f_back * (t.earth_ir_w_m2 * p.array_emissivity_back
                       + (p.array_absorptivity_back * t.albedo_frac * s_w_m2) * g_albedo)
        return q

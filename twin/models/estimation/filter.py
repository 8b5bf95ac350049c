"""An extended Kalman filter on a mirrored node's compute-radiator network, batched over nodes.

The network is the calibration's (docs/models.md, "Bridge and mirror"): the compute node
(cold plate, chips, coolant; heat capacity ``C_c``) takes the payload's electrical power
``P`` and passes heat through the loop conductance ``G`` to the radiator (``C_r``), which
radiates with coefficient ``K = eps sigma A`` to a sink at ``T_sink``; a heater on the
radiator adds ``P_h``::

    C_c dT_c/dt = P + d_c - kappa_g G (T_c - T_r)
    C_r dT_r/dt = kappa_g G (T_c - T_r) + P_h + d_r - kappa_r K (T_r^4 - T_sink^4)
    y_c = T_c + b_c,   y_r = T_r + b_r

The state is ``[T_c, T_r]`` plus any of the augmented states in ``AUGMENTED`` (random walks):
the radiator and loop conductance factors ``kappa_r``, ``kappa_g`` (1 = nominal), the two
sensor biases ``b_c``, ``b_r`` (K) and two unknown heat inputs ``d_c``, ``d_r`` (W). It is
integrated by explicit Euler at sub-steps of at most ``MAX_SUBSTEP_S``; the transition
matrix is the product of the sub-steps' analytic Jacobians (the filter is linearised about
its own current estimate at every sub-step). Every array carries the node axis first, so
one call steps every mirrored node (no loop over nodes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.core.constants import STEFAN_BOLTZMANN_W_M2_K4

MAX_SUBSTEP_S = 0.5
AUGMENTED = ("radiator_frac", "loop_frac", "bias_compute_k", "bias_radiator_k",
             "heat_compute_w", "heat_radiator_w")
"""Names of the states a filter may add to ``[T_c, T_r]``, in their order in the state."""
CHANNELS = ("temp_compute_k", "temp_radiator_k")
"""Measured channels, in order: the cold plate (``y_c``) and the radiator (``y_r``)."""


@dataclass(frozen=True)
class NetworkParams:
    """Nominal parameters of the network, one value per node (arrays of shape (N,), SI)."""

    c_compute_j_k: np.ndarray
    c_radiator_j_k: np.ndarray
    loop_conductance_w_k: np.ndarray
    radiator_emissive_area_m2: np.ndarray  # eps * A, both faces together
    sink_temp_k: np.ndarray

    @property
    def radiator_coeff_w_k4(self) -> np.ndarray:
        return STEFAN_BOLTZMANN_W_M2_K4 * self.radiator_emissive_area_m2


@dataclass(frozen=True)
class ProcessNoise:
    """Random-walk intensities (variance growth per second) of each state."""

    temp_k2_s: float = 1.0e-6
    radiator_frac2_s: float = 1.0e-8
    loop_frac2_s: float = 1.0e-8
    bias_k2_s: float = 1.0e-9
    heat_w2_s: float = 1.0e-2

    def of(self, name: str) -> float:
        return {"radiator_frac": self.radiator_frac2_s, "loop_frac": self.loop_frac2_s,
                "bias_compute_k": self.bias_k2_s, "bias_radiator_k": self.bias_k2_s,
                "heat_compute_w": self.heat_w2_s, "heat_radiator_w": self.heat_w2_s}[name]


# The largest conductance factor an estimate may take (1 = nominal): five times the design
# is no longer a drift of the same hardware.
CONDUCTANCE_FRAC_MAX = 5.0

def nominal_augmented(name: str) -> float:
    """The healthy value of an augmented state (1 for a conductance factor, else 0)."""
    return 1.0 if name.endswith("_frac") else 0.0


class ThermalEKF:
    """The filter for N nodes at once: state ``x`` (N, n), covariance ``cov`` (N, n, n).

    Args:
        params: Nominal network parameters, arrays of shape (N,).
        augment: Names from ``AUGMENTED`` added to ``[T_c, T_r]``.
        noise: Process noise intensities.
        initial_temp_k: (N, 2) starting temperatures [T_c, T_r].
        initial_sigma: Standard deviation of each state at the start, by name
            (``temp`` for both temperatures); missing names start at 0.
    """

    def __init__(self, params: NetworkParams, augment: tuple[str, ...], noise: ProcessNoise,
                 initial_temp_k: np.ndarray, initial_sigma: dict[str, float]) -> None:
        unknown = set(augment) - set(AUGMENTED)
        if unknown:
            raise ValueError(f"unknown augmented states {sorted(unknown)}; known: {AUGMENTED}")
        self.p = params
        self.names = ("temp_compute_k", "temp_radiator_k", *augment)
        self.index = {name: i for i, name in enumerate(self.names)}
        self.noise = noise
        n_nodes, n = len(params.c_compute_j_k), len(self.names)
        self.x = np.zeros((n_nodes, n))
        self.x[:, :2] = initial_temp_k
        for name in augment:
            self.x[:, self.index[name]] = nominal_augmented(name)
        sigma = [initial_sigma.get("temp", 0.0)] * 2 + [initial_sigma.get(a, 0.0)
                                                          for a in augment]
        self.cov = np.tile(np.diag(np.square(sigma)), (n_nodes, 1, 1))
        rates = np.array([noise.temp_k2_s] * 2 + [noise.of(a) for a in augment])
        # Per node: a state held at its prior (sigma 0) takes no process noise until reopened.
        self.q_rate = np.where(np.array(sigma) > 0.0, rates, 0.0) * np.ones((n_nodes, 1))

    # -- the model ---------------------------------------------------------------------

    def _get(self, x: np.ndarray, name: str) -> np.ndarray | float:
        i = self.index.get(name)
        return x[:, i] if i is not None else nominal_augmented(name)

    def propagate(self, x: np.ndarray, dt_s: float, power_w: np.ndarray,
                  heater_w: np.ndarray, jacobian: bool = True
                  ) -> tuple[np.ndarray, np.ndarray | None]:
        """Advance states ``x`` (N, n) by ``dt_s``; the transition matrix too when asked."""
        p = self.p
        n_sub = max(1, int(np.ceil(dt_s / MAX_SUBSTEP_S)))
        h = dt_s / n_sub
        x = x.copy()
        n_nodes, n = x.shape
        phi = np.tile(np.eye(n), (n_nodes, 1, 1)) if jacobian else None
        big_k = p.radiator_coeff_w_k4
        for _ in range(n_sub):
            tc, tr = x[:, 0], x[:, 1]
            kr, kg = self._get(x, "radiator_frac"), self._get(x, "loop_frac")
            dc, dr = self._get(x, "heat_compute_w"), self._get(x, "heat_radiator_w")
            g = kg * p.loop_conductance_w_k
            flow = g * (tc - tr)
            emitted = big_k * (tr**4 - p.sink_temp_k**4)
            if jacobian:
                a = np.zeros((n_nodes, n, n))
                a[:, 0, 0] = -g / p.c_compute_j_k
                a[:, 0, 1] = g / p.c_compute_j_k
                a[:, 1, 0] = g / p.c_radiator_j_k
                a[:, 1, 1] = (-g - 4.0 * kr * big_k * tr**3) / p.c_radiator_j_k
                if "loop_frac" in self.index:
                    j = self.index["loop_frac"]
                    a[:, 0, j] = -p.loop_conductance_w_k * (tc - tr) / p.c_compute_j_k
                    a[:, 1, j] = p.loop_conductance_w_k * (tc - tr) / p.c_radiator_j_k
                if "radiator_frac" in self.index:
                    a[:, 1, self.index["radiator_frac"]] = -emitted / p.c_radiator_j_k
                if "heat_compute_w" in self.index:
                    a[:, 0, self.index["heat_compute_w"]] = 1.0 / p.c_compute_j_k
                if "heat_radiator_w" in self.index:
                    a[:, 1, self.index["heat_radiator_w"]] = 1.0 / p.c_radiator_j_k
                step = np.eye(n) + h * a
                phi = step @ phi
            x[:, 0] = tc + h * (power_w + dc - flow) / p.c_compute_j_k
            x[:, 1] = tr + h * (flow + heater_w + dr - kr * emitted) / p.c_radiator_j_k
        return x, phi

    # -- the filter --------------------------------------------------------------------

    def predict(self, dt_s: float, power_w: np.ndarray, heater_w: np.ndarray,
                power_sigma_w: np.ndarray) -> None:
        """Time update over ``dt_s``: the model moves the state and grows its covariance.

        The measured power is an input with noise ``power_sigma_w``: held over the step
        it adds ``(sigma_P dt / C_c)^2`` to the compute temperature's variance.
        """
        if dt_s <= 0.0:
            return
        self.x, phi = self.propagate(self.x, dt_s, power_w, heater_w)
        q = np.zeros_like(self.cov)
        diag = np.arange(len(self.names))
        q[:, diag, diag] = self.q_rate * dt_s
        q[:, 0, 0] += (power_sigma_w * dt_s / self.p.c_compute_j_k) ** 2
        self.cov = phi @ self.cov @ np.swapaxes(phi, 1, 2) + q
        self.cov = 0.5 * (self.cov + np.swapaxes(self.cov, 1, 2))

    def update(self, measured: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Measurement update, one channel after the other (their noises are independent).

        Args:
            measured: (N, 2) measured [T_c, T_r] (NaN: no new sample of that channel).
            sigma: (N, 2) measurement noise standard deviations (K).

        Returns:
            Innovations (N, 2) and their standard deviations (N, 2); NaN where not measured.
        """
        n_nodes, n = self.x.shape
        innovation = np.full((n_nodes, 2), np.nan)
        innovation_sd = np.full((n_nodes, 2), np.nan)
        for c, bias in ((0, "bias_compute_k"), (1, "bias_radiator_k")):
            y = measured[:, c]
            have = np.isfinite(y)
            if not have.any():
                continue
            h = np.zeros(n)
            h[c] = 1.0
            if bias in self.index:
                h[self.index[bias]] = 1.0
            ph = self.cov @ h  # (N, n)
            s = ph @ h + sigma[:, c] ** 2
            nu = np.where(have, y - self.x @ h, 0.0)
            gain = np.where(have[:, None], ph / s[:, None], 0.0)
            self.x = self.x + gain * nu[:, None]
            # Joseph form keeps the covariance symmetric and positive under rounding.
            i_kh = np.eye(n) - gain[:, :, None] * h[None, None, :]
            self.cov = (i_kh @ self.cov @ np.swapaxes(i_kh, 1, 2)
                        + (sigma[:, c] ** 2)[:, None, None] * gain[:, :, None] * gain[:, None, :])
            innovation[have, c] = nu[have]
            innovation_sd[have, c] = np.sqrt(s[have])
        # A conductance is never negative: project the estimate onto its physical range
        # (estimate projection, Simon 2010, "Kalman filtering with state constraints", IET
        # Control Theory & Applications 4(8)). Data the network cannot explain otherwise
        # pushes a factor out of it; the drift alarm and the diagnosis say so.
        for name in ("radiator_frac", "loop_frac"):
            if name in self.index:
                column = self.index[name]
                np.clip(self.x[:, column], 0.0, CONDUCTANCE_FRAC_MAX, out=self.x[:, column])
        return innovation, innovation_sd

    def sigma(self, name: str) -> np.ndarray:
        """Standard deviation of one state, per node."""
        i = self.index[name]
        return np.sqrt(np.maximum(self.cov[:, i, i], 0.0))

    def value(self, name: str) -> np.ndarray:
        return self.x[:, self.index[name]]

    def reopen(self, nodes: np.ndarray, name: str, sigma: float) -> None:
        """Give state ``name`` of ``nodes`` (bool mask) a fresh standard deviation ``sigma``.

        After a diagnosis names a parameter (a sensor's bias), its prior no longer holds:
        letting it move again lets the filter estimate its new value.
        """
        i = self.index[name]
        self.cov[nodes, i, :] = 0.0
        self.cov[nodes, :, i] = 0.0
        self.cov[nodes, i, i] = sigma**2
        self.q_rate[nodes, i] = self.noise.of(name)

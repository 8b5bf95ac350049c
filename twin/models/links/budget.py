"""Link budget: the capacity of an optical link at a range (docs/models.md).

The transmitter launches ``P_t`` into a Gaussian beam of full divergence ``θ`` (1/e²); at
range ``d`` its 1/e² radius is ``w = θ d / 2`` and a receive aperture of diameter ``D``
(radius ``a = D/2``) centred on the beam collects the fraction ``1 - exp(-2 a² / w²)`` of
it, which tends to ``2 D² / (θ² d²)``, the 1/d² law, once the beam is wider than the
aperture. The optics pass ``η``:

    P_r = η P_t (1 - exp(-2 a² / w²))

A receiver needing ``N`` photons per bit decodes ``P_r λ / (N h c)`` bit/s across all
channels, capped at the transceivers' rate (channels × channel rate).
"""

from __future__ import annotations

import numpy as np

from twin.core.constants import PLANCK_J_S, SPEED_OF_LIGHT_M_S
from twin.models.links.params import Terminal


def photon_energy_j(wavelength_m: float) -> float:
    """Energy of one photon, J (h c / λ)."""
    return PLANCK_J_S * SPEED_OF_LIGHT_M_S / wavelength_m


class LinkBudget:
    """Capacity against range for one terminal type, vectorized over links."""

    def __init__(self, terminal: Terminal) -> None:
        self.terminal = terminal
        radius_m = terminal.aperture_m / 2.0
        # -2 a² / w² = -(8 a² / θ²) / d²: one constant, so a step costs a divide and an exp.
        self._k_m2 = 8.0 * radius_m ** 2 / terminal.divergence_rad ** 2
        self._p_launch_w = terminal.optics_efficiency_frac * terminal.tx_power_w
        self._bits_per_j = 1.0 / (terminal.photons_per_bit
                                  * photon_energy_j(terminal.wavelength_m))
        self.cap_bps = terminal.rate_cap_bps
        # A hair inside the knee, so rounding there never lifts a rate to the cap early.
        self._full_rate_m = self.full_rate_range_m() * (1.0 - 1e-9)

    def received_power_w(self, range_m: np.ndarray) -> np.ndarray:
        """Optical power on the detector at ``range_m`` (m), W."""
        d2 = np.maximum(np.square(np.asarray(range_m, dtype=float)), 1e-6)
        return self._p_launch_w * -np.expm1(-self._k_m2 / d2)

    def capacity_bps(self, range_m: np.ndarray) -> np.ndarray:
        """Data rate one direction at ``range_m`` (m), bit/s."""
        range_m = np.asarray(range_m, dtype=float)
        rate = np.full(range_m.shape, self.cap_bps)
        far = range_m > self._full_rate_m  # only these fall short of the cap
        if far.any():
            rate[far] = np.minimum(self.received_power_w(range_m[far]) * self._bits_per_j,
                                   self.cap_bps)
        return rate

    def full_rate_range_m(self) -> float:
        """The range out to which the link runs at the transceivers' cap, m."""
        needed_w = self.cap_bps / self._bits_per_j
        if needed_w >= self._p_launch_w:
            return 0.0
        return float(np.sqrt(self._k_m2 / -np.log1p(-needed_w / self._p_launch_w)))

"""Optical link budget and line of sight, against hand calculations and direct geometry."""

from __future__ import annotations

import math

import numpy as np
import pytest

from twin.models.links.budget import LinkBudget
from twin.models.links.geometry import line_of_sight, segment_clearance_km
from twin.models.links.params import PRESETS

# Hand calculation (docs/models.md): P_r = eta P_t (1 - exp(-2 a^2 / w^2)), w = theta d / 2,
# rate = P_r / (N h c / lambda), capped at channels x channel rate. Constants written out.
H = 6.62607015e-34
C = 299792458.0


def hand_rate_bps(d_m: float, p_t: float, eta: float, aperture_m: float, theta: float,
                  wavelength_m: float, photons: float, cap_bps: float) -> float:
    w = theta * d_m / 2.0
    a = aperture_m / 2.0
    received = eta * p_t * (1.0 - math.exp(-2.0 * a * a / (w * w)))
    return min(received / (photons * H * C / wavelength_m), cap_bps)


@pytest.mark.parametrize(("preset", "ranges_m", "expected_bps"), [
    # SDA-class: 1 W, eta 0.3, 8 cm, 25 urad, 250 photons/bit, 2.5 Gb/s cap.
    # At 10,000 km: w = 125 m, captured 2*0.04^2/125^2 = 2.048e-7, P_r = 6.14e-8 W,
    # rate = 6.14e-8 / (250 * 1.2816e-19 J) = 1.918 Gb/s; 20,000 km a quarter of that.
    ("sda", (1.0e6, 1.0e7, 2.0e7), (2.5e9, 1.918e9, 4.795e8)),
    # Suncatcher-class: 0.5 W, eta 0.5, 10 cm, 1 mrad, 10,000 photons/bit, 8 x 100 Gb/s.
    # At 200 m w = 0.1 m, 39 % captured: capped. At 5 km P_r = 2.0e-4 W: 156 Gb/s.
    ("suncatcher", (200.0, 5.0e3, 1.0e4), (800e9, 1.560e11, 3.901e10)),
])
def test_capacity_against_a_hand_calculation_at_three_ranges(
        preset: str, ranges_m: tuple[float, ...], expected_bps: tuple[float, ...]) -> None:
    t = PRESETS[preset]
    budget = LinkBudget(t)
    got = budget.capacity_bps(np.array(ranges_m))
    for d_m, rate, printed in zip(ranges_m, got, expected_bps, strict=True):
        hand = hand_rate_bps(d_m, t.tx_power_w, t.optics_efficiency_frac, t.aperture_m,
                             t.divergence_rad, t.wavelength_m, t.photons_per_bit,
                             t.channels * t.channel_rate_bps)
        assert rate == pytest.approx(hand, rel=1e-9)  # the formula
        assert rate == pytest.approx(printed, rel=1e-3)  # the numbers worked by hand above
    # Far from the cap the rate falls as 1/d^2.
    assert got[1] / got[2] == pytest.approx((ranges_m[2] / ranges_m[1]) ** 2, rel=1e-3)


def test_full_rate_range_is_where_the_cap_meets_the_budget() -> None:
    for terminal in PRESETS.values():
        budget = LinkBudget(terminal)
        knee = budget.full_rate_range_m()
        below, above = budget.capacity_bps(np.array([knee * 0.999, knee * 1.01]))
        assert below == budget.cap_bps
        assert above < budget.cap_bps
    assert LinkBudget(PRESETS["sda"]).full_rate_range_m() > PRESETS["sda"].max_range_m


def test_clearance_against_a_sampled_segment() -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(size=(200, 3))
    b = rng.normal(size=(200, 3))
    a *= (6900.0 + 500 * rng.random(200))[:, None] / np.linalg.norm(a, axis=1, keepdims=True)
    b *= (6900.0 + 500 * rng.random(200))[:, None] / np.linalg.norm(b, axis=1, keepdims=True)
    t = np.linspace(0.0, 1.0, 20001)
    sampled = np.linalg.norm(a[:, None, :] + t[None, :, None] * (b - a)[:, None, :], axis=2)
    direct = sampled.min(axis=1)
    # The sampling step is at most ~14,000 km / 20,000: the closest sample is within ~0.1 km
    # of the segment's closest point, so within ~0.01 km in distance near the minimum.
    np.testing.assert_allclose(segment_clearance_km(a, b), direct, atol=0.05)


def test_line_of_sight_honours_the_grazing_height() -> None:
    """Two nodes at 550 km, symmetric about the line's closest point: clearance r cos(phi)."""
    r = 6378.137 + 550.0
    for grazing_km, margin_km, clear in ((80.0, 1.0, True), (80.0, -1.0, False),
                                         (0.0, -1.0, False), (200.0, 5.0, True)):
        phi = math.acos((6378.137 + grazing_km + margin_km) / r)
        a = np.array([[r * math.cos(phi), r * math.sin(phi), 0.0]])
        b = np.array([[r * math.cos(phi), -r * math.sin(phi), 0.0]])
        assert line_of_sight(a, b, grazing_km)[0] == clear
    # Neighbours 150 m apart always see each other.
    a = np.array([[r, 0.0, 0.0]])
    assert line_of_sight(a, a + np.array([0.0, 0.15, 0.0]), 80.0)[0]

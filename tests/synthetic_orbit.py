"""Analytic circular orbits for thermal and power tests: geometry without SGP4 or ephemerides.

The Sun sits on +x at 1 AU. An orbit of beta angle β has its normal ĥ = (sin β, 0, cos β),
so ŝ·ĥ = sin β exactly, and argument u = 0 at orbit noon (closest to the Sun's direction).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from twin.astro.geometry import WGS84_A_KM, sunlit_fraction
from twin.core.subsystem import EventLog, StepContext

AU_KM = 149_597_870.7
MU_EARTH_KM3_S2 = 398_600.4418


def period_s(alt_km: float) -> float:
    """Circular orbit period, s."""
    r_km = WGS84_A_KM + alt_km
    return 2.0 * math.pi * math.sqrt(r_km**3 / MU_EARTH_KM3_S2)


def cylinder_eclipse_fraction(alt_km: float, beta_deg: float) -> float:
    """Fraction of a circular orbit in a cylindrical Earth shadow.

    f = acos(sqrt(h² + 2 R h) / (r cos β)) / π for |β| below β* = asin(R / r), else 0
    (Gilmore, Spacecraft Thermal Control Handbook, eq. 2.5; R = 6378.137 km).
    """
    r_km = WGS84_A_KM + alt_km
    beta = math.radians(beta_deg)
    if abs(beta) >= math.asin(WGS84_A_KM / r_km):
        return 0.0
    return math.acos(math.sqrt(alt_km**2 + 2.0 * WGS84_A_KM * alt_km)
                     / (r_km * math.cos(beta))) / math.pi


def positions_km(t_s: np.ndarray | float, alt_km: float, beta_deg: float,
                 u0_rad: float = 0.0) -> np.ndarray:
    """(len(t), 3) positions on the orbit at times t (s), argument u0 at t = 0."""
    r_km = WGS84_A_KM + alt_km
    beta = math.radians(beta_deg)
    e1 = np.array([math.cos(beta), 0.0, -math.sin(beta)])
    e2 = np.array([0.0, 1.0, 0.0])
    u = u0_rad + 2.0 * math.pi * np.atleast_1d(np.asarray(t_s, dtype=float)) / period_s(alt_km)
    return r_km * (np.cos(u)[:, None] * e1 + np.sin(u)[:, None] * e2)


SUN_KM = np.array([AU_KM, 0.0, 0.0])


def shared_at(t_s: float, alt_km: np.ndarray, beta_deg: np.ndarray,
              u0_rad: np.ndarray) -> dict[str, Any]:
    """What orbit would put in ``ctx.shared`` for satellites on analytic orbits at time t."""
    pos = np.stack([positions_km(t_s, a, b, u)[0]
                    for a, b, u in zip(alt_km, beta_deg, u0_rad, strict=True)])
    return {
        "pos_gcrs_km": pos,
        "sun_gcrs_km": SUN_KM,
        "sunlit_frac": sunlit_fraction(pos, SUN_KM).astype(np.float32),
        "beta_deg": np.asarray(beta_deg, dtype=np.float32),
        "alt_km": np.asarray(alt_km, dtype=np.float64),
    }


def run_models(models: list, duration_s: float, dt_s: float, alt_km: np.ndarray,
               beta_deg: np.ndarray, u0_rad: np.ndarray, record: list[str],
               extra_shared: dict[str, Any] | None = None) -> tuple[np.ndarray, dict, list]:
    """Step models (power, thermal, ...) over analytic orbits; record shared keys each step.

    Returns:
        times (s), {key: (steps, n) array}, events.
    """
    events = EventLog()
    shared: dict[str, Any] = dict(extra_shared or {})
    rng = np.random.default_rng(0)
    n_steps = round(duration_s / dt_s)
    times = np.arange(n_steps + 1) * dt_s
    out: dict[str, list] = {k: [] for k in record}
    for k, t in enumerate(times):
        shared.update(shared_at(float(t), alt_km, beta_deg, u0_rad))
        ctx = StepContext(float(t), 0.0 if k == 0 else dt_s, events, rng, shared)
        for model in models:
            model.step(ctx)
        for key in record:
            out[key].append(np.array(shared[key], dtype=np.float64))
    return times, {k: np.array(v) for k, v in out.items()}, events.drain()

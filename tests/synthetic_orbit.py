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
from twin.models.environment import EnvironmentModel

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
    """What orbit would publish for satellites on analytic orbits at time t, by name."""
    pos = np.stack([positions_km(t_s, a, b, u)[0]
                    for a, b, u in zip(alt_km, beta_deg, u0_rad, strict=True)])
    return {
        "pos_gcrs_km": pos,
        "sun_gcrs_km": SUN_KM,
        "sunlit_frac": sunlit_fraction(pos, SUN_KM).astype(np.float32),
        "beta_deg": np.asarray(beta_deg, dtype=np.float32),
        "alt_km": np.asarray(alt_km, dtype=np.float64),
    }


class ModelStand:
    """Steps models alone on given quantities, as the engine would around them.

    The quantities (by name, twin.core.interfaces) stand in for the models left out; the
    environment is stepped first on them, as the engine does; each model stepped publishes
    its own outputs to the ones after it (and, next step, before it).

    Args:
        n_sats: Satellites.
        quantities: Initial quantities by name (``sunlit_frac``, ``payload_power_w``, ...).
    """

    def __init__(self, n_sats: int, **quantities: Any) -> None:
        self.environment = EnvironmentModel(n_sats)
        self.quantities = dict(quantities)
        self.context: StepContext | None = None

    def step(self, models: list, t_utc: float, dt_s: float, events: EventLog,
             rng: np.random.Generator, **updates: Any) -> StepContext:
        """One step of ``models`` (after the environment), the quantities updated first."""
        self.quantities.update(updates)
        ctx = StepContext.with_quantities(t_utc, dt_s, events, rng, **self.quantities)
        for model in models:
            if getattr(model, "publishes", None) is not None:
                setattr(ctx, model.publishes, model.outputs)
        ctx.environment = self.environment.outputs
        self.environment.step(ctx)
        for model in models:
            model.step(ctx)
        self.context = ctx
        return ctx


def run_models(models: list, duration_s: float, dt_s: float, alt_km: np.ndarray,
               beta_deg: np.ndarray, u0_rad: np.ndarray, record: list[str],
               extra_shared: dict[str, Any] | None = None) -> tuple[np.ndarray, dict, list]:
    """Step models (power, thermal, ...) over analytic orbits; record quantities each step.

    Returns:
        times (s), {name: (steps, n) array}, events.
    """
    events = EventLog()
    stand = ModelStand(len(alt_km), **(extra_shared or {}))
    rng = np.random.default_rng(0)
    n_steps = round(duration_s / dt_s)
    times = np.arange(n_steps + 1) * dt_s
    out: dict[str, list] = {k: [] for k in record}
    for k, t in enumerate(times):
        ctx = stand.step(models, float(t), 0.0 if k == 0 else dt_s, events, rng,
                         **shared_at(float(t), alt_km, beta_deg, u0_rad))
        for key in record:
            out[key].append(np.array(ctx.quantity(key), dtype=np.float64))
    return times, {k: np.array(v) for k, v in out.items()}, events.drain()

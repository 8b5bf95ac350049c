"""Thermal model: a four-node lumped network per satellite, stepped implicitly, all numpy.

Nodes: 0 radiator (deployed two-sided panel), 1 compute (chips, cold plates and coolant),
2 bus (structure and electronics, with a body-mounted radiator), 3 battery. Links form a
chain: radiator —pumped loop— compute —mount— bus —mount— battery, so each backward-Euler
step is a 4x4 tridiagonal solve done column-wise over the fleet (Thomas algorithm), with
Newton iterations on the T⁴ terms. Environment: direct Sun (attitude law), Earth albedo and
Earth infrared through view factors from altitude. Equations and sizing: docs/models.md.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from twin.attitude import ATTITUDE_LAWS, sun_exposure
from twin.geometry import WGS84_A_KM
from twin.scenario import Scenario, parse_section
from twin.subsystem import (
    CommandHandler,
    CommandRejected,
    Field,
    StepContext,
    make_field,
    only_keys,
)
from twin.wire import ok

STEFAN_BOLTZMANN_W_M2_K4 = 5.670374419e-8  # CODATA 2018, exact in SI
SOLAR_CONSTANT_W_M2 = 1361.0  # total solar irradiance at 1 AU (Kopp & Lean 2011)
AU_KM = 149_597_870.7  # IAU 2012, exact
R_EARTH_KM = WGS84_A_KM  # same sphere as the shadow model
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
RADIATOR, COMPUTE, BUS, BATTERY = range(4)
NODE_NAMES = ("radiator", "compute", "bus", "battery")

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


# --------------------------------------------------------------------------------------------
# Environment


def solar_flux_w_m2(sun_distance_km: float | np.ndarray) -> float | np.ndarray:
    """Solar irradiance at a distance from the Sun, W/m²: S = 1361 (1 AU / r)²."""
    ratio = AU_KM / np.asarray(sun_distance_km, dtype=np.float64)
    return SOLAR_CONSTANT_W_M2 * ratio * ratio


def earth_view_factor(h_ratio: np.ndarray, cos_lambda: np.ndarray) -> np.ndarray:
    """View factor from a small flat plate to the Earth sphere.

    Howell's catalog (configuration B-17; Gilmore, Spacecraft Thermal Control Handbook,
    Vol. 1, ch. 2): H = r/R_E, λ the angle between the plate normal and the direction to the
    Earth's centre, φ = asin(1/H) the Earth's angular radius.

    Args:
        h_ratio: (n,) orbit radius over Earth radius, > 1.
        cos_lambda: (n,) cosine of λ.

    Returns:
        (n,) view factor, 0..1.
    """
    h = np.asarray(h_ratio, dtype=np.float64)
    c = np.clip(np.asarray(cos_lambda, dtype=np.float64), -1.0, 1.0)
    s = np.sqrt(1.0 - c * c)
    root = np.sqrt(h * h - 1.0)
    full = c / (h * h)
    with np.errstate(divide="ignore", invalid="ignore"):
        partial = (0.5 - np.arcsin(np.clip(root / (h * s), -1.0, 1.0)) / np.pi
                   + (c * np.arccos(np.clip(-root * c / s, -1.0, 1.0))
                      - root * np.sqrt(np.maximum(1.0 - h * h * c * c, 0.0))) / (np.pi * h * h))
    # Whole Earth in front of the plate when λ <= π/2 - φ, i.e. cos λ >= 1/H.
    return np.where(c >= 1.0 / h, full, np.where(c <= -1.0 / h, 0.0, partial))


def vertical_plate_view_factor(h_ratio: np.ndarray) -> np.ndarray:
    """View factor to the Earth of a plate whose normal is horizontal: (φ - sinφ cosφ)/π."""
    sin_phi = 1.0 / np.asarray(h_ratio, dtype=np.float64)
    return (np.arcsin(sin_phi) - sin_phi * np.sqrt(1.0 - sin_phi * sin_phi)) / np.pi


H_GRID = np.linspace(1.01, 1.35, 18)  # 64 .. 2,232 km above the equatorial radius
COS_THETA_GRID = np.linspace(-1.0, 1.0, 121)


@functools.lru_cache(maxsize=1)
def albedo_table() -> np.ndarray:
    """Albedo factor g(H, cos θ): the sunlit, cosine-weighted share of the Earth a plate sees.

    For a nadir-facing plate at H = r/R_E with the Sun at angle θ from the sub-satellite
    zenith, the albedo irradiance is a S F g with F = 1/H² and
    g = H² ∫cap max(0, n̂_E·ŝ) cos β_E cos β_P / (π ρ²) dA: quadrature over the visible cap
    (Gauss-Legendre in the Earth-central angle, trapezoid in azimuth). g = 1 for a plate
    just above the subsolar point, 0 beyond θ = 90° + acos(1/H).

    Returns:
        (len(H_GRID), len(COS_THETA_GRID)) table.
    """
    nodes, weights = np.polynomial.legendre.leggauss(48)
    n_az = 48
    azimuth = (np.arange(n_az) + 0.5) * np.pi / n_az  # symmetric about the Sun's plane
    table = np.empty((H_GRID.size, COS_THETA_GRID.size))
    sin_t = np.sqrt(1.0 - COS_THETA_GRID**2)
    for i, h in enumerate(H_GRID):  # init-time table, 18 rows
        gamma_max = math.acos(1.0 / h)
        gamma = 0.5 * gamma_max * (nodes + 1.0)
        w_gamma = 0.5 * gamma_max * weights
        g, a = np.meshgrid(gamma, azimuth, indexing="ij")
        ex, ez = np.sin(g) * np.cos(a), np.cos(g)
        rho2 = h * h - 2.0 * h * ez + 1.0
        cos_earth = (h * ez - 1.0) / np.sqrt(rho2)
        cos_plate = (h - ez) / np.sqrt(rho2)
        kernel = cos_earth * cos_plate / (np.pi * rho2) * np.sin(g)
        kernel *= w_gamma[:, None] * (np.pi / n_az) * 2.0  # both halves of the azimuth
        cos_zenith = ex[..., None] * sin_t + ez[..., None] * COS_THETA_GRID
        table[i] = h * h * np.einsum("ga,gat->t", kernel, np.maximum(cos_zenith, 0.0))
    return table


def albedo_factor(h_ratio: np.ndarray, cos_theta: np.ndarray) -> np.ndarray:
    """Bilinear lookup of ``albedo_table`` (H clamped to the grid). Shapes (n,) -> (n,)."""
    table = albedo_table()
    x = (np.clip(cos_theta, -1.0, 1.0) + 1.0) * (0.5 * (COS_THETA_GRID.size - 1))
    i = np.minimum(x.astype(np.intp), COS_THETA_GRID.size - 2)
    fx = x - i
    y = (np.clip(h_ratio, H_GRID[0], H_GRID[-1]) - H_GRID[0]) * (
        (H_GRID.size - 1) / (H_GRID[-1] - H_GRID[0]))
    j = np.minimum(y.astype(np.intp), H_GRID.size - 2)
    fy = y - j
    flat = table.ravel()
    k = j * COS_THETA_GRID.size + i
    lower = flat[k] + fx * (flat[k + 1] - flat[k])
    k += COS_THETA_GRID.size
    upper = flat[k] + fx * (flat[k + 1] - flat[k])
    return lower + fy * (upper - lower)


class EarthView:
    """Per-satellite Earth view factor and albedo-table position, refreshed with altitude.

    Both depend on altitude only, which changes slowly (km per orbit for near-circular LEO),
    so they are recomputed for a satellite when its H = 1 + alt/R_E moves by more than
    ``H_TOLERANCE`` (1.3 km: changes F by < 0.1 %), not every step. The albedo lookup keeps
    each satellite's row index and weight in H and interpolates the small shared table each
    step: a per-satellite copy of the interpolated row (121 values) cost more to refresh
    than the lookup saves, as the geodetic height of a satellite swings by ~20 km an orbit.

    Args:
        n_sats: Satellites.
    """

    H_TOLERANCE = 2.0e-4

    def __init__(self, n_sats: int) -> None:
        self.h = np.full(n_sats, np.nan)
        self.r_km = np.full(n_sats, np.nan)  # R_E H, km
        self.f_vertical = np.zeros(n_sats)
        self._alt_km = np.full(n_sats, np.nan)  # the altitude H was taken from, km
        self._k0 = np.zeros(n_sats, dtype=np.intp)  # flat index of the H row below, (n,)
        self._fy = np.zeros(n_sats)  # weight of the row above, (n,)
        # Per table cell k: [g(k), g(k+1) - g(k), the same one H row up]: one gather gives
        # a satellite's four interpolation terms.
        flat = albedo_table().ravel()
        slope = np.append(flat[1:] - flat[:-1], 0.0)
        up = np.append(flat[COS_THETA_GRID.size:], np.zeros(COS_THETA_GRID.size))
        up_slope = np.append(slope[COS_THETA_GRID.size:], np.zeros(COS_THETA_GRID.size))
        self._cells = np.stack([flat, slope, up, up_slope], axis=1)
        self._moved = np.empty(n_sats)
        self._x = np.empty(n_sats)
        self._i = np.empty(n_sats, dtype=np.intp)
        self._rows = np.empty((n_sats, 4))
        self._g = np.empty(n_sats)
        self._complete = False  # whether every satellite has a finite H

    def update(self, alt_km: np.ndarray) -> None:
        """Refresh the satellites whose altitude (km, (n,)) moved; NaN keeps the old view."""
        if self._complete:
            # Every satellite has a finite H, so a NaN altitude compares false and is kept.
            moved = np.subtract(alt_km, self._alt_km, out=self._moved)
            np.abs(moved, out=moved)
            stale = np.flatnonzero(moved > self.H_TOLERANCE * R_EARTH_KM)
            if stale.size == 0:
                return
            alt = np.asarray(alt_km, dtype=np.float64)[stale]
            hs = alt / R_EARTH_KM
            hs += 1.0
        else:
            h = np.asarray(alt_km, dtype=np.float64) / R_EARTH_KM
            h += 1.0
            stale = np.flatnonzero(~(np.abs(h - self.h) <= self.H_TOLERANCE) & np.isfinite(h))
            if stale.size == 0:
                return
            hs = h[stale]
            alt = np.asarray(alt_km, dtype=np.float64)[stale]
        self._alt_km[stale] = alt
        self.h[stale] = hs
        self.r_km[stale] = R_EARTH_KM * hs
        self.f_vertical[stale] = vertical_plate_view_factor(hs)
        y = (np.clip(hs, H_GRID[0], H_GRID[-1]) - H_GRID[0]) * (
            (H_GRID.size - 1) / (H_GRID[-1] - H_GRID[0]))
        j = np.minimum(y.astype(np.intp), H_GRID.size - 2)
        self._fy[stale] = y - j
        self._k0[stale] = j * COS_THETA_GRID.size
        if self._complete:
            return
        if np.isnan(self.h).any():  # never seen a finite altitude: a nominal LEO view
            missing = np.isnan(self.h)
            self.update(np.where(missing, 550.0, np.nan))
        self._complete = True

    @property
    def complete(self) -> bool:
        """Whether every satellite has a finite H (after the first update)."""
        return self._complete

    def albedo(self, cos_theta: np.ndarray) -> np.ndarray:
        """(n,) albedo factor g at each satellite's altitude for Sun zenith cosines (n,).

        The returned array is scratch, rewritten by the next call.
        """
        x = np.clip(cos_theta, -1.0, 1.0, out=self._x)
        x += 1.0
        x *= 0.5 * (COS_THETA_GRID.size - 1)
        i = np.minimum(x.astype(np.intp), COS_THETA_GRID.size - 2, out=self._i)
        x -= i  # weight of the cos θ column to the right
        i += self._k0
        rows = np.take(self._cells, i, axis=0, out=self._rows)
        lower = np.multiply(rows[:, 1], x, out=rows[:, 1])
        lower += rows[:, 0]  # g at the H row below
        upper = np.multiply(rows[:, 3], x, out=rows[:, 3])
        upper += rows[:, 2]  # g at the H row above
        upper -= lower
        g = np.multiply(upper, self._fy, out=self._g)
        g += lower
        return g


@dataclass
class SunlitStep:
    """Visible Sun over one step, per satellite.

    Attributes:
        mean: (n,) mean visible fraction over the step.
        before: (n,) fraction at the start of the step.
        after: (n,) fraction at the end of the step.
        crossed: (m,) indices of satellites that crossed the shadow edge in the step.
        tau: (m,) fraction of the step before the crossing.
    """

    mean: np.ndarray
    before: np.ndarray
    after: np.ndarray
    crossed: np.ndarray
    tau: np.ndarray


class StepSunlight:
    """Mean visible fraction of the Sun over each step, (n,), from its two end states.

    The orbit gives the fraction at the end of each step only. Averaging the two ends would
    misplace a shadow crossing by up to half a step (30 s of full array power at 60 s steps).
    Instead a continuous signed distance to the cylindrical shadow's edge,
    s = sqrt(r² - min(r·ŝ, 0)²) + max(r·ŝ, 0) - R_E (km; negative inside the shadow), is
    interpolated linearly to find when in the step the edge was crossed, and the two end
    fractions are weighted by the time spent on each side. The cylinder's edge is the middle
    of the conical penumbra, so this is exact to a few seconds of penumbra. Where positions
    are absent or no crossing happened, it falls back to the mean of the two ends.

    Per step only the side of the edge is found for every satellite (behind the Earth and
    within R_E of the shadow's axis); s itself is computed for the few whose side changed.
    The arrays of a step (``mean``, ``before``, ``after``, ``along``) are rewritten by the
    next step: read them within the step.
    """

    def __init__(self, n_sats: int) -> None:
        self.sunlit = np.ones(n_sats)
        self.along: np.ndarray | None = None  # r·ŝ, km: the last positions along the Sun
        self._first = True
        self._spare = np.ones(n_sats)  # last step's fractions, once swapped
        self._mean = np.ones(n_sats)
        # Two sets, this step's and last step's: r·ŝ (km), r² (km²), inside the cylinder.
        self._along = (np.zeros(n_sats), np.zeros(n_sats))
        self._r2 = (np.zeros(n_sats), np.zeros(n_sats))
        self._inside = (np.zeros(n_sats, dtype=bool), np.zeros(n_sats, dtype=bool))
        self._scratch = np.empty(n_sats)
        self._squares = np.empty((n_sats, 3))
        self._slot = 0  # which set is this step's
        self._have_prev = False  # whether last step had positions

    def update(self, shared: dict[str, Any]) -> SunlitStep:
        """Read ``sunlit_frac`` (and ``pos_gcrs_km``, ``sun_gcrs_km``); return the step."""
        sunlit = shared.get("sunlit_frac")
        prev, now = self.sunlit, self._spare
        if sunlit is None:
            np.copyto(now, prev)
        else:  # a non-finite fraction keeps the last one
            np.copyto(now, sunlit)
            if not math.isfinite(float(np.add.reduce(now, axis=None))):
                np.copyto(now, prev, where=~np.isfinite(now))
        if self._first:
            prev = now
            self._first = False
        self.sunlit, self._spare = now, self.sunlit
        mean = np.add(prev, now, out=self._mean)
        mean *= 0.5
        pos = shared.get("pos_gcrs_km")
        sun = shared.get("sun_gcrs_km")
        crossed = np.zeros(0, dtype=np.intp)
        tau = np.zeros(0)
        if pos is None or sun is None:
            self._have_prev = False
            return SunlitStep(mean, prev, now, crossed, tau)
        k = self._slot = 1 - self._slot
        s_hat = np.asarray(sun, dtype=np.float64)
        s_hat = s_hat / math.sqrt(float(s_hat @ s_hat))
        along = np.matmul(pos, s_hat, out=self._along[k])
        self.along = along
        r2 = np.matmul(np.square(pos, out=self._squares), _ONES_3, out=self._r2[k])
        # Inside the cylinder: behind the Earth (r·ŝ < 0) and r² - (r·ŝ)² < R_E².
        perp2 = np.multiply(along, along, out=self._scratch)
        np.subtract(r2, perp2, out=perp2)
        inside = np.less(perp2, R_EARTH_KM * R_EARTH_KM, out=self._inside[k])
        inside &= along < 0.0
        if self._have_prev:
            # NaN positions count as outside; the exact test on the candidates drops them.
            candidates = np.flatnonzero(inside != self._inside[1 - k])
            if candidates.size:
                before = _edge_km(self._along[1 - k][candidates], self._r2[1 - k][candidates])
                edge = _edge_km(along[candidates], r2[candidates])
                keep = before * edge < 0.0
                crossed, before, edge = candidates[keep], before[keep], edge[keep]
                if crossed.size:
                    tau = before / (before - edge)
                    mean[crossed] = tau * prev[crossed] + (1.0 - tau) * now[crossed]
        self._have_prev = True
        return SunlitStep(mean, prev, now, crossed, tau)


_ONES_3 = np.ones(3)


def _edge_km(along: np.ndarray, r2: np.ndarray) -> np.ndarray:
    """Signed distance to the shadow cylinder's edge, km (negative inside), (m,)."""
    behind = np.minimum(along, 0.0)
    return np.sqrt(np.maximum(r2 - behind * behind, 0.0)) + (along - behind) - R_EARTH_KM


def loop_conductance_w_k(flow_kg_s: np.ndarray, cp_j_kg_k: float, ua_w_k: float) -> np.ndarray:
    """Pumped-loop conductance G = ṁ c_p (1 - exp(-UA / ṁ c_p)), W/K (ε-NTU, one exchanger)."""
    capacity_rate = np.asarray(flow_kg_s, dtype=np.float64) * cp_j_kg_k
    with np.errstate(divide="ignore", over="ignore"):
        return np.where(capacity_rate > 0.0,
                        capacity_rate * -np.expm1(-ua_w_k / capacity_rate), 0.0)


# --------------------------------------------------------------------------------------------
# The network solver


def implicit_step(temps_k: np.ndarray, inv_dt: float, capacities_j_k: np.ndarray,
                  g_loop: np.ndarray | float, g_cb: float, g_bt: float,
                  k_rad: np.ndarray | float, k_bus: np.ndarray | float, heat_w: np.ndarray,
                  sink4: float, iterations: int, out: np.ndarray | None = None
                  ) -> np.ndarray:
    """One backward-Euler step of the chain network, Newton on the T⁴ terms.

    Solves, per satellite, C (T - T0) / dt = Q - k (T⁴ - T_sink⁴) + Σ G (T_other - T) for the
    four nodes (radiator, compute, bus, battery). ``inv_dt = 0`` gives the steady state.
    The two radiating nodes (radiator, bus; rows 0 and 2) are handled together as a
    (2, n) strided view wherever their arithmetic is alike, halving the passes.

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

    Returns:
        (4, n) temperatures at the end of the step, K.
    """
    c_r, c_c, c_b, c_t = (float(c) * inv_dt for c in capacities_j_k)
    n = temps_k.shape[1]
    if out is None:
        out = np.empty_like(temps_k)
    if isinstance(k_rad, float) and isinstance(k_bus, float):
        k = np.array([[k_rad], [k_bus]])
    else:
        k = np.empty((2, n))
        k[0], k[1] = k_rad, k_bus
    # Right-hand sides that do not depend on the guess: [compute, battery] C T0 / dt + Q,
    # [radiator, bus] C T0 / dt + Q + k T_sink⁴.
    rhs_cb = np.multiply(temps_k[1::2], [[c_c], [c_t]])
    rhs_cb += heat_w[1::2]
    rhs_rb = np.multiply(temps_k[0::2], [[c_r], [c_b]])
    rhs_rb += heat_w[0::2]
    rhs_rb += k * sink4
    a_c = g_loop + (c_c + g_cb)
    a_t = c_t + g_bt
    guess = temps_k[0::2]
    k3 = np.empty((2, n))
    diag = np.empty((2, n))
    d = np.empty((2, n))
    for _ in range(iterations):
        # k T⁴ ≈ k T*⁴ + 4 k T*³ (T - T*): slope on the diagonal, 3 k T*⁴ on the right.
        np.multiply(guess, guess, out=k3)
        k3 *= guess
        k3 *= k
        np.multiply(k3, 4.0, out=diag)
        diag += [[c_r], [c_b + g_cb + g_bt]]  # [radiator without the loop, bus]
        np.multiply(k3, 3.0, out=d)
        d *= guess
        d += rhs_rb
        d_r, d_b = d
        # Thomas forward sweep (sub- and super-diagonals are -G).
        a_r = diag[0] + g_loop
        cp0 = g_loop / a_r
        dp0 = np.divide(d_r, a_r, out=a_r)
        m1 = g_loop * cp0
        np.subtract(a_c, m1, out=m1)
        cp1 = np.divide(g_cb, m1)
        dp1 = g_loop * dp0
        dp1 += rhs_cb[0]
        dp1 /= m1
        m2 = np.multiply(cp1, -g_cb, out=m1)
        m2 += diag[1]
        cp2 = np.divide(g_bt, m2)
        dp2 = np.multiply(dp1, g_cb, out=diag[0])
        dp2 += d_b
        dp2 /= m2
        # Back substitution, battery to radiator.
        den = np.multiply(cp2, -g_bt, out=m2)
        den += a_t
        t_t = np.multiply(dp2, g_bt, out=out[BATTERY])
        t_t += rhs_cb[1]
        t_t /= den
        np.multiply(cp2, t_t, out=out[BUS])
        out[BUS] += dp2
        np.multiply(cp1, out[BUS], out=out[COMPUTE])
        out[COMPUTE] += dp1
        np.multiply(cp0, out[COMPUTE], out=out[RADIATOR])
        out[RADIATOR] += dp0
        guess = out[0::2]
    return out


# --------------------------------------------------------------------------------------------
# The subsystem


class ThermalModel:
    """Temperatures and heat flows of every node, updated in place each step.

    Reads from ``ctx.shared``: geometry from orbit (``sunlit_frac``, ``beta_deg``,
    ``pos_gcrs_km``, ``sun_gcrs_km``), heat from power (``payload_power_w``, ``bus_power_w``,
    ``heater_power_w``, ``loop_heater_power_w`` (into the compute node), ``battery_loss_w``,
    ``regulation_loss_w``; or ``compute_power_w``
    when power is absent), power's ``settle_heaters_w`` while it settles (docs/models.md,
    "Starting state") and ``radiator_health_frac`` from faults. Writes ``temp_*_k``.

    Args:
        n_sats: Number of satellites.
        params: The ``[thermal]`` parameters.
    """

    name = "thermal"

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
        self.q_absorbed.array, self.q_rejected.array, self.q_generated.array = self._flows_f4
        self.temps_k = np.full((4, n), 293.15)  # float64 state; fields are float32 copies
        self._temps_spare = np.empty((4, n))  # the next step's result goes here
        self.capacities = p.capacities_j_k
        self._g_loop = np.empty(n)  # valve fully open, W/K
        self._g_loop_min = np.empty(n)  # valve at its minimum radiator flow, W/K
        self._g_bounds: tuple[Any, Any] = (self._g_loop_min, self._g_loop)
        self._set_flow(np.ones(n, dtype=bool), 1.0)
        self.sunlight = StepSunlight(n)
        self._initialized = False
        self._env = {"beta": np.zeros(n), "cos_theta": np.zeros(n)}
        self.view = EarthView(n)
        # Energy ledger since the first step, J (float64): absorbed + generated - rejected
        # equals stored up to the Newton residual. Rows of one block in the order of the
        # step's flows, [absorbed, rejected, generated], so one pass adds a step.
        self._ledger = np.zeros((3, n))
        self.e_absorbed_j, self.e_rejected_j, self.e_generated_j = self._ledger
        self._flows = np.empty((3, n))
        # Scratch, rewritten every step: heat into each node (W), bus radiator's absorbed
        # heat (W), the valve's working arrays, the radiating nodes' T⁴.
        self._heat = np.empty((4, n))
        self._q_bus = np.empty(n)
        self._valve = (np.empty(n), np.empty(n))
        self._fourth = np.empty((2, n))
        self._scaled = np.empty((3, n))
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
        shared = ctx.shared
        self._radiator_health = degraded_frac(shared.get("radiator_health_frac"))
        heat = self._heat
        q_abs_rad, q_abs_bus = self._absorbed_w(shared, heat[RADIATOR], self._q_bus)
        # Internal heat, W: compute node (payload and the loop heater), bus (its loads and
        # the regulation loss), battery (its heater and losses).
        payload = shared.get("payload_power_w")
        if payload is None:
            payload = shared.get("compute_power_w")
        # The settle decides the heaters itself, from all off (docs/models.md, "Starting
        # state"), through power's thermostats when power is there.
        thermostats = None if self._initialized else shared.get("settle_heaters_w")
        if callable(thermostats):
            loop_w, battery_heater_w = thermostats(None)
        else:
            thermostats = None
            loop_w, battery_heater_w = (shared.get("loop_heater_power_w"),
                                        shared.get("heater_power_w"))
        _sum_into(heat[COMPUTE], payload, loop_w)
        _sum_into(heat[BUS], q_abs_bus, shared.get("bus_power_w"),
                  shared.get("regulation_loss_w"))
        _sum_into(heat[BATTERY], battery_heater_w, shared.get("battery_loss_w"))

        k_rad, k_bus = self._radiating_k(shared)
        sink4 = p.sink_temp_k**4
        dt = float(ctx.dt_s)
        integrate = dt > 0.0
        if not self._initialized:
            # Start at the steady state of the working loads: the bus alone would otherwise
            # take hours to settle. The epoch (dt 0) has no job running yet, so the state is
            # settled again on the first timed step, whose loads include the jobs the
            # epoch's scheduling placed; that step sets the state instead of integrating.
            heaters = self._settle(heat, k_rad, k_bus, sink4, thermostats)
            if heaters is not None:  # what the settle switched on is this step's heater power
                shared.update(loop_heater_power_w=heaters[0], heater_power_w=heaters[1])
            self._report_settle(ctx)
            if integrate:
                self._initialized = True
                integrate = False
        if integrate:
            g_loop = self._valve_conductance_w_k(heat[COMPUTE], dt)
            new = implicit_step(self.temps_k, 1.0 / dt, self.capacities, g_loop,
                                p.compute_bus_conductance_w_k, p.bus_battery_conductance_w_k,
                                k_rad, k_bus, heat, sink4, NEWTON_ITERATIONS,
                                out=self._temps_spare)
            # A non-finite input (NaN power) must not poison a node for ever: keep its state.
            if not math.isfinite(float(np.add.reduce(new, axis=None))):
                bad = ~np.isfinite(new).all(axis=0)
                self.bad_input_steps += int(np.count_nonzero(bad))
                new[:, bad] = self.temps_k[:, bad]
                q_abs_rad = q_abs_rad.copy()  # absorbed still counts what came in
                heat[:, bad] = 0.0
            self._temps_spare, self.temps_k = self.temps_k, new
        temps = self.temps_k
        flows = self._flows  # [absorbed, rejected, generated], W
        # Rejected: k (T⁴ - T_sink⁴) of the radiator and the bus radiator, rows 0 and 2.
        fourth = np.multiply(temps[0::2], temps[0::2], out=self._fourth)
        fourth *= fourth
        fourth -= sink4
        if isinstance(k_rad, float) and isinstance(k_bus, float):
            fourth *= [[k_rad], [k_bus]]
        else:
            fourth[0] *= k_rad
            fourth[1] *= k_bus
        np.add(fourth[0], fourth[1], out=flows[1])
        np.add(q_abs_rad, q_abs_bus, out=flows[0])
        generated = np.add(heat[COMPUTE], heat[BATTERY], out=flows[2])
        np.subtract(heat[BUS], q_abs_bus, out=self._valve[0])
        generated += self._valve[0]
        if integrate:
            self._ledger += np.multiply(flows, dt, out=self._scaled)
        np.copyto(self._temps_f4, temps, casting="same_kind")
        np.copyto(self._flows_f4, flows, casting="same_kind")
        shared.update(temp_compute_k=self.temp_compute.array,
                      temp_radiator_k=self.temp_radiator.array,
                      temp_bus_k=self.temp_bus.array, temp_battery_k=self.temp_battery.array)

    def fleet(self) -> dict[str, float]:
        return {
            "q_absorbed_total_w": float(self.q_absorbed.array.sum(dtype=np.float64)),
            "q_rejected_total_w": float(self.q_rejected.array.sum(dtype=np.float64)),
            "temp_compute_max_k": _max(self.temp_compute.array),
            "temp_battery_min_k": _min(self.temp_battery.array),
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

    def stored_j(self) -> np.ndarray:
        """(n,) heat stored since the first step, Σ C (T - T_start), J."""
        return self.capacities @ (self.temps_k - self._temps_start)

    def ledger_residual_j(self) -> np.ndarray:
        """(n,) absorbed + generated - rejected - stored since the first step, J."""
        return self.e_absorbed_j + self.e_generated_j - self.e_rejected_j - self.stored_j()

    # ---- internals

    def _absorbed_w(self, shared: dict[str, Any], q_rad: np.ndarray, q_bus: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
        """Environmental heat on the radiator and bus radiator, W, written into the (n,)
        arrays ``q_rad`` and ``q_bus`` and returned."""
        p = self.params
        env = self._env
        yaw = p.attitude == "yaw_steering"
        beta = shared.get("beta_deg")
        if beta is not None and not yaw:  # yaw steering's exposure does not depend on β
            np.copyto(env["beta"], beta, where=np.isfinite(beta))
        # Power keeps the same altitude-only view, already updated this step: share it.
        view = shared.get("earth_view")
        if not isinstance(view, EarthView):
            view = self.view
            alt = shared.get("alt_km")
            if alt is not None:
                view.update(alt)
        # Eclipse over the step: power already worked it out; alone, work it out here.
        if "sunlit_step_mean_frac" in shared:
            sun_avg = shared["sunlit_step_mean_frac"]
            along = shared.get("sun_along_km")
        else:
            step_sun = self.sunlight.update(shared)
            sun_avg, along = step_sun.mean, self.sunlight.along
        sun = shared.get("sun_gcrs_km")
        s_w_m2 = SOLAR_CONSTANT_W_M2
        if sun is not None:
            s_w_m2 = float(solar_flux_w_m2(math.sqrt(float(np.dot(sun, sun)))))
        cos_theta = env["cos_theta"]
        if along is not None:
            # cos θ = r̂·ŝ with |r| ≈ R_E H (geodetic height: < 0.3 % off at the poles);
            # a non-finite one keeps the last.
            if view.complete and math.isfinite(float(np.add.reduce(along, axis=None))):
                np.divide(along, view.r_km, out=cos_theta)  # R_E H, r·ŝ finite everywhere
            else:
                ratio = along / view.r_km
                np.copyto(cos_theta, ratio, where=np.isfinite(ratio))

        f_earth = view.f_vertical
        g_albedo = view.albedo(cos_theta)
        health = self._radiator_health
        if yaw and health is None:
            # Radiators edge-on to the Sun: albedo and Earth IR only, both ∝ F. Per face,
            # q = F (a α S g + ε IR) (albedo and IR come from Earth: no eclipse factor).
            albedo_w = p.albedo_frac * s_w_m2
            q = np.multiply(g_albedo, 2.0 * p.radiator_area_m2 * p.radiator_absorptivity
                            * albedo_w, out=q_rad)
            q += 2.0 * p.radiator_area_m2 * p.radiator_emissivity * p.earth_ir_w_m2
            q *= f_earth
            q = np.multiply(g_albedo, p.bus_radiator_area_m2 * p.bus_absorptivity * albedo_w,
                            out=q_bus)
            q += p.bus_radiator_area_m2 * p.bus_emissivity * p.earth_ir_w_m2
            q *= f_earth
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

    def _radiating_k(self, shared: dict[str, Any]) -> tuple[np.ndarray | float,
                                                            np.ndarray | float]:
        """ε σ A of the radiator (both faces, scaled by radiator health) and bus radiator,
        W/K⁴: one number each for a healthy fleet, else (n,) for the radiator."""
        p = self.params
        k_rad = 2.0 * p.radiator_emissivity * STEFAN_BOLTZMANN_W_M2_K4 * p.radiator_area_m2
        k_bus = p.bus_emissivity * STEFAN_BOLTZMANN_W_M2_K4 * p.bus_radiator_area_m2
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
        for ledger in (self.e_absorbed_j, self.e_generated_j, self.e_rejected_j):
            ledger[:] = 0.0
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
                                k_rad, k_bus, heat, sink4, newton)
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
                               temps_k: np.ndarray | None = None) -> np.ndarray:
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
        """
        p = self.params
        temps = self.temps_k if temps_k is None else temps_k
        t_rad = temps[RADIATOR]
        t_set = p.loop_setpoint_k
        g_min, g_max = self._g_bounds
        if math.isinf(dt_s):
            target = np.full_like(t_rad, t_set)
            need_w = compute_heat_w
            gap = target - t_rad
        else:
            t_c = temps[COMPUTE]
            lag = np.subtract(t_c, t_set, out=self._valve[0])
            lag *= 1.0 / (p.valve_time_constant_s + dt_s)
            # Heat the loop must carry, W.
            need_w = np.multiply(lag, self.capacities[COMPUTE], out=self._valve[1])
            need_w += compute_heat_w
            lag *= p.valve_time_constant_s
            lag += t_set  # T* = T_set + (T_c - T_set) τ / (τ + dt)
            gap = np.subtract(lag, t_rad, out=lag)
            # Usual case: every radiator colder than the setpoint and than its target, so
            # every valve is settable; a minimum and a maximum say so (NaN fails both).
            if gap.min() > 0.0 and t_rad.max() < t_set:
                wanted = np.divide(need_w, gap, out=need_w)
                if t_rad.min() < p.radiator_freeze_guard_k:
                    self._freeze_guard(wanted, compute_heat_w, temps)
                np.maximum(wanted, g_min, out=wanted)
                return np.minimum(wanted, g_max, out=wanted)
        with np.errstate(divide="ignore", invalid="ignore"):
            wanted = need_w / gap
        # gap <= 0: the radiator is at least as warm as the target. A node that needs cooling
        # then gets all the flow there is; one that needs heat gets what it asked (both < 0).
        settable = gap > 0.0
        settable |= need_w < 0.0
        settable &= t_rad < t_set
        wanted = np.where(settable, wanted, np.inf)
        self._freeze_guard(wanted, compute_heat_w, temps)
        return np.clip(wanted, g_min, g_max)

    def _freeze_guard(self, wanted: np.ndarray, compute_heat_w: np.ndarray,
                      temps: np.ndarray) -> None:
        """Below ``radiator_freeze_guard_k`` pass at least the heat the compute node takes
        in, P / (T_c - T_rad), W/K: ``wanted`` (n,) is raised in place."""
        t_rad = temps[RADIATOR]
        guard = np.flatnonzero(t_rad < self.params.radiator_freeze_guard_k)  # a few
        if guard.size:
            t_c, t_r = temps[COMPUTE, guard], t_rad[guard]
            with np.errstate(divide="ignore", invalid="ignore"):
                through = compute_heat_w[guard] / (t_c - t_r)
            guard = guard[t_c > t_r]
            wanted[guard] = np.fmax(wanted[guard], through[t_c > t_r])

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


def health_frac(health: Any) -> np.ndarray:
    """A fault multiplier clipped to 0..1; NaN (unknown) counts as healthy."""
    return np.fmax(np.fmin(np.asarray(health, dtype=np.float64), 1.0), 0.0)


def degraded_frac(health: Any) -> np.ndarray | None:
    """``health_frac`` of a fault multiplier, or None when it is absent or every satellite is
    healthy (>= 1): the usual case costs one reduction instead of a clip and a product."""
    if health is None:
        return None
    values = np.asarray(health)
    if values.size == 0 or values.min() >= 1.0:  # NaN fails the test: the careful path
        return None
    return health_frac(values)


def _max(values: np.ndarray) -> float:
    return float(np.nanmax(values)) if values.size and np.isfinite(values).any() else 0.0


def _min(values: np.ndarray) -> float:
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

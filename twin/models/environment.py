"""The environment every node sees over a step: sunlight, solar flux, Earth view.

Power (array output) and thermal (absorbed heat) both need the step's visible Sun, with
shadow-edge crossings placed in time, the solar flux at the Earth's distance from the Sun,
and each node's Earth view factor and albedo-table position. ``EnvironmentModel`` works
them out once per step, after orbit, and publishes them (``EnvironmentOutputs``), so the two
use the same numbers and neither computes them for the other. Equations: docs/models.md
("Environment").
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from twin.astro.geometry import WGS84_A_KM, shadow_edge_km
from twin.core.interfaces import EnvironmentOutputs, OrbitOutputs
from twin.core.subsystem import CommandHandler, Field, StepContext
from twin.models.step_parts import environment_parts

SOLAR_CONSTANT_W_M2 = 1361.0  # total solar irradiance at 1 AU (Kopp & Lean 2011)
AU_KM = 149_597_870.7  # IAU 2012, exact
R_EARTH_KM = WGS84_A_KM  # same sphere as the shadow model


def solar_flux_w_m2(sun_distance_km: float | np.ndarray) -> float | np.ndarray:
    """Solar irradiance at a distance from the Sun, W/m²: S = 1361 (1 AU / r)²."""
    ratio = AU_KM / np.asarray(sun_distance_km, dtype=np.float64)
    return SOLAR_CONSTANT_W_M2 * ratio * ratio


def flux_from_sun_w_m2(sun_gcrs_km: np.ndarray | None) -> float:
    """``solar_flux_w_m2`` at the Earth for the Sun at ``sun_gcrs_km`` ((3,) km), W/m²; the
    solar constant when it is None. Plain floats: the step calls it twice."""
    if sun_gcrs_km is None:
        return SOLAR_CONSTANT_W_M2
    ratio = AU_KM / math.sqrt(float(np.dot(sun_gcrs_km, sun_gcrs_km)))
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
COS_THETA_ZERO_COLUMN = 0.5 * (COS_THETA_GRID.size - 1)  # the column of cos θ = 0
_VIEW_ROWS = ("alt_km", "h", "r_km", "x_scale", "f_vertical", "fy")  # EarthView's block
_VIEW_NUMERATORS = np.array([[1.0], [COS_THETA_ZERO_COLUMN]])  # of sin φ = 1 / H and x_scale


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
        # Per satellite, rows of one block so that a refresh writes them in one pass: the
        # altitude H was taken from (km), H, R_E H (km), the albedo-table columns per km of
        # r·ŝ, (COS_THETA_GRID.size - 1) / 2 / (R_E H) (the column of cos θ = r·ŝ / (R_E H)
        # is r·ŝ x_scale + COS_THETA_ZERO_COLUMN), F, and the weight of the albedo-table row above.
        # NaN until known (F: 0).
        self._block = np.full((len(_VIEW_ROWS), n_sats), np.nan)
        self._alt_km, self.h, self.r_km, self.x_scale, self.f_vertical, self._fy = self._block
        self.f_vertical[:] = 0.0
        self._fy[:] = 0.0
        self._k0 = np.zeros(n_sats, dtype=np.intp)  # flat index of the H row below, (n,)
        # Per table cell k, four rows that one gather reads: g(k), the slope g(k+1) - g(k),
        # and the changes of both one H row up. Past a row's last column the slopes are
        # meaningless but finite, and only ever weighted by zero.
        flat = albedo_table().ravel()
        slope = np.append(flat[1:] - flat[:-1], 0.0)
        pad = np.zeros(COS_THETA_GRID.size)
        self._cells = np.stack([flat, slope, np.append(flat[COS_THETA_GRID.size:], pad) - flat,
                                np.append(slope[COS_THETA_GRID.size:], pad) - slope])
        self._moved = np.empty(n_sats)
        self._i = np.empty(n_sats, dtype=np.intp)
        self._complete = False  # whether every satellite has a finite H

    def update(self, alt_km: np.ndarray) -> None:
        """Refresh the satellites whose altitude (km, (n,)) moved; NaN keeps the old view."""
        if self._complete:
            # Every satellite has a finite H, so a NaN altitude compares false and is kept.
            moved = np.subtract(alt_km, self._alt_km, out=self._moved)
            np.abs(moved, out=moved)
            stale = np.greater(moved, self.H_TOLERANCE * R_EARTH_KM).nonzero()[0]
            if stale.size == 0:
                return
        else:
            h = np.asarray(alt_km, dtype=np.float64) / R_EARTH_KM
            h += 1.0
            stale = np.flatnonzero(~(np.abs(h - self.h) <= self.H_TOLERANCE) & np.isfinite(h))
            if stale.size == 0:
                return
        # The block's rows for ``stale``, then a scratch row.
        rows = np.empty((len(_VIEW_ROWS) + 1, stale.size))
        alt, hs, r_km, _, f_vertical, fy, y = rows  # (x_scale: row 3)
        np.asarray(alt_km, dtype=np.float64).take(stale, out=alt)
        np.divide(alt, R_EARTH_KM, out=hs)
        hs += 1.0
        np.multiply(hs, R_EARTH_KM, out=r_km)
        # [sin φ, x_scale] = [1, columns / 2] / [H, r] in one pass, sin φ in f_vertical's
        # row; then vertical_plate_view_factor's arithmetic, operation for operation.
        np.divide(_VIEW_NUMERATORS, rows[1:3], out=rows[4:2:-1])
        sin_phi = f_vertical
        np.multiply(sin_phi, sin_phi, out=y)
        np.subtract(1.0, y, out=y)
        np.sqrt(y, out=y)
        y *= sin_phi
        np.arcsin(sin_phi, out=f_vertical)
        f_vertical -= y
        f_vertical /= np.pi
        np.maximum(hs, H_GRID[0], out=y)
        np.minimum(y, H_GRID[-1], out=y)
        y -= H_GRID[0]
        y *= (H_GRID.size - 1) / (H_GRID[-1] - H_GRID[0])
        j = np.minimum(y.astype(np.intp), H_GRID.size - 2)
        np.subtract(y, j, out=fy)
        self._block[:, stale] = rows[:len(_VIEW_ROWS)]
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

    def albedo_at(self, x: np.ndarray, work: np.ndarray | None = None,
                  fx: np.ndarray | None = None, rows: slice | None = None) -> np.ndarray:
        """(n,) albedo factor g at each satellite's altitude, bilinear in ``albedo_table``.

        Args:
            x: (n,) the table column of each satellite's cos θ, (cos θ + 1) (columns - 1) / 2,
                finite; clamped to the table in place.
            work: (4, n) scratch, the first row of which is returned; allocated when None.
            fx: (n,) scratch; allocated when None.
            rows: The satellites [start, stop) that ``x`` (then (m,), and ``work`` (4, m),
                ``fx`` (m,)) holds, when a slice of the fleet (twin.core.slices); None:
                all of them.

        Returns:
            (n,) g, the first row of ``work``.
        """
        np.maximum(x, 0.0, out=x)
        np.minimum(x, COS_THETA_GRID.size - 1.0, out=x)
        fx = np.empty_like(x) if fx is None else fx
        cut = slice(None) if rows is None else rows
        i = self._i[cut]
        np.copyto(i, x, casting="unsafe")  # the column to the left: x >= 0 truncates down
        np.subtract(x, i, out=fx)  # weight of the column to the right; 0 at the last one
        i += self._k0[cut]
        # [g0, g1, d0, d1] of each satellite's cell (in the table by construction), then
        # g = (g0 + fx g1) + fy (d0 + fx d1).
        cells = self._cells.take(i, axis=1, out=work, mode="clip")
        cells[1::2] *= fx
        cells[0::2] += cells[1::2]
        cells[2] *= self._fy[cut]
        cells[0] += cells[2]
        return cells[0]




@dataclass
class SunlitStep:
    """Visible Sun over one step, per satellite.

    Attributes:
        mean: (n,) mean visible fraction over the step.
        ends: (2, n) fractions at the start and at the end of the step.
        crossed: (m,) indices of satellites that crossed the shadow edge in the step.
        weights: (2, m) the crossings' shares of the step before and after the edge.
        crossed_ends: (2, m) ``ends`` of the crossings.
    """

    mean: np.ndarray
    ends: np.ndarray
    crossed: np.ndarray
    weights: np.ndarray
    crossed_ends: np.ndarray

    @property
    def before(self) -> np.ndarray:
        """(n,) fraction at the start of the step."""
        return self.ends[0]

    @property
    def after(self) -> np.ndarray:
        """(n,) fraction at the end of the step."""
        return self.ends[1]

    @property
    def tau(self) -> np.ndarray:
        """(m,) fraction of the step before the crossing."""
        return self.weights[0]


class StepSunlight:
    """Mean visible fraction of the Sun over each step, (n,), from its two end states.

    The orbit gives the fraction at the end of each step only. Averaging the two ends would
    misplace a shadow crossing by up to half a step (30 s of full array power at 60 s steps).
    Instead a continuous signed distance to the cylindrical shadow's edge,
    s = sqrt(r² - min(r·ŝ, 0)²) + max(r·ŝ, 0) - R (km; negative inside the shadow), is
    interpolated linearly to find when in the step the edge was crossed, and the two end
    fractions are weighted by the time spent on each side. The cylinder's edge is the middle
    of the conical penumbra, so this is exact to a few seconds of penumbra. Where positions
    are absent or no crossing happened, it falls back to the mean of the two ends.

    The shadow is the orbit's: r·ŝ and r² are taken in the space stretched along the polar
    axis where the WGS84 ellipsoid (plus the atmosphere's shadow height) is a sphere of
    radius R = a + h (``shadow_along_km``, ``shadow_r2_km2``, ``shadow_radius_km``), so the
    edge placed in the step is the one the orbit's sunlit fractions see. Without them, the
    sphere of radius a from ``sun_along_km`` and ``r2_km2``, or from the positions.

    Per step only the side of the edge is found for every satellite (behind the Earth and
    within R of the shadow's axis); s itself is computed for the few whose side changed.
    The arrays of a step (``mean``, ``ends``, ``along``) are rewritten by the next step:
    read them within the step.
    """

    def __init__(self, n_sats: int) -> None:
        # Two rows, last step's and this step's, alternating: the visible fractions; r·ŝ
        # (km) and r² - (r·ŝ)² (km²); inside the cylinder. ``_slot`` is this step's row of the
        # fractions, ``_pos_slot`` of the positions.
        self._fracs = np.ones((2, n_sats))
        self._pos = np.zeros((2, 2, n_sats))
        self._inside = np.zeros((2, n_sats), dtype=bool)
        self._slot = 0
        self._pos_slot = 0
        self._first = True
        self._have_prev = False  # whether last step had positions
        self.along: np.ndarray | None = None  # r·ŝ, km: the last positions along the Sun
        self._along = np.zeros(n_sats)  # its buffer (unstretched: the albedo's cos θ)
        self._radius_km = R_EARTH_KM  # the shadow sphere's radius (stretched space)
        self._mean = np.ones(n_sats)
        self._changed = np.zeros(n_sats, dtype=bool)
        # r² from the positions when orbit gives no r·ŝ and r² (never in the engine): made
        # on first use (32 MB at a million otherwise held for nothing).
        self._squares: np.ndarray | None = None
        self._scratch: np.ndarray | None = None

    @property
    def sunlit(self) -> np.ndarray:
        """(n,) the last visible fractions."""
        return self._fracs[self._slot]

    def update(self, orbit: OrbitOutputs) -> SunlitStep:
        """Read ``sunlit_frac`` (and r·ŝ and r², or the positions); return the step."""
        sunlit = orbit.sunlit_frac
        k = 1 - self._slot
        prev, now = self._fracs[self._slot], self._fracs[k]
        if sunlit is None:
            np.copyto(now, prev)
        else:  # a non-finite fraction keeps the last one
            np.copyto(now, sunlit)
            if not math.isfinite(float(np.add.reduce(now, axis=None))):
                np.copyto(now, prev, where=~np.isfinite(now))
        if self._first:
            np.copyto(prev, now)
            self._first = False
        self._slot = k
        ends = self._fracs if k == 1 else self._fracs[::-1]  # [before, after], a view
        mean = np.add(prev, now, out=self._mean)
        mean *= 0.5
        j = 1 - self._pos_slot
        along = self._positions(orbit, self._pos[j])
        if along is None:
            self._have_prev = False
            return SunlitStep(mean, ends, _NO_INDEX, _NO_PAIRS, _NO_PAIRS)
        self._pos_slot = j
        self.along = along
        # Inside the cylinder: behind the Earth (r·ŝ < 0) and r² - (r·ŝ)² < R².
        inside = np.less(self._pos[j, 1], self._radius_km * self._radius_km,
                         out=self._inside[j])
        inside &= np.less(self._pos[j, 0], 0.0, out=self._changed)
        step = SunlitStep(mean, ends, _NO_INDEX, _NO_PAIRS, _NO_PAIRS)
        if self._have_prev:
            # NaN positions count as outside; the exact test on the candidates drops them.
            candidates = np.not_equal(inside, self._inside[1 - j],
                                      out=self._changed).nonzero()[0]
            if candidates.size:
                self._crossings(candidates, j, step)
        self._have_prev = True
        return step

    def _crossings(self, candidates: np.ndarray, j: int, step: SunlitStep) -> None:
        """Fill ``step``'s crossings from the candidates (this step's positions in slot j)
        and rewrite their mean fractions."""
        pos = self._pos[:, :, candidates]  # (slot, [r·ŝ, r² - (r·ŝ)²], m)
        if j == 0:
            pos = pos[::-1]  # [last step, this step]
        edge = shadow_edge_km(pos[:, 0], pos[:, 1], self._radius_km)  # (2, m)
        keep = edge[0] * edge[1] < 0.0
        crossed = candidates
        if np.count_nonzero(keep) < keep.size:
            crossed, edge = candidates[keep], edge[:, keep]
        if crossed.size:
            # τ of the step at the start's fraction, the rest at the end's.
            weights = np.empty_like(edge)
            np.divide(edge[0], np.subtract(edge[0], edge[1], out=weights[1]), out=weights[0])
            np.subtract(1.0, weights[0], out=weights[1])
            step.crossed, step.weights = crossed, weights
            step.crossed_ends = step.ends[:, crossed]
            part = weights * step.crossed_ends
            step.mean[crossed] = np.add(part[0], part[1], out=part[0])

    def _positions(self, orbit: OrbitOutputs, out: np.ndarray) -> np.ndarray | None:
        """Fill ``out`` ((2, n)) with the shadow's r·ŝ (km) and r² - (r·ŝ)² (km², the square
        of the distance from the shadow's axis) for this step, stretched when orbit gives
        them so; return the unstretched r·ŝ (km), or None without positions.

        Orbit's arrays are copied: it rewrites them in place next step.
        """
        along_sun, perp2 = out
        given, r2 = orbit.sun_along_km, orbit.r2_km2
        if given is None or r2 is None:
            pos = orbit.pos_gcrs_km
            sun = orbit.sun_gcrs_km
            if pos is None or sun is None:
                return None
            s_hat = np.asarray(sun, dtype=np.float64)
            s_hat = s_hat / math.sqrt(float(s_hat @ s_hat))
            given = np.matmul(pos, s_hat, out=self._along)
            if self._squares is None or self._scratch is None:
                self._squares, self._scratch = np.empty(pos.shape), np.empty(len(pos))
            r2 = np.matmul(np.square(pos, out=self._squares), _ONES_3, out=self._scratch)
        else:
            np.copyto(self._along, given)
            given = self._along
        shadow_along, shadow_r2 = orbit.shadow_along_km, orbit.shadow_r2_km2
        if shadow_along is not None and shadow_r2 is not None:
            self._radius_km = float(orbit.shadow_radius_km or R_EARTH_KM)
            np.copyto(along_sun, shadow_along)
            r2 = shadow_r2
        else:
            self._radius_km = R_EARTH_KM
            np.copyto(along_sun, given)
        np.subtract(r2, np.multiply(along_sun, along_sun, out=perp2), out=perp2)
        return given


_ONES_3 = np.ones(3)
_NO_INDEX = np.zeros(0, dtype=np.intp)
_NO_INDEX.flags.writeable = False
_NO_PAIRS = np.zeros((2, 0))
_NO_PAIRS.flags.writeable = False


class EnvironmentModel:
    """The step's sunlight, solar flux and Earth view of every node, for power and thermal.

    Reads orbit's outputs; has no fields, totals or commands of its own (what it works out
    shows in power's and thermal's fields).

    Args:
        n_sats: Satellites.
    """

    name = "environment"
    reads: tuple[str, ...] = ("orbit",)
    publishes = "environment"

    def __init__(self, n_sats: int) -> None:
        self.sunlight = StepSunlight(n_sats)
        self.view = EarthView(n_sats)
        self.outputs = EnvironmentOutputs(earth_view=self.view)

    def step(self, ctx: StepContext) -> None:
        orbit = ctx.orbit
        if orbit.alt_km is not None:
            self.view.update(orbit.alt_km)
        out = self.outputs
        out.solar_flux_w_m2 = flux_from_sun_w_m2(orbit.sun_gcrs_km)
        out.sunlit_step = self.sunlight.update(orbit)
        out.sun_along_step_km = self.sunlight.along

    def outputs_parts(self, ctx: StepContext, parts: int) -> list[EnvironmentOutputs]:
        """This step's outputs over each of ``parts`` equal parts of it, for the engine's
        sub-steps of the control loop (twin.models.step_parts)."""
        return environment_parts(self.outputs, ctx.orbit, ctx.dt_s, parts)

    def fields(self) -> list[Field]:
        return []

    def fleet(self) -> dict[str, float]:
        return {}

    def meta(self) -> dict[str, Any]:
        return {"solar_constant_w_m2": SOLAR_CONSTANT_W_M2}

    def commands(self) -> dict[str, CommandHandler]:
        return {}

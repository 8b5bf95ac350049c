"""The environment over each part of a step, for the control loop's sub-steps.

A step longer than the control period is cut into ``k`` equal sub-steps for compute, power
and thermal (``twin.core.engine``). SGP4 and the environment run once per step; each
node's path over the step is the end's state rotated back along a circular orbit,

    r(Δt) = r cos(nΔt) + (v / n) sin(nΔt),  n = |v| / |r|,  Δt in [-dt, 0],

exact for a circular two-body orbit (a 0.001 eccentricity moves it by a few km over 300 s:
under a second of shadow edge). Over each sub-step (docs/models.md, "Step-size
independence"):

- the visible Sun comes from the same ellipsoid shadow the orbit uses
  (``ellipsoid_sunlit_fraction``, with the orbit's polar axis and atmospheric height) at
  the sub-steps' boundaries, the step's two ends being the orbit's own fractions; within a
  sub-step it is what the environment does within a step: the mean of the two ends, or,
  where the shadow cylinder's edge is crossed, each end's fraction for its side of the
  crossing, placed by interpolating the signed distance to the edge. Short eclipses and
  both edges within one long step are seen;
- r·ŝ (the albedo's and the arrays' Earth geometry) is taken at the sub-step's middle;
- the Sun's direction, the solar flux, the Earth view factors and the Sun's elevation over
  the orbit plane stay as at the step's end (the Sun moves 0.04° in 600 s; the rest change
  by less than 0.1 %).

Nothing here runs for a step no longer than the control period.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from twin.astro.geometry import WGS84_A_KM, ellipsoid_sunlit_fraction
from twin.core.interfaces import EnvironmentOutputs, OrbitOutputs

_Z_AXIS = np.array([0.0, 0.0, 1.0])


def _rotated(pos: np.ndarray, vel: np.ndarray, offsets_s: np.ndarray) -> np.ndarray:
    """(len(offsets), n, 3) positions ``offsets_s`` (<= 0) from the end, circular orbit."""
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.sqrt(np.einsum("ij,ij->i", vel, vel) / np.einsum("ij,ij->i", pos, pos))
        angle = offsets_s[:, None] * rate[None, :]  # (b, n)
        return (pos[None] * np.cos(angle)[..., None]
                + (vel / rate[:, None])[None] * np.sin(angle)[..., None])


def _edge_km(along: np.ndarray, r2: np.ndarray) -> np.ndarray:
    """Signed distance to the shadow cylinder's edge, km (negative inside), as the
    environment's: sqrt(r² - min(r·ŝ, 0)²) + max(r·ŝ, 0) - R_E."""
    ahead = np.maximum(along, 0.0)
    behind = np.minimum(along, 0.0)
    return np.sqrt(np.maximum(r2 - behind * behind, 0.0)) + ahead - WGS84_A_KM


def environment_parts(outputs: EnvironmentOutputs, orbit: OrbitOutputs, dt_s: float,
                      parts: int) -> list[EnvironmentOutputs]:
    """The environment's outputs over each of ``parts`` equal parts of a ``dt_s`` step
    (the module's docstring): new outputs, the step's own untouched."""
    sunlit = outputs.sunlit_step
    pos, vel, sun = orbit.pos_gcrs_km, orbit.vel_gcrs_km_s, orbit.sun_gcrs_km
    if sunlit is None or pos is None or vel is None or sun is None:  # hold the step's
        return [outputs] * parts
    pos = np.asarray(pos, dtype=np.float64)
    vel = np.asarray(vel, dtype=np.float64)
    sun = np.asarray(sun, dtype=np.float64)
    s_hat = sun / math.sqrt(float(sun @ sun))
    bounds = np.arange(parts + 1) / parts  # boundaries, fractions of the step
    # Boundaries and middles in one pass: rows 0..parts, then parts middles.
    offsets = np.concatenate([bounds, 0.5 * (bounds[:-1] + bounds[1:])]) * dt_s - dt_s
    path = _rotated(pos, vel, offsets)
    along = path @ s_hat  # (rows, n)
    r2 = np.einsum("bij,bij->bi", path, path)
    edge = _edge_km(along[:parts + 1], r2[:parts + 1])
    axis = _Z_AXIS if orbit.polar_axis_gcrs is None else orbit.polar_axis_gcrs
    atmosphere_km = orbit.shadow_atmosphere_km or 0.0
    fracs = np.empty((parts + 1, pos.shape[0]))
    fracs[0], fracs[parts] = sunlit.ends[0], sunlit.ends[1]
    for j in range(1, parts):  # the interior boundaries, each over the whole fleet
        fracs[j] = ellipsoid_sunlit_fraction(path[j], sun, axis, atmosphere_km, r2[j])
    # A node without a position (SGP4 failed) goes linearly from one end to the other.
    linear = sunlit.ends[0] + np.outer(bounds, sunlit.ends[1] - sunlit.ends[0])
    np.copyto(fracs, linear, where=~np.isfinite(fracs))
    along_end = outputs.sun_along_step_km
    result = []
    for i in range(parts):
        ends = fracs[i:i + 2]
        mean = 0.5 * (ends[0] + ends[1])
        with np.errstate(invalid="ignore"):
            crossed = np.flatnonzero(edge[i] * edge[i + 1] < 0.0)
        tau = edge[i, crossed] / (edge[i, crossed] - edge[i + 1, crossed])
        weights = np.stack([tau, 1.0 - tau])
        crossed_ends = ends[:, crossed]
        mean[crossed] = tau * crossed_ends[0] + (1.0 - tau) * crossed_ends[1]
        middle = along[parts + 1 + i]
        if along_end is not None:  # a node SGP4 failed keeps the environment's last known
            middle = np.where(np.isfinite(middle), middle, along_end)
        step = dataclasses.replace(sunlit, mean=mean, ends=ends.copy(), crossed=crossed,
                                   weights=weights, crossed_ends=crossed_ends)
        result.append(dataclasses.replace(
            outputs, sunlit_step=step,
            sun_along_step_km=None if along_end is None else middle))
    return result

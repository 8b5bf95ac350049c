"""Drift-free velocities without integrating at the time: a table over the chief's phase.

A member's along-track drift over the next orbit is, to second order, a quadratic function
of its LVLH state s, D(u)·s + ½ sᵀ H(u) s (the quadratic part is the nonlinearity of the
relative motion, metres an orbit at 1 km), whose coefficients depend on where the chief is
in its orbit (its argument of latitude u: the J2 short-period terms go as sin 2u and
cos 2u) and hardly on anything else for months (the chief's inclination and altitude are
constant, J2 is axisymmetric). So the table is built once, at placement: the chiefs are
carried through one orbit to ``PHASES`` phases, and at each, 72 probe members (± each LVLH
component, and the four sign pairs of every two components) are integrated one orbit with
the full two-body + J2 dynamics; central differences of the drift of the centre of their
relative ellipse give D(u_j) and H(u_j). A member ending a station-keeping transfer then
takes the along-track rate that zeroes the drift (one Newton step), interpolated in u, in
a fraction of a millisecond instead of the milliseconds of a shooting. Differential drag is
left out of the table (a few tenths of a metre an orbit at 650 km).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from twin.astro.relative import inertial_to_lvlh, lvlh_frames, lvlh_to_inertial, propagate

PHASES = 24
"""Chief phases of the table (15° apart: the sin 2u terms interpolate within ~3 %)."""
PROBE_STEP = np.array([50.0, 50.0, 50.0, 0.05, 0.05, 0.05])
"""Probe offsets per LVLH component: m for x, y, z, m/s for their rates (linear regime)."""


def argument_of_latitude_rad(pos: np.ndarray, vel: np.ndarray) -> np.ndarray:
    """Argument of latitude (rad, 0..2π) of (k, 3) states: the angle from the ascending node."""
    h = np.cross(pos, vel)
    node = np.column_stack((-h[:, 1], h[:, 0], np.zeros(len(h))))  # ẑ × h
    node /= np.linalg.norm(node, axis=1)[:, None]
    along = np.cross(h / np.linalg.norm(h, axis=1)[:, None], node)
    return np.mod(np.arctan2(np.einsum("ij,ij->i", pos, along),
                             np.einsum("ij,ij->i", pos, node)), 2.0 * math.pi)


class DriftTable:
    """D(u) per cluster: drift over one orbit (m) per unit of each LVLH state component.

    Args:
        chief_pos, chief_vel: (k, 3) the chiefs now, m and m/s.
        centre: ``(pos_l, vel_l, cluster) -> along-track centre`` (m) of relative states.
        period_s: The orbit the drift is measured over, s.
        steps: Runge–Kutta steps of that orbit.
    """

    def __init__(self, chief_pos: np.ndarray, chief_vel: np.ndarray,
                 centre: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
                 period_s: float, steps: int) -> None:
        k = len(chief_pos)
        no_members = (np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0, np.intp), np.zeros(0))
        positions, velocities = [chief_pos], [chief_vel]
        for _ in range(PHASES - 1):  # the chiefs alone, a 1/PHASES orbit at a time
            pos, vel, *_ = propagate(positions[-1], velocities[-1], *no_members[:2],
                                     *no_members[2:], period_s / PHASES,
                                     max_step_s=period_s / steps)
            positions.append(pos)
            velocities.append(vel)
        copies_pos, copies_vel = np.concatenate(positions), np.concatenate(velocities)
        copies = len(copies_pos)  # PHASES * k, phase-major
        probes = _probe_states()  # (72, 6)
        state_l = np.tile(probes, (copies, 1))
        chief_of = np.repeat(np.arange(copies), len(probes))
        cluster = chief_of % k
        basis, rate = lvlh_frames(copies_pos, copies_vel)
        rel_pos, rel_vel = lvlh_to_inertial(basis[chief_of], rate[chief_of], state_l[:, :3],
                                            state_l[:, 3:])
        end_pos, end_vel, end_rel_pos, end_rel_vel = propagate(
            copies_pos, copies_vel, rel_pos, rel_vel, chief_of, np.zeros(len(chief_of)),
            period_s, max_step_s=period_s / steps)
        end_basis, end_rate = lvlh_frames(end_pos, end_vel)
        end_l, end_vel_l = inertial_to_lvlh(end_basis[chief_of], end_rate[chief_of],
                                            end_rel_pos, end_rel_vel)
        drift = (centre(end_l, end_vel_l, cluster)
                 - centre(state_l[:, :3], state_l[:, 3:], cluster)).reshape(copies, -1)
        gradient, hessian = _differences(drift)
        self.gradient = gradient.reshape(PHASES, k, 6)
        self.hessian = hessian.reshape(PHASES, k, 6, 6)
        self.phase_rad = argument_of_latitude_rad(copies_pos, copies_vel).reshape(PHASES, k)

    def along_track_rate_change(self, chief_pos: np.ndarray, chief_vel: np.ndarray,
                                cluster: np.ndarray, pos_l: np.ndarray,
                                vel_l: np.ndarray) -> np.ndarray:
        """Change of ẏ (m/s) that makes each member's drift over the next orbit zero.

        Args:
            chief_pos, chief_vel: (k, 3) the chiefs now.
            cluster: (m,) each member's cluster.
            pos_l, vel_l: (m, 3) the members' LVLH states.
        """
        phase = argument_of_latitude_rad(chief_pos, chief_vel)
        rows = np.empty((len(phase), 42))
        for c in range(len(phase)):  # over the few clusters
            table = np.column_stack((self.gradient[:, c], self.hessian[:, c].reshape(PHASES, 36)))
            rows[c] = _periodic_interp(self.phase_rad[:, c], table, float(phase[c]))
        gradient, hessian = rows[:, :6], rows[:, 6:]
        state = np.column_stack((pos_l, vel_l))
        g, h = gradient[cluster], hessian[cluster].reshape(-1, 6, 6)
        h_state = np.einsum("mij,mj->mi", h, state)
        drift = np.einsum("mi,mi->m", g, state) + 0.5 * np.einsum("mi,mi->m", state, h_state)
        return -drift / (g[:, 4] + h_state[:, 4])


def _periodic_interp(at_rad: np.ndarray, table: np.ndarray, x_rad: float) -> np.ndarray:
    """Linear interpolation of the rows of ``table`` (sampled at angles ``at_rad``, any
    order) at angle ``x_rad``, wrapping around 2π."""
    order = np.argsort(at_rad)
    at, rows = at_rad[order], table[order]
    after = int(np.searchsorted(at, x_rad)) % len(at)
    before = (after - 1) % len(at)
    span = (at[after] - at[before]) % (2.0 * math.pi)
    weight = ((x_rad - at[before]) % (2.0 * math.pi)) / span if span > 0.0 else 0.0
    return (1.0 - weight) * rows[before] + weight * rows[after]


def _probe_states() -> np.ndarray:
    """The probes: ±step of each component, then (±, ±) of every pair, (72, 6)."""
    rows = []
    for q in range(6):
        for sign in (1.0, -1.0):
            row = np.zeros(6)
            row[q] = sign * PROBE_STEP[q]
            rows.append(row)
    for p in range(6):
        for q in range(p + 1, 6):
            for sp, sq in ((1.0, 1.0), (1.0, -1.0), (-1.0, 1.0), (-1.0, -1.0)):
                row = np.zeros(6)
                row[p], row[q] = sp * PROBE_STEP[p], sq * PROBE_STEP[q]
                rows.append(row)
    return np.array(rows)


def _differences(drift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradient (copies, 6) and Hessian (copies, 6, 6) from the probes' drifts (drift(0) = 0)."""
    copies = len(drift)
    gradient = np.empty((copies, 6))
    hessian = np.empty((copies, 6, 6))
    for q in range(6):
        plus, minus = drift[:, 2 * q], drift[:, 2 * q + 1]
        gradient[:, q] = (plus - minus) / (2.0 * PROBE_STEP[q])
        hessian[:, q, q] = (plus + minus) / PROBE_STEP[q] ** 2
    column = 12
    for p in range(6):
        for q in range(p + 1, 6):
            pp, pm, mp, mm = (drift[:, column + j] for j in range(4))
            hessian[:, p, q] = hessian[:, q, p] = (
                (pp - pm - mp + mm) / (4.0 * PROBE_STEP[p] * PROBE_STEP[q]))
            column += 4
    return gradient, hessian

"""Motion between stream frames: where each node is a moment after the newest state.

The twin publishes a state a few times a second (once a second, or slower, on a big
fleet); the screen redraws 30 to 60 times a second. Between two states the viewer moves
every node on from the newest state with its published velocity, so the fleet glides
instead of jumping: ``r(t0 + dt) = r + v dt`` to first order, carried along the node's
osculating circle (the plane of ``r`` and ``v``) so that at a high warp a node stays on its
orbit instead of cutting a chord inside it. In the Earth-fixed view the frame turns too:
``M(t0 + dt) = R3(omega dt) M(t0)``. Pure numpy, vectorized over the fleet; nothing here
models more than that (the next state corrects any drift).
"""

from __future__ import annotations

import math

import numpy as np

# The Earth's rotation rate, rad/s (IERS: 7.292115e-5, the sidereal day).
EARTH_ROTATION_RAD_S = 7.292115e-5


def advance(pos_km: np.ndarray, vel_km_s: np.ndarray, dt_s: float,
            out: np.ndarray | None = None) -> np.ndarray:
    """Positions ``dt_s`` later, each node moving with its velocity along its circle.

    The transverse part of ``v`` turns the position about ``h = r x v`` by
    ``|v_t| dt / |r|`` (exact on a circular orbit, what low orbits nearly are); the radial
    part moves it along ``r``. To first order in ``dt`` this is ``r + v dt``.

    Args:
        pos_km: ``(n, 3)`` positions (any inertial frame), km.
        vel_km_s: ``(n, 3)`` velocities in the same frame, km/s.
        dt_s: Elapsed simulated time since the positions, s.
        out: Optional ``(n, 3)`` float32 buffer to write into.

    Returns:
        ``(n, 3)`` float32 km; rows without a finite position and velocity stay where
        ``pos_km`` puts them (non-finite rows become the Earth's centre, hidden).
    """
    return Mover(pos_km, vel_km_s).at(dt_s, out)


class Mover:
    """``advance`` split in two: what depends only on the state (radius, directions,
    speeds), computed once, and what depends on ``dt_s``, at each frame. Between two
    states the view moves the same nodes many times: this halves a frame's arithmetic.

    Args:
        pos_km: ``(n, 3)`` positions (any inertial frame), km.
        vel_km_s: ``(n, 3)`` velocities in the same frame, km/s.
    """

    def __init__(self, pos_km: np.ndarray, vel_km_s: np.ndarray) -> None:
        pos = self.pos = np.asarray(pos_km, dtype=np.float64)
        vel = np.asarray(vel_km_s, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            radius = np.sqrt(np.einsum("ij,ij->i", pos, pos))[:, None]
            self.r_hat = r_hat = pos / radius
            self.v_radial = v_radial = np.einsum("ij,ij->i", vel, r_hat)[:, None]
            v_transverse = vel - v_radial * r_hat
            speed_t = np.sqrt(np.einsum("ij,ij->i", v_transverse, v_transverse))[:, None]
            self.rate = speed_t / radius  # rad/s about r x v
            self.radius_along = radius * np.where(speed_t > 0.0, v_transverse / speed_t, 0.0)

    def at(self, dt_s: float, out: np.ndarray | None = None) -> np.ndarray:
        """Positions ``dt_s`` after the state, float32 (see ``advance``)."""
        pos = self.pos
        if out is None:
            out = np.empty(pos.shape, dtype=np.float32)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            angle = self.rate * dt_s
            moved = (np.cos(angle) * pos + np.sin(angle) * self.radius_along
                     + self.v_radial * dt_s * self.r_hat)
            bad = ~np.isfinite(moved).all(axis=1)
            moved[bad] = pos[bad]
            np.copyto(out, moved, casting="unsafe")
        out[~np.isfinite(out).all(axis=1)] = 0.0
        return out


def earth_turn(dt_s: float) -> np.ndarray:
    """``R3(omega dt)``: how far the Earth-fixed axes turn in ``dt_s``, 3x3.

    ``M(t0 + dt) = earth_turn(dt) @ M(t0)`` for ``r_itrs = M r_gcrs``.
    """
    theta = EARTH_ROTATION_RAD_S * dt_s
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])


def extrapolation_s(wall_since_frame_s: float, warp: float, paused: bool,
                    frame_gap_s: float) -> float:
    """Simulated seconds to move the fleet on from the newest state.

    ``wall_since_frame_s * warp`` while running, 0 while paused, and never more than
    twice the simulated gap between the last two states (``frame_gap_s``): a stream
    that stalls stops the fleet there instead of carrying it on for ever.
    """
    if paused or not (warp > 0.0) or not math.isfinite(wall_since_frame_s):
        return 0.0
    limit = 2.0 * frame_gap_s if frame_gap_s > 0.0 and math.isfinite(frame_gap_s) else 0.0
    return float(min(max(wall_since_frame_s * warp, 0.0), limit))

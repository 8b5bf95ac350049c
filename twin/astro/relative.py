"""Relative motion of cluster members about their chief: exact J2 dynamics, integrated.

The member's offset ρ from its chief (inertial, TEME, metres) obeys

    ρ̈ = g(r_c + ρ) - g(r_c) - ½ ρ_atm |v_c| v_c (B_m - B_c)

with g the two-body plus J2 gravity (WGS72, the constants SGP4 uses) and the last term the
differential drag of a member whose ballistic coefficient B = C_D A / m differs from the
chief's, in a static atmosphere of density ρ_atm at the chief's altitude. Nothing is
linearised: the difference of two full accelerations is formed in float64 (8 m/s² known to
1e-15, so a 1e-6 m/s² difference keeps nine digits). ``propagate`` integrates chief and
offsets together with classical fixed-step Runge–Kutta 4, all members at once.

Also here: the chief's LVLH frame, LVLH <-> inertial for offsets, the Hill–Clohessy–Wiltshire
state transition used for station-keeping transfers, and a static exponential atmosphere.
"""

from __future__ import annotations

import math

import numpy as np

from twin.astro.constellation import EARTH_J2, EARTH_MU_KM3_S2, EARTH_RADIUS_KM

MU_M3_S2 = EARTH_MU_KM3_S2 * 1e9
"""WGS72 gravitational parameter, m³/s²."""
RADIUS_M = EARTH_RADIUS_KM * 1e3
"""WGS72 equatorial radius, m."""
MAX_STEP_S = 10.0
"""Longest Runge–Kutta step (s): 1/585 of a 650 km orbit; the offsets' error stays < 1 mm
per orbit (tests/test_formation.py checks < 1 m against solve_ivp)."""

# Vallado, "Fundamentals of Astrodynamics and Applications", 4th ed. (2013), Table 8-4:
# exponential atmosphere (CIRA-72, mean solar activity). Base altitude km, base density
# kg/m³, scale height km.
_EXPONENTIAL_ATMOSPHERE = (
    (300.0, 2.418e-11, 53.298), (350.0, 9.518e-12, 53.628), (400.0, 3.725e-12, 58.515),
    (450.0, 1.585e-12, 60.828), (500.0, 6.967e-13, 63.822), (600.0, 1.454e-13, 71.835),
    (700.0, 3.614e-14, 88.667), (800.0, 1.170e-14, 124.64), (900.0, 5.245e-15, 181.05),
    (1000.0, 3.019e-15, 268.00),
)


def density_kg_m3(altitude_km: float) -> float:
    """Static exponential atmosphere density at ``altitude_km`` (kg/m³), 300 km and above."""
    base = _EXPONENTIAL_ATMOSPHERE[0]
    for row in _EXPONENTIAL_ATMOSPHERE:
        if altitude_km >= row[0]:
            base = row
    h0, rho0, scale_km = base
    return rho0 * math.exp(-(altitude_km - h0) / scale_km)


def gravity_j2(pos_m: np.ndarray) -> np.ndarray:
    """Two-body plus J2 acceleration (m/s²) at (…, 3) positions (m), J2 along z."""
    x, y, z = pos_m[..., 0], pos_m[..., 1], pos_m[..., 2]
    r2 = x * x + y * y + z * z
    r = np.sqrt(r2)
    mu_r3 = MU_M3_S2 / (r2 * r)
    j2_term = 1.5 * EARTH_J2 * RADIUS_M**2 / r2
    z2_r2 = 5.0 * z * z / r2
    acc = np.empty_like(pos_m)
    common = -mu_r3 * (1.0 + j2_term * (1.0 - z2_r2))
    acc[..., 0] = common * x
    acc[..., 1] = common * y
    acc[..., 2] = -mu_r3 * (1.0 + j2_term * (3.0 - z2_r2)) * z
    return acc


def _derivatives(chief_pos: np.ndarray, chief_vel: np.ndarray, rel_pos: np.ndarray,
                 chief_of: np.ndarray, drag_per_m: np.ndarray,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Accelerations of the chiefs (k, 3) and of the offsets (m, 3), m/s²."""
    own_chief = chief_pos[chief_of]
    # One gravity call for chiefs and members: at tens of members the cost is per call.
    acc = gravity_j2(np.concatenate((chief_pos, own_chief + rel_pos)))
    chief_acc = acc[:len(chief_pos)]
    rel_acc = acc[len(chief_pos):] - chief_acc[chief_of]
    own_vel = chief_vel[chief_of]
    speed = np.sqrt(np.einsum("ij,ij->i", own_vel, own_vel))
    rel_acc -= (drag_per_m * speed)[:, None] * own_vel
    return chief_acc, rel_acc


def propagate(chief_pos: np.ndarray, chief_vel: np.ndarray, rel_pos: np.ndarray,
              rel_vel: np.ndarray, chief_of: np.ndarray, drag_per_m: np.ndarray,
              duration_s: float, max_step_s: float = MAX_STEP_S,
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Integrate chiefs and member offsets together for ``duration_s`` (may be negative).

    Args:
        chief_pos, chief_vel: (k, 3) chief states, m and m/s (inertial).
        rel_pos, rel_vel: (m, 3) member offsets from their chief, m and m/s (inertial).
        chief_of: (m,) index of each member's chief in the chief arrays.
        drag_per_m: (m,) ½ ρ_atm (B_member - B_chief), 1/m: the differential drag factor.
        duration_s: Time to integrate, s.
        max_step_s: Longest Runge–Kutta step, s.

    Returns:
        The four arrays at the end (new arrays; the inputs are not changed).
    """
    steps = max(1, math.ceil(abs(duration_s) / max_step_s))
    h = duration_s / steps
    cp, cv, rp, rv = chief_pos.copy(), chief_vel.copy(), rel_pos.copy(), rel_vel.copy()
    args = (chief_of, drag_per_m)
    for _ in range(steps):  # over time steps; every member is in each array operation
        ca1, ra1 = _derivatives(cp, cv, rp, *args)
        ca2, ra2 = _derivatives(cp + 0.5 * h * cv, cv + 0.5 * h * ca1,
                                rp + 0.5 * h * rv, *args)
        cv2, rv2 = cv + 0.5 * h * ca1, rv + 0.5 * h * ra1
        ca3, ra3 = _derivatives(cp + 0.5 * h * cv2, cv + 0.5 * h * ca2,
                                rp + 0.5 * h * rv2, *args)
        cv3, rv3 = cv + 0.5 * h * ca2, rv + 0.5 * h * ra2
        ca4, ra4 = _derivatives(cp + h * cv3, cv + h * ca3, rp + h * rv3, *args)
        cv4, rv4 = cv + h * ca3, rv + h * ra3
        cp = cp + (h / 6.0) * (cv + 2.0 * cv2 + 2.0 * cv3 + cv4)
        rp = rp + (h / 6.0) * (rv + 2.0 * rv2 + 2.0 * rv3 + rv4)
        cv = cv + (h / 6.0) * (ca1 + 2.0 * ca2 + 2.0 * ca3 + ca4)
        rv = rv + (h / 6.0) * (ra1 + 2.0 * ra2 + 2.0 * ra3 + ra4)
    return cp, cv, rp, rv


def lvlh_frames(chief_pos: np.ndarray, chief_vel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The chiefs' LVLH bases and frame rates.

    Args:
        chief_pos, chief_vel: (k, 3) chief states (any consistent units; m and m/s here).

    Returns:
        basis: (k, 3, 3) with columns x̂ (radial), ŷ (along-track), ẑ (orbit normal), so
            ``inertial = basis @ lvlh``.
        rate: (k, 3) the frame's angular velocity h / r² (rad/s), inertial.
    """
    r2 = np.einsum("ij,ij->i", chief_pos, chief_pos)
    x_hat = chief_pos / np.sqrt(r2)[:, None]
    h = np.cross(chief_pos, chief_vel)
    z_hat = h / np.linalg.norm(h, axis=1)[:, None]
    y_hat = np.cross(z_hat, x_hat)
    return np.stack((x_hat, y_hat, z_hat), axis=2), h / r2[:, None]


def lvlh_to_inertial(basis: np.ndarray, rate: np.ndarray, pos_l: np.ndarray,
                     vel_l: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Offsets from LVLH (per-member ``basis`` (m, 3, 3), ``rate`` (m, 3)) to inertial."""
    pos = np.einsum("mij,mj->mi", basis, pos_l)
    vel = np.einsum("mij,mj->mi", basis, vel_l) + np.cross(rate, pos)
    return pos, vel


def inertial_to_lvlh(basis: np.ndarray, rate: np.ndarray, pos: np.ndarray,
                     vel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of ``lvlh_to_inertial``."""
    pos_l = np.einsum("mji,mj->mi", basis, pos)
    vel_l = np.einsum("mji,mj->mi", basis, vel - np.cross(rate, pos))
    return pos_l, vel_l


def hcw_transfer_dv(mean_motion_rad_s: np.ndarray, pos_l: np.ndarray, vel_l: np.ndarray,
                    target_l: np.ndarray, transfer_s: np.ndarray) -> np.ndarray:
    """First impulse (LVLH, m/s) that takes each offset to ``target_l`` in ``transfer_s``.

    Hill–Clohessy–Wiltshire state transition (Clohessy & Wiltshire, J. Aerosp. Sci. 27(9),
    1960): r(T) = Φrr r0 + Φrv v0; solve Φrv v0⁺ = r_target - Φrr r0, Δv = v0⁺ - v0.
    Φrv is regular unless nT is a multiple of π (cross-track), so pick T = a quarter orbit.

    Args:
        mean_motion_rad_s: (m,) n of each member's chief.
        pos_l, vel_l: (m, 3) offsets and rates now, LVLH.
        target_l: (m, 3) wanted LVLH offsets at the end of the transfer.
        transfer_s: (m,) transfer time of each member, s.

    Returns:
        (m, 3) Δv, LVLH, m/s.
    """
    n = mean_motion_rad_s
    s, c = np.sin(n * transfer_s), np.cos(n * transfer_s)
    m = len(n)
    phi_rr = np.zeros((m, 3, 3))
    phi_rr[:, 0, 0] = 4.0 - 3.0 * c
    phi_rr[:, 1, 0] = 6.0 * (s - n * transfer_s)
    phi_rr[:, 1, 1] = 1.0
    phi_rr[:, 2, 2] = c
    phi_rv = np.zeros((m, 3, 3))
    phi_rv[:, 0, 0] = s / n
    phi_rv[:, 0, 1] = 2.0 * (1.0 - c) / n
    phi_rv[:, 1, 0] = -2.0 * (1.0 - c) / n
    phi_rv[:, 1, 1] = (4.0 * s - 3.0 * n * transfer_s) / n
    phi_rv[:, 2, 2] = s / n
    needed = target_l - np.einsum("mij,mj->mi", phi_rr, pos_l)
    return np.linalg.solve(phi_rv, needed[:, :, None])[:, :, 0] - vel_l

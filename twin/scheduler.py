"""Placing queued jobs on nodes: first-fit, and a sun- and heat-aware policy.

Both policies place a job only where it fits now: enough free working accelerators,
result storage free for its result, a usable orbit, and headroom (the power cap in force
covers the node's full-clock draw with the job added; the chip is not thermally
throttled). They differ in which node they pick:

- ``first_fit``: the lowest-numbered node that fits.
- ``sun_aware``: only nodes in full sun whose predicted time to the next eclipse covers
  min(the job's expected run time, ``eclipse_runway_s``); among those, eclipse-free nodes
  and long runways first, then the coolest radiator. A job held longer than ``max_hold_s``
  falls back to any node that fits (best runway, coolest first), so nothing starves.

Eclipse prediction is geometric, from this step's state alone (no history): the circular
orbit of radius |r| in the plane of (r, v), the Sun direction, and the cylindrical
shadow. With theta the in-plane angle of the satellite from the anti-Sun direction
(increasing along the motion) and beta the beta angle, the satellite is in shadow when
cos(theta) > cos(theta_e) = sqrt(1 - (R/r)^2) / cos(beta) (no eclipse when that is > 1);
the next entry is at theta = -theta_e, reached after ((-theta_e - theta) mod 2 pi) / n,
with n = |r x v| / r^2 the satellite's angular rate now.
"""

from __future__ import annotations

import numpy as np

from twin.workload import JobTable, WorkloadParams

POLICIES: dict[str, int] = {"first_fit": 0, "sun_aware": 1}
"""Policy name -> code in the fleet map (``scheduler_policy_code``)."""

MU_EARTH_KM3_S2 = 398600.4418  # WGS84 / EGM96 GM
SHADOW_RADIUS_KM = 6378.137  # cylindrical shadow of the equatorial radius
NO_ECLIPSE_S = np.inf


def eclipse_lookahead(pos_km: np.ndarray, vel_km_s: np.ndarray, sun_km: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predict each node's next eclipse from its current state (circular, cylindrical).

    Args:
        pos_km: (n, 3) positions, GCRS.
        vel_km_s: (n, 3) velocities, GCRS.
        sun_km: (3,) Sun position, GCRS.

    Returns:
        ``(in_shadow, to_entry_s, shadow_s)``, each (n,): whether the node is in the
        geometric shadow now, seconds to the next shadow entry (0 while in shadow, inf for
        an orbit that never enters shadow), and how long a shadow pass lasts (s).
    """
    sun_hat = sun_km / np.linalg.norm(sun_km)
    r = np.linalg.norm(pos_km, axis=1)
    h = np.cross(pos_km, vel_km_s)
    h_hat = h / np.linalg.norm(h, axis=1, keepdims=True)
    sin_beta = h_hat @ sun_hat
    # Anti-Sun direction projected into the orbit plane, and the in-plane axis 90 deg ahead.
    anti = -(sun_hat - sin_beta[:, None] * h_hat)
    cos_beta = np.linalg.norm(anti, axis=1)
    anti /= np.maximum(cos_beta, 1e-12)[:, None]
    ahead = np.cross(h_hat, anti)
    theta = np.arctan2(np.einsum("ij,ij->i", pos_km, ahead), np.einsum("ij,ij->i", pos_km, anti))
    with np.errstate(divide="ignore", invalid="ignore"):
        cos_half = np.sqrt(np.clip(1.0 - (SHADOW_RADIUS_KM / r) ** 2, 0.0, None)) / cos_beta
    has_eclipse = cos_half < 1.0
    half = np.arccos(np.clip(cos_half, -1.0, 1.0))
    # Angular rate from the state itself, |r x v| / r^2: it carries the J2 speed-up of the
    # argument of latitude that sqrt(mu / r^3) would miss (~0.5 % in LEO).
    mean_motion = np.linalg.norm(h, axis=1) / r**2
    in_shadow = has_eclipse & (np.abs(theta) < half)
    to_entry = np.mod(-half - theta, 2.0 * np.pi) / mean_motion
    to_entry = np.where(has_eclipse, np.where(in_shadow, 0.0, to_entry), NO_ECLIPSE_S)
    shadow_s = np.where(has_eclipse, 2.0 * half / mean_motion, 0.0)
    bad = ~np.isfinite(r)
    in_shadow[bad] = False
    to_entry[bad] = 0.0
    shadow_s[bad] = 0.0
    return in_shadow, to_entry, shadow_s


def plan(policy: str, params: WorkloadParams, jobs: JobTable, t_utc: float, *,
         free_accels: np.ndarray, free_storage_b: np.ndarray, power_room_w: np.ndarray,
         accel_full_w: float, usable: np.ndarray, sunlit_frac: np.ndarray,
         to_eclipse_s: np.ndarray, radiator_k: np.ndarray) -> tuple[list[tuple[int, int]], dict]:
    """Choose nodes for queued jobs, in service order; updates the free arrays in place.

    Args:
        policy: ``first_fit`` or ``sun_aware``.
        free_accels: (n,) working accelerators not running a job.
        free_storage_b: (n,) storage not used or reserved (bytes).
        power_room_w: (n,) cap in force minus the node's full-clock draw (W).
        accel_full_w: Extra draw of one more accelerator at full clock over sleep (W).
        usable: (n,) bool, node may take work (orbit ok, not thermally throttled).
        sunlit_frac, to_eclipse_s, radiator_k: (n,) for the sun-aware policy.

    Returns:
        ``(placements, why)``: (slot, node) pairs; ``why`` counts jobs not placed by the
        reason their best candidates failed (``accelerators``, ``storage``, ``power``,
        ``heat``, ``policy``) for the operator.
    """
    placements: list[tuple[int, int]] = []
    why = {"accelerators": 0, "storage": 0, "power": 0, "policy": 0}
    queued = jobs.queued()[: params.max_jobs_per_pass]
    # Only nodes with a free accelerator can take anything: work on that (usually small)
    # subset, in node order, and map back at the end.
    nodes = np.flatnonzero(free_accels > 0)
    if queued.size == 0 or nodes.size == 0:
        why["accelerators"] = int(queued.size)
        return placements, why
    free_acc = free_accels[nodes]
    free_sto = free_storage_b[nodes]
    room = power_room_w[nodes]
    usable = usable[nodes]
    sunny = sunlit_frac[nodes] >= 0.999
    to_eclipse_s = to_eclipse_s[nodes]
    radiator_k = radiator_k[nodes]
    cool = radiator_k <= params.radiator_cool_k
    for slot in queued:
        accels = int(jobs.accels[slot])
        fits_acc = free_acc >= accels
        if not fits_acc.any():
            why["accelerators"] += 1
            # Nothing smaller than the free space can jump a bigger job forever: keep going,
            # smaller jobs may still fit (backfill).
            continue
        fits = fits_acc & usable & (free_sto >= jobs.result_bytes[slot])
        if not fits.any():
            why["storage"] += 1
            continue
        fits &= room >= accels * accel_full_w
        if not fits.any():
            why["power"] += 1
            continue
        if policy == "first_fit":
            k = int(np.argmax(fits))
        else:
            k = _sun_aware_pick(params, jobs, slot, t_utc, fits, sunny, cool, to_eclipse_s,
                                radiator_k)
            if k < 0:
                why["policy"] += 1
                continue
        node = int(nodes[k])
        placements.append((int(slot), node))
        # Book the job on the subset and on the caller's full arrays alike.
        free_acc[k] -= accels
        free_accels[node] -= accels
        free_sto[k] -= jobs.result_bytes[slot]
        free_storage_b[node] -= jobs.result_bytes[slot]
        room[k] -= accels * accel_full_w
        power_room_w[node] -= accels * accel_full_w
    return placements, why


def _sun_aware_pick(params: WorkloadParams, jobs: JobTable, slot: int, t_utc: float,
                    fits: np.ndarray, sunny: np.ndarray, cool: np.ndarray,
                    to_eclipse_s: np.ndarray, radiator_k: np.ndarray) -> int:
    """The sun-aware choice among nodes that fit, or -1 to hold the job for now."""
    remaining_accel_s = jobs.size_accel_s[slot] - jobs.done_accel_s[slot]
    remaining_s = remaining_accel_s / max(int(jobs.accels[slot]), 1)
    needed_s = min(remaining_s, params.eclipse_runway_s)
    good = fits & sunny & (to_eclipse_s >= needed_s)
    held_s = t_utc - jobs.submit_t[slot]
    if not good.any():
        if held_s < params.max_hold_s:
            return -1
        good = fits
    candidates = np.flatnonzero(good)
    # Runway counts up to twice the need: beyond that, a cooler radiator matters more.
    runway = np.minimum(to_eclipse_s[candidates], 2.0 * max(needed_s, 1.0))
    order = np.lexsort((candidates, radiator_k[candidates], ~cool[candidates], -runway))
    return int(candidates[order[0]])

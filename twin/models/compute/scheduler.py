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
- ``network_aware``: single-node jobs as ``sun_aware``; multi-node jobs on the connected
  group of nodes whose slowest link is fastest (``multinode.choose_group``), where the
  other two take the first connected group found.

Eclipse prediction is geometric, from this step's state alone (no history): the circular
orbit of radius |r| in the plane of (r, v), at the angular rate n = |r x v| / r^2 now, and
the orbit's shadow, the cylinder behind the WGS84 ellipsoid (plus the atmosphere's shadow
height) through the middle of the penumbra. In the space stretched by k = (a + h)/(b + h)
along the polar axis that ellipsoid is a sphere of radius a + h and the circle an ellipse
r'(phi) = |r| (cos phi E1 + sin phi E2), E1, E2 the stretched in-plane axes (E1 along the
position now). With s' the unit stretched Sun direction, the distance from the shadow axis
squared, |r'|^2 - (r'.s')^2, is C + M cos(2 phi - psi) in phi; the satellite is in the
shadow where that is below (a + h)^2 and r'.s' < 0: one arc of the orbit, found in closed
form, entered at phi_in and left at phi_out. Next entry after phi_in / n (mod one orbit).
"""

from __future__ import annotations

import numpy as np

from twin.astro.geometry import WGS84_A_KM, stretch_along_axis
from twin.models.compute.workload import JobTable, WorkloadParams

POLICIES: dict[str, int] = {"first_fit": 0, "sun_aware": 1, "network_aware": 2}
"""Policy name -> code in the fleet map (``scheduler_policy_code``)."""

MU_EARTH_KM3_S2 = 398600.4418  # WGS84 / EGM96 GM
SHADOW_RADIUS_KM = WGS84_A_KM  # the sphere's radius without an ellipsoid or atmosphere
NO_ECLIPSE_S = np.inf


LOOKAHEAD_CHUNK_ROWS = 8 * 8192
"""Nodes whose eclipse is predicted at once: the prediction's two dozen (n,) and (n, 3)
temporaries were 340 MB at a million, every scheduling pass (docs/performance.md, "The
in-step peak at a million"); a chunk's are 22 MB. Every node's numbers are its own rows'."""


def eclipse_lookahead(pos_km: np.ndarray, vel_km_s: np.ndarray, sun_km: np.ndarray,
                      polar_axis: np.ndarray | None = None, stretch: float = 1.0,
                      radius_km: float = SHADOW_RADIUS_KM
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`eclipse_lookahead_rows` over the nodes in chunks of ``LOOKAHEAD_CHUNK_ROWS``."""
    n = len(pos_km)
    if n <= LOOKAHEAD_CHUNK_ROWS:
        return eclipse_lookahead_rows(pos_km, vel_km_s, sun_km, polar_axis, stretch,
                                      radius_km)
    in_shadow, to_entry, shadow_s = np.empty(n, dtype=bool), np.empty(n), np.empty(n)
    for a in range(0, n, LOOKAHEAD_CHUNK_ROWS):
        b = min(n, a + LOOKAHEAD_CHUNK_ROWS)
        in_shadow[a:b], to_entry[a:b], shadow_s[a:b] = eclipse_lookahead_rows(
            pos_km[a:b], vel_km_s[a:b], sun_km, polar_axis, stretch, radius_km)
    return in_shadow, to_entry, shadow_s


def eclipse_lookahead_rows(pos_km: np.ndarray, vel_km_s: np.ndarray, sun_km: np.ndarray,
                           polar_axis: np.ndarray | None = None, stretch: float = 1.0,
                           radius_km: float = SHADOW_RADIUS_KM
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predict each node's next eclipse from its current state (circular orbit, the
    cylindrical shadow of the ellipsoid through the penumbra's middle), all at once.

    Args:
        pos_km: (n, 3) positions, GCRS.
        vel_km_s: (n, 3) velocities, GCRS.
        sun_km: (3,) Sun position, GCRS.
        polar_axis: (3,) the Earth's rotation axis in GCRS (orbit's ``polar_axis_gcrs``);
            None for a sphere.
        stretch: k = (a + h) / (b + h) along ``polar_axis`` (orbit's ``shadow_stretch``).
        radius_km: The shadow sphere's radius in the stretched space, a + h (orbit's
            ``shadow_radius_km``).

    Returns:
        ``(in_shadow, to_entry_s, shadow_s)``, each (n,): whether the node is in the
        shadow now, seconds to the next shadow entry (0 while in shadow, inf for an orbit
        that never enters shadow), and how long a shadow pass lasts (s).
    """
    r = np.linalg.norm(pos_km, axis=1)
    h = np.cross(pos_km, vel_km_s)
    h_norm = np.linalg.norm(h, axis=1)
    e1 = pos_km / r[:, None]
    e2 = np.cross(h / h_norm[:, None], e1)  # in the plane, 90 deg ahead
    sun = np.asarray(sun_km, dtype=np.float64)
    if polar_axis is not None and stretch != 1.0:
        axis = np.asarray(polar_axis, dtype=np.float64)
        axis = axis / np.linalg.norm(axis)
        e1 = stretch_along_axis(e1, axis, stretch)
        e2 = stretch_along_axis(e2, axis, stretch)
        sun = stretch_along_axis(sun, axis, stretch)
    sun_hat = sun / np.linalg.norm(sun)
    s1, s2 = e1 @ sun_hat, e2 @ sun_hat
    # Distance from the shadow axis squared over r²: a1 cos² + 2 a12 cos sin + a2 sin²
    # = (a1 + a2)/2 + m cos(2 phi - psi).
    a1 = np.einsum("ij,ij->i", e1, e1) - s1 * s1
    a2 = np.einsum("ij,ij->i", e2, e2) - s2 * s2
    a12 = np.einsum("ij,ij->i", e1, e2) - s1 * s2
    m = np.hypot(0.5 * (a1 - a2), a12)
    psi = np.arctan2(a12, 0.5 * (a1 - a2))
    with np.errstate(divide="ignore", invalid="ignore"):
        # Inside the cylinder where cos(2 phi - psi) < c.
        c = ((radius_km / r) ** 2 - 0.5 * (a1 + a2)) / m
    has_eclipse = c > -1.0
    alpha = np.arccos(np.clip(c, -1.0, 1.0))
    half = 0.5 * (np.pi - alpha)  # half the arc inside, in phi
    # The two arcs inside the cylinder are centred at (psi + pi)/2 and pi later: the shadow
    # is the one behind the Earth, r'.s' < 0 there.
    centre = 0.5 * (psi + np.pi)
    behind = np.cos(centre) * s1 + np.sin(centre) * s2 < 0.0
    centre = np.where(behind, centre, centre + np.pi)
    entry = np.mod(centre - half, 2.0 * np.pi)  # angle ahead of now to the entry
    # Angular rate from the state itself, |r x v| / r^2: it carries the J2 speed-up of the
    # argument of latitude that sqrt(mu / r^3) would miss (~0.5 % in LEO).
    mean_motion = h_norm / r**2
    in_shadow = has_eclipse & (np.mod(-entry, 2.0 * np.pi) < 2.0 * half)
    to_entry = np.where(has_eclipse, np.where(in_shadow, 0.0, entry / mean_motion),
                        NO_ECLIPSE_S)
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
    pass_ = _Pass(params, policy, nodes, free_accels, free_storage_b, power_room_w, usable,
                  sunlit_frac, to_eclipse_s, radiator_k, accel_full_w)
    # The jobs' numbers as Python scalars, read once (same float64 values as the table's).
    accels_l = jobs.accels[queued].tolist()
    result_l = jobs.result_bytes[queued].tolist()
    remaining_s = (jobs.size_accel_s[queued] - jobs.done_accel_s[queued]) / np.maximum(
        jobs.accels[queued], 1)
    needed_l = np.minimum(remaining_s, params.eclipse_runway_s).tolist()
    held_l = (t_utc - jobs.submit_t[queued]).tolist()
    for j, slot in enumerate(queued.tolist()):
        accels, result_b = accels_l[j], result_l[j]
        fit = pass_.fits(accels, result_b)
        if fit.n_acc == 0:
            why["accelerators"] += 1
            # Nothing smaller than the free space can jump a bigger job forever: keep going,
            # smaller jobs may still fit (backfill).
            continue
        if fit.n_storage == 0:
            why["storage"] += 1
            continue
        if fit.n_power == 0:
            why["power"] += 1
            continue
        if policy == "first_fit":
            k = int(np.argmax(fit.power))
        else:
            k = pass_.sun_aware_pick(fit.power, needed_l[j], held_l[j])
            if k < 0:
                why["policy"] += 1
                continue
        node = pass_.node[k]
        placements.append((slot, node))
        pass_.book(k, accels, result_b)
        # Book the job on the caller's full arrays too.
        free_accels[node] -= accels
        free_storage_b[node] -= result_b
        power_room_w[node] -= accels * accel_full_w
    return placements, why


class _Fit:
    """Which nodes of a pass fit one (accelerators, result bytes) class of job, by stage.

    ``acc``: enough free accelerators; ``storage``: and usable with storage for the
    result; ``power``: and power headroom for the accelerators at full clock. Each with
    its count, kept current as jobs are booked.
    """

    __slots__ = ("acc", "accels", "n_acc", "n_power", "n_storage", "need_w", "power",
                 "result_b", "storage")

    def __init__(self, p: _Pass, accels: int, result_b: float) -> None:
        self.accels, self.result_b = accels, result_b
        self.need_w = accels * p.accel_full_w
        self.acc = p.free_acc >= accels
        self.storage = self.acc & p.usable & (p.free_sto >= result_b)
        self.power = self.storage & (p.room >= self.need_w)
        self.n_acc = int(np.count_nonzero(self.acc))
        self.n_storage = int(np.count_nonzero(self.storage))
        self.n_power = int(np.count_nonzero(self.power))

    def update(self, k: int, free_acc: int, free_sto: float, room: float) -> None:
        """Node ``k``'s free resources went down to these: it may have left each stage."""
        acc = free_acc >= self.accels
        if not acc and self.acc[k]:
            self.acc[k] = False
            self.n_acc -= 1
        storage = acc and free_sto >= self.result_b
        if not storage and self.storage[k]:
            self.storage[k] = False
            self.n_storage -= 1
        if not (storage and room >= self.need_w) and self.power[k]:
            self.power[k] = False
            self.n_power -= 1


class _Pass:
    """One scheduling pass over the nodes with a free accelerator.

    The nodes are taken in the order the policy prefers them when nothing else decides:
    node order for first-fit; for sun-aware, cool radiators first, then colder, then node
    order. So "the first node of a mask" is one ``argmax``. Everything that does not change
    during a pass is computed once: that order, the runway tests for each runway asked, and
    per class of job the nodes that fit (updated at the one node a placement books).
    Booking only lowers free resources, so a node that stops fitting a class never fits it
    again within the pass. Each job's choice is the one the plain per-job evaluation makes
    (tests/test_scheduler.py checks that against a reference implementation).
    """

    def __init__(self, params: WorkloadParams, policy: str, nodes: np.ndarray,
                 free_accels: np.ndarray, free_storage_b: np.ndarray,
                 power_room_w: np.ndarray, usable: np.ndarray, sunlit_frac: np.ndarray,
                 to_eclipse_s: np.ndarray, radiator_k: np.ndarray, accel_full_w: float
                 ) -> None:
        self.params = params
        self.accel_full_w = accel_full_w
        if policy != "first_fit":
            radiator = radiator_k[nodes]
            cool = radiator <= params.radiator_cool_k
            nodes = nodes[np.lexsort((nodes, radiator, ~cool))]
        self.node: list[int] = nodes.tolist()
        self.free_acc = free_accels[nodes]
        self.free_sto = free_storage_b[nodes]
        self.room = power_room_w[nodes]
        self.usable = usable[nodes]
        self.sunny = sunlit_frac[nodes] >= 0.999
        te = to_eclipse_s[nodes]
        self.te = te
        # Runway ranks like sorting does: NaN after every number (-inf is never a runway).
        self.te_rank = np.where(np.isnan(te), -np.inf, te)
        self._classes: dict[tuple[int, float], _Fit] = {}
        self._sunny_ge: dict[float, np.ndarray] = {}
        self._te_ge: dict[float, np.ndarray] = {}

    def fits(self, accels: int, result_b: float) -> _Fit:
        fit = self._classes.get((accels, result_b))
        if fit is None:
            fit = self._classes[(accels, result_b)] = _Fit(self, accels, result_b)
        return fit

    def book(self, k: int, accels: int, result_b: float) -> None:
        self.free_acc[k] -= accels
        self.free_sto[k] -= result_b
        self.room[k] -= accels * self.accel_full_w
        # Stored as float64 and read back: the values every later comparison sees.
        free_acc, free_sto, room = int(self.free_acc[k]), float(self.free_sto[k]), \
            float(self.room[k])
        for fit in self._classes.values():
            fit.update(k, free_acc, free_sto, room)

    def _ge(self, cache: dict[float, np.ndarray], runway_s: float, sunny: bool) -> np.ndarray:
        mask = cache.get(runway_s)
        if mask is None:
            mask = self.te >= runway_s
            if sunny:
                mask &= self.sunny
            cache[runway_s] = mask
        return mask


    def sun_aware_pick(self, fits: np.ndarray, needed_s: float, held_s: float) -> int:
        """The sun-aware choice among nodes that fit, or -1 to hold the job for now.

        Candidates: nodes in sun whose runway covers ``needed_s`` (or, for a job held past
        ``max_hold_s`` with no such node, every node that fits). Runway counts up to twice
        the need: beyond that a cooler radiator matters more. So the longest capped runway
        wins, then the preference order. A candidate whose runway reaches the cap ties on
        it with every other such one (and beats the rest): the first of those in
        preference order wins; otherwise the longest runway, ties by preference.
        """
        cap = 2.0 * max(needed_s, 1.0)  # >= needed_s: reaching the cap covers the need
        long = fits & self._ge(self._sunny_ge, cap, sunny=True)
        k = int(np.argmax(long))
        if long[k]:
            return k
        good = fits & self._ge(self._sunny_ge, needed_s, sunny=True)
        if not good.any():
            if held_s < self.params.max_hold_s:
                return -1
            good = fits
            long = fits & self._ge(self._te_ge, cap, sunny=False)
            k = int(np.argmax(long))
            if long[k]:
                return k
        runway = np.where(good, self.te_rank, -np.inf)  # every candidate's te < cap here
        return int(np.argmax(good & (runway == runway.max())))

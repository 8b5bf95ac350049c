"""The clusters' members in flight: relative motion, station keeping and the Δv ledger.

The orbit model owns one ``FormationClusters``. Each step it hands over the SGP4 states of
the whole fleet (TEME, km); the chiefs' rows are kept, every other member's rows are
replaced by chief + offset, the offset integrated since the last step with the exact
two-body + J2 + differential-drag dynamics of twin.astro.relative, starting from the SGP4
chief state of the last step. Members are arrays: no loop over members anywhere here.

Station keeping (docs/models.md, "Formation clusters"): each member's reference is its
designed position (twin.astro.formation) in the chief's LVLH frame. When a member is more
than ``box_m`` off it, a two-impulse Hill–Clohessy–Wiltshire transfer takes it back in a
quarter orbit: the first burn now, the second on arrival matching the reference velocity
made drift-free by the drift table (twin.models.formation.drift).
Each impulse is added to the member's Δv ledger and its propellant follows the rocket
equation at the stated specific impulse.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from twin.astro.formation import FormationDesign, hex_pattern
from twin.astro.relative import (
    density_kg_m3,
    hcw_transfer_dv,
    inertial_to_lvlh,
    lvlh_frames,
    lvlh_to_inertial,
    propagate,
)
from twin.astro.shading import shaded_fraction
from twin.models.formation.drift import DriftTable
from twin.scenario.cluster import Cluster

STANDARD_GRAVITY_M_S2 = 9.80665
"""g0 of the rocket equation (exact, CGPM 1901)."""
MAX_GAP_S = 86400.0
"""A clock jump longer than this (a day) re-places the members on their design instead of
integrating through it."""
SHOOTING_ROUNDS = 2
"""Rounds of the frequency trim at start-up (each one orbit of integration)."""
SHOOTING_STEPS_PER_ORBIT = 48
"""Runge–Kutta steps of the drift-free shooting over its one orbit (~2 min each), at
placement and for the drift table. Chief and members share the integration error, so what
is left is a drift of ~0.1 m an orbit (0.5 m at 32 steps, 16 m at 16, against 256)."""


@dataclass
class Burn:
    """One impulse of a station-keeping transfer (for events)."""

    sat: int
    dv_m_s: float
    kind: str
    """``transfer`` (leaving the box) or ``arrival`` (back on the design)."""


class FormationClusters:
    """Every cluster of a scenario, its members advanced together.

    Arrays named ``*_all`` run over every member including chiefs, in ``all_sats`` order
    (cluster after cluster, chief first); the others run over the non-chief members
    (``sats``), which are the ones that move relative to a chief.
    """

    def __init__(self, clusters: tuple[Cluster, ...], array_area_m2: float, seed: int) -> None:
        self.clusters = clusters
        self.designs: list[FormationDesign] = [c.spec.design_map() for c in clusters]
        self.chief_sats = np.array([c.chief for c in clusters], dtype=np.intp)
        self.all_sats = np.array([s for c in clusters for s in c.sat_ids], dtype=np.intp)
        self.sats = np.array([s for c in clusters for s in c.sat_ids[1:]], dtype=np.intp)
        self.chief_of = np.array([k for k, c in enumerate(clusters) for _ in c.sat_ids[1:]],
                                 dtype=np.intp)
        self.cluster_start = np.cumsum([0] + [len(c.sat_ids) for c in clusters])[:-1]
        # Position of each non-chief member in the *_all arrays.
        self.index_in_all = np.array([start + j for start, c in zip(
            self.cluster_start, clusters, strict=True) for j in range(1, len(c.sat_ids))],
            dtype=np.intp)
        self.patterns = [hex_pattern(c.spec.members, c.spec.spacing)[1:] for c in clusters]
        counts = [len(c.sat_ids) - 1 for c in clusters]
        self.mean_motion_rad_s = np.repeat(
            np.array([d.mean_motion_rad_s for d in self.designs], dtype=float), counts)
        self.box_m = np.repeat(np.array([c.spec.box_m for c in clusters], dtype=float), counts)
        # A quarter orbit: the HCW transfer matrix is singular at half-orbit multiples.
        self.transfer_s = 0.5 * math.pi / self.mean_motion_rad_s
        self.drag_per_m = self._differential_drag(seed)
        self.array_radius_m = np.full(len(self.all_sats), math.sqrt(array_area_m2 / math.pi))
        isp = [c.spec.isp_s for c in clusters for _ in c.sat_ids]
        self.exhaust_m_s = np.array(isp, dtype=float) * STANDARD_GRAVITY_M_S2
        self.dry_mass_kg = np.array([c.spec.dry_mass_kg for c in clusters for _ in c.sat_ids])
        self.propellant_kg = np.array([c.spec.propellant_kg for c in clusters
                                       for _ in c.sat_ids], dtype=float)
        self.dv_used_m_s = np.zeros(len(self.all_sats))
        self.box_error_m = np.zeros(len(self.all_sats))
        self.shaded_frac = np.zeros(len(self.all_sats))
        m = len(self.sats)
        self.rel_pos_m = np.zeros((m, 3))
        self.rel_vel_m_s = np.zeros((m, 3))
        self.arrival_s = np.full(m, np.nan)  # end of a transfer in progress
        self.t_s: float | None = None
        self.t_start_s = 0.0
        self.chief_pos_m = np.zeros((len(clusters), 3))
        self.chief_vel_m_s = np.zeros((len(clusters), 3))
        self.burns: list[Burn] = []
        self.drift_table: DriftTable | None = None

    def _differential_drag(self, seed: int) -> np.ndarray:
        """½ ρ_atm (B_member - B_chief) per member (1/m); members' B spread uniformly."""
        rng = np.random.default_rng(seed)
        parts = []
        for cluster in self.clusters:
            spec = cluster.spec
            spread = rng.uniform(-1.0, 1.0, len(cluster.sat_ids) - 1) * spec.ballistic_spread_frac
            factor = 0.5 * density_kg_m3(spec.altitude_km) * spec.ballistic_coeff_m2_kg
            parts.append(factor * spread if spec.differential_drag else 0.0 * spread)
        return np.concatenate(parts) if parts else np.zeros(0)

    def design_state(self, t_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Designed LVLH offsets (m) and rates (m/s) of the non-chief members at ``t_s``."""
        since_s = t_s - self.t_start_s  # the design's phases count from the placement
        states = [d.state_lvlh(p, since_s) for d, p in zip(self.designs, self.patterns,
                                                            strict=True)]
        if not states:
            return np.zeros((0, 3)), np.zeros((0, 3))
        return (np.concatenate([s[0] for s in states]),
                np.concatenate([s[1] for s in states]))

    def _frames(self, chief_pos: np.ndarray, chief_vel: np.ndarray,
                ) -> tuple[np.ndarray, np.ndarray]:
        basis, rate = lvlh_frames(chief_pos, chief_vel)
        return basis[self.chief_of], rate[self.chief_of]

    def step(self, t_s: float, pos_km: np.ndarray, vel_km_s: np.ndarray) -> None:
        """Advance to ``t_s`` (s since the epoch); overwrite the members' rows in place.

        Args:
            t_s: Seconds since the scenario epoch.
            pos_km, vel_km_s: (n, 3) the fleet's SGP4 states (TEME); the chiefs' rows are
                read, the other members' rows written.
        """
        self.burns = []
        if not len(self.sats):
            return
        chief_pos = pos_km[self.chief_sats] * 1e3
        chief_vel = vel_km_s[self.chief_sats] * 1e3
        if not (np.isfinite(chief_pos).all() and np.isfinite(chief_vel).all()):
            # SGP4 failed a chief (its members' rows are NaN like its own): keep the offsets
            # and fly on from them when it is back (or re-place after a gap over a day).
            return
        if self.t_s is None or abs(t_s - self.t_s) > MAX_GAP_S:
            self._place_on_design(t_s, chief_pos, chief_vel)
        elif t_s != self.t_s:
            _, _, self.rel_pos_m, self.rel_vel_m_s = propagate(
                self.chief_pos_m, self.chief_vel_m_s, self.rel_pos_m, self.rel_vel_m_s,
                self.chief_of, self.drag_per_m, t_s - self.t_s)
            self._keep_station(t_s, chief_pos, chief_vel)
        self.t_s = t_s
        self.chief_pos_m, self.chief_vel_m_s = chief_pos, chief_vel
        own = self.chief_sats[self.chief_of]
        pos_km[self.sats] = pos_km[own] + self.rel_pos_m * 1e-3
        vel_km_s[self.sats] = vel_km_s[own] + self.rel_vel_m_s * 1e-3

    def _place_on_design(self, t_s: float, chief_pos: np.ndarray,
                         chief_vel: np.ndarray) -> None:
        """Members on their design at ``t_s``, made drift-free and phase-true by shooting.

        The linear SS design drifts by metres an orbit in the full dynamics (J2 short-period
        terms, nonlinearity, the chief's slight eccentricity), and SS's frequencies are off
        by ~1e-3 n: ``_drift_free`` corrects each member's along-track rate, and the mean
        phase lag of the members over that orbit trims each cluster's ω and q.
        """
        self.t_start_s = t_s
        self.arrival_s[:] = np.nan
        basis, rate = self._frames(chief_pos, chief_vel)
        pos_l, vel_l = self.design_state(t_s)
        everyone = np.arange(len(self.sats))
        for _ in range(SHOOTING_ROUNDS):
            end_l, end_vel_l, period_s = self._drift_free(everyone, chief_pos, chief_vel,
                                                          basis, rate, pos_l, vel_l)
            self._trim_rates(end_l, end_vel_l, t_s + period_s, period_s)
            pos_l, vel_l_trimmed = self.design_state(t_s)
            vel_l[:, 0], vel_l[:, 2] = vel_l_trimmed[:, 0], vel_l_trimmed[:, 2]
        self._drift_free(everyone, chief_pos, chief_vel, basis, rate, pos_l, vel_l)
        self.rel_pos_m, self.rel_vel_m_s = lvlh_to_inertial(basis, rate, pos_l, vel_l)
        self.drift_table = DriftTable(chief_pos, chief_vel, self._cluster_centre,
                                      float(2.0 * math.pi / self.mean_motion_rad_s.min()),
                                      SHOOTING_STEPS_PER_ORBIT)

    def _drift_free(self, members: np.ndarray, chief_pos: np.ndarray, chief_vel: np.ndarray,
                    basis: np.ndarray, rate: np.ndarray, pos_l: np.ndarray,
                    vel_l: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """Correct ``vel_l[members]``'s along-track rate so they do not drift (shooting).

        Integrate one orbit (the longest chief period) and see how far the centre of each
        member's relative ellipse moved along-track (``_centre``: zero on the design whatever
        the phase, so the periodic terms largely cancel); change the along-track rate by
        that over the HCW sensitivity -3T (one Newton step: the map is linear to 1e-3).
        ``SHOOTING_STEPS_PER_ORBIT`` Runge–Kutta steps (see there).

        Returns:
            The members' LVLH offsets and rates one orbit later (before the correction),
            and the orbit's length, s.
        """
        period_s = float(2.0 * math.pi / self.mean_motion_rad_s.min())
        chief_of = self.chief_of[members]
        rel_pos, rel_vel = lvlh_to_inertial(basis[members], rate[members], pos_l[members],
                                            vel_l[members])
        end_chief_pos, end_chief_vel, end_pos, end_vel = propagate(
            chief_pos, chief_vel, rel_pos, rel_vel, chief_of, self.drag_per_m[members],
            period_s, max_step_s=period_s / SHOOTING_STEPS_PER_ORBIT)
        end_basis, end_rate = lvlh_frames(end_chief_pos, end_chief_vel)
        end_l, end_vel_l = inertial_to_lvlh(end_basis[chief_of], end_rate[chief_of], end_pos,
                                            end_vel)
        drift = (self._centre(end_l, end_vel_l, members)
                 - self._centre(pos_l[members], vel_l[members], members))
        vel_l[members, 1] += drift / (3.0 * period_s)
        return end_l, end_vel_l, period_s

    def _per_member(self, *values: Callable[[FormationDesign], float]) -> list[np.ndarray]:
        """A per-cluster design quantity repeated for each non-chief member."""
        counts = [len(c.sat_ids) - 1 for c in self.clusters]
        return [np.repeat(np.array([value(d) for d in self.designs], dtype=float), counts)
                for value in values]

    def _trim_rates(self, pos_l: np.ndarray, vel_l: np.ndarray, t_s: float,
                    elapsed_s: float) -> None:
        """Trim each cluster's ω and q by the members' mean phase lag at ``t_s``."""
        ref_pos, ref_vel = self.design_state(t_s)
        in_plane, cross = self._per_member(lambda d: d.in_plane_rate_rad_s,
                                           lambda d: d.cross_track_rate_rad_s)
        # x - i ẋ/ω = (u - i v) e^{iψ}, ż/q + i z = κ (u - i v) e^{iφ}: the phase of the
        # flown state over the phase of the designed one is the lag.
        with np.errstate(invalid="ignore", divide="ignore"):  # planar: z = ż = 0
            lag_in = np.angle((pos_l[:, 0] - 1j * vel_l[:, 0] / in_plane)
                              / (ref_pos[:, 0] - 1j * ref_vel[:, 0] / in_plane))
            lag_cross = np.angle((vel_l[:, 2] / cross + 1j * pos_l[:, 2])
                                 / (ref_vel[:, 2] / cross + 1j * ref_pos[:, 2]))
        weight = np.hypot(ref_pos[:, 0], ref_vel[:, 0] / in_plane)
        counts = np.bincount(self.chief_of, weights=weight, minlength=len(self.clusters))
        mean_in = np.bincount(self.chief_of, weights=weight * lag_in,
                              minlength=len(self.clusters)) / np.maximum(counts, 1e-300)
        mean_cross = np.bincount(self.chief_of, weights=weight * np.nan_to_num(lag_cross),
                                 minlength=len(self.clusters)) / np.maximum(counts, 1e-300)
        self.designs = [replace(
            d, in_plane_trim_rad_s=d.in_plane_trim_rad_s + float(mean_in[k]) / elapsed_s,
            cross_track_trim_rad_s=(d.cross_track_trim_rad_s + float(mean_cross[k]) / elapsed_s
                                    if d.cross_track_ratio > 0.0 else 0.0))
            for k, d in enumerate(self.designs)]

    def _keep_station(self, t_s: float, chief_pos: np.ndarray, chief_vel: np.ndarray) -> None:
        """Box check; transfers started and finished; Δv and propellant booked.

        A transfer ends on the design's velocity corrected to be drift-free in the full
        dynamics (the ``DriftTable`` built at placement), not on the design's velocity,
        which would drift by up to tens of metres an orbit.
        """
        basis, rate = self._frames(chief_pos, chief_vel)
        pos_l, vel_l = inertial_to_lvlh(basis, rate, self.rel_pos_m, self.rel_vel_m_s)
        ref_pos, ref_vel = self.design_state(t_s)
        error = np.sqrt(np.einsum("ij,ij->i", pos_l - ref_pos, pos_l - ref_pos))
        self.box_error_m[self.index_in_all] = error
        with np.errstate(invalid="ignore"):
            arriving = np.flatnonzero(self.arrival_s <= t_s)
        if arriving.size and self.drift_table is not None:
            target = ref_vel[arriving].copy()
            target[:, 1] += self.drift_table.along_track_rate_change(
                chief_pos, chief_vel, self.chief_of[arriving], pos_l[arriving], target)
            self._burn(arriving, basis, target - vel_l[arriving], "arrival")
            self.arrival_s[arriving] = np.nan
        fuelled = self.propellant_kg[self.index_in_all] > 0.0
        leaving = np.flatnonzero((error > self.box_m) & np.isnan(self.arrival_s) & fuelled)
        if leaving.size:
            # Transfer times differ between clusters only: the target per member at its own.
            targets = np.empty((leaving.size, 3))
            for transfer in np.unique(self.transfer_s[leaving]):
                chosen = self.transfer_s[leaving] == transfer
                targets[chosen] = self.design_state(t_s + float(transfer))[0][leaving[chosen]]
            dv_l = hcw_transfer_dv(self.mean_motion_rad_s[leaving], pos_l[leaving],
                                   vel_l[leaving], targets, self.transfer_s[leaving])
            self._burn(leaving, basis, dv_l, "transfer")
            self.arrival_s[leaving] = t_s + self.transfer_s[leaving]

    def _cluster_centre(self, pos_l: np.ndarray, vel_l: np.ndarray,
                        cluster: np.ndarray) -> np.ndarray:
        """``_centre`` for states of given clusters (the drift table's probes)."""
        gain = np.array([d.along_track_gain for d in self.designs])[cluster]
        in_plane = np.array([d.in_plane_rate_rad_s for d in self.designs])[cluster]
        return pos_l[:, 1] - gain / in_plane * vel_l[:, 0]

    def _centre(self, pos_l: np.ndarray, vel_l: np.ndarray, members: np.ndarray) -> np.ndarray:
        """Along-track centre of each relative ellipse, ``y - (k/ω) ẋ`` (m): 0 on the
        design, moving steadily when the member drifts."""
        gain, in_plane = self._per_member(lambda d: d.along_track_gain,
                                          lambda d: d.in_plane_rate_rad_s)
        return pos_l[:, 1] - gain[members] / in_plane[members] * vel_l[:, 0]

    def _burn(self, members: np.ndarray, basis: np.ndarray, dv_l: np.ndarray,
              kind: str) -> None:
        """Apply impulses (LVLH, m/s) to ``members`` and book them."""
        self.rel_vel_m_s[members] += np.einsum("mij,mj->mi", basis[members], dv_l)
        dv = np.sqrt(np.einsum("ij,ij->i", dv_l, dv_l))
        where = self.index_in_all[members]
        mass = self.dry_mass_kg[where] + self.propellant_kg[where]
        used = mass * (1.0 - np.exp(-dv / self.exhaust_m_s[where]))
        self.propellant_kg[where] = np.maximum(self.propellant_kg[where] - used, 0.0)
        self.dv_used_m_s[where] += dv
        self.burns.extend(Burn(int(self.all_sats[w]), float(v), kind)
                          for w, v in zip(where, dv, strict=True))

    def shade(self, pos_km: np.ndarray, sun_hat: np.ndarray) -> np.ndarray:
        """Shaded share of each member's array (``all_sats`` order), also kept in
        ``shaded_frac``; positions (n, 3) in any inertial frame, km."""
        if len(self.all_sats) and np.isfinite(pos_km[self.all_sats]).all():
            self.shaded_frac = shaded_fraction(pos_km[self.all_sats] * 1e3, sun_hat,
                                               self.array_radius_m)
        return self.shaded_frac

    @property
    def elapsed_s(self) -> float:
        """Seconds flown since the members were placed on their design."""
        return 0.0 if self.t_s is None else self.t_s - self.t_start_s

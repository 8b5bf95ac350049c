"""The formation model: safety and fuel of every cluster, on the wire.

The members fly in the orbit model (``OrbitModel.formation``, twin.models.formation.clusters);
this model, stepped right after it, publishes what an operator watches: each member's nearest
neighbour and its distance (with warn and alarm limits the limits model watches), the
cluster's closest pair, each member's distance from its station-keeping reference, its Δv
ledger, propellant and self-shadowing. A cluster's closest pair passing through a minimum
below the warning separation raises ``closest_approach``; each station-keeping transfer
raises ``station_keeping``. Nearest neighbours come from a k-d tree (scipy's cKDTree):
O(m log m), no pairwise matrix.

In a scenario without ``[[cluster]]`` the model has no fields and no totals.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from twin.core.subsystem import CommandHandler, Field, StepContext, make_field
from twin.models.formation.clusters import FormationClusters
from twin.scenario import Scenario

SECONDS_PER_YEAR = 365.25 * 86400.0
"""Julian year (s): the unit of the Δv rate."""

FLEET_TOTALS: dict[str, tuple[str, str]] = {
    "n_cluster_members": ("count", "satellites flying in formation clusters"),
    "member_min_dist_m": ("m", "closest pair of cluster members now"),
    "member_dv_used_m_s": ("m/s", "station-keeping delta-v used by all members since start"),
    "member_dv_per_year_m_s": ("m/s", "mean delta-v per member per year at the rate so far"),
    "member_propellant_kg": ("kg", "propellant left in all cluster members"),
}
"""The fleet totals this model publishes: name -> (unit, description) (meta.totals)."""


class FormationModel:
    """Safety and fuel fields of the clusters the orbit model flies."""

    name = "formation"
    reads: tuple[str, ...] = ("orbit",)
    publishes = None

    def __init__(self, scenario: Scenario, clusters: FormationClusters | None) -> None:
        self.scenario = scenario
        self.clusters = clusters
        self.outputs = None
        # Without clusters nothing is stepped or published: no per-node arrays (32 MB at
        # a million).
        n = len(scenario.satellites) if clusters is not None else 0
        k = len(scenario.clusters)
        specs = [c.spec for c in scenario.clusters]
        f = make_field
        limits = ({"alarm_low": min(s.min_separation_m for s in specs),
                   "warn_low": min(s.warn_separation for s in specs)} if specs else {})
        self.nn_dist = f("nn_dist_m", "<f8", (n,), "m",
                         "Distance to the nearest other cluster member (inf: not a member)",
                         limits=limits, fill=math.inf, infinite="not a member")
        self.nn_sat = f("nn_sat", "<i4", (n,), "index",
                        "Nearest other cluster member, -1 for none", fill=-1)
        self.box_error = f("box_error_m", "<f4", (n,), "m",
                           "Distance from the member's designed position (station-keeping box)")
        self.dv_used = f("dv_used_m_s", "<f8", (n,), "m/s",
                         "Station-keeping delta-v used since start")
        self.propellant = f("propellant_kg", "<f4", (n,), "kg", "Propellant left")
        self.shade = f("self_shade_frac", "<f4", (n,), "1",
                       "Share of the array in the shadow of other cluster members")
        self.cluster_min = f("cluster_min_dist_m", "<f8", (k,), "m",
                             "Closest pair of members, per cluster", per_sat=False)
        self.cluster_dv = f("cluster_dv_used_m_s", "<f8", (k,), "m/s",
                            "Delta-v used by all members, per cluster", per_sat=False)
        self.cluster_rate = f("cluster_dv_per_member_year_m_s", "<f8", (k,), "m/s",
                              "Mean delta-v per member per year at the rate so far, per cluster",
                              per_sat=False)
        # The cluster-health summaries (docs/protocol.md, "Cluster health summaries"): what a
        # viewer shows per cluster without reading every member's row.
        self.cluster_pair = f("cluster_closest_pair", "<i4", (k, 2), "index",
                              "The closest pair of members now, per cluster", per_sat=False,
                              fill=-1)
        self.cluster_dv_max = f("cluster_dv_max_m_s", "<f8", (k,), "m/s",
                                "Most delta-v used by one member, per cluster", per_sat=False)
        self.cluster_propellant = f("cluster_propellant_kg", "<f8", (k,), "kg",
                                    "Propellant left in all members, per cluster",
                                    per_sat=False)
        self.cluster_box_out = f("cluster_box_violations", "<i4", (k,), "count",
                                 "Members outside their station-keeping box now, per cluster",
                                 per_sat=False)
        self._fields = ([self.nn_dist, self.nn_sat, self.box_error, self.dv_used,
                         self.propellant, self.shade, self.cluster_min, self.cluster_dv,
                         self.cluster_rate, self.cluster_pair, self.cluster_dv_max,
                         self.cluster_propellant, self.cluster_box_out]
                        if clusters is not None else [])
        # Each member's box (m) in all_sats order: 0 for the chiefs, which have none.
        self._box_all = (np.array([0.0 if j == 0 else c.spec.box_m for c in scenario.clusters
                                   for j in range(len(c.sat_ids))])
                         if clusters is not None else np.zeros(0))
        # The last two per-cluster minima: a closest approach is a minimum between them.
        self._previous = np.full((2, k), math.inf)
        self._pairs = np.full((k, 2), -1, dtype=np.intp)
        self._warn = np.array([s.warn_separation for s in specs])
        self._alarm = np.array([s.min_separation_m for s in specs])

    def fields(self) -> list[Field]:
        return self._fields

    def step(self, ctx: StepContext) -> None:
        clusters = self.clusters
        if clusters is None or ctx.orbit.pos_gcrs_km is None:
            return
        sats = clusters.all_sats
        pos_m = (ctx.orbit.pos_gcrs_km[sats] - ctx.orbit.pos_gcrs_km[sats[0]]) * 1e3
        if not np.isfinite(pos_m).all():  # a chief SGP4 could not propagate: keep last
            return
        distance, nearest = cKDTree(pos_m).query(pos_m, k=2)
        self.nn_dist.array[sats] = distance[:, 1]
        self.nn_sat.array[sats] = sats[nearest[:, 1]]
        minima = np.minimum.reduceat(distance[:, 1], clusters.cluster_start)
        closest = np.array([start + int(np.argmin(distance[start:stop, 1])) for start, stop
                            in zip(clusters.cluster_start, [*clusters.cluster_start[1:],
                                                            len(sats)], strict=True)])
        self.box_error.array[sats] = clusters.box_error_m
        self.dv_used.array[sats] = clusters.dv_used_m_s
        self.propellant.array[sats] = clusters.propellant_kg
        self.shade.array[sats] = clusters.shaded_frac
        self.cluster_min.array[:] = minima
        self.cluster_dv.array[:] = np.add.reduceat(clusters.dv_used_m_s, clusters.cluster_start)
        members = np.array([len(c.sat_ids) - 1 for c in clusters.clusters], dtype=float)
        elapsed = clusters.elapsed_s
        self.cluster_rate.array[:] = (self.cluster_dv.array / np.maximum(members, 1.0)
                                      * SECONDS_PER_YEAR / elapsed) if elapsed > 0.0 else 0.0
        starts = clusters.cluster_start
        self.cluster_pair.array[:, 0] = sats[closest]
        self.cluster_pair.array[:, 1] = sats[nearest[closest, 1]]
        self.cluster_dv_max.array[:] = np.maximum.reduceat(clusters.dv_used_m_s, starts)
        self.cluster_propellant.array[:] = np.add.reduceat(clusters.propellant_kg, starts)
        outside = (clusters.box_error_m > self._box_all) & (self._box_all > 0.0)
        self.cluster_box_out.array[:] = np.add.reduceat(outside.astype(np.int64), starts)
        self._raise_events(ctx, minima, sats[closest], sats[nearest[closest, 1]])

    def _raise_events(self, ctx: StepContext, minima: np.ndarray, first: np.ndarray,
                      second: np.ndarray) -> None:
        """``closest_approach`` at a minimum below the warning; ``station_keeping`` burns."""
        before, last = self._previous
        passed = (last < before) & (minima > last) & (last < self._warn)
        names = self.scenario.satellites
        for k in np.flatnonzero(passed):  # over the few clusters with an approach
            a, b = self._pairs[k]
            severity = "alarm" if last[k] < self._alarm[k] else "warning"
            ctx.events.raise_event(
                "closest_approach", severity,
                f"{names[a].name} and {names[b].name} passed {last[k]:.1f} m apart (limit"
                f" {self._alarm[k]:g} m, warning {self._warn[k]:g} m)",
                sat=int(a), other=int(b), dist_m=float(last[k]),
                cluster=self.scenario.clusters[k].spec.name)
        self._previous = np.stack((last, minima))
        self._pairs = np.column_stack((first, second))
        for burn in self.clusters.burns if self.clusters is not None else ():
            if burn.kind == "transfer":  # one event per return to the box, not per impulse
                ctx.events.raise_event(
                    "station_keeping", "info",
                    f"{names[burn.sat].name} left its {self._box(burn.sat):g} m box: transfer"
                    f" back, first impulse {burn.dv_m_s * 1e3:.1f} mm/s",
                    sat=burn.sat, dv_m_s=burn.dv_m_s)

    def _box(self, sat: int) -> float:
        for cluster in self.scenario.clusters:
            if sat in cluster.sat_ids:
                return cluster.spec.box_m
        return math.nan

    def fleet(self) -> dict[str, float]:
        if self.clusters is None:
            return {}
        elapsed = self.clusters.elapsed_s
        members = max(len(self.clusters.sats), 1)
        used = float(self.clusters.dv_used_m_s.sum())
        return {
            "n_cluster_members": len(self.clusters.all_sats),
            "member_min_dist_m": float(self.cluster_min.array.min()),
            "member_dv_used_m_s": used,
            "member_dv_per_year_m_s": (used / members * SECONDS_PER_YEAR / elapsed
                                       if elapsed > 0.0 else 0.0),
            "member_propellant_kg": float(self.clusters.propellant_kg.sum()),
        }

    def meta(self) -> dict[str, Any]:
        return {"clusters": [
            {"name": c.spec.name, "chief": c.chief, "members": list(c.sat_ids),
             "radius_m": c.spec.radius_m, "spacing_m": c.spec.spacing,
             "min_separation_m": c.spec.min_separation_m,
             "warn_separation_m": c.spec.warn_separation, "box_m": c.spec.box_m,
             "design": c.spec.design, "isp_s": c.spec.isp_s}
            for c in self.scenario.clusters]}

    def commands(self) -> dict[str, CommandHandler]:
        return {}

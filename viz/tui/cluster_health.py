"""Each formation cluster's health, from what the twin publishes (docs/protocol.md,
"Formation clusters", "Optical inter-satellite links", "Multi-node jobs" and "Cluster
health summaries").

The per-cluster numbers (closest pair, Δv, propellant, box violations, links, bisection,
jobs) come from the twin's own per-cluster and per-group fields, so they hold at any fleet
size. What the twin sums per node only (members up, failed, in alarm, power, compute) is
summed here over the cluster's members, an index array of at most a few hundred nodes,
and only when the state carries the per-node rows. A reduced state (above 20,000 nodes)
does not: load, solar power and compute then come from the twin's ``aggregate`` (the
cluster's group), the rest reads "no per-node rows".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from viz.tui.levels import ALARM
from viz.tui.model import FleetModel

UP = 2
"""``link_state`` code of a link carrying data."""
APPROACH = "closest_approach"


@dataclass
class JobHealth:
    """One multi-node job as the cluster view lists it."""

    number: int
    state: str  # queued, running, stalled, done
    nodes: int
    progress_frac: float
    comm_frac: float
    bottleneck_bps: float
    rollbacks: int

    @property
    def slowdown(self) -> float:
        """Iteration time over the compute alone: 1 / (1 - all-reduce share)."""
        return 1.0 / (1.0 - self.comm_frac) if self.comm_frac < 1.0 else float("inf")


@dataclass
class ClusterHealth:
    """One cluster: its design, safety, fuel, links, jobs and totals (SI units)."""

    name: str
    design: str
    members: np.ndarray
    radius_m: float
    warn_m: float
    alarm_m: float
    box_m: float
    min_dist_m: float = float("nan")
    pair: tuple[int, int] = (-1, -1)
    dv_total_m_s: float = float("nan")
    dv_max_m_s: float = float("nan")
    dv_per_member_year_m_s: float = float("nan")
    propellant_kg: float = float("nan")
    box_violations: int | None = None
    approach_alarms: int = 0
    last_approach: Mapping[str, Any] | None = None
    up: int | None = None
    failed: int | None = None
    in_alarm: int | None = None
    links: dict[str, float] | None = None
    jobs: list[JobHealth] = field(default_factory=list)
    load_w: float | None = None
    solar_w: float | None = None
    delivered_flop_s: float | None = None
    accelerators_busy: float | None = None
    accelerators_ok: float | None = None

    @property
    def n(self) -> int:
        return int(self.members.size)

    @property
    def dv_mean_m_s(self) -> float:
        """Mean Δv per member (the chief, which flies the orbit, not counted)."""
        return self.dv_total_m_s / max(self.n - 1, 1)

    @property
    def separation_level(self) -> int:
        """0 ok, 1 below the warning separation, 2 below the alarm separation."""
        d = self.min_dist_m
        return 2 if d < self.alarm_m else 1 if d < self.warn_m else 0


def clusters_meta(model: FleetModel) -> list[Mapping[str, Any]]:
    """The clusters ``meta`` announces (``subsystems.formation.clusters``), [] for none."""
    formation = model.meta.get("subsystems", {}).get("formation", {})
    clusters = formation.get("clusters", []) if isinstance(formation, Mapping) else []
    return [c for c in clusters if isinstance(c, Mapping)]


def number(value: Any, default: float = float("nan")) -> float:
    """``value`` as a float, ``default`` where it is not a number (a malformed meta)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return float(value)


def index(value: Any) -> int:
    """``value`` as a node index, -1 where it is not a whole number."""
    return int(value) if isinstance(value, int | np.integer) and not isinstance(value, bool) \
        else -1


def _value(arrays: Mapping[str, np.ndarray], name: str, index: Any) -> float:
    array = arrays.get(name)
    if array is None:
        return float("nan")
    try:
        return float(np.asarray(array)[index])
    except (IndexError, TypeError, ValueError):
        return float("nan")


def cluster_health(model: FleetModel, events: Iterable[Mapping[str, Any]] = ()
                   ) -> list[ClusterHealth]:
    """Every cluster's health from the model's newest state (and recent events, for the
    last closest approach of each)."""
    arrays = model.arrays
    n = model.n
    links_meta = model.meta.get("subsystems", {}).get("links", {})
    link_groups = links_meta.get("groups", []) if isinstance(links_meta, Mapping) else []
    link_groups = link_groups if isinstance(link_groups, list) else []
    out: list[ClusterHealth] = []
    last: dict[str, Mapping[str, Any]] = {}
    for event in events:
        if event.get("kind") == APPROACH:
            last[str(event.get("cluster", ""))] = event  # newest wins
    # The alarm table's closest-approach alarms (one per member the twin named), shelved
    # ones left out.
    approach_sats = np.array([alarm.sat for alarm in model.alarms.values()
                              if alarm.kind == APPROACH and alarm.state != "shelved"],
                             dtype=np.int64)
    for k, entry in enumerate(clusters_meta(model)):
        listed = entry.get("members", [])
        members = np.array([m for m in map(index, listed if isinstance(listed, list) else [])
                            if 0 <= m < n], dtype=np.int64)
        name = str(entry.get("name", f"cluster {k}"))
        health = ClusterHealth(
            name=name, design=str(entry.get("design", "")), members=members,
            radius_m=number(entry.get("radius_m")),
            warn_m=number(entry.get("warn_separation_m")),
            alarm_m=number(entry.get("min_separation_m")),
            box_m=number(entry.get("box_m")))
        health.min_dist_m = _value(arrays, "cluster_min_dist_m", k)
        pair = arrays.get("cluster_closest_pair")
        if pair is not None and np.asarray(pair).shape[0] > k:
            health.pair = (int(pair[k][0]), int(pair[k][1]))
        health.dv_total_m_s = _value(arrays, "cluster_dv_used_m_s", k)
        health.dv_max_m_s = _value(arrays, "cluster_dv_max_m_s", k)
        health.dv_per_member_year_m_s = _value(arrays, "cluster_dv_per_member_year_m_s", k)
        health.propellant_kg = _value(arrays, "cluster_propellant_kg", k)
        boxes = _value(arrays, "cluster_box_violations", k)
        health.box_violations = None if boxes != boxes else int(boxes)
        health.approach_alarms = int(np.isin(approach_sats, members).sum())
        health.last_approach = last.get(name)
        _members_now(model, health)
        if name in link_groups:
            g = link_groups.index(name)
            health.links = {key: _value(arrays, f"group_{key}", g) for key in (
                "links_up", "links_acquiring", "links_lost", "capacity_bps",
                "link_util_mean_frac", "link_util_max_frac", "bisection_bps")}
        health.jobs = _jobs_on(arrays, members)
        out.append(health)
    return out


def _members_now(model: FleetModel, health: ClusterHealth) -> None:
    """Up, failed, in alarm, power and compute: sums over the members' rows, when sent."""
    arrays, members = model.arrays, health.members
    status, faults = arrays.get("status"), arrays.get("fault_flags")
    if status is None or np.asarray(status).shape[0] != model.n:
        _from_aggregate(model, health)  # a reduced state: no per-node rows
        return
    failed = np.asarray(status)[members] != 0
    if faults is not None:
        failed |= np.asarray(faults)[members] != 0
    health.failed = int(failed.sum())
    health.up = health.n - health.failed
    if model.worst.shape == (model.n,):
        health.in_alarm = int((model.worst[members] >= ALARM).sum())

    def total(name: str) -> float | None:
        values = arrays.get(name)
        return None if values is None else float(np.asarray(values, np.float64)[members].sum())

    health.load_w = total("p_load_w")
    health.solar_w = total("p_solar_w")
    health.delivered_flop_s = total("delivered_flop_s")
    health.accelerators_busy = total("accelerators_busy")
    health.accelerators_ok = total("accelerators_ok")


def _from_aggregate(model: FleetModel, health: ClusterHealth) -> None:
    """Load, solar power and compute from the twin's ``aggregate`` (docs/protocol.md): the
    cluster's group summary of each, its mean times its count."""
    fields = model.aggregate.get("fields", {})
    if not isinstance(fields, Mapping):
        return

    def total(name: str) -> float | None:
        summary = fields.get(name, {})
        group = summary.get("groups", {}).get(health.name) if isinstance(summary, Mapping) \
            else None
        if not isinstance(group, Mapping):
            return None
        mean, count = number(group.get("mean")), number(group.get("count"))
        return mean * count if count > 0 else 0.0 if count == 0 else None

    health.load_w = total("p_load_w")
    health.solar_w = total("p_solar_w")
    health.delivered_flop_s = total("delivered_flop_s")


def _jobs_on(arrays: Mapping[str, np.ndarray], members: np.ndarray) -> list[JobHealth]:
    """The multi-node jobs placed on the cluster (first member in it) and those waiting
    for a place (any cluster may take them)."""
    states = arrays.get("multi_node_job_state")
    if states is None:
        return []
    labels = ("queued", "running", "stalled", "done")
    firsts = np.asarray(arrays.get("multi_node_job_first_sat", np.full(len(states), -1)))
    jobs = []
    for j in range(len(states)):  # a handful of jobs
        first = int(firsts[j])
        code = int(states[j])
        if (first >= 0 and first not in members) or (first < 0 and labels[code] == "done"):
            continue
        jobs.append(JobHealth(
            number=j + 1, state=labels[code] if code < len(labels) else f"code {code}",
            nodes=int(_value(arrays, "multi_node_job_nodes", j)),
            progress_frac=_value(arrays, "multi_node_job_progress_frac", j),
            comm_frac=_value(arrays, "multi_node_job_comm_frac", j),
            bottleneck_bps=_value(arrays, "multi_node_job_bottleneck_bps", j),
            rollbacks=int(_value(arrays, "multi_node_job_rollbacks", j))))
    return jobs


def member_rows(model: FleetModel, health: ClusterHealth) -> dict[str, np.ndarray]:
    """Per member, for the member table (closest first): nearest distance, its peer, box
    error, Δv, propellant, links up, job. Empty without per-node rows."""
    arrays, members = model.arrays, health.members
    nearest = arrays.get("nn_dist_m")
    if nearest is None or np.asarray(nearest).shape[0] != model.n or not members.size:
        return {}
    order = members[np.argsort(np.asarray(nearest)[members], kind="stable")]
    rows: dict[str, np.ndarray] = {"sat": order}
    for name in ("nn_dist_m", "nn_sat", "box_error_m", "dv_used_m_s", "propellant_kg",
                 "multi_node_job", "p_load_w", "self_shade_frac", "delivered_flop_s"):
        values = arrays.get(name)
        if values is not None:
            rows[name] = np.asarray(values)[order]
    state = arrays.get("link_state")
    if state is not None and np.asarray(state).ndim == 2:
        rows["links_up"] = (np.asarray(state)[order] == UP).sum(axis=1)
    return rows

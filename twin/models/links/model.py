"""The ``links`` model: optical inter-satellite links, their routes and their cost.

Each step, after the orbit and before compute:

1. links already made are kept while feasible (both nodes propagated and in service, line
   of sight clearing the Earth by the grazing height, range within the terminal's limit),
   else lost;
2. on schedule (``search_interval_s``) free terminals look for new links
   (``topology.LinkSearch``); a new link acquires for ``acquisition_s``, then is up;
3. each link's range and capacity (``budget.LinkBudget``);
4. routes (``routing``), built every ``route_interval_s`` and refreshed along the same
   tree each step between (a lost link or contact cuts its routes at once): the relay tree
   to the nodes in ground contact gives ``relay_bps`` (compute's downlink adds it) and the
   latency to the ground; ground users get their latency to every node;
5. stored results (compute's backlog, last step's) load the tree's links, worked out at
   each build; multi-node jobs' all-reduce (compute's ``link_allreduce_bps``, last step's)
   loads their links too: relay gets what the all-reduce leaves (its routes' rates and
   its share of a link), and the utilization is the sum of both (``sharing``);
6. terminal power, published for power (the bus draws it, thermal gets its heat).

No ``[links]`` table: the model has no fields, totals or outputs, and the twin runs as it
did without it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from twin.astro.geometry import WGS84_A_KM, itrs_from_geodetic
from twin.core.interfaces import LinkOutputs
from twin.core.subsystem import CommandHandler, Field, StepContext, make_field
from twin.models.links.budget import LinkBudget
from twin.models.links.geometry import line_of_sight, look_from_users, users_itrs_km
from twin.models.links.params import LinksParams
from twin.models.links.routing import (
    RelayTree,
    bisection_bps,
    link_latency_s,
    link_loads,
    refresh_tree,
    relay_tree,
    remap_links,
    user_latencies,
)
from twin.models.links.sharing import per_link, relay_capacity_bps, shared_utilization
from twin.models.links.topology import LinkSearch, LinkTable
from twin.scenario import Scenario, ScenarioError, parse_section

NONE, ACQUIRING, UP = 0, 1, 2
STATE_LABELS = {NONE: "none", ACQUIRING: "acquiring", UP: "up"}
MAX_LINK_EVENTS = 8  # per step; the rest are counted in one summary event

FLEET_TOTALS = {
    "links_up": ("count", "Optical inter-satellite links carrying data"),
    "links_acquiring": ("count", "Links pointing and acquiring, not yet carrying data"),
    "isl_capacity_bps": ("bit/s", "Sum of the capacities of the links up, one direction"),
    "isl_bisection_bps": ("bit/s", "Fleet bisection bandwidth estimate: capacity across "
                                   "the worst median cut, one direction"),
    "isl_power_w": ("W", "Electrical power of all link terminals"),
    "relay_nodes": ("count", "Nodes out of contact with a relay route to the ground"),
    "link_changes": ("count", "Links made and lost since the start"),
}


class LinksModel:
    """Optical inter-satellite links (docs/models.md, "Optical inter-satellite links")."""

    name = "links"
    # Also reads ``ctx.lifecycle`` (its out-of-service nodes, last step's) when a lifecycle
    # model runs; not declared, so an engine without one still builds.
    reads: tuple[str, ...] = ("orbit", "compute")
    publishes = "links"

    def __init__(self, scenario: Scenario) -> None:
        self.params = p = parse_section(LinksParams, scenario, "links")
        self.enabled = "links" in scenario.sections
        self.terminal = p.terminal()
        self.budget = LinkBudget(self.terminal)
        n = self.n = len(scenario.satellites) if self.enabled else 0  # off: arrays of 0 nodes
        t_count = p.terminals_per_sat
        self.outputs = LinkOutputs()
        self.table = LinkTable(n, t_count)
        self.search = LinkSearch(t_count, p.pattern, p.cluster_distance_m,
                                 p.plane_tolerance_deg, self.terminal.max_range_m,
                                 p.grazing_height_km)
        self.names = names = [s.name for s in scenario.satellites[:n]]
        if p.target_sat and p.target_sat not in names:
            raise ScenarioError(scenario.source, "links.target_sat",
                                f"no satellite is named {p.target_sat!r}")
        self.target = names.index(p.target_sat) if p.target_sat else 0
        self.group_names = list(scenario.groups)
        group_of = {g: k for k, g in enumerate(self.group_names)}
        self.group = np.array([group_of[s.group] for s in scenario.satellites[:n]], dtype=np.int64)
        users = p.user
        self.users_km = users_itrs_km(np.array([u.lat_deg for u in users]),
                                      np.array([u.lon_deg for u in users]),
                                      np.array([u.alt_m for u in users]))
        self.user_mask_deg = np.array([u.min_elevation_deg for u in users])
        u_count, g_count = len(users), len(self.group_names)
        f = make_field
        shape = (n, t_count)
        self.peer = f("link_peer", "<i4", shape, "index",
                      "Node at the other end of each terminal's link, -1 none", fill=-1)
        self.state = f("link_state", "|u1", shape, "code", "Each terminal's link state",
                       labels=STATE_LABELS)
        self.range = f("link_range_m", "<f4", shape, "m", "Range of each terminal's link")
        self.capacity = f("link_capacity_bps", "<f4", shape, "bit/s",
                          "Capacity of each terminal's link, one direction, 0 unless up")
        self.utilization = f("link_utilization_frac", "<f4", shape, "1",
                             "Share of each link's capacity the relay and all-reduce "
                             "traffic use")
        self.power = f("isl_power_w", "<f4", (n,), "W", "Power of the node's link terminals")
        self.relay = f("relay_bps", "<f4", (n,), "bit/s",
                       "Rate the node can relay to the ground over links, 0 in contact")
        self.ground_latency = f("relay_latency_s", "<f4", (n,), "s",
                                "One-way latency over links to a node in ground contact, "
                                "0 in contact, +inf without a route", fill=np.inf,
                                infinite="no route")
        self.group_links = f("group_links_up", "<i4", (g_count,), "count",
                             "Links up within each satellite group", per_sat=False)
        self.group_bisection = f("group_bisection_bps", "<f4", (g_count,), "bit/s",
                                 "Bisection bandwidth estimate of each group", per_sat=False)
        # Per group (a cluster is its own group): what a cluster-health view shows without
        # every terminal's row (docs/protocol.md, "Cluster health summaries").
        self.group_acquiring = f("group_links_acquiring", "<i4", (g_count,), "count",
                                 "Links acquiring within each satellite group", per_sat=False)
        self.group_lost = f("group_links_lost", "<i4", (g_count,), "count",
                            "Links within each group lost since the start", per_sat=False)
        self.group_capacity = f("group_capacity_bps", "<f4", (g_count,), "bit/s",
                                "Sum of the capacities of the links up within each group, "
                                "one direction", per_sat=False)
        self.group_util_mean = f("group_link_util_mean_frac", "<f4", (g_count,), "1",
                                 "Mean utilization of the links up within each group",
                                 per_sat=False)
        self.group_util_max = f("group_link_util_max_frac", "<f4", (g_count,), "1",
                                "Highest utilization of a link up within each group",
                                per_sat=False)
        self.user_latency = f("user_latency_s", "<f4", (u_count, n), "s",
                              "One-way latency from each ground user to each node, +inf "
                              "unreachable", per_sat=False, fill=np.inf,
                              infinite="unreachable")
        self.user_target_latency = f("user_target_latency_s", "<f4", (u_count,), "s",
                                     "One-way latency from each ground user to the target "
                                     "node, +inf unreachable", per_sat=False, fill=np.inf,
                                     infinite="unreachable")
        self._all_ok = np.ones(n, dtype=bool)
        self._retired: np.ndarray | None = None  # the lifecycle's out-of-service nodes seen
        self._in_service = self._all_ok
        self._group_version = -1
        self._group_a = np.zeros(0, dtype=np.int64)
        self._inside = np.zeros(0, dtype=bool)
        self._earth_km = WGS84_A_KM + p.grazing_height_km
        self._slot_version = -1
        self._flat_a = self._flat_b = np.zeros(0, dtype=np.int64)
        self._util_zero = True
        self._load_bps = np.zeros(0)  # relay traffic on each link at the last route build
        # Multi-node jobs' mean all-reduce load on each link (last step's; None: none), and
        # the capacity it leaves the relay.
        self._allreduce_bps: np.ndarray | None = None
        self._relay_cap_bps = np.zeros(0)
        self._relay_terminals = np.zeros(shape)  # the relay load, at both ends' terminals
        self.outputs.link_relay_bps = self._relay_terminals if self.enabled else None
        self._relay_zero = True
        self._any_load = False
        self._stations_bps = np.array([s.downlink_bps for s in scenario.stations], dtype=float)
        self._next_search_t = -np.inf
        self._next_route_t = -np.inf
        self._tree: RelayTree | None = None
        self._range_m = np.zeros(0)
        self._cap_bps = np.zeros(0)
        self._up = np.zeros(0, dtype=bool)
        self._changes = 0
        self._fleet_bisection = 0.0
        self._power_w = np.zeros(n)

    # ---- contract

    def fields(self) -> list[Field]:
        if not self.enabled:
            return []
        return [self.peer, self.state, self.range, self.capacity, self.utilization,
                self.power, self.relay, self.ground_latency, self.group_links,
                self.group_bisection, self.user_latency, self.user_target_latency,
                self.group_acquiring, self.group_lost, self.group_capacity,
                self.group_util_mean, self.group_util_max]

    def step(self, ctx: StepContext) -> None:
        if not self.enabled:
            return
        orbit = ctx.orbit
        pos_km, vel_km_s = orbit.pos_gcrs_km, orbit.vel_gcrs_km_s
        ok = self._usable(ctx, pos_km)
        r2_km2 = orbit.r2_km2 if orbit.r2_km2 is not None else np.einsum(
            "ij,ij->i", pos_km, pos_km)
        t = ctx.t_utc
        table = self.table
        range_km = self._drop_infeasible(ctx, pos_km, r2_km2, ok)
        if t >= self._next_search_t:
            was = table.size
            table.add(self.search.search(table, pos_km, vel_km_s, ok), t)
            self._next_search_t = t + self.params.search_interval_s
            if table.size > was:
                self._announce(ctx, "link_acquiring", "info", "acquiring", table.a[was:],
                               table.b[was:])
                new_km = np.linalg.norm(pos_km[table.a[was:]] - pos_km[table.b[was:]], axis=1)
                range_km = np.concatenate((range_km, new_km))
        acquired = t >= table.start_t + self.terminal.acquisition_s
        was_up = np.zeros(table.size, dtype=bool)  # new links are appended, lost ones gone
        was_up[:self._up.size] = self._up
        newly_up = acquired & ~was_up
        if newly_up.any():
            table.version += 1
            self._announce(ctx, "link_up", "info", "up", table.a[newly_up], table.b[newly_up])
        self._up = acquired
        self._range_m = range_km * 1e3
        self._cap_bps = self.budget.capacity_bps(self._range_m)
        self._cap_bps[~acquired] = 0.0
        self._allreduce_bps = per_link(getattr(ctx.compute, "link_allreduce_bps", None), table)
        self._relay_cap_bps = relay_capacity_bps(self._cap_bps, self._allreduce_bps)
        # Routes: built anew on schedule; between builds the tree keeps its shape and its
        # values follow this step's links and contacts (routing.refresh_tree).
        gateway_bps = self._gateway_bps(orbit.contact_station)
        latency_s = link_latency_s(self._range_m, self.params.hop_delay_s)
        built = self._tree is None or t >= self._next_route_t
        if built:
            self._route(ctx, pos_km, gateway_bps, latency_s)
            self._next_route_t = t + self.params.route_interval_s
        else:
            refresh_tree(self._tree, latency_s, self._relay_cap_bps, acquired, gateway_bps)
        tree = self._tree
        self.outputs.relay_bps = tree.relay_bps
        self.relay.array[:] = tree.relay_bps
        self.ground_latency.array[:] = tree.latency_s
        self._publish(ctx.compute.storage_backlog_bytes, ctx.dt_s, built)

    def _usable(self, ctx: StepContext, pos_km: np.ndarray) -> np.ndarray:
        """Nodes whose terminals can hold a link: in service (a disposed, derelict or
        re-entered node's are off; the lifecycle's last step) and propagated (where SGP4
        failed the position is NaN). ``self._all_ok`` itself when every node is."""
        ok = self._all_ok
        retired = ctx.lifecycle.out_of_service_nodes
        if retired is not None and retired.size:
            if retired is not self._retired:  # a new array whenever the set changes
                self._retired = retired
                self._in_service = np.ones(self.n, dtype=bool)
                self._in_service[retired[retired < self.n]] = False
            ok = self._in_service
        status = ctx.orbit.orbit_status
        if status is not None and np.count_nonzero(status):
            ok = ok & (np.asarray(status) == 0) & np.isfinite(pos_km).all(axis=1)
        return ok

    def _drop_infeasible(self, ctx: StepContext, pos_km: np.ndarray, r2_km2: np.ndarray,
                         ok: np.ndarray) -> np.ndarray:
        """Lose the links no longer feasible; the range of those kept, km."""
        table = self.table
        if not table.size:
            return np.zeros(0)
        a, b = table.a, table.b
        diff = np.take(pos_km, a, axis=0)
        diff -= np.take(pos_km, b, axis=0)
        d2 = np.einsum("ij,ij->i", diff, diff)
        max_km = self.terminal.max_range_m / 1e3
        with np.errstate(invalid="ignore"):
            keep = d2 <= max_km * max_km
            if ok is not self._all_ok:
                keep &= ok[a] & ok[b]
            # The segment's closest approach to the centre is at least sqrt(r_min² - d²/4):
            # most links clear the Earth by that bound, the rest get the exact test.
            floor = self._earth_km * self._earth_km
            sure = np.minimum(np.take(r2_km2, a), np.take(r2_km2, b)) - 0.25 * d2 > floor
        check = np.flatnonzero(keep & ~sure)
        if check.size:
            keep[check] = line_of_sight(pos_km[a[check]], pos_km[b[check]],
                                        self.params.grazing_height_km)
        if not keep.all():
            self._announce(ctx, "link_lost", "info", "lost", a[~keep], b[~keep])
            lost_a, lost_b = self.group[a[~keep]], self.group[b[~keep]]
            self.group_lost.array[:] += np.bincount(lost_a[lost_a == lost_b],
                                                    minlength=len(self.group_names)
                                                    ).astype(np.int32)
            table.keep(keep)
            self._up = self._up[keep]
            self._load_bps = self._load_bps[keep[:self._load_bps.size]]
            if self._tree is not None:
                remap_links(self._tree, keep)
            d2 = d2[keep]
        return np.sqrt(d2)

    def _announce(self, ctx: StepContext, kind: str, severity: str, what: str,
                  a: np.ndarray, b: np.ndarray) -> None:
        """Events for link changes, at most ``MAX_LINK_EVENTS`` a step, then a count."""
        if kind != "link_up":
            self._changes += int(a.size)
        for i, j in zip(a[:MAX_LINK_EVENTS].tolist(), b[:MAX_LINK_EVENTS].tolist(),
                        strict=True):
            ctx.events.raise_event(kind, severity,
                                   f"link {self.names[i]} - {self.names[j]} {what}", sat=i,
                                   peer=j)
        if a.size > MAX_LINK_EVENTS:
            more = int(a.size - MAX_LINK_EVENTS)
            ctx.events.raise_event(kind, severity, f"{more} more links {what}", n_links=more)

    def _gateway_bps(self, contact: np.ndarray | None) -> np.ndarray:
        """(n,) downlink rate of each node in ground contact, 0 for the others."""
        gateway_bps = np.zeros(self.n)
        if contact is not None:
            contact = np.asarray(contact)
            in_contact = contact >= 0
            gateway_bps[in_contact] = self._stations_bps[contact[in_contact]]
        return gateway_bps

    def _route(self, ctx: StepContext, pos_km: np.ndarray, gateway_bps: np.ndarray,
               latency_s: np.ndarray) -> None:
        """Build the relay tree, the users' latencies and the bisection estimates anew."""
        table = self.table
        up = self._up
        self._tree = relay_tree(self.n, table.a, table.b, latency_s, self._relay_cap_bps,
                                gateway_bps, up)
        if self.users_km.size:
            orbit = ctx.orbit
            sats_km = itrs_from_geodetic(np.radians(orbit.lat_deg), np.radians(orbit.lon_deg),
                                         orbit.alt_km)
            elevation, slant_km = look_from_users(self.users_km, sats_km)
            access = np.where(elevation >= self.user_mask_deg[:, None],
                              link_latency_s(slant_km * 1e3, self.params.hop_delay_s), np.inf)
            latency_users = user_latencies(self.n, table.a[up], table.b[up], latency_s[up],
                                           access)
            self.user_latency.array[:] = latency_users
            self.user_target_latency.array[:] = latency_users[:, self.target]
        cap = self._cap_bps
        self._fleet_bisection = bisection_bps(pos_km, np.arange(self.n), table.a, table.b, cap)
        if len(self.group_names) == 1:
            self.group_bisection.array[0] = self._fleet_bisection
        else:
            for g in range(len(self.group_names)):
                members = np.flatnonzero(self.group == g)
                self.group_bisection.array[g] = bisection_bps(pos_km, members, table.a,
                                                              table.b, cap)

    def _publish(self, backlog_bytes: np.ndarray | None, dt_s: float, built: bool) -> None:
        table = self.table
        t_count = table.terminals
        redrawn = self._slot_version != table.version
        if redrawn:  # the set or a state changed: redraw all
            self._flat_a = table.a * t_count + table.slot_a
            self._flat_b = table.b * t_count + table.slot_b
            for fld in (self.range, self.capacity, self.utilization, self.state):
                fld.array.fill(0)
            state = np.where(self._up, UP, ACQUIRING).astype(np.uint8)
            self._put(self.state.array, state)
            self.peer.array[:] = table.peer
            self.outputs.link_up = self.state.array == UP
            self.outputs.link_peer = self.peer.array
            self.outputs.link_capacity_bps = self.capacity.array
            t = self.terminal
            active = np.count_nonzero(table.peer >= 0, axis=1)
            self._power_w = (active * t.active_power_w
                             + (t_count - active) * t.idle_power_w).astype(float)
            self.power.array[:] = self._power_w
            self.outputs.isl_power_w = self._power_w
            same = self.group[table.a] == self.group[table.b]
            self.group_links.array[:] = np.bincount(self.group[table.a[same & self._up]],
                                                    minlength=len(self.group_names))
            self._slot_version = table.version
            self._util_zero = True
        self._put(self.range.array, self._range_m)
        self._put(self.capacity.array, self._cap_bps)
        # The relay traffic's load on each link: worked out when the routes are built (a
        # pass per tree level), shown against each step's capacities in between.
        load = self._load_bps
        if load.size != table.size:  # links made since: no load on them yet
            load = self._load_bps = np.concatenate((load, np.zeros(table.size - load.size)))
        tree = self._tree
        if built and tree is not None:
            load.fill(0.0)
            if backlog_bytes is not None and dt_s > 0.0:
                demand = np.minimum(np.asarray(backlog_bytes) * 8.0 / dt_s, tree.relay_bps)
                if demand.any():
                    load[:] = link_loads(tree, demand, table.size)
            self._any_load = bool(load.any())
        util: np.ndarray | None = None
        allreduce = self._allreduce_bps
        if self._any_load or allreduce is not None:
            util = shared_utilization(self._cap_bps, load, allreduce)
            self._put(self.utilization.array, util)
            self._util_zero = False
        elif not self._util_zero:
            self.utilization.array.fill(0)
            self._util_zero = True
        # The relay load offered to each link, for multi-node jobs' all-reduce.
        if self._any_load:
            if built or redrawn or self._relay_zero:  # it changes at builds only
                self._relay_terminals.fill(0.0)
                self._put(self._relay_terminals, load)
            self._relay_zero = False
        elif not self._relay_zero:
            self._relay_terminals.fill(0.0)
            self._relay_zero = True
        self._group_totals(util)

    def _group_totals(self, util: np.ndarray | None) -> None:
        """Per group: links acquiring, capacity and utilization of the links up within it
        (each link's group and whether both ends share it are kept until the set changes).
        """
        table = self.table
        g_count = len(self.group_names)
        if self._group_version != table.version:
            self._group_a = self.group[table.a]
            self._inside = self._group_a == self.group[table.b]
            self._group_version = table.version
        inside, up = self._inside, self._inside & self._up
        if g_count == 1:  # a single group (a cluster alone, one shell): no per-group sums
            self.group_acquiring.array[0] = np.count_nonzero(inside) - np.count_nonzero(up)
            self.group_capacity.array[0] = self._cap_bps[up].sum()
            used = util[up] if util is not None else np.zeros(0)
            self.group_util_mean.array[0] = used.mean() if used.size else 0.0
            self.group_util_max.array[0] = used.max(initial=0.0)
            return
        group_a = self._group_a
        self.group_acquiring.array[:] = np.bincount(group_a[inside & ~self._up],
                                                    minlength=g_count)
        self.group_capacity.array[:] = np.bincount(group_a[up], weights=self._cap_bps[up],
                                                   minlength=g_count)
        if util is None:
            self.group_util_mean.array.fill(0)
            self.group_util_max.array.fill(0)
            return
        groups, used = group_a[up], util[up]
        count = np.bincount(groups, minlength=g_count)
        total = np.bincount(groups, weights=used, minlength=g_count)
        self.group_util_mean.array[:] = np.where(count > 0, total / np.maximum(count, 1), 0.0)
        order = np.argsort(groups, kind="stable")  # each group's links together: max each
        present = np.flatnonzero(count)
        starts = np.concatenate(([0], np.cumsum(count[present])[:-1]))
        highest = np.zeros(g_count)
        if used.size:
            highest[present] = np.maximum.reduceat(used[order], starts)
        self.group_util_max.array[:] = highest

    def _put(self, array: np.ndarray, values: np.ndarray) -> None:
        """Write a per-link value into both ends' terminal slots."""
        flat = array.reshape(-1)
        flat[self._flat_a] = values
        flat[self._flat_b] = values

    def tree_depth(self) -> np.ndarray:
        """(n,) hops from each node to its gateway in the relay tree (0 none), for tests."""
        return np.zeros(self.n, dtype=np.int64) if self._tree is None else self._tree.depth

    def fleet(self) -> dict[str, float]:
        if not self.enabled:
            return {}
        up = int(np.count_nonzero(self._up))
        relay = self.relay.array
        return {
            "links_up": up,
            "links_acquiring": int(self.table.size - up),
            "isl_capacity_bps": float(self._cap_bps.sum()),
            "isl_bisection_bps": float(self._fleet_bisection),
            "isl_power_w": float(self._power_w.sum()),
            "relay_nodes": int(np.count_nonzero(relay > 0.0)),
            "link_changes": self._changes,
        }

    def meta(self) -> dict[str, Any]:
        if not self.enabled:
            return {"enabled": False}
        t = self.terminal
        return {
            "enabled": True, "preset": self.params.preset, "pattern": self.params.pattern,
            "terminals_per_sat": self.params.terminals_per_sat,
            "terminal": dict(vars(t)), "rate_cap_bps": t.rate_cap_bps,
            "full_rate_range_m": self.budget.full_rate_range_m(),
            "earth_model": "sphere of the WGS84 equatorial radius plus the grazing height",
            "grazing_height_km": self.params.grazing_height_km,
            "users": [u.name for u in self.params.user], "target_sat": self.target,
            "groups": self.group_names,
            # msgpack map keys are strings on the wire (meta is read strict).
            "state_labels": {str(code): label for code, label in STATE_LABELS.items()},
        }

    def commands(self) -> dict[str, CommandHandler]:
        return {}

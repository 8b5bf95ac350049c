"""Getting results home: per-node result storage drained over ground-station contacts.

Each finished job leaves one result on its node. While the node is in contact (the orbit
subsystem's ``contact_station``, sampled at the end of the step), results leave oldest
first at that station's ``downlink_bps``; out of contact nothing leaves. An optional
``relay_bps`` (n,) (inter-satellite or GEO relay, not modelled yet: compute passes None)
adds to the link rate, so a relay model can plug in without touching this module.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from twin.core.subsystem import Field, make_field


class ResultStore:
    """Undelivered results of the whole fleet (parallel arrays, grown by doubling)."""

    def __init__(self, n_nodes: int, station_bps: np.ndarray, capacity: int = 64) -> None:
        self.n_nodes = n_nodes
        # Station rates with a trailing 0 so contact_station = -1 indexes "no link"; and in
        # the link field's dtype, to gather straight into it when no result is waiting.
        self._station_bps = np.append(np.asarray(station_bps, dtype=float), 0.0)
        self._station_bps_f4 = self._station_bps.astype(np.float32)
        self.node = np.full(capacity, -1, dtype=np.int32)
        self.bytes_left = np.zeros(capacity)
        self.ready_t = np.zeros(capacity)
        self.job_id = np.full(capacity, -1, dtype=np.int64)
        self.active = np.zeros(capacity, dtype=bool)
        f = make_field
        self.backlog = f("storage_backlog_bytes", "<f8", (n_nodes,), "B",
                         "Result bytes stored on board, not yet downlinked")
        self.oldest_age = f("oldest_result_age_s", "<f4", (n_nodes,), "s",
                            "Age of the oldest undelivered result, 0 when none")
        self.link = f("downlink_bps", "<f4", (n_nodes,), "bit/s",
                      "Link rate available to results now (0 out of contact)")
        self.delivered_bytes = 0.0
        self.delivered_results = 0
        self.latency_sum_s = 0.0
        self._oldest_t = np.full(n_nodes, np.inf)
        self._has_result = np.zeros(n_nodes, dtype=bool)  # nodes storing one (oldest_t < inf)
        self._none_stored = True  # no node stores a result
        self._ages_zero = False  # oldest_age holds zeros, as it does while none is stored
        self._backlog_sum: float | None = None
        self._dirty = False

    def fields(self) -> list[Field]:
        return [self.backlog, self.oldest_age, self.link]

    def add(self, node: int, size_bytes: float, ready_t: float, job_id: int) -> None:
        """Store one result on ``node``, ready (finished) at ``ready_t`` (Unix s)."""
        free = np.flatnonzero(~self.active)
        if free.size == 0:
            slot = self.active.size
            grow = max(64, slot)
            self.node = np.append(self.node, np.full(grow, -1, dtype=np.int32))
            self.bytes_left = np.append(self.bytes_left, np.zeros(grow))
            self.ready_t = np.append(self.ready_t, np.zeros(grow))
            self.job_id = np.append(self.job_id, np.full(grow, -1, dtype=np.int64))
            self.active = np.append(self.active, np.zeros(grow, dtype=bool))
        else:
            slot = int(free[0])
        self.node[slot] = node
        self.bytes_left[slot] = size_bytes
        self.ready_t[slot] = ready_t
        self.job_id[slot] = job_id
        self.active[slot] = True
        self.backlog.array[node] += size_bytes
        self._backlog_sum = None
        self._dirty = True

    def step(self, t_utc: float, dt_s: float, contact_station: np.ndarray,
             relay_bps: np.ndarray | None) -> np.ndarray:
        """Downlink for one step; returns bytes delivered per node (n,)."""
        delivered = np.zeros(self.n_nodes)
        station_bps = self._station_bps
        contact_station = np.asarray(contact_station)
        if relay_bps is None:
            # contact_station is in [-1, stations): "wrap" takes -1 to the trailing 0.
            np.take(self._station_bps_f4, contact_station, out=self.link.array, mode="wrap")
        else:
            link_bps = station_bps[contact_station] + relay_bps
            self.link.array[:] = link_bps
        live = np.flatnonzero(self.active)
        if live.size:
            # Budgets only where results wait (hundreds of nodes, not thousands).
            live_nodes = self.node[live]
            live_bps = (station_bps[contact_station[live_nodes]] if relay_bps is None
                        else link_bps[live_nodes])
            budget = live_bps * dt_s / 8.0
            has_link = budget > 0.0
            if np.count_nonzero(has_link):
                nodes = self._drain(live[has_link], budget[has_link], delivered, t_utc)
                # Only these nodes' backlogs change (the others lose 0 and are >= 0).
                backlog = self.backlog.array
                backlog[nodes] = np.maximum(backlog[nodes] - delivered[nodes], 0.0)
                self._backlog_sum = None
        oldest = self._oldest_t
        if self._dirty:  # a result came or went: find each node's oldest again
            live = np.flatnonzero(self.active)
            oldest.fill(np.inf)
            np.minimum.at(oldest, self.node[live], self.ready_t[live])
            no_result = np.isinf(oldest)
            np.logical_not(no_result, out=self._has_result)
            self.oldest_age.array[no_result] = 0.0  # kept at 0 until a result comes
            self._none_stored = not live.size
            self._dirty = False
        age = self.oldest_age.array
        if not self._none_stored:
            np.subtract(t_utc, oldest, out=age, casting="same_kind", where=self._has_result)
            self._ages_zero = False
        elif not self._ages_zero:
            age[:] = 0.0
            self._ages_zero = True
        return delivered

    def _drain(self, sending: np.ndarray, budget: np.ndarray, delivered: np.ndarray,
               t_utc: float) -> np.ndarray:
        """Oldest first within each node: each result gets what the older ones left.

        Args:
            sending: (k,) slots of results on nodes with a link.
            budget: (k,) bytes their node may send this step.
            delivered: (n,) bytes delivered per node, added to.

        Returns:
            The nodes sent from, ascending, each once.
        """
        order = np.lexsort((self.job_id[sending], self.ready_t[sending], self.node[sending]))
        slots = sending[order]
        nodes = self.node[slots]
        size = self.bytes_left[slots]
        before = np.cumsum(size) - size  # bytes queued ahead, across the whole list
        first = np.empty(slots.size, dtype=bool)  # a node's first (oldest) result
        first[0] = True
        np.not_equal(nodes[1:], nodes[:-1], out=first[1:])
        group = np.cumsum(first) - 1  # which node's run of results each one is in
        ahead = before - before[first][group]  # ahead within the node
        sent = np.clip(budget[order] - ahead, 0.0, size)
        self.bytes_left[slots] = size - sent
        np.add.at(delivered, nodes, sent)
        self.delivered_bytes += float(sent.sum())
        finished = slots[self.bytes_left[slots] <= 0.0]
        if finished.size:
            self.active[finished] = False
            self._dirty = True
            self.delivered_results += int(finished.size)
            self.latency_sum_s += float(np.sum(t_utc - self.ready_t[finished]))
        return nodes[first]

    def forget_kept(self) -> None:
        """Drop the kept backlog total, and write the ages in full on the next step."""
        self._backlog_sum = None
        self._ages_zero = False

    def fleet(self, t_utc: float) -> dict[str, float]:
        live = self.active
        pending = int(np.count_nonzero(live))
        oldest = float(t_utc - self.ready_t[live].min()) if pending else 0.0
        if self._backlog_sum is None:
            self._backlog_sum = float(self.backlog.array.sum())
        mean_latency = (self.latency_sum_s / self.delivered_results
                        if self.delivered_results else 0.0)
        return {
            "results_delivered": self.delivered_results,
            "results_delivered_bytes": self.delivered_bytes,
            "results_pending": pending,
            "downlink_backlog_bytes": self._backlog_sum,
            "oldest_result_age_s": oldest,
            "result_latency_mean_s": mean_latency,
        }

    def meta(self) -> dict[str, Any]:
        return {"station_downlink_bps": [float(x) for x in self._station_bps[:-1]],
                "relay": "relay_bps (n,) bit/s adds to the link when a relay model publishes it"}

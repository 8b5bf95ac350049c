"""Getting results home: per-node result storage drained over ground-station contacts.

Each finished job leaves one result on its node. While the node is in contact (the orbit
subsystem's ``contact_station``, sampled at the end of the step), results leave oldest
first at that station's ``downlink_bps``; out of contact nothing leaves. An optional
``relay_bps`` (n,) in ``ctx.shared`` (inter-satellite or GEO relay, not modelled yet) adds to
the link rate, so a relay model can plug in without touching this module.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from twin.subsystem import Field, make_field


class ResultStore:
    """Undelivered results of the whole fleet (parallel arrays, grown by doubling)."""

    def __init__(self, n_nodes: int, station_bps: np.ndarray, capacity: int = 64) -> None:
        self.n_nodes = n_nodes
        # Station rates with a trailing 0 so contact_station = -1 indexes "no link".
        self._station_bps = np.append(np.asarray(station_bps, dtype=float), 0.0)
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
        self._dirty = True

    def step(self, t_utc: float, dt_s: float, contact_station: np.ndarray,
             relay_bps: np.ndarray | None) -> np.ndarray:
        """Downlink for one step; returns bytes delivered per node (n,)."""
        link_bps = self._station_bps[contact_station]
        if relay_bps is not None:
            link_bps = link_bps + relay_bps
        self.link.array[:] = link_bps
        delivered = np.zeros(self.n_nodes)
        budget = link_bps * dt_s / 8.0
        live = np.flatnonzero(self.active)
        if live.size:
            sending = live[budget[self.node[live]] > 0.0]
            if sending.size:
                self._drain(sending, budget, delivered, t_utc)
        self.backlog.array[:] -= delivered
        np.maximum(self.backlog.array, 0.0, out=self.backlog.array)
        oldest = self._oldest_t
        if self._dirty:  # a result came or went: find each node's oldest again
            live = np.flatnonzero(self.active)
            oldest.fill(np.inf)
            np.minimum.at(oldest, self.node[live], self.ready_t[live])
            self._dirty = False
        np.subtract(t_utc, oldest, out=self.oldest_age.array, casting="same_kind")
        self.oldest_age.array[np.isinf(oldest)] = 0.0
        return delivered

    def _drain(self, sending: np.ndarray, budget: np.ndarray, delivered: np.ndarray,
               t_utc: float) -> None:
        """Oldest first within each node: each result gets what the older ones left."""
        order = np.lexsort((self.job_id[sending], self.ready_t[sending], self.node[sending]))
        slots = sending[order]
        nodes = self.node[slots]
        size = self.bytes_left[slots]
        before = np.cumsum(size) - size  # bytes queued ahead, across the whole list
        starts = np.flatnonzero(np.r_[True, nodes[1:] != nodes[:-1]])
        counts = np.diff(np.r_[starts, slots.size])
        ahead = before - np.repeat(before[starts], counts)  # ahead within the node
        sent = np.clip(budget[nodes] - ahead, 0.0, size)
        self.bytes_left[slots] = size - sent
        np.add.at(delivered, nodes, sent)
        self.delivered_bytes += float(sent.sum())
        finished = slots[self.bytes_left[slots] <= 0.0]
        if finished.size:
            self.active[finished] = False
            self._dirty = True
            self.delivered_results += int(finished.size)
            self.latency_sum_s += float(np.sum(t_utc - self.ready_t[finished]))

    def fleet(self, t_utc: float) -> dict[str, float]:
        live = self.active
        oldest = float(t_utc - self.ready_t[live].min()) if live.any() else 0.0
        mean_latency = (self.latency_sum_s / self.delivered_results
                        if self.delivered_results else 0.0)
        return {
            "results_delivered": self.delivered_results,
            "results_delivered_bytes": self.delivered_bytes,
            "results_pending": int(np.count_nonzero(live)),
            "downlink_backlog_bytes": float(self.backlog.array.sum()),
            "oldest_result_age_s": oldest,
            "result_latency_mean_s": mean_latency,
        }

    def meta(self) -> dict[str, Any]:
        return {"station_downlink_bps": [float(x) for x in self._station_bps[:-1]],
                "relay": "ctx.shared['relay_bps'] (n,) bit/s adds to the link when present"}

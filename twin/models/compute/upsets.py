"""What radiation upsets do to a node: jobs rolled back, devices reset, work stalled.

``radiation.RadiationState`` draws the single-event effects each node takes in a step from
where it is, each with its device class; ``Upsets`` applies them, with those an operator
injected (``inject_upset``). An accelerator-class event (silent data corruption, HBM
uncorrectable error, functional interrupt) strikes one powered device, uniform over them: a
struck job rolls back to its last checkpoint, and a functional interrupt also stalls it (or,
on an idle device, keeps that device out of scheduling) for ``reset_downtime_s``. A host
functional interrupt (CPU or DRAM) reboots the node's host: every job on the node rolls
back and stalls, and every idle device is out, for ``reset_downtime_s``.

Resets are rare, so the model asks two cheap questions most steps: is any job stalled
(``stall_horizon_t``), is any idle device resetting (``reset_horizon_t``)? Only when the
answer may be yes does it take the per-job and per-device paths.
"""

from __future__ import annotations

import numpy as np

from twin.core.subsystem import StepContext
from twin.models.compute.jobs import JobRunner
from twin.models.compute.power_clock import read_only
from twin.models.compute.radiation import (
    CLASS_WORDS,
    DEVICE_CLASSES,
    HOST_CLASSES,
    RESETS,
    RadiationState,
)
from twin.models.compute.workload import RUNNING, SECONDS_PER_HOUR
from twin.scenario import Scenario

# Injected upsets wait for the next step; a client injecting while the twin is paused
# must not grow that list without bound (each is applied, and evented, in one step).
MAX_PENDING_UPSETS = 1000

# The job id of an upset radiation drew (an injected one carries -3, any device, or the
# id of the job it strikes): drawn ones strike whatever device the draw picks.
DRAWN = -1
# The device class of an injected upset (radiation's classes are 0 and up).
INJECTED = -1

# Nodes crossing a dose limit in one step evented one by one, at most; more get one event.
MAX_DOSE_EVENTS = 20


class Upsets:
    """Radiation's upsets applied to the jobs and devices of every node.

    Args:
        radiation: The radiation state: rates, dose, and the upset and reset counters.
        runner: The jobs an upset strikes (and rolls back).
        scenario: The scenario (node count, satellite names for events).
        accelerators_per_node: Installed accelerators per node.

    Attributes:
        idle_reset_end: (n, accelerators) end of the reset (Unix s) of each device that
            had no job when it was struck (-inf: none).
        pending: Injected upsets for the next step: (node, reset, job id or -3, device
            class code or ``INJECTED``).
        reset_horizon_t: No idle device is resetting after this time (Unix s).
        stall_horizon_t: No running job is stalled by a reset after this time (Unix s).
        no_resets: (n,) zeros, read-only: ``idle_resetting``'s answer while no idle
            device resets, which the model recognises by identity.
    """

    def __init__(self, radiation: RadiationState, runner: JobRunner, scenario: Scenario,
                 accelerators_per_node: int) -> None:
        n = len(scenario.satellites)
        self.radiation = radiation
        self.runner = runner
        self.scenario = scenario
        self.n_sats = n
        self.idle_reset_end = np.full((n, accelerators_per_node), -np.inf)
        self.pending: list[tuple[int, bool, int, int]] = []
        self.reset_horizon_t = -np.inf
        self.stall_horizon_t = -np.inf
        self.no_resets = read_only(np.zeros(n, dtype=np.int64))
        self._resetting: tuple[float, float, np.ndarray] | None = None  # from, until, counts

    def step(self, ctx: StepContext, n_ok: np.ndarray, t0: float) -> None:
        """Draw this step's upsets, apply them and the injected ones, and count them all.

        Args:
            n_ok: (n,) working accelerators (the powered devices an upset can strike).
            t0: Start of the step (Unix s).
        """
        orbit = ctx.orbit
        n = self.n_sats
        lat, lon, alt = orbit.lat_deg, orbit.lon_deg, orbit.alt_km
        nodes, classes = self.radiation.step(
            ctx.rng, ctx.t_utc, ctx.dt_s, np.zeros(n) if lat is None else lat,
            np.zeros(n) if lon is None else lon, np.full(n, 500.0) if alt is None else alt,
            n_ok)
        if self.radiation.saturated is not None:
            drawn, applied = self.radiation.saturated
            self.radiation.saturated = None
            ctx.events.raise_event(
                "upsets_saturated", "warning", f"radiation drew {drawn:,} upsets this step "
                f"(more than {applied:,}): {applied:,} applied; the environment is outside "
                "the model's range", drawn=drawn, applied=applied)
        if self.radiation.crossed:
            self._dose_events(ctx)
        if not self.pending and not nodes.size:
            return  # the usual step: nothing to apply or count
        # Drawn events (job id -1) first, then injected ones (-3: any device, or a job id):
        # (node, device class, reset, job id).
        hits = [(node, cls, bool(RESETS[cls]), DRAWN)
                for node, cls in zip(nodes.tolist(), classes.tolist(), strict=True)]
        hits.extend((node, cls, reset, job_id) for node, reset, job_id, cls in self.pending)
        self.pending.clear()
        upsets = np.zeros(n, dtype=np.int64)
        resets = np.zeros(n, dtype=np.int64)
        for node, cls, reset, job_id in hits:
            if cls in HOST_CLASSES:
                self._reboot_host(ctx, node, cls, t0)
            else:
                self._apply(ctx, node, reset, job_id, n_ok, t0, cls)
            upsets[node] += 1
            resets[node] += int(reset)
        self.radiation.count(upsets, resets)

    def _dose_events(self, ctx: StepContext) -> None:
        """One event per node whose total dose crossed the HBM or the hard-failure limit."""
        p = self.radiation.params
        dose = self.radiation.dose.array
        for kind, nodes in self.radiation.crossed:
            if nodes.size > MAX_DOSE_EVENTS:  # a fleet crossing at once: one event, not n
                ctx.events.raise_event(kind, "alarm" if kind == "tid_failure" else "warning",
                                       f"{nodes.size} nodes past the {kind} dose",
                                       nodes=int(nodes.size))
                continue
            for node in nodes.tolist():
                name = self.scenario.satellites[node].name
                if kind == "hbm_degraded":
                    ctx.events.raise_event(
                        "hbm_degraded", "warning", f"{name}: total dose {dose[node]:.1f} Gy(Si) "
                        f"past {p.hbm_degraded_gy:g} Gy: HBM irregular, upsets x"
                        f"{p.hbm_degraded_seu_factor:g}", sat=node, dose_gy=float(dose[node]))
                else:
                    ctx.events.raise_event(
                        "tid_failure", "alarm", f"{name}: total dose {dose[node]:.1f} Gy(Si) "
                        f"past {p.tid_failure_gy:g} Gy: accelerators failed", sat=node,
                        dose_gy=float(dose[node]))
        self.radiation.crossed.clear()

    def _apply(self, ctx: StepContext, node: int, reset: bool, job_id: int,
               n_ok: np.ndarray, t0: float, cls: int = INJECTED) -> None:
        """One accelerator upset on ``node``: which device it hits, and what that costs."""
        jobs = self.runner.jobs
        on_node = np.flatnonzero((jobs.state == RUNNING) & (jobs.node == node))
        slot = -1
        if job_id >= 0:
            slot = jobs.slot_of(job_id)
        elif n_ok[node] > 0:
            # The struck device is uniform over the powered ones; jobs own them in slot order.
            device = int(ctx.rng.integers(int(n_ok[node])))
            edges = np.cumsum(jobs.accels[on_node])
            k = int(np.searchsorted(edges, device, side="right"))
            slot = int(on_node[k]) if k < on_node.size else -1
            if slot < 0 and reset:
                free = np.flatnonzero(self.idle_reset_end[node] <= t0)
                if free.size:
                    end_t = t0 + self.radiation.params.reset_downtime_s
                    self.idle_reset_end[node, free[0]] = end_t
                    self._resetting = None
                    self.reset_horizon_t = max(self.reset_horizon_t, end_t)
        name = self.scenario.satellites[node].name
        downtime = self.radiation.params.reset_downtime_s
        if slot >= 0:
            lost = self.runner.rollback(slot)
            jobs.upsets[slot] += 1
            if reset:
                jobs.stall_until_t[slot] = max(jobs.stall_until_t[slot], t0 + downtime)
                self.stall_horizon_t = max(self.stall_horizon_t,
                                           float(jobs.stall_until_t[slot]))
            what = f"job {jobs.job_id[slot]} rolled back {lost / SECONDS_PER_HOUR:.3f} accel-h"
        else:
            what = "idle accelerator, no work lost"
        words = "single-event upset" if cls == INJECTED else CLASS_WORDS[cls]
        device_class = "injected" if cls == INJECTED else DEVICE_CLASSES[cls]
        if reset:
            if cls == INJECTED:
                words = "upset"
            ctx.events.raise_event("device_reset", "warning",
                                   f"{name}: {words} needs a {downtime:g} s device reset; "
                                   f"{what}", sat=node, device_class=device_class)
        else:
            ctx.events.raise_event("upset", "info", f"{name}: {words}; {what}", sat=node,
                                   device_class=device_class)

    def _reboot_host(self, ctx: StepContext, node: int, cls: int, t0: float) -> None:
        """A host functional interrupt: every job on ``node`` rolls back and stalls, and
        every idle device is out, for ``reset_downtime_s`` (the host reboots)."""
        jobs = self.runner.jobs
        downtime = self.radiation.params.reset_downtime_s
        end_t = t0 + downtime
        lost = 0.0
        on_node = np.flatnonzero((jobs.state == RUNNING) & (jobs.node == node))
        for slot in on_node.tolist():
            lost += self.runner.rollback(slot)
            jobs.upsets[slot] += 1
            jobs.stall_until_t[slot] = max(jobs.stall_until_t[slot], end_t)
        if on_node.size:
            self.stall_horizon_t = max(self.stall_horizon_t, end_t)
        # Every device without a job is out too (a busy one is its stalled job's).
        busy = int(jobs.accels[on_node].sum())
        idle = self.idle_reset_end[node, busy:]
        np.maximum(idle, end_t, out=idle)
        if idle.size:
            self._resetting = None
            self.reset_horizon_t = max(self.reset_horizon_t, end_t)
        ctx.events.raise_event(
            "device_reset", "warning", f"{self.scenario.satellites[node].name}: "
            f"{CLASS_WORDS[cls]}: the host reboots for {downtime:g} s; {on_node.size} jobs "
            f"rolled back {lost / SECONDS_PER_HOUR:.3f} accel-h", sat=node,
            device_class=DEVICE_CLASSES[cls])

    def idle_resetting(self, t0: float) -> np.ndarray:
        """(n,) int64 accelerators without a job still resetting after an upset at ``t0``.

        Read-only, and the same object until a reset starts or ends (``no_resets`` while
        none is).
        """
        if self.reset_horizon_t <= t0:
            return self.no_resets
        kept = self._resetting
        if kept is None or not kept[0] <= t0 < kept[1]:
            ends = self.idle_reset_end
            resetting = ends > t0
            counts = read_only(np.count_nonzero(resetting, axis=1))
            # Valid from t0 until the first of these resets ends.
            until = float(ends[resetting].min()) if np.count_nonzero(counts) else np.inf
            kept = self._resetting = (t0, until, counts)
        return kept[2]

    def forget_kept(self) -> None:
        """Drop the idle resets kept from step to step, and radiation's kept rates."""
        self._resetting = None
        self.radiation.forget_kept()

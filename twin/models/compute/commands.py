"""Compute's commands: their declarations and their handlers.

``COMMANDS`` declares the six commands compute answers (``meta.commands``; the server
checks arguments against these declarations before a handler sees them). The handlers
live on ``ComputeCommands``, one method per command taking the request dict, given the
model whose jobs, caps, policy and pending upsets they change. A handler that changes
what the scheduler would do asks for a pass on the next step (``schedule_now``) rather
than waiting out ``schedule_interval_s``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from twin.core.subsystem import CommandHandler, CommandRejected
from twin.models.compute.radiation import DEVICE_CLASSES, RESETS
from twin.models.compute.upsets import INJECTED, MAX_PENDING_UPSETS
from twin.models.compute.workload import JOB_KINDS, KIND_CODES, RUNNING, SECONDS_PER_HOUR
from twin.protocol.codec import ok
from twin.protocol.commands import Arg, CommandSpec, sat_arg

if TYPE_CHECKING:
    from twin.models.compute.model import ComputeModel

# Arrivals stop at workload.max_queue; an operator's own jobs may go this far past it, and
# no further (each queued job costs the scheduler's passes).
COMMANDED_QUEUE_HEADROOM = 1000

JOB_ID_ARG = Arg("job_id", "integer", "the job's id", min=1, required=True)

COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("submit_job", "queue a job, scheduled on the next step", "operational", (
        Arg("kind", "choice", "the job's kind", choices=("training", "inference"),
            default="inference"),
        Arg("size_accel_h", "number", "work in accelerator-hours", unit="accelerator-h",
            min=1e-6, max=1e6),
        Arg("accelerators", "integer", "accelerators it runs on (at most a node's)",
            min=1, max=64),
        Arg("priority", "integer", "higher runs first", min=-1000, max=1000),
        Arg("checkpoint_interval_s", "number", "time between checkpoints", unit="s",
            min=1.0, max=1e7),
        Arg("result_bytes", "number", "result size to downlink (at most the node's "
            "storage)", unit="B", min=0.0),
    ), role="operator"),
    CommandSpec("cancel_job", "remove a queued or running job (running work is lost)",
                "operational", (JOB_ID_ARG,), role="operator"),
    CommandSpec("job", "one job's state", "informational", (JOB_ID_ARG,), role="viewer"),
    CommandSpec("set_policy", "the scheduling policy", "operational", (
        Arg("policy", "choice", "first_fit, sun_aware or network_aware",
            choices=("first_fit", "sun_aware", "network_aware"),
            required=True),), role="operator"),
    CommandSpec("set_power_cap", "cap a node's compute power (nil clears)", "operational", (
        sat_arg("the node, or all", allow_all=True),
        Arg("power_w", "number", "the cap", unit="W", min=0.0, max=1e7, nullable=True),
    ), role="engineer", confirm_for_all=True),
    CommandSpec("inject_upset", "a single-event upset on a node at the next step",
                "hazardous", (
        sat_arg("the node"),
        Arg("reset", "bool", "the upset needs a device reset", default=False),
        Arg("job_id", "integer", "strike this running job on that node", min=1),
        Arg("device_class", "choice", "act as this device class's event (its reset, a host "
            "class reboots the node's host)", choices=DEVICE_CLASSES),
    ), role="engineer"),
)
"""The commands this model answers (meta.commands; docs/protocol.md)."""


class ComputeCommands:
    """The handlers of compute's commands, one method per command.

    Args:
        model: The compute model the commands act on.
    """

    def __init__(self, model: ComputeModel) -> None:
        self.model = model

    def handlers(self) -> dict[str, CommandHandler]:
        """Handler by command name, for the model's ``commands()``."""
        return {
            "submit_job": self.submit_job, "cancel_job": self.cancel_job, "job": self.job,
            "set_policy": self.set_policy, "set_power_cap": self.set_power_cap,
            "inject_upset": self.inject_upset,
        }

    def submit_job(self, request: dict[str, Any]) -> dict[str, Any]:
        """``submit_job``: kind, size_accel_h, accelerators, priority, checkpoint_interval_s,
        result_bytes (all but kind optional; defaults from the kind)."""
        model = self.model
        kind_name = request.get("kind", "inference")
        kind = JOB_KINDS[KIND_CODES[kind_name]]
        limit = model.workload.max_queue + COMMANDED_QUEUE_HEADROOM
        if model.jobs.n_queued >= limit:
            raise CommandRejected(f"the queue holds {model.jobs.n_queued} jobs, the most "
                                  f"commands may fill it to (workload.max_queue + "
                                  f"{COMMANDED_QUEUE_HEADROOM}); wait for it to drain or "
                                  "cancel some")
        # Types and the declared ranges are checked already; the node's own limits here.
        installed = model.params.accelerators_per_node
        storage = model.params.storage_bytes
        accels = request.get("accelerators", min(max(kind.accelerators), installed))
        if accels > installed:
            raise CommandRejected(f"'accelerators' = {accels} out of range [1, {installed}] "
                                  "(a node's accelerators)")
        result = float(request.get("result_bytes", kind.result_bytes))
        if result > storage:
            raise CommandRejected(f"'result_bytes' = {result:g} out of range [0, {storage:g}] "
                                  "B (a node's storage)")
        size_h = float(request.get("size_accel_h", kind.median_size_accel_h))
        priority = request.get("priority", kind.priority)
        interval = float(request.get("checkpoint_interval_s", kind.checkpoint_interval_s))
        job_id = model.jobs.add(kind=KIND_CODES[kind_name], accels=int(accels),
                                size_accel_s=size_h * SECONDS_PER_HOUR, priority=int(priority),
                                ckpt_interval_s=interval, result_bytes=result,
                                submit_t=model.t_utc, commanded=True)
        model.totals["jobs_submitted"] += 1
        model.schedule_now()  # place it on the next step
        return ok(job_id=job_id)

    def cancel_job(self, request: dict[str, Any]) -> dict[str, Any]:
        """``cancel_job``: job_id. Work done on a running job counts as lost."""
        model = self.model
        job_id = request["job_id"]
        slot = model.jobs.slot_of(job_id)
        if slot < 0:
            known = "it already finished" if job_id in model.finished else "no such job"
            raise CommandRejected(f"job {job_id} is not queued or running ({known})")
        was = "running" if model.jobs.state[slot] == RUNNING else "queued"
        lost = float(model.jobs.done_accel_s[slot])
        if was == "running":
            model.totals["lost_accel_s"] += lost
        model.jobs.release(slot)
        model.totals["jobs_cancelled"] += 1
        model.schedule_now()
        return ok(job_id=job_id, was=was,
                  lost_accel_h=lost / SECONDS_PER_HOUR if was == "running" else 0.0)

    def job(self, request: dict[str, Any]) -> dict[str, Any]:
        """``job``: job_id -> the job's state (queued, running, or finished)."""
        model = self.model
        job_id = request["job_id"]
        slot = model.jobs.slot_of(job_id)
        if slot >= 0:
            return ok(job=model.jobs.describe(slot, model.t_utc))
        if job_id in model.finished:
            return ok(job={"job_id": job_id, "state": "done", **model.finished[job_id]})
        raise CommandRejected(f"no job {job_id} (queued, running or recently finished)")

    def set_policy(self, request: dict[str, Any]) -> dict[str, Any]:
        """``set_policy``: policy = first_fit | sun_aware | network_aware."""
        model = self.model
        policy = request["policy"]
        model.policy = policy
        model.schedule_now()
        return ok(policy=policy)

    def set_power_cap(self, request: dict[str, Any]) -> dict[str, Any]:
        """``set_power_cap``: sat (index, name or "all"), power_w (absent or nil clears)."""
        model = self.model
        sat = request["sat"]
        nodes: slice | int = slice(None) if sat == "all" else sat
        value = request.get("power_w")
        cap = np.inf if value is None else float(value)
        model.operator_cap_w[nodes] = cap
        model.schedule_now()
        # The floor a cap cannot push below: the host and every accelerator idle holding
        # its job (docs/models.md, "Power cap"); below it the jobs stop, the floor stays.
        p = model.params
        floor_w = p.host_power_w + p.accelerators_per_node * p.idle_power_w
        reply = ok(sat=request["sat"], power_w=None if np.isinf(cap) else cap,
                   floor_w=floor_w)
        if cap < floor_w:
            reply["note"] = (f"below the node's floor of {floor_w:,.0f} W (host and idle "
                             "accelerators): its jobs are suspended, and the host and the "
                             "idle accelerators still draw up to that")
        return reply

    def inject_upset(self, request: dict[str, Any]) -> dict[str, Any]:
        """``inject_upset``: sat, reset (bool, default false), job_id (optional target),
        device_class (optional: the event acts as that class's, its reset included)."""
        model = self.model
        node = request["sat"]
        reset = request.get("reset", False)
        device_class = INJECTED
        if "device_class" in request:
            device_class = DEVICE_CLASSES.index(request["device_class"])
            reset = bool(RESETS[device_class])
        job_id = -3  # injected, any device
        if "job_id" in request:
            job_id = request["job_id"]
            slot = model.jobs.slot_of(job_id)
            if slot < 0 or model.jobs.state[slot] != RUNNING or model.jobs.node[slot] != node:
                raise CommandRejected(f"job {job_id} is not running on satellite {node}")
        if len(model.upsets.pending) >= MAX_PENDING_UPSETS:
            raise CommandRejected(f"{MAX_PENDING_UPSETS} upsets wait for the next step already;"
                                  " step the twin before injecting more")
        model.upsets.pending.append((node, reset, job_id, device_class))
        return ok(sat=node, reset=reset, applies="at the start of the next step")

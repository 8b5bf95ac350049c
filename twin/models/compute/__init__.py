"""The compute subsystem: each node a small data center, coupled to heat, power and radiation.

Per node: accelerators (count, peak BF16 FLOP/s, idle / full power, a DVFS curve), result
storage, and the jobs it runs. Each step, jobs on failed accelerators and jobs struck by
radiation roll back to their checkpoint; arrivals join the queue; the node clock is the
DVFS point that keeps the payload under the power cap in force, cut further while the
chip is thermally throttled; jobs progress, checkpoint and finish, leaving results in
storage; the scheduler places queued jobs; results downlink over ground contacts; and
each node says why it does not compute more. Compute publishes ``compute_power_w`` for
power and thermal (what the payload draws is the heat it puts into the compute thermal
node); it reads the orbit, faults, power's cap and thermal's temperatures, and takes a
live testbed's measured drivers for mirrored nodes.

The package, along its seams:

- ``model``: ``ComputeModel``, the step in order, and the engine contract (fields,
  fleet totals, meta, commands);
- ``params``: ``ComputeParams`` (``[compute]``), the throttle and limit-reason codes, and
  the fleet totals compute declares;
- ``power_clock``: working accelerators, each node's load (``NodeLoad``), the DVFS clock
  under a cap (``dvfs_clock``), the thermal throttle;
- ``jobs``: ``JobRunner``, a job from arrival to checkpoint, finish, rollback or eviction;
- ``workload``: job kinds, seeded arrivals and the job table (``[workload]``);
- ``placement`` and ``scheduler``: the scheduling pass, and the policies that place jobs;
- ``radiation`` and ``upsets``: the upset rate and dose from where a node is
  (``[radiation]``), and what an upset does to a job or an idle device;
- ``downlink``: result storage drained over ground contacts;
- ``node_fields``: the per-node fields, the "why not more" reasons, a mirror's overwrite;
- ``commands``: the commands compute declares, and their handlers.

The rest of the repository imports what it needs from here.
"""

from twin.models.compute.commands import COMMANDED_QUEUE_HEADROOM, COMMANDS, ComputeCommands
from twin.models.compute.model import ComputeModel
from twin.models.compute.params import (
    ECLIPSE_AHEAD,
    FAULT,
    FLEET_TOTALS,
    HEAT,
    LIMIT_REASONS,
    NONE,
    POWER,
    QUEUE,
    RADIATION,
    STORAGE,
    THROTTLE_CODES,
    ComputeParams,
)
from twin.models.compute.power_clock import dvfs_clock
from twin.models.compute.radiation import RadiationParams
from twin.models.compute.upsets import MAX_PENDING_UPSETS
from twin.models.compute.workload import WorkloadParams

__all__ = [
    "COMMANDED_QUEUE_HEADROOM",
    "COMMANDS",
    "ECLIPSE_AHEAD",
    "FAULT",
    "FLEET_TOTALS",
    "HEAT",
    "LIMIT_REASONS",
    "MAX_PENDING_UPSETS",
    "NONE",
    "POWER",
    "QUEUE",
    "RADIATION",
    "STORAGE",
    "THROTTLE_CODES",
    "ComputeCommands",
    "ComputeModel",
    "ComputeParams",
    "RadiationParams",
    "WorkloadParams",
    "dvfs_clock",
]

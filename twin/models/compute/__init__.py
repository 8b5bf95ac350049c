"""The compute subsystem: each node a small data center, coupled to heat, power and radiation.

A package because compute is several models in one step: the node's accelerators and
their DVFS clock under a power cap and a thermal throttle, the jobs they run (the job
table, seeded arrivals, the scheduler that places them), the radiation upsets that roll
jobs back, and the result storage drained over ground contacts. ``ComputeModel``
(``model``) steps them in order; the rest of the repository imports from here.
"""

from twin.models.compute.commands import COMMANDS, ComputeCommands
from twin.models.compute.model import ComputeModel
from twin.models.compute.params import (
    FAULT,
    FLEET_TOTALS,
    HEAT,
    NONE,
    POWER,
    QUEUE,
    ComputeParams,
)
from twin.models.compute.power_clock import dvfs_clock
from twin.models.compute.radiation import RadiationParams
from twin.models.compute.upsets import MAX_PENDING_UPSETS
from twin.models.compute.workload import WorkloadParams

__all__ = [
    "COMMANDS",
    "FAULT",
    "FLEET_TOTALS",
    "HEAT",
    "MAX_PENDING_UPSETS",
    "NONE",
    "POWER",
    "QUEUE",
    "ComputeCommands",
    "ComputeModel",
    "ComputeParams",
    "RadiationParams",
    "WorkloadParams",
    "dvfs_clock",
]

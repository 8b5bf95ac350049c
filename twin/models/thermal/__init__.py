"""Thermal model: a four-node lumped network per satellite, stepped implicitly, all numpy.

Nodes: 0 radiator (deployed two-sided panel), 1 compute (chips, cold plates and coolant),
2 bus (structure and electronics, with a body-mounted radiator), 3 battery. Links form a
chain: radiator —pumped loop— compute —mount— bus —mount— battery, so each backward-Euler
step is a 4x4 tridiagonal solve done column-wise over the fleet (the chain's ends
eliminated into a 2x2 system for the middle two), with Newton iterations on the T⁴ terms.
Each accelerator's die (junction) and HBM sit above the compute node through a thermal
resistance each, quasi-steady (``junction``). Environment: direct Sun (attitude law),
Earth albedo and Earth infrared through view factors from altitude. Equations and
sizing: docs/models.md.

Modules, along the model's seams:

- ``params``: the ``[thermal]`` table (``ThermalParams``), node names, default limits;
- ``surfaces``: the radiator and bus radiator, heat absorbed from the environment and
  radiated to space;
- ``loop``: the pumped coolant loop's conductance and its radiator bypass valve;
- ``solver``: one implicit step (or the steady state) of the network;
- ``settle``: the starting state, steady with the valve and the heaters' thermostats;
- ``junction``: the die and HBM temperatures over the cold plate;
- ``model``: ``ThermalModel``, the subsystem that steps them, its command and totals.

This package exports what the rest of the twin uses; the modules' other names are its own.
"""

from twin.core.interfaces import BATTERY, BUS, COMPUTE, RADIATOR
from twin.models.thermal.loop import loop_conductance_w_k
from twin.models.thermal.model import COMMANDS, FLEET_TOTALS, ThermalModel
from twin.models.thermal.params import (
    BATTERY_LIMITS_K,
    BUS_LIMITS_K,
    COMPUTE_LIMITS_K,
    HBM_LIMITS_K,
    JUNCTION_LIMITS_K,
    NODE_NAMES,
    RADIATOR_LIMITS_K,
    ThermalParams,
)
from twin.models.thermal.settle import SETTLE_TOLERANCE_K

__all__ = [
    "BATTERY",
    "BATTERY_LIMITS_K",
    "BUS",
    "BUS_LIMITS_K",
    "COMMANDS",
    "COMPUTE",
    "COMPUTE_LIMITS_K",
    "FLEET_TOTALS",
    "HBM_LIMITS_K",
    "JUNCTION_LIMITS_K",
    "NODE_NAMES",
    "RADIATOR",
    "RADIATOR_LIMITS_K",
    "SETTLE_TOLERANCE_K",
    "ThermalModel",
    "ThermalParams",
    "loop_conductance_w_k",
]

"""Lifecycle: orbit decay, station keeping, disposal and ageing (issue 20).

- ``params``: the ``[lifecycle]`` table;
- ``density``: NRLMSIS 2.1 (pymsis, offline) or Vallado's table, orbit-averaged;
- ``decay``: mean-element decay, lifetime, station-keeping and disposal Δv;
- ``ageing``: arrays, battery fade (Wang et al. 2011), radiator coating, accelerators;
- ``model``: the model the registry builds (``LifecycleModel``, ``FLEET_TOTALS``).

Equations and sources: docs/models.md, "Lifecycle".
"""

from twin.models.lifecycle.model import COMMANDS, FLEET_TOTALS, STATE_LABELS, LifecycleModel
from twin.models.lifecycle.params import DISPOSAL_RULES, LifecycleParams

__all__ = ["COMMANDS", "DISPOSAL_RULES", "FLEET_TOTALS", "STATE_LABELS", "LifecycleModel",
           "LifecycleParams"]

"""Electrical power of every node: solar arrays, battery, heaters, loads and the power cap.

Per step and per satellite, all numpy: array output from the Sun's flux, the attitude law's
incidence, the step's mean sunlit fraction, degradation and the array's quasi-steady
temperature; loads (bus, battery heater, compute cold-plate heater, compute); the battery
takes the surplus or covers the deficit with its charge and discharge efficiencies. As the
state of charge nears its reserve the node caps compute power (``power_cap_w``, read by
compute on the next step) and says so with an event. Equations and sizing: docs/models.md.

Modules, along the model's seams:

- ``params``: the ``[power]`` table (``PowerParams``);
- ``array``: the solar arrays' output and temperature;
- ``heaters``: the battery and loop heaters and their thermostats;
- ``balance``: supply shared among loads and battery, over a step or its two segments;
- ``model``: ``PowerModel``, the subsystem that steps them, the power cap and its totals.

This package exports what the rest of the twin uses; the modules' other names are its own.
"""

from twin.models.power.model import FLEET_TOTALS, PowerModel
from twin.models.power.params import PowerParams

__all__ = ["FLEET_TOTALS", "PowerModel", "PowerParams"]

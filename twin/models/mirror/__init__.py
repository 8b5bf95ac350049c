"""The mirror: a twin node driven by a live hardware testbed, measured beside predicted.

A scenario's ``[mirror]`` table binds each testbed (by the name its bridge sends) to one
node and maps its parameters onto the node's quantities:

- drivers (``compute_power_w``, ``utilization_frac``, ...) REPLACE the model's inputs for
  that node. ``MirrorDrivers`` steps before compute, power and thermal and publishes the
  measured values (``DriverOutputs``); each model applies those of its own inputs (compute
  derives the node's clock, delivered FLOP/s and power from a measured utilization and
  takes a measured power; power takes measured bus and heater power), so the physics of
  that node runs on measured inputs and no model writes another's arrays;
- states (``temp_compute_k``, ``soc_frac``, ...) are only COMPARED: after every model has
  stepped, ``Mirror`` publishes measured, predicted and ``residual = measured - predicted``
  per state, and raises ``mirror_residual`` when ``|residual|`` passes its threshold.

Telemetry arrives between steps through ``Mirror.ingest`` (the server's ingest handler, the
``tm`` message of docs/protocol.md, checked by ``twin.protocol.telemetry``), judged sample by
sample; with no applied sample for ``lost_after_s`` the node falls back to the model (event
``mirror_lost``) until telemetry returns (``mirror_regained``).

Modules: ``bindings`` (the ``[mirror]`` table, unit conversion, physical bounds),
``ingest`` (judging and applying telemetry, the bridges' counters), ``drivers``
(``MirrorDrivers``) and ``states`` (``Mirror``: the comparison, events, status).
"""

from twin.models.mirror.bindings import MirrorBinding, MirrorParams
from twin.models.mirror.drivers import MirrorDrivers
from twin.models.mirror.states import COMMANDS, FLEET_TOTALS, Mirror

__all__ = ["COMMANDS", "FLEET_TOTALS", "Mirror", "MirrorBinding", "MirrorDrivers",
           "MirrorParams"]

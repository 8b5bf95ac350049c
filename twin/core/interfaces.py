"""What the models publish to each other during a step: one typed structure per writer.

Each model that others read declares its outputs here as a dataclass whose attributes carry
their unit in the name. The model owns its instance (``self.outputs``) and is the only one to
write it; the engine hands every model a :class:`twin.core.subsystem.StepContext` whose
attribute of the same name (``ctx.orbit``, ``ctx.power``, ...) is that instance. A model
declares which of them it reads (``reads``); the engine refuses to start when a model reads
outputs that no model publishes, or when two models publish the same outputs or the same
quantity name (``twin.core.registry``).

Reading a model stepped *later* gives its values of the last step (compute runs before
thermal and reads last step's chip temperature); before that model's first step, an
attribute is ``None``. Reading a model stepped earlier gives this step's values. Arrays are
the publishers' own, updated in place or replaced each step: read them within the step and
never write them.

A quantity its publisher may leave unset by design says so (``metadata={"optional":
True}``); any other still unset after the first step stops the twin at start-up.

Quantities are SI (docs/models.md): ``_km`` and ``_km_s`` where the astro code works in km.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # the types live with the models that make them
    from twin.models.environment import EarthView, SunlitStep

Array = np.ndarray


@dataclass(eq=False)
class OrbitOutputs:
    """Published by ``orbit``: where each node is and what it sees, at the step's end."""

    pos_gcrs_km: Array | None = None
    """(n, 3) GCRS position, km."""
    vel_gcrs_km_s: Array | None = None
    """(n, 3) GCRS velocity, km/s."""
    sun_gcrs_km: Array | None = None
    """(3,) the Sun's GCRS position, km."""
    sunlit_frac: Array | None = None
    """(n,) visible fraction of the Sun's disc, 1."""
    beta_deg: Array | None = None
    """(n,) Sun elevation above the orbit plane, degrees."""
    alt_km: Array | None = None
    """(n,) geodetic altitude, km."""
    lat_deg: Array | None = None
    """(n,) geodetic latitude, degrees."""
    lon_deg: Array | None = None
    """(n,) longitude, degrees."""
    in_contact: Array | None = None
    """(n_stations, n) bool: the station sees the node."""
    contact_station: Array | None = None
    """(n,) index of the best station in view, -1 none."""
    orbit_status: Array | None = None
    """(n,) SGP4 error code, 0 ok."""
    sun_along_km: Array | None = None
    """(n,) r·ŝ, the position along the Sun's direction, km."""
    r2_km2: Array | None = None
    """(n,) |r|², km²."""
    shadow_along_km: Array | None = None
    """(n,) r'·ŝ', km, in the space stretched along the polar axis where the shadowing
    ellipsoid (WGS84 plus the atmosphere's shadow height) is a sphere."""
    shadow_r2_km2: Array | None = None
    """(n,) |r'|², km², in that stretched space."""
    shadow_radius_km: float | None = None
    """Radius of that sphere, km (a + h)."""
    shadow_stretch: float | None = None
    """The stretch along the polar axis, k = (a + h) / (b + h), 1."""
    polar_axis_gcrs: Array | None = None
    """(3,) the Earth's rotation axis (ITRS z) in GCRS, unit."""
    shadow_atmosphere_km: float | None = None
    """The atmospheric shadow height the sunlit fraction was worked out with, km."""


@dataclass(eq=False)
class FaultOutputs:
    """Published by ``faults``: the injected fault state (changes only by command)."""

    accelerators_ok: Array | None = None
    """(n,) working accelerators."""
    radiator_health_frac: Array | None = None
    """(n,) radiator capacity left, 1."""
    solar_health_frac: Array | None = None
    """(n,) solar array output left, 1."""
    battery_health_frac: Array | None = None
    """(n,) battery capacity left, 1."""
    fault_flags: Array | None = None
    """(n,) bitmask of active faults."""


@dataclass(eq=False)
class DriverOutputs:
    """Published by ``mirror_drivers``: measured model inputs of live mirrored nodes.

    Each model whose input a testbed measures applies it itself for those nodes (compute
    its utilization and power, power its bus and heater power), so no model writes another's
    arrays. Empty (``mirror_sat`` of size 0) when no mirror is live.
    """

    mirror_sat: Array = field(default_factory=lambda: np.zeros(0, dtype=int))
    """(m,) node indices of live mirrors."""
    measured_drivers: dict[str, Array] = field(default_factory=dict)
    """Driver quantity (``compute_power_w``, ...) -> (m,) SI values, NaN where that mirror
    does not measure it."""


@dataclass(eq=False)
class LinkOutputs:
    """Published by ``links``: optical inter-satellite links. Optional: a scenario with no
    ``[links]`` table has none, and the readers then add nothing."""

    relay_bps: Array | None = field(default=None, metadata={"optional": True})
    """(n,) rate a node can relay to the ground over links to a node in contact, bit/s."""
    isl_power_w: Array | None = field(default=None, metadata={"optional": True})
    """(n,) electrical power the link terminals draw (and leave as heat in the bus), W."""
    link_peer: Array | None = field(default=None, metadata={"optional": True})
    """(n, T) each terminal's peer node, -1 for none (the ``link_peer`` field's array)."""
    link_capacity_bps: Array | None = field(default=None, metadata={"optional": True})
    """(n, T) each terminal's link capacity, bit/s (the ``link_capacity_bps`` field's)."""
    link_up: Array | None = field(default=None, metadata={"optional": True})
    """(n, T) bool, the terminal's link is up (not acquiring); multi-node jobs read the
    three to find connected groups and their bottleneck (compute's ``multinode``)."""
    link_relay_bps: Array | None = field(default=None, metadata={"optional": True})
    """(n, T) relay traffic of stored results offered to each terminal's link, bit/s:
    multi-node jobs' all-reduce gets what it leaves, down to a least share."""


@dataclass(eq=False)
class ComputeOutputs:
    """Published by ``compute``."""

    compute_power_w: Array | None = None
    """(n,) electrical power the compute payload demands, W."""
    accelerator_power_w: Array | None = field(default=None, metadata={"optional": True})
    """(n,) power one accelerator holding a job demands (the mean over those), a sleeping
    one's where none holds a job, 0 where none works, W: what heats the hottest die above
    the cold plate. Optional: a payload model with no accelerators leaves it unset, and
    thermal then puts the dies at the plate's temperature."""
    settle_payload_w: Callable[[Array], tuple[Array, Array]] | None = field(
        default=None, metadata={"optional": True})
    """For thermal's starting state (docs/models.md, "Starting state"): given (n,) plate
    temperatures, K, the payload power and one busy accelerator's power, (n,) W each, that
    this step's load draws with the thermal throttle holding its dies over that plate."""
    storage_backlog_bytes: Array | None = field(default=None, metadata={"optional": True})
    """(n,) result bytes stored on board, not yet downlinked, B: what links relay."""
    dose_gy: Array | None = field(default=None, metadata={"optional": True})
    """(n,) total ionizing dose since the start, behind the shielding, Gy (lifecycle ages
    the arrays on it)."""
    link_allreduce_bps: Array | None = field(default=None, metadata={"optional": True})
    """(n, T) mean load multi-node jobs' all-reduce put on each terminal's link over the
    step, bit/s (the links model gives the relay what it leaves and adds it to the
    utilization). Optional: None without multi-node jobs."""


@dataclass(eq=False)
class EnvironmentOutputs:
    """Published by ``environment``: sunlight over the step, solar flux and Earth view."""

    sunlit_step: SunlitStep | None = None
    """Visible Sun over the step (mean, ends, shadow-edge crossings)."""
    sun_along_step_km: Array | None = None
    """(n,) r·ŝ the step's sunlight was worked out from, km (last known where absent)."""
    solar_flux_w_m2: float | None = None
    """Solar flux at the Earth's distance from the Sun this step, W/m²."""
    earth_view: EarthView | None = None
    """Per-node Earth view factor and albedo-table position (altitude only)."""


@dataclass(eq=False)
class PowerOutputs:
    """Published by ``power``: the electrical balance, and the heat it leaves in the node."""

    power_cap_w: Array | None = None
    """(n,) cap on compute power, +inf none, W."""
    soc_frac: Array | None = None
    """(n,) battery state of charge, 1."""
    p_solar_w: Array | None = None
    """(n,) array output, W."""
    payload_power_w: Array | None = None
    """(n,) compute power served, W."""
    bus_power_w: Array | None = None
    """(n,) bus power served, W."""
    heater_power_w: Array | None = None
    """(n,) battery heater power served, W."""
    loop_heater_power_w: Array | None = None
    """(n,) loop heater power served, W."""
    battery_loss_w: Array | None = None
    """(n,) battery charge/discharge loss, W."""
    regulation_loss_w: Array | None = None
    """(n,) power regulation loss, W."""
    internal_heat_w: Array | None = field(default=None, metadata={"optional": True})
    """(3, n) [compute, bus, battery] internal heat while no heater runs, else None, W."""
    settle_heaters_w: Callable[[Array | None], tuple[Array, Array]] | None = None
    """Power's thermostats for thermal's starting state (docs/models.md, "Starting state")."""


THERMAL_NODES: tuple[str, ...] = ("radiator", "compute", "bus", "battery")
"""Thermal's nodes, in the order of the rows of ``ThermalOutputs.temp_block_k`` and
``temp_min_k`` and of the (4, n) temperatures ``PowerOutputs.settle_heaters_w`` is given."""
RADIATOR, COMPUTE, BUS, BATTERY = range(4)
"""Row indices of ``THERMAL_NODES``."""


@dataclass(eq=False)
class ThermalOutputs:
    """Published by ``thermal``: node temperatures at the step's end (``THERMAL_NODES``)."""

    temp_compute_k: Array | None = None
    """(n,) compute cold plate, K."""
    temp_radiator_k: Array | None = None
    """(n,) radiator, K."""
    temp_bus_k: Array | None = None
    """(n,) bus, K."""
    temp_battery_k: Array | None = None
    """(n,) battery, K."""
    temp_junction_k: Array | None = None
    """(n,) hottest accelerator die (junction), quasi-steady over the cold plate, K."""
    temp_hbm_k: Array | None = None
    """(n,) hottest accelerator's HBM stacks, quasi-steady over the cold plate, K."""
    die_resistance_k_w: Array | None = None
    """(2,) kelvin the junction and the HBM stand over the plate per watt of one
    accelerator's power, [junction, HBM], K/W."""
    temp_block_k: Array | None = None
    """(4, n) float32 block the four temperature fields are rows of, K."""
    temp_min_k: Array | None = None
    """(4,) per-row minimum of ``temp_block_k`` (NaN ignored), K."""


@dataclass(eq=False)
class LifecycleOutputs:
    """Published by ``lifecycle`` (steps after thermal, so the others read last step's):
    ageing factors and the orbit offsets of decay. Off, nothing ages: ones, zeros, none."""

    array_health_frac: Array | None = None
    """(n,) solar array output left from ageing and radiation, 1 (power multiplies)."""
    battery_capacity_frac: Array | None = None
    """(n,) battery capacity left from fade, 1 (power multiplies)."""
    radiator_absorptivity_rise: float | None = None
    """Rise of the radiator coating's solar absorptivity, 1 (thermal adds)."""
    accelerators_lost: Array | None = None
    """(n,) accelerators lost for good, count (faults takes them out of service)."""
    accelerators_lost_version: int | None = None
    """Changes whenever ``accelerators_lost`` does."""
    orbit_offset_nodes: Array | None = None
    """(m,) nodes whose orbit decay or manoeuvres moved them off their launch orbit."""
    orbit_radius_scale: Array | None = None
    """(n,) a / a0: mean orbit radius over the launch orbit's, 1."""
    orbit_phase_rad: Array | None = None
    """(n,) how far ahead along the orbit a lower, faster orbit has taken it, rad."""
    in_service: Array | None = field(default=None, metadata={"optional": True})
    """(n,) bool: nodes still operating (False: disposed, derelict or re-entered). None
    while the lifecycle is off: every node in service."""
    out_of_service_nodes: Array | None = None
    """(m,) nodes out of service (disposed, derelict, re-entered): compute and power draw
    nothing there and limits watch nothing (docs/models.md, "Out-of-service nodes").
    Empty while the lifecycle is off; a new array whenever the set changes."""


OUTPUTS: dict[str, type] = {
    "orbit": OrbitOutputs,
    "faults": FaultOutputs,
    "drivers": DriverOutputs,
    "links": LinkOutputs,
    "compute": ComputeOutputs,
    "environment": EnvironmentOutputs,
    "power": PowerOutputs,
    "thermal": ThermalOutputs,
    "lifecycle": LifecycleOutputs,
}
"""The step context's attribute for each outputs type (``ctx.orbit`` is OrbitOutputs)."""


def quantity_names(outputs: type) -> tuple[str, ...]:
    """The quantities an outputs type declares."""
    return tuple(f.name for f in dataclasses.fields(outputs))


def quantity_owners() -> dict[str, str]:
    """Quantity name -> the context attribute of the outputs that declares it.

    Raises:
        ValueError: Two outputs declare the same quantity (each has one writer).
    """
    owners: dict[str, str] = {}
    for slot, outputs in OUTPUTS.items():
        for name in quantity_names(outputs):
            if name in owners:
                raise ValueError(f"quantity {name!r} is declared by both {owners[name]!r} and "
                                 f"{slot!r} outputs: each quantity has one writer")
            owners[name] = slot
    return owners


def find_quantity(context: Any, name: str) -> Any:
    """The value of quantity ``name`` in a step context, None if unpublished.

    For what reads quantities by name (the mirror compares the states a scenario names);
    models read typed attributes.

    Raises:
        KeyError: No outputs declare ``name``.
    """
    return getattr(getattr(context, QUANTITY_OWNERS[name]), name)


QUANTITY_OWNERS = quantity_owners()

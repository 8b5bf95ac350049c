"""Mirror bindings: which testbed parameter maps onto which node quantity, in which unit.

A scenario's ``[mirror]`` table (``MirrorParams``) lists ``[[mirror.testbed]]`` bindings
(``MirrorBinding``): a testbed's parameters mapped onto the quantities of one node, as
drivers (model inputs, ``DRIVER_KEYS``) or compared states (``STATE_KEYS``). A parameter's
unit suffix says how it converts to the quantity's SI unit (``UNIT_SUFFIXES``); a
quantity's suffix gives the physical bounds a measurement must lie in
(``QUANTITY_BOUNDS``). ``BindingState`` is what the mirror keeps of one binding at run time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from twin.core.constants import KELVIN_PER_CELSIUS
from twin.scenario import InvalidField

# Unit suffix of a testbed parameter -> (SI suffix, scale, offset): si = raw * scale + offset.
UNIT_SUFFIXES = {
    "_k": ("_k", 1.0, 0.0), "_c": ("_k", 1.0, KELVIN_PER_CELSIUS),
    "_w": ("_w", 1.0, 0.0), "_mw": ("_w", 1e-3, 0.0), "_kw": ("_w", 1e3, 0.0),
    "_frac": ("_frac", 1.0, 0.0), "_pct": ("_frac", 0.01, 0.0),
    "_hz": ("_hz", 1.0, 0.0), "_s": ("_s", 1.0, 0.0),
}
# Quantities a testbed may drive (model inputs) and compare (model states), by name
# (twin.core.interfaces).
DRIVER_KEYS = ("compute_power_w", "utilization_frac", "heater_power_w", "bus_power_w")
STATE_KEYS = ("temp_compute_k", "temp_radiator_k", "temp_bus_k", "temp_battery_k", "soc_frac")

# Physical bounds of a measured quantity by its SI unit suffix, inclusive. A sample outside
# them is a broken sensor, a unit mistake or a hostile client, never a measurement: it is
# dropped as ``out_of_bounds``. A binding may set its own per quantity (``bounds``).
QUANTITY_BOUNDS: dict[str, tuple[float, float]] = {
    "_k": (3.0, 1000.0),     # above the 2.7 K sky; above aluminium's melting point (933 K)
    "_w": (0.0, 1.0e5),      # loads draw, never give; 100 kW: 16 eight-GPU nodes, ~ISS arrays
    "_frac": (0.0, 1.0),
    "_hz": (0.0, 1.0e12),
    "_s": (0.0, 1.0e9),
}
MAX_BOUND_ABS = 1.0e9
"""Largest magnitude a binding's own bound may have: keeps every product finite in f4 fields."""


def conversion(param: str, target: str) -> tuple[float, float]:
    """(scale, offset) turning parameter ``param`` into quantity ``target`` by unit suffix.

    Raises:
        ValueError: The suffixes are unknown or measure different things.
    """
    for suffix in sorted(UNIT_SUFFIXES, key=len, reverse=True):
        if param.endswith(suffix):
            si, scale, offset = UNIT_SUFFIXES[suffix]
            if target.endswith(si):
                return scale, offset
            raise ValueError(f"parameter {param!r} ({suffix[1:]}) cannot feed {target!r}")
    raise ValueError(f"parameter {param!r} has no known unit suffix "
                     f"({', '.join(s[1:] for s in UNIT_SUFFIXES)})")


@dataclass(frozen=True)
class MirrorBinding:
    """One ``[[mirror.testbed]]``: a testbed mirrored on one node.

    Attributes:
        name: The testbed name its bridge sends (``flatsat``, ``host``).
        node: Satellite name or index in the scenario.
        drivers: Parameter -> driven quantity (``{compute_power_w = "compute_power_w"}``).
        states: Parameter -> compared quantity (``{cold_plate_temp_c = "temp_compute_k"}``).
        thresholds: Compared quantity -> residual magnitude that raises an event (its unit).
        bounds: Mapped quantity -> ``[low, high]`` (SI, inclusive) replacing its physical
            bounds (``QUANTITY_BOUNDS``); samples outside are dropped as ``out_of_bounds``.
    """

    name: str
    node: str | int
    drivers: dict[str, str] = field(default_factory=dict)
    states: dict[str, str] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    bounds: dict[str, list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for table, allowed in (("drivers", DRIVER_KEYS), ("states", STATE_KEYS)):
            for param, target in getattr(self, table).items():
                if target not in allowed:
                    raise InvalidField(table, f"{param} -> {target!r}: {table} may map to "
                                       f"{', '.join(allowed)}")
                try:
                    conversion(param, target)
                except ValueError as exc:
                    raise InvalidField(table, str(exc)) from None
        for key, value in self.thresholds.items():
            if key not in self.states.values():
                raise InvalidField("thresholds", f"{key!r} is not one of the mapped states")
            if not isinstance(value, int | float) or not value > 0:
                raise InvalidField("thresholds", f"{key} = {value!r}: expected a number > 0")
        mapped = {*self.drivers.values(), *self.states.values()}
        for key, pair in self.bounds.items():
            if key not in mapped:
                raise InvalidField("bounds", f"{key!r} is not one of the mapped quantities")
            if not (isinstance(pair, list) and len(pair) == 2
                    and all(is_number(x) and abs(x) <= MAX_BOUND_ABS for x in pair)
                    and pair[0] < pair[1]):
                raise InvalidField("bounds", f"{key} = {pair!r}: expected [low, high], two "
                                   f"numbers with low < high, each within ±{MAX_BOUND_ABS:g}")

    def bounds_of(self, quantity: str) -> tuple[float, float]:
        """Inclusive SI bounds of a mapped quantity: this binding's own, else physical."""
        if quantity in self.bounds:
            low, high = self.bounds[quantity]
            return float(low), float(high)
        return default_bounds(quantity)


def default_bounds(quantity: str) -> tuple[float, float]:
    """Physical bounds of ``quantity`` by its unit suffix (``QUANTITY_BOUNDS``)."""
    for suffix, pair in QUANTITY_BOUNDS.items():
        if quantity.endswith(suffix):
            return pair
    raise ValueError(f"{quantity!r} has no known unit suffix")


def is_number(x: Any) -> bool:
    """A finite int or float, not a bool (TOML and msgpack both give bools)."""
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class MirrorParams:
    """The ``[mirror]`` table."""

    lost_after_s: float = field(default=3.0, metadata={"gt": 0.0, "max": 3600.0, "unit": "s"})
    max_sample_age_s: float = field(default=30.0, metadata={"gt": 0.0, "max": 86400.0,
                                                            "unit": "s"})
    default_threshold_k: float = field(default=5.0, metadata={"gt": 0.0, "unit": "K"})
    default_threshold_frac: float = field(default=0.05, metadata={"gt": 0.0, "unit": "1"})
    testbed: tuple[MirrorBinding, ...] = ()


@dataclass
class BindingState:
    """Run-time state of one binding: its node, conversions, newest measurements, liveness."""

    sat: int
    convert: dict[str, tuple[str, float, float]]  # param -> (quantity, scale, offset)
    bounds: dict[str, tuple[float, float]]  # quantity -> inclusive SI bounds
    measured: dict[str, float] = field(default_factory=dict)  # quantity -> SI value
    measured_utc: dict[str, float] = field(default_factory=dict)  # quantity -> its sample time
    # quantity -> its sensor's noise (SI, one standard deviation) as the bridge declares it
    noise: dict[str, float] = field(default_factory=dict)
    # packet -> (time, sequence count) of the newest applied sample
    newest_t: dict[str, tuple[float, float]] = field(default_factory=dict)
    last_applied_wall: float = -math.inf
    newest_sample_utc: float = math.nan
    applied: int = 0
    live: bool = False
    ever_live: bool = False
    lost_count: int = 0
    over: dict[str, bool] = field(default_factory=dict)


def unit_of(quantity: str) -> str:
    """The unit of a quantity by its SI suffix, as field catalogs and logs show it."""
    for suffix, unit in (("_k", "K"), ("_w", "W"), ("_frac", "1"), ("_hz", "Hz"), ("_s", "s")):
        if quantity.endswith(suffix):
            return unit
    return ""

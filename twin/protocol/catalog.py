"""How each field and fleet total is read and shown: the catalogs ``meta`` carries.

A client draws from these, never from a name's suffix: the field catalog entry of every
``state`` field gives its unit, its kind (a quantity, an enum with labels, a bitmask, a
flag, an index), its display unit with the scale and offset to reach it, and its limits;
the totals catalog does the same for every key of the header's ``fleet`` map. Both are
documented in docs/protocol.md.

Display rule, in one place: kelvin show as °C, fractions (unit ``1``) as %, and watts,
joules, bytes, bits per second and FLOP/s with an SI prefix chosen by the value
(``prefix: true``). Everything else shows in its own unit.
"""

from __future__ import annotations

from typing import Any

from twin.core.constants import KELVIN_PER_CELSIUS

KINDS_BY_UNIT = {"code": "enum", "bitmask": "bitmask", "bool": "flag", "index": "index"}
"""Fields whose unit names a kind other than a physical quantity."""

PREFIXED_UNITS = frozenset({"W", "J", "B", "bit/s", "FLOP/s"})


def kind_of(unit: str) -> str:
    """``quantity``, ``enum``, ``bitmask``, ``flag`` or ``index``, from a catalog unit."""
    return KINDS_BY_UNIT.get(unit, "quantity")


def display_of(unit: str) -> dict[str, Any]:
    """How a value in ``unit`` is shown: ``shown = value * scale + offset`` in ``unit``.

    ``prefix`` says the viewer picks an SI prefix for the value (``12.3 kW``).
    """
    if unit == "K":
        return {"unit": "°C", "scale": 1.0, "offset": -KELVIN_PER_CELSIUS, "prefix": False}
    if unit == "1":
        return {"unit": "%", "scale": 100.0, "offset": 0.0, "prefix": False}
    if unit == "PFLOP/s":
        return {"unit": "FLOP/s", "scale": 1e15, "offset": 0.0, "prefix": True}
    return {"unit": unit, "scale": 1.0, "offset": 0.0, "prefix": unit in PREFIXED_UNITS}





def labels_entry(labels: dict[int, str]) -> dict[str, str]:
    """Labels as the catalog carries them: decimal-string keys, as msgpack's defaults and
    JSON allow (``{"1": "thermal"}``)."""
    return {str(int(code)): str(name) for code, name in labels.items()}


def total_entry(unit: str, description: str,
                labels: dict[int, str] | None = None) -> dict[str, Any]:
    """The totals catalog entry ``meta.totals[name]`` of a fleet total.

    Args:
        unit, description: As the model's registry entry declares them.
        labels: Names of an enum total's codes (``scheduler_policy_code``).
    """
    return {"unit": unit, "kind": kind_of(unit), "description": description,
            "display": display_of(unit), "labels": labels_entry(labels or {})}

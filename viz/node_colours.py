"""How the 3D viewer paints and flags nodes: colour fields, colour tables, alarm flags.

Pure numpy, no rendering, no physics: a field from ``meta``'s catalog and its published
limits become one colour per node (a colour range for a quantity, one colour per named code
for an enum), dimmed in eclipse; published values past published alarm limits, and the
twin's own verdicts, flag a node. ``viz.fleet_scene`` writes the results into VTK.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from viz.quantity import Quantity

# Kinds with nothing to colour by: an index points into a list, a bitmask sums flags.
# (An enum colours by category, one colour per named code.) For a twin whose catalog says
# no kind, the units of those kinds, and of an enum, whose codes it does not name either.
_NON_SCALAR_KINDS = frozenset({"index", "bitmask"})
_NON_SCALAR_UNITS = frozenset({"code", "index", "bitmask"})
# Preferred colour fields, by exact name, in order; the first present in meta is the
# default (else the first with limits, else the first).
PREFERRED_FIELDS = ("temp_compute_k", "soc_frac", "utilization_frac", "delivered_flop_s",
                    "beta_deg", "alt_km")
# Brightness of a node in full umbra relative to full sun (eclipse dimming).
NIGHT_BRIGHTNESS = 0.4
# Fraction of the colormap skipped at its dark end: the bottom of "turbo" is near-black,
# invisible against space (and more so once dimmed in eclipse).
COLORMAP_FLOOR = 0.1
# Padding beyond a limit at the end of the colour range, as a fraction of the range, so
# the limit's mark on the bar sits inside it.
LIMIT_PAD_FRAC = 0.05
# Colour of a node whose field value is missing or not finite.
NO_DATA_RGB = (110, 110, 110)
# An enum's colours come from this much of the colour table, from its cold end: the top
# of "turbo" is a dark red, hard to see against space and easily read as an alarm.
CATEGORY_SPAN = 0.8
CATEGORY_CMAP = "turbo"
# Colour maps by what a field means, so a colour reads the right way round: an empty
# battery red and a full one green; cold blue and hot red; "more" of a fraction, a rate
# or anything else brighter (a sequential map). Each with the part of it that shows
# against black space (viridis starts near black).
CHARGE_CMAP = ("RdYlGn", 0.0)
TEMPERATURE_CMAP = ("RdYlBu_r", 0.0)
SEQUENTIAL_CMAP = ("viridis", 0.2)
# Display units of temperatures (the catalog shows kelvin as °C).
_TEMPERATURE_UNITS = frozenset({"K", "°C", "degC"})


@dataclass(frozen=True)
class ColourField:
    """A per-satellite numeric field from meta's catalog that the viewer can colour by."""

    name: str
    unit: str
    description: str = ""
    limits: Mapping[str, float] = field(default_factory=dict)
    quantity: Quantity | None = None

    @property
    def reads(self) -> Quantity:
        """How its values read (the catalog entry; a bare number without one)."""
        return self.quantity or Quantity(self.name, self.unit)

    @property
    def categorical(self) -> bool:
        """An enum: one colour per code, named by the catalog's labels."""
        return self.reads.kind == "enum"


def colour_fields(meta: Mapping[str, Any]) -> list[ColourField]:
    """Per-satellite scalar fields of meta's catalog, in catalog order.

    Quantities, flags and enums (coloured by category); vectors (positions),
    station-by-satellite tables, indices and bitmasks are left out, as are codes whose
    kind the catalog does not say (an old twin).
    """
    out = []
    for entry in meta.get("fields", []):
        try:
            shape = list(entry["shape"])
            if not entry.get("per_sat", False) or len(shape) != 1:
                continue
            quantity = Quantity.from_entry(str(entry["name"]), entry)
            if quantity.kind in _NON_SCALAR_KINDS or (
                    entry.get("kind") is None and entry.get("unit") in _NON_SCALAR_UNITS):
                continue
            limits = {str(k): float(v) for k, v in (entry.get("limits") or {}).items()
                      if isinstance(v, int | float) and math.isfinite(v)}
            out.append(ColourField(str(entry["name"]), str(entry.get("unit", "")),
                                   str(entry.get("description", "")), limits, quantity))
        except (KeyError, TypeError, ValueError):
            continue  # a malformed catalog entry is skipped, not fatal
    return out


def default_field(fields: Sequence[ColourField]) -> str | None:
    """The field to colour by when the user named none."""
    names = [f.name for f in fields]
    for name in PREFERRED_FIELDS:
        if name in names:
            return name
    for info in fields:
        if info.limits:
            return info.name
    return names[0] if names else None


def colormap_for(info: ColourField) -> tuple[str, float]:
    """The colour map (matplotlib name) and its floor that fit a field's meaning.

    State of charge (``soc_*`` or a description saying charge): red to green.
    Temperatures (a kelvin or °C field): blue to red. Anything else, fractions and
    utilization included: sequential (viridis), brighter for more.
    """
    reads = info.reads
    text = f"{info.name} {info.description}".lower()
    if info.name.startswith("soc") or "state of charge" in text:
        return CHARGE_CMAP
    if reads.unit in _TEMPERATURE_UNITS or reads.display_unit in _TEMPERATURE_UNITS:
        return TEMPERATURE_CMAP
    return SEQUENTIAL_CMAP


def colour_range(info: ColourField, values: np.ndarray,
                 previous: tuple[float, float] | None = None) -> tuple[float, float]:
    """The value range the colour bar spans.

    Limits fix an end where the field has them (the lowest ``*_low`` limit, the highest
    ``*_high`` limit), so the bar's ends mean "alarm". Fractions span 0..1. Other ends
    follow the data and only ever widen (``previous``), so colours do not flicker.
    """
    lows = [v for k, v in info.limits.items() if k.endswith("_low")]
    highs = [v for k, v in info.limits.items() if k.endswith("_high")]
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    data_lo = float(finite.min()) if finite.size else math.nan
    data_hi = float(finite.max()) if finite.size else math.nan
    if previous is not None:
        data_lo = min(data_lo, previous[0]) if math.isfinite(data_lo) else previous[0]
        data_hi = max(data_hi, previous[1]) if math.isfinite(data_hi) else previous[1]
    fraction = info.unit == "1"  # the catalog's unit of a fraction
    lo = min(lows) if lows else (0.0 if fraction else data_lo)
    hi = max(highs) if highs else (1.0 if fraction else data_hi)
    if math.isfinite(lo) and math.isfinite(hi) and hi > lo:
        pad = LIMIT_PAD_FRAC * (hi - lo)
        lo, hi = lo - pad * bool(lows), hi + pad * bool(highs)
    if not math.isfinite(lo):
        lo = hi if math.isfinite(hi) else 0.0
    if not math.isfinite(hi):
        hi = lo
    if hi <= lo:
        half = max(abs(lo) * 0.05, 0.5)
        lo, hi = lo - half, hi + half
    return float(lo), float(hi)


def colormap_table(name: str = "turbo", n: int = 256,
                   floor: float = COLORMAP_FLOOR) -> np.ndarray:
    """An ``(n, 3)`` uint8 colour table sampled from a matplotlib colormap.

    Args:
        name: matplotlib colormap name.
        n: Table length.
        floor: Fraction of the colormap's low end left out (its darkest colours).
    """
    import matplotlib  # only for its colormap tables

    cmap = matplotlib.colormaps[name]
    return np.round(cmap(np.linspace(floor, 1.0, n))[:, :3] * 255.0).astype(np.uint8)


def field_rgb(values: np.ndarray, clim: tuple[float, float], table: np.ndarray,
              out: np.ndarray | None = None) -> np.ndarray:
    """Map values to ``(n, 3)`` uint8 colours; out-of-range values take the end colours."""
    lo, hi = clim
    # Infinite values (an uncapped power cap) take the end colours; NaN means no data.
    values = np.nan_to_num(np.asarray(values, dtype=float), nan=np.nan, posinf=hi, neginf=lo)
    n = len(table)
    with np.errstate(invalid="ignore"):
        idx = np.floor((values - lo) / (hi - lo) * n)
    finite = np.isfinite(idx)
    idx = np.clip(np.where(finite, idx, 0), 0, n - 1).astype(np.intp)
    if out is None:
        out = np.empty((len(values), 3), dtype=np.uint8)
    np.take(table, idx, axis=0, out=out)
    out[~finite] = NO_DATA_RGB
    return out


def category_colours(info: ColourField, table: np.ndarray) -> tuple[list[int], np.ndarray]:
    """The codes an enum's catalog names and a colour each, ``(codes, (k, 3) uint8)``.

    The colours are spread evenly over the first ``CATEGORY_SPAN`` of the colour table in
    code order (the lowest code at the cold end), so the nodes and the bar's swatches read
    alike. Codes the catalog does not name draw as no data.
    """
    codes = sorted(info.reads.labels)
    if not codes:
        return [], np.zeros((0, 3), np.uint8)
    last = CATEGORY_SPAN * (len(table) - 1)
    picks = np.round(np.linspace(0, last, len(codes)) if len(codes) > 1
                     else np.array([last / 2])).astype(np.intp)
    return codes, np.asarray(table)[picks].astype(np.uint8)


def category_rgb(values: np.ndarray, codes: Sequence[int], colours: np.ndarray,
                 out: np.ndarray | None = None) -> np.ndarray:
    """Map enum codes to ``(n, 3)`` uint8 colours; unnamed codes and NaN draw as no data."""
    values = np.asarray(values)
    if out is None:
        out = np.empty((len(values), 3), dtype=np.uint8)
    out[:] = NO_DATA_RGB
    with np.errstate(invalid="ignore"):
        for code, colour in zip(codes, colours, strict=True):
            out[values == code] = colour
    return out


def eclipse_dim(rgb: np.ndarray, sunlit_frac: np.ndarray | None,
                night_brightness: float = NIGHT_BRIGHTNESS) -> np.ndarray:
    """Darken nodes in the Earth's shadow, in place: full sun 1, umbra ``night_brightness``."""
    if sunlit_frac is None:
        return rgb
    sun = np.clip(np.nan_to_num(np.asarray(sunlit_frac, dtype=np.float32), nan=1.0), 0.0, 1.0)
    scale = night_brightness + (1.0 - night_brightness) * sun
    rgb[:] = np.round(rgb * scale[:, None]).astype(np.uint8)
    return rgb


# The twin's own per-node verdicts that flag a node, by exact name (docs/protocol.md): the
# value at or past which it is flagged. ``fault_flags``: any fault bit; ``limit_level``:
# 2, the limit monitor's alarm; ``status``: any SGP4 error code.
FLAG_FIELDS = {"fault_flags": 1, "limit_level": 2, "status": 1}


def alarm_mask(arrays: Mapping[str, np.ndarray], fields: Sequence[ColourField],
               n_sats: int) -> np.ndarray:
    """Which nodes to flag as in alarm, ``(n,)`` bool.

    A node is flagged when any per-satellite field is at or beyond one of its published
    ``alarm_low``/``alarm_high`` limits, or when one of the twin's own verdicts says so
    (:data:`FLAG_FIELDS`: a fault bit set, the limit monitor at alarm, an orbit that could
    not be propagated).
    The viewer only compares published numbers with published limits; it models nothing.
    """
    mask = np.zeros(n_sats, dtype=bool)
    for info in fields:
        values = arrays.get(info.name)
        if values is None or values.shape != (n_sats,):
            continue
        if "alarm_high" in info.limits:
            mask |= values >= info.limits["alarm_high"]
        if "alarm_low" in info.limits:
            mask |= values <= info.limits["alarm_low"]
    for name, at_least in FLAG_FIELDS.items():
        values = arrays.get(name)
        if values is not None and values.shape == (n_sats,):
            mask |= values >= at_least
    return mask

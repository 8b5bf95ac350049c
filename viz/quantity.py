"""How both viewers show a value: a ``meta`` catalog entry made into text, one way everywhere.

The twin says in ``meta`` what every field and fleet total is (docs/protocol.md,
"Catalogs"): its unit, its kind (a quantity, an enum, a bitmask, a flag, an index), the
names of its codes or bits, and how to show it (``value * scale + offset`` in a display
unit, with an SI prefix picked by size where ``prefix`` says so). :class:`Quantity` is one
such entry; :class:`Catalog` holds them all for a ``meta``. Nothing here reads a unit from
a name: an entry the twin did not describe (an old twin) shows its raw unit string, or a
bare number.

Text never gets cut silently: :func:`fit` shortens a value that does not fit its width
and ends it with ``…``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

ELLIPSIS = "…"
NO_DATA = "—"
KINDS = ("quantity", "enum", "bitmask", "flag", "index")
MAX_INFINITE_CHARS = 24
"""The longest meaning of +inf taken from a catalog (a twin's text, kept short)."""
# SI prefixes a prefixed display unit may take (kW, MW, PFLOP/s), largest first.
SI_PREFIXES = ((18, "E"), (15, "P"), (12, "T"), (9, "G"), (6, "M"), (3, "k"))
# How a display unit is written after a number: degrees as the sign, counts bare.
SYMBOLS = {"deg": "°", "count": "", "1": ""}
# Display units shown with one decimal whatever the size (temperatures, percentages, angles).
ONE_DECIMAL = frozenset({"°C", "K", "%", "°"})
# Past this size a number without a prefix shows in powers of ten, not fifteen digits.
GENERAL_ABOVE = 1e6

# Short names for well-known fields and totals (table headings, HUD lines). Anything else
# gets one from its name: see :meth:`Quantity.label`.
SHORT_LABELS = {
    "lat_deg": "Lat", "lon_deg": "Lon", "alt_km": "Alt", "sunlit_frac": "Sun",
    "beta_deg": "Beta", "soc_frac": "SOC", "contact_station": "Contact",
    "temp_compute_k": "T comp", "temp_radiator_k": "T rad", "temp_battery_k": "T batt",
    "temp_bus_k": "T bus", "power_cap_w": "P cap", "utilization_frac": "Util",
    "delivered_flop_s": "Compute", "throttle_code": "Throttle",
    "limit_reason": "Limited by", "compute_cap_w": "Cap", "fault_flags": "Faults",
    "limit_level": "Limit", "compute_power_w": "P comp",
    # Fleet totals.
    "delivered_pflop_s": "Compute", "peak_pflop_s": "Peak", "goodput_frac": "Goodput",
    "p_solar_total_w": "Solar", "p_load_total_w": "Load", "n_in_eclipse": "Eclipse",
    "n_in_contact": "Contact", "queue_length": "Queue", "temp_compute_max_k": "T comp max",
    "soc_min_frac": "SOC min", "n_limit_alarm": "Nodes alarm", "n_limit_warning": "warning",
    "soc_mean_frac": "SOC mean", "temp_battery_min_k": "T batt min",
}
# Words that are acronyms: upper case in a label made from a name (``in_saa``: ``In SAA``).
ACRONYMS = {"soc": "SOC", "saa": "SAA", "seu": "SEU", "hbm": "HBM", "gcrs": "GCRS",
            "itrs": "ITRS", "isl": "ISL", "utc": "UTC", "cpu": "CPU", "gpu": "GPU"}
# The name ending a unit usually gets in a field's name (``_k`` for K): dropped from labels.
NAME_TOKENS = {"1": "frac", "count": "", "accelerator-h": "accel_h"}


def fit(text: str, width: int | None) -> str:
    """``text``, or its first ``width - 1`` characters and ``…`` when it is longer."""
    if width is None or len(text) <= width:
        return text
    return text[:max(width - 1, 0)].rstrip(" ,") + ELLIPSIS if width > 0 else ""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and \
        not isinstance(value, bool | np.bool_)


@dataclass(frozen=True)
class Scale:
    """Numbers in one display unit: ``shown = value * factor + offset``, ``decimals`` places.

    ``decimals < 0`` shows four significant digits (``1.234e+09``), for big numbers
    without an SI prefix.
    """

    unit: str = ""
    factor: float = 1.0
    offset: float = 0.0
    decimals: int = 2

    def convert(self, value: Any) -> Any:
        """Values (a number or an array) in the display unit."""
        return value * self.factor + self.offset

    @property
    def suffix(self) -> str:
        """What follows a number: `` °C``, ``°`` (no space), or nothing."""
        if not self.unit:
            return ""
        return self.unit if self.unit.startswith("°") and self.unit != "°C" else f" {self.unit}"

    def numbers(self, values: Iterable[float]) -> list[str]:
        """Each value in the display unit, without the unit (a table column).

        ``tolist()`` of an array is the fast input: plain floats format several times
        faster than numpy scalars. NaN shows ``—``, infinity ``∞``.
        """
        factor, offset, decimals = self.factor, self.offset, self.decimals
        finite = math.isfinite
        out = []
        for v in values:
            if not finite(v):
                out.append(NO_DATA if v != v else "∞" if v > 0 else "-∞")
            elif decimals < 0:
                out.append(f"{v * factor + offset:.4g}")
            else:
                # Adding 0.0 turns -0.0 into 0.0: a value that rounds to zero has no sign.
                out.append(f"{round(v * factor + offset, decimals) + 0.0:.{decimals}f}")
        return out

    def number(self, value: float) -> str:
        return self.numbers((float(value),))[0]

    def text(self, value: float, width: int | None = None) -> str:
        """One value with its unit (``12.3 kW``), shortened visibly to ``width``."""
        number = self.number(value)
        return fit(number if number == NO_DATA else number + self.suffix, width)


def _decimals(unit: str, typical: float, integer: bool) -> int:
    """Places after the point: three significant digits at the size of ``typical``."""
    if unit in ONE_DECIMAL:
        return 1
    if integer:
        return 0
    if not math.isfinite(typical) or typical == 0.0:
        return 2
    if typical >= GENERAL_ABOVE:
        return -1
    return 2 if typical < 10 else 1 if typical < 100 else 0


def _int_keys(labels: Any) -> dict[int, str]:
    """Labels with int keys (msgpack keeps them, JSON makes them strings)."""
    out = {}
    for key, name in (labels or {}).items() if isinstance(labels, Mapping) else ():
        try:
            out[int(key)] = str(name)
        except (TypeError, ValueError):
            continue
    return out


@dataclass(frozen=True)
class Quantity:
    """One field or fleet total as the catalog describes it, and how it reads.

    Attributes:
        name: The field or fleet key.
        unit: The unit of the values on the wire (``K``, ``W``, ``1``, ``code``).
        kind: ``quantity``, ``enum``, ``bitmask``, ``flag`` or ``index``.
        labels: Code (enum) or bit value (bitmask) to name.
        display_unit: The unit a person reads (``°C``, ``%``, ``W``).
        scale: Display value = ``value * scale + offset``.
        offset: See ``scale``.
        prefix: Pick an SI prefix by size (``W`` → ``kW``, ``MW``).
        integer: Whole numbers on the wire (an int dtype): no decimals.
        description: One line from the catalog.
        limits: ``warn_high``, ``alarm_low``, ... in the wire unit.
        infinite: What +inf reads as (``none``: no cap), where the catalog says; else ``∞``.
    """

    name: str
    unit: str = ""
    kind: str = "quantity"
    labels: Mapping[int, str] = field(default_factory=dict)
    display_unit: str = ""
    scale: float = 1.0
    offset: float = 0.0
    prefix: bool = False
    integer: bool = False
    description: str = ""
    limits: Mapping[str, float] = field(default_factory=dict)
    infinite: str = ""

    @classmethod
    def from_entry(cls, name: str, entry: Mapping[str, Any] | None) -> Quantity:
        """From a ``meta.fields`` entry or a ``meta.totals`` value.

        Keys an old twin does not send fall back to its raw unit, shown as it is (no
        display rule), and to the dtype's kind (a bool is a flag, anything else a number).
        """
        entry = entry if isinstance(entry, Mapping) else {}
        unit = str(entry.get("unit") or "")
        dtype = str(entry.get("dtype", ""))
        kind = entry.get("kind")
        if kind not in KINDS:
            kind = "flag" if dtype == "|b1" else "quantity"
        display = entry.get("display") if isinstance(entry.get("display"), Mapping) else {}

        def number(key: str, default: float) -> float:
            value = display.get(key, default)
            return float(value) if _is_number(value) and math.isfinite(value) else default

        limits = {str(k): float(v) for k, v in (entry.get("limits") or {}).items()
                  if _is_number(v)} if isinstance(entry.get("limits"), Mapping) else {}
        return cls(name, unit, str(kind), _int_keys(entry.get("labels")),
                   str(display.get("unit", unit)), number("scale", 1.0), number("offset", 0.0),
                   bool(display.get("prefix", False)), dtype[1:2] in ("i", "u"),
                   str(entry.get("description", "")), limits,
                   str(entry.get("infinite") or "")[:MAX_INFINITE_CHARS])

    # -- units ------------------------------------------------------------------------

    def scale_for(self, typical: float = math.nan, *, native: bool = False,
                  integer: bool | None = None) -> Scale:
        """The display scale for values about ``typical`` in size (wire unit).

        Args:
            typical: A magnitude in the wire unit (the largest of a column), to pick an SI
                prefix and the decimals; NaN when none is known.
            native: Show the wire unit itself (``K`` for a temperature shown in °C).
            integer: Whole numbers (no decimals); default: the field's dtype says.
        """
        integer = self.integer if integer is None else integer
        if native:
            unit, factor, offset = SYMBOLS.get(self.unit, self.unit), 1.0, 0.0
        else:
            unit = SYMBOLS.get(self.display_unit, self.display_unit)
            factor, offset = self.scale, self.offset
        shown = abs(typical * factor + offset) if math.isfinite(typical) else math.nan
        if self.prefix and not native:
            exponent = 0
            if math.isfinite(shown) and shown > 0:
                exponent = next((e for e, _ in SI_PREFIXES if shown >= 10.0 ** e), 0)
            if exponent:
                name = dict(SI_PREFIXES)[exponent]
                shown /= 10.0 ** exponent
                return Scale(name + unit, factor / 10.0 ** exponent, offset / 10.0 ** exponent,
                             _decimals("", shown, False))
            integer = integer and factor == 1.0
        integer = integer and factor == 1.0 and offset == 0.0
        return Scale(unit, factor, offset, _decimals(unit, shown, integer))

    def unit_text(self, typical: float = math.nan, *, native: bool = False) -> str:
        """The unit a person reads for values about ``typical`` (``°C``, ``kW``, ``%``)."""
        if self.kind != "quantity":
            return ""
        return self.scale_for(typical, native=native).unit

    def label(self, width: int | None = None) -> str:
        """A short name: well-known ones (``T comp``), else the name without its unit.

        The unit's usual ending comes from the catalog's unit (``coolant_pressure_pa``
        with unit ``Pa`` reads ``Coolant pressure``), never guessed from the name.
        """
        text = SHORT_LABELS.get(self.name)
        if text is None:
            stem = self.name
            token = NAME_TOKENS.get(self.unit, self.unit.lower().replace("/", "_"))
            if token and stem.endswith(f"_{token}"):
                stem = stem[: -len(token) - 1]
            if self.unit == "count" and stem.startswith("n_"):
                stem = stem[2:]
            prefix = ""
            if stem.startswith("temp_"):
                prefix, stem = "T ", stem[5:]
            words = prefix + " ".join(ACRONYMS.get(word, word) for word in stem.split("_")
                                      if word)
            words = words.strip() or self.name
            text = words[:1].upper() + words[1:]
        return fit(text, width)

    # -- codes --------------------------------------------------------------------------

    def label_of(self, code: Any) -> str:
        """An enum's name for ``code`` (the number itself when the catalog has none)."""
        if not _is_number(code) or not math.isfinite(code):
            return NO_DATA
        return self.labels.get(int(code), str(int(code)))

    def bit_names(self, mask: Any) -> list[str]:
        """Names of the bits set in ``mask``, low bit first; unnamed bits as numbers."""
        if not _is_number(mask) or not math.isfinite(mask):
            return []
        mask, names = int(mask), []
        for bit in sorted(self.labels):
            if bit > 0 and mask & bit:
                names.append(self.labels[bit])
                mask &= ~bit
        bit = 1
        while mask > 0:
            if mask & bit:
                names.append(str(bit))
                mask &= ~bit
            bit <<= 1
        return names

    # -- text ---------------------------------------------------------------------------

    def format(self, value: Any, width: int | None = None, *, native: bool = False) -> str:
        """One value as a person reads it: ``80.0 °C``, ``46.0 %``, ``1.23 PFLOP/s``.

        Args:
            value: In the wire unit; an enum code, a bitmask, a bool, a number.
            width: Characters at most; longer text ends in ``…``.
            native: The wire unit instead of the display unit (``353.1 K``).
        """
        if isinstance(value, bool | np.bool_) or self.kind == "flag":
            return fit("yes" if value else "no", width)
        if not _is_number(value):
            return fit(str(value), width)
        if self.kind == "enum":
            return fit(self.label_of(value), width)
        if self.kind == "bitmask":
            return fit("+".join(self.bit_names(value)) or "none", width)
        if self.kind == "index":
            return fit(str(int(value)) if math.isfinite(value) and value >= 0 else NO_DATA,
                       width)
        # A whole count shows no decimals (totals may travel as floats: ``3.0``).
        if self.infinite and value == math.inf:
            return fit(self.infinite, width)
        whole = isinstance(value, int | np.integer) or (
            self.unit == "count" and float(value).is_integer())
        integer = True if whole else None
        scale = self.scale_for(abs(float(value)), native=native, integer=integer)
        return scale.text(float(value), width)

    def format_array(self, values: Any, width: int | None = None, *,
                     scale: Scale | None = None) -> list[str]:
        """Each value without the unit (a table column shows it in its heading).

        Numbers share one scale, picked from the largest (or ``scale``); codes show their
        names, bitmasks their bits' names, flags ``yes`` or nothing. Each text is shortened
        visibly to ``width``.
        """
        array = np.asarray(values)
        listed = array.tolist() if array.ndim else [array.item()]
        if self.kind == "flag":
            texts = ["yes" if v else "" for v in listed]
        elif self.kind == "enum":
            texts = [self.label_of(v) for v in listed]
        elif self.kind == "bitmask":
            texts = ["+".join(self.bit_names(v)) if _is_number(v) and math.isfinite(v)
                     else NO_DATA for v in listed]
        elif self.kind == "index":
            texts = [str(int(v)) if math.isfinite(v) and v >= 0 else NO_DATA for v in listed]
        else:
            if scale is None:
                scale = self.scale_for(typical_of(array))
            texts = scale.numbers(float(v) for v in listed)
            if self.infinite:
                texts = [self.infinite if v == math.inf else t
                         for v, t in zip(listed, texts, strict=True)]
        return texts if width is None else [fit(t, width) for t in texts]

    def format_vector(self, values: Any, width: int | None = None) -> str:
        """A short vector in one scale with the unit once: ``-6378, 1657, 2130 km``."""
        array = np.asarray(values, dtype=float).reshape(-1)
        scale = self.scale_for(typical_of(array))
        return fit(", ".join(scale.numbers(array.tolist())) + scale.suffix, width)

    def difference(self, value: float, width: int | None = None) -> str:
        """A signed difference (a residual): no zero offset, so °C differences show in
        the wire unit (K), and a percentage difference in percentage points (``pp``)."""
        if not _is_number(value) or not math.isfinite(value):
            return NO_DATA
        native = self.offset != 0.0
        scale = self.scale_for(abs(float(value)), native=native, integer=False)
        if not native and scale.unit == "%":
            scale = Scale("pp", scale.factor, 0.0, scale.decimals)
        scale = Scale(scale.unit, scale.factor, 0.0, max(scale.decimals, 2)
                      if scale.unit in ONE_DECIMAL else scale.decimals)
        text = scale.text(abs(float(value)))
        return fit(("-" if value < 0 else "+") + text, width)

    def limits_text(self, width: int | None = None) -> str:
        """``warn >80.0 °C  alarm >90.0 °C``, lowest bound first."""
        parts = []
        for key, value in sorted(self.limits.items(), key=lambda item: item[1]):
            level, _, side = key.partition("_")
            parts.append(f"{level} {'<' if side == 'low' else '>'}{self.format(value)}")
        return fit("  ".join(parts), width)


def typical_of(values: Any) -> float:
    """The largest finite magnitude of ``values`` (NaN when none)."""
    array = np.asarray(values)
    if array.dtype.kind not in "iuf" or not array.size:
        return math.nan
    magnitude = np.abs(array[np.isfinite(array)]) if array.dtype.kind == "f" else np.abs(array)
    return float(magnitude.max()) if magnitude.size else math.nan


class Catalog:
    """Every field and fleet total of one ``meta``, as :class:`Quantity`.

    A name the catalog lacks (an old twin, a field ahead of its ``meta``) gets a bare
    quantity: its number, no unit.
    """

    def __init__(self, meta: Mapping[str, Any] | None = None,
                 fields: Iterable[Mapping[str, Any]] = ()) -> None:
        meta = meta or {}
        self.fields: dict[str, Quantity] = {}
        for entry in [*(meta.get("fields") or []), *fields]:
            if isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
                self.fields.setdefault(entry["name"], Quantity.from_entry(entry["name"], entry))
        totals = meta.get("totals") if isinstance(meta.get("totals"), Mapping) else {}
        self.totals = {str(k): Quantity.from_entry(str(k), v) for k, v in totals.items()}

    def field(self, name: str) -> Quantity:
        return self.fields.get(name) or Quantity(name)

    def total(self, name: str) -> Quantity:
        return self.totals.get(name) or Quantity(name)

    def mirrored(self, name: str) -> Quantity:
        """A quantity a testbed mirrors: the node field's entry, else the mirror's own
        (``mirror_measured_<name>``) under the quantity's name."""
        if name in self.fields:
            return self.fields[name]
        return replace(self.field(f"mirror_measured_{name}"), name=name)

    def event_text(self, event: Mapping[str, Any]) -> str:
        """An event's text with its values in the field's display unit.

        A limit event (``field``, ``value``, ``limit``, ``level``) and a mirror residual
        (``field``, ``residual``, ``threshold``) read from their values, so an alarm shows
        ``T comp 92.9 °C above alarm limit 90.0 °C`` as the table does; any other event
        shows the twin's message, which is free text.
        """
        name = event.get("field")
        message = str(event.get("message") or event.get("kind", ""))
        if not isinstance(name, str) or name not in self.fields:
            return message
        q = self.fields[name]
        value, limit = event.get("value"), event.get("limit")
        if _is_number(value):
            text = f"{q.label()} {q.format(value)}"
            if event.get("level") == "ok" or event.get("kind") == "limit_clear":
                return text + " back within limits"
            if _is_number(limit):
                side = "above" if value > limit else "below"
                level = "alarm" if str(event.get("level", "")).startswith("alarm") else "warning"
                text += f" {side} {level} limit {q.format(limit)}"
            return text
        residual, threshold = event.get("residual"), event.get("threshold")
        if _is_number(residual):
            testbed = event.get("testbed")
            text = f"{testbed}: " if testbed else ""
            text += f"measured {q.label()} differs from the model by {q.difference(residual)}"
            if _is_number(threshold):
                text += f" (threshold ±{q.difference(threshold)[1:]})"
            return text
        return message

"""The viewers' one quantity layer (viz/quantity.py): a catalog entry made into text.

Entries come from the twin's own catalog rules (twin/protocol/catalog.py), so these tests read
values as a client of a real twin would: kelvin in °C, fractions in %, power and compute
with SI prefixes, enums and bitmasks by name, and text that does not fit ends in "…".
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from twin.models.registry import totals_catalog
from twin.protocol.catalog import display_of, kind_of
from viz.quantity import ELLIPSIS, Catalog, Quantity, fit


def entry(unit: str, **extra) -> dict:
    """A catalog entry as the twin builds it for ``unit`` (FieldSpec.catalog_entry)."""
    return {"unit": unit, "kind": kind_of(unit), "display": display_of(unit), "labels": {},
            "description": "", **extra}


def field(name: str, unit: str, **extra) -> Quantity:
    return Quantity.from_entry(name, entry(unit, **extra))


def total(name: str) -> Quantity:
    return Quantity.from_entry(name, totals_catalog()[name])


@pytest.mark.parametrize(("q", "value", "text"), [
    (field("temp_compute_k", "K"), 353.15, "80.0 °C"),
    (field("temp_compute_k", "K"), 273.1499, "0.0 °C"),  # no "-0.0"
    (field("soc_frac", "1"), 0.456, "45.6 %"),
    (field("power_cap_w", "W"), 2500.0, "2.50 kW"),
    (field("power_cap_w", "W"), 12.0, "12.0 W"),
    (field("power_cap_w", "W"), math.inf, "∞ W"),
    (total("p_solar_total_w"), 1.234e6, "1.23 MW"),
    (total("delivered_pflop_s"), 1.234, "1.23 PFLOP/s"),
    (total("peak_pflop_s"), 316.48, "316 PFLOP/s"),
    (field("delivered_flop_s", "FLOP/s"), 2.5e12, "2.50 TFLOP/s"),
    (total("results_delivered_bytes"), 3.2e9, "3.20 GB"),
    (total("n_in_eclipse"), 12, "12"),
    (total("n_in_eclipse"), 12.0, "12"),  # a whole count that travelled as a float
    (field("beta_deg", "deg"), -12.345, "-12.3°"),
    (field("alt_km", "km"), 550.04, "550 km"),
    (field("throttled", "bool"), True, "yes"),
    (field("x", "K"), math.nan, "—"),
])
def test_format(q, value, text):
    assert q.format(value) == text


def test_kelvin_on_request_and_differences():
    temp = field("temp_compute_k", "K")
    assert temp.format(353.15, native=True) == "353.1 K"
    assert temp.unit_text() == "°C" and temp.unit_text(native=True) == "K"
    # A difference has no zero offset: kelvin, not °C; fractions in percentage points.
    assert temp.difference(12.0) == "+12.00 K" and temp.difference(-1.5) == "-1.50 K"
    assert field("soc_frac", "1").difference(-0.031) == "-3.1 pp"
    assert field("compute_power_w", "W").difference(2500.0) == "+2.50 kW"
    assert temp.difference(math.nan) == "—"


def test_enum_and_bitmask_labels():
    mode = field("pump_mode", "code", labels={0: "off", 1: "low", 2: "high"})
    assert mode.kind == "enum" and mode.format(2) == "high" and mode.label_of(7) == "7"
    assert mode.format_array(np.array([0, 1, 2, 5], np.int8)) == ["off", "low", "high", "5"]
    faults = field("fault_flags", "bitmask", labels={1: "thermal", 2: "power", 8: "comms"})
    assert faults.format(3) == "thermal+power" and faults.format(0) == "none"
    assert faults.bit_names(8 | 16) == ["comms", "16"]  # an unnamed bit shows its value
    # Labels that travelled as JSON (string keys) read the same.
    assert Quantity.from_entry("m", entry("code", labels={"1": "low"})).format(1) == "low"


def test_text_that_does_not_fit_is_shortened_visibly():
    assert fit("abcdef", 4) == "abc" + ELLIPSIS and fit("abc", 4) == "abc"
    pos = field("pos_gcrs_km", "km")
    # The example: z of 2130 km must never read as 213.
    assert pos.format_vector([-6378.1, 1657.2, 2130.4]) == "-6378, 1657, 2130 km"
    short = pos.format_vector([-6378.1, 1657.2, 2130.4], width=12)
    assert short == "-6378, 1657…" and len(short) == 12
    assert field("p", "W").format(123456.0, width=5) == "123…"
    mode = field("pump_mode", "code", labels={0: "recirculating"})
    assert mode.format_array([0], width=6) == ["recir" + ELLIPSIS]


def test_a_column_shares_one_scale():
    power = field("power_cap_w", "W")
    values = np.array([900.0, 2500.0, np.nan, np.inf], np.float32)
    assert power.scale_for(2500.0).unit == "kW"
    assert power.format_array(values) == ["0.90", "2.50", "—", "∞"]


def test_labels_come_from_the_catalog_unit_not_the_name():
    assert field("coolant_pressure_pa", "Pa").label() == "Coolant pressure"
    assert field("temp_compute_k", "K").label() == "T comp"
    assert total("n_in_umbra").label() == "In umbra"
    assert field("soc_mean_frac", "1").label(6) == "SOC m" + ELLIPSIS
    # Acronyms read as acronyms, wherever they are in a name (the HUD said "Soc mean").
    assert field("in_saa", "1").label() == "In SAA"
    assert field("temp_hbm_k", "K").label() == "T HBM"
    assert field("seu_rate_per_accel_day", "1/day").label() == "SEU rate per accel day"
    assert total("soc_mean_frac").label() == "SOC mean"
    assert total("temp_battery_min_k").label() == "T batt min"
    # A name whose ending is not its unit keeps it: nothing is guessed from a suffix.
    assert field("weird_k", "m").label() == "Weird k"


def test_an_old_twin_without_display_rules_shows_raw_units():
    """No ``kind``/``display``/``totals``: the raw unit string, or a bare number."""
    old = Quantity.from_entry("temp_compute_k", {"unit": "K", "dtype": "<f4"})
    assert old.format(353.15) == "353.1 K"
    assert Quantity.from_entry("flag", {"unit": "bool", "dtype": "|b1"}).format(True) == "yes"
    catalog = Catalog({"fields": [{"name": "p_w", "unit": "W"}]})
    assert catalog.total("delivered_pflop_s").format(7.92e15) == "7.92e+15"
    assert catalog.field("p_w").format(2500.0) == "2500 W"
    assert catalog.field("unknown").format(0.123456) == "0.12"


def test_limit_events_read_in_display_units():
    meta = {"fields": [{"name": "temp_compute_k", **entry("K")},
                       {"name": "soc_frac", **entry("1")}]}
    catalog = Catalog(meta)
    alarm = {"kind": "limit", "severity": "alarm", "field": "temp_compute_k",
             "value": 366.05, "limit": 363.15, "level": "alarm_high", "unit": "K",
             "message": "SSO-007: temp_compute_k 366 K above alarm_high 363.1"}
    assert catalog.event_text(alarm) == "T comp 92.9 °C above alarm limit 90.0 °C"
    low = {**alarm, "field": "soc_frac", "value": 0.15, "limit": 0.2, "level": "alarm_low"}
    assert catalog.event_text(low) == "SOC 15.0 % below alarm limit 20.0 %"
    clear = {**alarm, "kind": "limit_clear", "level": "ok", "value": 350.05}
    assert catalog.event_text(clear) == "T comp 76.9 °C back within limits"
    residual = {"kind": "mirror_residual", "field": "temp_compute_k", "residual": 12.0,
                "threshold": 10.0, "testbed": "flatsat", "message": "free text"}
    assert catalog.event_text(residual) == (
        "flatsat: measured T comp differs from the model by +12.00 K (threshold ±10.00 K)")
    # Anything else is the twin's free text.
    assert catalog.event_text({"kind": "contact_start", "message": "acquired"}) == "acquired"


def test_a_field_says_what_its_infinity_means() -> None:
    """+inf is "no cap" on a power cap, "no route" on a latency: the twin's catalog says so
    (``infinite``) and the viewers show that word, not ∞ (which the 3D viewer's font does
    not have: an uncapped node's panel read "Cap:  W")."""
    from twin.core.clock import SimClock
    from twin.core.engine import Engine
    from twin.scenario import load_scenario

    scenario = load_scenario("suncatcher")
    engine = Engine(scenario, SimClock(scenario.epoch_utc, 1.0, 60.0, fast=True))
    catalog = {e["name"]: e for e in engine.meta()["fields"]}
    meanings = {name: catalog[name].get("infinite") for name in catalog
                if catalog[name].get("infinite")}
    assert meanings == {"compute_cap_w": "none", "power_cap_w": "none",
                        "relay_latency_s": "no route", "user_latency_s": "unreachable",
                        "user_target_latency_s": "unreachable", "nn_dist_m": "not a member"}
    cap = Quantity.from_entry("compute_cap_w", catalog["compute_cap_w"])
    assert cap.format(math.inf) == "none" and cap.format(np.float32(np.inf)) == "none"
    assert cap.format(2500.0) == "2.50 kW" and cap.format(math.nan) == "—"
    assert cap.format(-math.inf) == "-∞ W"  # only +inf has the meaning
    assert cap.format_array([math.inf, 1000.0]) == ["none", "1.00"]  # (in kW)
    assert "infinite" not in catalog["temp_compute_k"]  # where it means nothing: ∞
    assert field("power_cap_w", "W").format(math.inf) == "∞ W"  # an older twin's catalog
    long = field("x_w", "W", infinite="x" * 100)
    assert long.format(math.inf) == "x" * 24  # a twin's text, kept short

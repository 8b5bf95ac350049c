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


# Every key a model may put in the ``fleet`` map: (unit, description). The engine refuses
# to start if a model publishes a total that is not declared here (Engine.totals_catalog).
TOTALS: dict[str, tuple[str, str]] = {
    # orbit
    "n_sats": ("count", "satellites in the scenario"),
    "n_in_eclipse": ("count", "satellites in umbra or penumbra"),
    "n_in_umbra": ("count", "satellites in full shadow"),
    "n_in_contact": ("count", "satellites seen by at least one station"),
    "n_orbit_errors": ("count", "satellites SGP4 cannot propagate"),
    # faults
    "n_nodes_faulted": ("count", "nodes with an active fault"),
    "accelerators_failed": ("count", "failed accelerators"),
    # compute
    "delivered_pflop_s": ("PFLOP/s", "useful compute delivered"),
    "peak_pflop_s": ("PFLOP/s", "peak compute of the working accelerators"),
    "accelerators_busy": ("count", "accelerators running jobs"),
    "goodput_frac": ("1", "useful work over work done"),
    "useful_work_accel_h": ("accelerator-h", "useful work so far"),
    "lost_work_accel_h": ("accelerator-h", "work lost to upsets, faults and cancels"),
    "compute_power_w": ("W", "compute payload power"),
    "compute_energy_j": ("J", "compute payload energy so far"),
    "energy_per_work_j_per_pflop": ("J/PFLOP", "payload energy per useful PFLOP"),
    "queue_length": ("count", "jobs queued"),
    "queue_wait_mean_s": ("s", "mean wait of started jobs"),
    "queue_oldest_s": ("s", "wait of the oldest queued job"),
    "jobs_running": ("count", "jobs running"),
    "jobs_done": ("count", "jobs finished"),
    "jobs_cancelled": ("count", "jobs cancelled"),
    "jobs_dropped": ("count", "arrivals dropped by a full queue"),
    "jobs_evicted": ("count", "jobs requeued after a fault"),
    "upsets_total": ("count", "single-event upsets so far"),
    "device_resets_total": ("count", "upsets that needed a device reset"),
    "n_throttled_thermal": ("count", "nodes throttled by heat"),
    "n_throttled_power": ("count", "nodes throttled by the power cap"),
    "scheduler_policy_code": ("code", "scheduling policy"),
    "results_delivered": ("count", "job results downlinked"),
    "results_delivered_bytes": ("B", "result bytes downlinked"),
    "results_pending": ("count", "results waiting on board"),
    "downlink_backlog_bytes": ("B", "result bytes waiting on board"),
    "oldest_result_age_s": ("s", "age of the oldest undelivered result"),
    "result_latency_mean_s": ("s", "mean time from finish to delivery"),
    # power
    "p_solar_total_w": ("W", "solar array output"),
    "p_load_total_w": ("W", "electrical load served"),
    "soc_min_frac": ("1", "lowest battery state of charge"),
    "soc_mean_frac": ("1", "mean battery state of charge"),
    "n_power_capped": ("count", "nodes under a power cap"),
    "n_heaters_on": ("count", "battery heaters on"),
    "n_loop_heaters_on": ("count", "coolant-loop heaters on"),
    "loop_heater_total_w": ("W", "coolant-loop heater power"),
    # thermal
    "q_absorbed_total_w": ("W", "environmental heat absorbed"),
    "q_rejected_total_w": ("W", "heat radiated to space"),
    "temp_compute_max_k": ("K", "hottest accelerator cold plate"),
    "temp_battery_min_k": ("K", "coldest battery"),
    # limits
    "n_limit_warning": ("count", "nodes whose worst state is a warning"),
    "n_limit_alarm": ("count", "nodes whose worst state is an alarm"),
    # mirror
    "mirror_live_n": ("count", "mirrors with live telemetry"),
    "mirror_samples_applied": ("count", "telemetry samples applied"),
    "mirror_samples_dropped": ("count", "telemetry samples dropped"),
}



def labels_entry(labels: dict[int, str]) -> dict[str, str]:
    """Labels as the catalog carries them: decimal-string keys, as msgpack's defaults and
    JSON allow (``{"1": "thermal"}``)."""
    return {str(int(code)): str(name) for code, name in labels.items()}


def total_entry(name: str, labels: dict[int, str] | None = None) -> dict[str, Any]:
    """The totals catalog entry of fleet key ``name`` (KeyError if undeclared).

    Args:
        labels: Names of an enum total's codes (``scheduler_policy_code``).
    """
    unit, description = TOTALS[name]
    entry: dict[str, Any] = {"unit": unit, "kind": kind_of(unit), "description": description,
                             "display": display_of(unit), "labels": labels_entry(labels or {})}
    return entry

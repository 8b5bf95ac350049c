"""Synthetic, deterministic twin messages for dashboard tests, framed by the real codec.

Every message goes through ``twin.wire.encode_state``/``encode_map`` and back through
``decode``, so the dashboard sees exactly what it would read off the socket. The fields
mimic the thermal, power and compute models (names, units, limits from the catalog), so
the tests also show that new fields appear without code changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from procutil import stop_process, twin_process  # noqa: F401  (re-exported for tests)

from twin.wire import (
    PROTOCOL_VERSION,
    TOPIC_EVENT,
    TOPIC_META,
    FieldSpec,
    Message,
    decode,
    encode_map,
    encode_state,
)

ROOT = Path(__file__).resolve().parent.parent
ANY_PORT = "tcp://127.0.0.1:*"
EPOCH_T_UTC = 1_742_472_000.0  # 2025-03-20 12:00:00 UTC
STATIONS = ["Svalbard", "Inuvik", "Punta Arenas", "Hartebeesthoek"]
# The mirror variant: testbed "flatsat" on node SSO-005 (docs/protocol.md, "Mirror").
MIRROR_SAT = 5
MIRROR_TESTBED = "flatsat"
MIRROR_STATES = ("temp_compute_k", "temp_radiator_k")
MIRROR_DRIVERS = ("compute_power_w", "utilization_frac")


def specs(n: int, s: int = len(STATIONS)) -> list[FieldSpec]:
    """A field catalog like the twin's once thermal, power and compute have landed."""
    return [
        FieldSpec("pos_gcrs_km", "<f8", (n, 3), "km", "position, GCRS"),
        FieldSpec("lat_deg", "<f8", (n,), "deg", "geodetic latitude"),
        FieldSpec("lon_deg", "<f8", (n,), "deg", "longitude"),
        FieldSpec("alt_km", "<f8", (n,), "km", "height above WGS84"),
        FieldSpec("sunlit_frac", "<f4", (n,), "1", "visible fraction of the solar disk"),
        FieldSpec("in_contact", "|b1", (s, n), "bool", "station sees satellite"),
        FieldSpec("contact_station", "<i2", (n,), "index", "best station, -1 none"),
        FieldSpec("temp_compute_k", "<f4", (n,), "K", "accelerator temperature",
                  limits={"warn_high": 353.15, "alarm_high": 363.15}),
        FieldSpec("temp_radiator_k", "<f4", (n,), "K", "radiator temperature",
                  limits={"warn_high": 330.0}),
        FieldSpec("temp_battery_k", "<f4", (n,), "K", "battery temperature",
                  limits={"alarm_low": 268.15, "warn_low": 273.15, "warn_high": 313.15,
                          "alarm_high": 318.15}),
        FieldSpec("soc_frac", "<f4", (n,), "1", "battery state of charge",
                  limits={"warn_low": 0.3, "alarm_low": 0.2}),
        FieldSpec("utilization_frac", "<f4", (n,), "1", "accelerators busy"),
        FieldSpec("delivered_flop_s", "<f8", (n,), "FLOP/s", "useful compute delivered"),
        FieldSpec("throttled", "|b1", (n,), "bool", "thermal throttle engaged"),
        FieldSpec("power_cap_w", "<f4", (n,), "W", "cap on compute power"),
        FieldSpec("upsets", "<i4", (n,), "count", "single-event upsets so far"),
    ]


def mirror_specs() -> list[FieldSpec]:
    """The twin mirror's fields for one binding (axis 0: the binding, not satellites)."""
    out = [FieldSpec("mirror_sat", "<i4", (1,), "index", "mirrored satellite", per_sat=False),
           FieldSpec("mirror_live", "|b1", (1,), "bool", "telemetry arriving", per_sat=False),
           FieldSpec("mirror_age_s", "<f4", (1,), "s", "since newest sample", per_sat=False)]
    out += [FieldSpec(f"mirror_measured_{q}", "<f4", (1,), "W" if q.endswith("_w") else "1",
                      f"measured {q}", per_sat=False) for q in MIRROR_DRIVERS]
    for q in MIRROR_STATES:
        out += [FieldSpec(f"mirror_{kind}_{q}", "<f4", (1,), "K", f"{kind} {q}", per_sat=False)
                for kind in ("measured", "predicted", "residual")]
    return out


def mirror_meta() -> dict[str, Any]:
    """``meta.subsystems.mirror`` as twin/mirror.py publishes it."""
    return {
        "bindings": [{"testbed": MIRROR_TESTBED, "sat": MIRROR_SAT,
                      "drivers": {"compute_power_w": "compute_power_w",
                                  "util_frac": "utilization_frac"},
                      "states": {"cold_plate_temp_c": "temp_compute_k",
                                 "radiator_temp_c": "temp_radiator_k"},
                      "thresholds": {"temp_compute_k": 10.0, "temp_radiator_k": 10.0}}],
        "mirrored_sats": [MIRROR_SAT], "lost_after_s": 3.0, "max_sample_age_s": 30.0,
        "time_base": "wall clock (warp 1)", "counters": {},
    }


def meta(n: int = 40, *, mirror: bool = False) -> Message:
    """A ``meta`` message for ``n`` nodes in two groups and four stations.

    With ``mirror``, node ``MIRROR_SAT`` is mirrored by testbed ``flatsat``.
    """
    body: dict[str, Any] = {
        "v": PROTOCOL_VERSION, "seq": 0, "t_utc": EPOCH_T_UTC,
        "twin_version": "0.1.0", "protocol": PROTOCOL_VERSION,
        "scenario": {"name": "default", "description": "synthetic", "source": "test",
                     "epoch_utc": "2025-03-20T12:00:00+00:00", "epoch_t_utc": EPOCH_T_UTC,
                     "seed": 1},
        "clock": {"rate_hz": 10.0, "warp": 60.0},
        "sats": {"n": n,
                 "ids": list(range(n)),
                 "names": [f"{'SSO' if i < n // 2 else 'WLK'}-{i:03d}" for i in range(n)],
                 "groups": ["sso-650" if i < n // 2 else "walker-550" for i in range(n)],
                 "norad_ids": [0] * n},
        "stations": [{"name": name, "lat_deg": 0.0, "lon_deg": 0.0, "alt_m": 0.0,
                      "min_elevation_deg": 5.0, "downlink_bps": 1e8} for name in STATIONS],
        "fields": [spec.catalog_entry() for spec in specs(n) + (mirror_specs() if mirror else [])],
        "subsystems": {"compute": {"policies": ["first_fit", "sun_aware"]}},
    }
    if mirror:
        body["subsystems"]["mirror"] = mirror_meta()
    return decode(encode_map(TOPIC_META, body))


def state(step: int, n: int = 40, *, paused: bool = False, warp: float = 60.0,
          mirror: bool = False, mirror_live: bool = True) -> Message:
    """A deterministic ``state`` message: a smooth function of ``step`` and node index.

    With ``mirror``, the mirror's fields follow: the testbed's cold plate measures 12 K
    above the model's compute temperature (past its 10 K threshold), its radiator 6 K
    below (past half the threshold); lost telemetry (``mirror_live=False``) leaves NaN.
    """
    i = np.arange(n, dtype=np.float64)
    phase = 0.05 * step + 0.4 * i
    sunlit = np.clip(np.sin(phase) * 3 + 0.5, 0, 1).astype(np.float32)
    temp_compute = (330.0 + 25.0 * np.sin(0.7 * i + 0.02 * step)).astype(np.float32)
    temp_compute[7] = 366.0  # one node over its alarm limit, one in warning
    temp_compute[12] = 356.0
    soc = (0.6 + 0.35 * np.cos(phase)).astype(np.float32)
    soc[3] = 0.15
    contact = np.where(i % 5 == 0, (i // 5) % len(STATIONS), -1).astype(np.int16)
    in_contact = np.zeros((len(STATIONS), n), bool)
    for sat in np.flatnonzero(contact >= 0):
        in_contact[contact[sat], sat] = True
    util = np.where(sunlit > 0.5, 0.9, 0.3).astype(np.float32)
    arrays = [
        np.stack([np.cos(phase), np.sin(phase), 0 * phase], axis=1) * 7000.0,
        np.round(60.0 * np.sin(phase), 3), np.round(((i * 37 + step) % 360) - 180.0, 3),
        np.where(i < n // 2, 650.0, 550.0) + 0.1 * np.sin(phase),
        sunlit, in_contact, contact, temp_compute,
        (300.0 + 10 * np.cos(phase)).astype(np.float32),
        (290.0 + 5 * np.sin(phase)).astype(np.float32),
        soc, util,
        util.astype(np.float64) * 8 * 9.9e14,
        temp_compute > 353.15,
        np.where(soc < 0.3, 2000.0, np.inf).astype(np.float32),
        (i.astype(np.int32) * 3 + step // 10) % 17,
    ]
    header = {
        "v": PROTOCOL_VERSION, "seq": step, "t_utc": EPOCH_T_UTC + 6.0 * step,
        "step": step, "dt_s": 6.0, "warp": warp, "paused": paused, "n_sats": n,
        "fleet": {"delivered_flop_s": float(arrays[12].sum()), "goodput_frac": 0.934,
                  "p_solar_w": 1.234e5, "p_load_w": 9.87e4,
                  "n_in_eclipse": int(np.count_nonzero(sunlit < 0.5)),
                  "n_in_contact": int(np.count_nonzero(contact >= 0)), "n_sats": n},
        "sun_gcrs_km": [1.5e8, 0.0, 0.0], "gast_rad": 0.0,
        "gcrs_to_itrs": [1, 0, 0, 0, 1, 0, 0, 0, 1],
    }
    field_specs = specs(n)
    if mirror:
        field_specs = field_specs + mirror_specs()
        arrays += _mirror_arrays(temp_compute, arrays[8], mirror_live)
        header["fleet"]["mirror_live_n"] = float(mirror_live)
    frames = encode_state(header, field_specs, arrays)
    return decode([bytes(f) for f in frames])


def _mirror_arrays(temp_compute: np.ndarray, temp_radiator: np.ndarray,
                   live: bool) -> list[np.ndarray]:
    """Arrays in ``mirror_specs()`` order for node ``MIRROR_SAT``."""
    def one(value: float, dtype: str = "<f4") -> np.ndarray:
        return np.array([value], dtype=dtype)

    predicted = {"temp_compute_k": float(temp_compute[MIRROR_SAT]),
                 "temp_radiator_k": float(temp_radiator[MIRROR_SAT])}
    offset = {"temp_compute_k": 12.0, "temp_radiator_k": -6.0}
    nan = float("nan")
    out = [one(MIRROR_SAT, "<i4"), one(live, "|b1"), one(0.4 if live else 5.2),
           one(170.0 if live else nan), one(0.5 if live else nan)]
    for q in MIRROR_STATES:
        measured = predicted[q] + offset[q] if live else nan
        out += [one(measured), one(predicted[q]), one(measured - predicted[q])]
    return out


def event(seq: int, kind: str, severity: str, message: str, sat: int = -1,
          step: int = 0) -> Message:
    body = {"v": PROTOCOL_VERSION, "seq": seq, "t_utc": EPOCH_T_UTC + 6.0 * step,
            "kind": kind, "severity": severity, "message": message, "sat": sat}
    return decode(encode_map(TOPIC_EVENT, body))



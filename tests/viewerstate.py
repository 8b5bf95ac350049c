"""A fixed, deterministic fleet state for the viewer's image tests (no twin needed).

Circular orbits in closed form, the Earth turned by the USNO GMST formula, the Sun at the
March equinox direction, and a cylindrical shadow: good enough to look like the twin's
stream and stable forever, so the stored reference images never drift when the twin's
models change. ``meta_and_state(mirror=True)`` adds a mirrored node (the twin's
``[mirror]`` fields and meta) and frames the state through the real ``twin.protocol.codec`` codec.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from twin.protocol.catalog import display_of, kind_of
from twin.protocol.codec import PROTOCOL_VERSION, FieldSpec, Message, decode, encode_state
from viz import scene

T_UTC = 1774015200.0  # 2026-03-20T14:00:00Z, near the March equinox
R_EARTH_KM = 6378.137
GM_EARTH_KM3_S2 = 398600.4418
# The mirrored node of the mirror variant (DD-01-01) and its testbed.
MIRROR_SAT = 24
MIRROR_TESTBED = "flatsat"

STATIONS = [
    ("Svalbard", 78.23, 15.41), ("Fairbanks", 64.86, -147.85), ("Troll", -72.01, 2.53),
    ("Hartebeesthoek", -25.89, 27.69), ("Santiago", -33.15, -70.67), ("Singapore", 1.35, 103.82),
]


def gmst_rad(t_utc: float) -> float:
    """Greenwich mean sidereal time (USNO approximation, 0.1 s per century)."""
    days = (t_utc - 946728000.0) / 86400.0  # since J2000.0 (2000-01-01 12:00 UTC)
    return math.radians((280.46061837 + 360.98564736629 * days) % 360.0)


def _rz(theta: float) -> np.ndarray:
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])


def _orbits(later_s: float = 0.0) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """40 nodes: a 53 deg Walker shell at 550 km and a dawn-dusk plane at 650 km.

    Args:
        later_s: Seconds after ``T_UTC``: each node ahead on its circle by its mean motion.

    Returns GCRS positions (km), circular-orbit velocities (km/s), names and groups.
    """
    pos, vel, names, groups = [], [], [], []

    def plane(radius, inc_deg, raan_deg, anomalies_deg):
        inc, raan = math.radians(inc_deg), math.radians(raan_deg)
        speed = math.sqrt(GM_EARTH_KM3_S2 / radius)
        u = np.radians(anomalies_deg) + speed / radius * later_s

        def rotate(x, y):
            return np.stack([
                x * math.cos(raan) - y * math.cos(inc) * math.sin(raan),
                x * math.sin(raan) + y * math.cos(inc) * math.cos(raan),
                y * math.sin(inc),
            ], axis=1)

        return (rotate(radius * np.cos(u), radius * np.sin(u)),
                rotate(-speed * np.sin(u), speed * np.cos(u)))

    for p in range(3):
        anomalies = np.arange(8) * 45.0 + p * 15.0
        r, v = plane(R_EARTH_KM + 550.0, 53.0, 120.0 * p + 20.0, anomalies)
        pos.append(r)
        vel.append(v)
        names += [f"MID-{p + 1:02d}-{s + 1:02d}" for s in range(8)]
        groups += ["mid-53"] * 8
    # Dawn-dusk: the orbit normal points at the Sun (+x here), so RAAN = 90 deg.
    r, v = plane(R_EARTH_KM + 650.0, 98.0, 90.0, np.arange(16) * 22.5)
    pos.append(r)
    vel.append(v)
    names += [f"DD-01-{s + 1:02d}" for s in range(16)]
    groups += ["dawn-dusk"] * 16
    return np.concatenate(pos), np.concatenate(vel), names, groups


# Units of the header's fleet totals, for meta's totals catalog.
TOTAL_UNITS = {"n_in_eclipse": "count", "n_in_contact": "count", "delivered_pflop_s": "PFLOP/s",
               "power_generated_w": "W", "mirror_live_n": "count"}
# Names of the orbit status codes (twin/models/orbit.py publishes these as the field's labels).
STATUS_LABELS = {0: "ok", 1: "mean eccentricity", 6: "decayed"}


def display_keys(unit: str, labels: dict[int, str] | None = None) -> dict:
    """The catalog keys the twin derives from a unit (twin/protocol/catalog.py): kind, display."""
    return {"kind": kind_of(unit), "labels": dict(labels or {}), "display": display_of(unit)}


def meta_and_state(mirror: bool = False, mirror_live: bool = True,
                   later_s: float = 0.0) -> tuple[dict, Message]:
    """The ``meta`` body and one decoded ``state`` message of the fixed fleet.

    Args:
        mirror: Add the mirror's meta and fields: testbed ``flatsat`` on node
            ``MIRROR_SAT``, its compute temperature 12 K hotter than predicted (past its
            10 K threshold), its radiator 1.5 K cooler; the state then goes through the
            real ``twin.protocol.codec`` codec.
        mirror_live: Whether the testbed's telemetry is arriving (lost: NaN measured).
        later_s: The state this many seconds after ``T_UTC`` (nodes further along their
            circles, the Earth turned on); 0 keeps the image tests' state.
    """
    pos_gcrs, vel_gcrs, names, groups = _orbits(later_s)
    n = len(pos_gcrs)
    t_utc = T_UTC + later_s
    gast = gmst_rad(t_utc)
    m = _rz(gast)
    pos_itrs = pos_gcrs @ m.T
    sun = np.array([1.495e8, -1.0e5, -4.0e4])
    s_hat = sun / np.linalg.norm(sun)
    along = pos_gcrs @ s_hat
    off_axis = np.linalg.norm(pos_gcrs - along[:, None] * s_hat, axis=1)
    sunlit = np.where((along < 0) & (off_axis < R_EARTH_KM), 0.0, 1.0).astype(np.float32)
    sunlit[np.argmin(np.abs(off_axis - R_EARTH_KM) + (along > 0) * 1e9)] = 0.5
    r = np.linalg.norm(pos_itrs, axis=1)
    lat = np.degrees(np.arcsin(pos_itrs[:, 2] / r))
    lon = np.degrees(np.arctan2(pos_itrs[:, 1], pos_itrs[:, 0]))
    station_itrs = scene.geodetic_to_itrs_km([s[1] for s in STATIONS], [s[2] for s in STATIONS])
    los = pos_itrs[None, :, :] - station_itrs[:, None, :]
    up = station_itrs / np.linalg.norm(station_itrs, axis=1, keepdims=True)
    sin_el = np.einsum("snk,sk->sn", los, up) / np.linalg.norm(los, axis=2)
    in_contact = np.degrees(np.arcsin(sin_el)) >= 10.0
    best = np.argmax(np.where(in_contact, sin_el, -2.0), axis=0)
    contact_station = np.where(in_contact.any(axis=0), best, -1).astype(np.int16)
    idx = np.arange(n)
    temp_k = (300.0 + 55.0 * (0.5 + 0.5 * np.sin(idx * 0.7))).astype(np.float32)
    temp_k[[5, 29]] = 361.0  # two nodes in alarm
    soc = (0.35 + 0.6 * (0.5 + 0.5 * np.cos(idx * 0.3))).astype(np.float32)
    arrays = {
        "pos_gcrs_km": pos_gcrs, "pos_itrs_km": pos_itrs, "vel_gcrs_km_s": vel_gcrs,
        "lat_deg": lat, "lon_deg": lon,
        "alt_km": r - R_EARTH_KM, "sunlit_frac": sunlit,
        "status": np.zeros(n, np.uint8), "in_contact": in_contact,
        "contact_station": contact_station, "temp_compute_k": temp_k, "soc_frac": soc,
    }
    catalog = [
        ("pos_gcrs_km", "km", (n, 3), True, {}), ("pos_itrs_km", "km", (n, 3), True, {}),
        ("vel_gcrs_km_s", "km/s", (n, 3), True, {}),
        ("lat_deg", "deg", (n,), True, {}), ("lon_deg", "deg", (n,), True, {}),
        ("alt_km", "km", (n,), True, {}), ("sunlit_frac", "1", (n,), True, {}),
        ("status", "code", (n,), True, {}),
        ("in_contact", "bool", (len(STATIONS), n), False, {}),
        ("contact_station", "index", (n,), True, {}),
        ("temp_compute_k", "K", (n,), True, {"warn_high": 353.15, "alarm_high": 358.15}),
        ("soc_frac", "1", (n,), True, {"warn_low": 0.3, "alarm_low": 0.2}),
    ]
    meta = {
        "v": 1, "seq": 0, "t_utc": T_UTC,
        "scenario": {"name": "image-test", "description": "fixed state", "seed": 1},
        "clock": {"rate_hz": 10.0, "warp": 60.0},
        "sats": {"n": n, "ids": names, "names": names, "groups": groups,
                 "norad_ids": [0] * n},
        "stations": [{"name": name, "lat_deg": la, "lon_deg": lo, "alt_m": 0.0,
                      "min_elevation_deg": 10.0, "downlink_bps": 1e8}
                     for name, la, lo in STATIONS],
        "fields": [{"name": nm, "dtype": arrays[nm].dtype.str, "shape": list(shape),
                    "unit": unit, "description": "", "per_sat": per_sat, "limits": limits,
                    **display_keys(unit, STATUS_LABELS if nm == "status" else None)}
                   for nm, unit, shape, per_sat, limits in catalog],
        "totals": {k: {"unit": u, "description": "", **display_keys(u)}
                   for k, u in TOTAL_UNITS.items()},
        "subsystems": {},
    }
    header = {
        "v": 1, "seq": 0, "t_utc": t_utc, "step": 0, "dt_s": 6.0, "warp": 60.0,
        "paused": False, "n_sats": n,
        "fleet": {"n_in_eclipse": int(np.count_nonzero(sunlit < 1)),
                  "n_in_contact": int(np.count_nonzero(contact_station >= 0)),
                  "delivered_pflop_s": 32.0, "power_generated_w": 5.1e5},
        "sun_gcrs_km": [float(x) for x in sun], "gast_rad": gast,
        "gcrs_to_itrs": [float(x) for x in m.ravel()],
    }
    if not mirror:
        return meta, Message("state", header, arrays)
    _add_mirror(meta, header, arrays, catalog, temp_k, mirror_live)
    specs = [FieldSpec(nm, arrays[nm].dtype.str, tuple(shape), unit, "", per_sat, limits)
             for nm, unit, shape, per_sat, limits in catalog]
    header["v"] = meta["v"] = PROTOCOL_VERSION
    frames = encode_state(header, specs, [np.ascontiguousarray(arrays[s.name]) for s in specs])
    return meta, decode([bytes(f) for f in frames])


def _add_mirror(meta: dict, header: dict, arrays: dict, catalog: list, temp_k: np.ndarray,
                live: bool) -> None:
    """The twin's mirror fields (docs/protocol.md, "Mirror fields") for one binding."""
    sat = MIRROR_SAT
    nan = np.float32(np.nan)
    predicted = {"temp_compute_k": float(temp_k[sat]), "temp_radiator_k": 290.0}
    measured = {"temp_compute_k": predicted["temp_compute_k"] + 12.0,
                "temp_radiator_k": predicted["temp_radiator_k"] - 1.5}
    fields = {
        "mirror_sat": (np.array([sat], np.int32), "index"),
        "mirror_live": (np.array([live]), "bool"),
        "mirror_age_s": (np.array([0.4 if live else 5.2], np.float32), "s"),
        "mirror_measured_compute_power_w": (np.array([170.0 if live else nan], np.float32), "W"),
        "mirror_measured_utilization_frac": (np.array([0.5 if live else nan], np.float32), "1"),
    }
    for q in ("temp_compute_k", "temp_radiator_k"):
        m = measured[q] if live else np.nan
        fields[f"mirror_measured_{q}"] = (np.array([m], np.float32), "K")
        fields[f"mirror_predicted_{q}"] = (np.array([predicted[q]], np.float32), "K")
        fields[f"mirror_residual_{q}"] = (np.array([m - predicted[q]], np.float32), "K")
    for name, (array, unit) in fields.items():
        arrays[name] = array
        catalog.append((name, unit, (1,), False, {}))
    meta["fields"] += [{"name": name, "dtype": array.dtype.str, "shape": [1], "unit": unit,
                        "description": "", "per_sat": False, "limits": {},
                        **display_keys(unit)}
                       for name, (array, unit) in fields.items()]
    meta["subsystems"]["mirror"] = {
        "bindings": [{"testbed": MIRROR_TESTBED, "sat": sat,
                      "drivers": {"compute_power_w": "compute_power_w",
                                  "util_frac": "utilization_frac"},
                      "states": {"cold_plate_temp_c": "temp_compute_k",
                                 "radiator_temp_c": "temp_radiator_k"},
                      "thresholds": {"temp_compute_k": 10.0, "temp_radiator_k": 10.0}}],
        "mirrored_sats": [sat], "lost_after_s": 3.0, "max_sample_age_s": 30.0,
        "time_base": "wall clock (warp 1)", "counters": {},
    }
    header["fleet"]["mirror_live_n"] = float(live)


def tick_until(app: Any, condition: Callable[[], bool], timeout_s: float = 20.0) -> bool:
    """Follow a ``ViewerApp``'s stream (``tick``) until ``condition()`` holds or the time
    runs out; whether it held."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        app.tick(timeout_ms=50.0)
        if condition():
            return True
    return False

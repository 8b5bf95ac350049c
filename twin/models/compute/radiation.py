"""Radiation: single-event effects per device class and total dose per node, from where it is.

A region-and-latitude approximation, not a transport model (equations and sources in
docs/models.md, "Radiation"):

- a quiet base rate (galactic cosmic rays at low geomagnetic latitude);
- the South Atlantic Anomaly, where the inner proton belt dips lowest: a Gaussian ellipse
  centred near (-26 deg, -50 deg), growing with altitude (AP8 trapped protons);
- high geomagnetic latitude, where the Stormer cutoff rigidity (14.9 cos^4 lambda_m GV)
  falls and cosmic rays and solar particles get in: a smooth step in |lambda_m| from a
  centred-dipole geomagnetic latitude.

Dose: the same region shape scaled to a shielding depth by a relative dose-depth table
(``DOSE_DEPTH_TABLE``) and to the solar-cycle phase; accumulated per node (total ionizing
dose), it degrades the HBM past ``hbm_degraded_gy`` (more upsets) and fails a node's
accelerators past ``tid_failure_gy`` (Suncatcher's TPU v6e proton tests).

Single-event effects (SEEs) come per device class (``DEVICE_CLASSES``): accelerator core
logic and on-chip SRAM (silent data corruption), HBM uncorrectable ECC errors, accelerator
functional interrupts, and the host's CPU and DRAM functional interrupts. Each class has a
dose per event measured in Suncatcher's 67 MeV proton test of the TPU v6e; in orbit its rate
is the SEE environment's proton dose rate (same SAA shape, shielding and solar cycle as the
dose, plus the polar step for cosmic rays) over that dose per event. Events are drawn per
node per step from a Poisson law on the seeded generator, their class in proportion to the
class rates; what an event does to a job is the compute model's business.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from twin.core.constants import SECONDS_PER_DAY
from twin.core.slices import SlicePool
from twin.core.subsystem import Field, make_field
from twin.scenario.errors import InvalidField

ENV_REFRESH_S = 30.0
"""Sim seconds between refreshes of the position-dependent rates."""
# Upsets applied one by one in a step, at most (see RadiationState.step).
MAX_UPSETS_PER_STEP = 10_000
MAX_ALTITUDE_SPAN_KM = 2000.0

# Device classes of a node's single-event effects, in the order of their codes (events and
# meta name them): per accelerator (core logic and SRAM, HBM, the accelerator's functional
# interrupt) and per node (the host's CPU and DRAM).
SDC, HBM_UECC, ACCEL_SEFI, HOST_CPU_SEFI, HOST_DRAM_SEFI = range(5)
DEVICE_CLASSES = ("sdc", "hbm_uecc", "accel_sefi", "host_cpu_sefi", "host_dram_sefi")
CLASS_WORDS = ("silent data corruption in core logic or SRAM",
               "HBM uncorrectable ECC error", "accelerator functional interrupt",
               "host CPU functional interrupt", "host DRAM functional interrupt")
PER_ACCELERATOR = np.array([True, True, True, False, False])
RESETS = np.array([False, False, True, True, True])
"""Classes that take a device (accelerator SEFI) or the node's host (host SEFIs) out for a
reset; the others roll the struck job back only."""
HOST_CLASSES = (HOST_CPU_SEFI, HOST_DRAM_SEFI)
# Below this depth the dose-depth curve rises with trapped electrons, which deposit dose
# but cause no single-event effects here: the SEE environment keeps the curve's value at
# this depth for thinner shielding (docs/models.md, "Single-event effects per device class").
SEE_MIN_DEPTH_MM_AL = 5.0

# IGRF-13 centred dipole, epoch 2020: the geomagnetic north pole (Alken et al. 2021,
# Earth Planets Space 73:49, table 2).
DIPOLE_POLE_LAT_DEG = 80.65
DIPOLE_POLE_LON_DEG = -72.68

# Relative total-dose-depth curve, dose(x mm Al) / dose(10 mm Al), silicon at the centre of
# a solid aluminium sphere, for a ~650 km polar LEO: the shape of SHIELDOSE-2 curves there
# (Seltzer 1994, NIST IR 5477; trapped AE8/AP8): electrons dominate below ~3 mm and fall
# steeply, trapped protons beyond, where more aluminium helps little (Gussenhoven et al.
# 1998, Adv. Space Res. 21(12):1651, APEXRAD: shielding past ~1/4 in Al is largely
# ineffectual at low altitude). A shape read off published curves, not a SHIELDOSE-2 run:
# replace it with a SPENVIS table for a real design. Valid 1-20 mm (the parameter's range).
DOSE_DEPTH_MM_AL = np.array([1.0, 2.0, 3.0, 5.0, 7.0, 10.0, 15.0, 20.0])
DOSE_DEPTH_REL = np.array([8.0, 3.5, 2.2, 1.5, 1.2, 1.0, 0.85, 0.75])
DOSE_REF_MM_AL = 10.0
"""Depth at which ``base_dose_gy_per_day`` applies: Suncatcher's shielding (mm Al)."""
# Trapped-proton dose in LEO at solar maximum relative to minimum: the heated, expanded
# atmosphere scatters the inner belt's low edge away (AP8MAX vs AP8MIN). Coarse, ~25 %.
SOLAR_MAX_TRAPPED_FACTOR = 0.75


def dose_depth_factor(shielding_mm_al: float) -> float:
    """Dose behind ``shielding_mm_al`` relative to the reference 10 mm (log-log interpolation)."""
    x = float(np.clip(shielding_mm_al, DOSE_DEPTH_MM_AL[0], DOSE_DEPTH_MM_AL[-1]))
    return float(np.exp(np.interp(np.log(x), np.log(DOSE_DEPTH_MM_AL),
                                  np.log(DOSE_DEPTH_REL))))


@dataclass(frozen=True)
class RadiationParams:
    """``[radiation]``: the single-event-effect and dose model.

    Attributes:
        sdc_dose_per_event_gy, hbm_uecc_dose_per_event_gy, accel_sefi_dose_per_event_gy:
            Proton dose (Gy(Si), 67 MeV) per event per accelerator: silent data corruption
            in core logic and on-chip SRAM, HBM uncorrectable ECC errors, functional
            interrupts (Suncatcher's TPU v6e test: 14.4-20, ~44 and ~5,000 rad per event).
        host_cpu_sefi_dose_per_event_gy, host_dram_sefi_dose_per_event_gy: The same for
            the node's host CPU and DRAM functional interrupts (~450 and ~400 rad).
        see_scale: Multiplier on every single-event rate: 1 for physics, 0 for none,
            larger only for tests and demos that want many events in a short run.
        saa_lat_deg, saa_lon_deg: Centre of the SAA (deg).
        saa_sigma_lat_deg, saa_sigma_lon_deg: Gaussian half-widths of the SAA (deg).
        saa_ref_alt_km: Altitude where ``saa_dose_factor`` applies (km).
        saa_scale_height_km: The SAA term grows e-fold per this many km of altitude (km).
        polar_factor: Single-event rate multiplier well above ``polar_geomag_lat_deg``
            (cosmic rays and solar particles past the geomagnetic cutoff).
        polar_geomag_lat_deg: Geomagnetic latitude at the middle of the polar step (deg).
        polar_width_deg: Width of the polar step (logistic scale, deg).
        reset_downtime_s: How long a reset takes the device (or the host) out (s).
        base_dose_gy_per_day: Total ionizing dose rate outside the SAA, silicon, behind
            10 mm Al at solar minimum (Gy/day).
        saa_dose_factor: Dose-rate (and single-event rate) multiplier at the SAA centre at
            ``saa_ref_alt_km``.
        shielding_mm_al: Aluminium-equivalent shielding around the accelerators (mm);
            dose scales by the dose-depth table.
        solar_cycle_phase: 0 at solar minimum, 1 at maximum: trapped dose and trapped-proton
            events x (1 - 0.25 p), high-latitude events x (1 + p) (solar particle events).
        hbm_degraded_gy: Total dose past which HBM misbehaves (Gy(Si)); Suncatcher saw HBM
            irregularities near 2 krad(Si).
        hbm_degraded_seu_factor: HBM event-rate multiplier on a node past ``hbm_degraded_gy``.
        tid_failure_gy: Total dose past which a node's accelerators fail (Gy(Si));
            Suncatcher saw no hard failures up to 15 krad(Si).
        dose_acceleration: Dose-rate multiplier, 1 for physics; larger only to reach the
            device limits in a short run (tests, demos).
    """

    # A dose per event is at least 1 µGy: no device was measured anywhere near it, and a
    # smaller one makes the event rate overflow (the scenario fuzz test found 5e-324).
    sdc_dose_per_event_gy: float = field(default=0.17, metadata={"min": 1e-6, "max": 1e6,
                                                                 "unit": "Gy"})
    hbm_uecc_dose_per_event_gy: float = field(default=0.44, metadata={"min": 1e-6, "max": 1e6,
                                                                      "unit": "Gy"})
    accel_sefi_dose_per_event_gy: float = field(default=50.0, metadata={"min": 1e-6, "max": 1e6,
                                                                        "unit": "Gy"})
    host_cpu_sefi_dose_per_event_gy: float = field(default=4.5, metadata={
        "min": 1e-6, "max": 1e6, "unit": "Gy"})
    host_dram_sefi_dose_per_event_gy: float = field(default=4.0, metadata={
        "min": 1e-6, "max": 1e6, "unit": "Gy"})
    see_scale: float = field(default=1.0, metadata={"min": 0.0, "max": 1e9})
    saa_lat_deg: float = field(default=-26.0, metadata={"min": -90.0, "max": 90.0,
                                                        "unit": "deg"})
    saa_lon_deg: float = field(default=-50.0, metadata={"min": -180.0, "max": 180.0,
                                                        "unit": "deg"})
    saa_sigma_lat_deg: float = field(default=12.0, metadata={"gt": 0.0, "max": 90.0,
                                                             "unit": "deg"})
    saa_sigma_lon_deg: float = field(default=28.0, metadata={"gt": 0.0, "max": 180.0,
                                                             "unit": "deg"})
    saa_ref_alt_km: float = field(default=500.0, metadata={"gt": 0.0, "max": 2000.0,
                                                           "unit": "km"})
    saa_scale_height_km: float = field(default=150.0, metadata={"gt": 0.0, "max": 1e4,
                                                                "unit": "km"})
    polar_factor: float = field(default=5.0, metadata={"min": 1.0, "max": 1e4})
    polar_geomag_lat_deg: float = field(default=55.0, metadata={"min": 0.0, "max": 90.0,
                                                                "unit": "deg"})
    polar_width_deg: float = field(default=4.0, metadata={"gt": 0.0, "max": 45.0,
                                                          "unit": "deg"})
    reset_downtime_s: float = field(default=120.0, metadata={"min": 0.0, "max": 86400.0,
                                                             "unit": "s"})
    base_dose_gy_per_day: float = field(default=0.0004, metadata={"min": 0.0, "max": 1e4,
                                                                 "unit": "Gy/day"})
    saa_dose_factor: float = field(default=100.0, metadata={"min": 1.0, "max": 1e6})
    shielding_mm_al: float = field(default=10.0, metadata={"min": 1.0, "max": 20.0,
                                                           "unit": "mm"})
    solar_cycle_phase: float = field(default=0.0, metadata={"min": 0.0, "max": 1.0})
    hbm_degraded_gy: float = field(default=20.0, metadata={"min": 1e-6, "max": 1e6,
                                                           "unit": "Gy"})
    hbm_degraded_seu_factor: float = field(default=2.0, metadata={"min": 1.0, "max": 1e4})
    tid_failure_gy: float = field(default=150.0, metadata={"min": 1e-6, "max": 1e6,
                                                           "unit": "Gy"})
    dose_acceleration: float = field(default=1.0, metadata={"min": 1.0, "max": 1e9})

    def __post_init__(self) -> None:
        # The HBM dose raises a warning, the failure dose an alarm: a failure below the
        # degradation would make the two meaningless.
        if self.hbm_degraded_gy >= self.tid_failure_gy:
            raise InvalidField("hbm_degraded_gy", f"{self.hbm_degraded_gy:g} Gy must be "
                               f"below tid_failure_gy ({self.tid_failure_gy:g} Gy)")


def geomagnetic_latitude_deg(lat_deg: np.ndarray, lon_deg: np.ndarray) -> np.ndarray:
    """Centred-dipole geomagnetic latitude (deg), same shape as the inputs.

    sin(lambda_m) = sin(phi) sin(phi_p) + cos(phi) cos(phi_p) cos(lambda - lambda_p).
    Geodetic latitude stands in for geocentric (0.2 deg at most; far below the model's
    precision).
    """
    phi = np.radians(lat_deg)
    pole_phi = np.radians(DIPOLE_POLE_LAT_DEG)
    dlon = np.radians(lon_deg - DIPOLE_POLE_LON_DEG)
    sin_m = np.sin(phi) * np.sin(pole_phi) + np.cos(phi) * np.cos(pole_phi) * np.cos(dlon)
    return np.degrees(np.arcsin(np.clip(sin_m, -1.0, 1.0)))


def saa_weight(params: RadiationParams, lat_deg: np.ndarray, lon_deg: np.ndarray
               ) -> np.ndarray:
    """Gaussian SAA shape, 1 at the centre, exp(-1/2) on the 1-sigma ellipse."""
    dlat = (lat_deg - params.saa_lat_deg) / params.saa_sigma_lat_deg
    dlon = ((lon_deg - params.saa_lon_deg + 180.0) % 360.0 - 180.0) / params.saa_sigma_lon_deg
    return np.exp(-0.5 * (dlat * dlat + dlon * dlon))


def polar_weight(params: RadiationParams, geomag_lat_deg: np.ndarray) -> np.ndarray:
    """Smooth 0 -> 1 step in |geomagnetic latitude| around ``polar_geomag_lat_deg``."""
    # A very narrow width (a scenario may set one) makes x ±inf, and tanh of that is the
    # right answer, ±1: the overflow is not an error.
    with np.errstate(over="ignore"):
        x = (np.abs(geomag_lat_deg) - params.polar_geomag_lat_deg) / params.polar_width_deg
    # The logistic 1 / (1 + e^-x), written with tanh so that a steep step (a narrow width in
    # a scenario) saturates at 0 or 1 instead of overflowing exp.
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def class_inverse_dose_per_gy(params: RadiationParams) -> np.ndarray:
    """(5,) events per Gy(Si) of SEE-environment dose for each of ``DEVICE_CLASSES``, per
    device (accelerator classes) or per node (host classes), ``see_scale`` included."""
    doses = np.array([params.sdc_dose_per_event_gy, params.hbm_uecc_dose_per_event_gy,
                      params.accel_sefi_dose_per_event_gy,
                      params.host_cpu_sefi_dose_per_event_gy,
                      params.host_dram_sefi_dose_per_event_gy])
    return params.see_scale / doses


def environment(params: RadiationParams, lat_deg: np.ndarray, lon_deg: np.ndarray,
                alt_km: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Single-event environment, dose rate and SAA weight at each position.

    The single-event environment is a proton dose rate (Gy(Si)/s), the quantity the
    per-class doses per event divide: the dose's trapped-proton shape (quiet rate, SAA,
    solar cycle) behind the shielding, not below ``SEE_MIN_DEPTH_MM_AL`` (thinner shielding
    adds electron dose, no events), plus the polar step for cosmic rays and solar particles
    expressed in the same units. ``dose_acceleration`` does not enter it.

    Args:
        lat_deg, lon_deg, alt_km: (n,) geodetic position.

    Returns:
        ``(see_gy_s, dose_gy_s, saa_w)``, each (n,). NaN positions (SGP4 errors) give the
        base rates.
    """
    saa_w = np.nan_to_num(saa_weight(params, lat_deg, lon_deg))
    # The altitude term is held beyond MAX_ALTITUDE_SPAN_KM of the reference: the model is
    # for LEO, and SGP4 far from its elements can put a node at 1e20 km (exp overflows).
    above_km = np.clip(np.nan_to_num(alt_km - params.saa_ref_alt_km),
                       -MAX_ALTITUDE_SPAN_KM, MAX_ALTITUDE_SPAN_KM)
    altitude_gain = np.exp(np.minimum(above_km / params.saa_scale_height_km, 50.0))
    trapped = 1.0 + (params.saa_dose_factor - 1.0) * saa_w * altitude_gain
    polar = np.nan_to_num(polar_weight(params, geomagnetic_latitude_deg(lat_deg, lon_deg)))
    phase = params.solar_cycle_phase
    trapped_phase = 1.0 - (1.0 - SOLAR_MAX_TRAPPED_FACTOR) * phase
    base_gy_s = params.base_dose_gy_per_day / SECONDS_PER_DAY
    see_depth = dose_depth_factor(max(params.shielding_mm_al, SEE_MIN_DEPTH_MM_AL))
    see = base_gy_s * see_depth * (trapped_phase * trapped
                                   + (params.polar_factor - 1.0) * (1.0 + phase) * polar)
    dose_scale = dose_depth_factor(params.shielding_mm_al) * params.dose_acceleration
    dose = base_gy_s * dose_scale * trapped_phase * trapped
    return see, dose, saa_w


class RadiationState:
    """Per-node radiation fields and the upset draw (owned by the compute subsystem)."""

    def __init__(self, params: RadiationParams, n: int) -> None:
        self.params = params
        f = make_field
        self.seu_rate = f("seu_rate_per_accel_day", "<f4", (n,), "1/day",
                          "Single-event rate per accelerator (SDC, HBM UECC, SEFI), here and now")
        self.in_saa = f("in_saa", "|b1", (n,), "bool",
                        "Inside the South Atlantic Anomaly's 1-sigma ellipse")
        self.upsets = f("upsets", "<u4", (n,), "count",
                        "Single-event upsets and interrupts since start, every device class")
        self.resets = f("device_resets", "<u4", (n,), "count",
                        "Functional interrupts (accelerator or host) that needed a reset, "
                        "since start")
        # No limit levels: crossing a device limit is the model's own event, registered as
        # an alarm (hbm_degraded, tid_failure); levels here would raise a second alarm
        # through the limit monitor for the same crossing.
        self.dose = f("dose_gy", "<f4", (n,), "Gy",
                      "Total ionizing dose (Si) since start, behind the shielding")
        # Nodes past the HBM and the hard-failure dose; set only as dose crosses them.
        self.hbm_degraded = np.zeros(n, dtype=bool)
        self.tid_failed = np.zeros(n, dtype=bool)
        self.any_tid_failed = self.any_hbm_degraded = False
        # Nodes that crossed a limit this step, for compute's events (then cleared).
        self.crossed: list[tuple[str, np.ndarray]] = []
        # Each node's next limit (the HBM dose, then the failure dose, then none): one
        # comparison a step tells whether any node crossed one (hbm < tid, checked).
        self._next_gy = np.full(n, params.hbm_degraded_gy)
        self._dose_f8 = np.zeros(n)  # accumulated in float64; the f4 field is a copy
        self.pool: SlicePool | None = None  # the row slices the dose accumulates in
        self._see_gy_s = np.zeros(n)  # the single-event environment, Gy(Si)/s
        self._dose_s = np.zeros(n)
        # Events per Gy of each class (per device or per node), and per node the sum over
        # the accelerator classes per accelerator (HBM raised past its dose) and over the
        # host classes.
        self.class_per_gy = class_inverse_dose_per_gy(params)
        self._accel_per_gy = np.full(n, float(self.class_per_gy[PER_ACCELERATOR].sum()))
        self._host_per_gy = float(self.class_per_gy[~PER_ACCELERATOR].sum())
        # Events drawn since the start, by class (the fleet's, for meta and tests).
        self.class_counts = np.zeros(len(DEVICE_CLASSES), dtype=np.int64)
        self._env_t = -np.inf
        self._no_upsets = np.zeros(0, dtype=np.int64)
        # (drawn, applied) of the last step whose draw passed MAX_UPSETS_PER_STEP; compute
        # reads and clears it.
        self.saturated: tuple[int, int] | None = None
        self._no_upsets.flags.writeable = False
        # Products of the environment with this step's dt and powered devices, kept while
        # those inputs stay the same (most steps): (dt_s, dose per step) and
        # (dt_s, powered, rates, total rate).
        self._dose_step: tuple[float, np.ndarray] | None = None
        self._rates: tuple[float, np.ndarray, np.ndarray, float] | None = None
        self._totals: tuple[int, int] | None = None

    def fields(self) -> list[Field]:
        return [self.seu_rate, self.in_saa, self.upsets, self.resets, self.dose]

    @property
    def see_gy_s(self) -> np.ndarray:
        """(n,) the single-event environment at the last refresh, Gy(Si)/s (read only)."""
        return self._see_gy_s

    def step(self, rng: np.random.Generator, t_utc: float, dt_s: float, lat_deg: np.ndarray,
             lon_deg: np.ndarray, alt_km: np.ndarray, powered: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
        """Update rates and dose; draw this step's single-event effects.

        Args:
            powered: (n,) accelerators that are on (the accelerator classes' targets; the
                host classes strike every node).

        Returns:
            ``(nodes, classes)``: (m,) int64 the node and the ``DEVICE_CLASSES`` code of
            each event this step, in node order (read-only empties when none).
        """
        # The environment changes over tens of seconds (a node crosses 1 deg of latitude in
        # ~15 s; the SAA is ~25 x 55 deg across): refresh it every ENV_REFRESH_S of sim time.
        if t_utc - self._env_t >= ENV_REFRESH_S or t_utc < self._env_t:
            self._see_gy_s, self._dose_s, saa_w = environment(self.params, lat_deg, lon_deg,
                                                              alt_km)
            self.seu_rate.array[:] = self._see_gy_s * self._accel_per_gy * SECONDS_PER_DAY
            self.in_saa.array[:] = saa_w >= np.exp(-0.5)
            self._env_t = t_utc
            self._dose_step = self._rates = None
        if self._dose_step is None or self._dose_step[0] != dt_s:
            self._dose_step = (dt_s, self._dose_s * dt_s)
        dose_step = self._dose_step[1]
        crossed = (any(self.pool.run(self._accumulate_dose, dose_step)) if self.pool is not None
                   else self._accumulate_dose(0, self._dose_f8.size, dose_step))
        if crossed:
            self._cross_limits()
        # Independent Poisson counts per node and class are equivalent to a Poisson total
        # spread over the nodes in proportion to their rates, then over the classes in
        # proportion to theirs: one scalar draw in the usual case of none.
        rates, total_rate = self._upset_rates(dt_s, powered)
        if not total_rate > 0.0:  # none, or NaN
            count = 0
        elif total_rate > 100.0 * MAX_UPSETS_PER_STEP:  # saturated; numpy's Poisson fails
            count = MAX_UPSETS_PER_STEP + 1             # past ~1e19
        else:
            count = int(rng.poisson(total_rate))
        if count > MAX_UPSETS_PER_STEP:
            # Saturated: each upset is applied (and evented) on its own, so an environment
            # drawing millions a step would stall the twin for minutes. Past this many the
            # model is outside its range anyway; compute raises `upsets_saturated`.
            self.saturated = (count, MAX_UPSETS_PER_STEP)
            count = MAX_UPSETS_PER_STEP
        if count == 0:  # the usual step: shared empties, read-only for the caller
            return self._no_upsets, self._no_upsets
        nodes = np.sort(rng.choice(rates.size, size=count, p=rates / total_rate))
        classes = self._draw_classes(rng, nodes, np.asarray(powered))
        self.class_counts += np.bincount(classes, minlength=len(DEVICE_CLASSES))
        return nodes, classes

    def _draw_classes(self, rng: np.random.Generator, nodes: np.ndarray,
                      powered: np.ndarray) -> np.ndarray:
        """The device class of each event on ``nodes`` ((m,)), in proportion to the class
        rates there: per accelerator class times the node's powered accelerators (HBM raised
        on a degraded node), per host class once."""
        weights = np.broadcast_to(self.class_per_gy, (nodes.size, len(DEVICE_CLASSES))).copy()
        weights[:, PER_ACCELERATOR] *= powered[nodes, None]
        if self.any_hbm_degraded:
            weights[:, HBM_UECC] *= np.where(self.hbm_degraded[nodes],
                                             self.params.hbm_degraded_seu_factor, 1.0)
        edges = np.cumsum(weights, axis=1)
        pick = rng.random(nodes.size) * edges[:, -1]
        return np.minimum((edges <= pick[:, None]).sum(axis=1),
                          len(DEVICE_CLASSES) - 1).astype(np.int64)

    def _cross_limits(self) -> None:
        """Mark nodes past the HBM and hard-failure doses; note those new this step."""
        p = self.params
        new_hbm = False
        for name, flags, limit_gy in (("hbm_degraded", self.hbm_degraded, p.hbm_degraded_gy),
                                      ("tid_failure", self.tid_failed, p.tid_failure_gy)):
            new = (self._dose_f8 >= limit_gy) & ~flags
            if np.count_nonzero(new):
                flags |= new
                self.crossed.append((name, np.flatnonzero(new)))
                new_hbm |= name == "hbm_degraded"
        self.any_tid_failed = bool(np.count_nonzero(self.tid_failed))
        self.any_hbm_degraded = bool(np.count_nonzero(self.hbm_degraded))
        if new_hbm:
            # Newly degraded HBM: more HBM events on those nodes from the next environment
            # refresh, forced now (only when a node crossed, not every step after).
            p_gy = self.class_per_gy
            self._accel_per_gy = p_gy[PER_ACCELERATOR].sum() + np.where(
                self.hbm_degraded, (p.hbm_degraded_seu_factor - 1.0) * p_gy[HBM_UECC], 0.0)
            self._env_t = -np.inf
        self._next_gy = np.where(self.tid_failed, np.inf,
                                 np.where(self.hbm_degraded, p.tid_failure_gy,
                                          p.hbm_degraded_gy))

    def working(self, accelerators_ok: Any, installed: int) -> Any:
        """Faults' working accelerators with the nodes past ``tid_failure_gy`` at none."""
        if not self.any_tid_failed:
            return accelerators_ok
        n_ok = (np.full(self.tid_failed.size, installed) if accelerators_ok is None
                else np.asarray(accelerators_ok))
        return np.where(self.tid_failed, 0, n_ok).astype(n_ok.dtype)

    def _accumulate_dose(self, start: int, stop: int, dose_step: np.ndarray) -> bool:
        """Add this step's dose to the nodes [start, stop) (float64, then the float32 field;
        elementwise: the same bits in any row slices); whether one reached its next limit."""
        cut = slice(start, stop)
        dose = self._dose_f8[cut]
        dose += dose_step[cut]
        self.dose.array[cut] = dose
        return bool(np.greater_equal(dose, self._next_gy[cut]).any())

    def _upset_rates(self, dt_s: float, powered: np.ndarray) -> tuple[np.ndarray, float]:
        """(n,) expected events per node this step (every class), and their sum.

        Kept while the environment, ``dt_s`` and ``powered`` stay the same; a read-only
        ``powered`` that is the same object as last step counts as unchanged (the compute
        model passes its working-accelerator counts so, replaced whenever they change).
        """
        kept = self._rates
        if (kept is not None and kept[0] == dt_s and kept[1] is powered
                and isinstance(powered, np.ndarray) and not powered.flags.writeable):
            return kept[2], kept[3]
        rates = powered * self._accel_per_gy
        rates += self._host_per_gy
        rates *= self._see_gy_s * dt_s
        total_rate = float(rates.sum())
        self._rates = (dt_s, powered, rates, total_rate)
        return rates, total_rate

    def count(self, upsets: np.ndarray, resets: np.ndarray) -> None:
        self.upsets.array[:] += upsets.astype(np.uint32)
        self.resets.array[:] += resets.astype(np.uint32)
        self._totals = None

    def forget_kept(self) -> None:
        """Drop the kept dose step, upset rates and totals (computed again when needed)."""
        self._dose_step = self._rates = self._totals = None

    def totals(self) -> tuple[int, int]:
        """Upsets and device resets since the start, over the fleet."""
        if self._totals is None:
            self._totals = (int(self.upsets.array.sum(dtype=np.int64)),
                            int(self.resets.array.sum(dtype=np.int64)))
        return self._totals

    def meta(self) -> dict[str, Any]:
        p = self.params
        return {
            "model": "region-and-latitude approximation (docs/models.md, Radiation)",
            "device_classes": list(DEVICE_CLASSES),
            "class_events_per_gy": [float(v) for v in self.class_per_gy],
            "class_per_accelerator": PER_ACCELERATOR.tolist(),
            "class_resets": RESETS.tolist(),
            "saa_centre_deg": [p.saa_lat_deg, p.saa_lon_deg],
            "saa_sigma_deg": [p.saa_sigma_lat_deg, p.saa_sigma_lon_deg],
            "saa_dose_factor": p.saa_dose_factor, "polar_factor": p.polar_factor,
            "reset_downtime_s": p.reset_downtime_s,
            "dipole_pole_deg": [DIPOLE_POLE_LAT_DEG, DIPOLE_POLE_LON_DEG],
            "shielding_mm_al": p.shielding_mm_al, "solar_cycle_phase": p.solar_cycle_phase,
            "dose_depth_factor": dose_depth_factor(p.shielding_mm_al),
            "hbm_degraded_gy": p.hbm_degraded_gy, "tid_failure_gy": p.tid_failure_gy,
            "dose_acceleration": p.dose_acceleration,
        }

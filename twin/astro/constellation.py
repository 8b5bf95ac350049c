"""Generated constellations: Walker-delta and sun-synchronous shells turned into SGP4 satrecs.

Every generated orbit is circular (eccentricity exactly 0, argument of perigee 0, so the
mean anomaly is the argument of latitude) and is built with ``Satrec.sgp4init`` on the WGS72
gravity model, the one SGP4 was fitted with. SGP4 clamps the eccentricity to 1e-6 internally
and skips its eccentricity-divided terms below 1e-4, so an exact 0 is safe and keeps the
elements free of an arbitrary perigee direction.

Altitude convention: ``altitude_km`` is the orbit-averaged geocentric radius minus the WGS72
equatorial radius (6378.135 km), i.e. what you would measure by propagating one orbit and
averaging ``|r|``. SGP4's *mean* semi-major axis differs from that average by the J2
short-period term (about -0.4 km at 53 deg, +4.4 km at 98 deg and -9.5 km at 0 deg for a
550-650 km orbit), so the generator solves for the mean semi-major axis that gives the
requested average radius, then converts its (Brouwer) mean motion to the Kozai mean motion
that ``sgp4init`` expects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from sgp4.api import WGS72, Satrec
from sgp4.earth_gravity import wgs72
from sgp4.propagation import gstime

EARTH_RADIUS_KM: float = wgs72.radiusearthkm
"""WGS72 equatorial radius (km), the one SGP4 uses."""
EARTH_MU_KM3_S2: float = wgs72.mu
"""WGS72 gravitational parameter (km^3/s^2)."""
EARTH_J2: float = wgs72.j2
"""WGS72 second zonal harmonic (dimensionless)."""
TROPICAL_YEAR_DAYS: float = 365.2422
"""Mean tropical year (days): one full turn of the mean Sun in right ascension."""
SUN_SYNCHRONOUS_RATE_RAD_S: float = 2.0 * math.pi / (TROPICAL_YEAR_DAYS * 86400.0)
"""Nodal precession rate that keeps an orbit's local time fixed (rad/s, ~0.9856 deg/day)."""

MAX_SATNUM = 339_999
"""Largest catalog number a satrec holds (Alpha-5 ``Z9999``). SGP4 only carries it as a
label; a generated satellite numbered above it gets this number in its satrec (its
``norad_id`` in the scenario stays unique)."""

SGP4_EPOCH_ORIGIN = datetime(1949, 12, 31, tzinfo=UTC)
"""``sgp4init`` counts its epoch in days since 1949 December 31 00:00 UTC."""
_SECONDS_PER_DAY = 86400.0


class ShellError(ValueError):
    """A shell's parameters are inconsistent; ``field`` names the offending parameter.

    The scenario loader turns this into a ScenarioError naming e.g. ``walker[0].phasing``.
    """

    def __init__(self, field_name: str, problem: str) -> None:
        super().__init__(problem)
        self.field = field_name


@dataclass(frozen=True)
class CircularOrbit:
    """One generated satellite's mean elements (circular orbit, angles in degrees).

    Attributes:
        plane_index: 0-based orbital plane within its shell.
        slot_index: 0-based position within its plane.
        altitude_km: Orbit-averaged altitude above the WGS72 equatorial radius (km).
        inclination_deg: Inclination to the TEME equator (deg).
        raan_deg: Right ascension of the ascending node in TEME at epoch (deg, 0..360).
        mean_anomaly_deg: Mean anomaly = argument of latitude at epoch (deg, 0..360).
    """

    plane_index: int
    slot_index: int
    altitude_km: float
    inclination_deg: float
    raan_deg: float
    mean_anomaly_deg: float


@dataclass(frozen=True)
class WalkerShell:
    """A Walker-delta shell i:t/p/f (t = planes * sats_per_plane).

    Plane k has RAAN ``raan_offset_deg + 360 k / p``; satellite j of plane k has mean anomaly
    ``360 j / s + 360 f k / t`` (s = sats_per_plane, f = phasing).
    """

    name: str = field(metadata={"doc": "group name"})
    altitude_km: float = field(metadata={"min": 160.0, "max": 40000.0, "unit": "km"})
    inclination_deg: float = field(metadata={"min": 0.0, "max": 180.0, "unit": "deg"})
    planes: int = field(metadata={"min": 1, "max": 10000, "unit": "1"})
    sats_per_plane: int = field(metadata={"min": 1, "max": 10000, "unit": "1"})
    phasing: int = field(default=0, metadata={"min": 0, "unit": "1"})
    raan_offset_deg: float = field(default=0.0,
                                   metadata={"min": -360.0, "max": 360.0, "unit": "deg"})

    def __post_init__(self) -> None:
        if self.phasing > self.planes - 1:
            raise ShellError(
                "phasing",
                f"Walker phasing f = {self.phasing} must be in 0..planes-1 = 0..{self.planes - 1}"
                f" (f counts how many 360/t steps each plane is shifted from the previous one)",
            )

    @property
    def total_satellites(self) -> int:
        """Number of satellites t in the shell."""
        return self.planes * self.sats_per_plane

    def orbits(self) -> tuple[CircularOrbit, ...]:
        """Elements of every satellite, plane by plane, slot by slot."""
        total = self.total_satellites
        return tuple(
            CircularOrbit(
                plane_index=k,
                slot_index=j,
                altitude_km=self.altitude_km,
                inclination_deg=self.inclination_deg,
                raan_deg=(self.raan_offset_deg + 360.0 * k / self.planes) % 360.0,
                mean_anomaly_deg=(360.0 * j / self.sats_per_plane
                                  + 360.0 * self.phasing * k / total) % 360.0,
            )
            for k in range(self.planes)
            for j in range(self.sats_per_plane)
        )

    def elements(self, epoch_utc: datetime) -> ShellElements:
        """The shell's elements as arrays: the same values as ``orbits()``, built by numpy."""
        plane = np.repeat(np.arange(self.planes), self.sats_per_plane)
        slot = np.tile(np.arange(self.sats_per_plane), self.planes)
        raan_deg = np.mod(self.raan_offset_deg + 360.0 * plane / self.planes, 360.0)
        return _shell_elements(self.altitude_km, self.inclination_deg, epoch_utc, plane, slot,
                               raan_deg, self.sats_per_plane, self.phasing,
                               self.total_satellites)


@dataclass(frozen=True)
class SunSynchronousShell:
    """Sun-synchronous planes; inclination derived from altitude through J2.

    ``ltan_h`` is either one local time of the ascending node (planes then spread evenly
    around the clock from it: ``ltan_h + 24 k / planes``) or a tuple with one LTAN per plane.
    Slots are phased like a Walker shell (``360 j / s + 360 f k / t``).
    """

    name: str = field(metadata={"doc": "group name"})
    altitude_km: float = field(metadata={"min": 160.0, "max": 40000.0, "unit": "km"})
    ltan_h: float | tuple[float, ...] = field(metadata={"min": 0.0, "lt": 24.0, "unit": "h"})
    sats_per_plane: int = field(metadata={"min": 1, "max": 10000, "unit": "1"})
    planes: int | None = field(default=None, metadata={"min": 1, "max": 10000, "unit": "1"})
    phasing: int = field(default=0, metadata={"min": 0, "unit": "1"})

    def __post_init__(self) -> None:
        if isinstance(self.ltan_h, tuple):
            if not self.ltan_h:
                raise ShellError("ltan_h", "the LTAN list is empty: give at least one hour")
            if self.planes is not None and self.planes != len(self.ltan_h):
                raise ShellError(
                    "planes",
                    f"planes = {self.planes} but ltan_h lists {len(self.ltan_h)} local times:"
                    f" drop 'planes' (it defaults to the list length) or make them agree",
                )
        if self.phasing > self.plane_count - 1:
            raise ShellError(
                "phasing",
                f"phasing f = {self.phasing} must be in 0..planes-1 = 0..{self.plane_count - 1}",
            )
        if self.altitude_km > MAX_SUN_SYNCHRONOUS_ALTITUDE_KM:
            raise ShellError(
                "altitude_km",
                f"no sun-synchronous orbit exists above {MAX_SUN_SYNCHRONOUS_ALTITUDE_KM:.0f} km"
                f" (J2 precession is too weak even at 180 deg inclination); got"
                f" {self.altitude_km} km",
            )

    @property
    def plane_count(self) -> int:
        """Number of planes: the LTAN list's length, else ``planes`` (default 1)."""
        if isinstance(self.ltan_h, tuple):
            return len(self.ltan_h)
        return self.planes if self.planes is not None else 1

    @property
    def total_satellites(self) -> int:
        """Number of satellites in the shell."""
        return self.plane_count * self.sats_per_plane

    @property
    def plane_ltans_h(self) -> tuple[float, ...]:
        """Local time of the ascending node of each plane (h, 0..24)."""
        if isinstance(self.ltan_h, tuple):
            return self.ltan_h
        return tuple((self.ltan_h + 24.0 * k / self.plane_count) % 24.0
                     for k in range(self.plane_count))

    @property
    def inclination_deg(self) -> float:
        """Sun-synchronous inclination for this altitude (deg)."""
        return sun_synchronous_shell_inclination_deg(self.altitude_km)

    def orbits(self, epoch_utc: datetime) -> tuple[CircularOrbit, ...]:
        """Elements of every satellite at ``epoch_utc`` (RAAN depends on the Sun's position)."""
        inclination_deg = self.inclination_deg
        total = self.total_satellites
        return tuple(
            CircularOrbit(
                plane_index=k,
                slot_index=j,
                altitude_km=self.altitude_km,
                inclination_deg=inclination_deg,
                raan_deg=raan_for_ltan_deg(ltan_h, epoch_utc),
                mean_anomaly_deg=(360.0 * j / self.sats_per_plane
                                  + 360.0 * self.phasing * k / total) % 360.0,
            )
            for k, ltan_h in enumerate(self.plane_ltans_h)
            for j in range(self.sats_per_plane)
        )

    def elements(self, epoch_utc: datetime) -> ShellElements:
        """The shell's elements as arrays: the same values as ``orbits(epoch_utc)``."""
        plane = np.repeat(np.arange(self.plane_count), self.sats_per_plane)
        slot = np.tile(np.arange(self.sats_per_plane), self.plane_count)
        plane_raan_deg = np.array([raan_for_ltan_deg(ltan_h, epoch_utc)
                                   for ltan_h in self.plane_ltans_h])
        return _shell_elements(self.altitude_km, self.inclination_deg, epoch_utc, plane, slot,
                               plane_raan_deg[plane], self.sats_per_plane, self.phasing,
                               self.total_satellites)


@dataclass(frozen=True, eq=False)
class ShellElements:
    """A generated shell's mean elements as arrays, one row per satellite (a million fit).

    Holds what ``make_satrec`` needs, so a satellite's satrec can be built when it is asked
    for (``satrec(i)``) rather than kept: a satrec is about 1 kB, a row of these 16 bytes.

    Attributes:
        altitude_km: Orbit-averaged altitude of every member (km).
        inclination_deg: Inclination of every member (deg).
        epoch_days: Element epoch, days since 1949-12-31 (``sgp4init``'s epoch).
        kozai_rad_min: Kozai mean motion shared by every member (rad/min).
        plane_index: (n,) 0-based plane of each member.
        slot_index: (n,) 0-based slot of each member in its plane.
        raan_deg: (n,) RAAN in TEME at epoch (deg, 0..360).
        mean_anomaly_deg: (n,) mean anomaly = argument of latitude at epoch (deg, 0..360).
    """

    altitude_km: float
    inclination_deg: float
    epoch_days: float
    kozai_rad_min: float
    plane_index: np.ndarray
    slot_index: np.ndarray
    raan_deg: np.ndarray
    mean_anomaly_deg: np.ndarray

    def __len__(self) -> int:
        return len(self.raan_deg)

    def satrec(self, i: int, satnum: int) -> Satrec:
        """Member i's satrec, bit-identical to ``make_satrec`` on its ``CircularOrbit``.

        A ``satnum`` above ``MAX_SATNUM`` (a fleet past about 250,000 generated satellites)
        is written as ``MAX_SATNUM``: the number is a label SGP4 does not compute with.

        Raises:
            ValueError: sgp4init rejected the elements.
        """
        return _init_satrec(min(satnum, MAX_SATNUM), self.epoch_days, self.inclination_deg,
                            float(self.mean_anomaly_deg[i]), self.kozai_rad_min,
                            float(self.raan_deg[i]))

    def satrecs(self, first: int, stop: int, first_satnum: int) -> list[Satrec]:
        """Members first..stop-1's satrecs, numbered from ``first_satnum``: each exactly
        ``satrec(i, first_satnum + i - first)`` (the same floats, read in bulk).

        Raises:
            ValueError: sgp4init rejected the elements.
        """
        mean_anomalies = self.mean_anomaly_deg[first:stop].tolist()
        raans = self.raan_deg[first:stop].tolist()
        return [_init_satrec(min(first_satnum + k, MAX_SATNUM), self.epoch_days,
                             self.inclination_deg, mean_anomaly, self.kozai_rad_min, raan)
                for k, (mean_anomaly, raan) in enumerate(zip(mean_anomalies, raans,
                                                             strict=True))]


def _shell_elements(altitude_km: float, inclination_deg: float, epoch_utc: datetime,
                    plane: np.ndarray, slot: np.ndarray, raan_deg: np.ndarray,
                    sats_per_plane: int, phasing: int, total: int) -> ShellElements:
    # The same operations in the same order as orbits(), so the values are bit-identical.
    mean_anomaly_deg = np.mod(360.0 * slot / sats_per_plane + 360.0 * phasing * plane / total,
                              360.0)
    a_km = mean_semi_major_axis_km(altitude_km, inclination_deg)
    return ShellElements(altitude_km, inclination_deg, sgp4_epoch_days(epoch_utc),
                         kozai_mean_motion_rad_min(a_km, inclination_deg), plane, slot,
                         raan_deg, mean_anomaly_deg)


def sun_synchronous_inclination_deg(semi_major_axis_km: float) -> float:
    """Textbook sun-synchronous inclination of a circular orbit (first-order J2).

    Solves ``-3/2 n J2 (R_e/a)^2 cos i = 2 pi / tropical year`` for i, i.e.
    ``cos i = -(2 a^{7/2} w_s) / (3 J2 R_e^2 sqrt(mu))`` with WGS72 constants.

    Args:
        semi_major_axis_km: Mean semi-major axis (km).

    Returns:
        Inclination (deg, 90..180).

    Raises:
        ValueError: The orbit is too high for J2 to precess it once a year.
    """
    a = semi_major_axis_km
    cos_i = -(2.0 * a**3.5 * SUN_SYNCHRONOUS_RATE_RAD_S) / (
        3.0 * EARTH_J2 * EARTH_RADIUS_KM**2 * math.sqrt(EARTH_MU_KM3_S2))
    if cos_i < -1.0:
        raise ValueError(f"no sun-synchronous orbit with a = {a} km (needs cos i = {cos_i:.3f})")
    return math.degrees(math.acos(cos_i))


def _max_sun_synchronous_altitude_km() -> float:
    # cos i = -1 at the top: a^{7/2} = 3 J2 R^2 sqrt(mu) / (2 w_s).
    a = (3.0 * EARTH_J2 * EARTH_RADIUS_KM**2 * math.sqrt(EARTH_MU_KM3_S2)
         / (2.0 * SUN_SYNCHRONOUS_RATE_RAD_S)) ** (1.0 / 3.5)
    return a - EARTH_RADIUS_KM - 50.0  # margin: the shell solver shifts a by a few km


MAX_SUN_SYNCHRONOUS_ALTITUDE_KM: float = _max_sun_synchronous_altitude_km()
"""Highest altitude accepted for a sun-synchronous shell (km, ~5900)."""


def mean_semi_major_axis_km(altitude_km: float, inclination_deg: float) -> float:
    """SGP4 mean semi-major axis whose orbit-averaged radius is ``R_e + altitude_km``.

    SGP4's short-period J2 correction shifts the radius by ``-3/4 J2 R_e^2 (3 cos^2 i - 1) / a``
    on average over an orbit; solving ``a - 3/4 J2 R_e^2 (3 cos^2 i - 1) / a = r`` gives a.

    Args:
        altitude_km: Wanted orbit-averaged altitude above the equatorial radius (km).
        inclination_deg: Inclination (deg).

    Returns:
        Mean semi-major axis (km).
    """
    radius_km = EARTH_RADIUS_KM + altitude_km
    con41 = 3.0 * math.cos(math.radians(inclination_deg)) ** 2 - 1.0
    shift_km2 = 0.75 * EARTH_J2 * EARTH_RADIUS_KM**2 * con41
    return 0.5 * (radius_km + math.sqrt(radius_km**2 + 4.0 * shift_km2))


def sun_synchronous_shell_inclination_deg(altitude_km: float) -> float:
    """Inclination that makes SGP4's orbit at ``altitude_km`` precess exactly once a year.

    Starts from the first-order J2 formula, then corrects ``cos i`` by the ratio of the
    wanted node rate to the rate SGP4 itself computes (its secular rate adds J2^2 and J4
    terms worth ~0.3 %, i.e. ~4 min of LTAN drift per year if ignored). The mean
    semi-major axis is re-solved each round since it depends on the inclination
    (see ``mean_semi_major_axis_km``). Converges to ~1e-12 in under ten rounds.

    Args:
        altitude_km: Orbit-averaged altitude above the equatorial radius (km).

    Returns:
        Inclination (deg, 90..180).
    """
    wanted_rad_min = SUN_SYNCHRONOUS_RATE_RAD_S * 60.0
    cos_i = math.cos(math.radians(
        sun_synchronous_inclination_deg(EARTH_RADIUS_KM + altitude_km)))
    for _ in range(12):
        inclination_deg = math.degrees(math.acos(max(-1.0, cos_i)))
        probe = make_satrec(CircularOrbit(0, 0, altitude_km, inclination_deg, 0.0, 0.0),
                            0, SGP4_EPOCH_ORIGIN)
        # The node rate is nearly proportional to cos i, so scale cos i by the rate ratio.
        cos_i *= wanted_rad_min / probe.nodedot
    return math.degrees(math.acos(max(-1.0, cos_i)))


def kozai_mean_motion_rad_min(semi_major_axis_km: float, inclination_deg: float,
                              eccentricity: float = 0.0) -> float:
    """Kozai mean motion that SGP4 will turn into the Brouwer mean motion of ``a``.

    ``sgp4init`` "un-Kozais" its input with ``n_B = n_K / (1 + delta_0)`` where
    ``delta_0`` depends on n_K itself; there is no public inverse, so iterate the forward
    map (it is a contraction with factor ~1e-3; 8 rounds reach machine precision).

    Args:
        semi_major_axis_km: Mean (Brouwer) semi-major axis (km).
        inclination_deg: Inclination (deg).
        eccentricity: Mean eccentricity (dimensionless).

    Returns:
        Kozai mean motion (rad/min), the ``no_kozai`` argument of ``sgp4init``.
    """
    a_er = semi_major_axis_km / EARTH_RADIUS_KM
    brouwer_rad_min = wgs72.xke / a_er**1.5
    cos_i = math.cos(math.radians(inclination_deg))
    # Same expression as sgp4init's initl(): 3/4 J2 (3cos^2 i - 1) / (1 - e^2)^{3/2}.
    j2_term = 0.75 * EARTH_J2 * (3.0 * cos_i**2 - 1.0) / (1.0 - eccentricity**2) ** 1.5
    kozai_rad_min = brouwer_rad_min
    for _ in range(8):
        a1 = (wgs72.xke / kozai_rad_min) ** (2.0 / 3.0)
        d1 = j2_term / (a1 * a1)
        ao = a1 * (1.0 - d1 * d1 - d1 * (1.0 / 3.0 + 134.0 * d1 * d1 / 81.0))
        kozai_rad_min = brouwer_rad_min * (1.0 + j2_term / (ao * ao))
    return kozai_rad_min


def raan_for_ltan_deg(ltan_h: float, epoch_utc: datetime) -> float:
    """RAAN (TEME, deg) that puts the ascending node at local mean solar time ``ltan_h``.

    Local mean solar time at east longitude L is ``UT + L / 15``; the node's longitude is
    ``RAAN - GMST``. Using SGP4's own GMST (``gstime``) makes the result exact in the TEME
    frame the satrecs live in, with no separate Sun model (equivalently: RAAN = right
    ascension of the mean Sun + 15 (ltan_h - 12)). Mean solar time is the convention for
    LTAN: the true-Sun value swings by the equation of time (up to +-16 min).

    Args:
        ltan_h: Local (mean solar) time of the ascending node (h).
        epoch_utc: Epoch, timezone-aware (UTC is used for UT1; the < 1 s difference is
            negligible).

    Returns:
        RAAN (deg, 0..360).
    """
    ut_h = (epoch_utc.astimezone(UTC) - epoch_utc.astimezone(UTC).replace(
        hour=0, minute=0, second=0, microsecond=0)).total_seconds() / 3600.0
    gmst_deg = math.degrees(gstime(_julian_date(epoch_utc)))
    return (gmst_deg + 15.0 * (ltan_h - ut_h)) % 360.0


def sgp4_epoch_days(epoch_utc: datetime) -> float:
    """Days since 1949-12-31 00:00 UTC, the epoch argument of ``sgp4init``."""
    return (epoch_utc - SGP4_EPOCH_ORIGIN).total_seconds() / _SECONDS_PER_DAY


def _julian_date(epoch_utc: datetime) -> float:
    return sgp4_epoch_days(epoch_utc) + 2433281.5


def make_satrec(orbit: CircularOrbit, satnum: int, epoch_utc: datetime) -> Satrec:
    """Build an SGP4 satrec for a circular orbit (no drag: bstar = ndot = nddot = 0).

    Args:
        orbit: The satellite's elements.
        satnum: Catalog number (0..339999; above 99999 SGP4 prints it in Alpha-5).
        epoch_utc: Element epoch (timezone-aware).

    Returns:
        Initialised satrec on WGS72 in improved ('i') mode.

    Raises:
        ValueError: sgp4init rejected the elements.
    """
    a_km = mean_semi_major_axis_km(orbit.altitude_km, orbit.inclination_deg)
    try:
        return _init_satrec(satnum, sgp4_epoch_days(epoch_utc), orbit.inclination_deg,
                            orbit.mean_anomaly_deg,
                            kozai_mean_motion_rad_min(a_km, orbit.inclination_deg),
                            orbit.raan_deg)
    except ValueError as exc:
        raise ValueError(f"sgp4init rejected {orbit} ({exc})") from None


def _init_satrec(satnum: int, epoch_days: float, inclination_deg: float,
                 mean_anomaly_deg: float, kozai_rad_min: float, raan_deg: float) -> Satrec:
    satrec = Satrec()
    satrec.sgp4init(
        WGS72, "i", satnum, epoch_days,
        0.0, 0.0, 0.0,  # bstar, ndot, nddot: no drag in generated shells
        0.0,  # eccentricity: exactly circular (see module docstring)
        0.0,  # argument of perigee: undefined for e = 0, so 0 and M = argument of latitude
        math.radians(inclination_deg),
        math.radians(mean_anomaly_deg),
        kozai_rad_min,
        math.radians(raan_deg),
    )
    if satrec.error:
        raise ValueError(f"SGP4 error code {satrec.error}")
    return satrec

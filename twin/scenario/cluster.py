"""The ``[[cluster]]`` table: a formation of satellites flying within metres to a kilometre.

A cluster is a chief on a circular orbit (sun-synchronous from ``altitude_km`` and
``ltan_h``, or any inclination with ``inclination_deg`` and ``raan_deg``) and ``members``
satellites (the chief counts as member 0) placed on a hexagonal pattern of ``spacing_m`` and
moved by a formation design (twin.astro.formation). The checks here refuse a cluster that
cannot be flown as written: a radius below the separation, a box too large for the spacing,
or more members than the design fits within the radius at the spacing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

from sgp4.api import Satrec

from twin.astro.constellation import (
    EARTH_MU_KM3_S2,
    CircularOrbit,
    make_satrec,
    mean_semi_major_axis_km,
    raan_for_ltan_deg,
    sun_synchronous_shell_inclination_deg,
)
from twin.astro.formation import DESIGNS, FormationDesign, pattern_radius_m, ss_parameter
from twin.scenario.errors import InvalidField

MAX_CLUSTER_MEMBERS = 10_000
"""Members of one cluster; a real formation has tens to hundreds."""


@dataclass(frozen=True)
class ClusterSpec:
    """One ``[[cluster]]`` table (docs/models.md, "Formation clusters")."""

    name: str = field(metadata={"doc": "group name; members are NAME-00 (the chief) .. NAME-NN"})
    altitude_km: float = field(metadata={"min": 300.0, "max": 2000.0, "unit": "km"})
    members: int = field(metadata={"min": 2, "max": MAX_CLUSTER_MEMBERS, "unit": "1"})
    radius_m: float = field(metadata={"gt": 0.0, "max": 100_000.0, "unit": "m"})
    min_separation_m: float = field(metadata={"gt": 0.0, "max": 10_000.0, "unit": "m"})
    ltan_h: float | None = field(default=None, metadata={"min": 0.0, "lt": 24.0, "unit": "h"})
    inclination_deg: float | None = field(default=None,
                                          metadata={"min": 0.0, "max": 180.0, "unit": "deg"})
    raan_deg: float = field(default=0.0, metadata={"min": 0.0, "lt": 360.0, "unit": "deg"})
    mean_anomaly_deg: float = field(default=0.0,
                                    metadata={"min": 0.0, "lt": 360.0, "unit": "deg"})
    spacing_m: float | None = field(default=None, metadata={"gt": 0.0, "unit": "m"})
    warn_separation_m: float | None = field(default=None, metadata={"gt": 0.0, "unit": "m"})
    design: str = field(default="ei_safe", metadata={"choices": DESIGNS})
    cross_track_ratio: float = field(default=0.5, metadata={"gt": 0.0, "max": 4.0, "unit": "1"})
    box_m: float = field(default=10.0, metadata={"gt": 0.0, "unit": "m"})
    isp_s: float = field(default=220.0, metadata={"gt": 0.0, "max": 10_000.0, "unit": "s"})
    propellant_kg: float = field(default=20.0, metadata={"min": 0.0, "max": 1e5, "unit": "kg"})
    dry_mass_kg: float = field(default=1000.0, metadata={"gt": 0.0, "max": 1e6, "unit": "kg"})
    ballistic_coeff_m2_kg: float = field(default=0.01,
                                         metadata={"min": 0.0, "max": 1.0, "unit": "m2/kg"})
    ballistic_spread_frac: float = field(default=0.05,
                                         metadata={"min": 0.0, "max": 1.0, "unit": "1"})
    differential_drag: bool = True

    def __post_init__(self) -> None:
        if (self.ltan_h is None) == (self.inclination_deg is None):
            raise InvalidField(
                "ltan_h", "give the chief's plane either as ltan_h (sun-synchronous, e.g."
                " ltan_h = 18.0 for dawn-dusk) or as inclination_deg (with raan_deg), not"
                f" {'both' if self.ltan_h is not None else 'neither'}")
        if self.radius_m <= self.min_separation_m:
            raise InvalidField(
                "radius_m", f"radius_m = {self.radius_m:g} m must be larger than"
                f" min_separation_m = {self.min_separation_m:g} m: no two members fit")
        spacing = self.spacing
        if spacing < self.min_separation_m:
            raise InvalidField(
                "spacing_m", f"spacing_m = {spacing:g} m is below min_separation_m ="
                f" {self.min_separation_m:g} m: the design itself would be in alarm")
        warn = self.warn_separation
        if not self.min_separation_m < warn <= spacing:
            raise InvalidField(
                "warn_separation_m", f"warn_separation_m = {warn:g} m must be above"
                f" min_separation_m = {self.min_separation_m:g} m and at most spacing_m ="
                f" {spacing:g} m")
        box_limit = 0.5 * (spacing - self.min_separation_m)
        if self.box_m > box_limit:
            raise InvalidField(
                "box_m", f"box_m = {self.box_m:g} m lets two neighbours, each at the edge of"
                f" its box, come closer than min_separation_m: at most (spacing_m -"
                f" min_separation_m) / 2 = {box_limit:g} m")
        needed = self.design_map().stretch * pattern_radius_m(self.members, spacing)
        if needed > self.radius_m:
            fit = self.members
            while fit > 1 and (self.design_map().stretch * pattern_radius_m(fit, spacing)
                               > self.radius_m):
                fit -= 1
            raise InvalidField(
                "members", f"{self.members} members at spacing_m = {spacing:g} m need a radius"
                f" of {needed:.0f} m in design {self.design!r} (pattern radius times"
                f" {self.design_map().stretch:.2f}), more than radius_m = {self.radius_m:g} m:"
                f" at most {fit} members fit, or lower spacing_m or raise radius_m")

    @property
    def spacing(self) -> float:
        """Pattern spacing, m: the closest designed nearest-neighbour distance."""
        return self.spacing_m if self.spacing_m is not None else 2.0 * self.min_separation_m

    @property
    def warn_separation(self) -> float:
        """Separation below which a pair is a warning, m."""
        return (self.warn_separation_m if self.warn_separation_m is not None
                else min(1.5 * self.min_separation_m, self.spacing))

    @property
    def chief_inclination_deg(self) -> float:
        """The chief's inclination: sun-synchronous from the altitude, or as given (deg)."""
        if self.inclination_deg is not None:
            return self.inclination_deg
        return sun_synchronous_shell_inclination_deg(self.altitude_km)

    @property
    def semi_major_axis_km(self) -> float:
        """The chief's mean semi-major axis (km)."""
        return mean_semi_major_axis_km(self.altitude_km, self.chief_inclination_deg)

    def design_map(self) -> FormationDesign:
        """The pattern-to-LVLH map of this cluster (twin.astro.formation)."""
        a_km = self.semi_major_axis_km
        mean_motion = math.sqrt(EARTH_MU_KM3_S2 / a_km**3)
        return FormationDesign(
            mean_motion_rad_s=mean_motion,
            ss_s=ss_parameter(a_km, math.radians(self.chief_inclination_deg)),
            cross_track_ratio=self.cross_track_ratio if self.design == "ei_safe" else 0.0)

    def chief_satrec(self, satnum: int, epoch_utc: datetime) -> Satrec:
        """SGP4 elements of the chief at ``epoch_utc``."""
        raan = (raan_for_ltan_deg(self.ltan_h, epoch_utc) if self.ltan_h is not None
                else self.raan_deg)
        orbit = CircularOrbit(0, 0, self.altitude_km, self.chief_inclination_deg, raan,
                              self.mean_anomaly_deg)
        return make_satrec(orbit, satnum, epoch_utc)


@dataclass(frozen=True)
class Cluster:
    """A cluster of a loaded scenario.

    Attributes:
        spec: The table as written.
        key: Its key path, ``cluster[0]``.
        sat_ids: The members' satellite indices, the chief first.
    """

    spec: ClusterSpec
    key: str
    sat_ids: tuple[int, ...]

    @property
    def chief(self) -> int:
        """The chief's satellite index."""
        return self.sat_ids[0]


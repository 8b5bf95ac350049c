"""The orbit subsystem: where every satellite is, whether it sees the Sun and the ground.

One step: SGP4 for the whole fleet in one call, TEME to GCRS and ITRS with rotations
built once, geodetic coordinates, the Sun from DE421, a conical shadow of the WGS84
ellipsoid (optionally with an atmospheric shadow height), the beta
angle, and elevation and range from every ground station. All numpy, no loop over
satellites.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import numpy as np

from twin.astro.contacts import ContactTracker, GroundStations
from twin.astro.fleet_geometry import FleetGeometry, GeometryArrays, StepInputs
from twin.astro.frames import DAY_S, FrameRotations, jd_utc_from_datetime
from twin.astro.geometry import shadow_stretch
from twin.astro.propagate import STATUS_NAMES, Propagator, SatrecsOnDemand
from twin.astro.shards import ShardedPropagator
from twin.astro.sun import SunEphemeris
from twin.core.clock import SimClock
from twin.core.interfaces import OrbitOutputs
from twin.core.slices import SlicePool
from twin.core.subsystem import CommandHandler, Field, StepContext, make_field
from twin.models.formation.clusters import FormationClusters
from twin.models.lifecycle.decay import apply_orbit_offset
from twin.models.power.params import PowerParams
from twin.scenario import Scenario, parse_section
from twin.scenario.satrecs import satrec_plan

FLEET_TOTALS: dict[str, tuple[str, str]] = {
    "n_sats": ("count", "satellites in the scenario"),
    "n_in_eclipse": ("count", "satellites in umbra or penumbra"),
    "n_in_umbra": ("count", "satellites in full shadow"),
    "n_in_contact": ("count", "satellites seen by at least one station"),
    "n_orbit_errors": ("count", "satellites SGP4 cannot propagate"),
}
"""The fleet totals this model publishes: name -> (unit, description) (meta.totals)."""


@dataclass(frozen=True)
class OrbitParams:
    """The ``[orbit]`` table: the Earth's shadow (docs/models.md, "Earth shadow").

    The occulting body is the WGS84 ellipsoid; ``shadow_atmosphere_km`` adds an
    atmospheric shadow height to both its semi-axes (0: no atmosphere; ~30 km matches the
    dimming of grazing sunlight in the lower atmosphere).
    """

    shadow_atmosphere_km: float = field(default=0.0,
                                        metadata={"unit": "km", "min": 0.0, "max": 200.0})


class OrbitModel:
    """Orbital state and geometry of every satellite, updated in place each step."""

    name = "orbit"
    # Also reads ``ctx.lifecycle`` (its decay offsets) when a lifecycle model runs; not
    # declared, so an orbit-only engine (tests/test_design_point.py) still builds: without
    # one the offsets are None and nothing moves.
    reads: tuple[str, ...] = ()
    publishes = "orbit"

    def __init__(self, scenario: Scenario, clock: SimClock, workers: int = 1) -> None:
        """Args:
            workers: SGP4 worker processes (and geometry row slices), as `run_on_workers`.
        """
        self.scenario = scenario
        self.clock = clock
        self.outputs = OrbitOutputs()  # filled by each step
        self.params = parse_section(OrbitParams, scenario, "orbit")
        n = len(scenario.satellites)
        stations = scenario.stations
        n_st = len(stations)
        self.n_sats = n
        # Built on first use (`propagator`) with one worker: at a million satellites a
        # one-process propagator is 2 GB of satrecs and their array.
        self._propagator: Propagator | ShardedPropagator | None = None
        self._workers = 1
        if workers > 1:
            # Forked first, while this process holds little more than the scenario: a
            # worker keeps its own copy of every page the twin writes after the fork, so
            # forking after the models' arrays exist would cost about 1 GB at a million.
            self._propagator = ShardedPropagator(satrec_plan(scenario.satellites), workers)
            self._workers = workers
        self.frames = FrameRotations()
        self.sun = SunEphemeris()
        self.stations = GroundStations(
            np.array([s.lat_deg for s in stations], dtype=float),
            np.array([s.lon_deg for s in stations], dtype=float),
            np.array([s.alt_m for s in stations], dtype=float),
            np.array([s.min_elevation_deg for s in stations], dtype=float),
        )
        self.contacts = ContactTracker()
        # Cluster members: SGP4 gives their chief, the formation their offsets from it.
        self.formation = (FormationClusters(
            scenario.clusters, parse_section(PowerParams, scenario, "power").array_area_m2,
            scenario.seed) if scenario.clusters else None)
        self._epoch_jd = jd_utc_from_datetime(scenario.epoch_utc)

        f = make_field
        self.pos_gcrs = f("pos_gcrs_km", "<f8", (n, 3), "km", "Position, GCRS (inertial)")
        self.vel_gcrs = f("vel_gcrs_km_s", "<f8", (n, 3), "km/s", "Velocity, GCRS")
        self.pos_itrs = f("pos_itrs_km", "<f8", (n, 3), "km", "Position, ITRS (Earth-fixed)")
        self.vel_itrs = f("vel_itrs_km_s", "<f8", (n, 3), "km/s", "Velocity relative to ITRS")
        self.lat = f("lat_deg", "<f8", (n,), "deg", "Geodetic latitude, WGS84")
        self.lon = f("lon_deg", "<f8", (n,), "deg", "Longitude, east positive, -180..180")
        self.alt = f("alt_km", "<f8", (n,), "km", "Height above the WGS84 ellipsoid")
        self.sunlit = f("sunlit_frac", "<f4", (n,), "1",
                        "Visible fraction of the solar disk: 0 umbra, 1 full sun")
        self.beta = f("beta_deg", "<f4", (n,), "deg", "Angle between orbit plane and Sun")
        self.status = f("status", "|u1", (n,), "code", "SGP4 status, 0 = ok",
                        labels=STATUS_NAMES)
        self.elevation = f("elevation_deg", "<f4", (n_st, n), "deg",
                           "Elevation from each station (floored at -10 deg)", per_sat=False)
        self.range = f("range_km", "<f4", (n_st, n), "km",
                       "Slant range from each station", per_sat=False)
        self.in_contact = f("in_contact", "|b1", (n_st, n), "bool",
                            "Elevation at or above the station's mask", per_sat=False)
        self.contact_station = f("contact_station", "<i2", (n,), "index",
                                 "Highest station in contact, -1 for none", fill=-1)
        self.sun_gcrs_km = np.zeros(3)
        self.gcrs_to_itrs = np.eye(3)
        self.gast_rad = 0.0
        self._previous_status = np.zeros(n, dtype=np.uint8)
        self._previous_any_failed = False
        self.geometry = FleetGeometry(GeometryArrays(
            self.pos_gcrs.array, self.vel_gcrs.array, self.pos_itrs.array, self.vel_itrs.array,
            self.lat.array, self.lon.array, self.alt.array, self.sunlit.array,
            self.beta.array, self.elevation.array, self.range.array, self.in_contact.array),
            self.stations, SlicePool(n, self._workers))
        self._stretch = shadow_stretch(self.params.shadow_atmosphere_km)

    @property
    def propagator(self) -> Propagator | ShardedPropagator:
        """SGP4 for the whole fleet: in this process unless `run_on_workers` sharded it."""
        if self._propagator is None:
            self._propagator = Propagator(self._satrecs())
        return self._propagator

    def run_on_workers(self, workers: int) -> None:
        """Propagate with ``workers`` processes, one contiguous shard each, and compute the
        geometry in ``workers`` row slices on threads (1: all in this process and thread,
        as built). The frames are the same bit for bit (twin.astro.shards,
        twin.core.slices)."""
        if workers == self._workers and self._propagator is not None:
            return  # built so (the engine forks the workers as it builds this model)
        self.close()
        self._workers = workers
        satellites = self.scenario.satellites
        # With workers, each builds its own shard's satrecs from the plan: this process
        # never holds the whole fleet's (1 GB at a million; docs/architecture.md).
        self._propagator = (ShardedPropagator(satrec_plan(satellites), workers)
                            if workers > 1 else Propagator(self._satrecs()))
        self.geometry.pool = SlicePool(self.n_sats, workers)

    def _satrecs(self) -> SatrecsOnDemand:
        """The satellites' satrecs, each built as SGP4's array copies it (no 1 GB list)."""
        return SatrecsOnDemand(self.scenario.satellites, attrgetter("satrec"))

    def prefetch(self) -> None:
        """Let the SGP4 workers compute the next step's rows now, while the twin publishes
        this step and waits for its next tick (twin.astro.shards): a step at another
        instant (a seek, a new warp) is computed when it comes."""
        self.propagator.prefetch(*self.clock.next_jd_utc)

    def close(self) -> None:
        """End the SGP4 worker processes and free their shared memory, if any, and the
        geometry's threads."""
        if isinstance(self._propagator, ShardedPropagator):
            self._propagator.close()
        self.geometry.pool.close()

    def fields(self) -> list[Field]:
        return [
            self.pos_gcrs, self.vel_gcrs, self.pos_itrs, self.vel_itrs, self.lat, self.lon,
            self.alt, self.sunlit, self.beta, self.status, self.elevation, self.range,
            self.in_contact, self.contact_station,
        ]

    def step(self, ctx: StepContext) -> None:
        jd_whole, jd_fraction = self.clock.jd_utc
        n = self.n_sats
        pos_teme, vel_teme, status = self.propagator.propagate(jd_whole, jd_fraction,
                                                               self.clock.next_jd_utc)
        for shard, reason in getattr(self.propagator, "restarts", ()):
            start, stop = self.propagator.bounds[shard]
            ctx.events.raise_event(
                "worker_restarted", "alarm", f"SGP4 worker of shard {shard} (satellites "
                f"{start}-{stop - 1}) {reason}; restarted, this step propagated again",
                shard=int(shard))
        moved = ctx.lifecycle.orbit_offset_nodes  # last step's decay and manoeuvres
        if moved is not None and moved.size:
            apply_orbit_offset(pos_teme, vel_teme, ctx.lifecycle.orbit_radius_scale,
                               ctx.lifecycle.orbit_phase_rad, moved)
        if self.formation is not None:
            since_epoch_s = ((jd_whole - self._epoch_jd[0])
                             + (jd_fraction - self._epoch_jd[1])) * DAY_S
            self.formation.step(since_epoch_s, pos_teme, vel_teme)
        rot = self.frames.at_jd_utc(jd_whole, jd_fraction)
        sun_gcrs_km = self.sun.gcrs_km(rot.jd_tdb_whole, rot.jd_tdb_frac)
        sun_hat = sun_gcrs_km / math.sqrt(float(sun_gcrs_km @ sun_gcrs_km))
        # The ellipsoid's axis is ITRS z: in GCRS, the last row of the GCRS-to-ITRS rotation.
        polar_axis = rot.gcrs_to_itrs[2]
        # Frames, geodetic, shadow, beta and look angles, in row slices on every core
        # (twin.astro.fleet_geometry): the same bits for any number of slices.
        pairs, pair_elevation_rad, _, shadow_radius = self.geometry.step(StepInputs(
            pos_teme, vel_teme, rot.teme_to_gcrs.T, rot.teme_to_itrs.T, sun_gcrs_km,
            sun_hat, polar_axis, self.params.shadow_atmosphere_km, self.propagator.failed))
        geometry = self.geometry
        pos_gcrs, vel_gcrs = self.pos_gcrs.array, self.vel_gcrs.array
        if self.formation is not None:  # neighbours' shadows on the members' arrays
            shaded = self.formation.shade(pos_gcrs, sun_hat)
            self.sunlit.array[self.formation.all_sats] *= 1.0 - shaded
        self.status.array[:] = status
        status = self.status.array  # the twin's own copy: a worker's rows change next step
        self.sun_gcrs_km = sun_gcrs_km
        self.gcrs_to_itrs = rot.gcrs_to_itrs
        self.gast_rad = rot.gast_rad

        in_contact = self.in_contact.array
        self.stations.best_station(pairs, pair_elevation_rad, n, self.contact_station.array)

        out = self.outputs
        out.sunlit_frac, out.beta_deg, out.alt_km = (self.sunlit.array, self.beta.array,
                                                     self.alt.array)
        out.pos_gcrs_km, out.vel_gcrs_km_s, out.sun_gcrs_km = pos_gcrs, vel_gcrs, sun_gcrs_km
        out.lat_deg, out.lon_deg = self.lat.array, self.lon.array
        out.in_contact, out.contact_station = in_contact, self.contact_station.array
        out.orbit_status, out.sun_along_km = status, geometry.sun_along_km
        out.r2_km2 = geometry.r2_km2
        out.shadow_along_km, out.shadow_r2_km2 = (geometry.shadow_along_km,
                                                  geometry.shadow_r2_km2)
        out.shadow_radius_km, out.shadow_stretch = shadow_radius, self._stretch
        out.polar_axis_gcrs = polar_axis
        out.shadow_atmosphere_km = self.params.shadow_atmosphere_km
        self._raise_events(ctx, in_contact, status, pairs)

    def _raise_events(self, ctx: StepContext, in_contact: np.ndarray, status: np.ndarray,
                      pairs: np.ndarray) -> None:
        starts, ends = self.contacts.update(in_contact, pairs)
        names = self.scenario.satellites
        stations = self.scenario.stations
        # One event per changed pair; a mass change (the first step of a large fleet) is
        # one summary (twin.core.events), without a message per pair.
        for kind, changed_pairs in (("contact_start", starts), ("contact_end", ends)):
            pairs_now = np.asarray(changed_pairs, dtype=np.int64).reshape(-1, 2)
            station_idx, sat_idx = pairs_now[:, 0], pairs_now[:, 1]
            verb = "acquired by" if kind == "contact_start" else "lost by"

            def message(i: int, sat_idx: np.ndarray = sat_idx, station_idx: np.ndarray =
                        station_idx, verb: str = verb) -> str:
                return (f"{names[int(sat_idx[i])].name} {verb}"
                        f" {stations[int(station_idx[i])].name}")

            ctx.events.raise_node_events(kind, "info", sat_idx, message, station=station_idx)
        # With every satellite fine now and last step, no status changed: skip the pass.
        any_failed = self.propagator.any_failed
        if not (any_failed or self._previous_any_failed):
            return
        self._previous_any_failed = any_failed
        changed = np.flatnonzero(status != self._previous_status)
        codes = status[changed].astype(np.int64)
        failed_now, recovered = changed[codes != 0], changed[codes == 0]
        failed_codes = codes[codes != 0]
        ctx.events.raise_node_events(
            "orbit_error", "alarm", failed_now,
            lambda i: (f"{names[int(failed_now[i])].name}: SGP4"
                       f" {STATUS_NAMES.get(int(failed_codes[i]), int(failed_codes[i]))}"),
            code=failed_codes)
        ctx.events.raise_node_events(
            "orbit_recovered", "info", recovered,
            lambda i: f"{names[int(recovered[i])].name}: SGP4 ok")
        self._previous_status[:] = status

    def header(self) -> dict[str, Any]:
        """Per-step frame facts for the ``state`` header (viewers orient Earth and Sun)."""
        return {
            "sun_gcrs_km": self.sun_gcrs_km.tolist(),  # Python floats, as msgpack wants
            "gast_rad": float(self.gast_rad),
            "gcrs_to_itrs": self.gcrs_to_itrs.ravel().tolist(),
        }

    def fleet(self) -> dict[str, float]:
        sunlit = self.sunlit.array
        return {
            "n_sats": self.n_sats,
            "n_in_eclipse": int(np.count_nonzero(sunlit < 1.0)),
            "n_in_umbra": int(np.count_nonzero(sunlit == 0.0)),
            "n_in_contact": int(np.count_nonzero(self.contact_station.array >= 0)),
            "n_orbit_errors": (int(np.count_nonzero(self.status.array))
                               if self.propagator.any_failed else 0),
        }

    def meta(self) -> dict[str, Any]:
        return {"status_codes": {str(k): v for k, v in STATUS_NAMES.items()}}

    def commands(self) -> dict[str, CommandHandler]:
        return {}

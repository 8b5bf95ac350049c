"""The orbit model's per-satellite geometry after SGP4, in row slices on every core.

From TEME position and velocity: GCRS and ITRS vectors, geodetic coordinates, the Sun's
direction along each position, the ellipsoid's shadow, the beta angle and every station's
look angles. Each slice of rows is independent of the others (twin.core.slices): products
over fixed blocks, elementwise arithmetic, and the one fleet-wide quantity (the shadow
test's bounds on |r|²) taken between the two phases. So the arrays are the same bits
whatever the number of slices, and the same as the orbit model computed them in one pass
for any fleet up to one block.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.astro.contacts import GroundStations
from twin.astro.frames import EARTH_ROTATION_RAD_S
from twin.astro.geometry import (
    beta_angle_from_rows,
    ellipsoid_shadow_dots,
    geodetic_from_rows,
    sunlit_fraction,
)
from twin.core.slices import SlicePool, blocks, matmul_columns, rows_matmul


@dataclass
class GeometryArrays:
    """The orbit's output arrays the geometry writes, the fleet's length each (n rows)."""

    pos_gcrs: np.ndarray  # (n, 3) km
    vel_gcrs: np.ndarray  # (n, 3) km/s
    pos_itrs: np.ndarray  # (n, 3) km
    vel_itrs: np.ndarray  # (n, 3) km/s
    lat_deg: np.ndarray  # (n,)
    lon_deg: np.ndarray  # (n,)
    alt_km: np.ndarray  # (n,)
    sunlit: np.ndarray  # (n,) float32
    beta_deg: np.ndarray  # (n,) float32
    elevation_deg: np.ndarray  # (s, n) float32
    range_km: np.ndarray  # (s, n) float32
    in_contact: np.ndarray  # (s, n) bool


@dataclass
class StepInputs:
    """What every slice of one step reads besides the TEME vectors: the instant's frames
    and Sun, worked out once by the orbit model."""

    pos_teme: np.ndarray
    vel_teme: np.ndarray
    teme_to_gcrs_t: np.ndarray  # (3, 3), transposed for row vectors
    teme_to_itrs_t: np.ndarray
    sun_gcrs_km: np.ndarray  # (3,)
    sun_hat: np.ndarray  # (3,) unit
    polar_axis: np.ndarray  # (3,) ITRS z in GCRS
    atmosphere_km: float
    failed: np.ndarray  # (n,) bool: no position from SGP4


class FleetGeometry:
    """Computes the orbit's per-satellite arrays of one step over ``SlicePool`` slices.

    Args:
        arrays: The output arrays (the orbit model's fields).
        stations: The ground stations (with an elevation floor).
        pool: The slices and their threads.
    """

    def __init__(self, arrays: GeometryArrays, stations: GroundStations,
                 pool: SlicePool) -> None:
        n = arrays.pos_gcrs.shape[0]
        self.n_sats = n
        self.arrays = arrays
        self.stations = stations
        self.pool = pool
        # Component rows [x; y; z] of GCRS position, GCRS velocity and ITRS position, then
        # |r|² and ones: rows 6-10 are what the station look angles' product acts on.
        # Contiguous rows: a transposing copy each costs less than strided passes over
        # the (n, 3) columns in the row-wise work.
        self.rows = np.empty((11, n))
        self.rows[10] = 1.0
        self.sun_along_km = np.empty(n)  # r·ŝ
        self.shadow_along_km = np.empty(n)  # r'·ŝ' in the stretched space
        self.shadow_r2_km2 = np.empty(n)  # |r'|²
        self._inputs: StepInputs | None = None

    @property
    def r2_km2(self) -> np.ndarray:
        """(n,) |r|² of the GCRS positions, km² (a row of the block)."""
        return self.rows[9]

    def step(self, inputs: StepInputs) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """Fill every array for one step.

        Returns:
            pairs: (k,) sorted flat indices ``station * n + sat`` of the pairs in contact.
            pair_elevation_rad: (k,) their elevations, rad.
            sun_stretched_km: (3,) the Sun in the stretched space of the shadow.
            shadow_radius_km: The shadow sphere's radius, km.
        """
        self._inputs = inputs
        # The shadow's scalars (stretched Sun, sphere radius), the same in every slice.
        _, _, sun_stretched, radius_km = ellipsoid_shadow_dots(
            np.empty((0, 3)), inputs.sun_gcrs_km, inputs.polar_axis, inputs.atmosphere_km,
            np.empty(0), np.empty(0))
        try:
            self.pool.run(self._frames_and_shadow_dots)
            r2 = self.shadow_r2_km2
            bounds = ((float(np.fmin.reduce(r2)), float(np.maximum.reduce(r2)))
                      if self.n_sats else (0.0, 0.0))
            parts = self.pool.run(self._shadow_and_stations, sun_stretched, radius_km, bounds)
        finally:
            self._inputs = None
        pairs, elevation_rad = GroundStations.merge_slices(parts, self.n_sats)
        return pairs, elevation_rad, sun_stretched, radius_km

    def _frames_and_shadow_dots(self, start: int, stop: int) -> None:
        """Phase one of a slice: frames, geodetic, r·ŝ, |r|², shadow dots, beta."""
        inputs, out, rows = self._inputs, self.arrays, self.rows
        assert inputs is not None
        cut = slice(start, stop)
        rows_matmul(inputs.pos_teme, inputs.teme_to_gcrs_t, out.pos_gcrs, start, stop)
        rows_matmul(inputs.vel_teme, inputs.teme_to_gcrs_t, out.vel_gcrs, start, stop)
        # TEME to ITRS is a single z-rotation (GMST 1982): cheaper than going through GCRS.
        rows_matmul(inputs.pos_teme, inputs.teme_to_itrs_t, out.pos_itrs, start, stop)
        np.copyto(rows[0:3, cut], out.pos_gcrs[cut].T)
        np.copyto(rows[3:6, cut], out.vel_gcrs[cut].T)
        np.copyto(rows[6:9, cut], out.pos_itrs[cut].T)
        # Earth-fixed velocity: the TEME velocity rotated into ITRS, minus ω × r
        # (twin.astro.frames.itrs_velocity_km_s, operation for operation).
        rows_matmul(inputs.vel_teme, inputs.teme_to_itrs_t, out.vel_itrs, start, stop)
        vel_itrs, pos_itrs = out.vel_itrs[cut], out.pos_itrs[cut]
        vel_itrs[:, 0] += EARTH_ROTATION_RAD_S * pos_itrs[:, 1]
        vel_itrs[:, 1] -= EARTH_ROTATION_RAD_S * pos_itrs[:, 0]

        lat_rad, lon_rad, _ = geodetic_from_rows(
            rows[6, cut], rows[7, cut], rows[8, cut],
            out=(out.lat_deg[cut], out.lon_deg[cut], out.alt_km[cut]))
        np.degrees(lat_rad, out=lat_rad)
        np.degrees(lon_rad, out=lon_rad)

        along = self.sun_along_km
        matmul_columns(inputs.sun_hat, rows[0:3], along, start, stop)
        r2 = np.multiply(rows[0, cut], rows[0, cut], out=rows[9, cut])
        r2 += rows[1, cut] * rows[1, cut]
        r2 += rows[2, cut] * rows[2, cut]
        shadow_along = self.shadow_along_km
        np.copyto(shadow_along[cut], along[cut])
        for a, b in blocks(start, stop):  # its products over the fixed blocks
            _, polar_km, _, _ = ellipsoid_shadow_dots(
                out.pos_gcrs[a:b], inputs.sun_gcrs_km, inputs.polar_axis,
                inputs.atmosphere_km, rows[9, a:b], shadow_along[a:b])
            self.shadow_r2_km2[a:b] = polar_km
        beta = beta_angle_from_rows(*rows[0:6, cut], inputs.sun_hat)
        np.degrees(beta, out=out.beta_deg[cut], casting="same_kind")

    def _shadow_and_stations(self, start: int, stop: int, sun_stretched: np.ndarray,
                             radius_km: float, bounds: tuple[float, float]
                             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Phase two of a slice: the visible Sun and the stations' look angles."""
        inputs, out = self._inputs, self.arrays
        assert inputs is not None
        cut = slice(start, stop)
        # sunlit_fraction reads the stretched dot products without changing them: the
        # environment places this step's edge crossings with the same ones.
        shadow = sunlit_fraction(None, sun_stretched, self.shadow_along_km[cut],
                                 self.shadow_r2_km2[cut], radius_km=radius_km,
                                 r2_bounds_km2=bounds)
        np.copyto(out.sunlit[cut], shadow, casting="same_kind")
        return self.stations.look_slice(self.rows[6:11], out.elevation_deg, out.range_km,
                                        out.in_contact, inputs.failed, start, stop)

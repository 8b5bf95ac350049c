"""Ground-station look angles for all satellites at once, and contact start/end tracking."""

from __future__ import annotations

import itertools
import math

import numpy as np

from twin.astro.geometry import itrs_from_geodetic, rowdot

# Default for GroundStations(elevation_floor_deg=...): 10° below any realistic mask.
DEFAULT_ELEVATION_FLOOR_DEG = -10.0

_EMPTY_PAIRS = np.empty((0, 2), dtype=np.int64)
_EMPTY_PAIRS.flags.writeable = False

LOOK_CHUNK_BLOCKS = 8
"""Fixed blocks (twin.core.slices.BLOCK_ROWS satellites each) per chunk of the look angles'
temporaries: 65,536 satellites, 9 MB with six stations."""


class GroundStations:
    """Fixed WGS84 ground stations, with their local frames precomputed.

    Elevation is geometric (no refraction), measured from the plane normal to the
    ellipsoid at the station, as skyfield's ``(sat - topos).at(t).altaz()``.

    Attributes:
        n_stations: Number of stations.
        pos_itrs_km: (s, 3) station positions, ITRS, km.
        up: (s, 3) unit ellipsoid normals (local up), ITRS.
        east: (s, 3) unit local east, ITRS.
        north: (s, 3) unit local north, ITRS.
        min_elevation_rad: (s,) elevation masks, rad.
    """

    def __init__(
        self,
        lat_deg: np.ndarray,
        lon_deg: np.ndarray,
        alt_m: np.ndarray,
        min_elevation_deg: np.ndarray,
        elevation_floor_deg: float | None = DEFAULT_ELEVATION_FLOOR_DEG,
    ) -> None:
        """Precompute station positions and local frames.

        Args:
            lat_deg: (s,) geodetic latitudes, degrees.
            lon_deg: (s,) longitudes, degrees east.
            alt_m: (s,) heights above the WGS84 ellipsoid, m.
            min_elevation_deg: (s,) elevation masks, degrees (scalar broadcasts).
            elevation_floor_deg: `look` reports ``max(elevation, floor)``: arcsin is the
                costliest operation of the step (~16 ns per pair), and only the few
                percent of pairs near or above the horizon need it. None: exact
                elevation for every pair.

        Raises:
            ValueError: if a mask is not above the floor (its contacts would be wrong).
        """
        lat = np.radians(np.atleast_1d(np.asarray(lat_deg, dtype=np.float64)))
        lon = np.radians(np.atleast_1d(np.asarray(lon_deg, dtype=np.float64)))
        alt_km = np.broadcast_to(np.asarray(alt_m, dtype=np.float64) * 1e-3, lat.shape)
        self.n_stations: int = lat.size
        self.pos_itrs_km: np.ndarray = itrs_from_geodetic(lat, lon, alt_km)
        sl, cl, so, co = np.sin(lat), np.cos(lat), np.sin(lon), np.cos(lon)
        self.up: np.ndarray = np.stack((cl * co, cl * so, sl), axis=-1)
        self.east: np.ndarray = np.stack((-so, co, np.zeros_like(lon)), axis=-1)
        self.north: np.ndarray = np.stack((-sl * co, -sl * so, cl), axis=-1)
        self.min_elevation_rad: np.ndarray = np.radians(
            np.broadcast_to(np.asarray(min_elevation_deg, dtype=np.float64), lat.shape)
        ).copy()
        self.elevation_floor_rad: float | None = (
            None if elevation_floor_deg is None else math.radians(elevation_floor_deg)
        )
        if self.elevation_floor_rad is not None and np.any(
            self.min_elevation_rad <= self.elevation_floor_rad
        ):
            raise ValueError("every station mask must be above elevation_floor_deg")
        # Terms of |sat - station|² and up·(sat - station) that do not depend on the sat.
        self._station_sq_km2 = np.einsum("ij,ij->i", self.pos_itrs_km, self.pos_itrs_km)[:, None]
        self._station_up_km = np.einsum("ij,ij->i", self.pos_itrs_km, self.up)[:, None]
        self._minus2_pos_and_up = np.concatenate((-2.0 * self.pos_itrs_km, self.up))
        # The same rows extended to act on [x; y; z; |r|²; 1]: the matmul then also adds
        # |r|² + |s|² to the range rows and -up·s to the height rows (three passes fewer
        # over the (s, n) matrices).
        self._look_matrix = np.zeros((2 * self.n_stations, 5))
        self._look_matrix[:, :3] = self._minus2_pos_and_up
        self._look_matrix[:self.n_stations, 3] = 1.0
        self._look_matrix[:self.n_stations, 4] = self._station_sq_km2[:, 0]
        self._look_matrix[self.n_stations:, 4] = -self._station_up_km[:, 0]

    def look(self, pos_itrs_km: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Elevation and range of every satellite from every station.

        Expands |r - s|² = |r|² - 2 r·s + |s|² so the work is two (s,3)@(3,n) matmuls
        and no (s, n, 3) temporary. Cancellation costs ~2 of 16 digits at LEO ranges
        (< 1 µm in range).

        Args:
            pos_itrs_km: (n, 3) satellite positions, ITRS, km (NaN rows give NaN).

        Returns:
            elevation_rad: (s, n) geometric elevation, rad in [-π/2, π/2], saturated at
                `elevation_floor_rad` from below when a floor is set (exact above it).
            range_km: (s, n) slant range, km.
        """
        pos_t = pos_itrs_km.T
        # One matmul for both: rows [-2 s_i] then [up_i] against every satellite.
        both = self._minus2_pos_and_up @ pos_t
        s = self.n_stations
        range_km = both[:s]
        range_km += rowdot(pos_itrs_km, pos_itrs_km)
        range_km += self._station_sq_km2
        np.sqrt(range_km, out=range_km)
        sin_el = both[s:]
        sin_el -= self._station_up_km
        sin_el /= range_km
        floor = self.elevation_floor_rad
        if floor is None:
            np.clip(sin_el, -1.0, 1.0, out=sin_el)
            return np.arcsin(sin_el, out=sin_el), range_km
        elevation_rad = np.full_like(sin_el, floor)
        flat_sin = sin_el.reshape(-1)
        above = np.flatnonzero(flat_sin > math.sin(floor))  # NaN compares False
        elevation_rad.reshape(-1)[above] = np.arcsin(np.minimum(flat_sin[above], 1.0))
        # Satellites without a position (failed SGP4) get NaN, not the floor.
        nan_sats = np.isnan(pos_itrs_km[:, 0])
        if s and nan_sats.any():
            elevation_rad[:, nan_sats] = np.nan
        return elevation_rad, range_km

    def look_into(
        self,
        pos_itrs_km: np.ndarray,
        elevation_deg: np.ndarray,
        range_km: np.ndarray,
        in_contact: np.ndarray,
        rows_km: np.ndarray | None = None,
        failed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """`look` and `in_contact`, written straight into the orbit's wire arrays.

        The same numbers as ``degrees(look(...)[0])``, ``look(...)[1]`` and
        ``in_contact(look(...)[0])`` (cast to the outputs' dtypes), without the (s, n)
        float64 elevation matrix: only the few percent of pairs above the floor get an
        elevation computed, and contacts can only be among them (every mask is above the
        floor).

        Args:
            pos_itrs_km: (n, 3) satellite positions, ITRS, km (NaN rows give NaN).
            elevation_deg: (s, n) output, elevation in degrees (any float dtype).
            range_km: (s, n) output, slant range in km (any float dtype).
            in_contact: (s, n) bool output.
            rows_km: Optional (5, n) contiguous block of the same positions as component
                rows x, y, z (km), then |r|² (km²), then ones, when the caller keeps one
                (the orbit does); built here from the positions when None.
            failed: Optional (n,) bool, the satellites without a position (NaN rows),
                when the caller knows them; None: found here.

        Returns:
            pairs: (k,) flat indices ``station * n + sat`` of the pairs in contact, sorted.
            elevation_rad: (k,) their elevations, rad (float64).
        """
        floor = self.elevation_floor_rad
        if floor is None:
            elevation_rad, rng = self.look(pos_itrs_km)
            in_contact[...] = self.in_contact(elevation_rad)
            np.degrees(elevation_rad, out=elevation_deg, casting="same_kind")
            np.copyto(range_km, rng, casting="same_kind")
            pairs = np.flatnonzero(in_contact)
            return pairs, elevation_rad.reshape(-1)[pairs]
        s = self.n_stations
        n = pos_itrs_km.shape[0]
        if rows_km is None:
            rows_km = np.empty((5, n))
            np.copyto(rows_km[:3], pos_itrs_km.T)
            rows_km[3] = rowdot(pos_itrs_km, pos_itrs_km)
            rows_km[4] = 1.0
        both = self._look_matrix @ rows_km
        range2 = both[:s]  # |r - s|², km²
        height = both[s:]  # up · (r - s), km
        # The range field takes its square root in its own dtype (float32 on the wire:
        # three times cheaper than float64 over every pair); exact elevations come from
        # the float64 square for the pairs above the floor only.
        np.copyto(range_km, range2, casting="same_kind")
        np.sqrt(range_km, out=range_km)
        # Above the floor: sin el > sin floor, i.e. height > sin(floor) range (the float32
        # range moves the floor's edge by < 1e-7 of the range; contacts are decided on
        # the exact elevation below).
        threshold = np.multiply(range_km, math.sin(floor), dtype=np.float64)
        above = np.flatnonzero(height.reshape(-1) > threshold.reshape(-1))  # NaN: False
        sin_el = height.reshape(-1)[above]
        sin_el /= np.sqrt(range2.reshape(-1)[above])
        elevation_rad = np.arcsin(np.minimum(sin_el, 1.0, out=sin_el), out=sin_el)
        elevation_deg.fill(float(np.degrees(floor)))  # as np.degrees of the full matrix
        elevation_deg.reshape(-1)[above] = np.degrees(elevation_rad)
        if failed is None:
            failed = np.isnan(pos_itrs_km[:, 0])
        if s and failed.any():
            elevation_deg[:, failed] = np.nan
        hit = elevation_rad >= self.min_elevation_rad[above // n]
        pairs = above[hit]
        in_contact.fill(False)
        in_contact.reshape(-1)[pairs] = True
        return pairs, elevation_rad[hit]

    def look_slice(self, rows_km: np.ndarray, elevation_deg: np.ndarray,
                   range_km: np.ndarray, in_contact: np.ndarray, failed: np.ndarray,
                   start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`look_into` for the satellites [start, stop) of a fleet, writing their columns of
        its (s, n) outputs: the same numbers as `look_into` on the whole fleet, whatever
        the slice (the product runs over twin.core.slices' fixed blocks). Needs the
        elevation floor.

        Args:
            rows_km: (5, n) the whole fleet's rows x, y, z (km), |r|² (km²) and ones.
            elevation_deg, range_km, in_contact: the whole fleet's (s, n) outputs.
            failed: (n,) bool, the satellites without a position.
            start, stop: The slice.

        Returns:
            station: (k,) station index of each pair in contact in the slice.
            sat: (k,) its satellite index in the fleet.
            elevation_rad: (k,) its elevation, rad (float64).
        """
        from twin.core.slices import BLOCK_ROWS  # the core imports astro, not back

        assert self.elevation_floor_rad is not None, "look_slice needs an elevation floor"
        # In chunks of whole fixed blocks: the (2s, m) products and their (s, m) threshold
        # of a 500,000-satellite slice are 72 MB, the step's largest temporaries at a
        # million (docs/performance.md, "The in-step peak at a million"); a chunk's are
        # 9 MB. Every number is the same: the products run over the same fixed blocks.
        step = LOOK_CHUNK_BLOCKS * BLOCK_ROWS
        edges = [start, *range((start // step + 1) * step, stop, step), stop]
        parts = [self._look_chunk(rows_km, elevation_deg, range_km, in_contact, failed, a, b)
                 for a, b in itertools.pairwise(edges) if b > a]
        if len(parts) == 1:
            return parts[0]
        if not parts or not self.n_stations:  # nothing to look at, or no station to look from
            empty = np.empty(0, dtype=np.int64)
            return empty, empty, np.empty(0)
        # Station-major, satellites ascending, as one chunk would give: each chunk's pairs
        # are so already, and the chunks follow each other in satellite order.
        cuts = [np.searchsorted(p[0], np.arange(self.n_stations + 1)) for p in parts]
        order = [(k, cut[st], cut[st + 1]) for st in range(self.n_stations)
                 for k, cut in enumerate(cuts)]
        return tuple(np.concatenate([parts[k][i][a:b] for k, a, b in order])  # type: ignore[return-value]
                     for i in range(3))

    def _look_chunk(self, rows_km: np.ndarray, elevation_deg: np.ndarray,
                    range_km: np.ndarray, in_contact: np.ndarray, failed: np.ndarray,
                    start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`look_slice` for one chunk [start, stop) of whole fixed blocks."""
        from twin.core.slices import matmul_columns  # the core imports astro, not back

        floor = self.elevation_floor_rad
        assert floor is not None
        s, m = self.n_stations, stop - start
        both = np.empty((2 * s, m))
        matmul_columns(self._look_matrix, rows_km, both, start, stop, out_offset=start)
        range2, height = both[:s], both[s:]
        ranges = range_km[:, start:stop]
        np.copyto(ranges, range2, casting="same_kind")
        np.sqrt(ranges, out=ranges)
        threshold = np.multiply(ranges, math.sin(floor), dtype=np.float64)
        above = np.flatnonzero(height > threshold)  # (s, m) flat; NaN: False
        sin_el = height.reshape(-1)[above]
        sin_el /= np.sqrt(range2.reshape(-1)[above])
        elevation_rad = np.arcsin(np.minimum(sin_el, 1.0, out=sin_el), out=sin_el)
        station, sat = np.divmod(above, m)
        elevations = elevation_deg[:, start:stop]
        elevations.fill(float(np.degrees(floor)))
        elevations[station, sat] = np.degrees(elevation_rad)
        gone = failed[start:stop]
        if s and gone.any():
            elevations[:, gone] = np.nan
        hit = elevation_rad >= self.min_elevation_rad[station]
        station, sat = station[hit], sat[hit]
        contact = in_contact[:, start:stop]
        contact.fill(False)
        contact[station, sat] = True
        return station, sat + start, elevation_rad[hit]

    @staticmethod
    def merge_slices(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], n_sats: int
                     ) -> tuple[np.ndarray, np.ndarray]:
        """`look_into`'s (pairs, elevation_rad) from the `look_slice` results of a fleet."""
        station = np.concatenate([p[0] for p in parts])
        pairs = station * n_sats
        pairs += np.concatenate([p[1] for p in parts])
        elevation_rad = np.concatenate([p[2] for p in parts])
        if len(parts) > 1:  # each slice's pairs are sorted; station-major across slices
            order = np.argsort(pairs, kind="stable")
            pairs, elevation_rad = pairs[order], elevation_rad[order]
        return pairs, elevation_rad

    def best_station(self, pairs: np.ndarray, elevation_rad: np.ndarray, n_sats: int,
                     out: np.ndarray) -> np.ndarray:
        """The highest station in contact with each satellite, from `look_into`'s pairs.

        Args:
            pairs: (k,) flat pair indices ``station * n_sats + sat``, sorted.
            elevation_rad: (k,) their elevations, rad.
            n_sats: Number of satellites.
            out: (n_sats,) integer output: the station index, -1 where none; on a tie the
                first station (as ``argmax`` over stations).

        Returns:
            ``out``.
        """
        out.fill(-1)
        if pairs.size:
            pair_station, pair_sat = np.divmod(pairs, n_sats)
            # One sort by satellite, then highest first: elevations lie within ±π/2, so
            # 4 sat - elevation orders both at once (ties within ~4e-12 rad at 4,428
            # satellites). The stable sort keeps the pairs' station order on a tie. The
            # first of each satellite's run wins.
            key = pair_sat * 4.0
            key -= elevation_rad
            order = np.argsort(key, kind="stable")
            sat_sorted = pair_sat[order]
            first = np.empty(sat_sorted.size, dtype=bool)
            first[0] = True
            np.not_equal(sat_sorted[1:], sat_sorted[:-1], out=first[1:])
            out[sat_sorted[first]] = pair_station[order[first]]
        return out

    def in_contact(self, elevation_rad: np.ndarray) -> np.ndarray:
        """Visibility above each station's mask.

        Args:
            elevation_rad: (s, n) elevations from `look`, rad.

        Returns:
            (s, n) bool; False for NaN elevations (satellites whose SGP4 failed).
        """
        return elevation_rad >= self.min_elevation_rad[:, None]


class ContactTracker:
    """Turns per-step visibility matrices into contact start and end events.

    Convention: the state before the first update is "nothing in contact", so the
    first update reports every pair already in view as a start (a consumer can then
    open one record per contact and close it on the matching end). `reset` returns
    to that state.
    """

    def __init__(self) -> None:
        """Start with no previous state."""
        self._prev: np.ndarray | None = None
        self._prev_pairs: np.ndarray | None = None  # flat indices of _prev's True cells

    def reset(self) -> None:
        """Forget the previous state (next update reports all visible pairs as starts)."""
        self._prev = None
        self._prev_pairs = None

    @property
    def in_contact(self) -> np.ndarray | None:
        """(s, n) bool state of the last update (None before the first); do not modify."""
        return self._prev

    def update(
        self, in_contact: np.ndarray, pairs: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Compare with the previous step and report changes.

        Args:
            in_contact: (s, n) bool visibility (e.g. `GroundStations.in_contact`).
            pairs: Optional sorted flat indices of ``in_contact``'s True cells (as
                `GroundStations.look_into` returns them): the comparison then reads only
                this step's and the last step's pairs, not the whole matrix.

        Returns:
            starts: (k, 2) int64 rows (station_idx, sat_idx) that came into contact.
            ends: (m, 2) int64 rows (station_idx, sat_idx) that left contact.

        Raises:
            ValueError: if the shape changes between updates (call `reset` first).
        """
        cur = np.asarray(in_contact, dtype=bool)
        if self._prev is None:
            self._prev = np.zeros_like(cur)
        elif self._prev.shape != cur.shape:
            raise ValueError(
                f"in_contact shape {cur.shape} != previous {self._prev.shape}; call reset()"
            )
        n_sats = cur.shape[-1]
        if pairs is not None and self._prev_pairs is not None:
            starts = pairs[~self._prev.reshape(-1)[pairs]]
            ends = self._prev_pairs[~cur.reshape(-1)[self._prev_pairs]]
            self._prev[...] = cur
            self._prev_pairs = pairs.copy()
            if not (starts.size or ends.size):
                return _EMPTY_PAIRS, _EMPTY_PAIRS
            return _unravel(starts, n_sats), _unravel(ends, n_sats)
        changed = np.flatnonzero(self._prev ^ cur)
        self._prev_pairs = np.flatnonzero(cur) if pairs is None else pairs.copy()
        if not changed.size:
            return _EMPTY_PAIRS, _EMPTY_PAIRS
        # One pass over the matrix; the few changed pairs are then split and unravelled.
        is_start = cur.reshape(-1)[changed]
        pairs_2d = _unravel(changed, n_sats)
        self._prev[...] = cur  # own copy: the caller may reuse its array
        return pairs_2d[is_start], pairs_2d[~is_start]


def _unravel(flat: np.ndarray, n_sats: int) -> np.ndarray:
    """(k, 2) int64 rows (station_idx, sat_idx) of flat pair indices ``station * n + sat``."""
    rows = np.empty((flat.size, 2), dtype=np.int64)
    np.divmod(flat, n_sats, out=(rows[:, 0], rows[:, 1]))
    return rows

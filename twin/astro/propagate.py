"""Vectorized SGP4 propagation of a whole satellite catalog into the TEME frame."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np
from sgp4.api import Satrec, SatrecArray

# Per-satellite status codes. They are exactly the error codes of the SGP4 library
# (Vallado's C++ via the `sgp4` package), so a status can be looked up in its docs too.
STATUS_OK = 0
STATUS_ECCENTRICITY = 1
STATUS_MEAN_MOTION = 2
STATUS_PERTURBED_ECCENTRICITY = 3
STATUS_SEMI_LATUS_RECTUM = 4
STATUS_UNDERGROUND = 5
STATUS_DECAYED = 6

STATUS_NAMES: dict[int, str] = {
    STATUS_OK: "ok",
    STATUS_ECCENTRICITY: "mean eccentricity out of range 0 <= e < 1",
    STATUS_MEAN_MOTION: "mean motion below zero",
    STATUS_PERTURBED_ECCENTRICITY: "perturbed eccentricity out of range 0 <= e <= 1",
    STATUS_SEMI_LATUS_RECTUM: "semi-latus rectum below zero",
    # SGP4 no longer emits 5, but older builds did: keep the name so a code is never unknown.
    STATUS_UNDERGROUND: "satellite underground (legacy code, unused)",
    STATUS_DECAYED: "orbit decayed (mean radius below one Earth radius)",
}


class SatrecsOnDemand(Sequence[Satrec]):
    """Satrecs made one at a time as they are read (``SatrecArray`` copies each at once).

    A million generated satellites' ``Satrec`` objects are 1 kB each: a list of them is a
    1 GB temporary beside the ``SatrecArray`` being filled from it. Read through this
    sequence, each is built, copied and freed in turn (docs/performance.md, "Memory at a
    million"). A slice is another such sequence (a shard's range).

    Args:
        items: What each satrec is made from (the scenario's satellites).
        make: Makes one item's satrec (``Satellite.satrec``).
    """

    def __init__(self, items: Sequence[Any], make: Callable[[Any], Satrec]) -> None:
        self._items = items
        self._make = make

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> Satrec: ...

    @overload
    def __getitem__(self, index: slice) -> SatrecsOnDemand: ...

    def __getitem__(self, index: int | slice) -> Satrec | SatrecsOnDemand:
        if isinstance(index, slice):
            return SatrecsOnDemand(self._items[index], self._make)
        return self._make(self._items[index])


def read_tle_file(path: str | Path) -> tuple[list[str], list[Satrec]]:
    """Read a 3-line (name, line 1, line 2) or 2-line TLE file.

    Args:
        path: Path of the TLE text file.

    Returns:
        Names (the satellite number when the file has no name lines) and the
        `Satrec` objects, in file order.
    """
    lines = [ln.rstrip() for ln in Path(path).read_text().splitlines() if ln.strip()]
    names: list[str] = []
    sats: list[Satrec] = []
    i = 0
    while i < len(lines):
        if lines[i].startswith("1 ") and i + 1 < len(lines) and lines[i + 1].startswith("2 "):
            name, l1, l2 = lines[i][2:7].strip(), lines[i], lines[i + 1]
            i += 2
        else:
            name, l1, l2 = lines[i].strip(), lines[i + 1], lines[i + 2]
            i += 3
        names.append(name)
        sats.append(Satrec.twoline2rv(l1, l2))
    return names, sats


class Propagator:
    """SGP4 for a whole catalog at one instant, as a single C call.

    Attributes:
        n_sats: Number of satellites.
    """

    def __init__(self, satrecs: Sequence[Satrec]) -> None:
        """Wrap the satellites in one `SatrecArray`.

        Args:
            satrecs: The satellites, in the order every output row will follow.
        """
        self.n_sats: int = len(satrecs)
        self._array = SatrecArray(
            satrecs if isinstance(satrecs, SatrecsOnDemand) else list(satrecs))
        # Reused 1-element date inputs: SatrecArray wants arrays, and building
        # two new ones per step would be pure overhead.
        self._jd = np.zeros(1)
        self._fr = np.zeros(1)
        # (n,) bool: the satellites the last call failed (status nonzero, rows NaN), and
        # whether there was any.
        self.failed: np.ndarray = np.zeros(self.n_sats, dtype=bool)
        self.any_failed = False

    def prefetch(self, jd_whole: float, jd_frac: float) -> None:
        """Nothing: one process computes when asked (worker processes compute ahead,
        `twin.astro.shards.ShardedPropagator.prefetch`)."""

    def propagate(
        self, jd_whole: float, jd_frac: float, next_jd: tuple[float, float] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Propagate all satellites to one UTC instant.

        The date is split as SGP4 (and skyfield) want it, so that no precision is lost
        in a single float Julian date: the instant is `jd_whole + jd_frac` days, UTC
        (TLE epochs are UTC, AIAA 2006-6753).

        Never raises for a bad satellite: its status is nonzero and its rows are NaN.

        Args:
            jd_whole: Julian date UTC, whole part (any split works, e.g. from `sgp4.api.jday`).
            jd_frac: Julian date UTC, fractional part, days.
            next_jd: The next call's likely instant, which worker processes compute
                ahead (`twin.astro.shards`); unused here.

        Returns:
            pos_teme_km: (n, 3) float64 positions in TEME, km.
            vel_teme_km_s: (n, 3) float64 velocities in TEME, km/s.
            status: (n,) uint8 SGP4 status (see `STATUS_NAMES`), 0 when ok.
        """
        self._jd[0] = jd_whole
        self._fr[0] = jd_frac
        err, r, v = self._array.sgp4(self._jd, self._fr)
        pos_teme_km = r.reshape(self.n_sats, 3)
        vel_teme_km_s = v.reshape(self.n_sats, 3)
        status = err.reshape(self.n_sats)
        bad = np.not_equal(status, STATUS_OK, out=self.failed)
        self.any_failed = bool(bad.any())
        # The C library already writes NaN for failures; enforce it so the contract
        # does not depend on the library version.
        if self.any_failed:
            pos_teme_km[bad] = np.nan
            vel_teme_km_s[bad] = np.nan
        return pos_teme_km, vel_teme_km_s, status

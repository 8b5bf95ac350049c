"""Which satellite fills which SGP4 row: a compact plan a process builds its rows' satrecs from.

A million generated satellites as `Satrec` objects are about 1 GB, and SGP4's `SatrecArray`
copies them into another 1 GB. The plan instead names, for each contiguous run of rows,
where its satrecs come from:

- `ShellRun`: members of a generated shell, built from the shell's element arrays
  (`ShellElements`, 16 bytes a satellite) when a process asks for them;
- `CatalogRun`: satrecs the scenario already holds (TLE catalogs, cluster chiefs: a real
  catalog is tens of thousands at most).

`SatrecPlan.build` turns any range of rows into `SatrecArray` pieces of at most
``CHUNK_ROWS`` rows, so a process never holds more than one chunk of `Satrec` objects
besides its arrays. Each satrec is built by the same `sgp4init` call on the same floats
whatever the range or the chunking, and SGP4 computes satellite by satellite, so the rows
are bit for bit those of one `SatrecArray` over the whole fleet (twin.astro.shards).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sgp4.api import Satrec, SatrecArray

from twin.astro.constellation import ShellElements

CHUNK_ROWS = 32_768
"""Rows of one `SatrecArray` piece: 33 MB of arrays, and as much in transient `Satrec`
objects while it is built; a step makes one SGP4 call per piece (about 30 at a million),
which costs nothing next to the 5 ms of SGP4 in each."""


@dataclass(frozen=True, eq=False)
class ShellRun:
    """Rows [start, stop) are members of a generated shell, in order.

    Attributes:
        start: First row.
        stop: One past the last row.
        elements: The shell's element arrays.
        first_member: The shell member (row of ``elements``) at row ``start``.
        first_satnum: Catalog number of the member at row ``start``; one more each row.
    """

    start: int
    stop: int
    elements: ShellElements
    first_member: int
    first_satnum: int

    def satrecs(self, start: int, stop: int) -> list[Satrec]:
        """Rows [start, stop)'s satrecs (a range within this run)."""
        offset = start - self.start
        return self.elements.satrecs(self.first_member + offset,
                                     self.first_member + stop - self.start,
                                     self.first_satnum + offset)


@dataclass(frozen=True, eq=False)
class CatalogRun:
    """Rows [start, stop) are satrecs already built (``stop - start`` of them).

    Attributes:
        start: First row.
        stop: One past the last row.
        satrecs_held: The rows' satrecs, in order.
    """

    start: int
    stop: int
    satrecs_held: tuple[Satrec, ...]

    def satrecs(self, start: int, stop: int) -> list[Satrec]:
        """Rows [start, stop)'s satrecs (a range within this run)."""
        return list(self.satrecs_held[start - self.start:stop - self.start])


Run = ShellRun | CatalogRun


class SatrecPlan:
    """The runs that cover rows 0..n_sats-1, in order, with no gap.

    Attributes:
        runs: The runs.
        n_sats: Number of rows.
    """

    def __init__(self, runs: Sequence[Run]) -> None:
        """Raises:
            ValueError: The runs leave a gap, overlap, or do not start at row 0.
        """
        row = 0
        for k, run in enumerate(runs):
            if run.start != row or run.stop < run.start:
                raise ValueError(f"satrec plan run {k} covers rows {run.start}-{run.stop}; "
                                 f"it must start at row {row}")
            if isinstance(run, CatalogRun) and len(run.satrecs_held) != run.stop - run.start:
                raise ValueError(f"satrec plan run {k} holds {len(run.satrecs_held)} satrecs "
                                 f"for {run.stop - run.start} rows")
            row = run.stop
        self.runs: tuple[Run, ...] = tuple(runs)
        self.n_sats = row

    @classmethod
    def of_satrecs(cls, satrecs: Sequence[Satrec]) -> SatrecPlan:
        """A plan over satrecs already built (one catalog run)."""
        return cls([CatalogRun(0, len(satrecs), tuple(satrecs))] if len(satrecs) else [])

    def __len__(self) -> int:
        return self.n_sats

    def pieces(self, start: int, stop: int, chunk_rows: int = CHUNK_ROWS
               ) -> Iterator[tuple[int, int, Run]]:
        """(first row, one past the last, run) of each piece of rows [start, stop): the
        runs cut at ``chunk_rows``."""
        for run in self.runs:
            first, last = max(start, run.start), min(stop, run.stop)
            for piece in range(first, last, chunk_rows):
                yield piece, min(last, piece + chunk_rows), run

    def build(self, start: int, stop: int, chunk_rows: int = CHUNK_ROWS
              ) -> list[tuple[int, int, SatrecArray]]:
        """Rows [start, stop) as `SatrecArray` pieces: (first row, one past the last, array).

        Raises:
            ValueError: sgp4init rejected a generated satellite's elements.
        """
        return [(first, last, SatrecArray(run.satrecs(first, last)))
                for first, last, run in self.pieces(start, stop, chunk_rows)]

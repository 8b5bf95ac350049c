"""Per-satellite array work cut into contiguous slices, run on threads, same bits for any count.

After SGP4 (worker processes, twin.astro.shards) the per-satellite work of a step is numpy
arithmetic over (n,) and (n, 3) arrays: frame rotations, geodetic coordinates, shadow,
beta angle, station look angles, the arrays' Earth terms. numpy releases the GIL inside
each of those calls, so threads over slices of the rows run them on every core without
copying a byte (measured in docs/performance.md, "Every core: the rest of the step"), where
processes would need every field in shared memory and a hand-off per phase.

Why the results do not depend on the number of slices:

- Elementwise ufuncs compute each element by itself, so any cut of the rows gives the
  same bits.
- A BLAS product ((n, 3) @ (3, 3), (s, 5) @ (5, n), (3,) @ (3, n)) is not
  row-independent: OpenBLAS picks its kernel by size, so a slice's rows can differ from
  the whole array's in the last bit. Products are therefore always taken over the same
  fixed blocks of ``BLOCK_ROWS`` rows (`blocks`), whatever the slicing, and slices are
  cut on block edges: a fleet up to ``BLOCK_ROWS`` is one block, the whole array, as a
  single process computes it.
- Reductions over the whole fleet (a shadow test's bounds) are taken between phases, on
  the whole arrays, never per slice.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

BLOCK_ROWS = 8192
"""Rows of one BLAS block: products run block by block over these fixed index ranges, so
their results are the same for any slicing (64 kB of a (n,) float64 row, L2-sized)."""


def blocks(start: int, stop: int, block_rows: int = BLOCK_ROWS) -> Iterator[tuple[int, int]]:
    """The fixed blocks [a, b) covering [start, stop), cut at multiples of ``block_rows``."""
    a = start
    while a < stop:
        b = min(stop, (a // block_rows + 1) * block_rows)
        yield a, b
        a = b


def slice_bounds(n_rows: int, slices: int, block_rows: int = BLOCK_ROWS
                 ) -> list[tuple[int, int]]:
    """Contiguous [start, stop) ranges of whole blocks, as equal as can be, at most
    ``slices`` of them (fewer when there are fewer blocks); [(0, 0)] for no rows."""
    n_blocks = -(-n_rows // block_rows)
    if n_blocks == 0:
        return [(0, 0)]
    parts = max(1, min(slices, n_blocks))
    edges = np.linspace(0, n_blocks, parts + 1).round().astype(int) * block_rows
    edges[-1] = n_rows
    return [(int(a), int(b)) for a, b in itertools.pairwise(edges) if b > a]


def rows_of(value: Any, cut: slice) -> Any:
    """``value``'s satellites ``cut`` where it has one value per satellite along its last
    axis ((n,), or (k, n) rows of operands); a number, or a (k, 1) column for all, as it is."""
    if isinstance(value, np.ndarray) and value.ndim and value.shape[-1] > 1:
        return value[..., cut]
    return value


def rows_matmul(vectors: np.ndarray, matrix_t: np.ndarray, out: np.ndarray, start: int,
                stop: int) -> None:
    """``out[start:stop] = vectors[start:stop] @ matrix_t``, block by fixed block."""
    for a, b in blocks(start, stop):
        np.matmul(vectors[a:b], matrix_t, out=out[a:b])


def matmul_columns(matrix: np.ndarray, columns: np.ndarray, out: np.ndarray, start: int,
                   stop: int, out_offset: int = 0) -> None:
    """``out[..., start - out_offset:stop - out_offset] = matrix @ columns[:, start:stop]``,
    block by fixed block (``matrix`` (k,) or (k, m); ``columns`` (m, n); ``out_offset``:
    the column of the fleet that ``out``'s first column holds)."""
    for a, b in blocks(start, stop):
        np.matmul(matrix, columns[:, a:b], out=out[..., a - out_offset:b - out_offset])


class SlicePool:
    """Runs a function over the row slices of a fleet, the first in the caller's thread and
    each other in a pool thread, and waits for all.

    Args:
        n_rows: Rows (satellites).
        workers: Slices wanted (1: everything in the caller's thread, no pool).
    """

    def __init__(self, n_rows: int, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        self.bounds = slice_bounds(n_rows, workers)
        extra = len(self.bounds) - 1
        self._pool = (ThreadPoolExecutor(extra, thread_name_prefix="odc-slice")
                      if extra else None)

    def run(self, work: Callable[..., Any], *args: Any) -> list[Any]:
        """``work(start, stop, *args)`` for every slice; their results, in slice order.

        An exception in any slice is raised here once every slice has finished (none is
        left running into the next phase).
        """
        if self._pool is None:  # one slice, or closed: in this thread, in order
            return [work(start, stop, *args) for start, stop in self.bounds]
        futures: list[Future[Any]] = [self._pool.submit(work, a, b, *args)
                                      for a, b in self.bounds[1:]]
        first_error: BaseException | None = None
        results: list[Any] = []
        try:
            start, stop = self.bounds[0]
            results.append(work(start, stop, *args))
        except BaseException as exc:  # re-raised below, after the others
            first_error = exc
        for future in futures:
            try:
                results.append(future.result())
            except BaseException as exc:  # the first is re-raised below
                first_error = first_error or exc
        if first_error is not None:
            raise first_error
        return results

    def close(self) -> None:
        """End the pool's threads (idempotent)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

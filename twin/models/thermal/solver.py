"""The thermal network's solver: one backward-Euler step of the four-node chain, per
satellite, all numpy.

The nodes form a chain, radiator —pumped loop— compute —mount— bus —mount— battery, so
each step is a 4x4 tridiagonal solve done column-wise over the fleet: the chain's ends are
eliminated into a 2x2 system for the middle two, with Newton iterations on the radiating
nodes' T⁴ terms. ``inv_dt = 0`` (or nearly) gives the steady state. Equations:
docs/models.md, "Thermal".
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from twin.core.interfaces import COMPUTE
from twin.core.slices import SlicePool, rows_of

NEWTON_ITERATIONS = 1  # per step: T⁴ linearized about the last state; the residual,
# 6 k T² ΔT², is < 1e-4 of the flux for the ~1 K a node moves in a 60 s step


class _SolveConstants(NamedTuple):
    """Per-row constants of ``implicit_step`` for one dt (see there), (rows, 1) arrays."""

    c_dt: np.ndarray  # (4, 1) C / dt, W/K
    k_sink4: np.ndarray  # (2, 1) k T_sink⁴ of the radiating rows, W
    k3: np.ndarray  # (2, 1) 3 k, W/K⁴
    k4: np.ndarray  # (2, 1) 4 k, W/K⁴
    diag_const: np.ndarray  # (2, 1) the radiating rows' diagonals without the T³ term, W/K
    a_t: float  # the battery row's diagonal, W/K
    share_t: float  # g_bt / a_t


@functools.lru_cache(maxsize=16)
def _solve_constants(capacities_j_k: tuple[float, ...], inv_dt: float, g_cb: float,
                     g_bt: float, k_rad: float, k_bus: float, sink4: float) -> _SolveConstants:
    """``implicit_step``'s constants, built once per dt (read-only arrays)."""
    c_r, c_c, c_b, c_t = (c * inv_dt for c in capacities_j_k)
    k = np.array([[k_rad], [k_bus]])
    # The battery row, T_t = (r_t + g_bt T_b) / a_t with a_t = c_t + g_bt, folds into the bus
    # row: its diagonal loses g_bt² / a_t (g_bt - g_bt² / a_t = g_bt c_t / a_t, a number),
    # its right-hand side gains (g_bt / a_t) r_t.
    a_t = np.float64(c_t) + g_bt  # numpy's: a battery with neither gives inf, not an error
    arrays = [np.array([[c_r], [c_c], [c_b], [c_t]]), k * sink4, 3.0 * k, 4.0 * k,
              np.array([[c_r], [c_b + g_cb + g_bt * (c_t / a_t)]])]
    for array in arrays:
        array.flags.writeable = False
    return _SolveConstants(*arrays, a_t=a_t, share_t=g_bt / a_t)


def _per_node_constants(capacities_j_k: np.ndarray, inv_dt: float, g_cb: float, g_bt: float
                        ) -> _SolveConstants:
    """``_solve_constants`` for (4, n) capacities (a node class sets some), k = 1: the same
    arithmetic per element, so a node whose capacities are the fleet's gets the same bits.
    The battery's capacity is the fleet's (it is not a per-node key): one a_t for all."""
    c_dt = capacities_j_k * inv_dt
    c_t = float(c_dt[3, 0])
    a_t = np.float64(c_t) + g_bt
    diag_const = np.stack((c_dt[0], c_dt[2] + g_cb + g_bt * (c_t / a_t)))
    one = np.ones((2, 1))
    return _SolveConstants(c_dt, one * 1.0, 3.0 * one, 4.0 * one, diag_const, a_t=a_t,
                           share_t=g_bt / a_t)


class SolveWork:
    """Scratch for ``implicit_step`` over n satellites, kept from call to call.

    ``rows`` (10, n): four for the radiating nodes' T⁴ and T³ terms, then three pairs, each
    a per-satellite row over a row that is one number of the step's dt: [G, g_bt],
    [a_r, a_t], [G / a_r, g_bt / a_t] (see ``implicit_step``). A pair is one operand, so the
    radiator and the battery, the two ends of the chain, take one pass each. ``g_loop`` is
    the first pair's first row: a caller may write G there.

    Args:
        n_sats: Satellites.
        rows: (10, n) array to use; allocated when None.
    """

    def __init__(self, n_sats: int, rows: np.ndarray | None = None) -> None:
        self.n_sats = n_sats
        self.rows = np.empty((10, n_sats)) if rows is None else rows
        self.g_loop = self.rows[4]
        self._numbers: tuple[float, float, float] | None = None
        # Works over columns of these rows (``columns``), and the one this is a part of:
        # a fill of either side makes the other's kept numbers stale.
        self._parts: list[SolveWork] = []
        self._whole: SolveWork | None = None

    def columns(self, start: int, stop: int) -> SolveWork:
        """A work over the satellites [start, stop) of this one, sharing its rows (for one
        row slice of ``SlicedSolve``)."""
        part = SolveWork(stop - start, self.rows[:, start:stop])
        part._whole = self
        self._parts.append(part)
        return part

    def fill(self, g_bt: float, a_t: float, share_t: float) -> None:
        """Set the pairs' rows of numbers (kept while they stay the same)."""
        numbers = (g_bt, a_t, share_t)
        if numbers != self._numbers:
            self.rows[5], self.rows[7], self.rows[9] = numbers
            self._numbers = numbers
            # The whole's rows now hold other numbers in these columns; the parts' columns
            # are all rewritten. (Parts write disjoint columns: siblings stay valid.)
            if self._whole is not None:
                self._whole._numbers = None
            for part in self._parts:
                part._numbers = None


class SlicedSolve:
    """``implicit_step`` over the row slices of a ``SlicePool`` (twin.core.slices): every
    satellite's solve reads and writes its own column alone (elementwise ufuncs, no BLAS,
    no reduction), so any slicing gives the same bits. One slice calls ``implicit_step``
    once on the whole arrays, as before slicing.

    Args:
        work: The whole fleet's scratch; each slice takes its columns.
        pool: The row slices.
    """

    def __init__(self, work: SolveWork, pool: SlicePool) -> None:
        self.pool = pool
        self.work = work
        self._works = {(a, b): work.columns(a, b) for a, b in pool.bounds}

    def step(self, temps_k: np.ndarray, inv_dt: float, capacities_j_k: np.ndarray,
             g_loop: np.ndarray | float, g_cb: float, g_bt: float,
             k_rad: np.ndarray | float, k_bus: np.ndarray | float, heat_w: np.ndarray,
             sink4: float, iterations: int, out: np.ndarray, rhs: np.ndarray) -> np.ndarray:
        """``implicit_step`` with the same arguments (``work``: this one's), in slices."""
        if len(self.pool.bounds) == 1:
            return implicit_step(temps_k, inv_dt, capacities_j_k, g_loop, g_cb, g_bt, k_rad,
                                 k_bus, heat_w, sink4, iterations, out=out, work=self.work,
                                 rhs=rhs)
        self.pool.run(self._step_slice, temps_k, inv_dt, capacities_j_k, g_loop, g_cb, g_bt,
                      k_rad, k_bus, heat_w, sink4, iterations, out, rhs)
        return out

    def _step_slice(self, start: int, stop: int, temps_k: np.ndarray, inv_dt: float,
                    capacities_j_k: np.ndarray, g_loop: np.ndarray | float, g_cb: float,
                    g_bt: float, k_rad: np.ndarray | float, k_bus: np.ndarray | float,
                    heat_w: np.ndarray, sink4: float, iterations: int, out: np.ndarray,
                    rhs: np.ndarray) -> None:
        work = self._works[start, stop]
        cols = slice(start, stop)
        if g_loop is self.work.g_loop:  # already in place: the slice's columns of it
            g_loop = work.g_loop
        elif isinstance(g_loop, np.ndarray):
            g_loop = g_loop[cols]
        implicit_step(temps_k[:, cols], inv_dt,
                      capacities_j_k[:, cols] if capacities_j_k.ndim > 1 else capacities_j_k,
                      g_loop, g_cb, g_bt, rows_of(k_rad, cols), rows_of(k_bus, cols),
                      heat_w[:, cols], sink4, iterations, out=out[:, cols], work=work,
                      rhs=rhs[:, cols])



def implicit_step(temps_k: np.ndarray, inv_dt: float, capacities_j_k: np.ndarray,
                  g_loop: np.ndarray | float, g_cb: float, g_bt: float,
                  k_rad: np.ndarray | float, k_bus: np.ndarray | float, heat_w: np.ndarray,
                  sink4: float, iterations: int, out: np.ndarray | None = None,
                  work: SolveWork | None = None, rhs: np.ndarray | None = None
                  ) -> np.ndarray:
    """One backward-Euler step of the chain network, Newton on the T⁴ terms.

    Solves, per satellite, C (T - T0) / dt = Q - k (T⁴ - T_sink⁴) + Σ G (T_other - T) for the
    four nodes (radiator, compute, bus, battery). ``inv_dt = 0`` gives the steady state.
    The chain's two ends are eliminated into the middle (the radiator into the compute row,
    the battery into the bus row), leaving a 2x2 system per satellite, solved by Cramer's
    rule. Rows alike in their arithmetic are handled together as (2, n) views (the
    radiating nodes, rows 0 and 2; the chain's ends, rows 0 and 3; the middle, rows 1 and
    2), halving the passes, and intermediate values live in ``work`` and in ``out`` before
    the result: few distinct arrays, so that they stay in cache.

    Args:
        temps_k: (4, n) temperatures at the start of the step, K (the first Newton guess).
        inv_dt: 1 / dt, 1/s.
        capacities_j_k: (4,) heat capacities, J/K; (4, n) when a node class sets some.
        g_loop: (n,) radiator-compute conductance, W/K (or one for all).
        g_cb: compute-bus conductance, W/K.
        g_bt: bus-battery conductance, W/K.
        k_rad: (n,) ε σ A of the radiator (both faces), W/K⁴ (or one for all).
        k_bus: (n,) ε σ A of the bus radiator, W/K⁴ (or one for all).
        heat_w: (4, n) absorbed plus internal heat into each node, W.
        sink4: T_sink⁴, K⁴.
        iterations: Newton iterations.
        out: (4, n) array for the result (not ``temps_k``); allocated when None.
        work: Scratch for n satellites; allocated when None.
        rhs: (4, n) array for the right-hand sides; may be ``heat_w`` itself, which is then
            overwritten; allocated when None.

    Returns:
        (4, n) temperatures at the end of the step, K.
    """
    n = temps_k.shape[1]
    if out is None:
        out = np.empty_like(temps_k)
    if work is None:
        work = SolveWork(n)
    if rhs is None:
        rhs = np.empty_like(temps_k)
    per_node = capacities_j_k.ndim > 1
    uniform_k = isinstance(k_rad, float) and isinstance(k_bus, float)
    if per_node:
        k = _per_node_constants(capacities_j_k, inv_dt, g_cb, g_bt)
    else:
        k = _solve_constants(tuple(capacities_j_k.tolist()), inv_dt, g_cb, g_bt,
                             k_rad if uniform_k else 1.0, k_bus if uniform_k else 1.0, sink4)
    if per_node or not uniform_k:
        k_rows = np.empty((2, n))
        k_rows[0], k_rows[1] = k_rad, k_bus
        k = k._replace(k_sink4=k_rows * sink4, k3=3.0 * k_rows, k4=4.0 * k_rows)
    work.fill(g_bt, k.a_t, k.share_t)
    rows = work.rows
    if g_loop is not work.g_loop:
        np.copyto(work.g_loop, g_loop)
    g_loop = work.g_loop
    # Right-hand sides that do not depend on the guess: C T0 / dt + Q, plus k T_sink⁴ on the
    # radiating rows (``out`` holds C T0 / dt until the result).
    np.add(heat_w, np.multiply(temps_k, k.c_dt, out=out), out=rhs)
    rhs[0::2] += k.k_sink4
    rhs_rb = rhs[0::2].copy() if iterations > 1 else None  # each guess adds its own term
    c_c = k.c_dt[COMPUTE] if per_node else k.c_dt[COMPUTE, 0]
    fourth, diag = rows[0:2], rows[2:4]
    a_r, share = rows[6], rows[8]
    ends = out[0::3]  # [t_r, t_t]: first the ends' reduced right-hand sides, then the result
    guess = temps_k[0::2]
    for _ in range(iterations):
        # k T⁴ ≈ k T*⁴ + 4 k T*³ (T - T*): slope on the diagonal, 3 k T*⁴ on the right.
        np.multiply(guess, guess, out=fourth)
        np.multiply(fourth, guess, out=diag)
        fourth *= fourth
        fourth *= k.k3
        if rhs_rb is None:
            rhs[0::2] += fourth
        else:
            np.add(rhs_rb, fourth, out=rhs[0::2])
        diag *= k.k4
        diag += k.diag_const  # [radiator without the loop, bus with the battery folded in]
        d_r, d_b = diag
        # The radiator row, T_r = (r_r + G T_c) / a_r with a_r = d_r + G, folds into the
        # compute row: its diagonal becomes a_c = c_c + g_cb + G d_r / a_r, its right side
        # r_c + (G / a_r) r_r. The battery row likewise into the bus row: its right side
        # r_b + (g_bt / a_t) r_t (its diagonal's share is a number, in diag_const).
        np.add(d_r, g_loop, out=a_r)
        np.divide(g_loop, a_r, out=share)
        np.multiply(rows[8:10], rhs[0::3], out=ends)
        ends += rhs[1:3]
        a_c = d_r
        a_c *= share
        a_c += c_c + g_cb
        # Left: [a_c, -g_cb; -g_cb, d_b] [T_c; T_b] = [t_r; t_t], diagonally dominant; by
        # Cramer's rule, [T_c; T_b] = ([d_b; a_c] [t_r; t_t] + g_cb [t_t; t_r]) / det, the
        # operands (2, n) views of ``work`` and ``out`` in the order they need.
        det = np.multiply(a_c, d_b, out=share)
        det -= g_cb * g_cb
        middle = out[1:3]
        np.multiply(rows[3:1:-1], ends, out=middle)
        middle += np.multiply(out[3::-3], g_cb, out=fourth)
        middle /= det
        # The ends from their rows: [T_r; T_t] = ([r_r; r_t] + [G; g_bt] [T_c; T_b])
        # / [a_r; a_t].
        np.multiply(rows[4:6], out[1:3], out=ends)
        ends += rhs[0::3]
        ends /= rows[6:8]
        guess = out[0::2]
    return out

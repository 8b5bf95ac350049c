"""SGP4 workers compute the next step's rows ahead (twin.astro.shards): the rows are the
same bits as a one-process propagation whether the guess was right, wrong or absent, and
the guess is really computed before it is asked for."""

from __future__ import annotations

import time

import numpy as np
import pytest

from twin.astro.propagate import Propagator
from twin.astro.satrec_plan import SatrecPlan
from twin.astro.shard_worker import BUFFERS
from twin.astro.shards import MAX_BAND_ROWS, ShardedPropagator, shard_bounds, shared_band
from twin.core.clock import SimClock
from twin.scenario import load_scenario

JD = 2461000.5
STEP_DAYS = 30.0 / 86400.0


@pytest.fixture(scope="module")
def satrecs() -> list:
    return [sat.satrec for sat in load_scenario("default").satellites]


def _same(got: tuple[np.ndarray, ...], want: tuple[np.ndarray, ...]) -> None:
    for mine, theirs in zip(got, want, strict=True):
        assert np.array_equal(mine, theirs, equal_nan=True)


def _written(rows: np.ndarray, want: np.ndarray, within_s: float) -> bool:
    """Whether ``rows`` equal ``want`` within ``within_s`` (polled)."""
    deadline = time.monotonic() + within_s
    while not np.array_equal(rows, want):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_the_band_is_the_end_of_the_twins_share_and_bounded() -> None:
    assert shared_band(shard_bounds(10, 2)) == (0, 5)  # all of it: the twin may take none
    assert shared_band(shard_bounds(100, 3)) == (3, 33)
    assert shared_band(shard_bounds(1_000_000, 2)) == (500_000 - MAX_BAND_ROWS, 500_000)
    assert shared_band(shard_bounds(10, 1)) == (10, 10)  # no worker: no band


@pytest.mark.timeout(60)
def test_rows_are_one_process_bits_when_the_guess_is_right_wrong_or_absent(satrecs) -> None:
    reference = Propagator(satrecs)
    propagator = ShardedPropagator(satrecs, 3)
    try:
        instants = [(JD, 0.25 + k * STEP_DAYS) for k in range(6)]
        for k, instant in enumerate(instants[:-1]):  # guessed right each time
            _same(propagator.propagate(*instant),
                  tuple(a.copy() for a in reference.propagate(*instant)))
            propagator.prefetch(*instants[k + 1])
        # A seek: the guess was the next step, the instant asked is another day.
        _same(propagator.propagate(JD + 1, 0.5), reference.propagate(JD + 1, 0.5))
        # No guess; a guess of another instant, asked at once (the guess half done).
        _same(propagator.propagate(JD, 0.75), reference.propagate(JD, 0.75))
        propagator.prefetch(JD, 0.8)
        _same(propagator.propagate(JD, 0.85), reference.propagate(JD, 0.85))
        # The same instant asked twice in a row, guessed before each.
        for _ in range(2):
            propagator.prefetch(JD, 0.9)
            _same(propagator.propagate(JD, 0.9), reference.propagate(JD, 0.9))
    finally:
        propagator.close()


@pytest.mark.timeout(60)
def test_the_next_instant_is_computed_into_the_other_buffer_before_it_is_asked(satrecs) -> None:
    reference = Propagator(satrecs)
    propagator = ShardedPropagator(satrecs, 2)
    try:
        propagator.propagate(JD, 0.25)
        propagator.prefetch(JD, 0.5)
        assert BUFFERS == 2
        ahead_pos = propagator._buffers[1][0]  # the next call's buffer
        workers_own = slice(propagator.band[1], propagator.n_sats)  # never the twin's
        want = reference.propagate(JD, 0.5)[0]
        assert _written(ahead_pos[workers_own], want[workers_own], 10)  # before asked
        # The twin's own rows are computed when asked, not ahead.
        twins_own = slice(0, propagator.band[0])
        assert not np.array_equal(ahead_pos[twins_own], want[twins_own])
        _same(propagator.propagate(JD, 0.5), reference.propagate(JD, 0.5))
    finally:
        propagator.close()


@pytest.mark.timeout(60)
def test_stepping_flat_out_the_worker_starts_at_once_and_with_time_between_at_the_end(
        satrecs) -> None:
    """Steps that follow each other with no time between: the worker computes the next
    step as soon as it has answered. Steps with time between (a live twin): it waits for
    the step's end (``prefetch``), so that it does not compete with the twin's step."""
    reference = Propagator(satrecs)
    propagator = ShardedPropagator(satrecs, 2)
    workers_own = slice(propagator.band[1], propagator.n_sats)
    try:
        instants = [(JD, 0.25 + k * STEP_DAYS) for k in range(8)]
        propagator.propagate(*instants[0], instants[1])  # flat out: no step end said yet
        ahead = propagator._buffers[1][0][workers_own]
        assert _written(ahead, reference.propagate(*instants[1])[0][workers_own], 10)
        for k in range(1, 6):  # a live twin: the step's end said, then time to its tick
            propagator.propagate(*instants[k], instants[k + 1])
            propagator.prefetch(*instants[k + 1])
            time.sleep(0.05)
        propagator.propagate(*instants[6], instants[7])  # written into buffer 0
        ahead = propagator._buffers[1][0][workers_own]
        want = reference.propagate(*instants[7])[0][workers_own]
        assert not _written(ahead, want, 0.3)  # waits for the step's end
        propagator.prefetch(*instants[7])
        assert _written(ahead, want, 10)
        _same(propagator.propagate(*instants[7]), reference.propagate(*instants[7]))
    finally:
        propagator.close()


@pytest.mark.timeout(60)
def test_an_idle_worker_takes_the_band_and_the_rows_stay_the_same(satrecs) -> None:
    """Between paced steps the worker has its rows ready long before it is asked: it is
    given the band piece by piece, and the rows are the same bits throughout."""
    plan = SatrecPlan.of_satrecs(satrecs * 500)  # 20,000 rows: a band of 5 pieces
    reference = Propagator(satrecs * 500)
    propagator = ShardedPropagator(plan, 2)
    try:
        assert len(propagator._band_pieces) == 5 and propagator.taken == 2
        taken = []
        for k in range(12):
            instant, upcoming = (JD, 0.25 + k * STEP_DAYS), (JD, 0.25 + (k + 1) * STEP_DAYS)
            _same(propagator.propagate(*instant), reference.propagate(*instant))
            propagator.prefetch(*upcoming)
            taken.append(propagator.taken)
            time.sleep(0.05)  # the twin's pacing: the worker is done ahead and waits
        # From the middle of the band down to none (a loaded machine's late wake-up can
        # make the twin wait once and take a piece back: the rows stay the same anyway).
        assert 0 in taken
    finally:
        propagator.close()


def test_the_balance_moves_one_piece_and_stays_in_the_band(satrecs) -> None:
    propagator = ShardedPropagator(satrecs * 300, 2)
    try:
        pieces = len(propagator._band_pieces)
        assert propagator._balance(1, waited_s=0.01, idle_s=0.0) == 2  # the twin waited
        assert propagator._balance(pieces, waited_s=0.01, idle_s=0.0) == pieces
        assert propagator._balance(1, waited_s=0.0, idle_s=0.01) == 0  # the worker idled
        assert propagator._balance(0, waited_s=0.0, idle_s=0.01) == 0
        assert propagator._balance(1, waited_s=0.0, idle_s=0.0) == 1
        assert propagator._balance(1, waited_s=0.01, idle_s=0.01) == 2  # waiting first
        propagator.close()
        propagator.prefetch(JD, 0.5)  # closed: nothing to ask, no error
    finally:
        propagator.close()


def test_the_clock_names_the_next_instant_to_the_bit() -> None:
    clock = SimClock(load_scenario("default").epoch_utc, rate_hz=7.0, warp=13.0)
    for _ in range(50):
        guess = clock.next_jd_utc
        clock.advance()
        assert clock.jd_utc == guess
    clock.set_warp(60.0)
    guess = clock.next_jd_utc
    clock.advance()
    assert clock.jd_utc == guess

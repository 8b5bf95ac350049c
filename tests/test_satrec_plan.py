"""The satrec plan (twin.astro.satrec_plan, twin.scenario.satrecs): each process builds its
rows' satrecs from a shell's element arrays or a catalog's satrecs, bit for bit the
scenario's, and a worker that cannot build its shard stops the start with a clear error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sgp4.api import SatrecArray

from twin.astro.satrec_plan import CatalogRun, SatrecPlan, ShellRun
from twin.astro.shards import ShardedPropagator, ShardError
from twin.core.clock import SimClock
from twin.core.engine import Engine
from twin.scenario import Scenario, parse_scenario
from twin.scenario.loader import SCENARIOS_DIR
from twin.scenario.satrecs import satrec_plan

MIXED_EXTRA = """
[[walker]]
name = "w"
altitude_km = 600.0
inclination_deg = 53.0
planes = 3
sats_per_plane = 7
phasing = 1

[[sun_synchronous]]
name = "s"
altitude_km = 700.0
ltan_h = 10.5
planes = 2
sats_per_plane = 5
phasing = 1
"""
CLUSTER = """
[[cluster]]
name = "C"
altitude_km = 650.0
ltan_h = 18.0
members = 4
radius_m = 1000.0
spacing_m = 100.0
min_separation_m = 50.0
warn_separation_m = 75.0
"""


def _mixed_scenario(cluster: str = CLUSTER) -> Scenario:
    """Two generated shells, a cluster and 30 TLEs from the bundled Starlink catalog."""
    text = (SCENARIOS_DIR / "starlink.toml").read_text().replace(
        "# limit = 500", "limit = 30", 1)
    return parse_scenario(text + MIXED_EXTRA + cluster, base_dir=Path(SCENARIOS_DIR))


def _rows(plan: SatrecPlan, chunk_rows: int, jd: float, fr: float) -> np.ndarray:
    out = np.empty((plan.n_sats, 3))
    for first, last, array in plan.build(0, plan.n_sats, chunk_rows):
        out[first:last] = array.sgp4(np.array([jd]), np.array([fr]))[1][:, 0]
    return out


def test_the_plan_builds_the_scenarios_satrecs_bit_for_bit_in_any_chunks() -> None:
    scenario = _mixed_scenario()
    satellites = scenario.satellites
    plan = satrec_plan(satellites)
    assert [(type(run).__name__, run.start, run.stop) for run in plan.runs] == [
        ("ShellRun", 0, 21), ("ShellRun", 21, 31), ("CatalogRun", 31, 65)]
    assert plan.n_sats == len(satellites) == 65
    jd, fr = satellites[40].satrec.jdsatepoch + 1.0, 0.375
    reference = SatrecArray([sat.satrec for sat in satellites]).sgp4(
        np.array([jd]), np.array([fr]))[1][:, 0]
    for chunk_rows in (1, 4, 7, 64):
        assert np.array_equal(_rows(plan, chunk_rows, jd, fr), reference), chunk_rows
    # Element for element too, catalog numbers included.
    built = [satrec for first, last, run in plan.pieces(0, 65, 5)
             for satrec in run.satrecs(first, last)]
    for mine, theirs in zip(built, (sat.satrec for sat in satellites), strict=True):
        assert (mine.satnum, mine.nodeo, mine.mo, mine.no_kozai, mine.inclo) == (
            theirs.satnum, theirs.nodeo, theirs.mo, theirs.no_kozai, theirs.inclo)


def test_a_plan_with_a_gap_or_a_short_catalog_run_is_refused() -> None:
    satrecs = tuple(sat.satrec for sat in _mixed_scenario().satellites[31:35])
    with pytest.raises(ValueError, match="run 1 covers rows 3-4; it must start at row 2"):
        SatrecPlan([CatalogRun(0, 2, satrecs[:2]), CatalogRun(3, 4, satrecs[2:3])])
    with pytest.raises(ValueError, match="run 0 holds 3 satrecs for 2 rows"):
        SatrecPlan([CatalogRun(0, 2, satrecs[:3])])


def test_the_engines_workers_are_forked_with_the_plan_of_the_shells() -> None:
    # No cluster: its 4 members trip a limits bug unrelated to SGP4 (reported).
    scenario = _mixed_scenario(cluster="")
    engine = Engine(scenario, SimClock(scenario.epoch_utc, rate_hz=1.0, warp=60.0, fast=True),
                    workers=2)
    try:
        propagator = engine.orbit.propagator
        assert isinstance(propagator, ShardedPropagator)
        assert isinstance(propagator._plan.runs[0], ShellRun)
        engine.orbit.run_on_workers(2)  # what the engine does after the build: no re-fork
        assert engine.orbit.propagator is propagator and len(propagator.pids) == 1
        engine.step()
        assert not propagator.any_failed
    finally:
        engine.close()


@pytest.mark.timeout(60)
def test_a_worker_that_cannot_build_its_shard_stops_the_start_with_a_clear_error() -> None:
    satrecs = tuple(sat.satrec for sat in _mixed_scenario().satellites[31:41])
    # Row 9 (shard 1's, rows 0-9: of so few rows, shard 0's whole share is the band that
    # the twin's process and shard 1's worker both hold) holds something that is not a
    # satrec: its worker fails to build.
    broken = SatrecPlan([CatalogRun(0, 5, satrecs[:5]),
                         CatalogRun(5, 10, (*satrecs[5:9], "not a satrec"))])
    with pytest.raises(ShardError, match=r"shard 1 \(satellites 0-9\) died while building "
                                         r"its satellites.*--workers 1"):
        ShardedPropagator(broken, 2)


@pytest.mark.timeout(60)
def test_a_model_that_fails_to_build_after_the_orbit_ends_its_workers() -> None:
    import psutil

    from twin.core.registry import ModelEntry
    from twin.models.registry import MODELS

    def fail(_built: object) -> None:
        raise RuntimeError("this model cannot be built")

    entries = (next(e for e in MODELS if e.name == "orbit"), ModelEntry("boom", fail))
    scenario = _mixed_scenario(cluster="")
    me = psutil.Process()
    before = {child.pid for child in me.children(recursive=True)}
    with pytest.raises(RuntimeError, match="cannot be built"):
        Engine(scenario, SimClock(scenario.epoch_utc, rate_hz=1.0, warp=60.0, fast=True),
               workers=2, models=entries)
    # Workers from the forkserver are grandchildren; the forkserver and the resource
    # tracker outlive an engine.
    left = [child for child in me.children(recursive=True) if child.pid not in before
            and child.status() != psutil.STATUS_ZOMBIE
            and child.name().startswith("odc-shard-")]
    assert left == []

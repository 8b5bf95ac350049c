"""A scenario's satellites as a `SatrecPlan`: runs of shell members and of held satrecs.

The SGP4 workers build their own rows' satrecs from it (twin.astro.shards), so the twin's
process never turns a million generated satellites into `Satrec` objects at once.
"""

from __future__ import annotations

from collections.abc import Sequence

from twin.astro.satrec_plan import CatalogRun, Run, SatrecPlan, ShellRun
from twin.scenario.loader import GeneratedSource, Satellite


def satrec_plan(satellites: Sequence[Satellite]) -> SatrecPlan:
    """The plan whose row i is ``satellites[i].satrec``, bit for bit.

    Consecutive members of one shell, in member order and with consecutive catalog
    numbers (what the loader makes), are one `ShellRun`; any other satellite (a TLE, a
    cluster chief, a satellite given its own satrec) joins a `CatalogRun` that refers to
    the satrec the scenario already holds. One pass over the satellites, at start-up only.
    """
    runs: list[Run] = []
    held: list = []  # the current catalog run's satrecs
    held_from = 0
    i, n = 0, len(satellites)
    while i < n:
        sat = satellites[i]
        source = sat.source
        if not isinstance(source, GeneratedSource):
            if not held:
                held_from = i
            held.append(source)
            i += 1
            continue
        if held:
            runs.append(CatalogRun(held_from, i, tuple(held)))
            held = []
        member, satnum = sat.sat_id - source.first_sat_id, sat.norad_id
        stop = i + 1
        while stop < n:
            follower = satellites[stop]
            k = stop - i
            if (follower.source is not source or follower.norad_id != satnum + k
                    or follower.sat_id - source.first_sat_id != member + k):
                break
            stop += 1
        runs.append(ShellRun(i, stop, source.elements, member, satnum))
        i = stop
    if held:
        runs.append(CatalogRun(held_from, n, tuple(held)))
    return SatrecPlan(runs)

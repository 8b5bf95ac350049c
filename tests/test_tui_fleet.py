"""The dashboard's fleet view (``v``) on a starlink-size fleet, driven by textual's pilot.

The app runs without a twin (``connect=False``) and is fed what a real engine stepping
the bundled ``starlink`` scenario (4,428 nodes) publishes, through the real codec. That
scenario has one group; the fleet here is split into four altitude shells in ``meta``
(``shell_groups``) so the group summary has rows to compare. A few nodes are held hot,
warm and flat (tuiutil.Hold), so the limits, the worst list and the alarm counts react as
they do to a real hot node. Every number the view shows is checked against numpy.
"""

from __future__ import annotations

import asyncio
import functools
import math
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from textual.app import App
from textual.coordinate import Coordinate

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tuiutil
from tuiutil import until

from twin.core.clock import SimClock
from twin.core.engine import Engine
from twin.protocol.codec import TOPIC_META, decode, encode_map, encode_state
from twin.scenario import load_scenario
from viz.fleet_stats import worst_rule
from viz.stream import LIVE
from viz.tui.app import DashboardApp, StreamUpdate
from viz.tui.fleet import FLEET_INTERVAL_S, TOP_N, FleetView, PacedTicks, field_choices
from viz.tui.screens import DetailScreen

SIZE = (120, 40)
STEPS = 3
HOT = {17: tuiutil.HOT_K, 2900: tuiutil.HOT_K + 1.0, 4000: tuiutil.WARM_K}
FLAT = {123: 0.04, 3001: 0.1}  # state of charge below its alarm limit
SHELL_EDGES_KM = (450.0, 540.0, 560.0)


@functools.cache
def starlink_feed() -> tuple:
    """(meta, [states]) of the starlink scenario after 1..STEPS steps, nodes held."""
    scenario = load_scenario("starlink")
    engine = Engine(scenario, SimClock(scenario.epoch_utc, rate_hz=10.0, warp=60.0, fast=True))
    engine.subsystems.insert(engine.subsystems.index(engine.limits), tuiutil.Hold(
        engine, {"temp_compute_k": HOT, "soc_frac": FLAT}))
    states = []
    for seq in range(STEPS):
        engine.step()
        header = {"v": 1, "seq": seq, "t_utc": engine.clock.t_utc, "run_id": 1,
                  **engine.header()}
        frames = encode_state(header, [f.spec for f in engine.fields],
                              [f.array for f in engine.fields])
        states.append(decode([bytes(f) for f in frames]))
    body = {"v": 1, "seq": 0, "t_utc": engine.clock.t_utc, "run_id": 1, **engine.meta()}
    altitude = states[-1].arrays["alt_km"]
    shells = np.digitize(altitude, SHELL_EDGES_KM)
    names = ("below 450 km", "450-540 km", "540-560 km", "above 560 km")
    body["sats"] = {**body["sats"], "groups": [names[s] for s in shells.tolist()]}
    return decode(encode_map(TOPIC_META, body)), states


def run_async(test):
    """A sync test running the async ``test`` to its end (the project has no pytest-asyncio)."""
    @functools.wraps(test)
    def run(*args, **kwargs) -> None:
        asyncio.run(test(*args, **kwargs))
    return run


def fed_app() -> DashboardApp:
    return DashboardApp("tcp://127.0.0.1:1", "tcp://127.0.0.1:1", connect=False)


async def feed(pilot) -> None:
    meta, states = starlink_feed()
    pilot.app.feed(StreamUpdate(meta=meta, connection=LIVE))
    for state in states:
        pilot.app.feed(StreamUpdate(state=state, connection=LIVE))
    await pilot.pause(0.2)


async def open_fleet_view(pilot) -> FleetView:
    await feed(pilot)
    await pilot.press("v")
    await pilot.pause(0.2)
    return pilot.app.fleet_view


def fleet_view_shows_newest(app: DashboardApp) -> bool:
    """Whether the fleet view (redrawn on its own timer, every FLEET_INTERVAL_S) has drawn
    the newest state fed."""
    drawn = app._fleet_drawn
    return bool(drawn) and drawn[0] == app.model.states_seen


def cells(table) -> list[list[str]]:
    return [[table.get_cell_at(Coordinate(y, x)).__str__() for x in range(len(table.columns))]
            for y in range(table.row_count)]


@run_async
async def test_fleet_view_shows_what_numpy_computes() -> None:
    app = fed_app()
    async with app.run_test(size=SIZE) as pilot:
        view = await open_fleet_view(pilot)
        model = app.model
        assert view.display and not app.fleet_table.display
        assert app.focused is view.worst_table
        # The chosen field: the first with limits in table order, compute temperature.
        column = model.column("temp_compute_k")
        assert view.field == "temp_compute_k"
        temps = model.values("temp_compute_k").astype(np.float64)
        groups = np.array(model.groups)

        rows = cells(view.groups_table)
        assert [r[0] for r in rows] == sorted(set(model.groups))
        in_alarm = model.worst >= 2
        for row in rows:
            members = groups == row[0]
            assert row[1] == f"{members.sum():,}"
            assert int(row[2]) == int(in_alarm[members].sum())
            assert int(row[3]) == int(((model.worst == 1) & members).sum())
            shown = temps[members]
            expected = column.unit.numbers([shown.min(), shown.mean(), shown.max()])
            assert row[4] == " · ".join(expected), row[0]
        assert int(np.array([int(r[2]) for r in rows]).sum()) == len(HOT) - 1 + len(FLAT)

        # The worst list: compute has a cold and a hot limit, so the nodes with the least
        # margin to the nearer one come first (the held hot ones), against a full sort.
        low, high = column.limits["warn_low"], column.limits["warn_high"]
        margin = np.minimum(temps - low, high - temps) / (high - low)
        expected_sats = np.argsort(margin, kind="stable")[:TOP_N]
        rows = cells(view.worst_table)
        assert [r[1] for r in rows] == [model.name(s) for s in expected_sats]
        assert [r[2] for r in rows] == column.unit.numbers(temps[expected_sats].tolist())
        assert set(expected_sats[:len(HOT)].tolist()) == set(HOT)
        assert view.worst_table.border_title == f"{TOP_N} nearest a limit by {column.label}"
        # ... each with its margin to the limit it is nearer, in the field's display unit.
        nearer_low = temps - low < high - temps
        assert [r[4] for r in rows] == [
            f"{abs(margin[s]) * (high - low):.1f} °C {'to' if margin[s] >= 0 else 'past'} "
            f"{'low' if nearer_low[s] else 'high'}" for s in expected_sats]

        # The histogram: a line per bin, highest first, its count last.
        lines = view.histogram.render().plain.splitlines()
        bins = len(view.histogram.counts)
        counts, _ = np.histogram(temps, bins=bins)
        assert [int(line.split()[-1]) for line in lines[:bins]] == counts[::-1].tolist()
        assert bins >= 10


@run_async
async def test_c_picks_the_field_and_enter_opens_the_node() -> None:
    app = fed_app()
    async with app.run_test(size=SIZE) as pilot:
        view = await open_fleet_view(pilot)
        choices = [c.key for c in field_choices(app.model)]
        assert choices.index("soc_frac") > 0
        for _ in range(choices.index("soc_frac")):
            await pilot.press("c")
        await pilot.pause(0.2)
        assert view.field == "soc_frac"
        soc = app.model.values("soc_frac")
        # State of charge is worst low (its limits are low ones): the flat nodes on top.
        band = worst_rule(app.model.column("soc_frac").limits).band
        assert band is not None and band.high == np.inf
        assert view.worst_sats[:2].tolist() == sorted(FLAT, key=lambda s: FLAT[s])
        assert view.worst_sats.tolist() == np.argsort(soc, kind="stable")[:TOP_N].tolist()
        label = app.model.column("soc_frac").label
        assert view.worst_table.border_title == f"{TOP_N} nearest a limit by {label}"
        assert cells(view.groups_table)[0][4].count("·") == 2  # soc leads the summary
        # A field without limits: its highest values, and the title says there is no
        # worse side (compute delivered: the highest are the busiest, not the worst).
        while view.field != "delivered_flop_s":
            await pilot.press("c")
        await pilot.pause(0.1)
        flops = app.model.values("delivered_flop_s")
        assert view.worst_sats.tolist() == np.argsort(-flops, kind="stable")[:TOP_N].tolist()
        assert "highest" in view.worst_table.border_title
        assert "worst" not in view.worst_table.border_title
        await pilot.press("down")
        # What f (fault) and the other node keys act on: the node under this cursor.
        assert app.selected_sat() == view.worst_sats[1]
        await pilot.press("enter")  # the table's RowSelected message opens it
        await until(pilot, lambda: isinstance(app.screen, DetailScreen), timeout_s=5)
        assert app.screen.sat == view.worst_sats[1]
        await pilot.press("v")  # no view switch under the detail screen
        assert view.display
        await pilot.press("escape")
        await pilot.pause(0.1)
        await pilot.press("v")
        await pilot.pause(0.1)
        assert app.fleet_table.display and not view.display
        assert app.focused is app.fleet_table


@run_async
async def test_s_orders_the_worst_list_nearest_a_limit_hottest_coldest() -> None:
    """``s`` in the fleet view steps the worst list through its three orders, each the
    order numpy gives on the same array; the title says which; a screenshot of each
    (kept under /tmp/shots/worst-toggle/ when that folder exists)."""
    app = fed_app()
    async with app.run_test(size=SIZE) as pilot:
        view = await open_fleet_view(pilot)
        column = app.model.column("temp_compute_k")
        temps = app.model.values("temp_compute_k").astype(np.float64)
        low, high = column.limits["warn_low"], column.limits["warn_high"]
        margin = np.minimum(temps - low, high - temps) / (high - low)
        expected = {"nearest a limit": np.argsort(margin, kind="stable"),
                    "hottest": np.argsort(-temps, kind="stable"),
                    "coldest": np.argsort(temps, kind="stable")}
        folder = Path("/tmp/shots/worst-toggle")
        for words in [*expected, "nearest a limit"]:  # s comes back to the first
            assert view.worst_table.border_title == f"{TOP_N} {words} by {column.label}"
            assert view.worst_sats.tolist() == expected[words][:TOP_N].tolist(), words
            rows = cells(view.worst_table)
            assert [r[1] for r in rows] == [app.model.name(s)
                                            for s in expected[words][:TOP_N].tolist()]
            assert (len(rows[0]) == 5) == (words == "nearest a limit")  # the margin column
            assert app.fleet_view_shown and isinstance(app.screen, type(app.screen_stack[0]))
            if folder.is_dir():
                app.save_screenshot(f"fleet-{words.replace(' ', '-')}-120x40.svg", str(folder))
            await pilot.press("s")
            await pilot.pause(0.1)
        # The order (hottest, after the loop's last s) stays with c, another field; and
        # in the node table s is the sort dialog.
        assert view.order == "highest"
        await pilot.press("c")
        await pilot.pause(0.1)
        other = app.model.column(view.field)
        values = app.model.values(view.field).astype(np.float64)
        assert view.worst_sats.tolist() == np.argsort(-values, kind="stable")[:TOP_N].tolist()
        assert view.worst_table.border_title.startswith(f"{TOP_N} highest by {other.label}") \
            or view.worst_table.border_title.startswith(f"{TOP_N} hottest by {other.label}")
        await pilot.press("v")
        await pilot.pause(0.1)
        if app.cluster_view_shown:
            await pilot.press("v")
            await pilot.pause(0.1)
        assert app.fleet_table.display
        await pilot.press("s")
        await pilot.pause(0.1)
        assert type(app.screen).__name__ == "SortScreen"


@run_async
async def test_the_view_works_only_when_shown_and_at_a_bounded_rate() -> None:
    app = fed_app()
    async with app.run_test(size=SIZE) as pilot:
        await feed(pilot)
        _, states = starlink_feed()
        calls = []
        view = app.fleet_view
        original = view.update_view
        view.update_view = lambda: (calls.append(time.monotonic()), original())[1]
        for state in states * 4:  # the table shows: the fleet view costs nothing
            app.feed(StreamUpdate(state=state, connection=LIVE))
            await pilot.pause(0.02)
        assert calls == []
        start = time.monotonic()  # from the key: showing the view draws it at once
        await pilot.press("v")
        for state in states * 10:
            app.feed(StreamUpdate(state=state, connection=LIVE))
            await pilot.pause(0.03)
        elapsed = time.monotonic() - start
        assert 1 <= len(calls) <= 2 + elapsed / FLEET_INTERVAL_S, (len(calls), elapsed)
        gaps = np.diff(calls)
        assert gaps.size == 0 or gaps.min() >= FLEET_INTERVAL_S * 0.8
        # The newest state shows with the view's next tick (a loaded machine runs the timer
        # late, so wait for it rather than a fixed 1.5 intervals); then, nothing new,
        # nothing more.
        await until(pilot, lambda: fleet_view_shows_newest(app), timeout_s=5)
        settled = len(calls)
        await pilot.pause(2.5 * FLEET_INTERVAL_S)
        assert len(calls) == settled


@pytest.mark.parametrize("size", [(120, 40), (80, 24)])
@run_async
async def test_fleet_view_screenshot(size: tuple[int, int], tmp_path: Path) -> None:
    """The view drawn at two sizes; kept under /tmp/shots/fleet/ when that folder exists
    (to look at), and always checked for its parts."""
    app = fed_app()
    async with app.run_test(size=size) as pilot:
        view = await open_fleet_view(pilot)
        await pilot.pause(0.3)
        folder = Path("/tmp/shots/fleet")
        name = f"fleet-view-{size[0]}x{size[1]}.svg"
        path = app.save_screenshot(name, str(folder if folder.is_dir() else tmp_path))
        svg = Path(path).read_text()
        assert view.worst_table.row_count == TOP_N and view.histogram.size.height >= 3
        hottest = app.model.name(int(view.worst_sats[0]))
        assert hottest.replace(" ", "&#160;") in svg or hottest in svg
        assert math.isfinite(float(view.histogram.edges[0]))


@run_async
async def test_fleet_view_before_any_fleet_and_with_a_field_without_values() -> None:
    """v before meta or any state, then a state whose compute temperatures are all NaN:
    the view says so, nothing raises."""
    app = fed_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("v")
        await pilot.pause(0.2)
        view = app.fleet_view
        assert view.display and view.worst_table.row_count == 0
        assert "no values yet" in view.histogram.render().plain
        await pilot.press("c")  # no fields yet: nothing to cycle, nothing raised
        meta, states = starlink_feed()
        arrays = dict(states[-1].arrays)
        arrays["temp_compute_k"] = np.full_like(arrays["temp_compute_k"], np.nan)
        app.feed(StreamUpdate(meta=meta, connection=LIVE))
        app.feed(StreamUpdate(state=type(states[-1])(states[-1].topic, states[-1].header,
                                                     arrays), connection=LIVE))
        await until(pilot, lambda: fleet_view_shows_newest(app), timeout_s=5)
        assert view.field == "temp_compute_k"
        assert view.worst_sats.size == 0
        assert view.worst_table.border_title == "Worst nodes: none with a T comp value"
        assert f"{app.model.n:,} without a value" in view.histogram.render().plain
        groups = cells(view.groups_table)
        assert sum(int(row[1].replace(",", "")) for row in groups) == app.model.n
        assert groups[0][4] == "— · — · —"  # no temperature: no minimum, mean or maximum


def test_a_stats_table_column_widens_when_a_later_value_is_longer() -> None:
    """A column first filled with "—" (no data yet) widens for the value that comes later:
    the cluster view's nearest-member names and the units of its loads were cut before."""
    from textual.app import App, ComposeResult

    from viz.tui.fleet import StatsTable

    class One(App):
        def compose(self) -> ComposeResult:
            yield StatsTable(id="t")

    async def run() -> None:
        app = One()
        async with app.run_test(size=(80, 10)) as pilot:
            table = app.query_one(StatsTable)
            table.fill(["Member", "to"], [["SC-1", "—"]])
            await pilot.pause()
            table.fill(["Member", "to"], [["SC-1", "SC-37 and a long name"]])
            await pilot.pause()
            assert table.ordered_columns[1].get_render_width(table) >= len("SC-37 and a long name")

    asyncio.run(run())


@run_async
async def test_a_late_tick_is_never_followed_by_an_early_one() -> None:
    """The views' timer counts each interval from its last call: a tick that a busy event
    loop ran late delays the next, where Textual's set_interval keeps its schedule and
    would call again a fraction of the interval later (seen on a loaded machine)."""
    calls: list[float] = []
    async with App().run_test() as pilot:
        ticks = PacedTicks(pilot.app, 0.2, lambda: calls.append(time.monotonic()))
        # The loop is busy from 0.1 s to 0.25 s: the first tick (due at 0.2 s) runs late.
        pilot.app.set_timer(0.1, lambda: time.sleep(0.15))
        await until(pilot, lambda: len(calls) >= 3, timeout_s=10)
        ticks.stop()
        count = len(calls)
        await pilot.pause(0.5)  # stopped: nothing more
    assert len(calls) == count
    assert np.diff(calls).min() >= 0.2 * 0.95, np.diff(calls)


@run_async
async def test_a_tick_after_the_app_stopped_calls_nothing() -> None:
    """A tick the loop ran late, once the app is closing, would work out a view whose
    widgets are being taken down: it calls nothing and sets no next tick."""
    calls: list[float] = []
    async with App().run_test() as pilot:
        ticks = PacedTicks(pilot.app, 60.0, lambda: calls.append(time.monotonic()))
        ticks._tick()
        assert len(calls) == 1 and ticks._timer is not None  # running: called, set again
    ticks._tick()
    assert len(calls) == 1 and ticks._timer is None

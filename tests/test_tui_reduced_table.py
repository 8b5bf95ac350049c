"""The dashboard's node table on a reduced stream (no node rows in ``state``): its rows
come from the twin's selective stream (viz.tui.table_subscription). A real twin in a
thread with ``full_state_max_sats=0`` publishes exactly what it would at a million nodes;
the dashboard follows it over real sockets under textual's pilot."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import numpy as np
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent))

import twin.runtime.subscriptions as subscriptions
import viz.tui.table_subscription as table_subscription
from tests.tuiutil import drawn, until
from tests.twinutil import connected, request, running_twin
from twin.runtime.server import Addresses
from viz.tui.app import DashboardApp

TOP_N = 10  # of the default scenario's 40 nodes: the selection is a real choice
SHOTS = Path("/tmp/shots/tui-scale")  # screenshots, where that folder exists


def _live_subscriptions(command: zmq.Socket) -> list[dict]:
    return request(command, {"cmd": "subscriptions"})["subscriptions"]


def _expected(engine, field: str, descending: bool) -> np.ndarray:
    """The twin's top ``TOP_N`` nodes by ``field``: best first, ties by node index."""
    values = np.asarray({f.spec.name: f.array for f in engine.fields}[field], np.float64)
    key = -values if descending else values
    return np.lexsort((np.arange(values.size), key))[:TOP_N]


async def _until_reduced(pilot, app, command) -> None:
    """Step the paused twin until the dashboard has its meta and a reduced state."""
    for _ in range(50):
        if app.model.n and app.model.meta and app.model.header.get("reduced"):
            return
        request(command, {"cmd": "step", "n": 1})
        request(command, {"cmd": "meta"})
        await pilot.pause(0.2)


async def _step_until_rows(pilot, app, command, field: str) -> None:
    """Step the paused twin until the table holds the rows of its newest step for the
    subscription ranking by ``field``."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        before = request(command, {"cmd": "status"})["step"]
        assert request(command, {"cmd": "step", "n": 1})["ok"]
        step = before
        while step == before and time.monotonic() < deadline:  # the step is queued
            await pilot.pause(0.05)
            step = request(command, {"cmd": "status"})["step"]
        for _ in range(15):
            await pilot.pause(0.1)
            rows = app.model.selected
            sub = app.table_subscription
            if rows is not None and sub.grant.request.get("top_field") == field and \
                    rows.topic == sub.topic and rows.step == step:
                app._draw()
                return
    raise AssertionError(f"no table rows by {field} from the twin's newest step")


def _check_rows(app, engine, field: str, descending: bool) -> None:
    expected = _expected(engine, field, descending)
    assert app.fleet_table.order.tolist() == expected.tolist()
    arrays = {f.spec.name: f.array for f in engine.fields}
    rows = app.model.selected
    for name in ("temp_compute_k", "soc_frac", field):
        assert np.array_equal(rows.values(name, expected),
                              arrays[name][expected].astype(np.float32)), name
    column = app.model.column("temp_compute_k")
    texts, _ = app.model.cells(column, expected)
    assert texts == column.quantity.format_array(
        arrays["temp_compute_k"][expected].astype(np.float32), scale=column.unit)


def test_the_node_table_lists_the_twins_top_nodes_and_lets_go(monkeypatch) -> None:
    monkeypatch.setattr(table_subscription, "TABLE_TOP_N", TOP_N)
    monkeypatch.setattr(subscriptions, "SUBSCRIPTION_TTL_S", 3.0)  # renewed every 1 s
    with running_twin("default", paused=True, full_state_max_sats=0) as twin, \
            connected(zmq.REQ, twin.addresses.command) as command:

        async def run() -> None:
            app = DashboardApp(twin.addresses.pub, twin.addresses.command)
            async with app.run_test(size=(160, 45)) as pilot:
                await _until_reduced(pilot, app, command)
                assert app.model.header.get("reduced") is True
                assert app.fleet_view_shown  # the aggregate first, as before
                await drawn(pilot, app)  # the waiting panel goes with the next draw
                assert app.waiting_text() is None and not app.waiting.display
                assert not _live_subscriptions(command)  # the fleet view asks for no rows

                await pilot.press("v")  # the node table: hottest first, from the twin
                await _step_until_rows(pilot, app, command, "temp_compute_k")
                assert not app.waiting.display and app.fleet_table.display
                _check_rows(app, twin.engine, "temp_compute_k", descending=True)
                title = app.fleet_table.border_title
                assert f"top {TOP_N} of 40 by T comp" in title and "selective stream" in title
                [live] = _live_subscriptions(command)
                assert live["top_field"] == "temp_compute_k"
                if SHOTS.is_dir():
                    app.save_screenshot("after-node-table-reduced-160x45.svg", str(SHOTS))

                app.sort_by("soc_frac")  # another sort: another subscription
                await _step_until_rows(pilot, app, command, "soc_frac")
                _check_rows(app, twin.engine, "soc_frac", descending=True)
                assert any(s["top_field"] == "soc_frac" for s in _live_subscriptions(command))

                await pilot.pause(4.0)  # past the TTL: renewed while the table shows
                assert [s["top_field"] for s in _live_subscriptions(command)] == ["soc_frac"]
                if SHOTS.is_dir():
                    await pilot.resize_terminal(80, 24)
                    await pilot.pause(0.5)
                    app._draw()
                    await pilot.pause(0.2)
                    app.save_screenshot("after-node-table-reduced-80x24.svg", str(SHOTS))
                    await pilot.resize_terminal(160, 45)
                    await pilot.pause(0.3)

                await pilot.press("v")  # the fleet view: the table's rows are let go
                assert app.fleet_view_shown
                await until(pilot, lambda: not _live_subscriptions(command), timeout_s=8.0)
                assert app.model.selected is None
                app.exit()

        asyncio.run(run())
        twin.stop()


def test_the_table_lets_each_subscription_go_at_once(monkeypatch) -> None:
    """With the twin's 30 s lifetime: a new sort's subscription replaces the old one at
    once (unsubscribe), the fleet view lets the table's go, and so does the dashboard's
    exit; none waits out its 30 s holding one of the twin's 32 slots."""
    monkeypatch.setattr(table_subscription, "TABLE_TOP_N", TOP_N)
    with running_twin("default", paused=True, full_state_max_sats=0) as twin, \
            connected(zmq.REQ, twin.addresses.command) as command:

        def tops() -> list[str]:
            return [s["top_field"] for s in _live_subscriptions(command)]

        async def run() -> None:
            app = DashboardApp(twin.addresses.pub, twin.addresses.command)
            async with app.run_test(size=(160, 45)) as pilot:
                await _until_reduced(pilot, app, command)
                await pilot.press("v")  # the node table
                await _step_until_rows(pilot, app, command, "temp_compute_k")
                assert tops() == ["temp_compute_k"]
                app.sort_by("soc_frac")
                await _step_until_rows(pilot, app, command, "soc_frac")
                await until(pilot, lambda: tops() == ["soc_frac"], timeout_s=10.0)
                await pilot.press("v")  # the fleet view
                await until(pilot, lambda: tops() == [], timeout_s=10.0)
                await pilot.press("v")  # the table again, then the dashboard closes
                await _step_until_rows(pilot, app, command, "soc_frac")
                assert tops() == ["soc_frac"]
            ended = time.monotonic() + 10.0
            while tops() and time.monotonic() < ended:
                await asyncio.sleep(0.1)
            assert tops() == [], "the dashboard's exit left its subscription running"

        asyncio.run(run())
        twin.stop()


def test_a_twin_restart_is_subscribed_again(monkeypatch) -> None:
    monkeypatch.setattr(table_subscription, "TABLE_TOP_N", TOP_N)
    with running_twin("default", rate_hz=5.0, full_state_max_sats=0) as first:
        addresses = first.addresses

        async def run() -> None:
            app = DashboardApp(addresses.pub, addresses.command)
            async with app.run_test(size=(120, 36)) as pilot:
                await until(pilot, lambda: app.fleet_view_shown, timeout_s=15.0)
                await pilot.press("v")
                await until(pilot, lambda: app.model.selected is not None, timeout_s=15.0)
                first.stop()
                restarts = app.restarts
                with running_twin("default", rate_hz=5.0, full_state_max_sats=0,
                                  addresses=Addresses(addresses.pub, addresses.command,
                                                      addresses.ingest)) as second, \
                        connected(zmq.REQ, addresses.command) as command:
                    await until(pilot, lambda: app.restarts > restarts, timeout_s=15.0)
                    # The new twin knew nothing of ours: the dashboard asked it again.
                    await until(pilot, lambda: any(
                        s["top_field"] == "temp_compute_k"
                        for s in _live_subscriptions(command)), timeout_s=15.0)
                    await until(pilot, lambda: app.model.selected is not None and
                                len(app.fleet_table.order) == TOP_N, timeout_s=15.0)
                    assert "selective stream" in app.fleet_table.border_title
                    app.exit()
                    second.stop()

        asyncio.run(run())


def test_the_table_request_fits_the_twins_bounds_and_bad_rows_are_refused() -> None:
    from twin.protocol.codec import Message, WireError
    from viz.tui.table_subscription import MAX_FIELDS_TEXT, fields_text, selected_rows

    names = [f"field_number_{i:03d}_k" for i in range(80)]
    text = fields_text(names)
    assert len(text) <= MAX_FIELDS_TEXT and text.split(",") == names[:len(text.split(","))]
    assert len(fields_text(names[:3])) == len(",".join(names[:3]))

    index = np.array([7, 2], np.int32)
    good = Message("sub/x", {"step": 4}, {"sat_index": index,
                                          "temp_compute_k": np.array([300.0, 290.0], "f4")})
    rows = selected_rows(good, 40)
    assert rows.step == 4 and rows.sats.tolist() == [7, 2]
    assert np.allclose(rows.values("temp_compute_k", np.array([2, 7, 9])),
                       [290.0, 300.0, np.nan], equal_nan=True)
    for arrays, words in (
            ({"temp_compute_k": np.zeros(2, "f4")}, "no sat_index"),
            ({"sat_index": np.array([3, 40], np.int32)}, "out of range"),
            ({"sat_index": index, "soc_frac": np.zeros(3, "f4")}, "3 values for 2 nodes")):
        try:
            selected_rows(Message("sub/x", {}, arrays), 40)
        except WireError as error:
            assert words in str(error)
        else:
            raise AssertionError(f"accepted a message with {words}")


def test_sorted_by_name_the_table_pages_through_the_fleet_by_index(monkeypatch) -> None:
    monkeypatch.setattr(table_subscription, "TABLE_TOP_N", TOP_N)
    with running_twin("default", rate_hz=5.0, full_state_max_sats=0) as twin:

        async def run() -> None:
            app = DashboardApp(twin.addresses.pub, twin.addresses.command)
            async with app.run_test(size=(120, 36)) as pilot:
                await until(pilot, lambda: app.fleet_view_shown, timeout_s=15.0)
                await pilot.press("v")
                app.sort_by("name")
                sub = app.table_subscription

                def listing(first: int) -> bool:
                    rows = app.model.selected
                    return rows is not None and rows.topic == sub.topic and \
                        sub.grant.request.get("first") == first and \
                        sorted(app.fleet_table.order.tolist()) == list(range(first,
                                                                             first + TOP_N))

                await until(pilot, lambda: listing(0), timeout_s=15.0)
                assert "nodes 1–10 of 40 by index" in app.fleet_table.border_title
                await pilot.press("end")
                last = app.fleet_table.selected_sat
                await pilot.press("down")  # past the last row: the next half page
                await until(pilot, lambda: listing(TOP_N // 2), timeout_s=15.0)
                app._draw()
                assert app.fleet_table.selected_sat == last  # the cursor kept its node
                names = [app.model.name(s) for s in app.fleet_table.order.tolist()]
                assert names == sorted(names, key=str.lower)
                app.exit()

        asyncio.run(run())
        twin.stop()


def test_a_filter_naming_a_group_asks_for_that_group() -> None:
    from viz.async_commands import AsyncCommands
    from viz.tui.model import FleetModel
    from viz.tui.table_subscription import TableSubscription

    model = FleetModel()
    model.apply_meta({"sats": {"n": 4, "names": ["a1", "a2", "b1", "b2"],
                               "groups": ["Sso-550", "Sso-550", "inc30", "inc30"]},
                      "fields": []})
    sub = TableSubscription(AsyncCommands("tcp://127.0.0.1:1"))
    try:
        model.set_text_filter("SSO-550")
        assert sub.group_filter(model) == "Sso-550"
        assert sub.wanted(model)["group"] == "Sso-550"
        model.set_text_filter("sso")  # a part of a name: filters the rows received
        assert sub.group_filter(model) == "" and "group" not in sub.wanted(model)
    finally:
        sub.close()

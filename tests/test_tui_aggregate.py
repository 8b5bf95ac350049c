"""Viewers and the ``aggregate`` message: the stream takes it (and leaves other clients'
selective streams alone), and the dashboard's fleet view draws it where the state carries
no per-node values (a large fleet's default ``state``; here the default scenario with the
full-frame limit set to 10 nodes, so the real twin publishes exactly what it would at a
million)."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import zmq
from textual.coordinate import Coordinate

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tests.twinutil import connected, receive, request, running_twin
from twin.protocol.codec import Message
from twin.runtime.aggregates import TOP_N as TOP_N_AGGREGATE
from viz.stream import LIVE, StreamClient
from viz.tui.app import DashboardApp, StreamUpdate

SHOTS = Path("/tmp/shots/subscribe")


def _reduced_twin_messages() -> tuple:
    """meta, state and aggregate of one step of a reduced-state twin, and stream counts."""
    with running_twin("default", paused=True, full_state_max_sats=10) as twin, \
            connected(zmq.REQ, twin.addresses.command) as command, \
            connected(zmq.SUB, twin.addresses.pub, SUBSCRIBE=b"") as sub:
        client = StreamClient(twin.addresses.pub)
        other = request(command, {"cmd": "subscribe", "fields": "lat_deg"})
        assert other["ok"]
        time.sleep(0.3)
        assert request(command, {"cmd": "meta"})["ok"]
        meta = receive(sub, "meta")
        assert request(command, {"cmd": "step", "n": 1})["ok"]
        state = receive(sub, "state")
        aggregate = receive(sub, "aggregate")
        batch_aggregate, deadline = None, time.monotonic() + 10
        while batch_aggregate is None and time.monotonic() < deadline:
            batch = client.poll(timeout_ms=100)
            batch_aggregate = batch.aggregate or batch_aggregate
        stream_counts = (dict(client.received), client.bad.count)
        client.close()
        twin.stop()
    return meta, state, aggregate, batch_aggregate, stream_counts


def test_the_stream_takes_aggregate_and_ignores_other_clients_streams() -> None:
    _, state, aggregate, batch_aggregate, (received, bad) = _reduced_twin_messages()
    assert state.header["reduced"] is True and "temp_compute_k" not in state.arrays
    assert batch_aggregate is not None
    assert batch_aggregate.header["fields"].keys() == aggregate.header["fields"].keys()
    assert bad == 0  # the sub/ stream it also heard is not counted as bad
    assert not any(topic.startswith("sub/") for topic in received)


@asynccontextmanager
async def _fed(meta: Message, aggregate: Message, state: Message
               ) -> AsyncIterator[tuple[DashboardApp, Any]]:
    """A dashboard (not connected) fed meta, the aggregate and the reduced state, drawn."""
    app = DashboardApp("tcp://127.0.0.1:1", "tcp://127.0.0.1:1", connect=False)
    async with app.run_test(size=(120, 36)) as pilot:
        for update in (StreamUpdate(meta=meta, connection=LIVE),
                       StreamUpdate(aggregate=aggregate, connection=LIVE),
                       StreamUpdate(state=state, connection=LIVE)):
            app.feed(update)
        await pilot.pause(0.3)
        yield app, pilot


def _cells(table) -> list[list[str]]:
    return [[str(table.get_cell_at(Coordinate(y, x))) for x in range(len(table.columns))]
            for y in range(table.row_count)]


def test_the_fleet_view_draws_the_aggregate_of_a_reduced_state() -> None:
    meta, state, aggregate, _, _ = _reduced_twin_messages()

    async def run() -> None:
        async with _fed(meta, aggregate, state) as (app, pilot):
            assert app.fleet_view_shown  # a reduced state brings the fleet view up, once
            view = app.fleet_view
            entry = aggregate.header["fields"][view.field]
            rows = _cells(view.groups_table)
            groups = aggregate.header["groups"]
            assert [row[0] for row in rows] == ["all nodes", *groups]
            assert int(rows[0][1].replace(",", "")) == aggregate.header["n_sats"]
            assert view.worst_sats.tolist() == [w[0] for w in entry["fleet"]["worst"]]
            # The twin's 16 bins, neighbours merged to fit the panel's rows.
            shown, edges = view.histogram.counts, view.histogram.edges
            merge = -(-len(entry["fleet"]["hist"]) // len(shown))
            assert shown.tolist() == np.add.reduceat(
                entry["fleet"]["hist"], np.arange(0, len(entry["fleet"]["hist"]), merge)
            ).tolist()
            assert np.allclose(edges, [*entry["edges"][::merge][:len(shown)],
                                       entry["edges"][-1]])
            assert "aggregate" in view.groups_table.border_title
            # s: the twin's highest, then lowest, then nearest a limit again.
            column = app.model.column(view.field)
            for key, words in (("highest", "hottest"), ("lowest", "coldest"),
                               ("worst", "nearest a limit")):
                await pilot.press("s")
                await pilot.pause(0.1)
                listed = entry["fleet"][key]
                assert view.worst_sats.tolist() == [w[0] for w in listed], key
                assert view.worst_table.border_title == (
                    f"{len(listed)} {words} by {column.label}")
                shown = [row[2] for row in _cells(view.worst_table)]
                assert shown == column.unit.numbers([w[1] for w in listed])
                if key == "highest" and Path("/tmp/shots/worst-toggle").is_dir():
                    app.save_screenshot("fleet-aggregate-hottest-120x36.svg",
                                        "/tmp/shots/worst-toggle")
            await pilot.press("v")  # the node table, and it stays (no second switch)
            app.feed(StreamUpdate(state=state, aggregate=aggregate, connection=LIVE))
            await pilot.pause(0.2)
            assert not app.fleet_view_shown
            await pilot.press("v")
            await pilot.pause(0.3)
            SHOTS.mkdir(parents=True, exist_ok=True)
            app.save_screenshot("fleet-aggregate-120x36.svg", str(SHOTS))

    asyncio.run(run())


def test_an_aggregate_with_bad_or_without_highest_and_lowest_lists() -> None:
    """The viewer's check refuses a malformed ``highest`` naming where it is; an older
    twin's aggregate (no ``highest``/``lowest``) passes, and the fleet view says its lists
    are missing instead of showing another order."""
    import copy

    from twin.protocol.codec import WireError
    from viz.aggregate import check_aggregate

    meta, state, aggregate, _, _ = _reduced_twin_messages()
    check_aggregate(aggregate)
    bad = copy.deepcopy(aggregate.header)
    bad["fields"]["temp_compute_k"]["fleet"]["highest"] = [[3, "hot"]]
    try:
        check_aggregate(Message(aggregate.topic, bad, {}))
    except WireError as error:
        assert "temp_compute_k.fleet.highest" in str(error)
    else:
        raise AssertionError("a bad highest list passed the check")
    older = copy.deepcopy(aggregate.header)
    for entry in older["fields"].values():
        for summary in [entry["fleet"], *entry["groups"].values()]:
            summary.pop("highest", None)
            summary.pop("lowest", None)
    older_message = Message(aggregate.topic, older, {})
    check_aggregate(older_message)

    async def run() -> None:
        async with _fed(meta, older_message, state) as (app, pilot):
            view = app.fleet_view
            assert view.worst_sats.size == TOP_N_AGGREGATE
            await pilot.press("s")
            await pilot.pause(0.1)
            assert view.worst_sats.size == 0
            assert view.worst_table.border_title == (
                "Hottest by T comp: this twin's aggregate does not list them")

    asyncio.run(run())

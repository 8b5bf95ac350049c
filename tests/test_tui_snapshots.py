"""Snapshots of the dashboard's main and detail screens from a deterministic state.

The app runs without a twin (``connect=False``) and is fed what a real engine produces,
stepped deterministically (tests/tuiutil.py), so every run draws the same picture. Each SVG under
``__snapshots__`` was looked at before it was accepted; after a deliberate change of the
look, regenerate with ``pytest tests/test_tui_snapshots.py --snapshot-update`` and look
again.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tuiutil

from viz.stream import LIVE
from viz.tui.app import DashboardApp, StreamUpdate

SIZE = (130, 40)


def fed_app() -> DashboardApp:
    return DashboardApp("tcp://127.0.0.1:1", "tcp://127.0.0.1:1", connect=False)


async def feed(pilot, *, mirror: bool = False) -> None:
    """Meta, 60 states (trends) with the events the twin raised alongside; the last one
    with two messages missed. Sorted hottest first, as the table starts."""
    app = pilot.app
    app.feed(StreamUpdate(meta=tuiutil.meta(mirror=mirror), connection=LIVE))
    for step in range(61):
        app.feed(StreamUpdate(state=tuiutil.state(step, mirror=mirror),
                              events=tuiutil.events(step, step, mirror=mirror),
                              connection=LIVE, missed=2 if step == 60 else 0))
    await tuiutil.drawn(pilot, app)  # the last state, drawn by the throttled draw's timer


def test_main_screen(snap_compare) -> None:
    assert snap_compare(fed_app(), terminal_size=SIZE, run_before=feed)


def test_detail_screen(snap_compare) -> None:
    async def open_hottest(pilot) -> None:
        await feed(pilot)
        await pilot.press("enter")  # the top row: the hottest node, held past its alarm
        await tuiutil.detail_fields(pilot, pilot.app)
        assert pilot.app.screen.sat == tuiutil.HOT_SAT

    assert snap_compare(fed_app(), terminal_size=SIZE, run_before=open_hottest)


async def feed_mirror(pilot) -> None:
    """As ``feed``, with node 5 mirrored by testbed ``flatsat``."""
    await feed(pilot, mirror=True)


def test_mirror_main_screen(snap_compare) -> None:
    assert snap_compare(fed_app(), terminal_size=SIZE, run_before=feed_mirror)


def test_mirror_detail_screen(snap_compare) -> None:
    async def open_mirror(pilot) -> None:
        await feed_mirror(pilot)
        await pilot.press("m")
        await pilot.pause(0.3)
        assert pilot.app.screen.sat == tuiutil.MIRROR_SAT

    assert snap_compare(fed_app(), terminal_size=SIZE, run_before=open_mirror)

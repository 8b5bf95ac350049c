"""Snapshots of the dashboard's main and detail screens from a deterministic state.

The app runs without a twin (``connect=False``) and is fed synthetic messages framed by
the real codec (tests/tuiutil.py), so every run draws the same picture. Each SVG under
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


async def feed(pilot) -> None:
    """Meta, 60 states (trends), a few events and alarms; sorted hottest first."""
    app = pilot.app
    app.feed(StreamUpdate(meta=tuiutil.meta(), connection=LIVE))
    for step in range(60):
        app.feed(StreamUpdate(state=tuiutil.state(step), connection=LIVE))
    events = [
        tuiutil.event(0, "contact_start", "info", "SSO-000 acquired by Svalbard", sat=0, step=3),
        tuiutil.event(1, "limit_warning", "warning", "SSO-012 T comp 82.9 °C above 80.0 °C",
                      sat=12, step=20),
        tuiutil.event(2, "limit_alarm", "alarm", "SSO-007 T comp 92.9 °C above 90.0 °C",
                      sat=7, step=41),
        tuiutil.event(3, "limit_alarm", "alarm", "SSO-003 SOC 15 % below 20 %", sat=3, step=50),
    ]
    app.feed(StreamUpdate(state=tuiutil.state(60), events=events, connection=LIVE, missed=2))
    app.sort_by("temp_compute_k")
    await pilot.pause(0.3)


def test_main_screen(snap_compare) -> None:
    assert snap_compare(fed_app(), terminal_size=SIZE, run_before=feed)


def test_detail_screen(snap_compare) -> None:
    async def open_hottest(pilot) -> None:
        await feed(pilot)
        await pilot.press("enter")  # the top row: the hottest node, SSO-007
        await pilot.pause(0.3)
        assert pilot.app.screen.sat == 7

    assert snap_compare(fed_app(), terminal_size=SIZE, run_before=open_hottest)


async def feed_mirror(pilot) -> None:
    """As ``feed``, with node SSO-005 mirrored by testbed ``flatsat``, then its detail."""
    app = pilot.app
    app.feed(StreamUpdate(meta=tuiutil.meta(mirror=True), connection=LIVE))
    for step in range(60):
        app.feed(StreamUpdate(state=tuiutil.state(step, mirror=True), connection=LIVE))
    events = [tuiutil.event(0, "mirror_acquired", "info", "testbed 'flatsat' is live on node 5",
                            sat=5, step=2),
              tuiutil.event(1, "mirror_residual", "warning", "flatsat: measured temp_compute_k "
                            "differs from the model's by +12 (threshold 10)", sat=5, step=30)]
    app.feed(StreamUpdate(state=tuiutil.state(60, mirror=True), events=events,
                          connection=LIVE))
    await pilot.pause(0.3)


def test_mirror_main_screen(snap_compare) -> None:
    assert snap_compare(fed_app(), terminal_size=SIZE, run_before=feed_mirror)


def test_mirror_detail_screen(snap_compare) -> None:
    async def open_mirror(pilot) -> None:
        await feed_mirror(pilot)
        await pilot.press("m")
        await pilot.pause(0.3)
        assert pilot.app.screen.sat == tuiutil.MIRROR_SAT

    assert snap_compare(fed_app(), terminal_size=SIZE, run_before=open_mirror)

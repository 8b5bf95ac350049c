"""The detail screen's `h`: a node's trend read from a recording instead of the live ring.

A real ``default`` twin's first states, received live and written as a recording
(tests/recordutil.py); the dashboard runs without a twin and is fed meta and a state
(tests/tuiutil.py), as the other dashboard tests are.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import tuiutil
from recordutil import record_live, write_recording
from test_tui import SIZE, until

from twin.recording.reader import open_recording
from viz.stream import LIVE
from viz.tui.app import DashboardApp, StreamUpdate
from viz.tui.screens import DetailScreen, RecordingPathScreen

SAT = 4
STATES = 30


def test_detail_loads_a_nodes_trend_from_a_recording(tmp_path) -> None:
    messages, run_id = record_live(STATES)
    path = write_recording(tmp_path / "run.mcap", messages, run_id=run_id)
    recorded = [m.decode() for m in open_recording(path).messages(["state"])]
    assert len(recorded) == STATES

    async def scenario() -> None:
        app = DashboardApp("tcp://127.0.0.1:1", "tcp://127.0.0.1:1", connect=False,
                           recording=str(tmp_path / "missing.mcap"))
        async with app.run_test(size=SIZE) as pilot:
            app.feed(StreamUpdate(meta=tuiutil.meta(), connection=LIVE))
            for step in range(3):
                app.feed(StreamUpdate(state=tuiutil.state(step), connection=LIVE))
            await pilot.pause(0.2)
            app.fleet_table.select_sat(SAT)
            app.push_screen(DetailScreen(app.model, SAT))
            await until(pilot, lambda: isinstance(app.screen, DetailScreen))
            detail = app.screen
            await until(pilot, lambda: "temp_compute_k" in detail._trends)
            trend = detail._trends["temp_compute_k"]
            assert trend.samples.size == 3 and not trend.fit

            # A bad path (prefilled from --recording): one notification, nothing else.
            await pilot.press("h")
            await until(pilot, lambda: isinstance(app.screen, RecordingPathScreen))
            await pilot.press("enter")
            await until(pilot, lambda: any("missing.mcap" in str(n.message)
                                           for n in app._notifications))
            assert detail.recorded is None and trend.samples.size == 3
            assert app.screen is detail

            # The real recording: the node's recorded values, labelled with the file.
            await pilot.press("h")
            await until(pilot, lambda: isinstance(app.screen, RecordingPathScreen))
            box = app.screen.query_one("#recording-input")
            box.value = str(path)
            await pilot.press("enter")
            await until(pilot, lambda: detail.recorded is not None)
            await pilot.pause(0.1)
            for name in ("temp_compute_k", "soc_frac"):
                expected = [float(m.arrays[name][SAT]) for m in recorded]
                assert np.allclose(detail._trends[name].samples, expected), name
            assert detail._trends["temp_compute_k"].fit
            title = str(detail.query_one("#detail-trends").border_title)
            assert title.startswith("from run.mcap, ") and title.endswith(" UTC")
            # Live states keep coming; the recorded trend stays until H.
            app.feed(StreamUpdate(state=tuiutil.state(3), connection=LIVE))
            await tuiutil.drawn(pilot, app)  # the draw that would add it to a live trend
            assert trend.samples.size == STATES
            app.save_screenshot("detail_recorded.svg", str(Path("/tmp")))
            await pilot.press("H")
            await until(pilot, lambda: detail.recorded is None and trend.samples.size == 4)
            assert "live" in str(detail.query_one("#detail-trends").border_title)

    asyncio.run(scenario())


def test_read_trend_subsamples_and_says_what_is_wrong(tmp_path) -> None:
    import pytest

    from viz.tui.recorded import RecordedTrendError, read_trend

    messages, run_id = record_live(12)
    path = write_recording(tmp_path / "small.mcap", messages, run_id=run_id)
    states = [m.decode() for m in open_recording(path).messages(["state"])]
    trend = read_trend(path, ["soc_frac"], tuiutil.name(2), 2, 4)
    picked = [0, 4, 7, 11]  # evenly spread, the first and the last
    assert np.allclose(trend.series["soc_frac"],
                       [states[i].arrays["soc_frac"][2] for i in picked])
    assert trend.start_utc == states[0].header["t_utc"]
    assert trend.end_utc == states[-1].header["t_utc"]
    (tmp_path / "text.mcap").write_text("not a recording")
    for args, words in [((tmp_path / "none.mcap", ["soc_frac"], "X", 0), "none.mcap"),
                        ((tmp_path / "text.mcap", ["soc_frac"], "X", 0), "text.mcap"),
                        ((path, ["soc_frac"], "NO-SUCH-NODE", 0), "NO-SUCH-NODE"),
                        ((path, ["no_such_field"], tuiutil.name(2), 2), "no_such_field")]:
        with pytest.raises(RecordedTrendError, match=words):
            read_trend(*args, 10)

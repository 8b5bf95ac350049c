"""`odc tui` on a replay, driven headless (textual's pilot) against a real `odc replay` process.

The replay serves a real `default` run recorded live (tests/recordutil.py); the dashboard
follows it over real loopback sockets as it follows a twin: REPLAY and the run's name in
its header, the time bar under it, and ``:seek`` through its command line moves the replay.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.widgets import Input

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tuiutil
from recordutil import record_live, replay_process, write_recording

from viz.tui.app import DashboardApp
from viz.tui.widgets import HeaderBar

SIZE = (140, 40)
START = 1774008000.0  # the default scenario's epoch, 2026-03-20T12:00:00Z


async def until(pilot, condition: Callable[[], bool], timeout_s: float = 15.0) -> None:
    """tuiutil.until with this file's patience."""
    await tuiutil.until(pilot, condition, timeout_s)


async def send_line(pilot, app: DashboardApp, line: str) -> dict:
    """Type ``line`` at the command line (``:``) and send it; the reply to it.

    The keys wait for the prompt to have the focus: pressed before, they would go to the
    dashboard itself (the space in ``seek 12:00`` resumes the replay). The reply comes
    through a worker thread and the replay's new position through the stream, in either
    order: the reply is waited for, and each command's before the next is sent."""
    app.last_reply = None
    await pilot.press("colon")
    await until(pilot, lambda: isinstance(app.focused, Input)
                and app.focused.id == "command-input")
    await pilot.press(*line, "enter")
    await until(pilot, lambda: app.last_reply is not None)
    return app.last_reply


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    messages, run_id = record_live(200, rate_hz=10.0, warp=1.0)
    return write_recording(tmp_path_factory.mktemp("rec") / "default.mcap", messages,
                           run_id=run_id)


def test_the_dashboard_shows_a_replay_and_seeks_from_its_command_line(recording) -> None:
    async def scenario(addresses: dict[str, str]) -> None:
        app = DashboardApp(addresses["stream"], addresses["commands"], stale_after_s=3.0)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.replay is not None and app.model.n == 40
                        and app.model.header.get("t_utc") is not None)
            header = app.query_one("#header", HeaderBar)
            await until(pilot, lambda: "12:00:00 UTC" in header.text.plain)  # drawn
            text = header.text.plain
            assert " REPLAY  default " in text and "2026-03-20 12:00:00 UTC" in text
            assert "PAUSED" in text and "LIVE" not in text
            # The time bar: the recording's span and the position, on its own line.
            assert header.time_bar.display and header.size.height == 4
            bar = header.text.plain.splitlines()[-1]
            assert bar.startswith(" 2026-03-20 12:00:00 ") and "2026-03-20 12:00:20" in bar
            assert "●" in bar and "0.5 %" in bar
            # :seek through the command line moves the replay, and the table with it.
            reply = await send_line(pilot, app, "seek 12:00:15")
            assert reply["ok"] and abs(reply["asked_utc"] - (START + 15)) < 1e-6, reply
            await until(pilot, lambda: abs(app.replay["position_utc"] - (START + 15)) < 1e-6
                        and abs(app.model.header["t_utc"] - (START + 15)) < 1e-6)
            await until(pilot, lambda: "75.0 %" in header.text.plain.splitlines()[-1])
            # The clock in the top line is redrawn on its own schedule: wait for it too.
            await until(pilot, lambda: "2026-03-20 12:00:15 UTC" in header.text.plain)
            reply = await send_line(pilot, app, "seek -10s")
            assert reply["ok"] and abs(reply["asked_utc"] - (START + 5)) < 1e-6, reply
            await until(pilot, lambda: abs(app.replay["position_utc"] - (START + 5)) < 1e-6)
            # A time the replay does not hold: its refusal names the span.
            reply = await send_line(pilot, app, "seek 13:00")
            assert not reply["ok"]
            assert "outside the recording's span 2026-03-20T12:00:00.000Z" in reply["error"]
            # Space resumes the replay (its own clock, not the recorded twin's).
            await pilot.press("space")
            await until(pilot, lambda: not app.paused and app.model.header["t_utc"] > START + 6)

    with replay_process(recording, "--paused", "--warp", "2") as (_, addresses):
        asyncio.run(scenario(addresses))

"""The dashboard's confirmation dialog, driven with textual's pilot against a real socket.

The twin is ``faketwin``'s ROUTER on a random loopback port: it holds ``inject_fault`` for
confirmation (``confirm_required``, a token, a summary) and runs it on ``confirm`` with
that token. Only the dialog's explicit Confirm may send it; Cancel, Esc, Enter on the
opening focus and a dialog whose time ran out send nothing.
"""

from __future__ import annotations

import asyncio
import re

from faketwin import SUMMARY, TOKEN, FakeTwin, confirming, fake_twin
from tuiutil import until

from viz.tui.app import DashboardApp
from viz.tui.confirm import ConfirmScreen

SIZE = (120, 36)
NO_STREAM = "tcp://127.0.0.1:9"  # connect=False: the dashboard never subscribes
QUIET_S = 0.5  # a request the dialog wrongly sent would reach the twin well within this




def dashboard(twin: FakeTwin) -> DashboardApp:
    return DashboardApp(NO_STREAM, twin.address, connect=False, command_timeout_s=3.0)


async def open_dialog(app: DashboardApp, pilot, twin: FakeTwin, count: int) -> ConfirmScreen:
    app.command_line("inject_fault sat=3 kind=radiator")
    await until(pilot, lambda: isinstance(app.screen, ConfirmScreen) and
                len(twin.requests) == count)
    # Mounted and laid out, so a click lands on its buttons (a loaded machine pushes the
    # screen a moment before its buttons exist: query, not query_one, until they do).
    await until(pilot, lambda: any(button.region.width > 0
                                   for button in app.screen.query("#confirm-cancel")))
    return app.screen


def text_of(screen: ConfirmScreen, selector: str) -> str:
    return str(screen.query_one(selector).render())


def test_confirm_sends_the_twins_token() -> None:
    async def scenario(twin: FakeTwin) -> None:
        app = dashboard(twin)
        async with app.run_test(size=SIZE) as pilot:
            dialog = await open_dialog(app, pilot, twin, 1)
            assert SUMMARY in text_of(dialog, "#confirm-summary")
            assert "inject_fault sat=3 kind=radiator" in text_of(dialog, "#confirm-title")
            await until(pilot, lambda: "s more" in text_of(dialog, "#confirm-left"))
            seconds = re.search(r"for (\d+) s more", text_of(dialog, "#confirm-left"))
            assert seconds and 20 < int(seconds.group(1)) <= 30, text_of(dialog, "#confirm-left")
            await pilot.press("y")
            await until(pilot, lambda: len(twin.requests) == 2)
            request = twin.requests[1]
            assert request["cmd"] == "confirm" and request["token"] == TOKEN
            await until(pilot, lambda: app.last_reply == {"ok": True,
                                                          "confirmed": "inject_fault"})
            assert not isinstance(app.screen, ConfirmScreen)
            assert "confirm inject_fault" in str(app.reply_line.render())

    with fake_twin(confirming()) as twin:
        asyncio.run(scenario(twin))


def test_cancel_escape_and_enter_send_nothing() -> None:
    async def scenario(twin: FakeTwin) -> None:
        app = dashboard(twin)
        async with app.run_test(size=SIZE) as pilot:
            await open_dialog(app, pilot, twin, 1)
            await pilot.click("#confirm-cancel")
            await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
            assert "not confirmed" in str(app.reply_line.render())
            await open_dialog(app, pilot, twin, 2)
            await pilot.press("escape")
            await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
            await open_dialog(app, pilot, twin, 3)
            await pilot.press("enter")  # Cancel has the focus: Enter alone never confirms
            await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
            await pilot.pause(QUIET_S)
            assert [r["cmd"] for r in twin.requests] == ["inject_fault"] * 3

    with fake_twin(confirming()) as twin:
        asyncio.run(scenario(twin))


def test_a_dialog_whose_time_ran_out_sends_nothing() -> None:
    async def scenario(twin: FakeTwin) -> None:
        app = dashboard(twin)
        async with app.run_test(size=SIZE) as pilot:
            dialog = await open_dialog(app, pilot, twin, 1)
            await until(pilot, lambda: "Time is up" in text_of(dialog, "#confirm-left"),
                        timeout_s=5)
            assert dialog.query_one("#confirm-yes").disabled
            await pilot.press("y")
            await pilot.pause(QUIET_S)
            assert isinstance(app.screen, ConfirmScreen) and len(twin.requests) == 1
            await pilot.press("escape")
            await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen))

    with fake_twin(confirming(expires_in_s=0.6)) as twin:
        asyncio.run(scenario(twin))

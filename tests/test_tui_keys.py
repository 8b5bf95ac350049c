"""The dashboard's keys come from the one keymap; its start, its narrow-terminal layout and
its words (issue: keys, sorting, narrow terminals, explain the state, wording, restarts).

The app runs without a twin (``connect=False``) and is fed what a real engine produces
(tests/tuiutil.py); commands go to a closed port and come back as errors, never a hang.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tuiutil

from viz import keymap
from viz.stream import CONNECTING, LIVE
from viz.tui.app import DashboardApp, StreamUpdate
from viz.tui.header import HeaderBar
from viz.tui.keys import HelpScreen
from viz.tui.screens import DetailScreen, SortScreen
from viz.tui.words import iso_utc, plain_error, plural, reply_value

NOWHERE = "tcp://127.0.0.1:1"


def fed_app(**kwargs) -> DashboardApp:
    return DashboardApp(NOWHERE, NOWHERE, connect=False, command_timeout_s=0.3, **kwargs)


def feed(app: DashboardApp, steps: int = 3) -> None:
    app.feed(StreamUpdate(meta=tuiutil.meta(), connection=LIVE))
    for step in range(steps + 1):
        app.feed(StreamUpdate(state=tuiutil.state(step), connection=LIVE))
    app._draw()  # now, not at the next frame (a busy machine may be late with it)


async def until(pilot, condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """tuiutil.until with this file's patience."""
    await tuiutil.until(pilot, condition, timeout_s)


def log_text(app: DashboardApp) -> str:
    return "\n".join(strip.text for strip in app.events_log.lines)


def run(scenario, size=(120, 40), **kwargs) -> None:
    async def main() -> None:
        app = fed_app(**kwargs)
        async with app.run_test(size=size) as pilot:
            await scenario(app, pilot)

    asyncio.run(main())


# -- keys -----------------------------------------------------------------------------


def test_every_dashboard_key_of_the_keymap_is_bound_to_its_action() -> None:
    bound = {}
    for binding in DashboardApp.BINDINGS:
        for key in binding.key.split(","):
            bound[key] = binding.action
    for entry in keymap.for_viewer(keymap.TUI):
        for key in entry.keys:
            assert bound.get(key) == entry.action, (key, bound.get(key), entry.action)
    assert "n" not in bound  # the old step key is gone: `.` steps
    ctrl_c = [b for b in DashboardApp.BINDINGS if b.key == "ctrl+c"]
    assert ctrl_c and ctrl_c[0].priority and ctrl_c[0].action == "quit"
    # The detail screen's own keys are the keymap's too (its footer shows them).
    detail = {b.key: b.action for b in DetailScreen.BINDINGS}
    assert detail["right_square_bracket"] == "next_node"
    assert detail["h"] == "load_trend" and detail["H"] == "live_trend"
    assert "l" not in detail and "L" not in detail


def test_ctrl_c_quits_even_from_the_filter_box() -> None:
    async def scenario(app, pilot) -> None:
        feed(app)
        await pilot.press("slash")
        await until(pilot, lambda: app.filter_box.has_focus)
        await pilot.press("ctrl+c")
        await until(pilot, lambda: app.return_code is not None)

    run(scenario)


def test_keys_without_an_action_yet_do_nothing_and_question_mark_shows_the_keymap() -> None:
    async def scenario(app, pilot) -> None:
        feed(app)
        await pilot.pause(0.1)
        if not hasattr(app, "action_next_view"):  # the fleet view's keys, not here yet
            assert app.check_action("next_view", ()) is False
        await pilot.press("v", "c")  # no crash, whatever they do
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        shown = str(app.screen.query_one("#help-text").render())
        for line in keymap.help_lines(keymap.TUI):
            assert line.strip() in shown
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HelpScreen))

    run(scenario)


def test_brackets_move_the_selection_in_the_table_and_the_detail_goes_to_the_neighbour() -> None:
    async def scenario(app, pilot) -> None:
        feed(app)
        await pilot.pause(0.1)
        table = app.fleet_table
        order = list(table.order)
        await pilot.press("right_square_bracket", "right_square_bracket")
        assert table.cursor_row == 2
        await pilot.press("left_square_bracket")
        assert table.selected_sat == order[1]
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        assert app.screen.sat == order[1]
        await pilot.press("right_square_bracket")
        assert app.screen.sat == order[2] and table.selected_sat == order[2]
        await pilot.press("enter")  # Enter on the detail opens no second detail
        await pilot.pause(0.1)
        assert sum(isinstance(s, DetailScreen) for s in app.screen_stack) == 1
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, DetailScreen))

    run(scenario)


def test_the_cursor_stays_on_its_node_when_the_table_re_sorts() -> None:
    """The table re-sorts at every state (hottest first): Enter must open the node the
    operator picked, not whichever one slid under the cursor since (a CI failure)."""

    async def scenario(app, pilot) -> None:
        feed(app)
        await pilot.pause(0.1)
        table = app.fleet_table
        await pilot.press("down", "down", "down")
        assert table.cursor_row == 3
        picked = table.selected_sat
        # New values move the node (here, as the most a state can: the order reversed).
        app.model.set_sort(app.model.sort_key, not app.model.sort_descending)
        table.refresh_data()
        assert table.selected_sat == picked
        assert table.cursor_row == len(table.order) - 4
        app.feed(StreamUpdate(state=tuiutil.state(9), connection=LIVE))
        app._draw()
        assert table.selected_sat == picked
        app.sort_by(app.model.sort_key, descending=not app.model.sort_descending)
        assert table.cursor_row == 0 and table.picked is None  # a new sort: the top again
        table.select_sat(picked)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        assert app.screen.sat == picked

    run(scenario)


def test_step_and_warp_keys_send_their_commands() -> None:
    async def scenario(app, pilot) -> None:
        feed(app)
        await pilot.press("full_stop")
        await until(pilot, lambda: app.last_reply is not None)
        assert "step n=1" in str(app.reply_line.render())
        app.last_reply = None
        await pilot.press("plus")
        await until(pilot, lambda: app.last_reply is not None)
        assert "warp value=120" in str(app.reply_line.render())  # 60 × 2
        # A refused command says what failed in words, never "[Errno".
        assert "[Errno" not in str(app.reply_line.render())

    run(scenario)


def test_escape_clears_a_kept_filter() -> None:
    async def scenario(app, pilot) -> None:
        feed(app)
        await pilot.press("slash", *"dawn", "enter")
        await tuiutil.drawn(pilot, app)  # the filtered rows come with the next draw
        assert app.model.text_filter == "dawn" and len(app.fleet_table.order) < 40
        await pilot.press("a")  # and alarms only
        await tuiutil.drawn(pilot, app)
        assert "esc clears" in app.fleet_table.border_title
        await pilot.press("escape")
        await tuiutil.drawn(pilot, app)
        assert not app.model.text_filter and not app.model.only_alarm
        assert len(app.fleet_table.order) == 40 and not app.filter_box.display

    run(scenario)


# -- sorting --------------------------------------------------------------------------


def test_the_table_starts_hottest_first_and_the_picker_starts_on_its_first_row() -> None:
    async def scenario(app, pilot) -> None:
        feed(app)
        await pilot.pause(0.1)
        temp = app.model.values("temp_compute_k")
        assert app.model.sort_key == "temp_compute_k" and app.model.sort_descending
        assert app.fleet_table.order[0] == int(np.nanargmax(temp)) == tuiutil.HOT_SAT
        assert "sorted by T comp °C ▼" in app.fleet_table.border_title
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, SortScreen))
        options = app.screen.query_one("#sort-options")
        assert options.highlighted == 0
        marked = [i for i in range(options.option_count)
                  if "now" in str(options.get_option_at_index(i).prompt)]
        keys = [c.key for c in app.model.columns]
        assert marked == [keys.index("temp_compute_k")]
        # Counting rows from the top picks the row counted.
        for _ in range(keys.index("soc_frac")):
            await pilot.press("down")
        await pilot.press("enter")
        await until(pilot, lambda: app.model.sort_key == "soc_frac")

    run(scenario)


# -- narrow terminals -----------------------------------------------------------------


def _visible_rows(app: DashboardApp) -> list[str]:
    table = app.fleet_table
    return [table.render_line(y).text for y in range(table.size.height)]


def test_narrow_terminals_drop_whole_columns_and_header_parts_never_cut_numbers() -> None:
    for width in (80, 100, 120, 200):
        async def scenario(app, pilot, width=width) -> None:
            feed(app)
            await tuiutil.drawn(pilot, app)
            table = app.fleet_table
            shown = [c for _, _, c in table._offsets][:table.columns_fitted]
            keys = [c.key for c in shown]
            # The most needed columns stay, in table order.
            assert keys[:2] == ["name", "temp_compute_k"] or "temp_compute_k" in keys
            assert {"soc_frac", "utilization_frac"} <= set(keys), (width, keys)
            rows = _visible_rows(app)
            assert all(len(row) <= table.size.width for row in rows)
            for row in rows[1:]:
                for word in row.split():
                    # Every number whole: a digit then a lone "." at the edge is a cut.
                    assert not word.endswith("."), (width, row)
            header = app.query_one(HeaderBar)
            first = header.lines[0].text.plain
            assert "active alarms" in first and f" {len(app.model.alarms)} " in first, \
                (width, first)
            assert "LIVE" in first and "UTC" in first, first
            for line in header.lines:
                assert line.text.cell_len <= width, (width, line.text.plain)
                assert "…" not in line.text.plain
            if width >= 100:
                assert "policy sun_aware" in first, (width, first)
            if width == 200:
                assert table.columns_fitted > 10
            hidden = len(app.model.columns) - table.columns_fitted
            assert (f"{hidden} more column" in table.border_title) == (hidden > 0)

        run(scenario, size=(width, 30 if width < 120 else 40))


# -- explaining the state -------------------------------------------------------------


def test_without_a_twin_it_says_where_it_waits_and_how_to_start_one() -> None:
    async def scenario(app, pilot) -> None:
        app.feed(StreamUpdate(connection=CONNECTING))
        await tuiutil.drawn(pilot, app)  # the waiting panel comes with the next draw
        waiting = str(app.waiting.render())
        assert app.waiting.display and not app.fleet_table.display
        assert "tcp://127.0.0.1:1" in waiting
        assert "odc run --pub tcp://127.0.0.1:1 --cmd tcp://127.0.0.1:1" in waiting
        feed(app)
        await tuiutil.drawn(pilot, app)
        assert not app.waiting.display and app.fleet_table.display

    run(scenario)


def test_a_twin_restart_is_marked_in_the_events_log() -> None:
    async def scenario(app, pilot) -> None:
        feed(app)
        app.feed(StreamUpdate(events=tuiutil.events(1, 3), connection=LIVE))
        before = log_text(app)
        app.feed(StreamUpdate(state=tuiutil.state(1), connection=LIVE, restarted=True,
                              restarts=1))
        app._draw()
        await pilot.pause(0.1)
        after = log_text(app)
        assert after.startswith(before)
        new = after[len(before):]
        assert "twin restarted at " in new and "previous run" in new
        assert " UTC" in new and not app.recent_events
        assert "restarts 1" in app.query_one(HeaderBar).lines[0].text.plain

    run(scenario, size=(200, 40))


# -- wording --------------------------------------------------------------------------


def test_plain_words() -> None:
    assert plural(1, "ground station") == "1 ground station"
    assert plural(2, "ground station") == "2 ground stations"
    assert plain_error("[Errno 2] No such file or directory: 'run.mcap'") == \
        "no such file: run.mcap"
    assert plain_error("key registry not reloaded: [Errno 13] Permission denied: '/k'") == \
        "key registry not reloaded: not allowed to read: /k"
    assert plain_error("plain words stay") == "plain words stay"
    assert iso_utc(1.77405e9) == "2026-03-20T23:40:00Z"
    assert reply_value("t_utc", 1.77405e9) == "2026-03-20T23:40:00Z"
    assert reply_value("warp", 60.0) == "60" and iso_utc(float("nan")) is None


def test_a_status_reply_shows_its_time_in_iso_utc() -> None:
    from viz.tui.commands import CommandDone

    async def scenario(app, pilot) -> None:
        feed(app)
        app.post_message(CommandDone("status", {"ok": True, "t_utc": 1.77405e9,
                                                "paused": False, "warp": 60.0}))
        await until(pilot, lambda: "t_utc=" in str(app.reply_line.render()))
        shown = str(app.reply_line.render())
        assert "t_utc=2026-03-20T23:40:00Z" in shown and "e+09" not in shown

    run(scenario)


def test_the_command_line_tools_count_in_plain_words(tmp_path, capsys) -> None:
    """``odc scenarios --check`` and the twin's status line (issue: "1 ground stations",
    "cmds 1/0 rejected")."""
    import io

    from twinutil import make_server

    from odc.cli import main
    from twin.runtime.cli import StatusLine
    from twin.scenario import SCENARIOS_DIR

    text = (SCENARIOS_DIR / "default.toml").read_text()
    first, *others = text.split("[[station]]")[1:]
    one_station = text.split("[[station]]")[0] + "[[station]]" + first
    if others:  # keep what follows the last station (sections after the stations)
        tail = others[-1].split("\n[", 1)
        one_station += "\n[" + tail[1] if len(tail) == 2 else ""
    path = tmp_path / "one_station.toml"
    path.write_text(one_station)
    assert main(["scenarios", "--check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "     1 ground station\n" in out and "ground stations" not in out

    server = make_server("default", fast=True)
    try:
        server.engine.step()
        stream = io.StringIO()
        StatusLine(stream)(server)
        line = stream.getvalue()
        assert "commands 0 ok, 0 rejected" in line and "cmds" not in line
    finally:
        server.close()

"""The dashboard as a first-time operator meets it (issue 16 review): hints that fit the
terminal, a path dialog that never closes on nothing, the no-twin panel whole at 80x24,
counts written alike.

The app runs without a twin (``connect=False``) and is fed a real engine's messages
(tests/tuiutil.py; the starlink fleet from tests/test_tui_fleet.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rich.text import Text
from test_tui_fleet import feed as feed_starlink
from test_tui_keys import feed, run, until
from tuiutil import drawn

from viz.stream import CONNECTING
from viz.tui import keys
from viz.tui.app import HINT, TABLE_HINT, StreamUpdate
from viz.tui.header import HeaderBar
from viz.tui.screens import DetailScreen, RecordingPathScreen


def entries(actions) -> list[str]:
    return keys.hint(actions).split(" · ")


def test_key_hints_fit_the_terminal_in_whole_entries() -> None:
    full, table_full = entries(HINT), entries(TABLE_HINT)
    for width in (80, 100, 120, 200):
        async def scenario(app, pilot, width=width) -> None:
            feed(app)
            await pilot.pause(0.1)
            line = app.reply_line.content.plain
            shown = line.split(" · ")
            assert len(line) <= width - 2, (width, line)  # the line's padding
            # Whole entries, in order, and always the way to the rest of the keys.
            assert shown[-1] == full[-1] == "? all keys"
            assert shown[:-1] == full[:len(shown) - 1], (width, line)
            assert (len(shown) == len(full)) == (width >= 140), (width, line)
            subtitle = app.fleet_table.border_subtitle.removeprefix("↑↓ move · ")
            assert subtitle.split(" · ")[-1] == table_full[-1]
            assert len(subtitle) + len("↑↓ move · ") <= width - 6, (width, subtitle)
            # Rendered: the line on screen is the hint, not a cut one.
            assert app.reply_line.render().plain.rstrip() == line

        run(scenario, size=(width, 30))


def test_a_wider_terminal_gets_the_whole_hint_and_a_reply_stays() -> None:
    async def scenario(app, pilot) -> None:
        feed(app)
        await pilot.pause(0.1)
        assert "k ack all" not in app.reply_line.content.plain
        await pilot.resize_terminal(200, 30)
        await pilot.pause(0.2)
        assert app.reply_line.content.plain == keys.hint(HINT)
        app.reply_line.update(Text("› status  ok"))  # a command's reply (viz/tui/commands.py)
        await pilot.resize_terminal(80, 30)
        await pilot.pause(0.2)
        assert app.reply_line.content.plain == "› status  ok"

    run(scenario, size=(80, 30))


def test_enter_on_an_empty_recording_path_keeps_the_dialog_and_says_why() -> None:
    async def scenario(app, pilot) -> None:
        feed(app)
        await pilot.pause(0.1)
        app.push_screen(DetailScreen(app.model, 3))
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        await pilot.press("h")
        await until(pilot, lambda: isinstance(app.screen, RecordingPathScreen))
        dialog = app.screen
        # The grey "run.mcap" is the placeholder; the box is empty.
        assert dialog.query_one("#recording-input").value == ""
        await pilot.press("enter")
        await pilot.pause(0.2)  # a fixed wait on purpose: the dialog must not close in it
        assert app.screen is dialog, "Enter on nothing closed the dialog"
        said = str(dialog.query_one("#recording-help").render())
        assert "Type the path of a recording" in said and "Esc" in said
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        assert app.screen.recorded is None

    run(scenario)


def test_the_no_twin_panel_is_whole_on_an_80x24_terminal() -> None:
    async def scenario(app, pilot) -> None:
        app.feed(StreamUpdate(connection=CONNECTING))
        await drawn(pilot, app)  # the panel comes with the next draw
        screen = app.export_screenshot().replace("&#160;", " ")
        # The first line and the last words of the panel are on screen (at 80x24 the
        # panel used to end in "--scenario NAME for").
        for words in ("Waiting for a twin", "odc run --pub", "odc scenarios lists them",
                      "q quits"):
            assert words in screen, words

    run(scenario, size=(80, 24))


def test_the_table_title_and_the_header_count_nodes_alike() -> None:
    async def scenario(app, pilot) -> None:
        await feed_starlink(pilot)
        app._draw()
        assert app.fleet_table.border_title.startswith("Fleet · 4,428 of 4,428 nodes · ")
        first = app.query_one(HeaderBar).lines[0].text.plain
        assert "nodes 4,428" in first, first

    run(scenario, size=(200, 40))


def test_the_3d_hud_says_what_was_missed() -> None:
    from viz.hud_text import status_lines

    lines = status_lines({"t_utc": 1.77405e9, "warp": 1.0, "step": 3}, None, "LIVE",
                         earth_fixed=False, missed=1234)
    assert "missed 1,234 states" in "\n".join(lines)


def test_a_long_event_wraps_whole_in_the_log_and_the_node_screen() -> None:
    """Events longer than their log wrap onto the next lines: nothing is cut at the
    right edge or left to sideways scrolling (RichLog renders at least 78 columns unless
    told otherwise; the node screen's log is narrower than that at 80x24)."""
    from twin.protocol.codec import TOPIC_EVENT, decode, encode_map
    from viz.stream import LIVE

    message = ("thermal_throttle: junction 112.7 °C, HBM 114.4 °C at full clock, above "
               "its limit (85.0 °C junction, 95.0 °C HBM): clock held down, end of sentence")
    event = decode(encode_map(TOPIC_EVENT, {"v": 1, "seq": 0, "t_utc": 1.7e9, "kind": "note",
                                            "severity": "warning", "sat": 3,
                                            "message": message}))

    def shown_whole(log) -> None:
        width = log.scrollable_content_region.width
        lines = [strip.text.rstrip() for strip in log.lines]
        assert lines and all(len(line) <= width for line in lines), (width, lines)
        assert "".join(message.split()) in "".join("".join(lines).split())
        assert log.virtual_size.width <= width  # no sideways scrolling

    async def scenario(app, pilot) -> None:
        feed(app)
        app.feed(StreamUpdate(events=[event], connection=LIVE))
        await until(pilot, lambda: "end of sentence" in "".join(
            strip.text for strip in app.events_log.lines))
        shown_whole(app.events_log)
        app.fleet_table.select_sat(3)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen))
        await pilot.pause(0.2)
        shown_whole(app.screen.query_one("#detail-events"))

    run(scenario, size=(80, 24))


def test_the_contact_column_names_stations_short_and_distinct() -> None:
    """"Wallops (NASA WFF)" was cut to "Wallops (NA…" in the 12-column Contact column: the
    table shows the name before its parenthesis, unless two stations would then read alike
    (their names then stay whole, cut as before)."""
    from viz.tui.words import short_names

    assert short_names(["Wallops (NASA WFF)", "Svalbard (KSAT SvalSat)", "Hawaii"]) == \
        ["Wallops", "Svalbard", "Hawaii"]
    both = ["Svalbard (KSAT SvalSat)", "Svalbard (SSC)"]
    assert short_names(both) == both

    async def scenario(app, pilot) -> None:
        feed(app)
        await pilot.pause(0.1)
        model, column = app.model, app.model.column("contact_station")
        assert "Wallops (NASA WFF)" in model.stations
        contact = model.values("contact_station")
        sats = [int(s) for s in np.flatnonzero(contact >= 0)]
        assert sats, "no node in contact in the fixture"
        for sat in sats:
            text, _ = model.cell(column, sat)
            full = model.stations[int(contact[sat])]
            assert text == full.split(" (")[0] and "…" not in text, (text, full)

    run(scenario, size=(120, 40))

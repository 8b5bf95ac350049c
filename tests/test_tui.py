"""The terminal dashboard driven headless (textual's pilot) against a real twin on random ports.

The twin is a real `python -m twin` process (a thread would keep this process busy, and
the pilot waits for an idle process after each key); the dashboard subscribes and
commands over real loopback sockets, exactly as `odc tui` does.
"""

from __future__ import annotations

import asyncio
import io
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq
from textual.widgets import Input, Select, Static

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tuiutil
from tuiutil import detail_fields, drawn, twin_process, until

from twin.models.registry import command_catalog
from twin.protocol.codec import (
    TOPIC_EVENT,
    TOPIC_META,
    FieldSpec,
    decode,
    encode_map,
    encode_state,
    pack,
    unpack,
)
from twin.protocol.codec import Message as WireMessage
from twin.protocol.commands import check_request
from viz.stream import LIVE, STALE
from viz.tui import forms
from viz.tui.app import DashboardApp, StreamUpdate
from viz.tui.levels import limit_levels
from viz.tui.model import FleetModel
from viz.tui.screens import CommandError, CommandFormScreen, DetailScreen, parse_command

SIZE = (140, 40)




def twin_order(app: DashboardApp) -> None:
    """The table in the twin's order (it starts hottest first), the order these tests count
    rows in."""
    app.model.sort_key, app.model.sort_descending = "", False
    app._draw()
    app.fleet_table.to_top()  # as a sort the operator picks


def test_table_fills_from_the_stream_and_sorts_and_filters() -> None:
    async def scenario(addresses: dict[str, str]) -> None:
        app = DashboardApp(addresses["stream"], addresses["commands"], stale_after_s=2.0)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.model.n == 40 and len(app.fleet_table.order) == 40
                        and app.model.names and app.connection == LIVE)
            table = app.fleet_table
            assert [c.key for c in app.model.columns][:3] == ["name", "group", "lat_deg"]
            # The table starts as the footer says: the hottest node on top.
            assert app.model.sort_key == "temp_compute_k" and app.model.sort_descending
            order, temp = app.model.view_order(), app.model.values("temp_compute_k")
            assert order[0] == int(np.nanargmax(temp)), "the hottest node is not on top"
            # Sort by latitude from the sort chooser: highest first, then reversed.
            await pilot.press("s")
            await until(pilot, lambda: app.screen.__class__.__name__ == "SortScreen")
            await pilot.press("home")
            keys = [c.key for c in app.model.columns]
            for _ in range(keys.index("lat_deg")):
                await pilot.press("down")
            await pilot.press("enter")
            await until(pilot, lambda: app.model.sort_key == "lat_deg")
            await drawn(pilot, app)
            # Order and values from the same instant (the table redraws from view_order()).
            order, lat = app.model.view_order(), app.model.values("lat_deg")
            assert np.all(np.diff(lat[order]) <= 0), "not sorted highest first"
            assert order[0] == int(np.argmax(lat)) and len(table.order) == 40
            app.sort_by("lat_deg")
            await pilot.pause(0.2)
            assert not app.model.sort_descending
            order, lat = app.model.view_order(), app.model.values("lat_deg")
            assert np.all(np.diff(lat[order]) >= 0)
            # Filter by name: only the dawn-dusk plane.
            await pilot.press("slash")
            await pilot.press(*"dawn")
            await pilot.press("enter")
            await drawn(pilot, app)
            names = [app.model.name(int(i)) for i in table.order]
            assert names and all("dawn" in n for n in names) and len(names) < 40
            # By state: only nodes in eclipse (against the streamed sunlit fraction).
            await pilot.press("e")
            await drawn(pilot, app)
            sunlit = app.model.values("sunlit_frac")
            assert all(sunlit[i] < 0.5 and "dawn" in app.model.name(int(i)) for i in table.order)
            await pilot.press("e")
            # Enter opens the detail screen of the selected node; Esc goes back.
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, DetailScreen))
            assert app.screen.sat in table.order  # the live sort may have moved it since
            await pilot.press("escape")
            await until(pilot, lambda: not isinstance(app.screen, DetailScreen))

    with twin_process("--rate", "10", "--warp", "60") as (_, addresses):
        asyncio.run(scenario(addresses))


def test_keys_send_commands_and_the_reply_shows() -> None:
    async def scenario(addresses: dict[str, str]) -> None:
        app = DashboardApp(addresses["stream"], addresses["commands"], stale_after_s=2.0)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.connection == LIVE and app.model.n == 40)
            await pilot.press("space")
            await until(pilot, lambda: app.last_reply is not None)
            assert app.last_reply["ok"] and app.last_reply["paused"] is True
            await until(pilot, lambda: app.paused)
            assert "PAUSED" in str(app.query_one("#header").text)
            step = app.model.header["step"]
            await pilot.pause(0.5)
            assert app.model.header["step"] == step, "twin still stepping while paused"
            app.last_reply = None
            await pilot.press("space")
            await until(pilot, lambda: app.last_reply is not None)
            assert app.last_reply["ok"] and app.last_reply["paused"] is False
            await until(pilot, lambda: app.model.header["step"] > step)
            # A bad command typed at the prompt: the twin's error is shown, nothing breaks.
            app.last_reply = None
            await pilot.press("colon")
            # The prompt may come up after a fixed pause on a loaded machine: wait for it.
            await until(pilot, lambda: isinstance(app.focused, Input)
                        and app.focused.id == "command-input")
            app.screen.query_one("#command-input", Input).value = "warp value=-5"
            await pilot.press("enter")
            await until(pilot, lambda: app.last_reply is not None)
            assert app.last_reply["ok"] is False
            assert "warp" in str(app.query_one("#reply").render())
            await pilot.pause(0.3)
            assert app.warp == 60.0
            # A command done with a note (a cap below the node's floor): the reply says it.
            app.last_reply = None
            await pilot.press("colon")
            await until(pilot, lambda: isinstance(app.focused, Input)
                        and app.focused.id == "command-input")
            app.screen.query_one("#command-input", Input).value = \
                "set_power_cap sat=0 power_w=100"
            await pilot.press("enter")
            await until(pilot, lambda: app.last_reply is not None)
            assert app.last_reply["ok"] and "below the node's floor" in app.last_reply["note"]
            assert "note=below the node's floor" in str(app.query_one("#reply").render())

    with twin_process("--rate", "10", "--warp", "60") as (_, addresses):
        asyncio.run(scenario(addresses))


def test_stale_when_the_twin_stops_and_live_when_it_returns() -> None:
    async def scenario() -> None:
        with twin_process("--rate", "10") as (first, addresses):
            app = DashboardApp(addresses["stream"], addresses["commands"], stale_after_s=1.0,
                               command_timeout_s=0.5)
            async with app.run_test(size=SIZE) as pilot:
                await until(pilot, lambda: app.connection == LIVE and app.model.n == 40)
                tuiutil.stop_process(first)
                await until(pilot, lambda: app.connection == STALE, timeout_s=5)
                assert "STALE" in str(app.query_one("#header").text)
                # Commands to a twin that is gone come back as errors, the UI keeps going.
                await pilot.press("space")
                await until(pilot, lambda: app.last_reply is not None, timeout_s=5)
                assert app.last_reply["ok"] is False
                same_ports = {"pub": addresses["stream"], "cmd": addresses["commands"],
                              "ingest": addresses["ingest"]}
                with twin_process("--rate", "10", **same_ports):
                    await until(pilot, lambda: app.connection == LIVE, timeout_s=10)
                    await until(pilot, lambda: app.restarts >= 1, timeout_s=5)
                    await drawn(pilot, app)  # the header comes with the state's draw
                    assert "LIVE" in str(app.query_one("#header").text)
                    # The events log marks where the new run's events begin.
                    logged = "\n".join(strip.text for strip in app.events_log.lines)
                    assert "twin restarted at " in logged and "previous run" in logged

    asyncio.run(scenario())


# -- the model, without a terminal ----------------------------------------------------


def test_columns_take_their_units_from_the_catalog() -> None:
    """Headings and cells in the catalog's display units: °C, %, kW, PFLOP/s."""
    model = FleetModel()
    model.apply_meta(tuiutil.meta())
    model.apply_state(tuiutil.state(3))
    headings = {c.key: c.heading for c in model.columns}
    assert headings["temp_compute_k"] == "T comp °C" and headings["soc_frac"] == "SOC %"
    assert headings["delivered_flop_s"] == "Compute PFLOP/s"
    assert headings["compute_power_w"] == "P comp kW" and headings["lat_deg"] == "Lat °"
    # Node 3 held at 5 % (tuiutil's Hold), no cap anywhere: shown as the catalog says
    # +inf reads ("none"), not a number.
    assert model.cell(model.column("soc_frac"), 3)[0] == "5.0"
    assert headings["power_cap_w"] == "P cap W" and headings["compute_cap_w"] == "Cap W"
    assert model.cell(model.column("power_cap_w"), 0)[0] == "none"


def test_a_column_formats_as_its_cells() -> None:
    """One column at a time (what the table draws) reads exactly as cell by cell."""
    model = FleetModel()
    model.apply_meta(tuiutil.meta(mirror=True))
    model.apply_state(tuiutil.state(3, mirror=True))
    sats = np.array([tuiutil.HOT_SAT, 0, tuiutil.WARM_SAT, tuiutil.MIRROR_SAT, 39])
    for column in model.columns:
        texts, levels = model.cells(column, sats)
        assert list(zip(texts, levels, strict=True)) == [model.cell(column, sat)
                                                         for sat in sats.tolist()]
    name = model.column("name")
    assert model.cell(name, tuiutil.MIRROR_SAT)[0].startswith("◉ ")
    hot_c = f"{tuiutil.HOT_K - 273.15:.1f}"
    assert model.cell(model.column("temp_compute_k"), tuiutil.HOT_SAT) == (hot_c, 2)
    assert model.cell(model.column("sunlit_frac"), 0)[0] in ("sun", "pen", "ecl")


def test_limit_levels() -> None:
    limits = {"warn_high": 353.15, "alarm_high": 363.15, "warn_low": 273.15}
    levels = limit_levels(np.array([300.0, 355.0, 370.0, 260.0, np.nan]), limits)
    assert levels.tolist() == [0, 1, 2, 1, 0]


def test_new_fields_appear_from_the_catalog_and_sort_hottest_first() -> None:
    model = FleetModel()
    model.apply_meta(tuiutil.meta())
    model.apply_state(tuiutil.state(1))
    keys = [c.key for c in model.columns]
    for name in ("temp_compute_k", "soc_frac", "utilization_frac", "power_cap_w", "upsets"):
        assert name in keys
    assert "pos_gcrs_km" not in keys and "in_contact" not in keys
    order = model.view_order()  # sorted hottest first from the start
    assert model.sort_key == "temp_compute_k" and model.sort_descending
    assert order[0] == tuiutil.HOT_SAT
    assert model.worst[tuiutil.HOT_SAT] == 2 and model.worst[tuiutil.WARM_SAT] == 1
    model.only_alarm = True
    assert set(model.view_order()) == {tuiutil.LOW_SAT, tuiutil.HOT_SAT}
    model.only_alarm = False
    model.set_text_filter("dawn")
    shown = model.view_order()
    assert len(shown) == 16 and all(model.name(int(i)).startswith("dawn-dusk") for i in shown)


# A twin newer than the viewer: a field with a unit it has never seen, an enum with labels,
# and a fleet total, all described by meta's catalogs (docs/protocol.md, "Catalogs").
PUMP_LABELS = {0: "off", 1: "low", 2: "high"}
NEW_FIELDS = [
    FieldSpec("coolant_pressure_pa", "<f4", (40,), "Pa", "coolant loop pressure",
              limits={"alarm_high": 250_000.0}),
    FieldSpec("pump_mode", "|u1", (40,), "code", "coolant pump mode", labels=PUMP_LABELS),
]
NEW_TOTAL = {"coolant_heat_total_w": {
    "unit": "W", "kind": "quantity", "description": "heat carried by the loops", "labels": {},
    "display": {"unit": "W", "scale": 1.0, "offset": 0.0, "prefix": True}}}


def unseen_meta() -> dict:
    body = tuiutil.meta().header
    body["fields"] += [spec.catalog_entry() for spec in NEW_FIELDS]
    body["totals"] = NEW_TOTAL
    return decode(encode_map(TOPIC_META, body)).header


def base_t_utc() -> float:
    return float(tuiutil.state(1).header["t_utc"])


def unseen_state(step: int) -> WireMessage:
    """tuiutil's state plus the new fields and total, framed by the real codec."""
    base = tuiutil.state(step)
    header = {k: v for k, v in base.header.items() if k != "fields"}
    header["fleet"] = {**header["fleet"], "coolant_heat_total_w": 2.5e6}
    known = tuiutil.feed().engine.field_specs  # the real twin's fields
    specs = known + NEW_FIELDS
    arrays = [base.arrays[spec.name] for spec in known]
    arrays += [np.full(40, 180_000.0, np.float32), (np.arange(40) % 3).astype(np.uint8)]
    return decode([bytes(f) for f in encode_state(header, specs, arrays)])


def test_fields_and_totals_never_seen_render_from_the_catalog() -> None:
    """The issue's test: unit, enum labels and a new total, all from meta, in the table,
    the header, the detail screen and an alarm's text."""
    async def scenario() -> None:
        app = DashboardApp("tcp://127.0.0.1:1", "tcp://127.0.0.1:1", connect=False)
        async with app.run_test(size=SIZE) as pilot:
            app.feed(StreamUpdate(meta=unseen_meta(), connection=LIVE))
            app.feed(StreamUpdate(state=unseen_state(1), connection=LIVE))
            alarm = {"v": 1, "seq": 9, "t_utc": base_t_utc(), "kind": "limit",
                     "severity": "alarm", "sat": 2, "field": "coolant_pressure_pa",
                     "value": 262_000.0, "limit": 250_000.0, "level": "alarm_high",
                     "unit": "Pa", "message": "SSO-002: coolant_pressure_pa 2.62e+05 Pa"}
            app.feed(StreamUpdate(events=[decode(encode_map(TOPIC_EVENT, alarm))],
                                  connection=LIVE))
            await drawn(pilot, app)  # the table's headings come with its next draw
            model = app.model
            pressure, pump = model.column("coolant_pressure_pa"), model.column("pump_mode")
            assert pressure.heading == "Coolant pressure Pa" and pump.heading == "Pump mode"
            assert model.cells(pump, np.array([0, 1, 2]))[0] == ["off", "low", "high"]
            assert model.cell(pressure, 0)[0] == "180000"
            headings = "".join(s.text for s in app.fleet_table._header_strip())
            assert "Coolant pressure Pa" in headings and "Pump mode" in headings
            # The header's last line shows the totals that fit whole; this one, the last of
            # many, is formatted from the catalog like the rest.
            assert ("Coolant heat total", "2.50 MW") in app.model.fleet_items()[1]
            assert "Coolant pressure 262000 Pa above alarm limit 250000 Pa" in \
                model.alarms[("limit", 2)].message
            twin_order(app)
            await pilot.press("down", "down", "enter")  # node 2's detail: every field
            table = await detail_fields(pilot, app)
            rows = {str(table.get_cell(key, "field")): str(table.get_cell(key, "value"))
                    for key in table.rows}
            assert rows["pump_mode"] == "high" and rows["coolant_pressure_pa"] == "180000 Pa"
            assert str(table.get_cell("coolant_pressure_pa", "limits")) == "alarm >250000 Pa"

    asyncio.run(scenario())


def test_alarm_events_are_active_until_acknowledged() -> None:
    """The twin's own events: its limit alarm on the hot node, raised again (as it is
    each time the node goes back in and out of limits), and a contact, which is no alarm."""
    model = FleetModel()
    model.apply_meta(tuiutil.meta())
    hot = next(e for e in tuiutil.events(0, 5) if e.header["kind"] == "limit"
               and e.header["sat"] == tuiutil.HOT_SAT)
    assert hot.header["severity"] == "alarm"
    for _ in range(3):
        model.apply_event(hot)
    model.apply_event(next(e for e in tuiutil.events(0, 60)
                           if e.header["kind"] == "contact_start"))
    key = ("limit", tuiutil.HOT_SAT)
    assert list(model.alarms) == [key] and model.alarms[key].count == 3
    assert model.acknowledge(key) == 1 and not model.alarms


def test_trends_keep_the_last_samples_per_node() -> None:
    model = FleetModel(trend_samples=5)
    model.apply_meta(tuiutil.meta())
    for step in range(8):
        model.apply_state(tuiutil.state(step))
    series = model.trend_of("soc_frac", 10)
    expected = [tuiutil.state(step).arrays["soc_frac"][10] for step in range(3, 8)]
    assert np.allclose(series, expected)


def test_parse_command() -> None:
    assert parse_command("warp value=120") == ("warp", {"value": 120})
    assert parse_command("policy policy=sun_aware") == ("policy", {"policy": "sun_aware"})
    assert parse_command('submit kind="batch inference" n=2.5 ok=true') == (
        "submit", {"kind": "batch inference", "n": 2.5, "ok": True})
    with pytest.raises(CommandError):
        parse_command("warp 120")
    with pytest.raises(CommandError):
        parse_command("")


def test_synthetic_feed_without_a_twin_never_blocks() -> None:
    async def scenario() -> None:
        app = DashboardApp("tcp://127.0.0.1:1", "tcp://127.0.0.1:1", stale_after_s=0.5,
                           command_timeout_s=0.3)
        async with app.run_test(size=SIZE) as pilot:
            app.feed(StreamUpdate(meta=tuiutil.meta(), connection=LIVE))
            app.feed(StreamUpdate(state=tuiutil.state(1), connection=LIVE))
            # The state came within a frame of the meta: the table draws it on the next
            # frame's timer, which a loaded machine may run late.
            await until(pilot, lambda: len(app.fleet_table.order) == 40, timeout_s=5)
            await pilot.press("space")  # nobody answers: an error reply, not a hang
            await until(pilot, lambda: app.last_reply is not None, timeout_s=5)
            assert app.last_reply["ok"] is False

    asyncio.run(scenario())


def _with(state, name: str, sat: int, value: float):
    """A copy of ``state`` with one node's value of field ``name`` changed."""
    arrays = {key: array.copy() for key, array in state.arrays.items()}
    arrays[name][sat] = value
    return type(state)(state.topic, dict(state.header), arrays)


def test_only_changed_rows_repaint_and_the_screen_matches_a_full_redraw() -> None:
    """The table repaints only the lines whose text or colour changed (most rows read the
    same from one state to the next); what the screen then shows is exactly what a full
    redraw shows: unsorted, sorted (rows move), with the cursor moved and scrolled."""
    async def scenario() -> None:
        app = DashboardApp("tcp://127.0.0.1:1", "tcp://127.0.0.1:1", connect=False)
        async with app.run_test(size=SIZE) as pilot:
            table = app.fleet_table
            app.feed(StreamUpdate(meta=tuiutil.meta(), connection=LIVE))
            state = tuiutil.state(5)
            app.feed(StreamUpdate(state=state, connection=LIVE))
            twin_order(app)
            await drawn(pilot, app)
            painted: list[int] = []
            draw = table.render_line
            table.render_line = lambda y: (painted.append(y), draw(y))[1]

            async def show(new_state) -> list[int]:
                """Feed a state; the lines it repainted, after checking the screen
                against a full redraw of the table."""
                painted.clear()
                app.feed(StreamUpdate(state=new_state, connection=LIVE))
                await drawn(pilot, app)  # its draw (a timer up to 0.1 s later) and repaint
                repainted, shown = sorted(painted), app.export_screenshot()
                table.refresh()
                await pilot.pause(0.1)  # the pause ends with a repaint of what refresh marked
                assert app.export_screenshot() == shown, "partial repaint left stale lines"
                return repainted

            # Settle first: on a slow or busy machine the first frames can still be
            # laying out (every line repaints then). The same state again must come to
            # repaint nothing within a few frames.
            for _ in range(20):
                if await show(state) == []:
                    break
            else:
                raise AssertionError("the table kept repainting an unchanged state")
            # Unsorted, node 2 (row 2, line 3 under the header) warms by 1 K within its
            # warning band: its text changes, one line repaints.
            assert await show(_with(state, "temp_compute_k", 2, 356.0)) == [3]
            assert " 82.9 " in "".join(segment.text for segment in draw(3))
            # Only its colour changes: still "80.0", but now past the warning limit.
            assert await show(_with(state, "temp_compute_k", 2, 353.14)) == [3]
            state = _with(state, "temp_compute_k", 2, 353.16)
            assert await show(state) == [3]
            assert await show(state) == []  # the same state again: nothing to repaint
            # Sorted hottest first, the node on row 10 jumps to the second row (just
            # below the node held hot): the rows between its old and new place move down
            # by one, the others stay.
            app.sort_by("temp_compute_k", descending=True)
            await drawn(pilot, app)  # the rows take the new order with the next draw
            old_row = 10
            mover = int(table.order[old_row])
            state = _with(state, "temp_compute_k", mover, tuiutil.HOT_K - 1.0)
            repainted = await show(state)
            assert table.order[1] == mover
            assert repainted == list(range(2, old_row + 2))
            # The cursor moved and the table scrolled sideways: still as a full redraw.
            await pilot.press("down", "down")
            table.scroll_to(x=9, animate=False)
            await pilot.pause(0.2)
            assert await show(_with(state, "soc_frac", int(table.order[4]), 0.25)) == [5]

    asyncio.run(scenario())


# -- the mirrored node ----------------------------------------------------------------

def test_mirror_model_measured_beside_predicted() -> None:
    """The twin's mirror fields, its testbed reading the model's last prediction
    +15 K (cold plate) and -7 K (radiator) against 10 K thresholds: rows, units, levels."""
    from viz.tui.levels import ALARM, OK, WARN
    from viz.tui.mirror_rows import MIRROR_MARK

    model = FleetModel()
    model.apply_meta(tuiutil.meta(mirror=True))
    model.apply_state(tuiutil.state(3, mirror=True))
    sat = tuiutil.MIRROR_SAT
    [binding] = model.mirrors
    assert (binding.testbed, binding.sat) == ("flatsat", sat) and list(model.mirror_of) == [sat]
    # The mirror's arrays run along bindings: they are no table columns.
    assert not any(c.key.startswith("mirror_") for c in model.columns)
    name = model.column("name")
    assert model.cell(name, sat)[0] == f"{MIRROR_MARK} {model.name(sat)}"
    assert model.cell(name, sat + 1)[0] == model.name(sat + 1)
    # One sample a step, the wall clock 0.1 s a step on (rate 10 Hz).
    assert model.mirror_live(binding) is True
    assert model.mirror_age_s(binding) == pytest.approx(tuiutil.WALL_STEP_S, abs=1e-3)
    rows = {row.quantity: row for row in model.mirror_rows(binding)}
    compute, radiator = rows["temp_compute_k"], rows["temp_radiator_k"]
    assert compute.role == "state" and compute.threshold == 10.0
    assert compute.residual == pytest.approx(compute.measured - compute.predicted, abs=1e-3)
    # The offsets, less what the model moved in the one step since the sample.
    assert compute.residual == pytest.approx(15.0, abs=1.0) and compute.level == ALARM
    assert radiator.residual == pytest.approx(-7.0, abs=1.0) and radiator.level == WARN
    assert rows["compute_power_w"].role == "driver"
    assert rows["compute_power_w"].measured == pytest.approx(tuiutil.MIRROR_POWER_W)
    # Residuals of temperatures are differences in K, not °C; fractions in points.
    assert model.quantities.field("temp_compute_k").difference(12.0) == "+12.00 K"
    assert model.quantities.field("soc_frac").difference(0.031) == "+3.1 pp"
    # Telemetry lost: NaN measured and residual, level OK (nothing to compare).
    model.apply_state(tuiutil.lost_mirror_state())
    assert model.mirror_live(binding) is False
    lost = {row.quantity: row for row in model.mirror_rows(binding)}
    assert np.isnan(lost["temp_compute_k"].residual) and lost["temp_compute_k"].level == OK
    # No mirror in meta, or a malformed one: nothing marked, nothing breaks.
    plain = FleetModel()
    plain.apply_meta(tuiutil.meta())
    assert plain.mirrors == [] and plain.cell(plain.column("name"), sat)[0] == tuiutil.name(sat)
    bad = tuiutil.meta().header
    bad["subsystems"]["mirror"] = {"bindings": [{"testbed": "x"}, {"testbed": "y", "sat": 99}]}
    plain.apply_meta(bad)
    assert plain.mirrors == []


def test_mirror_key_header_and_detail() -> None:
    """`m` opens the mirrored node: header badge, measured/predicted/residual table."""
    async def scenario() -> None:
        app = DashboardApp("tcp://127.0.0.1:1", "tcp://127.0.0.1:1", connect=False)
        async with app.run_test(size=SIZE) as pilot:
            app.feed(StreamUpdate(meta=tuiutil.meta(), connection=LIVE))
            assert not app.check_action("mirror", ())  # hidden without a mirror
            app.feed(StreamUpdate(meta=tuiutil.meta(mirror=True), connection=LIVE))
            state = tuiutil.state(1, mirror=True)
            app.feed(StreamUpdate(state=state, connection=LIVE))
            assert app.check_action("mirror", ())
            await until(pilot, lambda: "◉ MIRROR flatsat LIVE"
                        in str(app.query_one("#header").text))
            await pilot.press("m")
            await until(pilot, lambda: isinstance(app.screen, DetailScreen))
            assert app.screen.sat == tuiutil.MIRROR_SAT
            panel = app.screen.query_one("#detail-mirror")
            compute, radiator = (float(state.arrays[f"mirror_residual_{q}"][0])
                                 for q in tuiutil.MIRROR_STATES)
            await until(pilot, lambda: panel.display
                        and f"{compute:+.2f} K" in _rendered(app, panel))
            text = _rendered(app, panel)
            # In the table column's unit (kW at the fleet's typical power).
            measured_power = app.model.column("compute_power_w").unit.text(
                tuiutil.MIRROR_POWER_W)
            for expected in ("Measured", "Predicted", "Residual", f"{compute:+.2f} K",
                             f"{radiator:+.2f} K", "±10.00 K", measured_power,
                             "drives the model"):
                assert expected in text, f"{expected!r} not in the mirror panel:\n{text}"
            app.feed(StreamUpdate(state=tuiutil.lost_mirror_state(), connection=LIVE))
            await until(pilot, lambda: "MIRROR flatsat LOST" in _rendered(app, panel))
            # Another node's detail has no mirror panel.
            await pilot.press("right_square_bracket")
            await until(pilot, lambda: app.screen.sat != tuiutil.MIRROR_SAT
                        and not panel.display)

    asyncio.run(scenario())


def _rendered(app: DashboardApp, widget) -> str:
    """The plain text a Static shows (its renderable printed at the widget's width)."""
    from rich.console import Console

    console = Console(width=max(widget.size.width, 80), record=True, file=io.StringIO())
    console.print(widget.content)
    return console.export_text()


def test_live_mirror_from_the_flatsat_scenario(tmp_path) -> None:
    """The real mirror scenario in a real twin; telemetry pushed into its ingest socket
    shows as measured beside predicted, then LOST when it stops."""
    import zmq

    from twin.protocol.telemetry import encode_telemetry

    text = (tuiutil.ROOT / "assets" / "testbeds" / "flatsat_mirror.toml").read_text()
    scenario_file = tmp_path / "flatsat_mirror.toml"
    scenario_file.write_text(text.replace("lost_after_s = 3.0", "lost_after_s = 1.0"))

    async def scenario(addresses: dict[str, str]) -> None:
        sending = threading.Event()
        sending.set()
        stop = threading.Event()

        def push_loop() -> None:
            """The testbed's stand-in: one housekeeping sample every 0.1 s while sending."""
            push = zmq.Context.instance().socket(zmq.PUSH)
            push.setsockopt(zmq.LINGER, 0)
            push.setsockopt(zmq.SNDTIMEO, 1000)
            push.connect(addresses["ingest"])
            sent = 0
            try:
                while not stop.wait(0.1):
                    if not sending.is_set():
                        continue
                    push.send_multipart(encode_telemetry(
                        sent, "flatsat", "hk", np.array([time.time()]),
                        {"compute_power_w": np.array([170.0]), "util_frac": np.array([0.5]),
                         "cold_plate_temp_c": np.array([45.0]),
                         "radiator_temp_c": np.array([5.0])},
                        seq_count=np.array([sent])), copy=True)
                    sent += 1
            finally:
                push.close()

        def panel() -> str:
            return _rendered(app, app.screen.query_one("#detail-mirror"))

        pusher = threading.Thread(target=push_loop, daemon=True)
        pusher.start()
        app = DashboardApp(addresses["stream"], addresses["commands"], stale_after_s=2.0)
        try:
            async with app.run_test(size=SIZE) as pilot:
                await until(pilot, lambda: app.model.n == 16 and app.model.mirrors)
                await until(pilot, lambda: "MIRROR flatsat LIVE"
                            in str(app.query_one("#header").text), timeout_s=15)
                await pilot.press("m")
                await until(pilot, lambda: isinstance(app.screen, DetailScreen))
                assert app.screen.sat == 0  # dawn-dusk-01-01
                # The measured cold plate (45 °C) beside the model's prediction.
                await until(pilot, lambda: "45.0 °C" in panel() and "LIVE" in panel())
                sending.clear()  # the testbed goes quiet: lost after lost_after_s
                await until(pilot, lambda: "MIRROR flatsat LOST" in panel(), timeout_s=10)
                assert "MIRROR flatsat LOST" in str(app.screen.query_one("#header").text)
        finally:
            stop.set()
            pusher.join(5)

    with twin_process("--scenario", str(scenario_file), "--rate", "10") as (_, addresses):
        asyncio.run(scenario(addresses))


def test_commands_choices_and_forms_come_from_the_catalog() -> None:
    """The palette's policies, the current one and the command forms come from meta's
    command and totals catalogs; an error's text is never read for command names."""
    async def scenario() -> None:
        app = DashboardApp("tcp://127.0.0.1:1", "tcp://127.0.0.1:1", connect=False)
        async with app.run_test(size=SIZE) as pilot:
            app.feed(StreamUpdate(meta=tuiutil.meta(), connection=LIVE))
            app.feed(StreamUpdate(state=tuiutil.state(1), connection=LIVE))
            await pilot.pause(0.1)
            assert "inject_fault" in app.known_commands and "set_policy" in app.known_commands
            assert app._choices("set_policy", "policy") == ["first_fit", "sun_aware",
                                                            "network_aware"]
            assert app._current_policy() == "sun_aware"  # the default scenario's policy
            hint = app._form_hint("submit_job")
            assert "kind?=training|inference" in hint and "priority?=-1000..1000" in hint
            known = list(app.known_commands)
            app._learn_commands({"ok": False, "error": "unknown command 'x'; known: a, b"})
            assert app.known_commands == known

    asyncio.run(scenario())


# -- a twin newer than the dashboard: fields, an enum and a command it has never seen ----


def test_command_forms_read_only_the_catalog() -> None:
    """Hints and typed values come from an argument's declaration: type, unit, range,
    default, choices, nullable, allow_all."""
    entry = tuiutil.NEWER_COMMAND.entry()
    args = forms.args_of(entry)
    assert list(args) == ["sat", "mode", "power_w", "retries"]
    assert forms.hint(args["power_w"]) == "0.5 to 40 W · default 10 W · transmit power"
    assert forms.hint(args["mode"]) == "off | rf | optical · what the terminal does"
    assert forms.hint(args["sat"], 40) == "node 0 to 39, a name or all · the node, or all"
    assert forms.hint(args["retries"]) == "0 to 5 · default 1 · acquisition attempts"
    values, errors = forms.request(entry, {"sat": "7", "mode": "optical", "power_w": "25",
                                           "retries": "3"}, 40)
    assert values == {"sat": 7, "mode": "optical", "power_w": 25.0, "retries": 3} and not errors
    assert type(values["power_w"]) is float and type(values["retries"]) is int
    values, errors = forms.request(entry, {"sat": "all", "mode": None, "power_w": "99",
                                           "retries": "2.5"}, 40)
    assert values == {"sat": "all"}
    assert errors == {"mode": "choose one: off | rf | optical",
                      "power_w": "99 is out of range: 0.5 to 40 W",
                      "retries": "'2.5' is not a whole number: 0 to 5"}
    # Optional and empty: not sent (the twin's default holds); a node past the fleet: refused.
    values, errors = forms.request(entry, {"sat": "40", "mode": "rf", "power_w": "",
                                           "retries": " "}, 40)
    assert values == {"mode": "rf"} and errors == {"sat": "no node 40: node 0 to 39, a name or all"}
    # A nullable number takes "none" (nil clears the cap); a fraction says so.
    cap = forms.args_of(command_catalog()["set_power_cap"].entry())["power_w"]
    assert forms.read_arg(cap, "none") is None and forms.read_arg(cap, "") is forms.OMIT
    health = forms.args_of(command_catalog()["inject_fault"].entry())["health_frac"]
    assert forms.range_text(health) == "0 to 0.999 fraction"
    # The warp keys keep to the declared range; an old twin's catalog: the given one.
    catalog = {"warp": {"args": {"value": {"type": "number", "min": 0.5, "max": 8.0}}}}
    assert forms.declared_range(catalog, "warp", "value", (0.0, 1e9)) == (0.5, 8.0)
    assert forms.declared_range({}, "warp", "value", (0.0, 1e9)) == (0.0, 1e9)


def test_keys_open_the_catalogs_forms_for_the_selected_node() -> None:
    """f, F and j open the fault, repair and job forms from meta.commands, on the node
    under the cursor, starting from the catalog's defaults."""
    async def scenario() -> None:
        app = DashboardApp("tcp://127.0.0.1:1", "tcp://127.0.0.1:1", connect=False)
        async with app.run_test(size=SIZE) as pilot:
            app.feed(StreamUpdate(meta=tuiutil.meta(), connection=LIVE))
            app.feed(StreamUpdate(state=tuiutil.state(1), connection=LIVE))
            twin_order(app)
            await drawn(pilot, app)
            await pilot.press("down", "down", "f")
            await until(pilot, lambda: isinstance(app.screen, CommandFormScreen))
            form = app.screen
            assert form.cmd == "inject_fault" and form.query_one("#arg-sat", Input).value == "2"
            assert form.query_one("#arg-kind", Select).value is Select.NULL  # no default
            assert "hazardous" in str(form.query_one("#form-significance", Static).render())
            assert str(form.query_one("#hint-health_frac", Static).render()) == \
                "0 to 0.999 fraction · capacity left (other kinds)"
            await pilot.press("escape", "F")
            await until(pilot, lambda: isinstance(app.screen, CommandFormScreen))
            assert app.screen.query_one("#arg-kind", Select).value == "all"  # its default
            await pilot.press("escape", "j")
            await until(pilot, lambda: isinstance(app.screen, CommandFormScreen)
                        and app.screen.cmd == "submit_job")
            assert app.screen.query_one("#arg-kind", Select).value == "inference"

    asyncio.run(scenario())


class CommandSink:
    """A ROUTER on a random loopback port standing in for the twin's command socket: it
    keeps each request and answers ``ok`` with the request's ``id``."""

    def __init__(self) -> None:
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.bind("tcp://127.0.0.1:*")
        self.address = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.requests: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            if not self.socket.poll(50):
                continue
            identity, empty, body = self.socket.recv_multipart()
            request = unpack(body)
            self.requests.append(request)
            self.socket.send_multipart([identity, empty, pack({"ok": True,
                                                               "id": request.get("id")})])

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.socket.close(0)
        self.context.term()


def test_a_newer_twin_renders_and_is_commanded_from_its_catalogs() -> None:
    """The issue's test: a field in a unit the dashboard never saw, shown the catalog's way
    (kPa, not the wire's Pa), an enum by its labels, and a command it never saw listed in
    the palette, its form built from the catalog, and a correctly typed request sent."""
    sink = CommandSink()

    async def scenario() -> None:
        app = DashboardApp("tcp://127.0.0.1:1", sink.address, connect=False)
        async with app.run_test(size=SIZE) as pilot:
            app.feed(StreamUpdate(meta=tuiutil.newer_meta(), connection=LIVE))
            app.feed(StreamUpdate(state=tuiutil.newer_state(1), connection=LIVE))
            twin_order(app)
            await drawn(pilot, app)
            model, hot, warm = app.model, tuiutil.HOT_SAT, tuiutil.WARM_SAT
            pressure, link = model.column("coolant_pressure_pa"), model.column("link_mode")
            assert pressure.heading == "Coolant pressure kPa" and link.heading == "Link mode"
            assert model.cells(link, np.array([0, 1, 2]))[0] == ["off", "rf", "optical"]
            # Past the catalog's limits: coloured as an alarm and a warning.
            assert model.cell(pressure, hot) == ("262", 2)
            assert model.cell(pressure, warm) == ("240", 1) and model.cell(pressure, 0)[1] == 0
            assert "coolant_pressure_pa" in model.trend_fields  # it has limits: watched
            headings = "".join(s.text for s in app.fleet_table._header_strip())
            assert "Coolant pressure kPa" in headings and "Link mode" in headings

            # The palette lists the new command; its form comes from the catalog.
            await pilot.press("ctrl+p")
            await pilot.press(*"set_link")
            await until(pilot, lambda: "set_link_mode" in _highlighted(app))
            assert "switch a node's crosslink terminal (operational)" in _highlighted(app)
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, CommandFormScreen))
            form = app.screen
            hints = {name: str(form.query_one(f"#hint-{name}", Static).render())
                     for name in ("sat", "mode", "power_w", "retries")}
            assert hints == {
                "sat": "node 0 to 39, a name or all · the node, or all",
                "mode": "off | rf | optical · what the terminal does",
                "power_w": "0.5 to 40 W · default 10 W · transmit power",
                "retries": "0 to 5 · default 1 · acquisition attempts"}
            assert form.query_one("#arg-sat", Input).value == "0"  # the node under the cursor
            assert form.query_one("#arg-power_w", Input).value == "10"  # the default
            # Typed as an operator would: node 7, power out of range first.
            await pilot.press("7")
            await pilot.press("tab", "enter")  # the mode list opens
            await pilot.press("down", "down", "down", "enter")  # choose, off, rf, optical
            await until(pilot, lambda: form.query_one("#arg-mode", Select).value == "optical",
                        timeout_s=5)
            await pilot.press("tab", *"99", "tab", *"3", "enter")
            await pilot.pause(0.3)  # a fixed wait on purpose: nothing may be sent in it
            assert app.screen is form and not sink.requests, "an out-of-range value was sent"
            assert "power_w: 99 is out of range: 0.5 to 40 W" in \
                str(form.query_one("#form-errors", Static).render())
            assert form.focused is form.query_one("#arg-power_w", Input)
            await pilot.press(*"25.5", "enter")
            await until(pilot, lambda: app.last_reply is not None)
            assert app.screen is not form and app.last_reply == {"ok": True}
            [request] = sink.requests
            request.pop("id")
            assert request == {"cmd": "set_link_mode", "sat": 7, "mode": "optical",
                               "power_w": 25.5, "retries": 3}
            assert type(request["power_w"]) is float and type(request["retries"]) is int
            check_request(tuiutil.NEWER_COMMAND, request)  # as the twin would check it
            assert "set_link_mode sat=7 mode=optical power_w=25.5 retries=3" in \
                str(app.reply_line.render())

            # The detail of the hot node: every new field the catalog's way, with limits.
            app.fleet_table.select_sat(hot)
            await pilot.press("enter")
            table = await detail_fields(pilot, app)
            rows = {str(table.get_cell(key, "field")): str(table.get_cell(key, "value"))
                    for key in table.rows}
            assert rows["coolant_pressure_pa"] == "262 kPa" and rows["link_mode"] == "rf"
            assert str(table.get_cell("coolant_pressure_pa", "limits")) == \
                "warn >230 kPa  alarm >250 kPa"

    try:
        asyncio.run(scenario())
    finally:
        sink.close()


def _highlighted(app: DashboardApp) -> str:
    """The command palette's highlighted entry, as text ('' while it has none)."""
    from textual.command import CommandList

    lists = app.screen.query(CommandList)
    if not lists or lists.first().highlighted is None:
        return ""
    option = lists.first().get_option_at_index(lists.first().highlighted)
    return str(option.prompt) if not hasattr(option.prompt, "plain") else option.prompt.plain


def test_the_log_shows_commands_that_change_the_twin_not_routine_reads() -> None:
    """Every command is an `audit` event on the stream; the log shows the pause, not the
    `meta` and `commands` reads every dashboard makes at start."""
    async def scenario(addresses: dict[str, str]) -> None:
        app = DashboardApp(addresses["stream"], addresses["commands"])
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.connection == LIVE and app.command_catalog)
            await pilot.press("space")
            await until(pilot, lambda: any(e.get("kind") == "audit" and e.get("cmd") == "pause"
                                           for e in app.recent_events), timeout_s=5)
            await until(pilot, lambda: "pause from local: ok" in "\n".join(
                strip.text for strip in app.events_log.lines), timeout_s=5)
            reads = [e for e in app.recent_events
                     if e.get("kind") == "audit" and e.get("cmd") in ("meta", "commands")]
            assert reads, "the twin audits reads too (docs/protocol.md)"
            logged = "\n".join(strip.text for strip in app.events_log.lines)
            assert "commands from local" not in logged and "meta from local" not in logged

    with twin_process("--rate", "10") as (_, addresses):
        asyncio.run(scenario(addresses))

"""The alarm lifecycle, and late joiners: the twin keeps the alarm table and gives it out.

The table's own rules are checked on events fed to it (a wall clock the test moves, for
shelving); the twin's, on a real twin with chips "too hot" at 200 K, so every node raises
an alarm on its first step, and a subscriber that joins afterwards.
"""

from __future__ import annotations

import time

import pytest
import zmq
from twinutil import connected, receive, request, running_twin

from twin.protocol.alarms import AlarmKind
from twin.runtime.alarms import AlarmTable

HOT = "\n[limits]\ntemp_compute_k = { alarm_low = 90.0, warn_low = 100.0, warn_high = 150.0," \
      " alarm_high = 200.0, hysteresis = 2.0 }\n"
KINDS = {"limit": AlarmKind("limit_clear", "field"),
         "mirror_residual": AlarmKind("mirror_residual_cleared", "field"),
         "total_not_finite": AlarmKind(None, "field", per_node=False)}


class Wall:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def event(kind: str, seq: int, severity: str = "warning", sat: int = 3,
          field: str = "temp_compute_k", t: float = 1.0) -> dict:
    return {"kind": kind, "seq": seq, "severity": severity, "sat": sat, "field": field,
            "t_utc": t, "message": f"{kind} {seq}"}


def only(table: AlarmTable) -> dict:
    [entry] = table.snapshot()["alarms"]
    return entry


def test_raise_escalate_acknowledge_return_and_clear() -> None:
    table = AlarmTable(KINDS, Wall())
    table.observe(event("limit", 1, "warning", t=1.0))
    assert only(table)["state"] == "active_unack" and only(table)["severity"] == "warning"
    table.observe(event("limit", 2, "alarm", t=2.0))  # escalates
    entry = only(table)
    assert (entry["severity"], entry["count"], entry["first_t_utc"], entry["last_t_utc"]) == (
        "alarm", 2, 1.0, 2.0)
    table.acknowledge(table.select(), "ana", "looking")
    assert only(table)["state"] == "active_ack" and only(table)["notes"][0]["who"] == "ana"
    table.observe(event("limit_clear", 3, "info"))  # acknowledged and normal: cleared
    assert table.snapshot()["alarms"] == []
    # Back to normal before anyone looked: returned, unacknowledged, until acknowledged.
    table.observe(event("limit", 4, "warning", sat=5))
    table.observe(event("limit_clear", 5, "info", sat=5))
    assert only(table)["state"] == "rtn_unack"
    table.observe(event("limit", 6, "warning", sat=5))  # and again: active
    assert only(table)["state"] == "active_unack" and only(table)["count"] == 2
    table.observe(event("limit_clear", 7, "info", sat=5))
    table.acknowledge(table.select(sat=5), "ana", "")
    assert table.snapshot()["alarms"] == []


def test_an_alarm_keeps_its_last_reading_for_viewers_to_show_in_their_units() -> None:
    """A limit alarm carries its last event's value, limit and level (wire units), so a
    viewer reads it as the table does (°C), not as the twin's text (K)."""
    table = AlarmTable(KINDS, Wall())
    hot = {**event("limit", 1, "alarm"), "value": 371.5, "limit": 358.15,
           "level": "alarm_high", "message": "temp_compute_k 371.5 K above alarm_high"}
    table.observe(hot)
    entry = only(table)
    assert (entry["value"], entry["limit"], entry["level"]) == (371.5, 358.15, "alarm_high")
    table.observe({**hot, "seq": 2, "value": float("nan"), "limit": "x", "level": 7})
    entry = only(table)  # what is not a finite number or a word is left out
    assert not {"value", "limit", "level"} & set(entry)
    from twin.protocol.codec import FieldSpec
    from viz.quantity import Catalog
    catalog = Catalog({"fields": [FieldSpec("temp_compute_k", "<f4", (40,), "K").catalog_entry()]})
    table.observe({**hot, "seq": 3})
    text = catalog.event_text({"field": only(table)["parameter"], **only(table)})
    assert text == "T comp 98.4 °C above alarm limit 85.0 °C", text  # 371.5 - 273.15


def test_a_momentary_alarm_waits_for_its_acknowledgement() -> None:
    table = AlarmTable(KINDS, Wall())
    table.observe(event("total_not_finite", 1, "alarm", sat=-1, field="p_load_total_w"))
    assert only(table)["state"] == "rtn_unack" and only(table)["sat"] == -1
    table.acknowledge(table.select(parameter="p_load_total_w"), "ben", "")
    assert table.snapshot()["alarms"] == []


def test_shelved_alarms_return_when_the_time_is_up_or_on_unshelve() -> None:
    wall = Wall()
    table = AlarmTable(KINDS, wall)
    table.observe(event("mirror_residual", 1, "warning", sat=0))
    table.observe(event("limit", 2, "alarm", sat=1))
    table.shelve(table.select(sat=0), 60.0, "ana", "known drift")
    assert only_sat(table, 0)["state"] == "shelved"
    wall.t += 59.0
    table.tick()
    assert only_sat(table, 0)["state"] == "shelved"
    wall.t += 2.0
    table.tick()
    assert only_sat(table, 0)["state"] == "active_unack"  # still active: it returns
    table.shelve(table.select(sat=1), 600.0, "ana", "")
    table.observe(event("limit_clear", 3, "info", sat=1))
    table.acknowledge(table.select(sat=1), "ana", "")
    table.unshelve(table.select(sat=1), "ana", "")
    assert [a["sat"] for a in table.snapshot()["alarms"]] == [0]  # normal and acked: gone


def only_sat(table: AlarmTable, sat: int) -> dict:
    return next(a for a in table.snapshot()["alarms"] if a["sat"] == sat)


def test_events_since_gives_what_a_late_joiner_missed() -> None:
    table = AlarmTable(KINDS, Wall())
    for seq in range(10):
        table.observe(event("contact_start", seq, "info"))
    assert [e["seq"] for e in table.events_since(6)] == [7, 8, 9]
    assert len(table.events_since(-1)) == 10


def wait_for_chip_alarms(command_address: str, count: int, timeout_s: float = 30.0) -> None:
    """Wait until the twin's alarm table holds ``count`` chip-temperature alarms.

    With HOT_SCENARIO every node's chips are "too hot", so they fire on the twin's first
    steps; a loaded machine takes longer than a fixed second to run those steps.
    """
    deadline = time.monotonic() + timeout_s
    with connected(zmq.REQ, command_address) as cmd:
        while True:
            alarms = request(cmd, {"cmd": "alarms"})["alarms"]
            if sum(a["parameter"] == "temp_compute_k" for a in alarms) >= count:
                return
            assert time.monotonic() < deadline, f"{len(alarms)} alarms after {timeout_s} s"
            time.sleep(0.1)


def test_a_late_subscriber_gets_the_alarm_table_within_two_seconds() -> None:
    with running_twin(HOT_SCENARIO(), rate_hz=5.0, warp=60.0) as twin:
        wait_for_chip_alarms(twin.addresses.command, twin.engine.n_sats)
        started = time.monotonic()
        with connected(zmq.SUB, twin.addresses.pub, SUBSCRIBE=b"alarms") as sub:
            message = receive(sub, "alarms", timeout_s=5.0)
            assert time.monotonic() - started < 3.0  # 1 s snapshots; slack for a busy CI
        table = message.header
        hot = [a for a in table["alarms"] if a["parameter"] == "temp_compute_k"]
        assert len(hot) == twin.engine.n_sats and table["n_active"] >= len(hot)
        assert {a["state"] for a in hot} == {"active_unack"}
        with connected(zmq.REQ, twin.addresses.command) as cmd:
            reply = request(cmd, {"cmd": "alarms"})
            assert reply["ok"] and len(reply["alarms"]) == len(table["alarms"])
            events = request(cmd, {"cmd": "events", "since": -1})["events"]
            assert any(e["kind"] == "limit" for e in events)
            last = events[-1]["seq"]
            assert all(e["seq"] > last for e in request(cmd, {"cmd": "events",
                                                               "since": last})["events"])
            ids = [a["id"] for a in hot[:3]]
            acked = request(cmd, {"cmd": "ack_alarm", "ids": ids, "comment": "on it"})
            assert acked["ok"] and acked["acknowledged"] == 3
            shelved = request(cmd, {"cmd": "shelve_alarm", "sat": hot[5]["sat"],
                                    "parameter": "temp_compute_k", "duration_s": 1.0})
            assert shelved["shelved"] == 1
            assert "name the alarms" in request(cmd, {"cmd": "ack_alarm"})["error"]
            after = {a["id"]: a for a in request(cmd, {"cmd": "alarms"})["alarms"]}
            assert {after[i]["state"] for i in ids} == {"active_ack"}
            assert after[ids[0]]["notes"][-1] == pytest.approx(
                {**after[ids[0]]["notes"][-1], "who": "local", "action": "ack",
                 "comment": "on it"})
            assert after[hot[5]["id"]]["state"] == "shelved"
            # The shelf ends after its second (the twin's loop ends it on its next pass,
            # later on a loaded machine): back, still active.
            deadline = time.monotonic() + 10.0
            while after[hot[5]["id"]]["state"] == "shelved" and time.monotonic() < deadline:
                time.sleep(0.1)
                after = {a["id"]: a for a in request(cmd, {"cmd": "alarms"})["alarms"]}
            assert after[hot[5]["id"]]["state"] == "active_unack"


def HOT_SCENARIO() -> str:
    from twin.scenario import load_scenario

    # Only the chips' alarms: the dies' limits out of reach, and the old 400 W host, for
    # which the power system was sized (no battery alarms).
    with open(load_scenario("default").source, encoding="utf-8") as handle:
        return (handle.read() + HOT
                + "temp_junction_k = { warn_high = 500.0, alarm_high = 510.0 }\n"
                "temp_hbm_k = { warn_high = 500.0, alarm_high = 510.0 }\n"
                "\n[compute]\nhost_power_per_accelerator_w = 50.0\n")


def test_a_dashboard_that_joins_late_shows_every_alarm_and_acknowledges_at_the_twin(
        tmp_path) -> None:
    import asyncio

    from procutil import twin_process

    from viz.tui.app import DashboardApp

    scenario = tmp_path / "hot.toml"
    scenario.write_text(HOT_SCENARIO())
    with twin_process("--scenario", str(scenario), "--rate", "5") as (_, addresses):
        wait_for_chip_alarms(addresses["commands"], 40)  # before the dashboard exists

        async def dashboard() -> None:
            app = DashboardApp(addresses["stream"], addresses["commands"])
            async with app.run_test(size=(160, 50)) as pilot:
                started = time.monotonic()
                while len(app.model.alarms) < 40:
                    assert time.monotonic() - started < 3.0, len(app.model.alarms)
                    await pilot.pause(0.05)
                assert app.model.twin_keeps_alarms
                assert "40 unacknowledged" in str(app.alarm_list.border_title)
                app.action_ack_all()
                while any(a.state == "active_unack" for a in app.model.alarms.values()):
                    assert time.monotonic() - started < 10, "the acknowledgement never came"
                    await pilot.pause(0.1)
                assert {a.state for a in app.model.alarms.values()} == {"active_ack"}
                # Read in the table's units, from each alarm's last reading (the twin's
                # text says kelvin).
                assert all(a.message.startswith("T comp ") and "°C above" in a.message
                           for a in app.model.alarms.values()), \
                    [a.message for a in app.model.alarms.values()][:3]

        asyncio.run(dashboard())

"""Command timelines (twin.autonomy.timeline) in a real twin: entries run at their step
(at most one step late, the documented tolerance), event-relative entries after the event
found independently in the published fields, cancelled entries never run, ``--timeline``
files, and the timeline commands over a real command socket."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from tests.twinutil import connected, make_server, request, running_twin
from twin.scenario import ScenarioError, parse_scenario
from twin.scenario.loader import SCENARIOS_DIR

DEFAULT_TEXT = (SCENARIOS_DIR / "default.toml").read_text()
DT_S = 30.0  # rate 1 Hz, warp 30


def twin_with(tmp_path: Path, timeline: str = ""):
    scenario = parse_scenario(DEFAULT_TEXT + timeline, source="timeline.toml",
                              base_dir=SCENARIOS_DIR)
    server = make_server(scenario, fast=True, rate_hz=1.0, warp=DT_S,
                         audit_path=tmp_path / "audit.jsonl")
    server.audit_file = tmp_path / "audit.jsonl"
    return server


def timeline_runs(server) -> list[tuple[str, float, dict]]:
    """(cmd, simulation time, args) of every command the timeline ran, from the audit."""
    from datetime import datetime
    lines = [json.loads(x) for x in server.audit_file.read_text().splitlines()]
    return [(a["cmd"], datetime.fromisoformat(a["sim_utc"]).timestamp(), a["args"])
            for a in lines if a["key"] == "timeline"]


def test_timed_entries_run_at_their_step(tmp_path: Path) -> None:
    server = twin_with(tmp_path, """
[[timeline]]
name = "on-a-step"
at_s = 90.0
command = { cmd = "set_policy", policy = "sun_aware" }

[[timeline]]
name = "between-steps"
at = "2026-03-20T12:01:40Z"
commands = [ { cmd = "set_power_cap", sat = 2, power_w = 3000.0 },
             { cmd = "set_policy", policy = "first_fit" } ]
""")
    epoch = server.engine.scenario.epoch_utc.timestamp()
    try:
        server.run(max_steps=10)
        runs = timeline_runs(server)
    finally:
        server.close()
    # 90 s is a step's end: that step. 100 s lies inside the step ending at 120 s.
    assert [(cmd, t - epoch) for cmd, t, _ in runs] == [
        ("set_policy", 90.0), ("set_power_cap", 120.0), ("set_policy", 120.0)]
    assert runs[1][2] == {"sat": 2, "power_w": 3000.0}


def test_event_relative_entries_follow_the_events(tmp_path: Path) -> None:
    server = twin_with(tmp_path, """
[[timeline]]
name = "after-eclipse"
after = { event = "eclipse_entry", sat = "mid-53-01-04" }
offset_s = 60.0
command = { cmd = "set_power_cap", sat = 3, power_w = 2000.0 }

[[timeline]]
name = "at-aos"
after = { event = "aos", station = "Svalbard (KSAT SvalSat)" }
command = { cmd = "set_policy", policy = "sun_aware" }
""")
    sunlit, contact, times = [], [], []
    names = [st.name for st in server.engine.scenario.stations]
    svalbard = names.index("Svalbard (KSAT SvalSat)")

    def record(srv) -> None:
        fields = {f.spec.name: f.array for f in srv.engine.fields}
        sunlit.append(float(fields["sunlit_frac"][3]))
        contact.append(fields["in_contact"][svalbard].copy())
        times.append(srv.clock.t_utc)
    try:
        server.run(max_steps=240, on_tick=record)  # two hours: an orbit and more
        runs = timeline_runs(server)
    finally:
        server.close()
    # The events, found here from the published fields the twin's own way aside.
    s = np.array(sunlit) >= 0.5
    entry = next(i for i in range(1, len(s)) if s[i - 1] and not s[i])
    c = np.array(contact)
    aos = next(i for i in range(1, len(c)) if (c[i] & ~c[i - 1]).any())  # any node's AOS
    by_cmd = {cmd: t for cmd, t, _ in runs}
    assert by_cmd["set_power_cap"] == pytest.approx(times[entry] + 60.0)
    assert by_cmd["set_policy"] == pytest.approx(times[aos])
    assert len(runs) == 2  # each entry once: the next event only


def test_cancelled_entry_does_not_run(tmp_path: Path) -> None:
    server = twin_with(tmp_path)
    try:
        add = server.dispatcher.dispatch({"cmd": "timeline_add", "in_s": 60.0, "name": "no",
                                          "command": {"cmd": "set_policy",
                                                      "policy": "sun_aware"}})
        keep = server.dispatcher.dispatch({"cmd": "timeline_add", "in_s": 60.0,
                                           "command": {"cmd": "set_policy",
                                                       "policy": "first_fit"}})
        assert add["ok"] and keep["ok"], (add, keep)
        cancel = server.dispatcher.dispatch({"cmd": "timeline_cancel",
                                             "entry_id": add["entry"]["id"]})
        assert cancel["ok"] and cancel["name"] == "no"
        again = server.dispatcher.dispatch({"cmd": "timeline_cancel",
                                            "entry_id": add["entry"]["id"]})
        assert not again["ok"] and "no pending timeline entry" in again["error"]
        server.run(max_steps=4)
        assert [args for _, _, args in timeline_runs(server)] == [{"policy": "first_fit"}]
        listed = server.dispatcher.dispatch({"cmd": "timeline_list", "all": True})["entries"]
        assert {e["name"]: e["state"] for e in listed} == {"no": "cancelled",
                                                            "entry-2": "done"}
    finally:
        server.close()


def test_timeline_add_refusals(tmp_path: Path) -> None:
    server = twin_with(tmp_path)
    try:
        cases = [({"command": {"cmd": "inject_fault", "sat": 1, "kind": "solar"},
                   "in_s": 5.0}, "hazardous"),
                 ({"command": {"cmd": "nope"}, "in_s": 5.0}, "unknown command 'nope'"),
                 ({"command": {"cmd": "set_power_cap", "sat": 99}, "in_s": 5.0},
                  "out of range"),
                 ({"command": {"cmd": "pause"}}, "when?"),
                 ({"command": {"cmd": "pause"}, "event": "aos", "station": "Mars"},
                  "no station 'Mars'"),
                 ({"command": {"cmd": "pause"}, "at": "tomorrow"}, "ISO time")]
        for args, words in cases:
            reply = server.dispatcher.dispatch({"cmd": "timeline_add", **args})
            assert not reply["ok"] and words in reply["error"], (args, reply)
    finally:
        server.close()


def test_timeline_file(tmp_path: Path) -> None:
    good = tmp_path / "pass.toml"
    good.write_text('[[timeline]]\nat_s = 30.0\ncommand = { cmd = "set_policy", '
                    'policy = "sun_aware" }\n')
    bad = tmp_path / "bad.toml"
    bad.write_text('[[timeline]]\nat_s = 30.0\ncommand = { cmd = "set_policy", '
                   'policy = "fastest" }\n')
    server = twin_with(tmp_path)
    try:
        assert server.autonomy.load_timeline_path(good) == [1]
        with pytest.raises(ScenarioError) as caught:
            server.autonomy.load_timeline_path(bad)
        assert caught.value.file == str(bad) and caught.value.key == "timeline[0].command[0]"
        assert "'policy' must be one of first_fit, sun_aware" in caught.value.problem
        server.run(max_steps=2)
        assert [(cmd, args) for cmd, _, args in timeline_runs(server)] == [
            ("set_policy", {"policy": "sun_aware"})]
    finally:
        server.close()


def test_timeline_commands_over_the_socket(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    with running_twin("default", rate_hz=50.0, warp=30.0, audit_path=audit) as twin, \
            connected(zmq.REQ, twin.addresses.command) as sock:
        added = request(sock, {"cmd": "timeline_add", "in_s": 120.0, "name": "policy",
                               "command": {"cmd": "set_policy", "policy": "sun_aware"}})
        assert added["ok"], added
        doomed = request(sock, {"cmd": "timeline_add", "in_s": 150.0,
                                "command": {"cmd": "set_policy", "policy": "first_fit"}})
        listed = request(sock, {"cmd": "timeline_list"})
        assert [e["name"] for e in listed["entries"]] == ["policy", doomed["entry"]["name"]]
        assert listed["entries"][0]["due_t_utc"] == pytest.approx(
            added["entry"]["due_t_utc"])
        assert request(sock, {"cmd": "timeline_cancel",
                              "entry_id": doomed["entry"]["id"]})["ok"]
        meta = request(sock, {"cmd": "meta"})["meta"]
        assert "timeline_add" in meta["commands"]
        assert meta["commands"]["timeline_add"]["args"]["command"]["type"] == "command"
        assert [e["name"] for e in meta["autonomy"]["timeline"]] == ["policy"]
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline:
            done = request(sock, {"cmd": "timeline_list", "all": True})["entries"]
            if {e["state"] for e in done} == {"done", "cancelled"}:
                break
            time.sleep(0.05)
        assert {e["name"]: e["state"] for e in done}["policy"] == "done"
    lines = [json.loads(x) for x in audit.read_text().splitlines()]
    assert [(a["key"], a["cmd"], a["args"]) for a in lines if a["key"] == "timeline"] == [
        ("timeline", "set_policy", {"policy": "sun_aware"})]
    assert [a["cmd"] for a in lines if a["key"] == "local"][:2] == ["timeline_add",
                                                                    "timeline_add"]


def test_odc_run_timeline_option(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from twin.runtime.cli import build_parser, build_twin, run
    plan = tmp_path / "plan.toml"
    plan.write_text('[[timeline]]\nname = "p"\nat_s = 60.0\n'
                    'command = { cmd = "set_policy", policy = "sun_aware" }\n')
    ports = ["--pub", "tcp://127.0.0.1:*", "--cmd", "tcp://127.0.0.1:*", "--ingest",
             "tcp://127.0.0.1:*"]
    args = build_parser().parse_args(["--scenario", "default", "--timeline", str(plan), *ports])
    server = build_twin(args)
    try:
        assert [e["name"] for e in server.autonomy.timeline.listing()] == ["p"]
    finally:
        server.close()
    plan.write_text('[[timeline]]\nat_s = 60.0\ncomand = { cmd = "pause" }\n')
    args = build_parser().parse_args(["--scenario", "default", "--timeline", str(plan), *ports])
    assert run(args) == 2
    assert f"{plan}: timeline[0].comand: unknown key" in capsys.readouterr().err


def test_entries_act_with_the_roles_of_who_added_them(tmp_path: Path) -> None:
    from twin.runtime.dispatch import Caller
    server = twin_with(tmp_path)
    operator = Caller("olga", ("operator",), "tcp://10.0.0.5", "olga")
    viewer = Caller("vic", ("viewer",), "tcp://10.0.0.6", "vic")
    try:
        cap = {"cmd": "timeline_add", "in_s": 30.0,
               "command": {"cmd": "set_power_cap", "sat": 1, "power_w": 4000.0}}
        refused = server.dispatcher.dispatch(cap, operator)
        assert not refused["ok"] and "needs role 'engineer'; key 'olga'" in refused["error"]
        viewing = server.dispatcher.dispatch({**cap, "command": {"cmd": "pause"}}, viewer)
        assert not viewing["ok"] and "needs role 'operator'" in viewing["error"]
        added = server.dispatcher.dispatch(
            {"cmd": "timeline_add", "in_s": 30.0,
             "command": {"cmd": "set_policy", "policy": "sun_aware"}}, operator)
        assert added["ok"] and added["entry"]["added_by"] == "olga"
        server.run(max_steps=2)
        lines = [json.loads(x) for x in server.audit_file.read_text().splitlines()]
        ran = [a for a in lines if a["key"] == "timeline"]
        assert [(a["cmd"], a["outcome"], a["peer"]) for a in ran] == [
            ("set_policy", "ok", f"entry {added['entry']['id']} (olga)")]
    finally:
        server.close()

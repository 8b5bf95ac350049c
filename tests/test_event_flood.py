"""A mass change is one summary event per kind and step, never one message per node (issue 22).

The rule is twin.core.events': per step and kind, the first ``per_node_limit`` per-node
events are published as they are; past it, that kind's events of the step become one
``node_events_summary``. Below the limit nothing changes (the golden frames pin that for
the default scenario).
"""

from __future__ import annotations

import numpy as np
import pytest

from twin.core.clock import SimClock
from twin.core.engine import Engine
from twin.core.events import SUMMARY_FIRST_NODES, SUMMARY_KIND, EventLog
from twin.protocol.alarms import AlarmKind
from twin.runtime.alarms import AlarmTable
from twin.scenario import SCENARIOS_DIR, parse_scenario


def shell_scenario(planes: int, per_plane: int) -> str:
    """A Walker shell at 550 km with the default scenario's six stations."""
    stations = (SCENARIOS_DIR / "megafleet.toml").read_text()
    stations = stations[stations.index("[[station]]"):]
    return f"""
[scenario]
name = "flood"
epoch = "2026-03-20T12:00:00Z"
seed = 7

[[walker]]
name = "shell-a"
altitude_km = 550.0
inclination_deg = 53.0
planes = {planes}
sats_per_plane = {per_plane}
phasing = 1

{stations}"""


@pytest.fixture(scope="module")
def shell_scenario_2000():
    return parse_scenario(shell_scenario(40, 50))


def epoch_events(scenario, limit: int) -> tuple[Engine, list[dict]]:
    clock = SimClock(scenario.epoch_utc, rate_hz=1.0, warp=1.0, fast=True)
    engine = Engine(scenario, clock)
    engine.events.drain()  # the build's own step 0
    engine.events.per_node_limit = limit
    engine.orbit.contacts.reset()  # every contact in view now starts again at the next step
    engine.compute(0.0)
    return engine, engine.events.drain()


def test_many_contacts_starting_at_once_are_one_summary_with_the_right_counts(
        shell_scenario_2000) -> None:
    engine, events = epoch_events(shell_scenario_2000, limit=20)
    in_contact = engine.orbit.in_contact.array  # (stations, sats)
    assert in_contact.sum() > 20, "the test needs more contacts than the limit"
    assert not [e for e in events if e["kind"] == "contact_start"]
    [summary] = [e for e in events if e["kind"] == SUMMARY_KIND]
    assert summary["of"] == "contact_start" and summary["sat"] == -1
    assert summary["n_events"] == int(in_contact.sum())
    assert summary["n_nodes"] == int(np.count_nonzero(in_contact.any(axis=0)))
    stations = [st.name for st in shell_scenario_2000.stations]
    expected = {stations[s]: int(n) for s, n in enumerate(in_contact.sum(axis=1)) if n}
    assert summary["by"]["station"] == expected
    assert summary["by_group"] == {"shell-a": int(in_contact.sum())}
    first = summary["first_sats"]
    assert len(first) == min(SUMMARY_FIRST_NODES, int(in_contact.sum()))
    assert all(in_contact[:, sat].any() for sat in first)
    assert f"{int(in_contact.sum()):,} contact_start" in summary["message"]


def test_below_the_limit_every_contact_is_its_own_event_as_before(shell_scenario_2000) -> None:
    engine, events = epoch_events(shell_scenario_2000, limit=100_000)
    starts = [e for e in events if e["kind"] == "contact_start"]
    in_contact = engine.orbit.in_contact.array
    assert len(starts) == int(in_contact.sum())
    assert not [e for e in events if e["kind"] == SUMMARY_KIND]
    stations = shell_scenario_2000.stations
    names = shell_scenario_2000.satellites
    for e in starts[:50]:
        assert set(e) == {"kind", "sat", "severity", "message", "t_utc", "station"}
        assert in_contact[e["station"], e["sat"]]
        assert e["message"] == f"{names[e['sat']].name} acquired by {stations[e['station']].name}"


def test_one_rule_for_every_kind_and_fleet_events_are_never_folded() -> None:
    log = EventLog(t_utc=5.0, per_node_limit=3, names={"station": ["A", "B"]})
    for sat in range(2):
        log.raise_event("limit", "warning", f"n{sat} hot", sat=sat, field="temp_k", value=1.5)
    log.raise_event("eclipse_entry", "info", "fleet-wide note")  # sat -1: never folded
    for sat in range(2):
        log.raise_event("limit_clear", "info", f"n{sat} ok", sat=sat, field="temp_k")
    events = log.drain()
    assert [e["kind"] for e in events] == ["limit", "limit", "eclipse_entry", "limit_clear",
                                          "limit_clear"]
    # Past the limit, by both doors: one summary each kind, counted, worst severity.
    for sat in range(5):
        log.raise_event("limit", "alarm" if sat == 4 else "warning", f"n{sat} hot", sat=sat,
                        field="temp_k" if sat % 2 else "soc", value=float(sat))
    called = []
    log.raise_node_events("contact_start", "info", np.arange(10, 20),
                          lambda i: called.append(i) or f"m{i}",
                          station=np.array([0] * 7 + [1] * 3))
    for _ in range(4):
        log.raise_event("twin_note", "info", "not a node's")
    events = log.drain()
    assert [e["kind"] for e in events] == ["twin_note"] * 4 + [SUMMARY_KIND] * 2
    limit, contact = events[4], events[5]
    assert limit["of"] == "limit" and limit["n_events"] == 5 and limit["severity"] == "alarm"
    assert limit["by"] == {"field": {"soc": 3, "temp_k": 2}}  # floats are not categories
    assert limit["first_sats"] == [0, 1, 2, 3, 4]
    assert contact["n_events"] == 10 and contact["by"] == {"station": {"A": 7, "B": 3}}
    assert len(called) <= 1, "no message is built per node past the limit"
    assert log.counts["limit"] == 7 and log.counts["contact_start"] == 10
    # The next step starts again below the limit.
    log.raise_event("limit", "warning", "n9 hot", sat=9, field="temp_k")
    assert [e["kind"] for e in log.drain()] == ["limit"]


def test_the_alarm_table_takes_a_summary_as_one_alarm_and_clears_what_it_names() -> None:
    table = AlarmTable({"limit": AlarmKind("limit_clear", "field")}, wall_clock=lambda: 0.0)
    log = EventLog(per_node_limit=2)
    seq = iter(range(1, 100))

    def publish() -> None:
        for event in log.drain():
            summary = log.drained_summaries.get(event.get("of"))
            table.observe({**event, "seq": next(seq)},
                          summary if event["kind"] == SUMMARY_KIND else None)

    log.raise_event("limit", "alarm", "n1 hot", sat=1, field="temp_k")
    log.raise_event("limit", "alarm", "n2 hot", sat=2, field="soc")
    publish()
    assert {(a["sat"], a["parameter"]) for a in table.snapshot()["alarms"]} == {
        (1, "temp_k"), (2, "soc")}
    # 1,000 nodes raise at once: one alarm of the twin, not 1,000 rows.
    log.raise_node_events("limit", "alarm", np.arange(100, 1100), lambda i: f"n{i}",
                          field="temp_k")
    publish()
    rows = table.snapshot()["alarms"]
    assert len(rows) == 3
    [mass] = [a for a in rows if a["kind"] == SUMMARY_KIND]
    assert mass["sat"] == -1 and mass["parameter"] == "limit" and mass["severity"] == "alarm"
    # A summarised clear of node 1's temp_k (and 499 others) clears node 1's alarm only.
    log.raise_node_events("limit_clear", "info", np.arange(0, 500), lambda i: f"ok {i}",
                          field="temp_k")
    publish()
    states = {(a["sat"], a["parameter"]): a["active"] for a in table.snapshot()["alarms"]}
    assert states[(1, "temp_k")] is False and states[(2, "soc")] is True


def test_events_nobody_drains_stay_bounded_over_hundreds_of_steps() -> None:
    """bench/scale.py stepped a million satellites without draining: +2 MB a step."""
    scenario = parse_scenario((SCENARIOS_DIR / "default.toml").read_text(),
                              base_dir=SCENARIOS_DIR)
    clock = SimClock(scenario.epoch_utc, rate_hz=1.0, warp=60.0, fast=True)
    engine = Engine(scenario, clock)
    engine.events.max_pending = 50
    held = []
    for _ in range(300):
        engine.step()
        held.append(len(engine.events.pending))
    raised = sum(engine.events.counts.values())
    assert raised > 100, "the test needs more events than the bound"
    assert max(held) <= 50
    events = engine.events.drain()
    assert events[0]["kind"] == "events_dropped" and events[0]["severity"] == "warning"
    assert events[0]["count"] + len(events) - 1 == raised  # every event kept or counted
    assert [e["kind"] for e in engine.events.drain()] == []


def test_a_fleet_wide_limit_crossing_is_summarised_by_kind_and_level() -> None:
    from twin.models.limits import LimitLevels, LimitMonitor

    n = 60
    monitor = LimitMonitor("soc_frac", "1", LimitLevels(alarm_low=0.2, warn_low=0.3,
                                                        hysteresis=0.01), n)
    log = EventLog(per_node_limit=10)
    names = [f"n{i}" for i in range(n)]
    values = np.where(np.arange(n) < 45, 0.1, 0.25)  # 45 alarms, 15 warnings
    previous = monitor.state.copy()
    changed = monitor.update(values)
    monitor.raise_events(log, changed, previous, values, names)
    summaries = [e for e in log.drain() if e["kind"] == SUMMARY_KIND]
    [alarm_and_warning] = summaries  # one kind, both severities: the worst wins
    assert alarm_and_warning["of"] == "limit" and alarm_and_warning["severity"] == "alarm"
    assert alarm_and_warning["n_events"] == 60
    assert alarm_and_warning["by"]["level"] == {"alarm_low": 45, "warn_low": 15}
    # Back within limits, 60 at once: one summary of limit_clear.
    previous = monitor.state.copy()
    values = np.full(n, 0.5)
    changed = monitor.update(values)
    monitor.raise_events(log, changed, previous, values, names)
    [clear] = log.drain()
    assert clear["of"] == "limit_clear" and clear["n_events"] == 60


def test_the_dashboard_shows_a_summary_as_a_few_short_lines() -> None:
    from viz.tui.words import summary_lines

    log = EventLog(names={"station": [f"Station {k}" for k in range(8)]},
                   groups=lambda: (np.arange(3000) % 2, ["shell-a", "shell-b"]),
                   per_node_limit=10)
    sats = np.arange(3000)
    log.raise_node_events("contact_start", "info", sats, lambda i: f"node {i} acquired",
                          station=sats % 8)
    [summary] = log.drain()
    lines = summary_lines(summary)
    assert lines[0] == "3,000 contact_start in one step, summarised"
    assert "Station 0 375" in lines[1] and lines[-1] == "  first: node 0 acquired"
    assert any("+4 more" in line for line in lines)  # 8 stations, the 4 largest named
    assert any("by group: shell-a 1,500, shell-b 1,500" in line for line in lines)
    assert all(len(line) <= 60 for line in lines)

"""On-board rules (twin.autonomy.rules) on synthetic traces, through a real twin's command
path and audit file: firing after the hold time, hysteresis, rate limit, counter windows,
contact gates, enable/disable, and rules refused at load naming file and key.

A synthetic trace is written into the field's own array between calls to the autonomy's
``after_step`` (the engine is not stepped), so the rule sees exactly the values given.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.twinutil import make_server
from twin.autonomy.rules import MAX_EVENTS_PER_RULE_STEP
from twin.scenario import ScenarioError, parse_scenario
from twin.scenario.loader import SCENARIOS_DIR

DEFAULT_TEXT = (SCENARIOS_DIR / "default.toml").read_text()
DT_S = 5.0


def scenario_with(rules: str, source: str = "rules.toml"):
    # The default fleet without its own rules, plus these.
    base = DEFAULT_TEXT[:DEFAULT_TEXT.index("# On-board rules (FDIR")]
    return parse_scenario(base + rules, source=source, base_dir=SCENARIOS_DIR)


@pytest.fixture
def twin(tmp_path: Path, request: pytest.FixtureRequest):
    server = make_server(scenario_with(request.param), fast=True,
                         audit_path=tmp_path / "audit.jsonl")
    server.audit_file = tmp_path / "audit.jsonl"
    yield server
    server.close()


class Trace:
    """Feeds values of one field to the autonomy, a step of DT_S at a time."""

    def __init__(self, server, field: str) -> None:
        self.server = server
        self.array = next(f.array for f in server.engine.fields if f.spec.name == field)
        self.t = server.clock.t_utc
        self.events: list[dict] = []

    def step(self, value, n: int = 1) -> None:
        for _ in range(n):
            self.t += DT_S
            self.array[:] = value
            self.server.engine.events.t_utc = self.t
            self.server.autonomy.after_step(self.t, DT_S)
            self.events += self.server.engine.events.drain()

    def kinds(self, kind: str, sat: int | None = None) -> list[dict]:
        return [e for e in self.events if e["kind"] == kind and (sat is None or e["sat"] == sat)]


def audit_lines(server) -> list[dict]:
    return [json.loads(line) for line in server.audit_file.read_text().splitlines()]


HOT = """
[[rule]]
name = "hot"
when = { field = "temp_junction_k", op = ">", threshold = 83.0, unit = "degC", for_s = 30.0 }
clear = { threshold = 75.0, unit = "degC", for_s = 20.0 }
actions = [ { cmd = "set_power_cap", power_w = 5000.0 } ]
clear_actions = [ { cmd = "set_power_cap" } ]
max_firings = 5
"""


@pytest.mark.parametrize("twin", [HOT], indirect=True)
def test_fires_after_hold_time_with_hysteresis_and_audit(twin) -> None:
    trace = Trace(twin, "temp_junction_k")
    hot = np.full(twin.engine.n_sats, 300.0)
    hot[7] = 273.15 + 90.0
    trace.step(hot, 6)  # first seen at step 1: held 25 s after step 6
    assert not trace.kinds("rule_fired")
    trace.step(hot)  # held 30 s: fires (the documented bound: at most one step late)
    fired = trace.kinds("rule_fired")
    assert [e["sat"] for e in fired] == [7] and fired[0]["rule"] == "hot"
    cap = next(f.array for f in twin.engine.fields if f.spec.name == "compute_cap_w")
    twin.engine.step()  # the cap shows in the next step's fields
    assert cap[7] == pytest.approx(5000.0)
    assert not cap[6] <= 5000.0  # the others uncapped (no cap: inf or NaN)
    # Below the firing threshold but above the clear threshold: still latched, no refire.
    warm = hot.copy()
    warm[7] = 273.15 + 80.0
    trace.step(warm, 10)
    trace.step(hot, 10)
    assert len(trace.kinds("rule_fired")) == 1 and not trace.kinds("rule_cleared")
    # Below the clear threshold for 20 s: cleared (and the cap lifted), then it may refire.
    cool = hot.copy()
    cool[7] = 273.15 + 70.0
    trace.step(cool, 4)
    assert not trace.kinds("rule_cleared")
    trace.step(cool)
    assert [e["sat"] for e in trace.kinds("rule_cleared")] == [7]
    trace.step(hot, 7)
    assert len(trace.kinds("rule_fired")) == 2
    audited = [a for a in audit_lines(twin) if a["key"] == "rule:hot"]
    assert [(a["cmd"], a["args"].get("power_w"), a["args"]["sat"], a["outcome"])
            for a in audited] == [("set_power_cap", 5000.0, 7, "ok"),
                                  ("set_power_cap", None, 7, "ok"),
                                  ("set_power_cap", 5000.0, 7, "ok")]


LIMITED = """
[[rule]]
name = "soc_low"
when = { field = "soc_frac", op = "<", threshold = 25.0, unit = "%" }
actions = [ { cmd = "set_power_cap", power_w = 1500.0 } ]
max_firings = 2
rate_window_s = 3600.0
severity = "alarm"
"""


@pytest.mark.parametrize("twin", [LIMITED], indirect=True)
def test_rate_limit_per_node(twin) -> None:
    trace = Trace(twin, "soc_frac")
    for _ in range(5):  # five dips (clear threshold = firing threshold, no clear time)
        trace.step(0.2)
        trace.step(0.6)
    assert len(trace.kinds("rule_fired", 0)) == 2  # the bucket holds two
    assert twin.autonomy.rules["soc_low"].suppressed[0] == 3
    trace.step(0.6, int(1800 / DT_S))  # half a window refills one firing
    trace.step(0.2)
    assert len(trace.kinds("rule_fired", 0)) == 3
    assert trace.kinds("rule_fired", 0)[0]["severity"] == "alarm"
    alarms = twin.alarm_table
    for event in trace.events:
        alarms.observe(event)
    assert any(a["kind"] == "rule_fired" and a["parameter"] == "soc_low"
               for a in alarms.snapshot()["alarms"])


UPSETS = """
[[rule]]
name = "upset_storm"
when = { field = "upsets", op = ">=", threshold = 3, unit = "count", increase_over_s = 3600.0 }
actions = [ { cmd = "inject_upset", reset = true, device_class = "accel_sefi" } ]
gate = "contact"
"""


@pytest.mark.parametrize("twin", [UPSETS], indirect=True)
def test_counter_window_and_contact_gate(twin) -> None:
    trace = Trace(twin, "upsets")
    contact = next(f.array for f in twin.engine.fields if f.spec.name == "in_contact")
    contact[:] = False
    counts = np.zeros(twin.engine.n_sats)
    # Node 2: an upset every 40 min never makes 3 in an hour; node 5: three in 30 min.
    for step in range(int(4 * 3600 / DT_S)):
        t_s = step * DT_S
        if t_s % 2400 == 0 and t_s:
            counts[2] += 1
        if t_s in (600.0, 1200.0, 1800.0):
            counts[5] += 1
        trace.step(counts.copy())
    assert [e["sat"] for e in trace.kinds("rule_fired")] == [5]
    assert [e["sat"] for e in trace.kinds("rule_waiting")] == [5]
    assert not [a for a in audit_lines(twin) if a["key"] == "rule:upset_storm"]
    contact[0, 5] = True  # AOS: the gated action runs now
    trace.step(counts.copy())
    audited = [a for a in audit_lines(twin) if a["key"] == "rule:upset_storm"]
    assert [(a["cmd"], a["args"]["sat"], a["outcome"]) for a in audited] == [
        ("inject_upset", 5, "ok")]  # hazardous, yet not held: the scenario confirmed it


CONFIRM = UPSETS.replace('gate = "contact"', 'gate = "confirm"')


@pytest.mark.parametrize("twin", [CONFIRM], indirect=True)
def test_confirm_gate_asks_the_ground(twin) -> None:
    trace = Trace(twin, "upsets")
    contact = next(f.array for f in twin.engine.fields if f.spec.name == "in_contact")
    contact[:] = False
    counts = np.zeros(twin.engine.n_sats)
    trace.step(counts.copy())  # the window starts from the counts first seen
    counts[4] = 3
    trace.step(counts)
    contact[1, 4] = True
    trace.step(counts)
    assert [e["sat"] for e in trace.kinds("rule_confirm_request")] == [4]
    assert not [a for a in audit_lines(twin) if a["key"] == "rule:upset_storm"]
    wrong = twin.dispatcher.dispatch({"cmd": "rule_confirm", "rule": "upset_storm", "sat": 3})
    assert not wrong["ok"] and "not asking" in wrong["error"]
    reply = twin.dispatcher.dispatch({"cmd": "rule_confirm", "rule": "upset_storm", "sat": 4})
    assert reply["ok"] and reply["ran"] == ["inject_upset"]
    assert [a["cmd"] for a in audit_lines(twin) if a["key"] == "rule:upset_storm"] == [
        "inject_upset"]


@pytest.mark.parametrize("twin", [HOT], indirect=True)
def test_disable_enable_and_list(twin) -> None:
    trace = Trace(twin, "temp_junction_k")
    assert twin.dispatcher.dispatch({"cmd": "rule_disable", "rule": "hot"})["ok"]
    trace.step(273.15 + 95.0, 20)
    assert not trace.kinds("rule_fired")
    listed = twin.dispatcher.dispatch({"cmd": "rule_list"})["rules"]
    assert listed[0]["name"] == "hot" and listed[0]["enabled"] is False
    assert listed[0]["threshold"] == pytest.approx(356.15)
    assert twin.dispatcher.dispatch({"cmd": "rule_enable", "rule": "hot"})["ok"]
    trace.step(273.15 + 95.0, 7)
    # Every node fired (and was capped); the stream's events are bounded per step.
    assert twin.autonomy.rules["hot"].firings.sum() == twin.engine.n_sats
    assert len(trace.kinds("rule_fired")) == MAX_EVENTS_PER_RULE_STEP
    assert trace.kinds("rule_fired_summary")[0]["count"] == twin.engine.n_sats
    unknown = twin.dispatcher.dispatch({"cmd": "rule_enable", "rule": "nope"})
    assert not unknown["ok"] and "no rule 'nope'" in unknown["error"]


@pytest.mark.parametrize("rule, key, words", [
    ('when = { field = "temp_juncton_k", op = ">", threshold = 1 }\n'
     'actions = [{ cmd = "set_power_cap", power_w = 1.0 }]',
     "rule[0].when.field", "Did you mean 'temp_junction_k'"),
    ('when = { field = "soc_frac", op = "=>", threshold = 1 }\n'
     'actions = [{ cmd = "set_power_cap", power_w = 1.0 }]', "rule[0].when.op", "operator"),
    ('when = { field = "soc_frac", op = "<", threshold = 1 }\n'
     'actions = [{ cmd = "reboot", power_w = 1.0 }]', "rule[0].actions[0].cmd",
     "unknown command 'reboot'"),
    ('when = { field = "soc_frac", op = "<", threshold = 1, unit = "degC" }\n'
     'actions = [{ cmd = "set_power_cap", power_w = 1.0 }]', "rule[0].when.unit",
     "does not convert"),
    ('when = { field = "soc_frac", op = "<", threshold = 1 }\n'
     'actions = [{ cmd = "set_power_cap", power_w = -5.0 }]', "rule[0].actions[0]",
     "out of range"),
    ('when = { field = "soc_frac", op = "<", threshold = 1 }\n'
     'actions = [{ cmd = "set_power_cap", sat = 3 }]', "rule[0].actions[0].sat",
     "node it fires on"),
    ('when = { field = "in_contact", op = "==", threshold = 1 }\n'
     'actions = [{ cmd = "set_power_cap" }]', "rule[0].when.field", "per-node"),
    ('when = { field = "soc_frac", op = "<", threshold = 0.3 }\n'
     'clear = { threshold = 0.2 }\nactions = [{ cmd = "set_power_cap" }]',
     "rule[0].clear.threshold", "far side"),
    ('when = { field = "soc_frac", op = "<", threshold = 0.3, code = "import os" }\n'
     'actions = [{ cmd = "set_power_cap" }]', "rule[0].when.code", "unknown key"),
])
def test_bad_rules_refused_at_load(rule: str, key: str, words: str) -> None:
    scenario = scenario_with(f'[[rule]]\nname = "r"\n{rule}\n', source="bad_rules.toml")
    with pytest.raises(ScenarioError) as caught:
        make_server(scenario, fast=True)
    assert caught.value.file == "bad_rules.toml" and caught.value.key == key
    assert words in caught.value.problem
    assert f"bad_rules.toml: {key}" in str(caught.value)


def test_default_rules_each_fire_on_a_synthetic_trace(tmp_path: Path) -> None:
    server = make_server("default", fast=True, audit_path=tmp_path / "audit.jsonl")
    server.audit_file = tmp_path / "audit.jsonl"
    try:
        assert set(server.autonomy.rules) == {"junction_hot", "soc_low", "upset_storm"}
        n = server.engine.n_sats
        traces = {"junction_hot": ("temp_junction_k", 273.15 + 84.0),
                  "soc_low": ("soc_frac", 0.24), "upset_storm": ("upsets", 3.0)}
        contact = next(f.array for f in server.engine.fields if f.spec.name == "in_contact")
        for name, (field, bad) in traces.items():
            trace = Trace(server, field)
            trace.step(np.zeros(n) if field == "upsets" else np.full(n, 300.0 if "temp" in
                                                                       field else 0.9))
            values = trace.array.astype(np.float64).copy()
            values[9] = bad
            contact[:] = False
            contact[0, 9] = True
            trace.step(values, 13)  # 65 s: past the longest hold (60 s)
            assert [e["sat"] for e in trace.kinds("rule_fired")] == [9], name
        keys = {a["key"] for a in audit_lines(server)}
        assert keys == {"rule:junction_hot", "rule:soc_low", "rule:upset_storm"}
    finally:
        server.close()

"""Limit monitor: one event per crossing, one clear on return, no flapping on the edge."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from twin.core.clock import SimClock
from twin.core.engine import Engine
from twin.core.subsystem import EventLog, StepContext, make_field
from twin.models.limits import LimitLevels, LimitMonitor, LimitsModel
from twin.scenario import ScenarioError, load_scenario, parse_scenario


def _drive(values: np.ndarray, limits: dict[str, float], hysteresis: float = 1.0
           ) -> tuple[list[dict], list[np.ndarray]]:
    """Feed a (steps, n) series through a LimitsModel; return events and states per step."""
    field = make_field("temp_x_k", "<f4", (values.shape[1],), "K", "test", limits=limits)
    model = LimitsModel([field], None, [f"n{i}" for i in range(values.shape[1])])
    model.monitors[0][1].levels = LimitLevels(**{**limits, "hysteresis": hysteresis})
    events = EventLog()
    states = []
    rng = np.random.default_rng(0)
    for k, row in enumerate(values):
        field.array[:] = row
        model.step(StepContext(float(k), 1.0, events, rng, {}))
        states.append(model.monitors[0][1].state.copy())
    return events.drain(), states


def test_crossing_raises_one_event_and_clears_once_despite_jitter() -> None:
    # Up through warn_high = 353.15 K, then 200 steps of +-0.4 K jitter on the threshold
    # (inside the 1 K hysteresis), then back down: one warning, one clear.
    rng = np.random.default_rng(3)
    ramp_up = np.linspace(340.0, 353.5, 30)
    jitter = 353.15 + rng.uniform(-0.4, 0.4, 200)
    ramp_down = np.linspace(353.0, 340.0, 30)
    series = np.concatenate((ramp_up, jitter, ramp_down))[:, None]
    events, _ = _drive(series, {"warn_high": 353.15, "alarm_high": 358.15})
    assert [(e["kind"], e["severity"]) for e in events] == [("limit", "warning"),
                                                             ("limit_clear", "info")]
    assert events[0]["field"] == "temp_x_k" and events[0]["level"] == "warn_high"
    assert events[0]["sat"] == 0 and events[0]["limit"] == pytest.approx(353.15)


def test_escalation_to_alarm_and_back_and_the_low_side() -> None:
    series = np.array([300, 354, 359, 357.5, 356, 352, 300, 276, 272, 273.8, 280], float)
    limits = {"alarm_low": 273.15, "warn_low": 278.15, "warn_high": 353.15,
              "alarm_high": 358.15}
    events, states = _drive(series[:, None], limits)
    assert [int(s[0]) for s in states] == [0, 1, 2, 2, 1, 0, 0, -1, -2, -2, 0]
    assert [(e["kind"], e["severity"], e.get("level")) for e in events] == [
        ("limit", "warning", "warn_high"), ("limit", "alarm", "alarm_high"),
        ("limit", "warning", "warn_high"), ("limit_clear", "info", "ok"),
        ("limit", "warning", "warn_low"), ("limit", "alarm", "alarm_low"),
        ("limit_clear", "info", "ok")]


def test_monitor_is_vectorized_and_nan_keeps_state() -> None:
    monitor = LimitMonitor("soc_frac", "1", LimitLevels(alarm_low=0.2, warn_low=0.3,
                                                        hysteresis=0.01), 4)
    changed = monitor.update(np.array([0.5, 0.25, 0.1, 0.31]))
    assert list(changed) == [1, 2] and list(monitor.state) == [0, -1, -2, 0]
    assert monitor.update(np.array([0.5, np.nan, 0.205, 0.305])).size == 0
    assert list(monitor.state) == [0, -1, -2, 0]


def test_an_infinite_value_crosses_no_absent_level() -> None:
    """Low levels only (a cluster's nn_dist_m, +inf on nodes outside any cluster): +inf is
    within limits, -inf is below both; the step raised a TypeError on a missing high."""
    monitor = LimitMonitor("nn_dist_m", "m", LimitLevels(alarm_low=50.0, warn_low=75.0,
                                                        hysteresis=0.75), 3)
    changed = monitor.update(np.array([np.inf, 100.0, -np.inf]))
    assert list(changed) == [2] and list(monitor.state) == [0, 0, -2]
    events = EventLog()
    monitor.raise_events(events, changed, np.zeros(3, np.int8),
                         np.array([np.inf, 100.0, -np.inf]), ["a", "b", "c"])
    assert [e["level"] for e in events.drain()] == ["alarm_low"]


def test_alarm_only_level_is_an_alarm() -> None:
    events, _ = _drive(np.array([[1.0], [5.0], [1.0]]), {"alarm_high": 4.0}, hysteresis=0.5)
    assert [e["severity"] for e in events] == ["alarm", "info"]


def test_inconsistent_levels_are_rejected() -> None:
    assert LimitLevels(warn_high=5.0, alarm_high=4.0).problem()
    assert LimitLevels(warn_low=1.0, warn_high=2.0, hysteresis=1.5).problem()
    with pytest.raises(ValueError, match="temp_x_k"):
        LimitMonitor("temp_x_k", "K", LimitLevels(), 3)


def _default_with(extra: str):
    with open(load_scenario("default").source, encoding="utf-8") as handle:
        return parse_scenario(handle.read() + extra, "mine.toml")


def test_scenario_overrides_levels_and_meta_shows_them() -> None:
    # Chips "too hot" at 200 K: every node raises exactly one alarm on the first step. The
    # chips' own low levels (0 / 5 °C) are moved below the new high ones, else inconsistent.
    scenario = _default_with("\n[limits]\ntemp_compute_k = { alarm_low = 90.0,"
                             " warn_low = 100.0, warn_high = 150.0, alarm_high = 200.0,"
                             " hysteresis = 2.0 }\n")
    engine = Engine(scenario, SimClock(scenario.epoch_utc, rate_hz=1.0, warp=60.0, fast=True))
    catalog = {f["name"]: f for f in engine.meta()["fields"]}
    assert catalog["temp_compute_k"]["limits"] == {"alarm_low": 90.0, "warn_low": 100.0,
                                                   "warn_high": 150.0, "alarm_high": 200.0}
    assert engine.meta()["subsystems"]["limits"]["monitored"]["temp_compute_k"][
        "hysteresis"] == 2.0
    for _ in range(5):
        engine.step()
    alarms = [e for e in engine.events.drain()
              if e["kind"] == "limit" and e["field"] == "temp_compute_k"]
    assert sorted(e["sat"] for e in alarms) == list(range(engine.n_sats))
    assert engine.header()["fleet"]["n_limit_alarm"] == engine.n_sats


@pytest.mark.parametrize(("extra", "key"), [
    ("temp_nope_k = { warn_high = 1.0 }", "limits.temp_nope_k"),
    ("temp_compute_k = { warn_high = 400.0 }", "limits.temp_compute_k"),
    ("temp_compute_k = { wrn_high = 300.0 }", "limits.temp_compute_k.wrn_high"),
    ("temp_compute_k = { warn_high = \"hot\" }", "limits.temp_compute_k.warn_high"),
])
def test_bad_limits_tables_name_the_key(extra: str, key: str) -> None:
    scenario = _default_with(f"\n[limits]\n{extra}\n")
    with pytest.raises(ScenarioError, match=key.replace(".", r"\.")):
        Engine(scenario, SimClock(scenario.epoch_utc, rate_hz=1.0, warp=60.0, fast=True))


def test_cold_chips_are_flagged_below_their_operating_minimum() -> None:
    # The old design: a bypass valve that cannot close below 3 % of the flow and no loop
    # heater. Idle chips then sit far below 0 °C; the chips' default low levels (warning
    # 5 °C, alarm 0 °C) flag them: at the epoch every node is idle and raises one alarm;
    # on the first timed step the nodes that got work warm up and clear, the others stay.
    # And the old design's airframe and 400 W host (50 W per accelerator): default's fleet
    # without its design tables. A DGX-class host's 4.6 kW on the cold plates keeps even an
    # idle node warm.
    default = load_scenario("default")
    scenario = dataclasses.replace(default, sections={
        **{name: table for name, table in default.sections.items()
           if name not in ("thermal", "power")},
        "power": {"loop_heater_power_w": 0.0},
        "thermal": {"min_radiator_flow_frac": 0.03},
        "compute": {"host_power_per_accelerator_w": 50.0}})
    engine = Engine(scenario, SimClock(scenario.epoch_utc, rate_hz=1.0, warp=60.0, fast=True))
    limits = {f["name"]: f for f in engine.meta()["fields"]}["temp_compute_k"]["limits"]
    assert limits["warn_low"] == pytest.approx(278.15)
    assert limits["alarm_low"] == pytest.approx(273.15)

    def chip_events() -> list[dict]:
        return [e for e in engine.events.drain() if e.get("field") == "temp_compute_k"]

    at_epoch = chip_events()
    assert (engine.thermal.temp_compute.array < 273.15).all()
    assert sorted(e["sat"] for e in at_epoch) == list(range(engine.n_sats))
    assert {(e["kind"], e["severity"], e["level"]) for e in at_epoch} == {
        ("limit", "alarm", "alarm_low")}
    engine.step()
    temp = engine.thermal.temp_compute.array
    warm = np.flatnonzero(temp > 278.15 + 1.0)  # back inside by the 1 K hysteresis
    still_cold = np.flatnonzero(temp < 273.15)
    assert warm.size and still_cold.size
    step_events = chip_events()
    cleared = sorted(e["sat"] for e in step_events if e["kind"] == "limit_clear")
    assert cleared == warm.tolist()
    assert not {e["sat"] for e in step_events} & set(still_cold.tolist())

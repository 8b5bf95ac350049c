"""Nodes out of service draw nothing (issue: retired nodes kept their host power): a node
the lifecycle retires draws no compute, host or bus power from the next step, the fleet's
load drops by exactly its former draw, power, thermal and limits stay sane on it, and the
lifecycle's capacity figures say they are means over the nodes in orbit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from twin.core.clock import SimClock
from twin.core.engine import ENGINE_ALARMS, Engine
from twin.models.lifecycle.model import FLEET_TOTALS, OPERATING
from twin.runtime.alarms import AlarmTable
from twin.scenario import load_scenario

DEFAULT = Path(__file__).resolve().parent.parent / "assets" / "scenarios" / "default.toml"
RETIRED = 5  # the node the test retires


def _idle_fleet_with_lifecycle(tmp_path: Path) -> Engine:
    """The default fleet with no jobs (every node idle: host and sleeping accelerators
    only) and a lifecycle that advances every 600 s step (6 x 600 s = its 3600 s)."""
    path = tmp_path / "retire.toml"
    path.write_text(DEFAULT.read_text()
                    + "\n[workload]\narrivals_per_node_h = 0.0\ninitial_backlog_h = 0.0\n"
                    + "\n[lifecycle]\ntime_acceleration = 6.0\ndensity_model = \"table\"\n"
                    + "accelerator_failure_frac_per_yr = 0.0\n")
    scenario = load_scenario(str(path))
    return Engine(scenario, SimClock(scenario.epoch_utc, 1.0, 600.0, fast=True),
                  control_period_s=600.0)


def test_a_retired_node_draws_nothing_from_the_next_step(tmp_path: Path) -> None:
    engine = _idle_fleet_with_lifecycle(tmp_path)
    lc, compute, power = engine.models["lifecycle"], engine.models["compute"], engine.power
    p = compute.params
    for _ in range(3):
        engine.step()
    # By hand: an idle node draws its host (575 W x 8) and 8 sleeping accelerators (15 W).
    idle_w = 575.0 * 8 + 8 * 15.0
    assert p.host_power_w + 8 * p.sleep_power_w == idle_w
    np.testing.assert_allclose(compute.power.array, idle_w, rtol=1e-6)
    fleet_before_w = engine.header()["fleet"]["compute_power_w"]
    assert fleet_before_w == pytest.approx(40 * idle_w, rel=1e-9)
    assert lc.outputs.out_of_service_nodes.size == 0 and lc.outputs.in_service.all()

    # Every accelerator of the node lost for good: the lifecycle retires it at the end of
    # this step (disposal, or derelict if the burn fails); compute still charged it.
    lc.lost.array[RETIRED] = lc.installed
    engine.step()
    assert lc.state.array[RETIRED] != OPERATING
    np.testing.assert_array_equal(lc.outputs.out_of_service_nodes, [RETIRED])
    assert not lc.outputs.in_service[RETIRED] and lc.outputs.in_service.sum() == 39
    assert compute.power.array[RETIRED] == pytest.approx(idle_w, rel=1e-6)

    energy_before_j = engine.header()["fleet"]["compute_energy_j"]
    engine.step()  # the next step: nothing drawn there
    fleet = engine.header()["fleet"]
    assert compute.power.array[RETIRED] == 0.0
    assert compute.outputs.accelerator_power_w[RETIRED] == 0.0
    assert fleet["compute_power_w"] == pytest.approx(fleet_before_w - idle_w, abs=1e-6)
    assert fleet["compute_energy_j"] - energy_before_j == pytest.approx(
        39 * idle_w * 600.0, rel=1e-9)
    # Power: passivated, its bus, heaters and arrays cut off; the others as before.
    out = power.outputs
    assert out.bus_power_w[RETIRED] == 0.0 and out.payload_power_w[RETIRED] == 0.0
    assert out.heater_power_w[RETIRED] == 0.0 and out.loop_heater_power_w[RETIRED] == 0.0
    assert power.p_solar.array[RETIRED] == 0.0 and power.p_load.array[RETIRED] == 0.0
    others = np.arange(40) != RETIRED
    assert np.all(power.p_load.array[others] >= p.host_power_w)
    soc_k = float(power.soc.array[RETIRED])

    # A day on: nothing non-finite, the battery left where it was, no limit on the node.
    events = []
    for _ in range(144):
        engine.step()
        events += engine.events.drain()
    assert soc_k == float(power.soc.array[RETIRED])
    for name in ("temp_compute_k", "temp_bus_k", "temp_battery_k", "temp_radiator_k",
                 "soc_frac", "compute_power_w"):
        assert np.all(np.isfinite(engine.quantity(name))), name
    assert engine.limits.worst.array[RETIRED] == 0
    assert not [e for e in events if e["kind"] == "limit" and e.get("sat") == RETIRED]
    assert compute.power.array[RETIRED] == 0.0


def test_limits_clear_a_retired_node_and_its_alarms(tmp_path: Path) -> None:
    engine = _idle_fleet_with_lifecycle(tmp_path)
    engine.step()
    table = AlarmTable({**ENGINE_ALARMS, **{kind: spec for entry in engine.entries
                                            for kind, spec in entry.alarms.items()}})
    # The node in alarm on the battery's temperature (as a cold, dead node would be): the
    # alarm table holds it.
    monitor = next(m for f, m in engine.limits.monitors if f.spec.name == "temp_battery_k")
    state = monitor.state.copy()
    state[RETIRED] = -2
    monitor.state = state
    table.observe({"kind": "limit", "severity": "alarm", "sat": RETIRED,
                   "field": "temp_battery_k", "message": "cold", "t_utc": 0.0, "seq": 0})
    assert [a.active for a in table.alarms.values()] == [True]
    # Retired at the end of this step: limits (stepping after the lifecycle) stop watching
    # it at once, with a limit_clear that clears the table's alarm.
    engine.models["lifecycle"].lost.array[RETIRED] = 8
    engine.step()
    events = engine.events.drain()
    cleared = [e for e in events if e["kind"] == "limit_clear" and e.get("sat") == RETIRED]
    assert [e["field"] for e in cleared] == ["temp_battery_k"]
    assert "out of service" in cleared[0]["message"] and cleared[0]["cleared"] == "alarm_low"
    for event in events:
        table.observe(event)
    assert [a.active for a in table.alarms.values()] == [False]
    engine.step()
    assert all(m.state[RETIRED] == 0 for _, m in engine.limits.monitors)
    assert engine.limits.worst.array[RETIRED] == 0
    assert not [e for e in engine.events.drain() if e.get("sat") == RETIRED
                and e["kind"] in ("limit", "limit_clear")]


def test_without_a_lifecycle_every_node_is_in_service() -> None:
    scenario = load_scenario("default")
    engine = Engine(scenario, SimClock(scenario.epoch_utc, 1.0, 60.0, fast=True))
    engine.step()
    out = engine.models["lifecycle"].outputs
    assert out.in_service is None and out.out_of_service_nodes.size == 0
    compute = engine.models["compute"]
    assert compute._host_w == compute.params.host_power_w  # one float: frames unchanged


def test_capacity_figures_are_labelled_as_means_over_nodes_in_orbit(tmp_path: Path) -> None:
    for key in ("battery_capacity_mean_frac", "array_health_mean_frac"):
        assert "over the nodes still in orbit" in FLEET_TOTALS[key][1]
    engine = _idle_fleet_with_lifecycle(tmp_path)
    # What a viewer and the sweep's table read: the meta's totals, with units.
    totals = engine.meta()["totals"]
    assert "over the nodes still in orbit" in str(totals["battery_capacity_mean_frac"])


def test_fleet_state_of_charge_leaves_out_passivated_nodes(tmp_path: Path) -> None:
    engine = _idle_fleet_with_lifecycle(tmp_path)
    engine.step()
    engine.models["lifecycle"].lost.array[RETIRED] = 8
    engine.step()
    engine.step()
    power = engine.power
    power.soc_state[RETIRED] = 0.01  # a passivated battery, whatever it holds
    power.soc.array[RETIRED] = 0.01
    engine.step()
    live = np.arange(40) != RETIRED
    fleet = engine.header()["fleet"]
    soc = power.soc_state
    assert fleet["soc_min_frac"] == pytest.approx(soc[live].min(), abs=1e-9)
    assert fleet["soc_mean_frac"] == pytest.approx(soc[live].mean(), abs=1e-9)
    power.fields_rewritten()  # the totals from the fields: the same nodes
    fleet = power.fleet()
    assert fleet["soc_min_frac"] == pytest.approx(soc[live].min(), abs=1e-6)
    assert fleet["soc_mean_frac"] == pytest.approx(soc[live].mean(), abs=1e-6)

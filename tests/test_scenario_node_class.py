"""Per-node parameters: ``[[node_class]]`` validated by the loader, held per node by thermal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from twin.core.clock import SimClock
from twin.core.engine import Engine
from twin.scenario import ScenarioError, parse_scenario
from twin.scenario.loader import SCENARIOS_DIR

# first_fit places jobs without looking at temperatures: with the default sun_aware policy
# a node that runs hotter rightly sends work elsewhere, which is the fleet reacting to it.
BASE = (SCENARIOS_DIR / "default.toml").read_text() + '\n[workload]\npolicy = "first_fit"\n'
BENCH = """
[[node_class]]
name = "bench"
nodes = [3]
[node_class.thermal]
radiator_emissivity = 0.85
loop_ua_w_k = 1400.0
compute_heat_capacity_j_k = 75000.0
radiator_heat_capacity_j_k = 45000.0
"""


def _scenario(extra: str = ""):
    return parse_scenario(BASE + extra, source="fleet.toml", base_dir=SCENARIOS_DIR)


def _temps(extra: str, steps: int = 40) -> np.ndarray:
    scenario = _scenario(extra)
    engine = Engine(scenario, SimClock(scenario.epoch_utc, rate_hz=1.0, warp=60.0, fast=True))
    out = []
    for _ in range(steps):
        engine.step()
        out.append(engine.thermal.temps_k.copy())
    return np.array(out)


def test_class_sets_its_nodes_only() -> None:
    plain, classed = _temps(""), _temps(BENCH)
    others = np.arange(plain.shape[2]) != 3
    # Bit for bit: each node's starting state is settled on its own (thermal/settle.py).
    assert np.array_equal(classed[:, :, others], plain[:, :, others])
    assert np.abs(classed[:, :, 3] - plain[:, :, 3]).max() > 0.5


def test_class_values_reach_the_model() -> None:
    scenario = _scenario(BENCH)
    engine = Engine(scenario, SimClock(scenario.epoch_utc, rate_hz=1.0, warp=60.0, fast=True))
    p = engine.thermal.params
    assert p.radiator_emissivity[3] == 0.85 and p.radiator_emissivity[0] == 0.90
    assert engine.thermal.capacities.shape == (4, 40)
    meta = engine.thermal.meta()
    assert meta["params"]["radiator_emissivity"] == 0.90  # the fleet's table
    assert meta["node_classes"][0]["sats"] == [3]


def test_group_and_names_resolve() -> None:
    scenario = _scenario(BENCH.replace("nodes = [3]", 'nodes = ["mid-53", "dawn-dusk-01-01"]'))
    (cls,) = scenario.node_classes
    assert len(cls.sats) == 25 and 24 in cls.sats


@pytest.mark.parametrize(("extra", "key", "words"), [
    (BENCH.replace("nodes = [3]", 'nodes = ["nope-01"]'), "node_class[0].nodes",
     "not a satellite name"),
    (BENCH.replace("nodes = [3]", "nodes = [99]"), "node_class[0].nodes", "not a satellite"),
    (BENCH.replace("nodes = [3]", "nodes = []"), "node_class[0].nodes", "non-empty list"),
    (BENCH + BENCH.replace('"bench"', '"other"'), "node_class[1].nodes",
     "already in node class 'bench'"),
    (BENCH + BENCH.replace("nodes = [3]", "nodes = [4]"), "node_class[1].name", "twice"),
    (BENCH + "albedo_frac = 0.2\n", "node_class[0].thermal.albedo_frac",
     "cannot take albedo_frac per node"),
    (BENCH + "radiator_emisivity = 0.2\n", "node_class[0].thermal.radiator_emisivity",
     "Did you mean 'radiator_emissivity'"),
    (BENCH + "[node_class.power]\nbattery_capacity_wh = 5.0\n", "node_class[0].power",
     "takes no per-node keys"),
    (BENCH.replace("0.85", "1.5"), "node_class[0].thermal.radiator_emissivity", "1"),
    (BENCH + "[node_class.thermall]\nx = 1\n", "node_class[0].thermall", "unknown key"),
    ('\n[[node_class]]\nname = "empty"\nnodes = [1]\n', "node_class[0]", "sets no parameters"),
])
def test_bad_classes_name_file_table_and_key(extra: str, key: str, words: str) -> None:
    with pytest.raises(ScenarioError) as err:
        _scenario(extra)
    message = str(err.value)
    assert message.startswith(f"fleet.toml: {key}"), message
    assert words in message, message
    if key.startswith("node_class[0].") and ".name" not in key:
        assert "node class 'bench'" in message or "'empty'" in message, message


def test_scenario_reference_marks_per_node_keys() -> None:
    doc = Path(__file__).parents[1].joinpath("docs", "scenarios.md").read_text()
    assert "`[[node_class]]`" in doc
    assert "| `radiator_emissivity` | `0.9` | 1 | >= 0, <= 1, per node" in doc

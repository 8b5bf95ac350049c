"""A node's limit is named only when something limits it, and the detail says why in words.

Real engines on the bundled ``default`` scenario: a device reset injected on one busy node
(``inject_upset reset=true``) in real time (steps of 0.1 s at POSIX times, where ``t - t0``
rounds a hair below the step), and an operator power cap of 0 W on another
(``set_power_cap``).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tuiutil

from twin.core.clock import SimClock
from twin.core.engine import Engine
from twin.protocol.codec import decode, encode_state
from twin.scenario import load_scenario
from viz.stream import LIVE
from viz.tui.app import DashboardApp, StreamUpdate
from viz.tui.model import FleetModel
from viz.tui.screens import DetailScreen
from viz.tui.why import why_not_more

RADIATION, POWER = 4, 3  # twin.models.compute.params limit-reason codes


def real_time_engine() -> Engine:
    scenario = load_scenario("default")
    return Engine(scenario, SimClock(scenario.epoch_utc, rate_hz=10.0, warp=1.0, fast=True))


def arrays(engine: Engine) -> dict[str, np.ndarray]:
    return {f.spec.name: f.array for f in engine.fields}


def state_message(engine: Engine, seq: int):
    header = {"v": 1, "seq": seq, "t_utc": engine.clock.t_utc, "run_id": 1, **engine.header()}
    fields = engine.fields
    frames = encode_state(header, [f.spec for f in fields], [f.array for f in fields])
    return decode([bytes(f) for f in frames])


def test_a_reset_on_one_node_names_radiation_there_only() -> None:
    engine = real_time_engine()
    engine.step()
    engine.step()
    busy = np.flatnonzero(arrays(engine)["utilization_frac"] >= 1.0)
    assert busy.size >= 3
    hit = int(busy[0])
    assert engine.run_command({"cmd": "inject_upset", "sat": hit, "reset": True})["ok"]
    for _ in range(5):
        engine.step()
        fields = arrays(engine)
        reason = fields["limit_reason"]
        # The node whose job the reset stalls is limited by radiation; the others, busy at
        # full clock, are limited by nothing (they were all "radiation" before the fix).
        assert reason[hit] == RADIATION
        others = busy[busy != hit]
        assert np.all(reason[others] == 0), reason[others]
        full = fields["delivered_flop_s"][others]
        assert np.all(full == full.max())


def test_the_detail_says_why_a_power_capped_node_computes_nothing() -> None:
    engine = real_time_engine()
    engine.step()
    busy = np.flatnonzero(arrays(engine)["utilization_frac"] >= 1.0)
    capped, hit = int(busy[0]), int(busy[1])
    assert engine.run_command({"cmd": "set_power_cap", "sat": capped, "power_w": 0.0})["ok"]
    assert engine.run_command({"cmd": "inject_upset", "sat": hit, "reset": True})["ok"]
    for _ in range(3):
        engine.step()
    meta = tuiutil.feed().meta()  # the same scenario's catalogs
    model = FleetModel()
    model.apply_meta(meta)
    model.apply_state(state_message(engine, 0))
    fields = arrays(engine)
    assert fields["limit_reason"][capped] == POWER
    assert fields["utilization_frac"][capped] > 0 and fields["delivered_flop_s"][capped] == 0
    why = why_not_more(model, capped)
    assert why is not None and why.startswith("power-capped: 0 W available to the payload")
    assert "set by an operator" in why and "compute nothing" in why
    assert why_not_more(model, hit).startswith("radiation:")
    free = int(busy[2])
    assert why_not_more(model, free) is None  # nothing limits it: no line
    # The table names the limit in one word.
    column = model.column("limit_reason")
    texts, _ = model.cells(column, np.array([capped, hit, free]))
    assert texts == ["power", "radiation", "none"]

    async def scenario() -> None:
        app = DashboardApp("tcp://127.0.0.1:1", "tcp://127.0.0.1:1", connect=False)
        async with app.run_test(size=(140, 40)) as pilot:
            app.feed(StreamUpdate(meta=meta, connection=LIVE))
            app.feed(StreamUpdate(state=state_message(engine, 1), connection=LIVE))
            await tuiutil.drawn(pilot, app)  # the table's rows, to select a node in
            app.fleet_table.select_sat(capped)
            await pilot.press("enter")
            await tuiutil.detail_fields(pilot, app)
            assert isinstance(app.screen, DetailScreen)
            line = app.screen.query_one("#detail-why")
            assert line.display and "power-capped: 0 W" in str(line.render())
            app.fleet_table.select_sat(free)
            app.screen.sat = free
            app.screen.rebuild()
            await pilot.pause(0.1)
            assert not app.screen.query_one("#detail-why").display

    asyncio.run(scenario())

"""Both viewers show a mirrored node's state estimate: measured, open loop, estimate ±1σ.

The states are a real engine's (tests/tuiutil.py: the default scenario with testbed
``flatsat`` mirrored on node ``MIRROR_SAT``, its telemetry pushed through the ingest
handler), so the estimator's fields are the twin's own.
"""

from __future__ import annotations

import asyncio
import math

import tuiutil
from test_tui import SIZE, _rendered
from tuiutil import until

from viz import hud_text
from viz.quantity import Catalog
from viz.stream import LIVE
from viz.tui.app import DashboardApp, StreamUpdate
from viz.tui.screens import DetailScreen

STEP = 6  # the estimator starts on the first sample and publishes from the next


def _estimate(state, q: str) -> tuple[float, float]:
    return (float(state.arrays[f"mirror_estimate_{q}"][0]),
            float(state.arrays[f"mirror_estimate_sigma_{q}"][0]))


def test_the_hud_node_panel_shows_the_estimate_beside_measurement_and_open_loop() -> None:
    meta, state = tuiutil.meta(mirror=True), tuiutil.state(STEP, mirror=True)
    value, sigma = _estimate(state, "temp_compute_k")
    assert math.isfinite(value) and 0.0 < sigma < 1.0
    lines = hud_text.mirror_lines(meta.header, state.arrays, tuiutil.MIRROR_SAT)
    text = "\n".join(lines)
    catalog = Catalog(meta.header)
    row = next(line for line in lines if line.startswith("T comp") and "±" in line
               and "K" in line.split()[-1] and "limit" not in line and line.count("°C") == 3)
    measured = float(state.arrays["mirror_measured_temp_compute_k"][0])
    for expected in (catalog.field("temp_compute_k").format(measured),
                     catalog.field("temp_compute_k").format(value), f"±{sigma:.2g} K"):
        assert expected in row, f"{expected!r} not in {row!r}"
    assert "ESTIMATE" in text and "open loop" in text and "T junction" in text
    assert "radiator conductance" in text and "diagnosis: none" in text
    # Another node: no mirror, no estimate.
    assert hud_text.mirror_lines(meta.header, state.arrays, tuiutil.MIRROR_SAT + 1) == []


def test_the_dashboard_detail_shows_the_estimate_table() -> None:
    async def scenario() -> None:
        app = DashboardApp("tcp://127.0.0.1:1", "tcp://127.0.0.1:1", connect=False)
        async with app.run_test(size=SIZE) as pilot:
            app.feed(StreamUpdate(meta=tuiutil.meta(mirror=True), connection=LIVE))
            state = tuiutil.state(STEP, mirror=True)
            app.feed(StreamUpdate(state=state, connection=LIVE))
            await pilot.press("m")
            await until(pilot, lambda: isinstance(app.screen, DetailScreen))
            panel = app.screen.query_one("#detail-mirror")
            await until(pilot, lambda: "State estimate" in _rendered(app, panel))
            text = _rendered(app, panel)
            _, sigma = _estimate(state, "temp_junction_k")
            for expected in ("State estimate (Kalman filter)", "Open loop", "Estimate",
                             "±1σ", "T junction", "not measured", f"±{sigma:.2g} K",
                             "radiator conductance", "loop conductance", "held at 0 K",
                             "Diagnosis", "none"):
                assert expected in text, f"{expected!r} not in the mirror panel:\n{text}"

    asyncio.run(scenario())

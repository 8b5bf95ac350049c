"""`odc view` draws optical links coloured by utilization, from the stream's link fields
(rendered for real, offscreen), and the colour ramp itself."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from test_links_model import LINKS, SHELL

from twin.core.clock import SimClock
from twin.core.engine import Engine
from twin.protocol.codec import PROTOCOL_VERSION, decode, encode_state
from twin.scenario import parse_scenario
from viz import scene
from viz.viewer import ViewerApp, ViewOptions, prefer_egl

prefer_egl()
pv = pytest.importorskip("pyvista")

SHOTS = Path(os.environ.get("ODC_SHOTS", "/tmp/shots/links"))


def test_link_colours_follow_state_and_utilization() -> None:
    peer = np.array([[1, 2], [0, -1], [0, -1]])
    state = np.array([[2, 1], [2, 0], [1, 0]], dtype=np.uint8)
    util = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]], dtype=np.float32)
    i, j, rgb = scene.link_pairs(peer, state, util)
    assert list(zip(i.tolist(), j.tolist(), strict=True)) == [(0, 1), (0, 2)]  # each once
    assert rgb[0].tolist() == scene.LINK_RAMP_RGB[2].astype(int).tolist()  # full: red
    assert rgb[1].tolist() == scene.LINK_ACQUIRING_RGB.tolist()  # acquiring: grey
    _, _, idle = scene.link_pairs(peer, state, np.zeros_like(util))
    assert idle[0].tolist() == scene.LINK_RAMP_RGB[0].astype(int).tolist()  # idle: blue


def twin_frames(steps: int) -> tuple[dict, object, Engine]:
    """Meta and a decoded state of a shell with links, some results relaying."""
    text = SHELL + LINKS.replace("acquisition_s = 90.0", "acquisition_s = 0.0")
    scenario = parse_scenario(text)
    clock = SimClock(scenario.epoch_utc, rate_hz=1.0, warp=60.0, fast=True)
    engine = Engine(scenario, clock, seed=7)
    engine.step()
    links = engine.models["links"]
    relaying = np.flatnonzero(links.relay.array > 0)[:12]
    for k, node in enumerate(relaying.tolist()):  # results big enough to load the links
        engine.compute_model.results.add(node, 2.0e10 * (k + 1), clock.t_utc, 50_000 + k)
    for _ in range(steps):
        engine.step()
    specs = engine.field_specs
    header = {"v": PROTOCOL_VERSION, "seq": 1, "t_utc": clock.t_utc, **engine.header()}
    frames = encode_state(header, specs, [f.array for f in engine.fields])
    return engine.meta(), decode([bytes(f) for f in frames]), engine


def test_the_viewer_draws_each_link_once_coloured_by_utilization() -> None:
    meta, state, engine = twin_frames(steps=1)
    plotter = pv.Plotter(off_screen=True, window_size=[960, 540])
    app = ViewerApp(plotter, None, None, ViewOptions(show_fps=False))
    try:
        app.apply_meta(meta)
        assert app.apply_state(state, connection="LIVE")
        app.render()
        links = engine.models["links"]
        drawn = app.scene.links
        assert app.scene.links_actor.GetVisibility()
        assert drawn.n_cells == links.table.size  # every link, once
        i, j = app.scene.link_ends
        nodes = app.scene.sats.points
        np.testing.assert_array_equal(drawn.points[0::2], nodes[i])  # ends on their nodes
        np.testing.assert_array_equal(drawn.points[1::2], nodes[j])
        colours = drawn.cell_data["rgb"]
        busy = links.utilization.array.max()
        assert busy > 0.0
        # Some links carry relay traffic: warmer than the idle blue.
        idle = scene.LINK_RAMP_RGB[0].astype(np.uint8)
        assert (colours != idle).any(axis=1).any()
        SHOTS.mkdir(parents=True, exist_ok=True)
        app.pl.camera.position = (0.0, -4.2 * 6378.0, 1.6 * 6378.0)
        app.pl.camera.focal_point = (0.0, 0.0, 0.0)
        app.pl.camera.up = (0.0, 0.0, 1.0)
        app.render()
        image = app.pl.screenshot(str(SHOTS / "view_links.png"), return_img=True)
        # The ramp's blue is on screen (idle links), not only the globe and stars.
        blue = (np.abs(image[..., :3].astype(int) - [64, 140, 255]).sum(axis=2) < 40)
        assert blue.sum() > 50
    finally:
        app.pl.close()


def test_the_dashboard_node_screen_lists_the_node_links() -> None:
    import asyncio

    from tuiutil import detail_fields, drawn

    from twin.protocol.codec import TOPIC_META, encode_map
    from viz.stream import LIVE
    from viz.tui.app import DashboardApp, StreamUpdate

    meta, state, engine = twin_frames(steps=1)
    links = engine.models["links"]

    async def scenario() -> None:
        app = DashboardApp("tcp://127.0.0.1:1", "tcp://127.0.0.1:1", connect=False)
        async with app.run_test(size=(140, 40)) as pilot:
            body = {"v": PROTOCOL_VERSION, "seq": 0, "t_utc": state.header["t_utc"], **meta}
            app.feed(StreamUpdate(meta=decode(encode_map(TOPIC_META, body)).header,
                                  connection=LIVE))
            app.feed(StreamUpdate(state=state, connection=LIVE))
            await drawn(pilot, app)  # the table's rows, the first of which Enter opens
            await pilot.press("enter")  # the first row's node
            table = await detail_fields(pilot, app)
            rows = {str(table.get_cell(key, "field")): str(table.get_cell(key, "value"))
                    for key in table.rows}
            sat = app.screen.sat
            peers = ", ".join(str(p) for p in links.peer.array[sat])
            assert peers in rows["link_peer"]
            for name in ("link_state", "link_range_m", "link_capacity_bps",
                         "link_utilization_frac", "relay_bps", "isl_power_w"):
                assert name in rows
            SHOTS.mkdir(parents=True, exist_ok=True)
            app.save_screenshot(str(SHOTS / "tui_node_links.svg"))

    asyncio.run(scenario())

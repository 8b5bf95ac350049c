"""The 3D view's density-aware level of detail (viz.lod's screen budget, viz.scene_lod):
the fleet's disc on the screen decides how many nodes are drawn; zooming in draws more,
zooming out fewer, and whatever is drawn is exactly the state's (or the subscription's)
rows of those nodes, coloured, flagged and picked as before.

The 40-node fleet of tests/viewerstate.py stands for a million: the thresholds are scaled
down so that the fitted globe draws every 3rd node. The real scene renders offscreen.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

pv = pytest.importorskip("pyvista")

from viz.viewer import ViewerApp, ViewOptions, prefer_egl  # noqa: E402

prefer_egl()

import viewerstate  # noqa: E402

from twin.protocol.codec import Message  # noqa: E402
from viz import lod, node_colours, scene  # noqa: E402


def test_the_fitted_globe_at_1280x720_draws_a_third_of_the_sample():
    # The fitted camera (viz.scene_camera): 1.1 fleet radii / sin(15 deg) away, 30 deg view.
    distance = 1.1 * 8371.0 / math.sin(math.radians(15.0))
    area = lod.footprint_px(8371.0, distance, 30.0, 720)
    # Independently: the disc's radius is 360 px * tan(asin(sin 15 / 1.1)) / tan 15 = 325 px.
    radius_px = 360.0 * math.tan(math.asin(math.sin(math.radians(15.0)) / 1.1)) \
        / math.tan(math.radians(15.0))
    assert radius_px == pytest.approx(325.25, abs=0.01)
    assert area == pytest.approx(math.pi * radius_px ** 2, rel=1e-9)
    budget = lod.screen_budget(area)
    assert 30_000 <= budget <= 36_000
    assert lod.thinning(100_000, budget) == 3  # every 30th node of a million
    assert lod.point_size_px(100_000) == 2.0  # sized for the sample, thinned or not
    # Twice as close: four times the disc, up to the whole sample; far away: the floor.
    assert lod.screen_budget(lod.footprint_px(8371.0, distance / 2.0, 30.0, 720)) \
        == lod.DRAW_BUDGET
    assert lod.screen_budget(lod.footprint_px(8371.0, 20 * distance, 30.0, 720)) \
        == lod.MIN_DRAWN
    assert lod.footprint_px(8371.0, 8000.0, 30.0, 720) == math.inf  # inside the shells
    assert lod.screen_budget(math.inf) == lod.DRAW_BUDGET


def test_thinning_holds_its_level_near_a_boundary():
    assert lod.thinning(100_000, 100_000) == 1
    assert lod.thinning(lod.MIN_DRAWN, 10) == 1  # a fleet this small is drawn whole
    assert lod.thinning(100_000, 45_000, current=3) == 3  # 2.2: not yet past 2.5 - 0.3
    assert lod.thinning(100_000, 52_000, current=3) == 2
    assert lod.thinning(100_000, 40_000, current=2) == 2  # 2.5: kept until 2.8
    assert lod.thinning(100_000, 34_000, current=2) == 3
    assert lod.thinned(None, 10, 1) is None
    assert lod.thinned(None, 10, 3).tolist() == [0, 3, 6, 9]
    assert lod.thinned(np.arange(0, 40, 2), 40, 3).tolist() == list(range(0, 40, 6))


def test_a_big_sample_is_thinned_in_runs_of_neighbours():
    """A million's subscription (every 10th node) thinned to a third: runs of 64
    neighbours (arcs of an orbit), one run in three, every part of the fleet its share."""
    base = np.arange(0, 1_000_000, 10)
    drawn = lod.thinned(base, 1_000_000, 3)
    assert drawn[:lod.RUN].tolist() == base[:lod.RUN].tolist()
    assert drawn[lod.RUN] == base[3 * lod.RUN]
    steps = np.diff(drawn)
    assert set(steps.tolist()) == {10, 10 + 2 * lod.RUN * 10}
    assert abs(len(drawn) - len(base) / 3) <= lod.RUN
    # Each tenth of the fleet (a shell's worth) keeps its third, to within one run.
    counts = np.bincount(drawn // 100_000, minlength=10)
    assert np.all(np.abs(counts - 10_000 / 3) <= lod.RUN)


@pytest.fixture
def scaled_lod(monkeypatch):
    """Thresholds for the 40-node fleet in a 640x360 window: the fitted globe's disc
    (about 83,000 px) asks for 13 nodes, so every 3rd is drawn."""
    monkeypatch.setattr(lod, "MIN_DRAWN", 4)
    monkeypatch.setattr(lod, "DRAW_BUDGET", 40)
    monkeypatch.setattr(lod, "PX_PER_POINT", 6_400.0)


def _app(meta, state):
    app = ViewerApp(pv.Plotter(off_screen=True, window_size=[640, 360]), None, None,
                    ViewOptions(show_fps=False, field="temp_compute_k"))
    app.apply_meta(meta)
    assert app.apply_state(state, connection="LIVE")
    app.render()
    return app


def test_zooming_in_draws_more_and_out_fewer_each_exactly_its_nodes(scaled_lod):
    meta, state = viewerstate.meta_and_state()
    app = _app(meta, state)
    s = app.scene
    try:
        xyz = scene.sat_positions(state.arrays, s.earth_fixed)
        assert s.lod_every == 3 and s.drawn.tolist() == list(range(0, 40, 3))
        assert np.allclose(s.sats.points, xyz[s.drawn])
        temp = state.arrays["temp_compute_k"]
        expected = node_colours.field_rgb(temp[s.drawn], s.clim, s.table)
        node_colours.eclipse_dim(expected, state.arrays["sunlit_frac"][s.drawn])
        assert np.array_equal(np.asarray(s.sats.point_data["rgb"]), expected)
        # Nodes 5 and 29 are in alarm, outside the drawn nodes: flagged all the same.
        assert np.allclose(np.asarray(s.alarm_mesh.points), xyz[[5, 29]])
        assert "drawing 14 of 40 nodes (1 in 2.86; zoom in for more)" in s.hud_top.GetInput()
        # Picking near drawn point 2 selects its node, 6.
        app.pick(s.sats.points[2] + np.array([30.0, 0.0, 0.0]))
        assert s.selected == 6

        camera = s.pl.camera
        camera.position = tuple(0.45 * np.asarray(camera.position))  # zoom in
        app.render()
        assert s.lod_every == 1 and s.drawn is None and s.sats.n_points == 40
        assert np.allclose(s.sats.points, xyz)
        assert s.selected == 6 and np.allclose(s.selected_mesh.points[0], xyz[6])
        assert "zoom in" not in s.hud_top.GetInput()
        # The motion between states moves the new sample (no rows of the old one kept).
        s.advance(60.0)
        moved = np.linalg.norm(np.asarray(s.sats.points) - xyz, axis=1)
        assert moved.min() > 300.0 and moved.max() < 600.0

        camera.position = tuple(4.0 * np.asarray(camera.position))  # far out
        app.render()
        assert s.lod_every > 3 and len(s.drawn) == len(range(0, 40, s.lod_every))
        assert s.alarm_mesh.n_points == 2  # both flags, whatever the level
        rebuilt = s.sats
        app.render()  # the same zoom: nothing rebuilt
        assert s.sats is rebuilt
    finally:
        app.pl.close()


def test_the_drawn_positions_are_the_subscribed_rows(scaled_lod):
    """A viewer subscribed for every 2nd node (viz.view_subscription) draws every 6th at
    the fitted zoom: each drawn point is its node's row in the subscription's message."""
    meta, state = viewerstate.meta_and_state()
    app = _app(meta, state)
    try:
        index = np.arange(0, 40, 2)
        arrays = {"sat_index": index.astype("<i4")}
        for name in ("pos_gcrs_km", "pos_itrs_km", "vel_gcrs_km_s", "sunlit_frac",
                     "temp_compute_k"):
            rows = state.arrays[name][index]
            arrays[name] = rows.astype("<f4") if rows.dtype == np.float64 else rows
        message = Message("sub/t", {**state.header, "sub": "t"}, arrays)
        app.scene.sample_every = 2
        app.scene.build(meta)
        app.selection_frames.configure(meta)
        assert app.apply_state(app.selection_frames.frame(message), connection="LIVE")
        app.render()
        s = app.scene
        assert s.lod_base.tolist() == index.tolist()
        assert s.lod_every == 2 and s.drawn.tolist() == list(range(0, 40, 4))
        position = "pos_itrs_km" if s.earth_fixed else "pos_gcrs_km"
        assert np.array_equal(np.asarray(s.sats.points), arrays[position][::2])
    finally:
        app.pl.close()

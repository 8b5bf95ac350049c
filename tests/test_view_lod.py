"""Level of detail in the 3D view (viz.lod): a sampled fleet is drawn, coloured, flagged and
picked consistently, and a fleet under the budget is drawn whole, as before.

The image tests' fixed 40-node fleet (tests/viewerstate.py) stands for a million: the draw
budget is set to 10 nodes, so every 4th node is drawn. The real scene renders offscreen.
"""

from __future__ import annotations

import numpy as np
import pytest

pv = pytest.importorskip("pyvista")

from viz.viewer import ViewerApp, ViewOptions, prefer_egl  # noqa: E402

prefer_egl()

import viewerstate  # noqa: E402

from viz import lod, node_colours, scene  # noqa: E402


def test_drawn_nodes_sample_evenly_past_the_budget():
    assert lod.drawn_nodes(120_000, budget=120_000) is None
    drawn = lod.drawn_nodes(1_000_000, budget=120_000)
    assert drawn is not None and len(drawn) == 120_000 and drawn[0] == 0
    assert set(np.diff(drawn).tolist()) == {8, 9}  # 8.33 on average, evenly spread
    assert drawn[-1] < 1_000_000
    # One node past the budget still draws the budget, not half of it.
    assert len(lod.drawn_nodes(120_001, budget=120_000)) == 120_000
    assert lod.drawn_nodes(40, budget=10).tolist() == list(range(0, 40, 4))


def test_point_size_falls_with_density():
    sizes = [lod.point_size_px(n) for n in (4_428, 40_000, 120_000, 1_000_000)]
    assert sizes[0] == lod.LARGEST_PX  # a Starlink-sized fleet keeps today's 5 px
    assert sizes == sorted(sizes, reverse=True) and sizes[-1] == lod.SMALLEST_PX


def test_thinned_contacts_keep_each_stations_share():
    rng = np.random.default_rng(3)
    in_contact = rng.random((3, 50_000)) < np.array([[0.02], [0.1], [0.05]])
    thinned = lod.thinned_contacts(in_contact, budget=1_000)
    assert not (thinned & ~in_contact).any()  # only real contacts
    kept = np.count_nonzero(thinned, axis=1)
    assert 900 <= kept.sum() <= 1_000
    share = np.count_nonzero(in_contact, axis=1) / np.count_nonzero(in_contact)
    assert np.allclose(kept / kept.sum(), share, atol=0.01)
    small = in_contact[:, :100]
    assert lod.thinned_contacts(small, budget=1_000) is small


@pytest.fixture
def sampled_app(monkeypatch):
    monkeypatch.setattr(lod, "DRAW_BUDGET", 10)
    meta, state = viewerstate.meta_and_state()
    app = ViewerApp(pv.Plotter(off_screen=True, window_size=[640, 360]), None, None,
                    ViewOptions(show_fps=False, field="temp_compute_k"))
    app.apply_meta(meta)
    assert app.apply_state(state, connection="LIVE")
    app.render()
    yield app, state
    app.pl.close()


def test_a_sampled_fleet_draws_colours_flags_and_picks_its_sample(sampled_app):
    app, state = sampled_app
    s = app.scene
    assert s.drawn is not None and s.drawn.tolist() == list(range(0, 40, 4))
    drawn_xyz = scene.sat_positions(state.arrays, s.earth_fixed)[s.drawn]
    assert np.allclose(s.sats.points, drawn_xyz)
    # Colour by field: each drawn point has its own node's colour, on the whole fleet's range.
    temp = state.arrays["temp_compute_k"]
    expected = node_colours.field_rgb(temp[s.drawn], s.clim, s.table)
    node_colours.eclipse_dim(expected, state.arrays["sunlit_frac"][s.drawn])
    assert np.array_equal(np.asarray(s.sats.point_data["rgb"]), expected)
    assert s.clim[1] >= float(temp.max()) - 1e-3  # the range saw the unsampled hot nodes
    # Nodes 5 and 29 are in alarm and not in the sample: their flags are drawn anyway.
    flagged = scene.sat_positions(state.arrays, s.earth_fixed)[[5, 29]]
    assert np.allclose(np.asarray(s.alarm_mesh.points), flagged)
    # Picking near drawn point 3 selects its node (12), not a mesh index.
    app.pick(s.sats.points[3] + np.array([30.0, 0.0, 0.0]))
    assert s.selected == 12
    assert np.allclose(np.asarray(s.selected_mesh.points)[0], drawn_xyz[3])
    assert "drawing 10 of 40 nodes (1 in 4) and every flagged one" in s.hud_top.GetInput()
    # A node outside the sample can still be selected (keys, commands): it is marked.
    s.select(5)
    app.render()
    assert np.allclose(np.asarray(s.selected_mesh.points)[0], flagged[0])


def test_a_sampled_fleet_moves_on_between_states(sampled_app):
    app, _ = sampled_app
    s = app.scene
    before = np.array(s.sats.points)
    s.advance(60.0)
    moved = np.linalg.norm(np.array(s.sats.points) - before, axis=1)
    assert moved.min() > 300.0 and moved.max() < 600.0  # ~7.5 km/s for 60 s
    s.advance(0.0)
    assert np.allclose(s.sats.points, before, atol=0.01)


def test_a_fleet_under_the_budget_is_drawn_whole():
    meta, state = viewerstate.meta_and_state()
    app = ViewerApp(pv.Plotter(off_screen=True, window_size=[640, 360]), None, None,
                    ViewOptions(show_fps=False))
    try:
        app.apply_meta(meta)
        assert app.apply_state(state, connection="LIVE")
        assert app.scene.drawn is None and app.scene.sats.n_points == 40
        assert "drawing 1 in" not in app.scene.hud_top.GetInput()
    finally:
        app.pl.close()

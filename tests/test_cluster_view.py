"""The 3D view's cluster close-up (viz.cluster_view): members at metre scale around the
chief, from the stream only, rendered offscreen."""

from __future__ import annotations

import numpy as np
import pytest

from viz import cluster_view
from viz.viewer import ViewerApp, ViewOptions, prefer_egl

prefer_egl()
pv = pytest.importorskip("pyvista")

from maputil import EngineStates  # noqa: E402


def test_key_v_reaches_the_cluster_close_up_and_draws_the_members_in_lvlh() -> None:
    twin = EngineStates("suncatcher", 60.0)
    app = ViewerApp(pv.Plotter(off_screen=True, window_size=[960, 540]), None, None,
                    ViewOptions(show_fps=False))
    try:
        app.apply_meta(twin.meta)
        assert app.scene.cluster_view.available
        assert app.apply_state(twin.step())
        app.next_view()  # the 2D map
        app.next_view()  # the close-up
        assert app.scene.cluster_view.active and app.message == "cluster close-up"
        state = twin.step()
        assert app.apply_state(state)
        app.render()
        view = app.scene.cluster_view
        points = np.asarray(view._actors["cluster_members"][0].points, dtype=float)
        assert points.shape == (81, 3)
        # One world unit per metre: the drawn offsets are the members' LVLH offsets.
        pos, vel = state.arrays["pos_gcrs_km"], state.arrays["vel_gcrs_km_s"]
        offsets = cluster_view.lvlh_offsets_m(pos, vel, 0, list(range(81)))
        assert np.allclose(points[:, 0] - cluster_view.X0_KM, offsets[:, 1], atol=0.05)
        assert np.allclose(points[:, 1], offsets[:, 0], atol=0.05)
        assert np.abs(points[:, 0] - cluster_view.X0_KM).max() > 300.0  # metres, not km
        legend = view.legend.GetInput()
        assert "81 members" in legend and "closest pair" in legend
        closest = float(state.arrays["nn_dist_m"].min())
        assert f"{closest:.1f} m" in legend
        # A click on a member selects that node.
        app.pick(points[5])
        assert app.scene.selected == 5  # members are sats 0..80, the chief first
        image = app.pl.screenshot(return_img=True)
        assert image.reshape(-1, image.shape[-1])[:, :3].max(axis=1).mean() > 1.0  # drawn
        app.next_view()  # back to the globe
        assert not view.active and not view.legend.GetVisibility()
    finally:
        app.pl.close()


def test_a_twin_without_clusters_skips_the_close_up() -> None:
    twin = EngineStates("default", 60.0)
    app = ViewerApp(pv.Plotter(off_screen=True, window_size=[640, 360]), None, None,
                    ViewOptions(show_fps=False))
    try:
        app.apply_meta(twin.meta)
        assert not app.scene.cluster_view.available
        app.next_view()
        app.next_view()
        assert app.message == "globe" and not app.scene.cluster_view.active
    finally:
        app.pl.close()

"""`odc view`: the optical links shown or hidden (key L, --links/--no-links), and a globe
camera that looks at a formation cluster and follows it. Rendered for real, offscreen."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import numpy as np
import pytest

from viz import keymap, scene
from viz.fleet_scene import BIG_FLEET, FleetScene
from viz.scene_camera import concentrated_direction, rotation_between
from viz.viewer import ViewerApp, ViewOptions, prefer_egl
from viz.viewer_cli import add_arguments

prefer_egl()
pv = pytest.importorskip("pyvista")

import viewerstate  # noqa: E402
from maputil import EngineStates  # noqa: E402
from test_links_viewer import twin_frames  # noqa: E402
from test_viewer import press  # noqa: E402

SHOTS = Path(os.environ.get("ODC_SHOTS", "/tmp/shots/view-links"))
LINKS_KEY = keymap.vtk_keysym(keymap.action_keys(keymap.VIEW)["links"].keys[0])


def make_app(size=(640, 360), **options) -> ViewerApp:
    plotter = pv.Plotter(off_screen=True, window_size=list(size))
    return ViewerApp(plotter, None, None, ViewOptions(show_fps=False, **options))


def link_pixels(image: np.ndarray) -> int:
    """Pixels in the links' idle blue (the ramp's first colour)."""
    rgb = image[..., :3].astype(int)
    return int((np.abs(rgb - scene.LINK_RAMP_RGB[0]).sum(axis=2) < 40).sum())


def look_at_the_shell(app: ViewerApp) -> None:
    app.pl.camera.position = (0.0, -4.2 * 6378.0, 1.6 * 6378.0)
    app.pl.camera.focal_point = (0.0, 0.0, 0.0)
    app.pl.camera.up = (0.0, 0.0, 1.0)


# --------------------------------------------------------------------------- links on / off
def test_the_links_key_is_the_3d_views_and_free_in_the_dashboard():
    entry = keymap.action_keys(keymap.VIEW)["links"]
    assert entry.keys == ("L",) and entry.viewers == frozenset({keymap.VIEW})
    assert "L" not in {key for e in keymap.for_viewer(keymap.TUI) for key in e.keys}


def test_key_l_hides_and_shows_the_links_and_the_legend_says_which():
    meta, state, _ = twin_frames(steps=1)
    app = make_app(size=(960, 540))
    try:
        app.apply_meta(meta)
        assert app.apply_state(state, connection="LIVE")
        look_at_the_shell(app)
        app.render()
        s = app.scene
        assert s.links_actor.GetVisibility() and s.links_legend.GetVisibility()
        assert "L hides" in s.links_legend.GetInput()
        shown = link_pixels(app.pl.screenshot(return_img=True))
        assert shown > 50
        press(app, LINKS_KEY)
        assert not s.links_actor.GetVisibility()
        assert app.message == "optical links hidden"
        n_links = len(s.link_ends[0])
        assert s.links_legend.GetInput() == f"{n_links:,} optical links hidden · L shows them"
        hidden = link_pixels(app.pl.screenshot(return_img=True))
        assert hidden < shown / 10  # the links' pixels went (a few blue specks remain)
        # Hidden links stay hidden as new states arrive.
        assert app.apply_state(state, connection="LIVE")
        assert not s.links_actor.GetVisibility()
        press(app, LINKS_KEY)
        assert s.links_actor.GetVisibility() and app.message == "optical links shown"
        assert link_pixels(app.pl.screenshot(return_img=True)) == shown
    finally:
        app.pl.close()


def test_no_links_starts_without_them_and_links_forces_them_on_a_big_fleet():
    meta, state, _ = twin_frames(steps=1)
    app = make_app(links=False)
    try:
        app.apply_meta(meta)
        assert app.apply_state(state, connection="LIVE")
        app.render()
        assert len(app.scene.link_ends[0]) and not app.scene.links_actor.GetVisibility()
        assert "L shows them" in app.scene.links_legend.GetInput()
    finally:
        app.pl.close()
    # Thousands of links bury the globe: above BIG_FLEET nodes they start hidden, as
    # trails do, unless --links asks for them.
    big = {"sats": {"n": BIG_FLEET + 1, "names": [f"n{i}" for i in range(BIG_FLEET + 1)]},
           "fields": []}
    for links, expected in ((None, False), (True, True)):
        plotter = pv.Plotter(off_screen=True, window_size=[320, 180])
        try:
            fleet = FleetScene(plotter, ViewOptions(show_fps=False, links=links))
            fleet.build(big)
            assert fleet.show_links is expected
        finally:
            plotter.close()


def test_the_cli_links_flags():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args([]).links is None
    assert parser.parse_args(["--links"]).links is True
    assert parser.parse_args(["--no-links"]).links is False
    with pytest.raises(SystemExit):
        parser.parse_args(["--links", "--no-links"])


# --------------------------------------------------------------------------- the camera
def test_camera_geometry_helpers():
    a, b = np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.6, 0.8])
    np.testing.assert_allclose(rotation_between(a, b) @ a, b, atol=1e-12)
    np.testing.assert_allclose(rotation_between(a, -a) @ a, -a, atol=1e-12)
    np.testing.assert_allclose(rotation_between(a, a), np.eye(3))
    near = np.array([[7000.0, 0.0, 0.0], [7000.0, 300.0, 0.0], [7000.0, 0.0, -300.0]])
    direction = concentrated_direction(near)
    assert direction is not None and direction[0] > 0.99
    spread = np.array([[7000.0, 0.0, 0.0], [-7000.0, 10.0, 0.0]])
    assert concentrated_direction(spread) is None
    assert concentrated_direction(np.zeros((3, 3))) is None


def chief_on_screen(app: ViewerApp, chief: int) -> tuple[float, float]:
    """Where the chief is drawn (display pixels, origin bottom left); asserts that the
    Earth does not stand between it and the camera."""
    xyz = np.asarray(app.scene.sats.points[chief], dtype=float)
    eye = np.asarray(app.pl.camera.position, dtype=float)
    ray = xyz - eye
    t = float(np.clip(-(eye @ ray) / (ray @ ray), 0.0, 1.0))
    closest = float(np.linalg.norm(eye + t * ray))
    assert closest > scene.WGS84_A_KM, f"the Earth hides the chief ({closest:.0f} km)"
    renderer = app.pl.renderer
    renderer.SetWorldPoint(*xyz, 1.0)
    renderer.WorldToDisplay()
    x, y, _ = renderer.GetDisplayPoint()
    width, height = app.pl.window_size
    assert 0 < x < width and 0 < y < height, (x, y)
    return x, y


def nodes_drawn_at(app: ViewerApp, x: float, y: float) -> bool:
    """Whether the node marks change the picture around display point (x, y): hidden
    behind the Earth, they would not."""
    app.render()
    with_nodes = app.pl.screenshot(return_img=True).astype(int)
    app.scene.sats_actor.SetVisibility(False)
    app.render()
    without = app.pl.screenshot(return_img=True).astype(int)
    app.scene.sats_actor.SetVisibility(True)
    row, col = app.pl.window_size[1] - 1 - round(y), round(x)
    changed = np.abs(with_nodes - without).sum(axis=2) > 30
    return bool(changed[row - 6:row + 7, col - 6:col + 7].any())


def test_the_globe_camera_looks_at_the_cluster_and_follows_it():
    twin = EngineStates("suncatcher", 60.0)
    app = make_app(size=(1280, 720))
    try:
        app.apply_meta(twin.meta)
        chief = int(twin.meta["subsystems"]["formation"]["clusters"][0]["chief"])
        assert app.scene.selected == chief  # the chief's name marks the cluster
        assert app.apply_state(twin.step())
        app.render()
        x, y = chief_on_screen(app, chief)
        assert nodes_drawn_at(app, x, y)
        SHOTS.mkdir(parents=True, exist_ok=True)
        app.pl.screenshot(str(SHOTS / "suncatcher_globe_links.png"))
        press(app, LINKS_KEY)
        app.render()
        app.pl.screenshot(str(SHOTS / "suncatcher_globe_no_links.png"))
        # A third of an orbit later the cluster has crossed the pole; the camera with it.
        for _ in range(33):
            state = twin.step()
        assert app.apply_state(state)
        app.scene.advance(20.0)  # and between states, render by render
        app.render()
        later = chief_on_screen(app, chief)
        assert math.dist(later, (x, y)) < 40.0  # it stays where the camera showed it
        assert nodes_drawn_at(app, *later)
        app.pl.screenshot(str(SHOTS / "suncatcher_globe_33min.png"))
    finally:
        app.pl.close()


def test_the_operators_camera_place_wins_over_following():
    twin = EngineStates("suncatcher", 60.0)
    app = make_app(camera_lat_deg=-40.0, camera_lon_deg=10.0)
    try:
        app.apply_meta(twin.meta)
        state = twin.step()
        assert app.apply_state(state)
        position = np.array(app.pl.camera.position)
        expected = scene.itrs_to_view(scene.geodetic_to_itrs_km(-40.0, 10.0), state.header,
                                      False)
        np.testing.assert_allclose(position / np.linalg.norm(position),
                                   expected / np.linalg.norm(expected), atol=1e-9)
        assert app.apply_state(twin.step())
        np.testing.assert_allclose(app.pl.camera.position, position)  # not turned
    finally:
        app.pl.close()


def test_a_spread_fleet_keeps_the_default_camera():
    meta, state = viewerstate.meta_and_state()  # 40 nodes all round the globe
    app = make_app()
    try:
        app.apply_meta(meta)
        assert app.apply_state(state)
        position = np.array(app.pl.camera.position)
        lat, lon = 20.0, scene.subsolar_point_deg(state.header)[1] - 50.0
        expected = scene.itrs_to_view(scene.geodetic_to_itrs_km(lat, lon), state.header, False)
        np.testing.assert_allclose(position / np.linalg.norm(position),
                                   expected / np.linalg.norm(expected), atol=1e-9)
        app.scene.advance(300.0)
        np.testing.assert_allclose(app.pl.camera.position, position)  # not following
        assert app.scene.selected == -1  # no cluster: nothing chosen for the operator
    finally:
        app.pl.close()


def test_the_close_up_with_links_hidden_and_shown():
    twin = EngineStates("suncatcher", 60.0)
    app = make_app(size=(1280, 720))
    try:
        app.start_on_cluster = True  # as --cluster does
        app.apply_meta(twin.meta)
        assert app.apply_state(twin.step())
        app.render()
        view = app.scene.cluster_view
        assert view.active and view.legend.GetVisibility()
        assert not app.scene.links_legend.GetVisibility()  # the globe's legend: not here
        isl, neighbours = view._actors["cluster_isl"], view._actors["cluster_links"]
        # The members' optical links, each once, in the links' colours; not the
        # nearest-neighbour lines under them.
        assert isl[1].GetVisibility() and not neighbours[1].GetVisibility()
        assert isl[0].n_cells == len(app.scene.link_ends[0])  # every link is in the cluster
        assert f"{isl[0].n_cells} optical links" in view.legend.GetInput()
        SHOTS.mkdir(parents=True, exist_ok=True)
        image = app.pl.screenshot(str(SHOTS / "suncatcher_close_up_links.png"),
                                  return_img=True)
        shown = link_pixels(image)
        assert shown > 500
        press(app, LINKS_KEY)
        assert app.message == "optical links hidden"
        assert not isl[1].GetVisibility() and neighbours[1].GetVisibility()
        assert "lines: nearest neighbours · L: optical links" in view.legend.GetInput()
        app.render()
        image = app.pl.screenshot(str(SHOTS / "suncatcher_close_up_no_links.png"),
                                  return_img=True)
        assert link_pixels(image) < shown / 10
        assert view.active and view.legend.GetVisibility()
        # A cluster twin without [links]: nearest neighbours, and no key offered for links.
        names = twin.meta["sats"]["names"]
        view.update(app.scene.arrays, app.scene.sats.point_data["rgb"], names, -1, None)
        assert "lines: nearest neighbours\n" in view.legend.GetInput()
        assert not isl[1].GetVisibility() and neighbours[1].GetVisibility()
        press(app, "v")  # back to the globe: still hidden, and the camera on the cluster
        assert not view.active and not app.scene.links_actor.GetVisibility()
        assert app.scene.links_legend.GetVisibility()
        app.render()
        chief = int(twin.meta["subsystems"]["formation"]["clusters"][0]["chief"])
        chief_on_screen(app, chief)
    finally:
        app.pl.close()

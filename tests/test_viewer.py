"""The 3D viewer rendered for real (offscreen, Mesa EGL/llvmpipe), and live against a twin.

Image regression follows pytest-pyvista: ``pyvista.compare_images`` against stored images
in tests/images/ with its default error threshold. Regenerate them after an intended change
with ``ODC_UPDATE_IMAGES=1 .venv/bin/python -m pytest tests/test_viewer.py`` and LOOK at
them before keeping them.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pytest

from viz import scene
from viz.viewer import STATION_RGB, ViewerApp, ViewOptions, prefer_egl

prefer_egl()
pv = pytest.importorskip("pyvista")

import viewerstate  # noqa: E402
from twinutil import running_twin  # noqa: E402

from twin.server import Addresses  # noqa: E402
from viz.stream import STALE, CommandClient, StreamClient  # noqa: E402

IMAGES = Path(__file__).parent / "images"
# pytest-pyvista's default: an image error above 500 fails (compare_images' metric).
IMAGE_ERROR_MAX = 500.0
SIZE = (640, 360)


def make_app(earth_fixed: bool = False, stream=None, commands=None, **options) -> ViewerApp:
    plotter = pv.Plotter(off_screen=True, window_size=list(SIZE))
    return ViewerApp(plotter, stream, commands,
                     ViewOptions(earth_fixed=earth_fixed, show_fps=False, **options))


@pytest.fixture
def fixed_app(request):
    meta, state = viewerstate.meta_and_state()
    app = make_app(earth_fixed=getattr(request, "param", False))
    app.apply_meta(meta)
    assert app.apply_state(state, connection="LIVE")
    yield app
    app.pl.close()


def look_from(app: ViewerApp, direction_view: np.ndarray, distance_re: float = 4.0) -> None:
    """Put the camera on a view-frame direction, north up, and render."""
    d = np.asarray(direction_view, dtype=float)
    d /= np.linalg.norm(d)
    app.pl.camera.position = tuple(d * distance_re * scene.WGS84_A_KM)
    app.pl.camera.focal_point = (0.0, 0.0, 0.0)
    app.pl.camera.up = (0.0, 0.0, 1.0)
    app.pl.renderer.ResetCameraClippingRange()
    app.render()


def look_above(app: ViewerApp, lat_deg: float, lon_deg: float, distance_re: float = 4.0):
    where = scene.itrs_to_view(scene.geodetic_to_itrs_km(lat_deg, lon_deg), app.scene.header,
                               app.scene.earth_fixed)
    look_from(app, where, distance_re)
    return app.pl.screenshot(return_img=True)


def centre_rgb(image: np.ndarray, half: int = 2) -> np.ndarray:
    h, w, _ = image.shape
    patch = image[h // 2 - half: h // 2 + half + 1, w // 2 - half: w // 2 + half + 1, :3]
    return np.median(patch.reshape(-1, 3), axis=0)


@pytest.mark.parametrize("fixed_app", [False, True], indirect=True, ids=["inertial", "fixed"])
def test_image_regression(fixed_app):
    """The fixed state from world +x: the views differ by the Earth's rotation angle."""
    look_from(fixed_app, np.array([1.0, 0.0, 0.2]), distance_re=4.5)
    image = fixed_app.pl.screenshot(return_img=True)
    name = "viewer_earth_fixed.png" if fixed_app.scene.earth_fixed else "viewer_inertial.png"
    path = IMAGES / name
    if os.environ.get("ODC_UPDATE_IMAGES") or not path.exists():
        IMAGES.mkdir(exist_ok=True)
        fixed_app.pl.screenshot(str(path))
        pytest.skip(f"stored a new reference image {path}; look at it")
    error = pv.compare_images(image, str(path))
    assert error < IMAGE_ERROR_MAX, f"{name}: image error {error:.0f}"


@pytest.mark.parametrize("fixed_app", [False, True], indirect=True, ids=["inertial", "fixed"])
@pytest.mark.parametrize(("lat", "lon", "looks_like"), [
    (23.0, 10.0, lambda c: c[0] > 110 and c[0] > c[2] + 25),   # Sahara: sand
    (25.0, -40.0, lambda c: c[2] > c[0] + 15),                # North Atlantic: blue
])
def test_globe_shows_the_right_place_under_the_camera(fixed_app, lat, lon, looks_like):
    # Both places are in daylight at 14:00 UTC near the equinox (the Sun is over 30 W).
    rgb = centre_rgb(look_above(fixed_app, lat, lon))
    assert looks_like(rgb), f"{lat}, {lon} rendered as {rgb}"


@pytest.mark.parametrize("fixed_app", [False, True], indirect=True, ids=["inertial", "fixed"])
def test_station_marker_on_its_spot(fixed_app):
    name, lat, lon = viewerstate.STATIONS[3]  # Hartebeesthoek
    rgb = centre_rgb(look_above(fixed_app, lat, lon), half=1)
    expected = 255 * np.array(STATION_RGB)
    assert np.abs(rgb - expected).max() < 40, f"{name} marker not under the camera: {rgb}"


@pytest.mark.parametrize("fixed_app", [False, True], indirect=True, ids=["inertial", "fixed"])
def test_terminator_faces_the_sun(fixed_app):
    """Camera over the equator 90 deg east of the subsolar point: day on the left (west)."""
    _, sub_lon = scene.subsolar_point_deg(fixed_app.scene.header)
    fixed_app.scene.hud_fleet.SetVisibility(False)
    image = look_above(fixed_app, 0.0, sub_lon + 90.0, distance_re=3.0).astype(float)
    h, w, _ = image.shape
    rows = slice(h // 2 - 20, h // 2 + 20)
    left = image[rows, w // 2 - 80: w // 2 - 15].mean()
    right = image[rows, w // 2 + 15: w // 2 + 80].mean()
    assert left > 2.0 * right, f"day side {left:.0f} vs night side {right:.0f}"


def press(app: ViewerApp, key: str) -> None:
    """A real key press through the VTK interactor."""
    app.pl.iren.interactor.SetKeySym(key)
    app.pl.iren.interactor.InvokeEvent("KeyPressEvent")


def test_keys_change_the_view(fixed_app):
    s = fixed_app.scene
    first = s.field.name
    press(fixed_app, "c")
    assert s.field.name != first and s.field.name in [f.name for f in s.fields]
    assert s.selected == -1
    press(fixed_app, "n")
    press(fixed_app, "n")
    assert s.selected == 1
    press(fixed_app, "N")
    assert s.selected == 0
    assert "NODE 0" in s.hud_node.GetInput()
    press(fixed_app, "t")
    assert not s.trails_actor.GetVisibility()
    press(fixed_app, "i")
    assert s.earth_fixed
    press(fixed_app, "l")
    assert len(s.station_labels) == len(viewerstate.STATIONS)
    press(fixed_app, "h")
    assert s.hud_help.GetVisibility()
    press(fixed_app, "space")  # no command connection: says so, does not crash
    assert "no command connection" in fixed_app.message


def test_pick_selects_the_nearest_node(fixed_app):
    target = fixed_app.scene.sats.points[17] + np.array([30.0, 0.0, 0.0])
    fixed_app.pick(target)
    assert fixed_app.scene.selected == 17
    assert "NODE 17" in fixed_app.scene.hud_node.GetInput()


def _wait(app: ViewerApp, condition, timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        app.tick(timeout_ms=50.0)
        if condition():
            return True
    return False


def test_live_twin_commands_and_restart():
    """Meta and frames from a real twin; keys command it; it goes away and comes back."""
    with running_twin("default", rate_hz=20.0) as twin:
        addresses = twin.addresses
        stream = StreamClient(addresses.pub, stale_after_s=1.0)
        commands = CommandClient(addresses.command, timeout_s=2.0)
        app = make_app(stream=stream, commands=commands)
        try:
            assert app.wait_for_frame(30.0), "no meta and frame from the twin"
            assert app.scene.n_sats == twin.engine.n_sats
            press(app, "space")
            assert app.clock["paused"] and commands.send("status")["paused"], app.message
            assert _wait(app, lambda: "PAUSED" in app.scene.hud_top.GetInput())
            step = commands.send("status")["step"]
            press(app, "period")
            assert _wait(app, lambda: app.scene.header.get("step", -1) >= step + 1), app.message
            warp = app.clock["warp"]
            press(app, "bracketright")
            assert commands.send("status")["warp"] == 2 * warp, app.message
            press(app, "space")
            assert not commands.send("status")["paused"], app.message
            drawn = app.frames_drawn
        except BaseException:
            app.pl.close()
            raise
    try:
        assert _wait(app, lambda: stream.connection == STALE, 10.0)
        assert "STALE" in app.scene.hud_top.GetInput()
        with running_twin("default", rate_hz=20.0, addresses=Addresses(
                addresses.pub, addresses.command, addresses.ingest)):
            assert _wait(app, lambda: app.frames_drawn > drawn + 5, 30.0)
            assert "LIVE" in app.scene.hud_top.GetInput()
            # stream.restarts is not asserted: seq-based detection misses a restart when
            # the subscriber first hears the new twin at a seq above the old twin's last.
    finally:
        app.pl.close()
        stream.close()
        commands.close()


def test_cli_screenshot_and_movie(tmp_path):
    from viz import viewer_cli

    parser = argparse.ArgumentParser()
    viewer_cli.add_arguments(parser)
    with running_twin("default", rate_hz=20.0) as twin:
        a = twin.addresses
        png, mp4 = tmp_path / "view.png", tmp_path / "view.mp4"
        args = parser.parse_args(["--pub", a.pub, "--cmd", a.command, "--offscreen",
                                  "--size", "320x180", "--screenshot", str(png),
                                  "--movie", str(mp4), "--seconds", "1", "--fps", "5"])
        assert viewer_cli.run(args) == 0
        assert png.stat().st_size > 10_000 and mp4.stat().st_size > 1_000
        bad = parser.parse_args(["--pub", a.pub, "--cmd", a.command, "--offscreen",
                                 "--size", "320x180", "--screenshot", str(png),
                                 "--field", "no_such_field_k"])
        assert viewer_cli.run(bad) == 2
    with pytest.raises(SystemExit):
        parser.parse_args(["--size", "big"])

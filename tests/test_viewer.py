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
from viz.fleet_scene import STATION_RGB
from viz.viewer import ViewerApp, ViewOptions, prefer_egl

prefer_egl()
pv = pytest.importorskip("pyvista")

import viewerstate  # noqa: E402
from twinutil import running_twin  # noqa: E402
from viewerstate import tick_until  # noqa: E402

from twin.runtime.server import Addresses  # noqa: E402
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
    press(fixed_app, "bracketright")
    press(fixed_app, "bracketright")
    assert s.selected == 1
    press(fixed_app, "bracketleft")
    assert s.selected == 0
    assert "NODE 0" in s.hud_node.GetInput()
    press(fixed_app, "t")
    assert not s.trails_actor.GetVisibility()
    press(fixed_app, "i")
    assert s.earth_fixed
    press(fixed_app, "l")
    assert len(s.station_labels) == len(viewerstate.STATIONS) and s.show_labels
    press(fixed_app, "question")
    assert s.hud_help.GetVisibility()
    press(fixed_app, "space")  # no command connection: says so, does not crash
    assert "no command connection" in fixed_app.message


def test_pick_selects_the_nearest_node(fixed_app):
    target = fixed_app.scene.sats.points[17] + np.array([30.0, 0.0, 0.0])
    fixed_app.pick(target)
    assert fixed_app.scene.selected == 17
    assert "NODE 17" in fixed_app.scene.hud_node.GetInput()


def _wait(app: ViewerApp, condition, timeout_s: float = 20.0) -> bool:
    return tick_until(app, condition, timeout_s)


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
            press(app, "plus")
            assert commands.send("status")["warp"] == 2 * warp, app.message
            press(app, "space")
            assert not commands.send("status")["paused"], app.message
            drawn = app.frames_drawn
        except BaseException:
            app.pl.close()
            raise
    try:
        assert _wait(app, lambda: stream.connection == STALE, 10.0)
        # The HUD repaints twice a second, not at the instant the stream turns STALE.
        assert _wait(app, lambda: "STALE" in app.scene.hud_top.GetInput(), 2.0)
        with running_twin("default", rate_hz=20.0, addresses=Addresses(
                addresses.pub, addresses.command, addresses.ingest)):
            assert _wait(app, lambda: app.frames_drawn > drawn + 5, 30.0)
            assert _wait(app, lambda: "LIVE" in app.scene.hud_top.GetInput(), 2.0)
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


# --------------------------------------------------------------------------- orbit, mirror
def screen_xy(app: ViewerApp, xyz) -> tuple[int, int]:
    """Pixel (column, row from the top) where a world point lands in a screenshot."""
    renderer = app.pl.renderer
    renderer.SetWorldPoint(*map(float, xyz), 1.0)
    renderer.WorldToDisplay()
    x, y, _ = renderer.GetDisplayPoint()
    return round(x), SIZE[1] - 1 - round(y)


def ring_pixels(image: np.ndarray, centre: tuple[int, int], radius_px: float) -> np.ndarray:
    """RGB of the pixels on a circle around ``centre`` (the mirror ring's path)."""
    angles = np.linspace(0.0, 2.0 * np.pi, 72, endpoint=False)
    cols = np.clip(np.round(centre[0] + radius_px * np.cos(angles)).astype(int), 0, SIZE[0] - 1)
    rows = np.clip(np.round(centre[1] + radius_px * np.sin(angles)).astype(int), 0, SIZE[1] - 1)
    return image[rows, cols, :3].astype(int)


@pytest.fixture
def mirror_app():
    meta, state = viewerstate.meta_and_state(mirror=True)
    app = make_app()
    app.apply_meta(meta)
    assert app.apply_state(state, connection="LIVE")
    yield app
    app.pl.close()


def test_mirrored_node_is_marked_with_measured_beside_predicted(mirror_app):
    from viz.fleet_scene import MIRROR_LOST_RGB, MIRROR_RGB, MIRROR_RING_PX

    s, sat = mirror_app.scene, viewerstate.MIRROR_SAT
    assert s.selected == sat, "the mirrored node is selected from the start"
    node = s.hud_node.GetInput()
    assert node.startswith("NODE 24: DD-01-01") and "MIRROR FLATSAT LIVE" in node
    assert "measured" in node and "predicted" in node and "+12.00 K" in node
    assert "MIRROR flatsat live on DD-01-01" in s.hud_top.GetInput()
    [(_, tag)] = s._mirror_actors
    assert tag.GetInput().strip() == "MIRROR flatsat live"
    # The ring is drawn around the node, in the mirror's colour.
    position = scene.itrs_to_view(scene.geodetic_to_itrs_km(15.0, 30.0), s.header, False)
    look_from(mirror_app, position)
    image = mirror_app.pl.screenshot(return_img=True)
    centre = screen_xy(mirror_app, s.sats.points[sat])
    on_ring = ring_pixels(image, centre, MIRROR_RING_PX)
    magenta = np.abs(on_ring - 255 * np.array(MIRROR_RGB)).max(axis=1) < 60
    assert magenta.mean() > 0.5, f"{magenta.mean():.0%} of the ring's path is magenta"
    # Telemetry lost: the tag says so and the ring turns orange.
    _, lost = viewerstate.meta_and_state(mirror=True, mirror_live=False)
    assert mirror_app.apply_state(lost, connection="LIVE")
    mirror_app.render()
    assert tag.GetInput().strip() == "MIRROR flatsat lost"
    assert "MIRROR FLATSAT LOST" in s.hud_node.GetInput()
    on_ring = ring_pixels(mirror_app.pl.screenshot(return_img=True), centre, MIRROR_RING_PX)
    orange = np.abs(on_ring - 255 * np.array(MIRROR_LOST_RGB)).max(axis=1) < 60
    assert orange.mean() > 0.5


def test_mirror_image_regression(mirror_app):
    """The mirrored node with its ring, tag, orbit and measured/predicted panel."""
    position = scene.itrs_to_view(scene.geodetic_to_itrs_km(15.0, 30.0),
                                  mirror_app.scene.header, False)
    look_from(mirror_app, position, distance_re=3.5)
    image = mirror_app.pl.screenshot(return_img=True)
    path = IMAGES / "viewer_mirror.png"
    if os.environ.get("ODC_UPDATE_IMAGES") or not path.exists():
        mirror_app.pl.screenshot(str(path))
        pytest.skip(f"stored a new reference image {path}; look at it")
    error = pv.compare_images(image, str(path))
    assert error < IMAGE_ERROR_MAX, f"viewer_mirror.png: image error {error:.0f}"


def test_selected_orbit_ring_and_its_key(fixed_app):
    s = fixed_app.scene
    assert not s.orbit_actor.GetVisibility(), "no node selected: no orbit"
    press(fixed_app, "bracketright")
    assert s.selected == 0 and s.orbit_actor.GetVisibility()
    r = np.linalg.norm(s.arrays["pos_gcrs_km"][0])
    ring = np.asarray(s.orbit.points)
    assert np.allclose(np.linalg.norm(ring, axis=1), r, rtol=1e-5)
    assert np.allclose(ring[0], s.sats.points[0], atol=0.05)  # starts at the node
    # The whole circular orbit: it passes through the node's plane mates (same orbit).
    mates = s.sats.points[1:8]  # MID-01-02..08, 45 deg apart on node 0's orbit
    normal = np.cross(ring[0], ring[45])  # vertices 90 deg apart span the ring's plane
    normal /= np.linalg.norm(normal)
    one_km = 1.0
    assert np.abs(mates @ normal).max() < one_km, "the nodes on this orbit are off its plane"
    assert np.allclose(np.linalg.norm(mates, axis=1), r, atol=one_km)
    press(fixed_app, "i")  # Earth-fixed: the same ring, carried into ITRS with the node
    assert np.allclose(np.asarray(s.orbit.points)[0], s.sats.points[0], atol=0.05)
    press(fixed_app, "O")
    assert not s.orbit_actor.GetVisibility()
    press(fixed_app, "O")
    assert s.orbit_actor.GetVisibility()
    assert "O" in s.hud_help.GetInput() and "full orbit" in s.hud_help.GetInput()
    press(fixed_app, "m")  # no mirror in this twin: says so, keeps the selection
    assert s.selected == 0 and "no mirrored node" in fixed_app.message


def test_go_to_the_mirrored_node_key(mirror_app):
    s = mirror_app.scene
    press(mirror_app, "bracketright")
    assert s.selected == viewerstate.MIRROR_SAT + 1
    press(mirror_app, "m")
    assert s.selected == viewerstate.MIRROR_SAT
    assert "go to the mirrored node" in s.hud_help.GetInput()


def test_live_mirror_from_the_flatsat_scenario():
    """The real mirror scenario: telemetry pushed into a real twin's ingest socket shows
    on the viewer as measured beside predicted, then as lost when it stops."""
    import zmq
    from twinutil import connected

    from twin.protocol.telemetry import encode_telemetry

    text = (IMAGES.parents[1] / "assets" / "testbeds" / "flatsat_mirror.toml").read_text()
    text = text.replace("lost_after_s = 3.0", "lost_after_s = 1.0")
    with running_twin(text, rate_hz=10.0, warp=1.0) as twin, \
            connected(zmq.PUSH, twin.addresses.ingest) as push:
        stream = StreamClient(twin.addresses.pub, stale_after_s=2.0)
        commands = CommandClient(twin.addresses.command, timeout_s=2.0)
        app = make_app(stream=stream, commands=commands)
        sent = [0]

        def push_sample() -> None:
            now = time.time()
            push.send_multipart(encode_telemetry(
                sent[0], "flatsat", "hk", np.array([now]),
                {"compute_power_w": np.array([170.0]), "util_frac": np.array([0.5]),
                 "cold_plate_temp_c": np.array([45.0]), "radiator_temp_c": np.array([5.0])},
                seq_count=np.array([sent[0]])), copy=True)
            sent[0] += 1

        def live_and_measured() -> bool:
            push_sample()
            node = app.scene.hud_node.GetInput()
            return "MIRROR FLATSAT LIVE" in node and "45.0 °C" in node

        try:
            assert app.wait_for_frame(30.0)
            assert app.scene.selected == 0, "dawn-dusk-01-01 (node 0) is mirrored"
            assert _wait(app, live_and_measured, 20.0), app.scene.hud_node.GetInput()
            assert "170 W" in app.scene.hud_node.GetInput()
            assert "MIRROR flatsat live" in app.scene._mirror_actors[0][1].GetInput()
            assert _wait(app, lambda: "MIRROR FLATSAT LOST" in app.scene.hud_node.GetInput(),
                         10.0)
            # The twin's mirror_lost event reaches the HUD's event lines (maybe a poll later).
            assert _wait(app, lambda: any("falls back" in e for e in app.events), 5.0)
        finally:
            app.pl.close()
            stream.close()
            commands.close()


def test_a_newer_twin_colours_from_its_catalog():
    """The issue's test for the 3D view: a field in a unit it never saw colours with the
    catalog's display unit on its bar (kPa, limits marked), an enum by one colour per
    named code with the names on the bar, and the node panel reads both the catalog's way."""
    import tuiutil

    app = make_app()
    try:
        app.apply_meta(tuiutil.newer_meta())
        assert app.apply_state(tuiutil.newer_state(1), connection="LIVE")
        s, hot = app.scene, tuiutil.HOT_SAT
        names = [f.name for f in s.fields]
        assert "coolant_pressure_pa" in names and "link_mode" in names
        while s.field.name != "coolant_pressure_pa":
            press(app, "c")
        s.select(hot)
        app.refresh_hud(force=True)
        assert s.bar.GetTitle() == "Coolant pressure [kPa]"
        # From the lowest value to just past the alarm limit, in kPa; the limits marked.
        low, high = s.bar_host.GetMapper().GetScalarRange()
        assert low == pytest.approx(150.0) and high == pytest.approx(255.0)
        lut = s.bar_host.GetMapper().GetLookupTable()
        marks = {lut.GetAnnotation(i): lut.GetAnnotatedValue(i).ToDouble()
                 for i in range(lut.GetNumberOfAnnotatedValues())}
        assert marks == {"warn high": pytest.approx(230.0), "alarm high": pytest.approx(250.0)}
        # The colour field's value leads the panel (after the node and its contact).
        assert s.hud_node.GetInput().splitlines()[2] == "Coolant pressure: 262 kPa"
        assert s.alarms[hot], "past its alarm limit: flagged"

        while s.field.name != "link_mode":
            press(app, "c")
        app.refresh_hud(force=True)
        assert s.bar.GetTitle() == "Link mode"
        assert s.hud_node.GetInput().splitlines()[2] == "Link mode: rf"  # by name, not 1
        lut = s.bar.GetLookupTable()
        assert lut.GetIndexedLookup()
        assert [lut.GetAnnotation(i) for i in range(lut.GetNumberOfAnnotatedValues())] == \
            ["off", "rf", "optical"]
        codes, colours = s.categories
        assert codes == [0, 1, 2] and len({tuple(c) for c in colours}) == 3
        # Nodes in full sun wear their code's colour, undimmed.
        sunlit = app.scene.arrays["sunlit_frac"] >= 1.0
        rgb = np.asarray(s.sats.point_data["rgb"])
        expected = colours[tuiutil.LINK_MODES]
        assert sunlit.any() and np.array_equal(rgb[sunlit], expected[sunlit])
        # And the bar shows each swatch on screen, beside its name.
        app.render()
        image = app.pl.screenshot(return_img=True)[:, int(0.85 * SIZE[0]):, :3].astype(int)
        for colour in colours:
            near = np.abs(image - colour.astype(int)).max(axis=2) <= 8
            assert near.sum() > 50, f"no swatch of colour {colour} on the bar"
    finally:
        app.pl.close()


def test_a_late_viewer_shows_the_twins_alarms_within_two_seconds():
    """Alarms that fired before the viewer started: the twin's table reaches its HUD."""
    from test_alarms import HOT_SCENARIO, wait_for_chip_alarms

    with running_twin(HOT_SCENARIO(), rate_hz=5.0, warp=60.0) as twin:
        wait_for_chip_alarms(twin.addresses.command, 40)  # the alarms fire first
        stream = StreamClient(twin.addresses.pub, stale_after_s=2.0)
        # As `odc view` runs: with a command client, a late joiner asks for meta at once
        # (without one it waits for the twin's next meta, up to 3 s: the limit below).
        commands = CommandClient(twin.addresses.command, timeout_s=2.0)
        app = make_app(stream=stream, commands=commands)
        try:
            started = time.monotonic()
            assert _wait(app, lambda: "alarms: 40 (40 unacknowledged)"
                         in (app.scene.hud_fleet.GetInput() or ""), 5.0), \
                app.scene.hud_fleet.GetInput()
            assert time.monotonic() - started < 3.0  # 1 s snapshots; slack for a busy CI
        finally:
            app.pl.close()
            stream.close()
            commands.close()


def test_cli_starts_on_the_map_with_a_ground_track(tmp_path):
    """--map and --ground-track: the screenshot is the 2D map, whose polar ice runs nearly
    the window's width (lit even on the night side), where the globe leaves most of the
    same row black."""
    import imageio.v3 as iio

    from viz import viewer_cli

    parser = argparse.ArgumentParser()
    viewer_cli.add_arguments(parser)
    with running_twin("default", rate_hz=20.0) as twin:
        a = twin.addresses
        shots = {}
        for name, extra in (("globe", []), ("map", ["--map", "--ground-track"])):
            shots[name] = tmp_path / f"{name}.png"
            args = parser.parse_args(["--pub", a.pub, "--cmd", a.command, "--offscreen",
                                      "--size", "640x360", "--screenshot", str(shots[name]),
                                      *extra])
            assert viewer_cli.run(args) == 0

    def lit_fraction(png) -> float:
        image = iio.imread(png)[..., :3].astype(int)
        row = image[int(image.shape[0] * 0.86)]  # the map's Antarctic band, under the HUD
        return float(np.mean(row.sum(axis=1) > 15))

    assert lit_fraction(shots["map"]) > 0.7, lit_fraction(shots["map"])
    assert lit_fraction(shots["globe"]) < 0.6, lit_fraction(shots["globe"])

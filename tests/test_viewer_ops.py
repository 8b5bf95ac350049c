"""The 3D view as an operator uses it: keys from the one keymap, text that scales with the
window, station labels that neither hide behind the Earth nor pile up, colours that mean
the right thing, smooth motion between states, honest movies, and no display.

Rendered for real offscreen (Mesa EGL/llvmpipe); the CLI runs as a real process where it
matters (no display, ctrl+c).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from viz import keymap, motion, node_colours, scene, scene_overlay
from viz.viewer import ViewerApp, ViewOptions, prefer_egl

prefer_egl()
pv = pytest.importorskip("pyvista")

import viewerstate  # noqa: E402
from test_viewer import press  # noqa: E402
from twinutil import running_twin  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# Between two states 60 s apart, the drawn fleet meets the second within this distance.
MEET_TOLERANCE_KM = 1.0


def make_app(size=(640, 360), **options) -> ViewerApp:
    plotter = pv.Plotter(off_screen=True, window_size=list(size))
    return ViewerApp(plotter, None, None, ViewOptions(show_fps=False, **options))


@pytest.fixture
def app():
    meta, state = viewerstate.meta_and_state()
    viewer = make_app(labels=True)
    viewer.apply_meta(meta)
    assert viewer.apply_state(state, connection="LIVE")
    viewer.render()
    yield viewer
    viewer.pl.close()


# --------------------------------------------------------------------------- keys
def test_every_keymap_key_of_the_view_is_bound_by_action(app):
    bound = app.pl.iren._key_press_event_callbacks
    for entry in keymap.for_viewer(keymap.VIEW):
        for key in entry.keys:
            if key != "ctrl+c":
                assert keymap.vtk_keysym(key) in bound, f"{key} ({entry.action}) not bound"
                assert app.key_actions[keymap.vtk_keysym(key)] == entry.action
    # The help panel is the keymap's help.
    assert all(line.strip() in app.scene.hud_help.GetInput()
               for line in keymap.help_lines(keymap.VIEW) if line.strip())


def test_keys_do_what_the_keymap_says(app):
    s = app.scene
    press(app, "question")
    assert s.hud_help.GetVisibility()
    press(app, "h")  # the old help key means nothing here now
    assert s.hud_help.GetVisibility()
    press(app, "n")  # the old next-node key: nothing
    assert s.selected == -1
    press(app, "bracketright")
    assert s.selected == 0
    press(app, "bracketleft")
    assert s.selected == viewerstate.meta_and_state()[0]["sats"]["n"] - 1
    press(app, "plus")
    assert app.message == "warp: no command connection"
    press(app, "minus")
    assert app.message == "warp: no command connection"
    press(app, "period")
    assert app.message == "step: no command connection"
    press(app, "m")
    assert "no mirrored node" in app.message
    point_size = s.sats_actor.GetProperty().GetPointSize()
    press(app, "plus")  # pyvista's own "+" (bigger points) is gone
    assert s.sats_actor.GetProperty().GetPointSize() == point_size
    field = s.field.name
    iren = app.pl.iren.interactor
    iren.SetControlKey(1)  # ctrl+c in the window quits; it does not change the colour
    try:
        press(app, "c")
    finally:
        iren.SetControlKey(0)
    assert not app._running and s.field.name == field
    app._running = True
    press(app, "q")
    assert not app._running


def test_vtk_own_letter_keys_do_nothing(app):
    """VTK's interactor style has keys of its own (w: wireframe, s: surface, e: exit): off."""
    iren = app.pl.iren.interactor
    camera = app.pl.camera.position
    for key in "w3r":
        iren.SetKeySym(key)
        iren.SetKeyCode(key)
        iren.InvokeEvent("CharEvent")
        assert app.scene.earth_actor.GetProperty().GetRepresentationAsString() == "Surface"
        assert app.pl.camera.position == camera, f"{key} moved the camera"


def test_an_action_without_a_method_says_not_available(app):
    # "v" (globe / 2D map) and "g" (ground track) come with the 2D map's methods.
    for keysym, action in (("v", "next_view"), ("g", "ground_track")):
        if app.handler(action) is None:
            press(app, keysym)
            assert app.message == f"{action.replace('_', ' ')}: not available"
    app.do("no_such_action")
    assert app.message == "no such action: not available"


# --------------------------------------------------------------------------- text
def text_height_px(app: ViewerApp, actor) -> float:
    box = [0.0] * 4
    actor.GetBoundingBox(app.pl.renderer, box)
    return box[3] - box[2]


def test_hud_text_scales_with_the_window_height():
    meta, state = viewerstate.meta_and_state()
    sizes, heights = {}, {}
    for size in ((1280, 720), (1920, 1080)):
        viewer = make_app(size)
        try:
            viewer.apply_meta(meta)
            assert viewer.apply_state(state, connection="LIVE")
            viewer.render()
            s = viewer.scene
            sizes[size] = [a.GetTextProperty().GetFontSize()
                           for a in (s.hud_top, s.hud_fleet, s.hud_node, s.selected_label)]
            sizes[size].append(s.bar.GetTitleTextProperty().GetFontSize())
            heights[size] = text_height_px(viewer, s.hud_top)
        finally:
            viewer.pl.close()
    small, big = np.array(sizes[(1280, 720)]), np.array(sizes[(1920, 1080)])
    # 1.5 times the size at 1.5 times the height, to the pixel (sizes are whole pixels).
    assert np.all(np.abs(big - 1.5 * small) <= 1.0), (small, big)
    ratio = heights[(1920, 1080)] / heights[(1280, 720)]
    assert 1.35 < ratio < 1.65, f"the HUD block is {ratio:.2f} times as tall at 1080 rows"


# --------------------------------------------------------------------------- stations
def horizon_elevation(points: np.ndarray, camera: np.ndarray) -> np.ndarray:
    """Sine of the camera's elevation above each point's horizon (a sphere's tangent plane):
    above 0 the point sees the camera, below it the Earth is in between."""
    to_camera = camera - points
    return np.einsum("ij,ij->i", to_camera, points) / (
        np.linalg.norm(to_camera, axis=1) * np.linalg.norm(points, axis=1))


def horizon_visible(points: np.ndarray, camera: np.ndarray) -> np.ndarray:
    return horizon_elevation(points, camera) > 0.0


def test_hidden_by_earth_matches_the_horizon():
    rng = np.random.default_rng(3)
    directions = rng.normal(size=(500, 3))
    points = 6400.0 * directions / np.linalg.norm(directions, axis=1, keepdims=True)
    camera = np.array([30_000.0, 5_000.0, 2_000.0])
    hidden = scene_overlay.hidden_by_earth(points, camera, radius_km=6399.0)
    elevation = horizon_elevation(points, camera)
    # Hidden below the horizon; just below it a point peeps over the slightly smaller
    # sphere's limb (1 km lower: within 2 deg of the horizon).
    assert not np.any(hidden & (elevation > 0.0))
    assert np.all(hidden[elevation < -0.03])
    # Out in space, the far side of the Earth hides a point; the near side does not.
    far, near = np.array([[-20_000.0, 0, 0]]), np.array([[20_000.0, 0, 0]])
    assert scene_overlay.hidden_by_earth(far, camera)[0]
    assert not scene_overlay.hidden_by_earth(near, camera)[0]


def test_declutter_keeps_the_higher_priority_and_no_overlaps():
    boxes = np.array([[0, 0, 50, 10], [40, 5, 90, 15], [100, 0, 150, 10], [45, 20, 60, 30]])
    every = np.array([True, True, True, True])
    placed = scene_overlay.declutter(boxes, np.array([0.0, 5.0, 1.0, 0.0]), every)
    assert placed.tolist() == [-1, 0, 0, 0]
    placed = scene_overlay.declutter(boxes, np.zeros(4), np.array([False, True, True, True]))
    assert placed.tolist() == [-1, 0, 0, 0]
    # A marker is an obstacle; a label that would cover it takes its second place.
    two_places = np.stack([boxes, boxes - [200, 0, 200, 0]], axis=1)
    placed = scene_overlay.declutter(two_places, np.zeros(4), every,
                                     obstacles=np.array([[120, 2, 125, 7]]))
    assert placed.tolist() == [0, 1, 1, 0]


def shown_boxes(app: ViewerApp) -> np.ndarray:
    boxes = []
    for label in np.array(app.scene.station_labels)[app.scene.label_shown]:
        box = [0.0] * 4
        label.GetBoundingBox(app.pl.renderer, box)  # relative to the label's anchor
        x, y = label.GetPosition()
        boxes.append([box[0] + x, box[1] + x, box[2] + y, box[3] + y])
    return np.array(boxes).reshape(-1, 4)


@pytest.mark.parametrize("distance_re", [3.0, 150.0])
def test_station_labels_hide_behind_the_earth_and_never_overlap(app, distance_re):
    from test_viewer import look_from

    look_from(app, np.array([0.3, -1.0, 0.5]), distance_re=distance_re)
    s = app.scene
    camera = np.array(app.pl.camera.position)
    elevation = horizon_elevation(s.station_view.astype(float), camera)
    visible = elevation > 0.0
    clear = np.abs(elevation) > 0.03  # stations not on the limb itself
    assert np.array_equal(s.station_shown[clear], visible[clear])
    assert visible.any() and not visible.all()
    assert not np.any(s.label_shown & ~s.station_shown), "a name of a station out of sight"
    boxes = shown_boxes(app)  # x0, x1, y0, y1 as VTK gives them
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            a, b = boxes[i], boxes[j]
            assert a[1] <= b[0] or b[1] <= a[0] or a[3] <= b[2] or b[3] <= a[2], \
                "two station names overlap"
    hud = s._text_boxes()  # x0, y0, x1, y1: the HUD's blocks
    assert len(hud) >= 2
    for x0, x1, y0, y1 in boxes:
        assert not np.any((x0 < hud[:, 2]) & (hud[:, 0] < x1) & (y0 < hud[:, 3])
                          & (hud[:, 1] < y1)), "a station name over the HUD"
    if distance_re > 10:  # far out the stations crowd: some names must give way
        assert s.label_shown.sum() < s.station_shown.sum()
    else:
        assert np.array_equal(s.label_shown, s.station_shown)


def test_station_marker_sits_on_top_of_its_contact_lines(app):
    """Svalbard has contacts: its marker is drawn over the lines that end on it."""
    from test_viewer import centre_rgb, look_above

    name, lat, lon = viewerstate.STATIONS[0]
    assert app.scene.arrays["in_contact"][0].any()
    rgb = centre_rgb(look_above(app, lat, lon, distance_re=2.0), half=1)
    assert np.abs(rgb - 255 * np.array(scene_overlay.STATION_RGB)).max() < 40, (name, rgb)


# --------------------------------------------------------------------------- colours
def field(name: str, unit: str, description: str = "", display_unit: str = ""):
    from viz.quantity import Quantity

    return node_colours.ColourField(name, unit, description,
                                    quantity=Quantity(name, unit, display_unit=display_unit))


def rgb_of(info, values, clim=(0.0, 1.0)) -> np.ndarray:
    name, floor = node_colours.colormap_for(info)
    table = node_colours.colormap_table(name, floor=floor)
    return node_colours.field_rgb(np.asarray(values, float), clim, table).astype(int)


def test_charge_reads_empty_red_full_green():
    empty, full = rgb_of(field("soc_frac", "1", display_unit="%"), [0.02, 0.98])
    assert empty[0] > empty[1] + 80, f"an empty battery is {empty}"
    assert full[1] > full[0] + 80, f"a full battery is {full}"


def test_temperature_reads_cold_blue_hot_red():
    cold, hot = rgb_of(field("temp_compute_k", "K", display_unit="°C"), [280.0, 370.0],
                       (280.0, 370.0))
    assert cold[2] > cold[0] + 60 and hot[0] > hot[2] + 60, (cold, hot)


@pytest.mark.parametrize("name", ["utilization_frac", "goodput_frac", "alt_km"])
def test_other_fields_are_sequential_and_visible_on_black(name):
    rgb = rgb_of(field(name, "1" if name.endswith("frac") else "km"), np.linspace(0, 1, 11))
    luminance = rgb @ np.array([0.2126, 0.7152, 0.0722])
    assert np.all(np.diff(luminance) > 0), "more reads brighter"
    assert luminance[0] > 40, "the low end still shows against space"


def test_the_colour_bar_reads_in_the_display_unit(app):
    s = app.scene
    titles = {}
    for _ in s.fields:
        titles[s.field.name] = s.bar.GetTitle()
        press(app, "c")
    assert titles["temp_compute_k"] == "T comp [°C]"
    assert titles["soc_frac"] == "SOC [%]"


# --------------------------------------------------------------------------- motion
@pytest.mark.parametrize("earth_fixed", [False, True], ids=["inertial", "fixed"])
def test_motion_between_states_follows_the_velocity_and_meets_the_next(earth_fixed):
    gap = 60.0
    meta, first = viewerstate.meta_and_state()
    _, second = viewerstate.meta_and_state(later_s=gap)
    viewer = make_app(earth_fixed=earth_fixed)
    try:
        viewer.apply_meta(meta)
        assert viewer.apply_state(first, connection="LIVE")
        s = viewer.scene
        start = np.array(s.sats.points, dtype=float)
        pos, vel = first.arrays["pos_gcrs_km"], first.arrays["vel_gcrs_km_s"]
        m0 = scene.gcrs_to_itrs(first.header)
        for fraction in (0.1, 0.5):
            s.advance(fraction * gap)
            drawn = np.array(s.sats.points, dtype=float)
            moved = drawn - start
            if earth_fixed:  # along v in the inertial frame: undo the Earth's turn
                turned = motion.earth_turn(fraction * gap) @ m0
                moved = drawn @ turned - pos
            cos = np.einsum("ij,ij->i", moved, vel) / (
                np.linalg.norm(moved, axis=1) * np.linalg.norm(vel, axis=1))
            assert cos.min() > 0.995, "the nodes move along their velocities"
            assert np.allclose(np.linalg.norm(moved, axis=1),
                               np.linalg.norm(vel, axis=1) * fraction * gap, rtol=2e-3)
            length = s.trail_buffer.length  # each trail still ends at its node
            assert np.allclose(np.asarray(s.trails.points)[length - 1::length], drawn)
        s.advance(gap)
        target = second.arrays["pos_itrs_km" if earth_fixed else "pos_gcrs_km"]
        error = np.linalg.norm(np.array(s.sats.points, dtype=float) - target, axis=1)
        assert error.max() < MEET_TOLERANCE_KM, f"{error.max():.2f} km from the next state"
        # The globe and the stations turned with it.
        expected = scene.earth_matrix(second.header, earth_fixed)
        assert np.allclose(np.asarray(s.earth_actor.user_matrix), expected, atol=1e-6)
        stations = scene.itrs_to_view(s.station_itrs, second.header, earth_fixed)
        assert np.allclose(s.station_view, stations, atol=MEET_TOLERANCE_KM)
        # The next state replaces the extrapolation exactly.
        assert viewer.apply_state(second, connection="LIVE")
        assert np.allclose(s.sats.points, target, atol=0.01) and s.sim_dt_s == 0.0
    finally:
        viewer.pl.close()


def test_extrapolation_stops_when_paused_and_when_the_stream_stalls():
    assert motion.extrapolation_s(0.5, 60.0, False, 6.0) == pytest.approx(12.0)
    assert motion.extrapolation_s(0.05, 60.0, False, 6.0) == pytest.approx(3.0)
    assert motion.extrapolation_s(0.05, 60.0, True, 6.0) == 0.0
    assert motion.extrapolation_s(0.05, 60.0, False, 0.0) == 0.0


def test_the_viewer_moves_the_fleet_between_states(app):
    app.clock.update(warp=60.0, paused=False)
    app.scene.frame_gap_s = 6.0
    app.last_receive_wall = time.monotonic() - 0.05
    before = np.array(app.scene.sats.points)
    assert app.move_on()
    assert 2.0 < app.scene.sim_dt_s <= 12.0
    assert np.linalg.norm(np.array(app.scene.sats.points) - before, axis=1).min() > 10.0
    app.clock["paused"] = True
    app.last_receive_wall = time.monotonic()
    app.scene.advance(0.0)
    assert not app.move_on(every_s=0.0), "paused: nothing moves, nothing is redrawn"


# --------------------------------------------------------------------------- CLI
def cli(*args: str, env: dict | None = None, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "odc.cli", "view", *args], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kwargs)


def test_no_display_says_so_and_fails():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    proc = cli("--pub", "tcp://127.0.0.1:9", "--timeout", "1", env=env)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, (out, err)
    assert "no display" in err and "--offscreen" in err and "--screenshot" in err
    assert "vtk" not in err.lower().replace("odc view", ""), f"VTK spoke: {err}"


def test_size_is_checked():
    from viz import viewer_cli

    parser = argparse.ArgumentParser()
    viewer_cli.add_arguments(parser)
    assert parser.parse_args(["--size", "1920x1080"]).size == (1920, 1080)
    for bad in ("1920", "1920x", "axb", "10x10", "99999x100"):
        with pytest.raises(SystemExit):
            parser.parse_args(["--size", bad])
    for flag, bad in (("--seconds", "0"), ("--fps", "-1"), ("--cmap", "no_such_map")):
        with pytest.raises(SystemExit):
            parser.parse_args([flag, bad])
    assert parser.parse_args(["--cmap", "plasma"]).cmap == "plasma"


def test_movie_lasts_seconds_and_records_in_wall_time(tmp_path, capsys):
    import imageio.v2 as imageio

    from viz import viewer_cli

    parser = argparse.ArgumentParser()
    viewer_cli.add_arguments(parser)
    seconds, fps = 3.0, 10.0
    with running_twin("default", rate_hz=10.0) as twin:
        a = twin.addresses
        mp4 = tmp_path / "view.mp4"
        args = parser.parse_args(["--pub", a.pub, "--cmd", a.command, "--offscreen",
                                  "--size", "320x180", "--movie", str(mp4),
                                  "--seconds", str(seconds), "--fps", str(fps)])
        start = time.monotonic()
        assert viewer_cli.run(args) == 0
        wall = time.monotonic() - start
    said = capsys.readouterr().out
    recorded = float(re.search(r"recorded in ([0-9.]+) s", said).group(1))
    reader = imageio.get_reader(str(mp4))
    try:
        frames = reader.count_frames()
        assert reader.get_meta_data()["fps"] == pytest.approx(fps)
    finally:
        reader.close()
    assert frames == round(seconds * fps), "the movie lasts --seconds at --fps"
    # The recording keeps to the clock (a busy machine may repeat frames, never stretch
    # time); before it, the command waits for meta and the first frame.
    assert abs(recorded - seconds) < 1.0, said
    assert wall < seconds + 20.0, f"{seconds} s of movie took {wall:.1f} s"


def test_ctrl_c_quits_the_window_like_q(app):
    """SIGINT while the window's loop runs: the loop ends at its next tick, no traceback."""
    with app.quit_on_interrupt():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # Python runs the handler here
        assert not app._running
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_stops_a_recording_cleanly(tmp_path):
    with running_twin("default", rate_hz=10.0) as twin:
        a = twin.addresses
        movie = tmp_path / "long.mp4"
        proc = cli("--pub", a.pub, "--cmd", a.command, "--offscreen", "--size", "320x180",
                   "--movie", str(movie), "--seconds", "60")
        deadline = time.monotonic() + 60.0
        while not movie.exists() and time.monotonic() < deadline:  # recording has begun
            time.sleep(0.1)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    import imageio.v2 as imageio

    reader = imageio.get_reader(str(movie))  # closed cleanly: playable up to the ctrl+c
    try:
        assert reader.count_frames() > 0
    finally:
        reader.close()

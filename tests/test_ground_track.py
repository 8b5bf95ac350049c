"""Ground tracks (viz.ground_track): against the twin's own later and earlier frames, and
drawn for real on the globe (offscreen), switched by the keymap's key."""

from __future__ import annotations

import numpy as np
import pytest

from viz import ground_track, scene
from viz.keymap import action_keys
from viz.viewer import ViewerApp, ViewOptions, prefer_egl

prefer_egl()
pv = pytest.importorskip("pyvista")

from maputil import EngineStates  # noqa: E402

# Two-body motion from the osculating state against the twin's SGP4 (J2 included; measured
# 0.27 deg at a quarter orbit and 1.16 deg at one orbit on the default scenario): the
# track's sub-satellite point is within these great-circle angles of the twin's published
# one (docs/models.md, "Ground tracks, terminator and visibility circles").
QUARTER_ORBIT_TOLERANCE_DEG = 0.4
ONE_ORBIT_TOLERANCE_DEG = 1.5
STEP_S = 60.0


def _angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Great-circle angle between the directions of rows of ``a`` and ``b``."""
    cos = np.sum(a * b, axis=-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def _direction(lat_deg: np.ndarray, lon_deg: np.ndarray) -> np.ndarray:
    lat, lon = np.radians(lat_deg), np.radians(lon_deg)
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], -1)


def test_track_follows_the_twins_published_positions_one_orbit_each_way():
    twin = EngineStates("default", STEP_S)
    states = [twin.step() for _ in range(200)]
    middle = states[100]  # about one orbit of frames before it and after it
    n = middle.arrays["lat_deg"].shape[0]
    track = ground_track.ground_track(middle.arrays["pos_gcrs_km"],
                                      middle.arrays["vel_gcrs_km_s"], middle.header)
    now = ground_track.SAMPLES_PER_ORBIT
    assert np.all(track.dt_s[:, now] == 0.0)
    # At the state's own time the track is the published sub-satellite point.
    assert np.allclose(track.lat_deg[:, now], middle.arrays["lat_deg"], atol=1e-6)
    assert np.allclose(track.lon_deg[:, now], middle.arrays["lon_deg"], atol=1e-6)
    period = ground_track.orbit_period_s(middle.arrays["pos_gcrs_km"],
                                         middle.arrays["vel_gcrs_km_s"])
    assert np.all((period > 5400) & (period < 6000)), period  # 550 and 650 km orbits
    worst_quarter, worst_orbit, compared = 0.0, 0.0, 0
    for state in states:
        dt = state.t_utc - middle.t_utc
        inside = np.abs(dt) <= period  # the frames the track spans, per node
        if not inside.any():
            continue
        # The track's Earth-fixed points, interpolated to the frame's time, per node.
        at = np.stack([np.interp(dt, track.dt_s[i], track.itrs_km[i, :, axis])
                       for i in range(n) for axis in range(3)]).reshape(n, 3)
        error = _angle_deg(at, _direction(state.arrays["lat_deg"], state.arrays["lon_deg"]))
        error = error[inside]
        compared += inside.sum()
        worst_orbit = max(worst_orbit, float(error.max()))
        if abs(dt) <= 0.25 * period.min():
            worst_quarter = max(worst_quarter, float(error.max()))
    assert compared > 40 * 150
    assert worst_quarter < QUARTER_ORBIT_TOLERANCE_DEG, worst_quarter
    assert worst_orbit < ONE_ORBIT_TOLERANCE_DEG, worst_orbit


def test_kepler_propagation_is_a_closed_ellipse_and_keeps_energy():
    r0 = np.array([[7000.0, 0.0, 0.0], [0.0, 8000.0, 1000.0]])
    v0 = np.array([[0.0, 7.9, 1.0], [-7.0, 0.0, 1.5]])  # the second is eccentric
    period = ground_track.orbit_period_s(r0, v0)
    dt = period[:, None] * np.linspace(-1.0, 1.0, 9)[None, :]
    out = ground_track.kepler_propagate(r0, v0, dt)
    assert np.allclose(out[:, 0], r0, atol=1e-6) and np.allclose(out[:, -1], r0, atol=1e-6)
    assert np.allclose(out[:, 4], r0, atol=1e-9)
    # Vis-viva: |v| follows from |r| alone; check energy through a finite difference.
    h = 0.01
    ahead = ground_track.kepler_propagate(r0, v0, dt + h)
    speed = np.linalg.norm((ahead - out) / h, axis=-1)
    energy = speed**2 / 2 - ground_track.GM_EARTH_KM3_S2 / np.linalg.norm(out, axis=-1)
    assert np.allclose(energy, energy[:, :1], rtol=1e-5)
    # An unbound orbit has no track.
    assert np.isnan(ground_track.kepler_propagate(r0[:1], 3 * v0[:1], [[10.0]])).all()


def press(app: ViewerApp, key: str) -> None:
    """A real key press through the VTK interactor."""
    app.pl.iren.interactor.SetKeySym(key)
    app.pl.iren.interactor.InvokeEvent("KeyPressEvent")


def _display_xy(app: ViewerApp, xyz: np.ndarray) -> tuple[int, int]:
    """Where a world point lands on the image (column, row from the top)."""
    import vtk

    coordinate = vtk.vtkCoordinate()
    coordinate.SetCoordinateSystemToWorld()
    coordinate.SetValue(*map(float, xyz))
    x, y = coordinate.GetComputedDisplayValue(app.pl.renderer)
    return int(x), app.pl.window_size[1] - 1 - int(y)


def test_the_key_draws_the_selected_nodes_track_on_the_globe():
    assert action_keys("view")["ground_track"].keys == ("g",)
    twin = EngineStates("default", STEP_S)
    app = ViewerApp(pv.Plotter(off_screen=True, window_size=[640, 360]), None, None,
                    ViewOptions(show_fps=False, trails=False, orbit=False))
    try:
        app.apply_meta(twin.meta)
        state = twin.step()
        assert app.apply_state(state)
        s = app.scene
        s.select(5)
        assert not s.ground_tracks.actors["next"].GetVisibility()
        press(app, "g")
        assert "ground track on" in app.message
        assert s.ground_tracks.actors["next"].GetVisibility()
        assert s.ground_tracks.actors["past"].GetVisibility()
        past, ahead = s.ground_tracks.meshes["past"], s.ground_tracks.meshes["next"]
        # Both halves meet under the node, on the surface (the lift above the ellipsoid).
        below = scene.geodetic_to_itrs_km(state.arrays["lat_deg"][5], state.arrays["lon_deg"][5],
                                          ground_track.TRACK_LIFT_KM)
        assert np.allclose(past.points[-1], below, atol=0.5)
        assert np.allclose(ahead.points[0], below, atol=0.5)
        # Look straight down on the node: the track crosses the middle of the image.
        direction = state.arrays["pos_gcrs_km"][5] / np.linalg.norm(state.arrays["pos_gcrs_km"][5])
        app.pl.camera.position = tuple(direction * 3.0 * scene.WGS84_A_KM)
        app.pl.camera.focal_point = (0.0, 0.0, 0.0)
        app.pl.renderer.ResetCameraClippingRange()
        app.render()
        image = app.pl.screenshot(return_img=True)[..., :3].astype(int)
        matrix = scene.earth_matrix(state.header, s.earth_fixed)[:3, :3]
        ten_minutes_on = np.asarray(ahead.points[len(ahead.points) // 10]) @ matrix.T
        col, row = _display_xy(app, ten_minutes_on)
        patch = image[row - 2: row + 3, col - 2: col + 3].reshape(-1, 3)
        wanted = np.array(ground_track.NEXT_RGB) * 255
        assert np.min(np.abs(patch - wanted).sum(axis=1)) < 60, patch
        press(app, "g")
        assert not s.ground_tracks.actors["next"].GetVisibility()
        app.render()
        patch = app.pl.screenshot(return_img=True)[row - 2: row + 3, col - 2: col + 3, :3]
        assert np.min(np.abs(patch.reshape(-1, 3).astype(int) - wanted).sum(axis=1)) > 60
    finally:
        app.pl.close()


def test_a_group_selection_tracks_its_nodes():
    twin = EngineStates("default", STEP_S)
    app = ViewerApp(pv.Plotter(off_screen=True, window_size=[320, 180]), None, None,
                    ViewOptions(show_fps=False))
    try:
        app.apply_meta(twin.meta)
        assert app.apply_state(twin.step())
        s = app.scene
        groups = np.asarray(twin.meta["sats"]["groups"])
        group = str(groups[0])
        members = np.flatnonzero(groups == group)
        assert 1 < len(members) < len(groups)
        s.select(int(members[0]))
        s.toggle_ground_track()
        assert s.track_nodes() == [int(members[0])]
        assert s.ground_tracks.track.lat_deg.shape[0] == 1
        s.selected_group = group  # what a view with a group selection sets
        s.redraw()
        assert s.track_nodes() == [int(i) for i in members]
        track = s.ground_tracks.track
        assert track.lat_deg.shape[0] == len(members)
        # One polyline per node and half at least (more where NaN rows would split one).
        assert s.ground_tracks.meshes["next"].n_lines >= len(members)
        state = s.arrays
        now = ground_track.SAMPLES_PER_ORBIT
        assert np.allclose(track.lat_deg[:, now], state["lat_deg"][members], atol=1e-6)
        s.selected_group = None
        s.redraw()
        assert s.track_nodes() == [int(members[0])]
    finally:
        app.pl.close()

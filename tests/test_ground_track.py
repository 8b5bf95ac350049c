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

# J2 motion from the published (osculating) state against the twin's SGP4: the track's
# point is within these great-circle angles of the twin's published ``pos_itrs_km``
# (measured on default: 0.0026 deg a quarter orbit away, 0.0066 deg a full orbit away;
# docs/models.md, "Ground tracks, terminator and visibility circles").
QUARTER_ORBIT_TOLERANCE_DEG = 0.01
ONE_ORBIT_TOLERANCE_DEG = 0.02
STEP_S = 60.0


def _angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Great-circle angle between the directions of rows of ``a`` and ``b``."""
    cos = np.sum(a * b, axis=-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


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
        error = _angle_deg(at, state.arrays["pos_itrs_km"])
        error = error[inside]
        compared += inside.sum()
        worst_orbit = max(worst_orbit, float(error.max()))
        if abs(dt) <= 0.25 * period.min():
            worst_quarter = max(worst_quarter, float(error.max()))
    assert compared > 40 * 150
    assert worst_quarter < QUARTER_ORBIT_TOLERANCE_DEG, worst_quarter
    assert worst_orbit < ONE_ORBIT_TOLERANCE_DEG, worst_orbit


def test_j2_motion_keeps_energy_and_polar_angular_momentum_and_runs_back():
    r0 = np.array([[7000.0, 0.0, 0.0], [0.0, 6900.0, 1200.0], [-4000.0, 3000.0, 5000.0]])
    v0 = np.array([[0.0, 5.0, 5.9], [-7.4, 0.0, 1.5], [1.0, -5.0, 4.5]])
    step = ground_track.orbit_period_s(r0, v0) / ground_track.SAMPLES_PER_ORBIT
    pos, vel = ground_track.propagate_j2(r0, v0, step, ground_track.SAMPLES_PER_ORBIT)
    # The J2 field is symmetric about the pole and still: energy and the z component of
    # the angular momentum are conserved (RK4 at this step drifts ~1e-7 relative an orbit).
    energy = ground_track.specific_energy(pos, vel)
    assert np.allclose(energy, energy[:, :1], rtol=1e-6, atol=0.0)
    h_z = pos[..., 0] * vel[..., 1] - pos[..., 1] * vel[..., 0]
    assert np.allclose(h_z, h_z[:, :1], rtol=1e-6, atol=0.0)
    # J2 is not two-body: the orbit plane turns (the total angular momentum's direction).
    h = np.cross(pos, vel)
    h /= np.linalg.norm(h, axis=-1, keepdims=True)
    tilt = np.degrees(np.arccos(np.clip(np.sum(h[:, 0] * h[:, -1], -1), -1.0, 1.0)))
    assert np.all(tilt[:2] > 0.01)
    # Back from the end lands on the start (RK4: metres).
    back, _ = ground_track.propagate_j2(pos[:, -1], vel[:, -1], -step,
                                        ground_track.SAMPLES_PER_ORBIT)
    assert np.allclose(back[:, -1], r0, atol=0.01)
    # An unbound orbit has no track.
    track = ground_track.ground_track(r0[:1], 3 * v0[:1], {})
    assert np.isnan(track.lat_deg).all()


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


def test_the_track_is_reused_between_samples_and_recomputed_after_a_jump():
    twin = EngineStates("default", 10.0)  # 10 s frames: several per track sample (~48 s)
    app = ViewerApp(pv.Plotter(off_screen=True, window_size=[320, 180]), None, None,
                    ViewOptions(show_fps=False))
    try:
        app.apply_meta(twin.meta)
        first = twin.step()
        assert app.apply_state(first)
        s = app.scene
        s.select(3)
        s.toggle_ground_track()
        layer = s.ground_tracks
        assert layer.computed == 1
        for _ in range(3):
            state = twin.step()
            assert app.apply_state(state)
            # The split follows the node: both halves end at its published sub-point.
            past, ahead = layer.halves
            for lat, lon in (past[0][0][-1], past[0][1][-1]), (ahead[0][0][0], ahead[0][1][0]):
                assert abs(lat - state.arrays["lat_deg"][3]) < 0.01
                assert abs((lon - state.arrays["lon_deg"][3] + 180) % 360 - 180) < 0.01
        assert layer.computed == 1  # 30 s on: the same integration, re-split
        for _ in range(3):
            assert app.apply_state(twin.step())
        assert layer.computed == 2  # 60 s on: past a sample interval, integrated again
        assert app.apply_state(first)  # a jump back (a seek): integrated again
        assert layer.computed == 3
        s.select(4)
        assert layer.computed == 4  # another node
    finally:
        app.pl.close()

"""The 2D map (viz.map_view) and the globe's night side and limb (viz.earth_look), rendered
for real offscreen from the twin's own states, checked pixel by pixel against geometry
computed here independently."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from viz import earth_look, map_view, scene
from viz.fleet_scene import EARTH_TEXTURE
from viz.keymap import action_keys
from viz.viewer import ViewerApp, ViewOptions, prefer_egl

prefer_egl()
pv = pytest.importorskip("pyvista")

from maputil import EngineStates  # noqa: E402

SIZE = (960, 540)
# The rendered terminator is within this many degrees of the independently computed one:
# the shading is interpolated between vertices 2 deg apart on the map (5 deg on the globe).
TERMINATOR_TOLERANCE_DEG = 3.0


def subsolar_point_deg(t_utc: float) -> tuple[float, float]:
    """The subsolar point by the Astronomical Almanac's low-precision formulae (0.01 deg
    in the Sun's direction, 1800-2200) and the GMST of the USNO: independent of the twin's
    DE421 ephemeris and of its frame rotation."""
    n = (t_utc - 946728000.0) / 86400.0  # days since J2000.0
    mean_lon = math.radians((280.460 + 0.9856474 * n) % 360.0)
    anomaly = math.radians((357.528 + 0.9856003 * n) % 360.0)
    ecl_lon = mean_lon + math.radians(1.915 * math.sin(anomaly) + 0.020 * math.sin(2 * anomaly))
    obliquity = math.radians(23.439 - 4e-7 * n)
    ra = math.atan2(math.cos(obliquity) * math.sin(ecl_lon), math.cos(ecl_lon))
    dec = math.asin(math.sin(obliquity) * math.sin(ecl_lon))
    gmst = math.radians((280.46061837 + 360.98564736629 * n) % 360.0)
    lon = (math.degrees(ra - gmst) + 180.0) % 360.0 - 180.0
    return math.degrees(dec), lon


def zenith_deg(lat_deg, lon_deg, sun: tuple[float, float]) -> np.ndarray:
    lat, lon = np.radians(lat_deg), np.radians(lon_deg)
    s_lat, s_lon = np.radians(sun[0]), np.radians(sun[1])
    cos = np.sin(lat) * np.sin(s_lat) + np.cos(lat) * np.cos(s_lat) * np.cos(lon - s_lon)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def texture_rgb(lat_deg: np.ndarray, lon_deg: np.ndarray) -> np.ndarray:
    image = pv.read_texture(str(EARTH_TEXTURE)).to_image()
    width, height, _ = image.dimensions
    pixels = image.point_data[image.point_data.keys()[0]].reshape(height, width, -1)[::-1]
    col, row = scene.uv_to_pixel(scene.texture_uv(lat_deg, lon_deg), width, height)
    return pixels[row, col, :3].astype(float)


def display_xy(app: ViewerApp, xyz) -> tuple[np.ndarray, np.ndarray]:
    """Image column and row (from the top) of world points."""
    import vtk

    coordinate = vtk.vtkCoordinate()
    coordinate.SetCoordinateSystemToWorld()
    cols, rows = [], []
    for point in np.atleast_2d(xyz):
        coordinate.SetValue(*map(float, point))
        x, y = coordinate.GetComputedDoubleDisplayValue(app.pl.renderer)
        cols.append(round(x))
        rows.append(app.pl.window_size[1] - 1 - round(y))
    return np.array(cols), np.array(rows)


def press(app: ViewerApp, key: str) -> None:
    app.pl.iren.interactor.SetKeySym(key)
    app.pl.iren.interactor.InvokeEvent("KeyPressEvent")


@pytest.fixture(scope="module")
def twin_app():
    twin = EngineStates("default", 60.0)
    app = ViewerApp(pv.Plotter(off_screen=True, window_size=list(SIZE)), None, None,
                    ViewOptions(show_fps=False, trails=False))
    app.apply_meta(twin.meta)
    state = twin.step()
    assert app.apply_state(state)
    app.render()
    yield app, state
    app.pl.close()


def _light_ratio(app: ViewerApp, image: np.ndarray, lat: np.ndarray, lon: np.ndarray,
                 xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rendered brightness over the texture's at each place, and which places are usable
    (on the image, on a texture pixel bright enough to measure)."""
    cols, rows = display_xy(app, xyz)
    height, width = image.shape[:2]
    inside = (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    rendered = np.zeros(len(lat))
    rendered[inside] = image[rows[inside], cols[inside], :3].astype(float).sum(axis=1)
    texture = texture_rgb(lat, lon).sum(axis=1)
    return rendered / np.maximum(texture, 1.0), inside & (texture > 120)


def test_v_switches_to_the_map_and_back(twin_app):
    app, _ = twin_app
    assert action_keys("view")["next_view"].keys == ("v",)
    globe_camera = app.pl.camera.position
    press(app, "v")
    assert app.scene.map_view.active and app.pl.camera.GetParallelProjection()
    assert app.message == "2D map"
    press(app, "o")  # the camera reset keeps the map
    assert app.pl.camera.GetParallelProjection()
    press(app, "v")
    assert not app.scene.map_view.active and not app.pl.camera.GetParallelProjection()
    assert np.allclose(app.pl.camera.position, globe_camera)


def test_map_night_side_and_terminator_where_the_sun_says(twin_app):
    app, state = twin_app
    app.scene.show_map(True)
    try:
        app.render()
        image = app.pl.screenshot(return_img=True)
        sun = subsolar_point_deg(state.t_utc)
        twin_lon, twin_lat = map_view.to_lon_lat(app.scene.map_view.subsolar.points)
        # The twin's Sun (DE421, its frames) against the almanac's: the same place.
        assert abs(twin_lat[0] - sun[0]) < 0.1
        assert abs((twin_lon[0] - sun[1] + 180) % 360 - 180) < 0.1
        lat, lon = np.meshgrid(np.arange(-80.0, 81.0, 2.5), np.arange(-178.0, 179.0, 2.5))
        lat, lon = lat.ravel(), lon.ravel()
        xyz = map_view.to_world(lon, lat, 0.0)
        ratio, usable = _light_ratio(app, image, lat, lon, xyz)
        zenith = zenith_deg(lat, lon, sun)
        day = usable & (zenith < 90.0 - TERMINATOR_TOLERANCE_DEG)
        night = usable & (zenith > 90.0 + TERMINATOR_TOLERANCE_DEG)
        assert day.sum() > 200 and night.sum() > 200
        # Lit: at least 0.05 + 0.95 cos(87 deg) ** 0.6 = 0.21 of the texture; night: at most
        # NIGHT_RGB's 0.11 (its blue), JPEG and filtering aside. Overlays (nodes, circles,
        # labels) cover a few places: allow 5% of them.
        assert np.mean(ratio[day] > 0.18) > 0.95, np.median(ratio[day])
        assert np.mean(ratio[night] < 0.16) > 0.95, np.median(ratio[night])
        assert np.median(ratio[day]) > 4 * np.median(ratio[night])
    finally:
        app.scene.show_map(False)


def test_globe_night_side_is_dark_and_the_limb_glows(twin_app):
    app, state = twin_app
    sun = subsolar_point_deg(state.t_utc)
    # Look down on the terminator (90 deg east of the subsolar point, the evening side).
    above = scene.itrs_to_view(scene.geodetic_to_itrs_km(0.0, sun[1] + 90.0), state.header,
                               app.scene.earth_fixed)
    direction = above / np.linalg.norm(above)
    app.pl.camera.position = tuple(direction * 3.5 * scene.WGS84_A_KM)
    app.pl.camera.focal_point = (0.0, 0.0, 0.0)
    app.pl.camera.up = (0.0, 0.0, 1.0)
    app.pl.renderer.ResetCameraClippingRange()
    app.render()
    image = app.pl.screenshot(return_img=True)
    lat, lon = np.meshgrid(np.arange(-60.0, 61.0, 3.0), sun[1] + np.arange(30.0, 151.0, 3.0))
    lat, lon = lat.ravel(), lon.ravel()
    xyz = scene.itrs_to_view(scene.geodetic_to_itrs_km(lat, lon), state.header,
                             app.scene.earth_fixed)
    ratio, usable = _light_ratio(app, image, lat, lon, xyz)
    zenith = zenith_deg(lat, lon, sun)
    # The globe's vertices are 5 deg apart: the shading blurs the terminator by that much.
    day, night = usable & (zenith < 84.0), usable & (zenith > 96.0)
    assert day.sum() > 40 and night.sum() > 40
    assert np.median(ratio[day]) > 0.35 and np.median(ratio[night]) < 0.12
    assert np.mean(ratio[night] < 0.15) > 0.95
    # The limb: blue just outside the silhouette, black well outside it.
    height, width = image.shape[:2]
    distance = 3.5 * scene.WGS84_A_KM
    limb_angle = math.asin(scene.WGS84_A_KM / distance)
    px_per_rad = height / 2 / math.tan(math.radians(app.pl.camera.view_angle / 2))
    limb_px = px_per_rad * math.tan(limb_angle)
    row = height // 2
    just_out = image[row, int(width / 2 + limb_px + 2), :3].astype(int)
    far_out = image[row - 1: row + 2, int(width / 2 + limb_px + 25), :3].astype(int)
    assert just_out[2] > 100 and just_out[2] > just_out[0] + 40, just_out
    assert far_out.max() < 90 or far_out.sum(axis=1).min() < 60, far_out
    app.scene.set_camera(force=True)


def test_shading_is_the_sun_and_night_reads_as_night():
    normals = np.array([[1.0, 0, 0], [-1.0, 0, 0], [0, 1.0, 0], [0.5, math.sqrt(0.75), 0]],
                       dtype=np.float32)
    shade = earth_look.day_night_shading(normals, np.array([1.0, 0, 0], np.float32))
    assert (shade[0] == 255).all()  # the Sun at the zenith
    night = np.round(255 * earth_look.NIGHT_RGB)
    assert (shade[1] == night).all() and (shade[2] == night).all()  # below the horizon
    assert shade[1, 2] > shade[1, 0]  # blue-tinted night
    expected = night + (255 - night) * 0.5 ** earth_look.DAY_GAMMA
    assert np.all(np.abs(shade[3] - expected) <= 1)


def _elevation_deg(central_deg: np.ndarray, alt_km: float, radius_km: float) -> np.ndarray:
    """Elevation of a node ``alt_km`` up over a point ``central_deg`` away, by vectors."""
    theta = np.radians(central_deg)
    station = np.array([radius_km, 0.0])
    node = (radius_km + alt_km) * np.stack([np.cos(theta), np.sin(theta)], axis=-1)
    look = node - station
    return np.degrees(np.arctan2(look[..., 0], look[..., 1]))  # up is x at the station


def test_visibility_circles_have_the_radius_of_spherical_geometry(twin_app):
    app, state = twin_app
    m = app.scene.map_view
    app.scene.show_map(True)
    try:
        stations = app.meta["stations"]
        alt = float(np.median(state.arrays["alt_km"]))
        radius = map_view.coverage_angle_deg(alt, m.station_min_el)
        for station, lam in zip(stations, radius, strict=True):
            # Independently: the node sits at the minimum elevation at that central angle.
            el = _elevation_deg(lam, alt, map_view.R_EARTH_MEAN_KM)
            assert abs(el - station["min_elevation_deg"]) < 1e-6
            assert 10.0 < lam < 30.0
        assert np.allclose(m.coverage_deg, radius)
        # The drawn circles: every vertex lam from its station (great-circle distance).
        lon, lat = map_view.to_lon_lat(m.circles.points)
        dirs = np.stack([np.cos(np.radians(lat)) * np.cos(np.radians(lon)),
                         np.cos(np.radians(lat)) * np.sin(np.radians(lon)),
                         np.sin(np.radians(lat))], axis=1)
        centres = np.stack([[math.cos(math.radians(s["lat_deg"])) * math.cos(math.radians(
            s["lon_deg"])), math.cos(math.radians(s["lat_deg"])) * math.sin(math.radians(
                s["lon_deg"])), math.sin(math.radians(s["lat_deg"]))] for s in stations])
        angle = np.degrees(np.arccos(np.clip(dirs @ centres.T, -1.0, 1.0)))
        nearest = np.argmin(np.abs(angle - radius[None, :]), axis=1)
        error = np.abs(angle[np.arange(len(angle)), nearest] - radius[nearest])
        assert error.max() < 0.01
        assert len(set(nearest)) == len(stations)  # every station has its circle
    finally:
        app.scene.show_map(False)


def test_nodes_on_the_map_where_the_twin_says_in_the_globes_colours(twin_app):
    app, state = twin_app
    m = app.scene.map_view
    app.scene.select(7)
    app.scene.toggle_ground_track()
    app.scene.show_map(True)
    try:
        points = np.asarray(m.sats.points)
        lon, lat = map_view.to_lon_lat(points)
        assert np.allclose(lon, state.arrays["lon_deg"], atol=1e-3)
        assert np.allclose(lat, state.arrays["lat_deg"], atol=1e-3)
        assert np.array_equal(m.sats.point_data["rgb"], app.scene.sats.point_data["rgb"])
        # The track's two halves meet under the selected node.
        assert m.past_actor.GetVisibility() and m.next_actor.GetVisibility()
        assert np.allclose(m.past.points[-1][:2], points[7][:2], atol=1e-3)
        assert np.allclose(m.next.points[0][:2], points[7][:2], atol=1e-3)
        # A click on the map selects the node whose dot is nearest.
        app.pick(points[11] + np.array([0.3 * map_view.MAP_SCALE, 0.0, 0.0]))
        assert app.scene.selected == 11
        app.scene.select(7)
        # A rendered node: the pixel at its place has its colour (an isolated one).
        app.render()
        image = app.pl.screenshot(return_img=True)[..., :3].astype(int)
        gap = np.linalg.norm(points[:, None, :2] - points[None, :, :2], axis=2)
        gap[np.arange(len(points)), np.arange(len(points))] = np.inf
        lonely = int(np.argmax(gap.min(axis=1)))
        col, row = display_xy(app, points[lonely])
        rgb = app.scene.sats.point_data["rgb"][lonely].astype(int)
        assert np.abs(image[row[0], col[0]] - rgb).sum() < 30, (image[row[0], col[0]], rgb)
    finally:
        app.scene.show_map(False)
        app.scene.toggle_ground_track()


def test_starlink_map_at_interactive_rates():
    """4,428 nodes: a map frame (update and render) within a CPU renderer's budget."""
    twin = EngineStates("starlink", 60.0)
    app = ViewerApp(pv.Plotter(off_screen=True, window_size=[1280, 720]), None, None,
                    ViewOptions(show_fps=False))
    try:
        app.apply_meta(twin.meta)
        # Thousands of trails bury the Earth in lines: off unless asked (key t).
        assert not app.scene.show_trails and not app.scene.trails_actor.GetVisibility()
        state = twin.step()
        assert app.apply_state(state)
        app.scene.toggle_ground_track()
        app.next_view()
        app.render()
        points = np.asarray(app.scene.map_view.sats.points)
        assert points.shape == (4428, 3)
        assert np.allclose(map_view.to_lon_lat(points)[1], state.arrays["lat_deg"], atol=1e-3)
        states = [twin.step() for _ in range(5)]
        start = time.perf_counter()
        for s in states:
            assert app.apply_state(s)
            app.render()
        per_frame = (time.perf_counter() - start) / len(states)
        assert per_frame < 0.5, f"{per_frame * 1000:.0f} ms a frame"  # shared 2-core CI box
    finally:
        app.pl.close()

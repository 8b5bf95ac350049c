"""The 2D map view: the whole Earth at once, in plate carree (longitude east, latitude north).

Drawn in the same renderer as the globe, far away from it: the map lies in the plane
``z = 0`` with ``x = MAP_X0_KM + MAP_SCALE * longitude`` and ``y = MAP_SCALE * latitude``
(``to_world``), and a parallel-projection camera looks straight down on it. The globe,
the stars and the overlays anchored to nodes are then outside the camera's view: VTK
culls them, the HUD (screen-anchored) stays, and nothing of the 3D scene needs hiding or
rebuilding. The key ``v`` swaps cameras.

On the map: the Earth texture lit by the Sun (``viz.earth_look.day_night_shading``, the
same light as the globe) with the terminator line, every node's sub-satellite point in the
3D view's colours, the ground stations with their visibility circles, and the selected
node's ground track (``viz.ground_track``). Per frame everything is numpy over whole
arrays; only the few antimeridian crossings of the lines are visited one by one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from twin.astro.geometry import geodetic_from_itrs
from viz import earth_look, ground_track, scene
from viz.cluster_view import ClusterView
from viz.vtk_actors import TextScaler, label_actor, text_actor

# Far from the globe (whose stars lie 150,000 km out): the two never share a view. World
# units per degree: VTK stores points as float32, whose step at 200,000 is 0.016 units, so
# at 100 units a degree the map keeps 0.0002 deg (20 m) wherever it is zoomed.
MAP_X0_KM = 200_000.0
MAP_SCALE = 100.0
# Layers above the map plane (world units), nearest the camera last.
Z_TERMINATOR, Z_CIRCLES, Z_TRACK, Z_STATIONS, Z_SATS = 50.0, 100.0, 150.0, 200.0, 250.0
# Where the camera sits above the map (world units).
CAMERA_Z = 100_000.0
# Mean Earth radius for the visibility circles: a spherical Earth (docs/models.md).
R_EARTH_MEAN_KM = 6371.0
CIRCLE_POINTS = 181
TERMINATOR_RGB = (1.0, 0.7, 0.3)
CIRCLE_RGB = (1.0, 0.85, 0.2)
SUBSOLAR_RGB = (1.0, 1.0, 0.6)
POLE_CUT_DEG = 88.0
# Where a node without a position goes: below the map, out of the view.
OFF_MAP_LAT = -1000.0
# The part of the window the map fills, as fractions (left, right, bottom, top): clear of
# the HUD's top lines and of the colour bar on the right.
MAP_AREA = (0.01, 0.79, 0.05, 0.84)
# The legend's entries in a row just above the map, between the HUD's top-left lines and
# its fleet panel (normalized x).
LEGEND_X = (0.26, 0.36, 0.46, 0.62, 0.72)
# The fleet's altitude when no state says it yet (a typical low orbit).
DEFAULT_ALT_KM = 550.0


def coverage_angle_deg(alt_km: float | np.ndarray, min_elevation_deg: float | np.ndarray,
                       radius_km: float = R_EARTH_MEAN_KM) -> np.ndarray:
    """Earth-central angle from a station to where a node at ``alt_km`` sits at the
    station's minimum elevation: the radius of its visibility circle, degrees.

    In the triangle Earth centre - station - node the angle at the node is
    ``asin(R cos(el) / (R + h))``, so the central angle is ``90 - el - that``:
    ``lambda = acos(R cos(el) / (R + h)) - el``.
    """
    el = np.radians(np.asarray(min_elevation_deg, dtype=float))
    ratio = radius_km * np.cos(el) / (radius_km + np.asarray(alt_km, dtype=float))
    return np.degrees(np.arccos(np.clip(ratio, -1.0, 1.0)) - el)


def small_circle(lat_deg: float, lon_deg: float, radius_deg: float,
                 n: int = CIRCLE_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Points ``radius_deg`` of arc from a centre on the sphere: latitudes, longitudes."""
    lat0, lon0 = math.radians(lat_deg), math.radians(lon_deg)
    arc = math.radians(radius_deg)
    bearing = np.linspace(0.0, 2.0 * math.pi, n)
    sin_lat = math.sin(lat0) * math.cos(arc) + math.cos(lat0) * math.sin(arc) * np.cos(bearing)
    lat = np.arcsin(np.clip(sin_lat, -1.0, 1.0))
    lon = lon0 + np.arctan2(np.sin(bearing) * math.sin(arc) * math.cos(lat0),
                            math.cos(arc) - math.sin(lat0) * sin_lat)
    return np.degrees(lat), wrap_lon(np.degrees(lon))


def wrap_lon(lon_deg: np.ndarray) -> np.ndarray:
    """Longitudes into [-180, 180)."""
    return (np.asarray(lon_deg, dtype=float) + 180.0) % 360.0 - 180.0


def split_at_antimeridian(lat_deg: np.ndarray, lon_deg: np.ndarray) -> list[np.ndarray]:
    """A path on the map as runs of ``(m, 2)`` (lon, lat) that never jump across the map.

    Where consecutive points are more than 180 deg of longitude apart the path crossed
    the antimeridian: the run ends on the map's edge and the next starts on the other edge,
    at the latitude interpolated there.
    """
    lat = np.asarray(lat_deg, dtype=float)
    lon = np.asarray(lon_deg, dtype=float)
    jumps = np.flatnonzero(np.abs(np.diff(lon)) > 180.0)
    runs: list[np.ndarray] = []
    start = 0
    entry: np.ndarray | None = None
    for j in jumps:  # a few per orbit, not per point
        edge = 180.0 if lon[j] > 0 else -180.0
        unwrapped_next = lon[j + 1] + 2.0 * edge  # the next point, continued past the edge
        span = unwrapped_next - lon[j]
        frac = (edge - lon[j]) / span if span else 0.0
        lat_edge = lat[j] + frac * (lat[j + 1] - lat[j])
        body = np.column_stack([lon[start:j + 1], lat[start:j + 1]])
        pieces = [body, [[edge, lat_edge]]]
        if entry is not None:
            pieces.insert(0, entry)
        runs.append(np.vstack(pieces))
        entry = np.array([[-edge, lat_edge]])
        start = j + 1
    tail = np.column_stack([lon[start:], lat[start:]])
    runs.append(tail if entry is None else np.vstack([entry, tail]))
    return runs


def map_polylines(paths: Sequence[tuple[np.ndarray, np.ndarray]],
                  z: float) -> tuple[np.ndarray, np.ndarray]:
    """VTK points and lines of (lat, lon) paths on the map, split at the antimeridian."""
    runs = []
    for lat, lon in paths:
        for run in split_at_antimeridian(lat, lon):
            runs.append(to_world(run[:, 0], run[:, 1], z))
    return ground_track.polylines(runs)


def sub_satellite_deg(arrays: Mapping[str, np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Every node's geodetic latitude and longitude: as published, else from ``pos_itrs_km``."""
    lat, lon = arrays.get("lat_deg"), arrays.get("lon_deg")
    if lat is not None and lon is not None and lat.shape == (n,) and lon.shape == (n,):
        return lat, lon
    pos = arrays.get("pos_itrs_km")
    if pos is None or pos.shape != (n, 3):
        return np.full(n, np.nan), np.full(n, np.nan)
    lat_rad, lon_rad, _ = geodetic_from_itrs(np.asarray(pos, dtype=float))
    return np.degrees(lat_rad), np.degrees(lon_rad)


def fleet_altitude_km(arrays: Mapping[str, np.ndarray]) -> float:
    """The fleet's typical altitude: the median of ``alt_km`` (or of ``|r| - R``)."""
    alt = arrays.get("alt_km")
    if alt is None:
        pos = arrays.get("pos_itrs_km")
        if pos is None:
            return DEFAULT_ALT_KM
        alt = np.linalg.norm(pos, axis=1) - R_EARTH_MEAN_KM
    alt = np.asarray(alt, dtype=float)
    alt = alt[np.isfinite(alt) & (alt > 0)]
    return float(np.median(alt)) if len(alt) else DEFAULT_ALT_KM


def _line_actor(plotter: Any, name: str, rgb: tuple[float, float, float],
                width: float) -> tuple[Any, Any]:
    import pyvista as pv

    mesh = pv.PolyData(np.zeros((2, 3), np.float32), lines=[2, 0, 1])
    actor = plotter.add_mesh(mesh, color=rgb, line_width=width, lighting=False,
                             pickable=False, name=name, reset_camera=False)
    return mesh, actor


def _set_lines(mesh: Any, actor: Any, points: np.ndarray, lines: np.ndarray) -> None:
    actor.SetVisibility(len(points) > 0)
    if len(points):
        mesh.points = points
        mesh.lines = lines


class MapView:
    """The map's actors and camera, fed from a ``FleetScene``'s current state.

    Args:
        plotter: The scene's pyvista plotter.
        texture_path: The equirectangular Earth image (the globe's).
    """

    def __init__(self, plotter: Any, texture_path: Any, text: TextScaler | None = None) -> None:
        import pyvista as pv

        self.pl = plotter
        # The scene's text scaler: the legend and station names scale with the window as
        # the HUD does (a private one when the map is used alone).
        self.text = text if text is not None else TextScaler()
        self.active = False
        self._saved_camera: Any = None
        lat = np.linspace(-90.0, 90.0, 91)
        lon = np.linspace(-180.0, 180.0, 181)
        lat_g, lon_g = np.meshgrid(lat, lon, indexing="ij")
        world = to_world(lon_g, lat_g, 0.0)
        grid = pv.StructuredGrid(world[..., 0], world[..., 1], world[..., 2])
        self.plane = grid.extract_surface(algorithm="dataset_surface")
        # The surface keeps the grid's point order (lat-major), so these line up.
        plane_lon, plane_lat = to_lon_lat(self.plane.points)
        self.plane.active_texture_coordinates = scene.texture_uv(plane_lat, plane_lon
                                                                 ).astype(np.float32)
        phi, lam = np.radians(plane_lat), np.radians(plane_lon)
        self.normals = np.stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam),
                                 np.sin(phi)], axis=1).astype(np.float32)
        self.plane.point_data["shade"] = earth_look.day_night_shading(
            self.normals, np.array([1.0, 0.0, 0.0], np.float32))
        texture = pv.read_texture(str(texture_path))
        texture.interpolate = True
        self.plane_actor = plotter.add_mesh(self.plane, texture=texture, scalars="shade",
                                            rgb=True, lighting=False, pickable=False,
                                            name="map_plane", reset_camera=False)
        self.terminator, self.terminator_actor = _line_actor(plotter, "map_terminator",
                                                             TERMINATOR_RGB, 1.5)
        self.circles, self.circles_actor = _line_actor(plotter, "map_circles", CIRCLE_RGB, 1.2)
        self.past, self.past_actor = _line_actor(plotter, "map_track_past",
                                                 ground_track.PAST_RGB, ground_track.PAST_WIDTH)
        self.next, self.next_actor = _line_actor(plotter, "map_track_next",
                                                 ground_track.NEXT_RGB, ground_track.NEXT_WIDTH)
        self.subsolar = pv.PolyData(to_world(0.0, 0.0, Z_SATS)[None, :])
        self.subsolar_actor = plotter.add_mesh(self.subsolar, color=SUBSOLAR_RGB, point_size=14,
                                               render_points_as_spheres=True, lighting=False,
                                               pickable=False, name="map_subsolar",
                                               reset_camera=False)
        # The selected node: a white square under its dot, as on the globe.
        self.selected = pv.PolyData(to_world(0.0, OFF_MAP_LAT, Z_STATIONS)[None, :])
        self.selected_actor = plotter.add_mesh(self.selected, color="white", point_size=17,
                                               lighting=False, pickable=False,
                                               name="map_selected", reset_camera=False)
        # What the map's lines and marks mean, under the map (its colours are the lines').
        self.legend = [
            text_actor(plotter.renderer, x, MAP_AREA[3] + 0.008, size=12, valign="bottom",
                       colour=rgb)
            for x, rgb in zip(LEGEND_X, (ground_track.NEXT_RGB, ground_track.PAST_RGB,
                                         CIRCLE_RGB, TERMINATOR_RGB, SUBSOLAR_RGB), strict=True)]
        for actor in self.legend:
            self.text.add(actor.GetTextProperty(), 12)
        self.sats: Any = None
        self.n_nodes = 0
        self.drawn: np.ndarray | None = None  # the nodes drawn (viz.lod); None: all
        self.sats_actor: Any = None
        self.stations: Any = None
        self.station_labels: list[Any] = []
        self.coverage_deg = np.zeros(0)
        self.alt_km = DEFAULT_ALT_KM
        self._show_legend(False)

    # ------------------------------------------------------------------ building
    def build(self, meta: Mapping[str, Any], n_sats: int, big_fleet: bool,
              station_rgb: tuple[float, float, float], drawn: np.ndarray | None = None,
              point_px: float = 4.0) -> None:
        """Size the node and station marks for a fleet (after the scene's build).

        Args:
            drawn: The nodes the globe draws (viz.lod), the map draws the same; None: all.
            point_px: A big fleet's point size (the globe's).
        """
        import pyvista as pv

        self.n_nodes, self.drawn = n_sats, drawn
        n_marks = n_sats if drawn is None else len(drawn)
        for name in ("map_sats", "map_stations"):
            self.pl.remove_actor(name, reset_camera=False, render=False)
        for label in self.station_labels:
            self.pl.renderer.RemoveViewProp(label)
            self.text.discard(label.GetTextProperty())
        self.sats = pv.PolyData(np.zeros((n_marks, 3), np.float32))
        self.sats.point_data["rgb"] = np.full((n_marks, 3), 200, np.uint8)
        self.sats_actor = self.pl.add_mesh(
            self.sats, scalars="rgb", rgb=True,
            point_size=min(4.0, point_px) if big_fleet else 9,
            render_points_as_spheres=not big_fleet, lighting=False, pickable=True,
            name="map_sats", reset_camera=False)
        # Hidden while the globe is shown: off-camera points still cost a CPU renderer
        # their vertices every frame (a third of a frame at 100,000 nodes).
        self.sats_actor.SetVisibility(self.active)
        stations = list(meta.get("stations", []))
        self.station_lat = np.array([float(s.get("lat_deg", 0.0)) for s in stations])
        self.station_lon = np.array([float(s.get("lon_deg", 0.0)) for s in stations])
        self.station_min_el = np.array([float(s.get("min_elevation_deg", 10.0))
                                        for s in stations])
        points = to_world(self.station_lon, self.station_lat, Z_STATIONS).reshape(-1, 3)
        self.stations = pv.PolyData(points)
        self.pl.add_mesh(self.stations, color=station_rgb, point_size=11,
                         render_points_as_spheres=True, lighting=False, pickable=False,
                         name="map_stations", reset_camera=False)
        self.station_labels = []
        for s, xyz in zip(stations, points, strict=True):
            label = label_actor(self.pl.renderer, str(s.get("name", "?")), station_rgb, 12)
            self.text.add(label.GetTextProperty(), 12)
            label.SetPosition(*map(float, xyz))
            self.station_labels.append(label)
        self.coverage_deg = np.full(len(stations), np.nan)

    # ------------------------------------------------------------------ per state
    def update(self, header: Mapping[str, Any], arrays: Mapping[str, np.ndarray],
               rgb: np.ndarray, track: tuple[list, list] | None,
               selected: int = -1) -> None:
        """Draw one state: light, terminator, nodes, visibility circles, ground track."""
        if self.sats is None:
            return
        sun = scene.sun_direction(header, earth_fixed=True)
        earth_look.day_night_shading(self.normals, sun.astype(np.float32),
                                     out=self.plane.point_data["shade"])
        self.plane.GetPointData().GetArray("shade").Modified()
        sun_lat = math.degrees(math.asin(float(np.clip(sun[2], -1.0, 1.0))))
        sun_lon = math.degrees(math.atan2(float(sun[1]), float(sun[0])))
        self.subsolar.points[0] = to_world(sun_lon, sun_lat, Z_SATS)
        self.subsolar.GetPoints().Modified()
        term_lat, term_lon = small_circle(sun_lat, sun_lon, 90.0, 361)
        # Near a pole the terminator sweeps through all longitudes along the map's edge:
        # leave that out, the shading shows it.
        term_lat[np.abs(term_lat) > POLE_CUT_DEG] = np.nan
        _set_lines(self.terminator, self.terminator_actor,
                   *map_polylines([(term_lat, term_lon)], Z_TERMINATOR))

        n = self.n_nodes
        lat, lon = sub_satellite_deg(arrays, n)
        out = self.sats.points
        if self.drawn is None:
            out[:] = to_world(lon, lat, Z_SATS)
        else:  # the globe's sample (viz.lod)
            out[:] = to_world(lon[self.drawn], lat[self.drawn], Z_SATS)
        out[~np.isfinite(out).all(axis=1)] = to_world(0.0, OFF_MAP_LAT, Z_SATS)
        self.sats.GetPoints().Modified()
        self.selected_actor.SetVisibility(0 <= selected < n)
        if 0 <= selected < n:
            mark = to_world(lon[selected], lat[selected], Z_STATIONS)
            self.selected.points[0] = (mark if np.isfinite(mark).all()
                                       else to_world(0.0, OFF_MAP_LAT, Z_STATIONS))
            self.selected.GetPoints().Modified()
        if rgb.shape == (self.sats.n_points, 3):
            self.sats.point_data["rgb"][:] = rgb
            self.sats.GetPointData().GetArray("rgb").Modified()

        self.alt_km = fleet_altitude_km(arrays)
        coverage = coverage_angle_deg(self.alt_km, self.station_min_el)
        if not np.array_equal(coverage, self.coverage_deg):  # a few circles, when they change
            self.coverage_deg = coverage
            circles = [small_circle(la, lo, c) for la, lo, c in
                       zip(self.station_lat, self.station_lon, coverage, strict=True)]
            _set_lines(self.circles, self.circles_actor, *map_polylines(circles, Z_CIRCLES))

        self.draw_track(track)
        texts = ("next orbit", "past orbit",
                 f"visibility at {self.alt_km:.0f} km",
                 "terminator", "Sun overhead (dot)")
        for actor, text in zip(self.legend, texts, strict=True):
            actor.SetInput(text)
        self.legend[0].SetVisibility(self.active and track is not None)
        self.legend[1].SetVisibility(self.active and track is not None)

    def draw_track(self, halves: tuple[list, list] | None) -> None:
        """The ground track's past and next orbits (``GroundTrack.halves``; None hides)."""
        if halves is None:
            self.past_actor.SetVisibility(False)
            self.next_actor.SetVisibility(False)
            return
        _set_lines(self.past, self.past_actor, *map_polylines(halves[0], Z_TRACK))
        _set_lines(self.next, self.next_actor, *map_polylines(halves[1], Z_TRACK))

    # ------------------------------------------------------------------ camera
    def reset_camera(self) -> None:
        """Look straight down on the whole map, fitted to the window."""
        width, height = self.pl.window_size
        left, right, bottom, top = MAP_AREA
        area_w, area_h = (right - left) * width, (top - bottom) * height
        px_per_deg = min(area_w / 360.0, area_h / 180.0)
        # The camera's centre, so the map's centre lands on the area's centre.
        dx_deg = (width / 2.0 - (left + right) / 2.0 * width) / px_per_deg
        dy_deg = (height / 2.0 - (bottom + top) / 2.0 * height) / px_per_deg
        camera = self.pl.camera
        camera.SetParallelProjection(True)
        centre = to_world(dx_deg, dy_deg, 0.0)
        camera.focal_point = tuple(centre)
        camera.position = (centre[0], centre[1], CAMERA_Z)
        camera.up = (0.0, 1.0, 0.0)
        # Half the view's height.
        camera.parallel_scale = MAP_SCALE * height / 2.0 / px_per_deg
        camera.clipping_range = (CAMERA_Z - 2.0 * Z_SATS, CAMERA_Z + Z_SATS)

    def show(self, on: bool) -> None:
        """Switch the camera to the map (saving the globe's) or back to the globe."""
        if on == self.active:
            return
        self.active = on
        self._show_legend(on)
        if self.sats_actor is not None:
            self.sats_actor.SetVisibility(on)
        camera = self.pl.camera
        if on:
            self._saved_camera = (camera.position, camera.focal_point, camera.up,
                                  camera.view_angle)
            self.reset_camera()
            if self.sats_actor is not None:
                self.pl.pickable_actors = [self.sats_actor]
        elif self._saved_camera is not None:
            camera.SetParallelProjection(False)
            (camera.position, camera.focal_point, camera.up,
             camera.view_angle) = self._saved_camera
            self.pl.renderer.ResetCameraClippingRange()
        iren = getattr(self.pl, "iren", None)
        if iren is not None:  # in a window: the map pans and zooms, it does not turn
            if on:
                self.pl.enable_2d_style()
            else:
                self.pl.enable_trackball_style()

    def _show_legend(self, on: bool) -> None:
        for actor in self.legend:
            actor.SetVisibility(on)

    def nearest_node(self, xyz: Sequence[float]) -> int:
        """The node whose sub-satellite point is nearest a picked map point (-1: none)."""
        if self.sats is None or not self.sats.n_points:
            return -1
        index = scene.nearest_sat(self.sats.points[:, :2], list(xyz)[:2])
        return index if self.drawn is None else int(self.drawn[index])


def to_world(lon_deg: Any, lat_deg: Any, z: float) -> np.ndarray:
    """World points of map places, float32 ``broadcast_shape + (3,)``."""
    lon, lat = np.broadcast_arrays(np.asarray(lon_deg, dtype=float),
                                   np.asarray(lat_deg, dtype=float))
    return np.stack([MAP_X0_KM + MAP_SCALE * lon, MAP_SCALE * lat, np.full(lon.shape, z)],
                    axis=-1).astype(np.float32)


def to_lon_lat(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Longitudes and latitudes (deg) of world points on the map, ``(n, 3)``."""
    points = np.asarray(points, dtype=float)
    return (points[:, 0] - MAP_X0_KM) / MAP_SCALE, points[:, 1] / MAP_SCALE


class MapLayers:
    """A ``FleetScene`` mixin: the atmosphere limb, the ground tracks and the 2D map.

    The host provides the plotter, meta, the current header and arrays, the nodes' paint
    (``sats``), the selection, ``earth_fixed`` and ``redraw``. A group selection
    (``selected_group``, a ``meta.sats.groups`` name) tracks up to ``GROUP_TRACKS`` nodes
    of the group; otherwise the selected node's track is drawn.
    """

    GROUP_TRACKS = 64
    pl: Any
    meta: Mapping[str, Any] | None
    header: Mapping[str, Any]
    arrays: Mapping[str, np.ndarray]
    sats: Any
    sats_actor: Any
    selected: int
    n_sats: int
    earth_fixed: bool
    selected_group: str | None = None
    show_links: bool
    link_ends: tuple[np.ndarray, np.ndarray]
    link_rgb: np.ndarray
    redraw: Callable[[], None]

    def _build_map_layers(self, texture_path: Any) -> None:
        self.limb = earth_look.AtmosphereLimb(self.pl)
        self.ground_tracks = ground_track.GroundTrackLayer(self.pl)
        self.map_view = MapView(self.pl, texture_path, getattr(self, "text", None))
        self.cluster_view = ClusterView(self.pl, getattr(self, "text", None))

    def track_nodes(self) -> list[int]:
        """The nodes whose ground track is drawn: the selected group's, or the selected node."""
        groups = (self.meta or {}).get("sats", {}).get("groups")
        if self.selected_group is not None and groups is not None:
            members = np.flatnonzero(np.asarray(groups, dtype=object) == self.selected_group)
            return [int(i) for i in members[: self.GROUP_TRACKS]]
        return [self.selected] if 0 <= self.selected < self.n_sats else []

    def _draw_map_layers(self) -> None:
        """Ground tracks on the globe and everything on the map, for the current state."""
        track = self.ground_tracks.update(self.track_nodes(), self.arrays, self.header,
                                          self.earth_fixed)
        if self.map_view.active:  # the map costs nothing while the globe is shown
            self.map_view.update(self.header, self.arrays, self.sats.point_data["rgb"], track,
                                 self.selected)
        if self.cluster_view.active:  # nor does the cluster close-up
            names = (self.meta or {}).get("sats", {}).get("names", [])
            i, j = self.link_ends
            self.cluster_view.update(self.arrays, self.sats.point_data["rgb"], names,
                                     self.selected, (i, j, self.link_rgb), self.show_links)

    def toggle_ground_track(self) -> bool:
        """Ground tracks on / off. Returns whether they are now on."""
        self.ground_tracks.visible = not self.ground_tracks.visible
        self.redraw()
        return self.ground_tracks.visible

    def show_cluster(self, on: bool) -> None:
        """Show the cluster close-up (True) or the globe (False)."""
        self.cluster_view.show(on)
        self.limb.enabled = not on
        members = self.cluster_view.members_actor()
        self.pl.pickable_actors = [members if on and members is not None else self.sats_actor]
        self.redraw()

    def show_map(self, on: bool) -> None:
        """Show the 2D map (True) or the globe (False)."""
        self.map_view.show(on)
        self.limb.enabled = not on
        if not on:
            self.pl.pickable_actors = [self.sats_actor]
        self.redraw()


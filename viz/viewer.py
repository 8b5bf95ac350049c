"""The operator's 3D viewer: the fleet around a textured, Sun-lit, turning Earth (pyvista).

``FleetScene`` owns the VTK actors: built once from ``meta``, then updated in place from
each ``state`` through the pure functions of ``viz.scene``, ``viz.node_colours`` and
``viz.hud_text``. ``ViewerApp`` follows the stream (``viz.stream``), draws only the newest
frame, sends the operator's keys to the twin as commands, and keeps the HUD. Nothing here
models physics: every number comes from the stream.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from twin.core.assets import assets_dir
from twin.protocol.codec import Message
from viz import hud_text, node_colours, scene
from viz.checks import BadMessages, check_meta
from viz.mirror import MirrorBinding, mirror_bindings
from viz.quantity import Catalog
from viz.tui.forms import declared_range

log = logging.getLogger("odc.viz.viewer")

EARTH_TEXTURE = assets_dir() / "earth" / "land_ocean_ice_2048.jpg"

# Stations float this far above the ellipsoid so their markers never sink into the globe.
STATION_LIFT_KM = 30.0
# Vertical camera view angle, deg (VTK's default); the fit distance follows from it.
VIEW_ANGLE_DEG = 30.0
# The warp keys' range where meta.commands does not declare one (an old twin).
WARP_MIN, WARP_MAX = 1e-3, 100_000.0
# Above this many nodes the scene switches to cheaper marks (square points).
BIG_FLEET = 1000
# Trail vertices in all, the budget a CPU renderer draws in a few milliseconds.
TRAIL_POINTS = 30_000
HUD_COLOUR = (0.85, 0.92, 1.0)
ALARM_RGB = (1.0, 0.15, 0.1)
STATION_RGB = (1.0, 0.85, 0.2)
CONTACT_RGB = (0.3, 0.85, 0.45)
# Trails and contacts are opaque, in dim colours: any translucent actor costs a CPU
# renderer an extra pass over the whole frame.
TRAIL_RGB = (0.2, 0.27, 0.4)
# The selected node's full orbit: brighter than the trails, so it reads as "this one".
ORBIT_RGB = (0.55, 0.8, 1.0)
# The mirrored node's ring and tag: magenta, a hue neither the colour map nor the other
# marks use; orange once its telemetry is lost.
MIRROR_RGB = (1.0, 0.3, 1.0)
MIRROR_LOST_RGB = (1.0, 0.55, 0.1)
MIRROR_RING_PX = 14.0


def prefer_egl() -> None:
    """Render headless through EGL when no X display is available (call before VTK loads).

    Without it VTK first tries X, logs a warning, then falls back; with it, the Mesa EGL
    (llvmpipe on CPU-only machines) context opens directly.
    """
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")


@dataclass
class ViewOptions:
    """What the operator chose on the command line (and toggles with keys later).

    Attributes:
        field: Colour field name; None picks ``node_colours.default_field``.
        earth_fixed: Start in the Earth-fixed (ITRS) view instead of inertial (GCRS).
        trails: Draw orbit trails.
        orbit: Draw the selected node's full orbit (``scene.orbit_ring``).
        labels: Label stations and flagged nodes.
        camera_lat_deg, camera_lon_deg: Geographic point the camera starts above; None
            puts it 20 deg north, 50 deg west of the subsolar point (day side with the
            evening terminator in view).
        camera_distance_re: Camera distance from the Earth's centre in Earth radii; None
            fits the whole fleet.
        cmap: matplotlib colormap name.
        show_fps: Show the measured frame rate in the HUD (off for image tests).
        trail_span_s: Simulated time a trail spans (points: ``scene.trail_budget``).
    """

    field: str | None = None
    earth_fixed: bool = False
    trails: bool = True
    orbit: bool = True
    labels: bool = False
    camera_lat_deg: float | None = None
    camera_lon_deg: float | None = None
    camera_distance_re: float | None = None
    cmap: str = "turbo"
    show_fps: bool = True
    trail_span_s: float = 1440.0


def _text_actor(renderer: Any, x: float, y: float, *, size: int, halign: str = "left",
                valign: str = "top", colour: tuple[float, float, float] = HUD_COLOUR,
                bold: bool = False) -> Any:
    """A 2D text actor anchored at normalized viewport coordinates."""
    import vtk

    actor = vtk.vtkTextActor()
    actor.GetPositionCoordinate().SetCoordinateSystemToNormalizedViewport()
    actor.SetPosition(x, y)
    prop = actor.GetTextProperty()
    prop.SetFontFamilyToCourier()
    prop.SetFontSize(size)
    prop.SetColor(*colour)
    prop.SetBold(bold)
    prop.SetShadow(True)
    getattr(prop, f"SetJustificationTo{halign.capitalize()}")()
    getattr(prop, f"SetVerticalJustificationTo{valign.capitalize()}")()
    actor.PickableOff()
    renderer.AddViewProp(actor)
    return actor


def _ring_actor(renderer: Any, radius_px: float, colour: tuple[float, float, float]) -> Any:
    """A circle of ``radius_px`` pixels drawn over the scene around a world point.

    Its position coordinate is in world units (set with ``GetPositionCoordinate()``); the
    2D mapper offsets its pixel-space vertices by where that point lands on the screen.
    """
    import vtk

    circle = vtk.vtkRegularPolygonSource()
    circle.SetNumberOfSides(36)
    circle.SetRadius(radius_px)
    circle.SetCenter(0.0, 0.0, 0.0)
    circle.GeneratePolygonOff()
    circle.GeneratePolylineOn()
    mapper = vtk.vtkPolyDataMapper2D()
    mapper.SetInputConnection(circle.GetOutputPort())
    actor = vtk.vtkActor2D()
    actor.SetMapper(mapper)
    actor.GetPositionCoordinate().SetCoordinateSystemToWorld()
    prop = actor.GetProperty()
    prop.SetColor(*colour)
    prop.SetLineWidth(2.5)
    actor.PickableOff()
    renderer.AddViewProp(actor)
    return actor


def _stars(n: int = 1500, radius_km: float = 150_000.0) -> Any:
    """A fixed, seeded star field in the inertial frame (decoration only)."""
    import pyvista as pv

    rng = np.random.default_rng(7)
    v = rng.normal(size=(n, 3))
    v *= radius_km / np.linalg.norm(v, axis=1, keepdims=True)
    mesh = pv.PolyData(v.astype(np.float32))
    brightness = (rng.power(4.0, n) * 200 + 40).astype(np.uint8)
    mesh.point_data["rgb"] = np.repeat(brightness[:, None], 3, axis=1)
    return mesh


class FleetScene:
    """The scene's actors, sized from ``meta`` once, updated in place per ``state``."""

    def __init__(self, plotter: Any, options: ViewOptions, texture_path: Path = EARTH_TEXTURE):
        import pyvista as pv

        self.pl = plotter
        self.options = options
        self.earth_fixed = options.earth_fixed
        self.show_trails = options.trails
        self.show_orbit = options.orbit
        self.show_labels = options.labels
        self.mirrors: list[MirrorBinding] = []
        self._mirror_actors: list[tuple[Any, Any]] = []
        self.table = node_colours.colormap_table(options.cmap)
        self.meta: Mapping[str, Any] | None = None
        # How every field and fleet total reads (meta's catalogs), for the HUD and the bar.
        self.catalog = Catalog()
        self.fields: list[node_colours.ColourField] = []
        self.field: node_colours.ColourField | None = None
        # An enum's codes and their colours (None for a quantity: a colour range instead).
        self.categories: tuple[list[int], np.ndarray] | None = None
        self.clim: tuple[float, float] | None = None
        self.selected = -1
        self.header: Mapping[str, Any] = {}
        self.arrays: Mapping[str, np.ndarray] = {}
        self.alarms = np.zeros(0, dtype=bool)
        self.n_sats = 0
        self._camera_set = False

        # No multisampling: on Mesa llvmpipe (CPU) 4x MSAA costs more than the whole scene.
        self.pl.ren_win.SetMultiSamples(0)
        self.pl.set_background("black")
        # A twin may have no ground stations (or, briefly, no nodes): empty meshes are fine.
        self.pl.theme.allow_empty_mesh = True
        # The globe is lit by the Sun through per-vertex shading (scene.earth_shading,
        # recomputed each frame from the Sun's true direction): the terminator falls where
        # it really is whatever the camera does. Nothing else is lit: node colours are data.
        self.pl.remove_all_lights()

        # 5 deg cells: on a CPU rasterizer the globe costs by its triangles more than by
        # its pixels, and at 1280x720 the silhouette still deviates by under a pixel.
        grid = scene.earth_grid(36, 72)
        earth = pv.PolyData(grid.points_km.astype(np.float32), grid.faces)
        # The ellipsoid's outward normal at geodetic (lat, lon) is known exactly.
        lat, lon = np.radians(grid.lat_deg), np.radians(grid.lon_deg)
        self.earth_normals = np.stack(
            [np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=1
        ).astype(np.float32)
        earth.active_texture_coordinates = grid.tcoords.astype(np.float32)
        earth.point_data["shade"] = scene.earth_shading(self.earth_normals,
                                                        np.array([1.0, 0.0, 0.0], np.float32))
        self.earth = earth
        texture = pv.read_texture(str(texture_path))
        # Linear filtering without mipmaps: mipmapping doubles the globe's cost on llvmpipe.
        texture.interpolate = True
        # The texture is multiplied by the per-vertex Sun shading (VTK modulates them).
        self.earth_actor = self.pl.add_mesh(
            earth, texture=texture, scalars="shade", rgb=True, lighting=False, pickable=False,
            name="earth", reset_camera=False,
        )
        self.stars = _stars()
        self.stars_actor = self.pl.add_mesh(
            self.stars, scalars="rgb", rgb=True, point_size=1.5, lighting=False,
            pickable=False, reset_camera=False, name="stars",
        )
        self.hud_top = _text_actor(self.pl.renderer, 0.01, 0.985, size=15, bold=True)
        self.hud_fleet = _text_actor(self.pl.renderer, 0.99, 0.985, size=13, halign="right")
        self.hud_node = _text_actor(self.pl.renderer, 0.01, 0.015, size=13, valign="bottom")
        self.hud_events = _text_actor(self.pl.renderer, 0.5, 0.015, size=12, halign="centered",
                                      valign="bottom", colour=(1.0, 0.8, 0.5))
        self.hud_help = _text_actor(self.pl.renderer, 0.5, 0.5, size=15, halign="centered",
                                    valign="centered", colour=(1.0, 1.0, 1.0))
        self.hud_help.SetVisibility(False)
        self._fleet_actors: list[Any] = []

    # ------------------------------------------------------------------ building
    def build(self, meta: Mapping[str, Any]) -> None:
        """(Re)build everything sized by the fleet: satellites, stations, trails, bar."""
        import pyvista as pv

        for name in ("sats", "alarms", "selected", "stations", "contacts", "trails", "orbit"):
            self.pl.remove_actor(name, reset_camera=False, render=False)
        self.meta = meta
        self.catalog = Catalog(meta)
        n = int(meta.get("sats", {}).get("n", len(meta.get("sats", {}).get("names", []))))
        self.n_sats = n
        self.fields = node_colours.colour_fields(meta)
        names = [f.name for f in self.fields]
        wanted = self.field.name if self.field else self.options.field
        if wanted not in names:
            wanted = node_colours.default_field(self.fields)
        self.field = next((f for f in self.fields if f.name == wanted), None)
        self.clim = None
        self.selected = min(self.selected, n - 1)
        zeros = np.zeros((n, 3), dtype=np.float32)

        self.sats = pv.PolyData(zeros.copy())
        self.sats.point_data["rgb"] = np.full((n, 3), 200, dtype=np.uint8)
        # Small fleets get round sprites; thousands of nodes get plain square points, which
        # cost a CPU rasterizer a fraction of the sprites' per-pixel shading.
        big = n > BIG_FLEET
        self.sats_actor = self.pl.add_mesh(
            self.sats, scalars="rgb", rgb=True, point_size=5 if big else 8,
            render_points_as_spheres=not big, lighting=False, name="sats", reset_camera=False,
        )
        # Flags are flat squares drawn at the node's centre depth: the node's sphere
        # sprite is nearer the camera, so it stays visible inside its red frame.
        self.alarm_mesh = pv.PolyData(np.zeros((1, 3), np.float32))
        self.pl.add_mesh(self.alarm_mesh, color=ALARM_RGB, point_size=15, lighting=False,
                         render_points_as_spheres=False, pickable=False, name="alarms",
                         reset_camera=False)
        self.selected_mesh = pv.PolyData(np.zeros((1, 3), dtype=np.float32))
        self.selected_actor = self.pl.add_mesh(
            self.selected_mesh, color="white", point_size=19, lighting=False,
            render_points_as_spheres=False, pickable=False, name="selected", reset_camera=False,
            style="points",
        )
        stations = meta.get("stations", [])
        self.station_itrs = scene.geodetic_to_itrs_km(
            [s.get("lat_deg", 0.0) for s in stations], [s.get("lon_deg", 0.0) for s in stations],
            [s.get("alt_m", 0.0) / 1000.0 + STATION_LIFT_KM for s in stations],
        ).reshape(-1, 3)
        self.station_mesh = pv.PolyData(self.station_itrs.astype(np.float32))
        # Names stay in Python: VTK string arrays take ASCII only ("São Paulo" would not do).
        self.station_names = [str(s.get("name", "?")) for s in stations]
        self.pl.add_mesh(self.station_mesh, color=STATION_RGB, point_size=10, lighting=False,
                         render_points_as_spheres=True, pickable=False, name="stations",
                         reset_camera=False)
        # A degenerate segment at the Earth's centre stands in for "no contacts": VTK
        # meshes may not be empty.
        self.contacts = pv.PolyData(np.zeros((2, 3), np.float32), lines=[2, 0, 1])
        self.pl.add_mesh(self.contacts, color=CONTACT_RGB, line_width=1.5, lighting=False,
                         pickable=False, name="contacts", reset_camera=False)
        length, interval_s = scene.trail_budget(n, TRAIL_POINTS, self.options.trail_span_s)
        self.trail_buffer = scene.TrailBuffer(n, length, interval_s)
        self.trails = pv.PolyData(np.zeros((n * length, 3), np.float32),
                                  lines=self.trail_buffer.lines())
        self.trails_actor = self.pl.add_mesh(
            self.trails, color=TRAIL_RGB, line_width=1, lighting=False,
            pickable=False, name="trails", reset_camera=False,
        )
        self.trails_actor.SetVisibility(self.show_trails)
        ring = np.zeros((scene.ORBIT_RING_POINTS, 3), np.float32)
        self.orbit = pv.PolyData(ring, lines=np.r_[len(ring), np.arange(len(ring))])
        self.orbit_actor = self.pl.add_mesh(
            self.orbit, color=ORBIT_RGB, line_width=1.5, lighting=False, pickable=False,
            name="orbit", reset_camera=False,
        )
        self.orbit_actor.SetVisibility(False)
        self._build_mirrors(meta)
        self._build_colour_bar()
        self._build_labels()
        self.pl.pickable_actors = [self.sats_actor]

    def _build_mirrors(self, meta: Mapping[str, Any]) -> None:
        """A ring and a tag per mirrored node (few: one per testbed binding).

        Both are overlays anchored at the node's world position: the operator finds the
        mirrored node even when it is behind the globe.
        """
        for ring, tag in self._mirror_actors:
            self.pl.renderer.RemoveViewProp(ring)
            self.pl.renderer.RemoveViewProp(tag)
        self.mirrors = [b for b in mirror_bindings(meta) if 0 <= b.sat < self.n_sats]
        self._mirror_actors = []
        for _ in self.mirrors:
            ring = _ring_actor(self.pl.renderer, MIRROR_RING_PX, MIRROR_RGB)
            tag = _text_actor(self.pl.renderer, 0.0, 0.0, size=13, valign="top",
                              colour=MIRROR_RGB, bold=True)
            tag.GetPositionCoordinate().SetCoordinateSystemToWorld()
            self._mirror_actors.append((ring, tag))
        # With nothing chosen yet, start on the mirrored node: it is why a mirror runs.
        if self.selected < 0 and self.mirrors:
            self.selected = self.mirrors[0].sat

    def _build_colour_bar(self) -> None:
        """A hidden one-point mesh hosts the lookup table that the colour bar shows."""
        import pyvista as pv

        self.pl.remove_actor("colour_bar_host", reset_camera=False, render=False)
        if self.pl.scalar_bars:
            self.pl.remove_scalar_bar()
        self.categories = None
        if self.field is None:
            return
        host = pv.PolyData(np.zeros((1, 3), dtype=np.float32))
        host["value"] = np.zeros(1)
        title = hud_text.scalar_bar_title(self.field)
        # The bar shows the same table the nodes are painted with (floor included).
        import matplotlib.colors

        cmap = matplotlib.colors.ListedColormap(self.table / 255.0)
        self.bar_host = self.pl.add_mesh(
            host, scalars="value", cmap=cmap, clim=(0.0, 1.0), name="colour_bar_host",
            pickable=False, reset_camera=False, n_colors=256,
            scalar_bar_args={
                "title": title, "vertical": True, "position_x": 0.89, "position_y": 0.1,
                "width": 0.05, "height": 0.5, "title_font_size": 15, "label_font_size": 12,
                "color": "white", "fmt": "%.4g", "n_labels": 5, "font_family": "courier",
            },
        )
        self.bar_host.SetVisibility(False)
        self.bar = self.pl.scalar_bars[title]
        self.bar.SetDrawAnnotations(True)
        self.bar.SetAnnotationTextScaling(False)
        self.bar.GetAnnotationTextProperty().SetFontSize(12)
        self.bar.GetAnnotationTextProperty().SetColor(1.0, 0.6, 0.4)
        self.categories = node_colours.category_colours(self.field, self.table) \
            if self.field.categorical else None
        if self.categories is not None:
            self._category_bar(*self.categories)

    def _category_bar(self, codes: list[int], colours: np.ndarray) -> None:
        """An enum's bar: one swatch per code the catalog names, with its name beside it."""
        import vtk

        lut = vtk.vtkLookupTable()
        lut.IndexedLookupOn()
        lut.SetNumberOfTableValues(max(len(codes), 1))
        for i, (code, rgb) in enumerate(zip(codes, colours, strict=True)):
            lut.SetTableValue(i, *(float(c) / 255.0 for c in rgb), 1.0)
            lut.SetAnnotation(vtk.vtkVariant(float(code)), self.field.reads.label_of(code))
        self.bar_host.GetMapper().SetLookupTable(lut)
        self.bar.SetLookupTable(lut)
        self.bar.GetAnnotationTextProperty().SetColor(1.0, 1.0, 1.0)

    def _update_colour_bar(self) -> None:
        if self.field is None or self.clim is None or self.categories is not None:
            return
        mapper = self.bar_host.GetMapper()
        lut = mapper.GetLookupTable()
        # The bar reads in the display unit (°C, %, kW), as the HUD and the dashboard do;
        # the nodes are painted from the wire values with the same range.
        typical = max(abs(self.clim[0]), abs(self.clim[1]))
        shown = self.field.reads.scale_for(typical)
        bar_range = tuple(sorted(float(shown.convert(v)) for v in self.clim))
        if tuple(mapper.GetScalarRange()) != bar_range:
            mapper.SetScalarRange(*bar_range)
            lut.SetRange(*bar_range)
            lut.ResetAnnotations()
            # Mark the published limits on the bar (only those inside its range show).
            for key, value in sorted(self.field.limits.items()):
                lut.SetAnnotation(float(shown.convert(value)), key.replace("_", " "))
            self.bar.SetTitle(hud_text.scalar_bar_title(self.field, typical))

    def _label(self, text: str, colour: tuple[float, float, float], size: int) -> Any:
        """A camera-facing text label in the scene (cheap: no label-placement pass)."""
        import vtk

        actor = vtk.vtkBillboardTextActor3D()
        actor.SetInput(text)
        prop = actor.GetTextProperty()
        prop.SetFontFamilyToCourier()
        prop.SetFontSize(size)
        prop.SetColor(*colour)
        prop.SetShadow(True)
        prop.SetVerticalJustificationToCentered()
        actor.SetDisplayOffset(10, 0)
        actor.PickableOff()
        self.pl.renderer.AddViewProp(actor)
        return actor

    def _build_labels(self) -> None:
        for actor in getattr(self, "_label_actors", []):
            self.pl.renderer.RemoveViewProp(actor)
        # The selected node's name is an overlay anchored at its world position: never
        # hidden behind the globe or other nodes.
        self.selected_label = _text_actor(self.pl.renderer, 0.0, 0.0, size=14, valign="centered",
                                          colour=(1.0, 1.0, 1.0), bold=True)
        self.selected_label.GetPositionCoordinate().SetCoordinateSystemToWorld()
        self.selected_label.SetVisibility(False)
        self.station_labels = []
        if self.show_labels and self.station_mesh.n_points:
            names = self.station_names
            self.station_labels = [self._label(str(name), STATION_RGB, 12) for name in names]
        self._label_actors = [self.selected_label, *self.station_labels]

    # ------------------------------------------------------------------ per state
    def update(self, state: Message) -> bool:
        """Write a state into the actors. Returns False if it does not fit the scene.

        Arrays of another shape than the scene's fleet are left out (drawn as no data);
        should drawing fail all the same, the previous state stays the scene's.
        """
        arrays, header = state.arrays, state.header
        n = self.n_sats
        pos, pos_itrs = arrays.get("pos_gcrs_km"), arrays.get("pos_itrs_km")
        if self.meta is None or pos is None or pos.shape != (n, 3) or pos_itrs is None \
                or pos_itrs.shape != (n, 3):
            return False
        previous = self.header, self.arrays
        self.header, self.arrays = header, arrays
        try:
            self.trail_buffer.push(state.t_utc, pos, pos_itrs)
            self._draw()
        except Exception:
            self.header, self.arrays = previous
            raise
        return True

    def _draw(self) -> None:
        """Positions, colours, flags and geometry for the current header and arrays."""
        header, arrays, ef = self.header, self.arrays, self.earth_fixed
        if not arrays:
            return
        # Arrays are written into the meshes' own buffers (no reallocation), then marked
        # modified so VTK uploads them on the next render.
        points = scene.sat_positions(arrays, ef, out=self.sats.points)
        self.sats.GetPoints().Modified()
        rgb = self.sats.point_data["rgb"]
        values = arrays.get(self.field.name) if self.field is not None else None
        if values is not None and values.shape == (self.n_sats,) and self.categories:
            node_colours.category_rgb(values, *self.categories, out=rgb)
        elif values is not None and values.shape == (self.n_sats,):
            self.clim = node_colours.colour_range(self.field, values, self.clim)
            node_colours.field_rgb(values, self.clim, self.table, out=rgb)
        else:
            rgb[:] = node_colours.NO_DATA_RGB
        sunlit = arrays.get("sunlit_frac")
        node_colours.eclipse_dim(rgb, sunlit if sunlit is not None
                                 and sunlit.shape == (self.n_sats,) else None)
        self.sats.GetPointData().GetArray("rgb").Modified()
        self._update_colour_bar()

        self.alarms = node_colours.alarm_mask(arrays, self.fields, self.n_sats)
        flagged = points[self.alarms]
        # Only flagged nodes are drawn; a point at the (hidden) centre stands for none.
        self.alarm_mesh.points = flagged if len(flagged) else np.zeros((1, 3), np.float32)
        self.alarm_mesh.verts = np.hstack([np.ones((len(self.alarm_mesh.points), 1), int),
                                           np.arange(len(self.alarm_mesh.points))[:, None]])

        matrix = scene.earth_matrix(header, ef)
        self.earth_actor.user_matrix = matrix
        # Stars are inertial: in the Earth-fixed view they turn with M.
        star_matrix = np.eye(4)
        if ef:
            star_matrix[:3, :3] = scene.gcrs_to_itrs(header)
        self.stars_actor.user_matrix = star_matrix
        sun_itrs = scene.sun_direction(header, earth_fixed=True).astype(np.float32)
        scene.earth_shading(self.earth_normals, sun_itrs, out=self.earth.point_data["shade"])
        self.earth.GetPointData().GetArray("shade").Modified()

        stations = scene.itrs_to_view(self.station_itrs, header, ef).astype(np.float32)
        if len(stations):
            self.station_mesh.points = stations
        for label, xyz in zip(self.station_labels, stations, strict=False):
            label.SetPosition(*xyz)
        in_contact = arrays.get("in_contact")
        if in_contact is not None and in_contact.shape == (len(stations), self.n_sats):
            seg_points, seg_lines = scene.contact_segments(in_contact, stations, points)
        else:
            seg_points, seg_lines = np.zeros((0, 3), np.float32), np.zeros(0, np.int64)
        if not len(seg_points):
            seg_points, seg_lines = np.zeros((2, 3), np.float32), np.array([2, 0, 1])
        self.contacts.points = seg_points
        self.contacts.lines = seg_lines

        if self.show_trails:
            self.trail_buffer.points(ef, out=self.trails.points)
            self.trails.GetPoints().Modified()
        self._draw_selected(points)
        self._draw_orbit()
        self._draw_mirrors(points)

    def _draw_orbit(self) -> None:
        """The selected node's osculating orbit ring, in the current view frame."""
        ring = None
        vel = self.arrays.get("vel_gcrs_km_s")
        pos = self.arrays.get("pos_gcrs_km")
        if self.show_orbit and 0 <= self.selected < self.n_sats and vel is not None \
                and pos is not None and vel.shape == pos.shape:
            ring = scene.orbit_ring(pos[self.selected], vel[self.selected])
        self.orbit_actor.SetVisibility(ring is not None)
        if ring is not None:
            self.orbit.points[:] = scene.gcrs_to_view(ring, self.header, self.earth_fixed)
            self.orbit.GetPoints().Modified()

    def _draw_mirrors(self, points: np.ndarray) -> None:
        for binding, (ring, tag) in zip(self.mirrors, self._mirror_actors, strict=True):
            xyz = tuple(map(float, points[binding.sat]))
            # A node without a position sits at the Earth's centre: no overlay there.
            placed = any(xyz)
            ring.SetVisibility(placed)
            tag.SetVisibility(placed)
            colour = MIRROR_RGB if hud_text.mirror_live(self.arrays, binding) else MIRROR_LOST_RGB
            ring.GetPositionCoordinate().SetValue(*xyz)
            ring.GetProperty().SetColor(*colour)
            tag.GetPositionCoordinate().SetValue(*xyz)
            tag.GetTextProperty().SetColor(*colour)
            # A line below the node: clear of the selected node's name beside it.
            text = f"\n   {hud_text.mirror_tag(self.arrays, binding)}"
            if tag.GetInput() != text:
                tag.SetInput(text)

    def _draw_selected(self, points: np.ndarray) -> None:
        visible = 0 <= self.selected < self.n_sats
        self.selected_actor.SetVisibility(visible)
        self.selected_label.SetVisibility(visible)
        if visible:
            self.selected_mesh.points = points[self.selected: self.selected + 1].copy()
            self.selected_label.GetPositionCoordinate().SetValue(*map(float,
                                                                      points[self.selected]))
            names = (self.meta or {}).get("sats", {}).get("names", [])
            name = names[self.selected] if self.selected < len(names) else "?"
            if self.selected_label.GetInput() != f"   {name}":
                self.selected_label.SetInput(f"   {name}")

    # ------------------------------------------------------------------ controls
    def redraw(self) -> None:
        """Redraw the last state (after a toggle), without waiting for the next one."""
        if self.arrays:
            self._draw()

    def cycle_field(self, step: int = 1) -> str | None:
        if not self.fields:
            return None
        names = [f.name for f in self.fields]
        i = names.index(self.field.name) if self.field in self.fields else -1
        self.field = self.fields[(i + step) % len(self.fields)]
        self.clim = None
        self._build_colour_bar()
        self.redraw()
        return self.field.name

    def set_earth_fixed(self, earth_fixed: bool) -> None:
        self.earth_fixed = earth_fixed
        self.redraw()
        self._camera_set = False

    def toggle_trails(self) -> None:
        self.show_trails = not self.show_trails
        self.trails_actor.SetVisibility(self.show_trails)
        self.redraw()

    def toggle_orbit(self) -> None:
        self.show_orbit = not self.show_orbit
        self.redraw()

    def select_mirror(self) -> int:
        """Select the next mirrored node (the first, or the one after the selected one).

        Returns:
            The selected node, or -1 when the twin mirrors none.
        """
        sats = [b.sat for b in self.mirrors]
        if not sats:
            return -1
        following = sats.index(self.selected) + 1 if self.selected in sats else 0
        self.select(sats[following % len(sats)])
        return self.selected

    def toggle_labels(self) -> None:
        self.show_labels = not self.show_labels
        self._build_labels()
        self.redraw()

    def select(self, index: int) -> None:
        self.selected = index if 0 <= index < self.n_sats else -1
        self.redraw()

    def _mirror_camera_direction(self) -> np.ndarray | None:
        """With a mirror, the camera starts over the mirrored node, its orbit in view."""
        if not self.mirrors:
            return None
        sat = self.mirrors[0].sat
        pos, vel = self.arrays.get("pos_gcrs_km"), self.arrays.get("vel_gcrs_km_s")
        if pos is None:
            return None
        direction = scene.camera_direction_over(
            pos[sat], None if vel is None else vel[sat],
            toward=scene.sun_direction(self.header, earth_fixed=False))
        if direction is None:
            return None
        return scene.gcrs_to_view(direction, self.header, self.earth_fixed)

    def set_camera(self, force: bool = False) -> None:
        """Put the camera above a geographic point, far enough to see the whole fleet."""
        if (self._camera_set and not force) or not self.arrays:
            return
        o = self.options
        direction = None
        if o.camera_lat_deg is None and o.camera_lon_deg is None:
            direction = self._mirror_camera_direction()
        if direction is None:
            lat = 20.0 if o.camera_lat_deg is None else o.camera_lat_deg
            if o.camera_lon_deg is None:
                lon = scene.subsolar_point_deg(self.header)[1] - 50.0
            else:
                lon = o.camera_lon_deg
            direction = scene.itrs_to_view(scene.geodetic_to_itrs_km(lat, lon), self.header,
                                           self.earth_fixed)
            direction /= np.linalg.norm(direction)
        if o.camera_distance_re is not None:
            distance = o.camera_distance_re * scene.WGS84_A_KM
        else:
            radius = np.linalg.norm(self.sats.points, axis=1)
            r_max = float(np.max(radius, initial=scene.WGS84_A_KM * 1.1))
            r_max = min(r_max, 60_000.0)
            distance = 1.1 * r_max / math.sin(math.radians(VIEW_ANGLE_DEG / 2.0))
        up = (0.0, 0.0, 1.0) if abs(direction[2]) < 0.98 else (0.0, 1.0, 0.0)
        camera = self.pl.camera
        camera.position = tuple(direction * distance)
        camera.focal_point = (0.0, 0.0, 0.0)
        camera.up = up
        camera.view_angle = VIEW_ANGLE_DEG
        self.pl.renderer.ResetCameraClippingRange()
        self._camera_set = True


KEYS_HELP = (
    ("space", "pause / resume the twin"),
    ("] / [", "warp x2 / warp /2"),
    (".", "single step (pauses first)"),
    ("c", "next colour field"),
    ("n / N", "next / previous node"),
    ("click", "select the node under the cursor"),
    ("t", "trails on / off"),
    ("O", "selected node's full orbit on / off"),
    ("g", "go to the mirrored node (testbed)"),
    ("l", "labels on / off"),
    ("i", "inertial / Earth-fixed view"),
    ("o", "reset camera"),
    ("h", "this help"),
    ("q", "quit"),
)


class ViewerApp:
    """Follows the stream, draws the newest state, and turns keys into twin commands.

    Args:
        plotter: A pyvista Plotter (on or off screen).
        stream: A ``viz.stream.StreamClient`` (or None for a static scene in tests).
        commands: A ``viz.stream.CommandClient`` (or None: keys that command are ignored).
        options: View options.
    """

    def __init__(self, plotter: Any, stream: Any, commands: Any, options: ViewOptions) -> None:
        self.pl = plotter
        self.stream = stream
        self.commands = commands
        self.options = options
        self.scene = FleetScene(plotter, options)
        self.meta: Mapping[str, Any] | None = None
        self.meta_signature: tuple | None = None
        self.frames_drawn = 0
        self.states_received = 0
        self.states_skipped = 0
        self.rejected_states = 0
        self.events: deque[str] = deque(maxlen=4)
        # Messages the scene could not take (the stream counts the ones it refused).
        self.unusable = BadMessages(log)
        self.message = ""
        self._frame_times: deque[float] = deque(maxlen=60)
        self._last_meta_request = -math.inf
        self._last_hud = -math.inf
        self.last_receive_wall = math.nan
        self.latencies_s: deque[float] = deque(maxlen=10_000)
        self.keys: dict[str, tuple[str, Callable[[], None]]] = {
            "space": ("pause/resume", self.toggle_pause),
            "bracketright": ("warp up", lambda: self.change_warp(2.0)),
            "bracketleft": ("warp down", lambda: self.change_warp(0.5)),
            "period": ("step", self.single_step),
            "c": ("colour field", self.cycle_field),
            "n": ("next node", lambda: self.cycle_node(1)),
            "N": ("previous node", lambda: self.cycle_node(-1)),
            "t": ("trails", self.scene.toggle_trails),
            "O": ("orbit", self.scene.toggle_orbit),
            "g": ("mirrored node", self.go_to_mirror),
            "l": ("labels", self.scene.toggle_labels),
            "i": ("view", self.toggle_view),
            "o": ("reset camera", lambda: self.scene.set_camera(force=True)),
            "h": ("help", self.toggle_help),
        }
        for key, (_, handler) in self.keys.items():
            plotter.add_key_event(key, self._wrap(handler))
        plotter.add_key_event("q", self.quit)
        self.scene.hud_help.SetInput(
            "KEYS\n\n" + "\n".join(f"{k:>7s}  {what}" for k, what in KEYS_HELP))
        self._running = True
        self._shown = False
        # The twin's clock as last heard (state header or heartbeat): paused, warp.
        self.clock: dict[str, Any] = {}

    def _wrap(self, handler: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            # A failing key must never take the viewer down; say what went wrong.
            try:
                handler()
            except Exception as exc:
                log.exception("key handler failed")
                self.message = f"error: {exc}"
            self.refresh_hud(force=True)
            self.render()

        return run

    def render(self) -> None:
        """Render now. Off screen, pyvista renders nothing before ``show``: show once first."""
        if self.pl.off_screen and not self._shown:
            self._shown = True
            self.pl.show(auto_close=False, interactive=False)
        self.pl.render()

    # ------------------------------------------------------------------ stream
    def tick(self, timeout_ms: float = 0.0) -> bool:
        """Take what arrived; draw the newest state. Returns whether a frame was drawn."""
        drawn = False
        if self.stream is not None:
            batch = self.stream.poll(timeout_ms)
            now = time.monotonic()
            drawn = self.take(batch)
            if drawn:
                self.render()
                self.latencies_s.append(time.monotonic() - now)
            if self.meta is None:
                self.request_meta()
        self.refresh_hud(force=drawn)
        return drawn

    def take(self, batch: Any) -> bool:
        """Apply one `viz.stream.Batch` to the scene, without rendering.

        Each message is taken on its own: one the scene cannot use is counted in
        :attr:`unusable` and shown in the HUD, and the ones after it are taken as usual.

        Returns:
            Whether a state was drawn into the scene.
        """
        if batch.restarted:
            self.message = "twin restarted"
            if self.meta:
                self.scene.trail_buffer.reset()
            self.request_meta()
        if batch.meta is not None:
            self._guarded("meta", self.apply_meta, batch.meta.header)
        if batch.heartbeat is not None:
            # Paused twins publish no states; heartbeats still say paused and warp.
            self._take_clock(batch.heartbeat.header)
        for event in batch.events:
            self._guarded("event", self.add_event, event.header)
        self.states_skipped += batch.states_skipped
        if batch.state is None:
            return False
        self.states_received += 1 + batch.states_skipped
        self.last_receive_wall = time.monotonic()
        return bool(self._guarded("state", self.apply_state, batch.state))

    def _guarded(self, topic: str, take: Callable[[Any], Any], message: Any) -> Any:
        """``take(message)``; an exception is counted as a bad message, never raised."""
        try:
            return take(message)
        except Exception as exc:
            self.unusable.add(f"unusable_{topic}",
                              f"{topic} not drawn ({type(exc).__name__}: {exc})")
            return None

    def _take_clock(self, header: Mapping[str, Any]) -> None:
        """``paused`` and ``warp`` from a state or heartbeat header (checked by the stream)."""
        paused, warp = header.get("paused"), header.get("warp")
        if isinstance(paused, bool):
            self.clock["paused"] = paused
        if isinstance(warp, int | float) and not isinstance(warp, bool) and \
                0 < warp < math.inf:
            self.clock["warp"] = float(warp)

    @property
    def bad_messages(self) -> int:
        """Stream messages dropped as bad: by the stream's checks and by the scene."""
        stream_bad = self.stream.bad.count if self.stream is not None else 0
        return stream_bad + self.unusable.count

    @property
    def last_bad(self) -> str:
        """Why the newest bad message was dropped (shortened), or ``""``."""
        stream_bad = self.stream.bad if self.stream is not None else None
        if stream_bad is None or (self.unusable.count and
                                  self.unusable.last_wall >= stream_bad.last_wall):
            return self.unusable.last
        return stream_bad.last

    def request_meta(self, force: bool = False) -> None:
        """Ask the twin for meta (at most every 2 s), so a late joiner draws at once."""
        now = time.monotonic()
        if self.commands is None or (not force and now - self._last_meta_request < 2.0):
            return
        self._last_meta_request = now
        reply = self.commands.send("meta")
        if reply.get("ok") and isinstance(reply.get("meta"), dict):
            self._guarded("meta", self.apply_meta, reply["meta"])

    def apply_meta(self, meta: Mapping[str, Any]) -> None:
        """Rebuild the scene only if the fleet, stations or field catalog changed.

        Raises:
            WireError: for a meta that `viz.checks.check_meta` refuses (nothing changes).
        """
        check_meta(meta)
        sats = meta.get("sats", {})
        signature = (
            meta.get("scenario", {}).get("name"), sats.get("n"), tuple(sats.get("ids", ())),
            tuple(s.get("name") for s in meta.get("stations", [])),
            tuple((f.get("name"), tuple(f.get("shape", ())), repr(f.get("limits")),
                   repr(f.get("display")), f.get("kind")) for f in meta.get("fields", [])),
        )
        self.meta = meta
        self.scene.catalog = Catalog(meta)  # display rules may change without a rebuild
        if signature != self.meta_signature:
            self.meta_signature = signature
            self.scene.build(meta)
            log.info("scene built for %s (%s sats)", signature[0], signature[1])

    def apply_state(self, state: Message, *, connection: str | None = None) -> bool:
        if self.meta is None:
            return False
        if not self.scene.update(state):
            self.rejected_states += 1
            self.request_meta()  # probably a new scenario: ask what it is
            return False
        self._take_clock(state.header)
        self.scene.set_camera()
        self.frames_drawn += 1
        self._frame_times.append(time.monotonic())
        self.refresh_hud(force=True, connection=connection)
        return True

    def add_event(self, header: Mapping[str, Any]) -> None:
        """Keep the last few warnings and alarms (and all mirror news) for the HUD."""
        if header.get("severity") in ("warning", "alarm") or \
                str(header.get("kind", "")).startswith("mirror_"):
            stamp = hud_text.utc_text(float(header.get("t_utc", 0.0)))[11:19]
            # Limit alarms read from their values in display units (°C, %), not kelvin.
            self.events.append(f"{stamp} {header.get('severity', '').upper()}: "
                               f"{self.scene.catalog.event_text(header)}")

    # ------------------------------------------------------------------ HUD
    @property
    def fps(self) -> float:
        times = self._frame_times
        if len(times) < 5 or times[-1] == times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])

    def refresh_hud(self, force: bool = False, connection: str | None = None) -> None:
        now = time.monotonic()
        if not force and now - self._last_hud < 0.5:
            return
        self._last_hud = now
        s = self.scene
        if connection is None:
            connection = self.stream.connection if self.stream is not None else "LIVE"
        header = s.header or {}
        if not header:
            where = self.stream.address if self.stream is not None else "?"
            lines = [f"ODC Twin — {connection}", f"waiting for the twin at {where}"]
            lines += hud_text.bad_lines(self.bad_messages, self.last_bad)
            s.hud_top.SetInput("\n".join(lines))
            return
        lines = hud_text.status_lines(
            {**header, **self.clock}, self.meta, connection, earth_fixed=s.earth_fixed,
            missed=self.stream.missed if self.stream is not None else 0,
            restarts=self.stream.restarts if self.stream is not None else 0,
            fps=self.fps if self.options.show_fps else None,
            bad=self.bad_messages, last_bad=self.last_bad,
        )
        if s.field is not None:
            lines.append(f"colour: {s.field.reads.label()} ({s.field.name})")
        for binding in s.mirrors:
            lines.append(f"{hud_text.mirror_tag(s.arrays, binding)} on "
                         f"{hud_text.node_name(self.meta, binding.sat)}   g: go to")
        if self.message:
            lines.append(self.message)
        lines.append("h: keys")
        s.hud_top.SetInput("\n".join(lines).translate(hud_text.HUD_GLYPHS))
        n_flagged = int(np.count_nonzero(s.alarms))
        s.hud_fleet.SetInput("\n".join(hud_text.fleet_lines(
            header.get("fleet", {}), n_flagged, catalog=s.catalog)).translate(hud_text.HUD_GLYPHS))
        mirror = hud_text.mirror_lines(self.meta, s.arrays, s.selected)
        # The panel keeps its height: mirror lines take the place of the last fields.
        node = hud_text.node_lines(self.meta or {}, s.arrays, s.selected, s.fields,
                                max_lines=max(18 - len(mirror), 6), colour=s.field)
        if mirror:
            # Measured beside predicted first: on a mirrored node it is the point.
            node = node[:1] + mirror + node[1:]
        s.hud_node.SetInput("\n".join(node).translate(hud_text.HUD_GLYPHS))
        s.hud_events.SetInput("\n".join(self.events).translate(hud_text.HUD_GLYPHS))

    # ------------------------------------------------------------------ keys
    def _command(self, cmd: str, **arguments: Any) -> dict[str, Any]:
        if self.commands is None:
            self.message = f"{cmd}: no command connection"
            return {"ok": False}
        reply = self.commands.send(cmd, **arguments)
        detail = " ".join(f"{k}={v}" for k, v in arguments.items())
        self.message = f"{cmd} {detail}: " + ("ok" if reply.get("ok") else reply.get("error", "?"))
        return reply

    def toggle_pause(self) -> None:
        reply = self._command("resume" if self.clock.get("paused") else "pause")
        if reply.get("ok"):
            self.clock["paused"] = not self.clock.get("paused")

    def change_warp(self, factor: float) -> None:
        """Warp times ``factor``, kept within the range ``meta.commands`` declares."""
        low, high = declared_range((self.meta or {}).get("commands"), "warp", "value",
                                   (WARP_MIN, WARP_MAX))
        warp = min(max(float(self.clock.get("warp", 60.0)) * factor, low), high)
        if self._command("warp", value=warp).get("ok"):
            self.clock["warp"] = warp

    def single_step(self) -> None:
        if not self.clock.get("paused") and self._command("pause").get("ok"):
            self.clock["paused"] = True
        self._command("step", n=1)

    def cycle_field(self) -> None:
        name = self.scene.cycle_field()
        self.message = f"colour: {name}" if name else "no colour fields in meta"

    def cycle_node(self, step: int) -> None:
        n = self.scene.n_sats
        if n:
            current = self.scene.selected
            self.scene.select((current + step) % n if current >= 0 else (0 if step > 0 else n - 1))

    def go_to_mirror(self) -> None:
        sat = self.scene.select_mirror()
        self.message = "" if sat >= 0 else "no mirrored node (the twin runs no [mirror])"

    def toggle_view(self) -> None:
        self.scene.set_earth_fixed(not self.scene.earth_fixed)
        self.scene.set_camera(force=True)

    def toggle_help(self) -> None:
        self.scene.hud_help.SetVisibility(not self.scene.hud_help.GetVisibility())

    def pick(self, point: Any) -> None:
        """Select the node nearest a picked world point."""
        if point is None:
            return
        index = scene.nearest_sat(self.scene.sats.points, point)
        self.scene.select(index)
        self.refresh_hud(force=True)

    def quit(self) -> None:
        self._running = False

    # ------------------------------------------------------------------ loops
    def wait_for_frame(self, timeout_s: float) -> bool:
        """Follow the stream until meta and a full frame are drawn (headless use)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.tick(timeout_ms=100.0):
                return True
        return False

    def run_interactive(self, poll_ms: int = 15) -> None:
        """Open the window and follow the stream until it is closed."""
        self.pl.enable_point_picking(
            callback=self.pick, use_picker=True, show_message=False, show_point=False,
            left_clicking=True, pickable_window=False,
        )

        def on_timer(_step: int) -> None:
            self.tick(0.0)
            if not self._running:
                self.pl.iren.terminate_app()

        self.pl.add_timer_event(max_steps=2**31 - 1, duration=poll_ms, callback=on_timer)
        self.pl.show(title="ODC Twin — operator view")

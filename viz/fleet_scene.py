"""The 3D viewer's scene graph: the fleet's VTK actors around a textured, Sun-lit Earth.

``FleetScene`` owns the actors: built once from ``meta`` (satellites, flags, stations,
contacts, trails, the selected node's orbit, mirror rings, labels, the colour bar), then
updated in place from each ``state`` through the pure functions of ``viz.scene``
(geometry), ``viz.node_colours`` (paint and flags) and ``viz.hud_text``, and moved on
between states with their velocities (``viz.motion``). Its drawing (``viz.scene_draw``),
stations (``viz.scene_overlay``), colour bar (``viz.colour_bar``) and camera
(``viz.scene_camera``) are mixins. It needs no ``ViewerApp``: build, update, advance.
Nothing here models physics: every number comes from the stream.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from twin.core.assets import assets_dir
from twin.protocol.codec import Message
from viz import earth_look, lod, node_colours, scene
from viz.colour_bar import ColourBar
from viz.map_view import MapLayers
from viz.mirror import MirrorBinding, mirror_bindings
from viz.quantity import Catalog
from viz.scene_camera import SceneCamera
from viz.scene_draw import MIRROR_LOST_RGB, MIRROR_RGB, SceneDraw
from viz.scene_lod import SceneLod
from viz.scene_overlay import STATION_RGB, StationOverlay
from viz.vtk_actors import TextScaler, ring_actor, star_field, text_actor

EARTH_TEXTURE = assets_dir() / "earth" / "land_ocean_ice_2048.jpg"

# Stations float this far above the ellipsoid so their markers never sink into the globe.
STATION_LIFT_KM = 30.0
# Above this many nodes the scene switches to cheaper marks (square points).
BIG_FLEET = 1000
# Trail vertices in all, the budget a CPU renderer draws in a few milliseconds.
TRAIL_POINTS = 30_000
ALARM_RGB = (1.0, 0.15, 0.1)
__all__ = ["MIRROR_LOST_RGB", "MIRROR_RGB", "STATION_RGB", "FleetScene", "ViewOptions"]
# Trails and contacts are opaque, in dim colours: any translucent actor costs a CPU
# renderer an extra pass over the whole frame. Contact lines are thin and dark (a green
# at a third of its brightness, what a translucent line over space would look like):
# dozens converge on a station and must not bury its marker.
CONTACT_RGB = (0.12, 0.36, 0.2)
TRAIL_RGB = (0.2, 0.27, 0.4)
# The selected node's full orbit: brighter than the trails, so it reads as "this one".
ORBIT_RGB = (0.55, 0.8, 1.0)
MIRROR_RING_PX = 14.0


@dataclass
class ViewOptions:
    """What the operator chose on the command line (and toggles with keys later).

    Attributes:
        field: Colour field name; None picks ``node_colours.default_field``.
        earth_fixed: Start in the Earth-fixed (ITRS) view instead of inertial (GCRS).
        trails: Draw orbit trails; None draws them for fleets of up to ``BIG_FLEET`` nodes
            (thousands of trails bury the Earth in lines).
        orbit: Draw the selected node's full orbit (``scene.orbit_ring``).
        labels: Label stations and flagged nodes.
        links: Draw the optical inter-satellite links (a twin with ``[links]``); None draws
            them for fleets of up to ``BIG_FLEET`` nodes (thousands of links bury the
            globe, as trails do).
        camera_lat_deg, camera_lon_deg: Geographic point the camera starts above; None
            puts it over a formation cluster or a concentrated fleet and follows it
            (``viz.scene_camera``), else 20 deg north, 50 deg west of the subsolar point
            (day side with the evening terminator in view).
        camera_distance_re: Camera distance from the Earth's centre in Earth radii; None
            fits the whole fleet.
        cmap: matplotlib colormap name for every quantity field; None picks one by what
            the field means (``node_colours.colormap_for``).
        show_fps: Show the measured frame rate in the HUD (off for image tests).
        trail_span_s: Simulated time a trail spans (points: ``scene.trail_budget``).
    """

    field: str | None = None
    earth_fixed: bool = False
    trails: bool | None = None
    orbit: bool = True
    labels: bool = False
    links: bool | None = None
    camera_lat_deg: float | None = None
    camera_lon_deg: float | None = None
    camera_distance_re: float | None = None
    cmap: str | None = None
    show_fps: bool = True
    trail_span_s: float = 1440.0


class FleetScene(SceneDraw, SceneLod, ColourBar, SceneCamera, StationOverlay, MapLayers):
    """The scene's actors, sized from ``meta`` once, updated in place per ``state``.

    Usable on its own (the browser view drives it without a ``ViewerApp``): ``build(meta)``,
    ``update(state)``, then ``advance(dt)`` between states to move the fleet on with its
    velocities, and ``fit_text()`` when the window's size may have changed.
    """

    def __init__(self, plotter: Any, options: ViewOptions, texture_path: Path = EARTH_TEXTURE):
        import pyvista as pv

        self.pl = plotter
        self.options = options
        self.earth_fixed = options.earth_fixed
        self.show_trails = options.trails is not False
        self.show_orbit = options.orbit
        self.show_labels = options.labels
        self.show_links = options.links is not False
        self.mirrors: list[MirrorBinding] = []
        self._mirror_actors: list[tuple[Any, Any]] = []
        self.table = node_colours.colormap_table(options.cmap or "turbo")
        self.text = TextScaler()
        # Simulated seconds the drawn fleet is ahead of the newest state (``advance``),
        # and the simulated gap between the last two states (bounds how far it may go).
        self.sim_dt_s = 0.0
        self.frame_gap_s = 0.0
        self._t_frame = float("nan")
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
        self.drawn: np.ndarray | None = None
        # Set by a viewer that subscribed for every k-th node (viz.view_subscription):
        # the drawn sample is then exactly the subscribed nodes.
        self.sample_every: int | None = None
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
        earth.point_data["shade"] = earth_look.day_night_shading(
            self.earth_normals, np.array([1.0, 0.0, 0.0], np.float32))
        self.earth = earth
        texture = pv.read_texture(str(texture_path))
        # Linear filtering without mipmaps: mipmapping doubles the globe's cost on llvmpipe.
        texture.interpolate = True
        # The texture is multiplied by the per-vertex Sun shading (VTK modulates them).
        self.earth_actor = self.pl.add_mesh(
            earth, texture=texture, scalars="shade", rgb=True, lighting=False, pickable=False,
            name="earth", reset_camera=False,
        )
        # The far hemisphere is hidden by the near one: culled, it is never rasterized,
        # which halves the globe's cost on a CPU renderer (the quads face outward).
        self.earth_actor.GetProperty().BackfaceCullingOn()
        self.stars = star_field()
        self.stars_actor = self.pl.add_mesh(
            self.stars, scalars="rgb", rgb=True, point_size=1.5, lighting=False,
            pickable=False, reset_camera=False, name="stars",
        )
        # Map, ground tracks and atmosphere limb (viz.map_view.MapLayers).
        self._build_map_layers(texture_path)
        self.hud_top = self.text_actor(0.01, 0.985, size=15, bold=True)
        self.hud_fleet = self.text_actor(0.99, 0.985, size=13, halign="right")
        self.hud_node = self.text_actor(0.01, 0.015, size=13, valign="bottom")
        self.hud_events = self.text_actor(0.5, 0.015, size=12, halign="centered",
                                          valign="bottom", colour=(1.0, 0.8, 0.5))
        self.hud_help = self.text_actor(0.5, 0.5, size=15, halign="centered",
                                        valign="centered", colour=(1.0, 1.0, 1.0))
        self.hud_help.SetVisibility(False)
        # What the optical links' colours mean, shown while links are drawn.
        self.links_legend = self.text_actor(0.99, 0.015, size=12, halign="right",
                                            valign="bottom", colour=(0.75, 0.8, 0.9))
        self.links_legend.SetVisibility(False)
        # A dark plate under each HUD block: on the 2D map (and over the lit globe) the
        # text sits on the picture and must still read.
        for block in (self.hud_top, self.hud_fleet, self.hud_node, self.hud_events):
            block.GetTextProperty().SetBackgroundColor(0.0, 0.02, 0.06)
            block.GetTextProperty().SetBackgroundOpacity(0.6)
        # A dark plate: the keys read over the globe.
        self.hud_help.GetTextProperty().SetBackgroundColor(0.0, 0.02, 0.06)
        self.hud_help.GetTextProperty().SetBackgroundOpacity(0.85)
        self._build_station_overlay([])
        self.fit_text()

    def hud_blocks(self) -> list[Any]:
        """The HUD's text blocks, the selected node's name and the mirror tags: station
        names keep clear of them."""
        blocks = [self.hud_top, self.hud_fleet, self.hud_node, self.hud_events,
                  getattr(self, "selected_label", None),
                  *(tag for _, tag in self._mirror_actors)]
        return [block for block in blocks if block is not None]

    def text_actor(self, x: float, y: float, *, size: int, **style: Any) -> Any:
        """A text actor whose size (at a 720-row window) follows the window's height."""
        actor = text_actor(self.pl.renderer, x, y, size=size, **style)
        self.text.add(actor.GetTextProperty(), size)
        return actor

    def fit_text(self) -> bool:
        """Scale every text, and the nodes' marks, to the window's height; True when it
        changed (cheap when it did not)."""
        if not self.text.fit(int(self.pl.window_size[1])):
            return False
        self._scale_marks()
        return True

    def _scale_marks(self) -> None:
        """Node, flag and selection marks as big, against the window, at any size."""
        for actor, base in getattr(self, "_mark_sizes", {}).values():
            actor.GetProperty().SetPointSize(base * max(0.75, self.text.scale))

    # ------------------------------------------------------------------ building
    def build(self, meta: Mapping[str, Any]) -> None:
        """(Re)build everything sized by the fleet: satellites, stations, trails, bar."""
        import pyvista as pv

        for name in ("sats", "alarms", "selected", "contacts", "links", "trails", "orbit"):
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
        # Past lod.DRAW_BUDGET nodes an even sample is drawn (viz.lod): ``drawn`` holds
        # its node indices, None when every node is drawn (mesh point i is node i).
        # Of those, every ``lod_every``-th is drawn at this zoom (viz.scene_lod).
        self.drawn = self.lod_nodes(lod.drawn_nodes(n) if self.sample_every is None else
                                    lod.strided_nodes(n, self.sample_every), n)
        n_drawn = n if self.drawn is None else len(self.drawn)
        self.sats = pv.PolyData(np.zeros((n_drawn, 3), dtype=np.float32))
        self.sats.point_data["rgb"] = np.full((n_drawn, 3), 200, dtype=np.uint8)
        # Small fleets get round sprites; thousands of nodes get plain square points, which
        # cost a CPU rasterizer a fraction of the sprites' per-pixel shading, smaller as
        # they crowd the window (viz.lod).
        big = n > BIG_FLEET
        if self.options.trails is None:
            self.show_trails = not big
        if self.options.links is None:
            self.show_links = not big
        self.sats_actor = self.pl.add_mesh(
            self.sats, scalars="rgb", rgb=True,
            # The sample's size, however the zoom thins it (viz.scene_lod).
            point_size=lod.point_size_px(self.lod_rows()) if big else 8,
            render_points_as_spheres=not big, lighting=False, name="sats", reset_camera=False,
        )
        # Flags are flat squares drawn at the node's centre depth: the node's sphere
        # sprite is nearer the camera, so it stays visible inside its red frame.
        self.alarm_mesh = pv.PolyData(np.zeros((1, 3), np.float32))
        self.alarm_actor = self.pl.add_mesh(
            self.alarm_mesh, color=ALARM_RGB, point_size=15, lighting=False,
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
        # Stations are an overlay (viz.scene_overlay): on top of their contact lines.
        self._build_station_overlay([str(s.get("name", "?")) for s in stations])
        # A degenerate segment at the Earth's centre stands in for "no contacts": VTK
        # meshes may not be empty.
        self.contacts = pv.PolyData(np.zeros((2, 3), np.float32), lines=[2, 0, 1])
        self.pl.add_mesh(self.contacts, color=CONTACT_RGB, line_width=1, lighting=False,
                         pickable=False, name="contacts", reset_camera=False)
        self.drawn_contact, self.contact_ends = None, (np.zeros(0, np.int64),) * 2
        # Optical links (a scenario with [links]): one segment per link, coloured per cell.
        self.links = pv.PolyData(np.zeros((2, 3), np.float32), lines=[2, 0, 1])
        self.links.cell_data["rgb"] = np.zeros((1, 3), np.uint8)
        self.links_actor = self.pl.add_mesh(
            self.links, scalars="rgb", rgb=True, line_width=2, lighting=False,
            pickable=False, name="links", reset_camera=False)
        self.links_actor.SetVisibility(False)
        self.link_ends = (np.zeros(0, np.int64), np.zeros(0, np.int64))
        self.link_rgb = np.zeros((0, 3), np.uint8)
        # Trails follow the drawn nodes: a sampled fleet's trails are the sample's.
        length, interval_s = scene.trail_budget(n_drawn, TRAIL_POINTS,
                                                self.options.trail_span_s)
        self.trail_buffer = scene.TrailBuffer(n_drawn, length, interval_s)
        self.trails = pv.PolyData(np.zeros((n_drawn * length, 3), np.float32),
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
        # The 2D map's marks (viz.map_view): the same nodes as the globe.
        self.map_view.build(meta, n, big, STATION_RGB, self.drawn,
                            self.sats_actor.GetProperty().GetPointSize())
        self.cluster_view.build(meta)  # formation clusters' close-up (viz.cluster_view)
        self._select_chief()
        self._choose_table()
        self._build_colour_bar()
        self._build_labels()
        self.pl.pickable_actors = [self.sats_actor]
        # Point sizes at a 720-row window, scaled with it like the text.
        self._mark_sizes = {id(a): (a, a.GetProperty().GetPointSize())
                            for a in (self.sats_actor, self.alarm_actor, self.selected_actor)}
        self._scale_marks()

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
            ring = ring_actor(self.pl.renderer, MIRROR_RING_PX, MIRROR_RGB)
            tag = self.text_actor(0.0, 0.0, size=13, valign="top", colour=MIRROR_RGB,
                                  bold=True)
            tag.GetPositionCoordinate().SetCoordinateSystemToWorld()
            self._mirror_actors.append((ring, tag))
        # With nothing chosen yet, start on the mirrored node: it is why a mirror runs.
        if self.selected < 0 and self.mirrors:
            self.selected = self.mirrors[0].sat

    def _select_chief(self) -> None:
        """With nothing chosen yet and a formation cluster, start on its chief: on the
        globe a kilometre-wide cluster is one dot, and the chief's name and orbit say
        which and where it goes."""
        if self.selected >= 0 or not self.cluster_view.clusters:
            return
        cluster = self.cluster_view.clusters[0]
        chief = cluster.get("chief", cluster["members"][0])
        if isinstance(chief, int) and 0 <= chief < self.n_sats:
            self.selected = chief

    def _build_labels(self) -> None:
        if getattr(self, "selected_label", None) is not None:
            return
        # The selected node's name is an overlay anchored at its world position: never
        # hidden behind the globe or other nodes.
        self.selected_label = self.text_actor(0.0, 0.0, size=14, valign="centered",
                                              colour=(1.0, 1.0, 1.0), bold=True)
        self.selected_label.GetPositionCoordinate().SetCoordinateSystemToWorld()
        self.selected_label.SetVisibility(False)

    def _choose_table(self) -> None:
        """The colour table for the field: by its meaning, or the one the operator named."""
        if self.field is not None and self.field.categorical:
            self.table = node_colours.colormap_table(node_colours.CATEGORY_CMAP)
        elif self.options.cmap:
            self.table = node_colours.colormap_table(self.options.cmap)
        elif self.field is not None:
            name, floor = node_colours.colormap_for(self.field)
            self.table = node_colours.colormap_table(name, floor=floor)

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
        previous = self.header, self.arrays, self.sim_dt_s
        self.header, self.arrays, self.sim_dt_s = header, arrays, 0.0
        try:
            if self.drawn is not None:
                pos, pos_itrs = pos[self.drawn], pos_itrs[self.drawn]
            self.trail_buffer.push(state.t_utc, pos, pos_itrs)
            self._draw()
        except Exception:
            self.header, self.arrays, self.sim_dt_s = previous
            raise
        gap = float(state.t_utc) - self._t_frame
        self.frame_gap_s = gap if gap > 0.0 else float(header.get("dt_s", 0.0) or 0.0)
        self._t_frame = float(state.t_utc)
        return True

    def advance(self, sim_dt_s: float) -> None:
        """Move everything that moves to ``sim_dt_s`` simulated seconds after the newest
        state (nodes along their velocities, the Earth and its stations with its rotation),
        without a new state: smooth motion at the screen's frame rate.
        """
        if not self.arrays:
            return
        self.sim_dt_s = float(sim_dt_s)
        self._place()

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
        self._choose_table()
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

    def toggle_links(self) -> bool:
        """Optical links on / off. Returns whether they are now shown."""
        self.show_links = not self.show_links
        self.redraw()
        return self.show_links

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

    def nearest_node(self, xyz: Any) -> int:
        """The drawn node nearest a picked world point (-1: none): what is seen is picked."""
        index = scene.nearest_sat(self.sats.points, xyz)
        if self.drawn is None or index < 0:
            return index
        return int(self.drawn[index])

    def select(self, index: int) -> None:
        self.selected = index if 0 <= index < self.n_sats else -1
        self.redraw()

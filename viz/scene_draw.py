"""How a ``FleetScene`` draws the newest state: colours once per state, places each render.

A mixin of ``viz.fleet_scene.FleetScene``. :meth:`SceneDraw._paint` does what changes only
with a new state (node colours, the colour bar's range, alarm flags, the Sun's shading,
trails); :meth:`SceneDraw._place` puts everything that moves where it is
``sim_dt_s`` after that state (``viz.motion``): nodes, flags, the globe, stars, stations,
contact lines, the selected node and its orbit, the mirror rings. The geometry comes from
``viz.scene``, the paint from ``viz.node_colours``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from viz import earth_look, hud_text, lod, motion, node_colours, scene
from viz.mirror import MirrorBinding

# The mirrored node's ring and tag: magenta, a hue neither the colour map nor the other
# marks use; orange once its telemetry is lost.
MIRROR_RGB = (1.0, 0.3, 1.0)
MIRROR_LOST_RGB = (1.0, 0.55, 0.1)
# The links' legend (bottom right) says what their colours mean, or that they are hidden
# and which key shows them.
LINKS_SHOWN = ("links: blue idle, yellow half, red full (relay + all-reduce use); "
               "grey acquiring · L hides")
LINKS_HIDDEN = "{n:,} optical links hidden · L shows them"


class SceneDraw:
    """Per-state paint and per-render placement of a ``FleetScene``'s actors.

    The host class builds the actors (``build``) and keeps the newest ``header`` and
    ``arrays``, the fleet size, the colour field and table, the frame in use, the stations
    (``station_itrs``, ``station_names``) and ``sim_dt_s``.
    """

    header: Mapping[str, Any]
    arrays: Mapping[str, np.ndarray]
    n_sats: int
    earth_fixed: bool
    sim_dt_s: float
    field: node_colours.ColourField | None
    fields: list[node_colours.ColourField]
    table: np.ndarray
    categories: tuple[list[int], np.ndarray] | None
    clim: tuple[float, float] | None
    alarms: np.ndarray
    drawn: np.ndarray | None
    selected: int
    show_trails: bool
    show_orbit: bool
    show_links: bool
    map_view: Any
    cluster_view: Any
    meta: Mapping[str, Any] | None
    mirrors: list[MirrorBinding]
    station_itrs: np.ndarray
    station_names: list[str]
    station_view: np.ndarray
    station_priority: np.ndarray
    _mirror_actors: list[tuple[Any, Any]]
    sats: Any
    alarm_mesh: Any
    selected_mesh: Any
    selected_actor: Any
    selected_label: Any
    earth: Any
    earth_normals: np.ndarray
    earth_actor: Any
    stars_actor: Any
    contacts: Any
    trails: Any
    links: Any
    links_actor: Any
    links_legend: Any
    link_ends: tuple[np.ndarray, np.ndarray]
    link_rgb: np.ndarray
    trail_buffer: scene.TrailBuffer
    orbit: Any
    orbit_actor: Any
    _update_colour_bar: Any
    follow_fleet: Any
    _draw_map_layers: Any

    def _draw(self) -> None:
        """Everything for the current header and arrays: colours, flags, then positions."""
        if not self.arrays:
            return
        self._paint()
        self._place()

    def _paint(self) -> None:
        """What changes only with a new state: node colours, the bar, flags, sunlight."""
        arrays = self.arrays
        rgb = self.sats.point_data["rgb"]
        values = arrays.get(self.field.name) if self.field is not None else None
        if values is not None and values.shape == (self.n_sats,) and self.categories:
            node_colours.category_rgb(self._sampled(values), *self.categories, out=rgb)
        elif values is not None and values.shape == (self.n_sats,):
            # The range is the whole fleet's, so a sample is coloured as the fleet is.
            self.clim = node_colours.colour_range(self.field, values, self.clim)
            node_colours.field_rgb(self._sampled(values), self.clim, self.table, out=rgb)
        else:
            rgb[:] = node_colours.NO_DATA_RGB
        sunlit = arrays.get("sunlit_frac")
        node_colours.eclipse_dim(rgb, self._sampled(sunlit) if sunlit is not None
                                 and sunlit.shape == (self.n_sats,) else None)
        self.sats.GetPointData().GetArray("rgb").Modified()
        self._update_colour_bar()
        self.alarms = node_colours.alarm_mask(arrays, self.fields, self.n_sats)
        # Flagged nodes are drawn whether sampled or not (viz.lod).
        self.alarm_nodes = np.flatnonzero(self.alarms)
        sun_itrs = scene.sun_direction(self.header, earth_fixed=True).astype(np.float32)
        earth_look.day_night_shading(self.earth_normals, sun_itrs,
                                     out=self.earth.point_data["shade"])
        self.earth.GetPointData().GetArray("shade").Modified()
        in_contact = arrays.get("in_contact")
        n_stations = len(self.station_names)
        self.drawn_contact = None
        if in_contact is not None and in_contact.shape == (n_stations, self.n_sats):
            self.station_priority = np.count_nonzero(in_contact, axis=1).astype(float)
            # Contact lines of the drawn nodes only: a sampled fleet's lines are the sample's.
            # A few thousand lines at most (viz.lod): more bury the globe in green fans.
            self.drawn_contact = lod.thinned_contacts(self._sampled(in_contact, axis=1))
        self._paint_contacts()
        self._paint_links()
        if self.show_trails:
            self.trail_buffer.points(self.earth_fixed, out=self.trails.points)
            self.trails.GetPoints().Modified()
        # Ground tracks and the 2D map (viz.map_view.MapLayers), once per state: the map's
        # marks cost too much to place at every render.
        self._draw_map_layers()

    def view_header(self) -> Mapping[str, Any]:
        """The newest header with the Earth's orientation turned on by ``sim_dt_s``."""
        if not self.sim_dt_s:
            return self.header
        turned = motion.earth_turn(self.sim_dt_s) @ scene.gcrs_to_itrs(self.header)
        return {**self.header, "gcrs_to_itrs": turned.ravel().tolist()}

    def _rows_of(self, nodes: np.ndarray) -> dict[str, np.ndarray]:
        """The position and velocity rows of ``nodes``; the drawn sample's are gathered
        once per state (a million-row gather each frame costs more than the move)."""
        arrays = self.arrays
        cached = getattr(self, "_drawn_rows", None)
        if nodes is self.drawn and cached is not None and cached[0] is arrays:
            return cached[1]
        rows = {name: arrays[name][nodes]
                for name in ("pos_gcrs_km", "pos_itrs_km", "vel_gcrs_km_s")
                if name in arrays and arrays[name].shape[:1] == (self.n_sats,)}
        if nodes is self.drawn:
            self._drawn_rows = (arrays, rows)
        return rows

    def _sampled(self, array: np.ndarray, axis: int = 0) -> np.ndarray:
        """The drawn nodes' part of a per-node array (the array itself when all are)."""
        return array if self.drawn is None else np.take(array, self.drawn, axis=axis)

    def node_positions(self, out: np.ndarray | None = None,
                       nodes: np.ndarray | None = None) -> np.ndarray:
        """Nodes in the view frame, ``sim_dt_s`` after the newest state, float32: every
        node, or those of the index array ``nodes`` (in its order)."""
        arrays, ef, dt = self.arrays, self.earth_fixed, self.sim_dt_s
        pos, vel = arrays.get("pos_gcrs_km"), arrays.get("vel_gcrs_km_s")
        if nodes is not None:
            arrays = self._rows_of(nodes)
            pos, vel = arrays.get("pos_gcrs_km"), arrays.get("vel_gcrs_km_s")
        if not dt or vel is None or pos is None or vel.shape != pos.shape:
            return scene.sat_positions(arrays, ef, out=out)
        if nodes is self.drawn:  # the drawn nodes: their mover is kept for the state
            cached = getattr(self, "_drawn_mover", None)
            if cached is None or cached[0] is not self.arrays:
                cached = self._drawn_mover = (self.arrays, motion.Mover(pos, vel))
            moved = cached[1].at(dt, out=out)
        else:
            moved = motion.advance(pos, vel, dt, out=out)
        if ef:
            moved[:] = scene.gcrs_to_view(moved, self.view_header(), True)
        return moved

    def _place(self) -> None:
        """Where everything is, ``sim_dt_s`` after the newest state (each render)."""
        header, ef = self.view_header(), self.earth_fixed
        # Arrays are written into the meshes' own buffers (no reallocation), then marked
        # modified so VTK uploads them on the next render. A sampled fleet (viz.lod) moves
        # only its sample; the nodes drawn one by one are placed by index (``at``).
        points = self.node_positions(out=self.sats.points, nodes=self.drawn)
        self.sats.GetPoints().Modified()

        def at(nodes: np.ndarray) -> np.ndarray:
            if self.drawn is None:
                return points[nodes]
            return self.node_positions(nodes=np.atleast_1d(np.asarray(nodes, np.int64)))

        if self.show_trails and self.sim_dt_s:
            # Each trail's newest vertex follows its node, so no gap opens between them.
            length = self.trail_buffer.length
            self.trails.points[length - 1::length] = points
            self.trails.GetPoints().Modified()
        alarm_nodes = getattr(self, "alarm_nodes", np.zeros(0, np.int64))
        flagged = at(alarm_nodes) if len(self.alarms) == self.n_sats else points[:0]
        # Only flagged nodes are drawn; a point at the (hidden) centre stands for none.
        self.alarm_mesh.points = flagged if len(flagged) else np.zeros((1, 3), np.float32)
        self.alarm_mesh.verts = np.hstack([np.ones((len(self.alarm_mesh.points), 1), int),
                                           np.arange(len(self.alarm_mesh.points))[:, None]])

        self.earth_actor.user_matrix = scene.earth_matrix(header, ef)
        # Stars are inertial: in the Earth-fixed view they turn with M.
        star_matrix = np.eye(4)
        if ef:
            star_matrix[:3, :3] = scene.gcrs_to_itrs(header)
        self.stars_actor.user_matrix = star_matrix

        stations = scene.itrs_to_view(self.station_itrs, header, ef).astype(np.float32)
        self.station_view = stations
        station, node = getattr(self, "contact_ends", (np.zeros(0, np.int64),) * 2)
        if len(station) and len(points) > int(node.max()):
            # The lines' ends written into the mesh's own buffer: the lines stay the state's.
            ends = self.contacts.points
            ends[0::2] = stations[station]
            ends[1::2] = points[node]
            self.contacts.GetPoints().Modified()
        self._place_links(at)
        self._draw_selected(at)
        self._draw_orbit(header)
        self._draw_mirrors(at)
        self.follow_fleet()  # a concentrated fleet stays in view (viz.scene_camera)

    def _paint_contacts(self) -> None:
        """Which station-to-node lines to draw (``contact_ends``: station and drawn
        point of each), once per state; ``_place`` moves their ends each render."""
        in_contact = getattr(self, "drawn_contact", None)
        if in_contact is not None and in_contact.shape == (len(self.station_itrs),
                                                           self.sats.n_points):
            station, node = np.nonzero(in_contact)
        else:
            station = node = np.zeros(0, np.int64)
        self.contact_ends = (station, node)
        if not len(station):  # a degenerate segment at the (hidden) centre: none
            self.contacts.points = np.zeros((2, 3), np.float32)
            self.contacts.lines = np.array([2, 0, 1])
            return
        ids = np.arange(2 * len(station)).reshape(-1, 2)
        self.contacts.points = np.zeros((2 * len(station), 3), np.float32)
        self.contacts.lines = np.hstack([np.full((len(station), 1), 2), ids]).ravel()

    def _paint_links(self) -> None:
        """Which links to draw and their colours (utilization), from the link fields: the
        segments' connectivity and colours change only with a state."""
        arrays = self.arrays
        peer, state = arrays.get("link_peer"), arrays.get("link_state")
        util = arrays.get("link_utilization_frac")
        if peer is None or state is None or peer.ndim != 2 or peer.shape[0] != self.n_sats \
                or state.shape != peer.shape:
            i = j = np.zeros(0, np.int64)
            self.link_rgb = np.zeros((0, 3), np.uint8)
        else:
            if util is not None and util.shape != peer.shape:
                util = None
            i, j, self.link_rgb = scene.link_pairs(peer, state, util)
        changed = len(i) != len(self.link_ends[0])
        self.link_ends = (i, j)
        if not len(i):
            return
        if changed or self.links.n_points != 2 * len(i):
            seg_points, seg_lines = scene.link_segments(i, j, np.zeros((self.n_sats, 3),
                                                                       np.float32))
            self.links.points = seg_points
            self.links.lines = seg_lines
        self.links.cell_data["rgb"] = self.link_rgb

    def _place_links(self, at: Any) -> None:
        """The links between the nodes where they are drawn now (each render); hidden
        links cost nothing (``show_links``, key ``L``) but the legend saying so."""
        i, j = self.link_ends
        shown = bool(len(i)) and self.show_links
        self.links_actor.SetVisibility(shown)
        # The legend belongs to the globe: the 2D map and the close-up draw no links.
        self.links_legend.SetVisibility(bool(len(i)) and not self.map_view.active
                                        and not self.cluster_view.active)
        legend = LINKS_SHOWN if shown else LINKS_HIDDEN.format(n=len(i))
        if self.links_legend.GetInput() != legend:
            self.links_legend.SetInput(legend)
        if not shown:
            return
        ends = self.links.points
        ends[0::2] = at(i)
        ends[1::2] = at(j)
        self.links.GetPoints().Modified()

    def _draw_orbit(self, header: Mapping[str, Any]) -> None:
        """The selected node's osculating orbit ring, in the current view frame."""
        ring = None
        vel = self.arrays.get("vel_gcrs_km_s")
        pos = self.arrays.get("pos_gcrs_km")
        if self.show_orbit and 0 <= self.selected < self.n_sats and vel is not None \
                and pos is not None and vel.shape == pos.shape:
            ring = scene.orbit_ring(pos[self.selected], vel[self.selected])
        self.orbit_actor.SetVisibility(ring is not None)
        if ring is not None:
            self.orbit.points[:] = scene.gcrs_to_view(ring, header, self.earth_fixed)
            self.orbit.GetPoints().Modified()

    def _draw_mirrors(self, at: Any) -> None:
        for binding, (ring, tag) in zip(self.mirrors, self._mirror_actors, strict=True):
            xyz = tuple(map(float, at(np.array([binding.sat]))[0]))
            # A node without a position sits at the Earth's centre (or, outside a reduced
            # stream's sample, has none: NaN): no overlay there.
            placed = any(xyz) and bool(np.all(np.isfinite(xyz)))
            ring.SetVisibility(placed)
            tag.SetVisibility(placed)
            live = hud_text.mirror_live(self.arrays, binding)
            colour = MIRROR_RGB if live else MIRROR_LOST_RGB
            ring.GetPositionCoordinate().SetValue(*xyz)
            ring.GetProperty().SetColor(*colour)
            tag.GetPositionCoordinate().SetValue(*xyz)
            tag.GetTextProperty().SetColor(*colour)
            # A line below the node: clear of the selected node's name beside it.
            text = f"\n   {hud_text.mirror_tag(self.arrays, binding)}"
            if tag.GetInput() != text:
                tag.SetInput(text)

    def _draw_selected(self, at: Any) -> None:
        visible = 0 <= self.selected < self.n_sats
        xyz = np.zeros((1, 3), np.float32)
        if visible:
            xyz = np.array(at(np.array([self.selected])), dtype=np.float32).reshape(1, 3)
            # Outside a reduced stream's sample until its row is fetched: no position yet.
            visible = bool(np.all(np.isfinite(xyz)))
        self.selected_actor.SetVisibility(visible)
        self.selected_label.SetVisibility(visible)
        if visible:
            self.selected_mesh.points = xyz
            self.selected_label.GetPositionCoordinate().SetValue(*map(float, xyz[0]))
            names = (self.meta or {}).get("sats", {}).get("names", [])
            name = names[self.selected] if self.selected < len(names) else "?"
            if self.selected_label.GetInput() != f"   {name}":
                self.selected_label.SetInput(f"   {name}")

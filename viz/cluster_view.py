"""The cluster close-up: a formation's members at metre scale around their chief.

Drawn in the same renderer as the globe and the 2D map, far from both (``X0_KM``): one
world unit is one metre of the chief's LVLH frame, laid out as world x = along-track (the
direction of flight, to the right), world y = radial (up, away from the Earth), world z =
cross-track (the orbit normal, towards the camera). Everything comes from the stream:
the clusters' chief and members from ``meta.subsystems.formation.clusters``, positions and
velocities from ``pos_gcrs_km`` / ``vel_gcrs_km_s``, nearest neighbours from ``nn_sat``
and ``nn_dist_m`` (docs/protocol.md, "Formation clusters"). Members wear the 3D view's
colours (the colour field); the optical links between members are drawn in the globe's
link colours (utilization) while links are shown (key ``L``), else thin grey lines join
each member to its nearest neighbour; the cluster's closest pair is drawn thick in red,
and a faint ring marks the cluster radius.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from viz.vtk_actors import TextScaler, text_actor

X0_KM = -200_000.0
"""Where the close-up lies, world units (far from the globe's stars at 150,000)."""
NEIGHBOUR_RGB = (0.55, 0.6, 0.7)
CLOSEST_RGB = (1.0, 0.25, 0.2)
RING_RGB = (0.35, 0.45, 0.6)
CHIEF_RGB = (1.0, 1.0, 1.0)
RING_POINTS = 181
# The camera looks at the chief from above the orbit plane, a little behind and above.
VIEW_DIRECTION = np.array([-0.25, 0.35, 1.0]) / math.sqrt(0.25**2 + 0.35**2 + 1.0)


def clusters_of(meta: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The clusters a twin's meta describes (empty without formation clusters)."""
    formation = (meta.get("subsystems") or {}).get("formation") or {}
    clusters = formation.get("clusters") or []
    return [c for c in clusters if isinstance(c, Mapping) and c.get("members")]


def lvlh_offsets_m(pos_km: np.ndarray, vel_km_s: np.ndarray, chief: int,
                   members: Sequence[int]) -> np.ndarray:
    """Members' offsets from the chief in its LVLH frame, metres: (m, 3) radial,
    along-track, cross-track."""
    r, v = np.asarray(pos_km[chief], float), np.asarray(vel_km_s[chief], float)
    x_hat = r / np.linalg.norm(r)
    z_hat = np.cross(r, v)
    z_hat /= np.linalg.norm(z_hat)
    y_hat = np.cross(z_hat, x_hat)
    offsets = (np.asarray(pos_km[list(members)], float) - r) * 1e3
    return offsets @ np.stack((x_hat, y_hat, z_hat), axis=1)


def to_world(lvlh_m: np.ndarray) -> np.ndarray:
    """World points of LVLH offsets (m): x along-track, y radial, z cross-track."""
    lvlh_m = np.asarray(lvlh_m, dtype=float).reshape(-1, 3)
    return np.column_stack((X0_KM + lvlh_m[:, 1], lvlh_m[:, 0], lvlh_m[:, 2])).astype(
        np.float32)


class ClusterView:
    """The close-up's actors and camera, fed from a ``FleetScene``'s current state."""

    def __init__(self, plotter: Any, text: TextScaler | None = None) -> None:
        self.pl = plotter
        self.text = text if text is not None else TextScaler()
        self.active = False
        self.clusters: list[Mapping[str, Any]] = []
        self.index = 0  # which cluster is shown
        self._saved_camera: Any = None
        self._actors: dict[str, tuple[Any, Any]] = {}
        # Top centre, between the HUD's corner panels (the selected node's panel is
        # bottom left).
        self.legend = text_actor(plotter.renderer, 0.52, 0.985, size=13, halign="centered")
        self.text.add(self.legend.GetTextProperty(), 13)
        # A dark plate, as under the HUD's blocks: the radius ring passes behind the text.
        self.legend.GetTextProperty().SetBackgroundColor(0.0, 0.02, 0.06)
        self.legend.GetTextProperty().SetBackgroundOpacity(0.6)
        self.legend.SetVisibility(False)
        self.radius_m = 1000.0

    @property
    def available(self) -> bool:
        """Whether the twin has a cluster to show."""
        return bool(self.clusters)

    def build(self, meta: Mapping[str, Any]) -> None:
        """Take the clusters of a twin's meta and make the marks."""
        import pyvista as pv

        self.clusters = clusters_of(meta)
        self.index = 0
        for name in list(self._actors):
            self.pl.remove_actor(name, reset_camera=False, render=False)
        self._actors = {}
        if not self.clusters:
            return
        members = len(self.clusters[0]["members"])
        self.radius_m = float(self.clusters[0].get("radius_m", 1000.0))

        def lines(name: str, **style: Any) -> None:
            mesh = pv.PolyData(np.zeros((2, 3), np.float32), lines=[2, 0, 1])
            if "scalars" in style:
                mesh.cell_data["rgb"] = np.zeros((1, 3), np.uint8)
            actor = self.pl.add_mesh(mesh, lighting=False, pickable=False, name=name,
                                     reset_camera=False, **style)
            self._actors[name] = (mesh, actor)

        lines("cluster_ring", color=RING_RGB, line_width=1.0)
        lines("cluster_links", color=NEIGHBOUR_RGB, line_width=1.2)
        # The optical links between members, one colour per link (viz.scene.link_pairs).
        lines("cluster_isl", scalars="rgb", rgb=True, line_width=2.0)
        lines("cluster_closest", color=CLOSEST_RGB, line_width=4.0)  # last: on top
        points = pv.PolyData(np.zeros((members, 3), np.float32))
        points.point_data["rgb"] = np.full((members, 3), 200, np.uint8)
        actor = self.pl.add_mesh(points, scalars="rgb", rgb=True, point_size=14,
                                 render_points_as_spheres=True, lighting=False,
                                 pickable=True, name="cluster_members", reset_camera=False)
        self._actors["cluster_members"] = (points, actor)
        for name, size in (("cluster_chief", 24), ("cluster_selected", 21)):
            mark = pv.PolyData(np.zeros((1, 3), np.float32))
            actor = self.pl.add_mesh(mark, color=CHIEF_RGB, point_size=size, style="points",
                                     lighting=False, pickable=False, name=name,
                                     reset_camera=False)
            if name == "cluster_selected":
                actor.GetProperty().SetOpacity(0.6)
            self._actors[name] = (mark, actor)
        angle = np.linspace(0.0, 2.0 * math.pi, RING_POINTS)
        ring = np.column_stack((self.radius_m * np.cos(angle), self.radius_m * np.sin(angle),
                                np.zeros(RING_POINTS)))  # in the orbit plane
        mesh, _ = self._actors["cluster_ring"]
        mesh.points = to_world(ring)
        mesh.lines = np.column_stack((np.full(RING_POINTS - 1, 2),
                                      np.arange(RING_POINTS - 1),
                                      np.arange(1, RING_POINTS))).ravel()
        self._show_actors(self.active)

    def update(self, arrays: Mapping[str, np.ndarray], rgb: np.ndarray,
               names: Sequence[str], selected: int = -1,
               links: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
               show_links: bool = True) -> None:
        """Draw one state of the shown cluster (``selected``: the node marked, if a member;
        ``links``: the twin's optical links, ends and colours as ``scene.link_pairs`` gives
        them, None without any; ``show_links``: draw them, else the nearest-neighbour
        lines)."""
        if not self.clusters or not self.active:
            return
        cluster = self.clusters[self.index]
        members = [int(i) for i in cluster["members"]]
        chief = int(cluster.get("chief", members[0]))
        pos, vel = arrays.get("pos_gcrs_km"), arrays.get("vel_gcrs_km_s")
        if pos is None or vel is None or max(members) >= len(pos):
            return
        offsets = lvlh_offsets_m(pos, vel, chief, members)
        if not np.isfinite(offsets).all():
            return
        world = to_world(offsets)
        points, _ = self._actors["cluster_members"]
        points.points = world
        if rgb.ndim == 2 and len(rgb) > max(members):
            points.point_data["rgb"][:] = rgb[members]
        chief_mesh, _ = self._actors["cluster_chief"]
        chief_mesh.points = to_world(np.zeros((1, 3)))
        mark, mark_actor = self._actors["cluster_selected"]
        chosen = np.flatnonzero(np.asarray(members) == selected)
        mark_actor.SetVisibility(bool(chosen.size) and selected != chief)
        if chosen.size:
            mark.points = world[chosen[:1]]
        lines_text = self._draw_links(world, members, links, show_links)
        nn_sat = arrays.get("nn_sat")
        nn_dist = arrays.get("nn_dist_m")
        closest_text = "no nearest-neighbour fields on the stream"
        if nn_sat is not None and nn_dist is not None and len(nn_sat) > max(members):
            # Each member's neighbour as a row of this cluster (-1: not in it).
            row_of = np.full(len(nn_sat) + 1, -1)
            row_of[members] = np.arange(len(members))
            neighbour = np.asarray(nn_sat, dtype=np.int64)[members]
            partner = row_of[np.where(neighbour >= 0, neighbour, len(nn_sat))]
            own = np.arange(len(members))[partner >= 0]
            neighbours, _ = self._actors["cluster_links"]
            neighbours.points = world
            neighbours.lines = np.column_stack((np.full(len(own), 2), own,
                                                partner[own])).ravel()
            distances = np.asarray(nn_dist, float)[members]
            best = int(np.argmin(distances))
            closest, _ = self._actors["cluster_closest"]
            if partner[best] >= 0:
                closest.points = world[[best, partner[best]]]
                closest.lines = np.array([2, 0, 1])
                closest_text = (f"closest pair {names[members[best]]} - "
                                f"{names[members[partner[best]]]}: {distances[best]:.1f} m"
                                " (thick red)")
            else:
                closest_text = "closest pair: not in this cluster"
        farthest = float(np.linalg.norm(offsets, axis=1).max())
        chief_name = names[chief] if chief < len(names) else str(chief)
        self.legend.SetInput(
            f"cluster {cluster.get('name', '?')}: {len(members)} members, farthest"
            f" {farthest:.0f} m of {self.radius_m:.0f} m (ring)\n{closest_text}\n"
            f"{lines_text}\nchief {chief_name} (white square) · flight to"
            f" the right, away from the Earth up")

    def _draw_links(self, world: np.ndarray, members: Sequence[int],
                    links: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
                    show_links: bool) -> str:
        """The optical links between members, or the nearest-neighbour lines when links
        are hidden or none joins two members; returns the legend's line saying which."""
        mesh, actor = self._actors["cluster_isl"]
        neighbours = self._actors["cluster_links"][1]
        inside = np.zeros(0, bool)
        if links is not None and show_links:
            i, j, rgb = links
            row_of = np.full(max(int(np.max(i, initial=0)), int(np.max(j, initial=0)),
                                 max(members)) + 1, -1)
            row_of[list(members)] = np.arange(len(members))
            a, b = row_of[i], row_of[j]
            inside = (a >= 0) & (b >= 0)
            if inside.any():
                mesh.points = world
                mesh.lines = np.column_stack((np.full(int(inside.sum()), 2), a[inside],
                                              b[inside])).ravel()
                mesh.cell_data["rgb"] = rgb[inside]
        shown = bool(inside.any())
        actor.SetVisibility(shown)
        neighbours.SetVisibility(not shown)
        if shown:
            return (f"lines: {int(inside.sum())} optical links, blue idle to red full, grey"
                    " acquiring · L: nearest neighbours")
        if links is None or not len(links[0]):
            return "lines: nearest neighbours"
        if not show_links:
            return "lines: nearest neighbours · L: optical links"
        return "lines: nearest neighbours (no optical link joins two members)"

    def reset_camera(self) -> None:
        """Look at the chief from above the orbit plane, the whole radius in view."""
        camera = self.pl.camera
        camera.SetParallelProjection(False)
        centre = to_world(np.zeros((1, 3)))[0].astype(float)
        camera.focal_point = tuple(centre)
        camera.position = tuple(centre + VIEW_DIRECTION * 4.4 * self.radius_m)
        camera.up = (0.0, 1.0, 0.0)
        camera.view_angle = 30.0
        self.pl.renderer.ResetCameraClippingRange()

    def show(self, on: bool) -> None:
        """Switch the camera to the close-up (saving the globe's) or back."""
        if on == self.active:
            return
        self.active = on
        self._show_actors(on)
        camera = self.pl.camera
        if on:
            self._saved_camera = (camera.position, camera.focal_point, camera.up,
                                  camera.view_angle)
            self.reset_camera()
        elif self._saved_camera is not None:
            (camera.position, camera.focal_point, camera.up,
             camera.view_angle) = self._saved_camera
            self.pl.renderer.ResetCameraClippingRange()

    def members_actor(self) -> Any:
        """The members' marks (what a click picks in the close-up), or None."""
        return self._actors.get("cluster_members", (None, None))[1]

    def nearest_node(self, xyz: Sequence[float]) -> int:
        """The member nearest a picked point of the close-up (-1: none)."""
        if not self.clusters or "cluster_members" not in self._actors:
            return -1
        points = np.asarray(self._actors["cluster_members"][0].points, dtype=float)
        members = self.clusters[self.index]["members"]
        if len(points) != len(members):
            return -1
        gap = np.linalg.norm(points - np.asarray(list(xyz)[:3], dtype=float), axis=1)
        return int(members[int(np.argmin(gap))])

    def _show_actors(self, on: bool) -> None:
        self.legend.SetVisibility(on)
        for _, actor in self._actors.values():
            actor.SetVisibility(on)
        if "cluster_isl" in self._actors:  # shown by update, when there are links
            self._actors["cluster_isl"][1].SetVisibility(False)

"""Where the 3D viewer's camera starts: above a chosen place, over the mirrored node, or
over a concentrated fleet (a formation cluster), which it then follows.

A mixin of ``viz.fleet_scene.FleetScene``. The camera is placed once, when the first
state arrives (and again on a reset or a change of frame); the operator moves it freely
in between. A fleet that fits in a small cone seen from the Earth's centre (a cluster, a
few satellites flying together) would leave the default view within a quarter orbit, or
start behind the Earth: the camera starts above it and turns with it, render by render,
about the Earth's centre, keeping whatever zoom or angle the operator gave it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from viz import scene

if TYPE_CHECKING:
    from viz.cluster_view import ClusterView
    from viz.fleet_scene import ViewOptions
    from viz.map_view import MapView
    from viz.mirror import MirrorBinding

# Vertical camera view angle, deg (VTK's default); the fit distance follows from it.
VIEW_ANGLE_DEG = 30.0
# A fleet whose nodes all lie within this angle of their centroid's direction, seen from
# the Earth's centre, is concentrated: the camera looks at it and follows it. 30 deg is
# about 3,700 km along a low orbit: a cluster or a small train of satellites, never a
# shell (the default scenario's 40 nodes span the globe).
FOLLOW_SPREAD_DEG = 30.0


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation taking unit vector ``a`` to unit vector ``b`` (3x3)."""
    axis = np.cross(a, b)
    sin, cos = float(np.linalg.norm(axis)), float(np.dot(a, b))
    if sin < 1e-12:
        if cos > 0.0:
            return np.eye(3)
        # Opposite: half a turn about any axis normal to a.
        other = np.array([1.0, 0.0, 0.0]) if abs(a[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
        axis = np.cross(a, other)
        axis /= np.linalg.norm(axis)
        return 2.0 * np.outer(axis, axis) - np.eye(3)
    k = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]],
                  [-axis[1], axis[0], 0.0]])
    return np.eye(3) + k + k @ k * ((1.0 - cos) / sin**2)


def concentrated_direction(points_km: np.ndarray,
                           spread_deg: float = FOLLOW_SPREAD_DEG) -> np.ndarray | None:
    """The unit direction of the nodes' centroid when every node lies within
    ``spread_deg`` of it (seen from the Earth's centre), else None."""
    points = np.asarray(points_km, dtype=float).reshape(-1, 3)
    radius = np.linalg.norm(points, axis=1)
    points = points[radius > 0.0]  # a node without a position sits at the centre
    if not len(points):
        return None
    centroid = points.mean(axis=0)
    norm = float(np.linalg.norm(centroid))
    if not math.isfinite(norm) or norm == 0.0:
        return None
    direction = centroid / norm
    cosines = points @ direction / np.linalg.norm(points, axis=1)
    if float(cosines.min()) < math.cos(math.radians(spread_deg)):
        return None
    return direction


class SceneCamera:
    """Camera placement for a ``FleetScene``, from its options and its newest state.

    The host class provides the plotter, the options, the mirrored nodes, the newest
    header and arrays, the frame in use and the drawn node positions (``sats``).
    """

    pl: Any
    options: ViewOptions
    mirrors: list[MirrorBinding]
    header: Mapping[str, Any]
    arrays: Mapping[str, np.ndarray]
    earth_fixed: bool
    sats: Any
    _camera_set: bool
    map_view: MapView
    cluster_view: ClusterView
    n_sats: int
    node_positions: Any
    # The followed nodes' direction when the camera was last turned with them; None while
    # the camera does not follow (a spread fleet, a mirror, or a place the operator chose).
    _follow_direction: np.ndarray | None = None

    def _followed(self) -> np.ndarray | None:
        """The nodes the camera follows where the fleet is concentrated: the (first)
        formation cluster's members whatever else flies (the cluster is what such a twin
        is about), or None for the whole fleet."""
        clusters = self.cluster_view.clusters
        try:
            members = np.asarray(clusters[0]["members"] if clusters else [], dtype=np.int64)
        except (TypeError, ValueError):  # a meta's bad member list: follow the fleet
            return None
        if members.ndim == 1 and len(members) and members.min() >= 0 \
                and members.max() < self.n_sats:
            return members
        return None

    def _followed_direction(self) -> np.ndarray | None:
        """Where the followed nodes are, seen from the Earth's centre (view frame, as
        drawn now), or None when they are not concentrated."""
        members = self._followed()
        points = self.sats.points if members is None else self.node_positions(nodes=members)
        return concentrated_direction(points)

    def _follow_camera_direction(self) -> np.ndarray | None:
        """Where a camera that follows a concentrated fleet starts (view frame), or None
        for a spread fleet: above the fleet, leaned toward its orbit's normal on the
        Sun's side so that the fleet's orbit (the selected node's ring) opens into an
        ellipse, the fleet on its near side (``scene.camera_direction_over``)."""
        followed = self._followed_direction()
        if followed is None:
            return None
        rows = self._followed()
        pos, vel = self.arrays.get("pos_gcrs_km"), self.arrays.get("vel_gcrs_km_s")
        if pos is None or vel is None or pos.shape != vel.shape or len(pos) != self.n_sats:
            return followed
        rows = slice(None) if rows is None else rows
        direction = scene.camera_direction_over(
            pos[rows].mean(axis=0), vel[rows].mean(axis=0),
            toward=scene.sun_direction(self.header, earth_fixed=False))
        if direction is None:
            return followed
        return scene.gcrs_to_view(direction, self.header, self.earth_fixed)

    def follow_fleet(self) -> None:
        """Turn the globe's camera about the Earth's centre as the followed nodes move
        (each render), so that they stay where the camera showed them."""
        if self._follow_direction is None or self.map_view.active or \
                self.cluster_view.active:
            return
        direction = self._followed_direction()
        if direction is None:
            return  # spread out since: the camera stays where it is
        turn = rotation_between(self._follow_direction, direction)
        # VTK's own calls: pyvista's camera properties cost several times more per render.
        camera = self.pl.camera
        pose = turn @ np.array([camera.GetPosition(), camera.GetFocalPoint(),
                                camera.GetViewUp()]).T
        camera.SetPosition(*pose[:, 0])
        camera.SetFocalPoint(*pose[:, 1])
        camera.SetViewUp(*pose[:, 2])
        self._follow_direction = direction
        self.pl.renderer.ResetCameraClippingRange()

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
        """Put the camera far enough to see the whole fleet: above the place the operator
        chose, else over the mirrored node, else over a concentrated fleet (then followed,
        :meth:`follow_fleet`), else 20 deg north and 50 deg west of the subsolar point."""
        if self.map_view.active:  # the 2D map has its own camera (viz.map_view)
            if force:
                self.map_view.reset_camera()
            return
        if self.cluster_view.active:  # so has the cluster close-up (viz.cluster_view)
            if force:
                self.cluster_view.reset_camera()
            return
        if (self._camera_set and not force) or not self.arrays:
            return
        o = self.options
        direction = self._follow_direction = None
        if o.camera_lat_deg is None and o.camera_lon_deg is None:
            direction = self._mirror_camera_direction()
            if direction is None:
                direction = self._follow_camera_direction()
                if direction is not None:
                    self._follow_direction = self._followed_direction()
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

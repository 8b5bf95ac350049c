"""Where the 3D viewer's camera starts: above a chosen place, or over the mirrored node.

A mixin of ``viz.fleet_scene.FleetScene``. The camera is placed once, when the first
state arrives (and again on a reset or a change of frame); the operator moves it freely
in between.
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

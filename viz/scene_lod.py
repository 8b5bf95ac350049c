"""The 3D view's density-aware level of detail: how many nodes to draw at this zoom.

A mixin of ``viz.fleet_scene.FleetScene``. The scene's candidates are the nodes it has
rows for (every node, ``viz.lod.drawn_nodes``' even sample, or a subscription's every k-th
node); of those it draws every ``lod_every``-th, so that the fleet's disc on the screen
gets about one node per ``lod.PX_PER_POINT`` pixels (``viz.lod.screen_budget``). The
globe fitted in the window draws a third of a million-node subscription; zooming in draws
more, up to every candidate; zooming out fewer. A change of level rebuilds the nodes'
mesh (a few milliseconds, only when the zoom crosses a level, with hysteresis). Flagged,
selected and mirrored nodes are placed by index and drawn at every level.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from viz import lod, scene

# The camera's vertical view angle the fitted view assumes before a camera is set, deg.
FIT_VIEW_ANGLE_DEG = 30.0


class SceneLod:
    """Chooses ``lod_every`` from the camera; the host builds the mesh from ``drawn``."""

    pl: Any
    meta: Mapping[str, Any] | None
    arrays: Mapping[str, np.ndarray]
    n_sats: int
    sats: Any
    map_view: Any
    cluster_view: Any
    build: Any
    redraw: Any
    _camera_set: bool

    lod_every: int = 1
    lod_base: np.ndarray | None = None

    def lod_nodes(self, base: np.ndarray | None, n_nodes: int) -> np.ndarray | None:
        """The nodes to draw of the candidates ``base`` (None: all ``n_nodes``), choosing
        ``lod_every`` for the camera as it is (the fitted view before there is one)."""
        self.lod_base = base
        rows = n_nodes if base is None else len(base)
        self.lod_every = lod.thinning(rows, self.screen_budget(), self.lod_every)
        # Rows gathered and motion prepared for the previous sample are not this one's.
        self._drawn_rows = self._drawn_mover = None
        return lod.thinned(base, n_nodes, self.lod_every)

    def lod_rows(self) -> int:
        """How many candidate nodes the scene has rows for (the sample, thinned or not)."""
        return self.n_sats if self.lod_base is None else len(self.lod_base)

    def fleet_radius_km(self) -> float:
        """Radius of the sphere holding the drawn fleet, km (once per state)."""
        cached = getattr(self, "_fleet_radius", None)
        if cached is not None and cached[0] is self.arrays:
            return cached[1]
        points = np.asarray(self.sats.points) if getattr(self, "sats", None) is not None \
            else np.zeros((0, 3), np.float32)
        with np.errstate(invalid="ignore"):
            radius = float(np.nanmax(np.einsum("ij,ij->i", points, points), initial=0.0))
        radius = max(math.sqrt(radius), scene.WGS84_A_KM * 1.1)
        self._fleet_radius = (self.arrays, radius)
        return radius

    def screen_budget(self) -> int:
        """Nodes the fleet's disc on the screen asks for now (``viz.lod.screen_budget``)."""
        height = int(self.pl.window_size[1])
        if not getattr(self, "_camera_set", False):  # the fitted view (scene_camera)
            radius = 1.0
            distance = 1.1 * radius / math.sin(math.radians(FIT_VIEW_ANGLE_DEG / 2.0))
            angle = FIT_VIEW_ANGLE_DEG
        else:
            camera = self.pl.camera
            radius = self.fleet_radius_km()
            distance = float(np.linalg.norm(camera.position))
            angle = float(camera.view_angle)
        return lod.screen_budget(lod.footprint_px(radius, distance, angle, height))

    def fit_lod(self) -> bool:
        """Draw the level of detail the camera asks for; True when it changed (the mesh
        was rebuilt and the newest state redrawn). Cheap when it did not."""
        if self.meta is None or not self.arrays or self.map_view.active \
                or self.cluster_view.active:
            return False
        every = lod.thinning(self.lod_rows(), self.screen_budget(), self.lod_every)
        if every == self.lod_every:
            return False
        self.lod_every = every
        self.build(self.meta)
        self.redraw()
        return True

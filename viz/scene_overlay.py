"""Ground stations drawn over the scene: a marker and a name each, never under the lines.

A mixin of ``viz.fleet_scene.FleetScene``. Stations are few (a handful to a few dozen), so
they are drawn as a 2D overlay, placed anew at each render from where the camera is:
a marker on top of the contact lines that converge on it, hidden when the Earth stands
between the camera and the station (:func:`hidden_by_earth`), and its name beside it
unless a name of higher priority already took the place (:func:`declutter`). Both tests
are vectorized; the placement runs in VTK's render start, so labels follow the camera
while the operator turns it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from viz.vtk_actors import TextScaler, overlay_actor, text_actor

STATION_RGB = (1.0, 0.85, 0.2)
# The marker: a yellow square in a dark frame (pixels at a 720-row window).
STATION_MARKER_PX = 11
STATION_FRAME_PX = 15
# Names sit this far right of their marker (pixels at 720 rows).
LABEL_GAP_PX = 10
LABEL_FONT = 13
# The Earth's radius for the hiding test: the polar radius, so a station on the limb shows.
EARTH_OCCLUDER_KM = 6356.752
# Courier's advance is 0.6 of its size; its line is about 1.2.
CHAR_WIDTH_EM, LINE_HEIGHT_EM = 0.6, 1.2


def hidden_by_earth(points_km: np.ndarray, camera_km: Sequence[float],
                    radius_km: float = EARTH_OCCLUDER_KM) -> np.ndarray:
    """Which points the Earth's sphere hides from a camera, ``(n,)`` bool.

    A point is hidden when the segment from the camera to it passes inside the sphere
    before reaching it (the closest approach to the centre lies between the two and is
    under ``radius_km``).
    """
    points = np.asarray(points_km, dtype=float).reshape(-1, 3)
    camera = np.asarray(camera_km, dtype=float)
    d = points - camera
    length2 = np.einsum("ij,ij->i", d, d)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.clip(-(d @ camera) / length2, 0.0, 1.0)
    closest = camera + t[:, None] * d
    inside = np.einsum("ij,ij->i", closest, closest) < radius_km ** 2
    return inside & (t < 1.0)


def project(points_km: np.ndarray, matrix: np.ndarray, width: int,
            height: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel positions of world points, and which lie in front of the camera.

    Args:
        points_km: ``(n, 3)`` world points.
        matrix: The camera's 4x4 world-to-clip matrix (VTK's composite projection).
        width, height: The viewport in pixels.

    Returns:
        ``(n, 2)`` pixels (x right, y up from the bottom) and ``(n,)`` bool.
    """
    points = np.asarray(points_km, dtype=float).reshape(-1, 3)
    clip = np.c_[points, np.ones(len(points))] @ np.asarray(matrix, dtype=float).T
    w = clip[:, 3]
    in_front = w > 1e-9
    with np.errstate(invalid="ignore", divide="ignore"):
        ndc = clip[:, :2] / np.where(in_front, w, 1.0)[:, None]
    xy = (ndc + 1.0) * 0.5 * np.array([width, height], dtype=float)
    return xy, in_front


def _overlaps(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Which of ``others`` (``(m, 4)``) a box (``(4,)``) overlaps; ``x0, y0, x1, y1``."""
    return ((box[0] < others[:, 2]) & (others[:, 0] < box[2])
            & (box[1] < others[:, 3]) & (others[:, 1] < box[3]))


def declutter(boxes: np.ndarray, priority: np.ndarray, candidates: np.ndarray,
              obstacles: np.ndarray | None = None) -> np.ndarray:
    """Where each label goes so that none overlaps another or an obstacle (a marker).

    Greedy in priority order (highest first): each label takes the first of its places
    that is clear of the obstacles and of the labels placed before it, or none. The pass
    visits labels (a few dozen stations), each test against all placed boxes at once.

    Args:
        boxes: ``(n, k, 4)`` ``x0, y0, x1, y1`` pixels: ``k`` places per label, preferred
            first (``(n, 4)``: one place each).
        priority: ``(n,)`` larger first; ties keep the given order.
        candidates: ``(n,)`` bool, the labels that may show at all (visible ones).
        obstacles: ``(m, 4)`` boxes no label may cover.

    Returns:
        ``(n,)`` the place each label took, -1 for none.
    """
    b = np.asarray(boxes, dtype=float)
    if b.ndim == 2:
        b = b[:, None, :]
    taken = [np.zeros((0, 4)) if obstacles is None
             else np.asarray(obstacles, dtype=float).reshape(-1, 4)]
    placed = np.full(len(b), -1)
    wanted = np.asarray(candidates, dtype=bool)
    for i in np.argsort(-np.asarray(priority, dtype=float), kind="stable"):
        if not wanted[i]:
            continue
        occupied = np.concatenate(taken)
        for place, box in enumerate(b[i]):
            if not _overlaps(box, occupied).any():
                placed[i] = place
                taken.append(box[None, :])
                break
    return placed


def camera_matrix(renderer: Any) -> tuple[np.ndarray, int, int]:
    """The active camera's world-to-clip matrix and the viewport size in pixels."""
    width, height = renderer.GetSize()
    m = renderer.GetActiveCamera().GetCompositeProjectionTransformMatrix(
        width / max(height, 1), -1.0, 1.0)
    matrix = np.array([[m.GetElement(i, j) for j in range(4)] for i in range(4)])
    return matrix, width, height


def _points_actor(renderer: Any, colour: tuple[float, float, float]) -> tuple[Any, Any]:
    """A 2D actor drawing square points at pixel positions (its polydata to fill)."""
    import vtk

    poly = vtk.vtkPolyData()
    return overlay_actor(renderer, poly, colour), poly


def _set_points(poly: Any, xy: np.ndarray) -> None:
    import vtk
    from vtkmodules.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray

    points = vtk.vtkPoints()
    points.SetData(numpy_to_vtk(np.c_[xy, np.zeros(len(xy))].astype(np.float32), deep=True))
    verts = vtk.vtkCellArray()
    ids = np.arange(len(xy) + 1, dtype=np.int64)  # one vertex per cell: offsets 0, 1, 2..
    verts.SetData(numpy_to_vtkIdTypeArray(ids, deep=True),
                  numpy_to_vtkIdTypeArray(ids[:-1].copy(), deep=True))
    poly.SetPoints(points)
    poly.SetVerts(verts)
    poly.Modified()


class StationOverlay:
    """Station markers and names of a ``FleetScene``, placed at each render.

    The host provides the plotter, the text scaler, whether labels show, and sets
    :attr:`station_view` (the stations in the view frame) and :attr:`station_priority`
    (contacts per station) whenever it draws a state.
    """

    pl: Any
    text: TextScaler
    show_labels: bool

    def _build_station_overlay(self, names: Sequence[str]) -> None:
        renderer = self.pl.renderer
        for actor in getattr(self, "_overlay_actors", []):
            renderer.RemoveViewProp(actor)
        for label in getattr(self, "station_labels", []):
            self.text.discard(label.GetTextProperty())
        self.station_names = [str(name) for name in names]
        # "Fairbanks (Alaska Satellite Facility)" -> "Fairbanks", for where space is short.
        self.station_short_names = [name.split(" (")[0].strip() or name
                                    for name in self.station_names]
        self.station_view = np.zeros((len(names), 3))
        self.station_priority = np.zeros(len(names))
        self.station_shown = np.zeros(len(names), dtype=bool)
        self.label_shown = np.zeros(len(names), dtype=bool)
        self._frame_actor, self._frame_poly = _points_actor(renderer, (0.05, 0.05, 0.05))
        self._marker_actor, self._marker_poly = _points_actor(renderer, STATION_RGB)
        self.station_labels = [
            text_actor(renderer, 0.0, 0.0, size=LABEL_FONT, valign="centered",
                       colour=STATION_RGB, bold=True) for _ in names]
        for label, name in zip(self.station_labels, self.station_names, strict=True):
            label.GetPositionCoordinate().SetCoordinateSystemToDisplay()
            label.SetInput(name)
            # A dark plate behind the name: legible over a field of thousands of nodes.
            prop = label.GetTextProperty()
            prop.SetBackgroundColor(0.0, 0.0, 0.0)
            prop.SetBackgroundOpacity(0.6)
            self.text.add(prop, LABEL_FONT)
        self._overlay_actors = [self._frame_actor, self._marker_actor, *self.station_labels]
        if not getattr(self, "_overlay_observer", None):
            self._overlay_observer = renderer.AddObserver(
                "StartEvent", lambda *_: self.place_stations())

    def place_stations(self) -> None:
        """Markers of the stations the camera sees, names where they fit (at each render)."""
        renderer = self.pl.renderer
        n = len(self.station_names)
        if not n:
            return
        camera = renderer.GetActiveCamera().GetPosition()
        matrix, width, height = camera_matrix(renderer)
        xy, in_front = project(self.station_view, matrix, width, height)
        visible = in_front & ~hidden_by_earth(self.station_view, camera)
        visible &= np.isfinite(xy).all(axis=1)
        self.station_shown = visible
        scale = self.text.scale
        _set_points(self._marker_poly, xy[visible])
        _set_points(self._frame_poly, xy[visible])
        self._marker_actor.GetProperty().SetPointSize(STATION_MARKER_PX * scale)
        self._frame_actor.GetProperty().SetPointSize(STATION_FRAME_PX * scale)
        if not self.show_labels:
            self.label_shown = np.zeros(n, dtype=bool)
        else:
            self._place_labels(xy, visible, scale)
        for label, shown in zip(self.station_labels, self.label_shown, strict=True):
            label.SetVisibility(bool(shown))

    def _text_boxes(self) -> np.ndarray:
        """Where the HUD's text blocks are on screen (``(m, 4)`` pixels): no name there."""
        renderer = self.pl.renderer
        boxes = []
        for actor in self.hud_blocks():
            if not actor.GetVisibility() or not actor.GetInput():
                continue
            box = [0.0] * 4
            actor.GetBoundingBox(renderer, box)  # relative to the actor's anchor
            x, y = actor.GetPositionCoordinate().GetComputedDisplayValue(renderer)
            boxes.append((x + box[0], y + box[2], x + box[1], y + box[3]))
        return np.array(boxes, dtype=float).reshape(-1, 4)

    def hud_blocks(self) -> list[Any]:
        """The screen-anchored text actors station names must keep clear of (the host's)."""
        return []

    def _place_labels(self, xy: np.ndarray, visible: np.ndarray, scale: float) -> None:
        """Each visible station's name right of its marker, else left; where neither fits,
        its short name (before any parenthesis: "Fairbanks") right, else left; else none."""
        font = LABEL_FONT * scale
        gap = LABEL_GAP_PX * scale
        half = 0.5 * LINE_HEIGHT_EM * font
        x, y = xy[:, 0], xy[:, 1]
        places, texts = [], []
        for names in (self.station_names, self.station_short_names):
            widths = np.array([len(name) for name in names]) * CHAR_WIDTH_EM * font
            places += [np.c_[x + gap, y - half, x + gap + widths, y + half],
                       np.c_[x - gap - widths, y - half, x - gap, y + half]]
            texts += [names, names]
        marker = 0.5 * STATION_FRAME_PX * scale
        markers = np.c_[x - marker, y - marker, x + marker, y + marker][visible]
        obstacles = np.concatenate([markers, self._text_boxes()])
        place = declutter(np.stack(places, axis=1), self.station_priority, visible,
                          obstacles=obstacles)
        self.label_shown = place >= 0
        for i in np.flatnonzero(self.label_shown):
            label = self.station_labels[i]
            text = texts[place[i]][i]
            if label.GetInput() != text:
                label.SetInput(text)
            prop = label.GetTextProperty()
            if place[i] % 2 == 0:
                prop.SetJustificationToLeft()
                label.SetPosition(float(x[i] + gap), float(y[i]))
            else:
                prop.SetJustificationToRight()
                label.SetPosition(float(x[i] - gap), float(y[i]))

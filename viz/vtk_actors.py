"""Small VTK actor factories the 3D viewer builds its overlays and decoration from.

Text anchored on the screen or at a world point, rings around a node, camera-facing
labels and the star field. None of them is pickable: clicks select nodes only. VTK loads
when one is first built, so importing this module stays cheap.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Text colour of the HUD and of any overlay that does not pick its own.
HUD_COLOUR = (0.85, 0.92, 1.0)
# Font sizes are given for a window this many pixels high and scale with its height.
REFERENCE_HEIGHT_PX = 720
# Never smaller than this, so a small preview window stays legible.
MIN_FONT_PX = 9


class TextScaler:
    """Keeps every text of the scene at a size proportional to the window's height.

    Each text property is registered with its size at :data:`REFERENCE_HEIGHT_PX`;
    :meth:`fit` sets them all for a window height (a 1080-row window gets 1.5 times the
    720-row sizes, 4K 3 times), so the HUD reads the same on a laptop and on an ops wall.
    """

    def __init__(self) -> None:
        self._props: dict[int, tuple[Any, float]] = {}
        self.scale = 1.0
        self.height = REFERENCE_HEIGHT_PX

    def add(self, prop: Any, size: float) -> None:
        """Register a ``vtkTextProperty`` with its size at the reference height."""
        self._props[id(prop)] = (prop, size)
        prop.SetFontSize(self.size(size))

    def discard(self, prop: Any) -> None:
        """Stop scaling a text property (its actor was removed)."""
        self._props.pop(id(prop), None)

    def size(self, base: float) -> int:
        """The font size in pixels for a reference size at the current height."""
        return max(MIN_FONT_PX, round(base * self.scale))

    def fit(self, height: int) -> bool:
        """Scale every registered text for a window ``height`` pixels high.

        Returns:
            Whether the height changed (and the sizes with it).
        """
        if height == self.height or height <= 0:
            return False
        self.height = height
        self.scale = height / REFERENCE_HEIGHT_PX
        for prop, base in self._props.values():
            prop.SetFontSize(self.size(base))
        return True


def text_actor(renderer: Any, x: float, y: float, *, size: int, halign: str = "left",
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


def ring_actor(renderer: Any, radius_px: float, colour: tuple[float, float, float]) -> Any:
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


def label_actor(renderer: Any, text: str, colour: tuple[float, float, float],
                size: int) -> Any:
    """A camera-facing text label in the scene (cheap: no label-placement pass); the 2D
    map's station names (viz.map_view)."""
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
    renderer.AddViewProp(actor)
    return actor


def overlay_actor(renderer: Any, poly: Any, colour: tuple[float, float, float]) -> Any:
    """A 2D actor drawing ``poly`` (a ``vtkPolyData`` in display pixels) in one colour,
    unpickable, added to ``renderer``."""
    import vtk

    mapper = vtk.vtkPolyDataMapper2D()
    mapper.SetInputData(poly)
    actor = vtk.vtkActor2D()
    actor.SetMapper(mapper)
    actor.GetProperty().SetColor(*colour)
    actor.PickableOff()
    renderer.AddViewProp(actor)
    return actor


def star_field(n: int = 1500, radius_km: float = 150_000.0) -> Any:
    """A fixed, seeded star field in the inertial frame (decoration only)."""
    import pyvista as pv

    rng = np.random.default_rng(7)
    v = rng.normal(size=(n, 3))
    v *= radius_km / np.linalg.norm(v, axis=1, keepdims=True)
    mesh = pv.PolyData(v.astype(np.float32))
    brightness = (rng.power(4.0, n) * 200 + 40).astype(np.uint8)
    mesh.point_data["rgb"] = np.repeat(brightness[:, None], 3, axis=1)
    return mesh

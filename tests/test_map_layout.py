"""The 2D map clear of the HUD's fleet panel and of the colour bar with its limit marks,
at the sizes an ops wall uses (issue 16 review: at 1280x720 and 1920x1080 the map ran
under both). Rendered for real offscreen; the boxes are the text's own, measured by VTK's
text renderer."""

from __future__ import annotations

import numpy as np
import pytest

from viz import map_view
from viz.viewer import ViewerApp, ViewOptions, prefer_egl

prefer_egl()
pv = pytest.importorskip("pyvista")

from maputil import EngineStates  # noqa: E402
from test_map_view import display_xy, press  # noqa: E402


def text_box(actor, renderer) -> tuple[float, float, float, float]:
    """(left, right, bottom, top) in display pixels of a 2D text actor."""
    box = [0.0] * 4
    actor.GetBoundingBox(renderer, box)  # about the actor's anchor
    x, y = actor.GetPositionCoordinate().GetComputedDisplayValue(renderer)
    return x + box[0], x + box[1], y + box[2], y + box[3]


def bar_box(app: ViewerApp) -> tuple[float, float, float, float]:
    """The colour bar with its annotations (the limit marks on its left) and labels."""
    import vtk

    bar, renderer = app.scene.bar, app.pl.renderer
    rect = [0] * 4
    bar.GetScalarBarRect(rect, renderer)  # x, y, width, height of the colour strip
    widest = 0
    measure = vtk.vtkTextRenderer()
    lut = bar.GetLookupTable()
    for i in range(lut.GetNumberOfAnnotatedValues()):
        extent = [0] * 4
        measure.GetBoundingBox(bar.GetAnnotationTextProperty(), lut.GetAnnotation(i),
                               extent, app.pl.render_window.GetDPI())
        widest = max(widest, extent[1] - extent[0])
    # The annotation sits left of the strip, past its leader line.
    left = rect[0] - widest - bar.GetAnnotationLeaderPadding() - 1
    return left, rect[0] + rect[2], rect[1], rect[1] + rect[3]


@pytest.mark.parametrize("size", [(1280, 720), (1920, 1080)])
def test_the_map_is_clear_of_the_fleet_panel_and_the_colour_bar(size):
    twin = EngineStates("default", 60.0)
    app = ViewerApp(pv.Plotter(off_screen=True, window_size=list(size)), None, None,
                    ViewOptions(show_fps=False, trails=False))
    try:
        app.apply_meta(twin.meta)
        assert app.apply_state(twin.step())
        press(app, "v")
        assert app.scene.map_view.active
        app.render()
        corners = map_view.to_world(np.array([-180.0, 180.0]), np.array([-90.0, 90.0]), 0.0)
        cols, rows = display_xy(app, corners)
        map_left, map_right = float(cols.min()), float(cols.max())
        map_top = float(size[1] - 1 - rows.min())  # display y from the bottom
        assert map_left >= 0 and map_right > 0.6 * size[0], (map_left, map_right)
        renderer = app.pl.renderer
        fleet = text_box(app.scene.hud_fleet, renderer)
        # The fleet panel: either right of the map or above it.
        assert fleet[0] > map_right or fleet[2] > map_top, (fleet, map_right, map_top)
        bar = bar_box(app)
        assert bar[0] > map_right, (bar, map_right)
    finally:
        app.pl.close()


def test_the_hud_names_the_map_as_the_view():
    """On the map the HUD's view line said "inertial (GCRS)", the globe's frame."""
    twin = EngineStates("default", 60.0)
    app = ViewerApp(pv.Plotter(off_screen=True, window_size=[960, 540]), None, None,
                    ViewOptions(show_fps=False, trails=False))
    try:
        app.apply_meta(twin.meta)
        assert app.apply_state(twin.step())
        app.refresh_hud(force=True)
        assert "view: inertial (GCRS)" in app.scene.hud_top.GetInput()
        press(app, "v")
        app.refresh_hud(force=True)
        shown = app.scene.hud_top.GetInput()
        assert "view: 2D map (Earth-fixed)" in shown and "GCRS" not in shown
        press(app, "v")
        app.refresh_hud(force=True)
        assert "view: inertial (GCRS)" in app.scene.hud_top.GetInput()
    finally:
        app.pl.close()

"""`odc web`'s 3D view: its text follows the browser's size, as `odc view`'s follows the
window's (issue 16: "scale it with the window"; at 1920x1080 the page kept 720-row text).

trame renders the scene's window itself after setting it to the browser's size; this test
does the same to a real off-screen WebView (EGL) and reads the HUD's font sizes.
"""

from __future__ import annotations

import pytest

from viz.viewer import prefer_egl

prefer_egl()
pytest.importorskip("pyvista")
pytest.importorskip("trame")

NOWHERE = "tcp://127.0.0.1:1"


def test_the_web_scene_text_scales_with_the_browser_size() -> None:
    from viz.web.view3d import WebView

    view = WebView(None, NOWHERE, NOWHERE)
    try:
        scene, window = view.app.scene, view.plotter.render_window
        hud = scene.hud_fleet.GetTextProperty()
        at_720 = hud.GetFontSize()
        for width, height, scale in ((1920, 1080, 1.5), (3840, 2160, 3.0), (1280, 720, 1.0)):
            window.SetSize(width, height)  # what trame does on a browser resize...
            window.Render()  # ...then it renders the window itself
            assert scene.text.scale == pytest.approx(scale), (width, height)
            assert hud.GetFontSize() == max(round(at_720 * scale), 1), (width, height)
    finally:
        view.close()

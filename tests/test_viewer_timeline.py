"""The replay's timeline bar in the 3D view (viz.viewer_timeline): against a real `odc
replay` process, rendered offscreen, clicked and dragged through the real VTK interactor."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from viz import viewer_timeline
from viz.viewer import ViewerApp, ViewOptions, prefer_egl

prefer_egl()
pv = pytest.importorskip("pyvista")

from recordutil import record_live, replay_process, write_recording  # noqa: E402
from viewerstate import tick_until  # noqa: E402

from viz.stream import CommandClient, StreamClient  # noqa: E402

SIZE = (960, 540)
# States are recorded every 0.1 s: a seek lands on the nearest one.
STATE_INTERVAL_S = 0.1


def _wait(app: ViewerApp, condition, timeout_s: float = 10.0) -> bool:
    return tick_until(app, condition, timeout_s)


def _mouse(app: ViewerApp, event: str, x: float, y: float) -> None:
    """A real mouse event through the window's interactor, at display pixel (x, y)."""
    interactor = app.pl.iren.interactor
    interactor.SetEventPosition(int(x), int(y))
    interactor.InvokeEvent(event)


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    messages, run_id = record_live(200, rate_hz=10.0, warp=1.0)
    return write_recording(tmp_path_factory.mktemp("rec") / "default.mcap", messages,
                           run_id=run_id)


def test_the_bar_shows_the_span_and_a_click_seeks_there(recording: Path) -> None:
    with replay_process(recording, "--paused") as (_proc, addresses):
        stream = StreamClient(addresses["stream"])
        commands = CommandClient(addresses["commands"], timeout_s=5.0)
        app = ViewerApp(pv.Plotter(off_screen=True, window_size=list(SIZE)), stream, commands,
                        ViewOptions(show_fps=False))
        bar = app.timeline
        try:
            assert not bar.visible  # nothing heard yet: no bar
            assert app.wait_for_frame(30.0), "no meta and frame from the replay"
            assert _wait(app, lambda: bar.visible and app.replay is not None)
            start, end = (float(t) for t in app.replay["span_utc"])
            assert bar.span_utc == (start, end) and end - start > 19.0
            assert bar.start_text.GetInput().strip() == "12:00:00"
            assert bar.end_text.GetInput().strip() == "12:00:20"
            # On the image: the bar's unplayed part in its colour, across the window.
            app.render()
            image = app.pl.screenshot(return_img=True)[..., :3].astype(int)
            x0, x1, y0, y1 = bar.bar_pixels()
            row = SIZE[1] - 1 - round((y0 + y1) / 2)
            track = np.array(viewer_timeline.TRACK_RGB) * 255
            for x in np.linspace(x0 + 0.2 * (x1 - x0), x1 - 3, 5):
                assert np.abs(image[row, round(x)] - track).sum() < 20, (x, image[row, round(x)])
            # It ends there: left of the bar is its start time or the scene, not the bar.
            beyond = [image[row, round(x0) - d] for d in (4, 8, 12, 16)]
            assert all(np.abs(p - track).sum() > 30 for p in beyond), beyond

            # A click three quarters along seeks to three quarters of the span.
            x, y = x0 + 0.75 * (x1 - x0), (y0 + y1) / 2
            _mouse(app, "LeftButtonPressEvent", x, y)
            _mouse(app, "LeftButtonReleaseEvent", x, y)
            asked = start + (int(x) - x0) / (x1 - x0) * (end - start)
            reply = bar.last_reply
            assert reply is not None and reply["ok"], reply
            assert abs(reply["asked_utc"] - asked) < 1e-6
            assert abs(reply["t_utc"] - asked) <= STATE_INTERVAL_S / 2 + 1e-6
            assert app.message == (f"seek {viewer_timeline.clock_text(asked)}: "
                                   f"at {viewer_timeline.clock_text(reply['t_utc'])}")
            # The replay moved and says so; the next frame drawn is from there.
            assert _wait(app, lambda: abs(app.scene.header.get("t_utc", 0) - reply["t_utc"])
                         < 1e-6 and abs(app.replay["position_utc"] - reply["t_utc"]) < 1e-6)
            app.render()
            image = app.pl.screenshot(return_img=True)[..., :3].astype(int)
            played = np.array(viewer_timeline.PLAYED_RGB) * 255
            assert np.abs(image[row, round(x0 + 0.5 * (x1 - x0))] - played).sum() < 20
            assert np.abs(image[row, round(x0 + 0.9 * (x1 - x0))] - track).sum() < 20
            assert bar.now_text.GetInput() == viewer_timeline.clock_text(reply["t_utc"])

            # A drag: press at a quarter, move, release at a half; the replay ends there.
            xq, xh = x0 + 0.25 * (x1 - x0), x0 + 0.5 * (x1 - x0)
            _mouse(app, "LeftButtonPressEvent", xq, y)
            assert bar.dragging
            _mouse(app, "MouseMoveEvent", (xq + xh) / 2, y + 30)  # off the bar: still drags
            time.sleep(viewer_timeline.DRAG_SEEK_S)
            _mouse(app, "LeftButtonReleaseEvent", xh, y + 30)
            assert not bar.dragging
            half = start + (int(xh) - x0) / (x1 - x0) * (end - start)
            assert bar.last_reply["ok"]
            assert abs(bar.last_reply["t_utc"] - half) <= STATE_INTERVAL_S / 2 + 1e-6
            assert _wait(app, lambda: abs(app.replay["position_utc"] - bar.last_reply["t_utc"])
                         < 1e-6)

            # A click away from the bar is not the bar's: no seek.
            bar.last_reply = None
            _mouse(app, "LeftButtonPressEvent", x, y1 + 40)
            _mouse(app, "LeftButtonReleaseEvent", x, y1 + 40)
            assert bar.last_reply is None and not bar.dragging
        finally:
            app.pl.close()
            stream.close()
            commands.close()

"""`odc view` on a replay: rendered for real (offscreen), its HUD says REPLAY and the recorded
time where it says LIVE on a twin, and follows a seek."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from viz.viewer import ViewerApp, ViewOptions, prefer_egl

prefer_egl()
pv = pytest.importorskip("pyvista")

from recordutil import record_live, write_recording  # noqa: E402
from twinutil import ANY_PORT  # noqa: E402
from viewerstate import tick_until  # noqa: E402

from twin.recording.playback import Recording  # noqa: E402
from twin.recording.replay import ReplayAddresses, ReplayServer  # noqa: E402
from viz.stream import CommandClient, StreamClient  # noqa: E402

START = 1774008000.0  # the default scenario's epoch, 2026-03-20T12:00:00Z


def _wait(app: ViewerApp, condition, timeout_s: float = 10.0) -> bool:
    return tick_until(app, condition, timeout_s)


def test_the_hud_says_replay_and_the_recorded_time(tmp_path: Path) -> None:
    messages, run_id = record_live(100, rate_hz=10.0, warp=1.0)
    path = write_recording(tmp_path / "default.mcap", messages, run_id=run_id)
    recording = Recording(path)
    server = ReplayServer(recording, ReplayAddresses(ANY_PORT, ANY_PORT), paused=True,
                          meta_interval_s=0.5)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    stream = StreamClient(server.bound.pub)
    commands = CommandClient(server.bound.command, timeout_s=5.0)
    app = ViewerApp(pv.Plotter(off_screen=True, window_size=[640, 360]), stream, commands,
                    ViewOptions(show_fps=False))
    try:
        assert app.wait_for_frame(30.0), "no meta and frame from the replay"
        hud = app.scene.hud_top.GetInput
        assert _wait(app, lambda: "REPLAY" in hud())
        assert hud().startswith("ODC Twin — REPLAY default")
        assert "recorded 2026-03-20 12:00:00 UTC" in hud() and "LIVE" not in hud()
        assert "PAUSED" in hud() and "12:00:00 [|" in hud()
        assert commands.send("seek", t_utc=START + 5.0)["ok"]
        assert _wait(app, lambda: "recorded 2026-03-20 12:00:05 UTC" in hud()), hud()
        assert "[==========|----------] 12:00:10  50%" in hud()
        assert stream.bad.count == 0 and stream.restarts == 0
    finally:
        app.pl.close()
        stream.close()
        commands.close()
        server.stop()
        thread.join(10)
        server.close()
        recording.close()

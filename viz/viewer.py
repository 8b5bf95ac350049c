"""The operator's 3D viewer (``odc view``): the fleet around a turning Earth, live (pyvista).

``ViewerApp`` follows the stream (``viz.stream``), draws only the newest frame into a
``viz.fleet_scene.FleetScene`` and, until the next one, moves the fleet on with its
published velocities at the screen's rate (``viz.motion``, by the twin's warp), keeps the
HUD (``viz.viewer_hud``) and turns the operator's keys (``viz.keymap``) and clicks into
view changes and twin commands (``viz.viewer_keys``). Nothing here models physics:
every number comes from the stream.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from twin.protocol.codec import Message
from viz import motion
from viz.checks import BadMessages, check_meta
from viz.fleet_scene import FleetScene, ViewOptions
from viz.quantity import Catalog
from viz.view_subscription import ViewerSubscribe
from viz.viewer_hud import ViewerHud
from viz.viewer_keys import ViewerKeys
from viz.viewer_timeline import ReplayTimeline, clock_text

__all__ = ["ViewOptions", "ViewerApp", "display_missing", "prefer_egl"]

log = logging.getLogger("odc.viz.viewer")
# Redraws between states (moving the fleet on with its velocities) at most this often: a
# little under the window's 15 ms timer, so that every tick redraws (about 60 fps) and
# the two periods never beat into every other tick.
MOTION_INTERVAL_S = 0.012


def display_missing() -> str | None:
    """Why a window cannot open here (no X or Wayland display on Linux), or None.

    Checked before VTK loads: VTK would print two warnings and fall back to drawing
    nowhere, and ``odc view`` would seem to run.
    """
    if not sys.platform.startswith("linux"):
        return None
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return None
    return "no display (neither DISPLAY nor WAYLAND_DISPLAY is set)"


def prefer_egl() -> None:
    """Render headless through EGL when no X display is available (call before VTK loads).

    Without it VTK first tries X, logs a warning, then falls back; with it, the Mesa EGL
    (llvmpipe on CPU-only machines) context opens directly.
    """
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")


class ViewerApp(ViewerHud, ViewerKeys, ViewerSubscribe):
    """Follows the stream, draws the newest state, and turns keys into twin commands.

    Args:
        plotter: A pyvista Plotter (on or off screen).
        stream: A ``viz.stream.StreamClient`` (or None for a static scene in tests).
        commands: A ``viz.stream.CommandClient`` (or None: keys that command are ignored).
        options: View options.
    """

    def __init__(self, plotter: Any, stream: Any, commands: Any, options: ViewOptions) -> None:
        self.pl = plotter
        self.stream = stream
        self.commands = commands
        self.options = options
        self.scene = FleetScene(plotter, options)
        self.meta: Mapping[str, Any] | None = None
        self.meta_signature: tuple | None = None
        self.frames_drawn = 0
        self.renders = 0  # screen frames: states drawn and the motion between them
        self.states_received = 0
        self.states_skipped = 0
        self.rejected_states = 0
        self.events: deque[str] = deque(maxlen=4)
        # Messages the scene could not take (the stream counts the ones it refused).
        self.unusable = BadMessages(log)
        self.message = ""
        self.start_on_cluster = False  # --cluster: the close-up once the meta has a cluster
        self._frame_times: deque[float] = deque(maxlen=60)
        self._last_meta_request = -math.inf
        self._last_hud = -math.inf
        self.last_receive_wall = math.nan
        self.latencies_s: deque[float] = deque(maxlen=10_000)
        self._bind_keys()
        # Above the twin's full-state threshold: subscribe for what is drawn (issue 22).
        self._init_subscription(commands)
        self._running = True
        self._shown = False
        # Move the fleet on between states with the published velocities (viz.motion).
        self.interpolate = True
        self._last_motion = -math.inf
        # The twin's clock as last heard (state header or heartbeat): paused, warp.
        self.clock: dict[str, Any] = {}
        # The newest `replay` header while following a replay (odc replay), else None.
        self.replay: Mapping[str, Any] | None = None
        # The replay's timeline bar: click or drag to seek (viz.viewer_timeline).
        self.timeline = ReplayTimeline(self.pl.renderer, lambda: tuple(self.pl.window_size),
                                       self._seek_from_timeline, self.scene.text)
        if self.pl.iren is not None:  # the window's mouse: click or drag on the bar
            self.timeline.attach(self.pl.iren.interactor, self._after_timeline)

    def render(self) -> None:
        """Render now. Off screen, pyvista renders nothing before ``show``: show once first."""
        if self.pl.off_screen and not self._shown:
            self._shown = True
            self.pl.show(auto_close=False, interactive=False)
        self.scene.fit_text()
        if self.scene.fit_lod():  # the zoom crossed a level of detail (viz.scene_lod)
            self.refresh_hud(force=True)
        self.pl.render()
        self.renders += 1
        self._frame_times.append(time.monotonic())  # the HUD's fps: frames on the screen

    # ------------------------------------------------------------------ stream
    def tick(self, timeout_ms: float = 0.0) -> bool:
        """Take what arrived; draw the newest state. Returns whether a frame was drawn."""
        drawn = False
        if self.stream is not None:
            batch = self.stream.poll(timeout_ms)
            now = time.monotonic()
            drawn = self.take(batch)
            if drawn:
                self.render()
                self.latencies_s.append(time.monotonic() - now)
            elif self.interpolate:
                self.move_on()
            if self.meta is None:
                self.request_meta()
            self.follow_subscription()
            self.timeline.update(self.replay)  # shown while following a replay
        self.refresh_hud(force=drawn)
        return drawn

    def sim_since_frame(self, now: float | None = None) -> float:
        """Simulated seconds since the newest state, by the twin's clock as last heard."""
        now = time.monotonic() if now is None else now
        return motion.extrapolation_s(
            now - self.last_receive_wall, float(self.clock.get("warp", 0.0)),
            bool(self.clock.get("paused")), self.scene.frame_gap_s)

    def move_on(self, now: float | None = None, *, every_s: float = MOTION_INTERVAL_S) -> bool:
        """Between states: draw the fleet where it is now (velocities), at most every
        ``every_s``. Returns whether it rendered."""
        now = time.monotonic() if now is None else now
        if not self.scene.arrays or now - self._last_motion < every_s:
            return False
        dt = self.sim_since_frame(now)
        if dt == self.scene.sim_dt_s:
            return False  # paused, or the stream stalled past its bound: nothing moved
        self._last_motion = now
        self.scene.advance(dt)
        self.render()
        return True

    def take(self, batch: Any) -> bool:
        """Apply one `viz.stream.Batch` to the scene, without rendering.

        Each message is taken on its own: one the scene cannot use is counted in
        :attr:`unusable` and shown in the HUD, and the ones after it are taken as usual.

        Returns:
            Whether a state was drawn into the scene.
        """
        if batch.restarted:
            self.message = "twin restarted"
            self.forget_subscription()
            if self.meta:
                self.scene.trail_buffer.reset()
            self.request_meta()
        if self.stream is not None and not self.stream.replaying:
            self.replay = None  # its replay messages stopped: a twin may serve here now
        if batch.replay is not None:
            self.replay = batch.replay.header
            # A replay's own clock: the recorded headers carry the recorded twin's.
            self.clock.update(paused=self.replay["paused"], warp=float(self.replay["warp"]))
        if batch.seeked and self.meta:
            self.scene.trail_buffer.reset()  # a trail across the jump would join two times
        if batch.meta is not None:
            self._guarded("meta", self.apply_meta, batch.meta.header)
        if batch.heartbeat is not None:
            # Paused twins publish no states; heartbeats still say paused and warp.
            self._take_clock(batch.heartbeat.header)
        for event in batch.events:
            self._guarded("event", self.add_event, event.header)
        if batch.alarms is not None:  # the twin's table: a late viewer sees every alarm
            self.alarm_table = batch.alarms.header
        self.states_skipped += batch.states_skipped
        state = batch.state
        if state is not None:
            self.states_received += 1 + batch.states_skipped
            # A reduced state has no node rows: the subscription's messages are drawn.
            self.reduced = state.header.get("reduced") is True
            if self.reduced:
                self._take_clock(state.header)
                state = None
        if state is None and batch.selections and self.reduced:
            state = self._guarded("state", self.selection_state, batch.selections)
        if state is None:
            return False
        self.last_receive_wall = time.monotonic()
        return bool(self._guarded("state", self.apply_state, state))

    def _guarded(self, topic: str, take: Callable[[Any], Any], message: Any) -> Any:
        """``take(message)``; an exception is counted as a bad message, never raised."""
        try:
            return take(message)
        except Exception as exc:
            self.unusable.add(f"unusable_{topic}",
                              f"{topic} not drawn ({type(exc).__name__}: {exc})")
            return None

    def _take_clock(self, header: Mapping[str, Any]) -> None:
        """``paused`` and ``warp`` from a state or heartbeat header (checked by the stream)."""
        if self.replay is not None:
            return  # the recorded twin's clock; the replay's own is in its replay messages
        paused, warp = header.get("paused"), header.get("warp")
        if isinstance(paused, bool):
            self.clock["paused"] = paused
        if isinstance(warp, int | float) and not isinstance(warp, bool) and \
                0 < warp < math.inf:
            self.clock["warp"] = float(warp)

    @property
    def bad_messages(self) -> int:
        """Stream messages dropped as bad: by the stream's checks and by the scene."""
        stream_bad = self.stream.bad.count if self.stream is not None else 0
        return stream_bad + self.unusable.count

    @property
    def last_bad(self) -> str:
        """Why the newest bad message was dropped (shortened), or ``""``."""
        stream_bad = self.stream.bad if self.stream is not None else None
        if stream_bad is None or (self.unusable.count and
                                  self.unusable.last_wall >= stream_bad.last_wall):
            return self.unusable.last
        return stream_bad.last

    def request_meta(self, force: bool = False) -> None:
        """Ask the twin for meta (at most every 2 s), so a late joiner draws at once."""
        now = time.monotonic()
        if self.commands is None or (not force and now - self._last_meta_request < 2.0):
            return
        self._last_meta_request = now
        reply = self.commands.send("meta")
        if reply.get("ok") and isinstance(reply.get("meta"), dict):
            self._guarded("meta", self.apply_meta, reply["meta"])

    def apply_meta(self, meta: Mapping[str, Any]) -> None:
        """Rebuild the scene only if the fleet, stations or field catalog changed.

        Raises:
            WireError: for a meta that `viz.checks.check_meta` refuses (nothing changes).
        """
        check_meta(meta)
        if meta is self.meta and self.meta_signature is not None:
            return  # the twin repeated the meta in use (viz.meta_repeat): nothing changed
        sats = meta.get("sats", {})
        signature = (
            meta.get("scenario", {}).get("name"), sats.get("n"), tuple(sats.get("ids", ())),
            tuple(s.get("name") for s in meta.get("stations", [])),
            tuple((f.get("name"), tuple(f.get("shape", ())), repr(f.get("limits")),
                   repr(f.get("display")), f.get("kind")) for f in meta.get("fields", [])),
        )
        self.meta = meta
        self.scene.catalog = Catalog(meta)  # display rules may change without a rebuild
        if signature != self.meta_signature:
            self.meta_signature = signature
            self.scene.build(meta)
            log.info("scene built for %s (%s sats)", signature[0], signature[1])
            if self.start_on_cluster and self.scene.cluster_view.available:
                self.start_on_cluster = False  # once: after that the key decides
                self.scene.show_map(False)
                self.scene.show_cluster(True)

    def apply_state(self, state: Message, *, connection: str | None = None) -> bool:
        if self.meta is None:
            return False
        if not self.scene.update(state):
            self.rejected_states += 1
            self.request_meta()  # probably a new scenario: ask what it is
            return False
        self._take_clock(state.header)
        self.scene.set_camera()
        self.frames_drawn += 1
        self.refresh_hud(force=True, connection=connection)
        return True

    # ------------------------------------------------------------------ map keys
    # The keymap's "ground_track" (g) and "next_view" (v): viz.ground_track, viz.map_view.
    def toggle_ground_track(self) -> None:
        on = self.scene.toggle_ground_track()
        self.message = f"ground track {'on' if on else 'off'}"

    def _seek_from_timeline(self, t_utc: float) -> Mapping[str, Any]:
        reply = self._command("seek", t_utc=t_utc)
        landed = reply.get("t_utc") if reply.get("ok") else None
        self.message = (f"seek {clock_text(t_utc)}: " +
                        (f"at {clock_text(landed)}" if isinstance(landed, float)
                         else str(reply.get("error", "?"))))
        return reply

    def _after_timeline(self) -> None:
        self.timeline.update(self.replay)
        self.refresh_hud(force=True)
        self.render()

    def next_view(self) -> None:
        """Globe, 2D map, then the cluster close-up when the twin has a cluster."""
        if self.scene.map_view.active:
            self.scene.show_map(False)
            if self.scene.cluster_view.available:
                self.scene.show_cluster(True)
        elif self.scene.cluster_view.active:
            self.scene.show_cluster(False)
        else:
            self.scene.show_map(True)
        self.message = ("2D map" if self.scene.map_view.active else "cluster close-up"
                        if self.scene.cluster_view.active else "globe")

    # ------------------------------------------------------------------ loops
    def wait_for_frame(self, timeout_s: float) -> bool:
        """Follow the stream until meta and a full frame are drawn (headless use)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.tick(timeout_ms=100.0):
                return True
        return False

    def run_interactive(self, poll_ms: int = 15) -> None:
        """Open the window and follow the stream until it is closed."""
        self.pl.enable_point_picking(
            callback=self.pick, use_picker=True, show_message=False, show_point=False,
            left_clicking=True, pickable_window=False,
        )

        def on_timer(_step: int) -> None:
            self.tick(0.0)
            if not self._running:
                self.pl.iren.terminate_app()

        self.pl.add_timer_event(max_steps=2**31 - 1, duration=poll_ms, callback=on_timer)
        with self.quit_on_interrupt():
            self.pl.show(title="ODC Twin — operator view")

    @contextlib.contextmanager
    def quit_on_interrupt(self) -> Iterator[None]:
        """Ctrl-C in the terminal quits like ``q``: the window's loop ends at its next timer
        tick, cleanly, instead of a KeyboardInterrupt inside VTK's C++ event loop (Python
        runs the handler when the timer calls back)."""

        def on_interrupt(_signum: int, _frame: Any) -> None:
            self.quit()

        previous = signal.signal(signal.SIGINT, on_interrupt)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

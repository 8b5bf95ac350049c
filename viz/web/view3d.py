"""The 3D view in a browser: the desktop viewer's own pyvista scene, rendered here (trame).

`odc web` keeps one ``viz.viewer.ViewerApp`` on an off-screen (EGL) plotter: the same
``FleetScene``, HUD and key handlers as `odc view`, fed by the same ``StreamClient``. trame's
remote view sends the browser a JPEG of it after each drawn state and while the operator
turns the camera, so the browser's cost does not grow with the fleet and no JavaScript
3D library is needed. Keys follow ``viz.keymap`` (the 3D view's entries); the twin's keys
(pause, step, warp) send commands through the same ``CommandClient`` and keys as the
terminal viewers, and the twin's answer (an error included) shows on the page and in the
HUD. Every browser tab sees the same scene (one camera, one selection).

Commands can wait for their reply (up to the client's timeout); they run on one worker
thread so the web server never stalls on them. Everything that touches VTK runs on the
server's event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from viz import hud_text, keymap
from viz.stream import CommandClient, StreamClient

log = logging.getLogger("odc.viz.web")

# The browser's KeyboardEvent.key for each keymap key name that differs (letters are
# themselves, case included: "O" is shift+o).
BROWSER_KEYS = {
    " ": "space", ".": "full_stop", "+": "plus", "=": "equals_sign", "-": "minus",
    "]": "right_square_bracket", "[": "left_square_bracket", "?": "question_mark",
    "/": "slash", ":": "colon", "Escape": "escape", "Enter": "enter",
}
# Keymap actions that send a command (run on the command thread) and the view's method.
COMMAND_ACTIONS = {
    "toggle_pause": lambda app: app.toggle_pause(),
    "step": lambda app: app.single_step(),
    "warp_up": lambda app: app.change_warp(2.0),
    "warp_down": lambda app: app.change_warp(0.5),
}
# Keymap actions that change only the view (run on the event loop: they touch VTK).
VIEW_ACTIONS: dict[str, Callable[[Any], Any] | str] = {
    "next_node": lambda app: app.cycle_node(1),
    "previous_node": lambda app: app.cycle_node(-1),
    "mirror": lambda app: app.go_to_mirror(),
    "next_field": lambda app: app.cycle_field(),
    "trails": lambda app: app.scene.toggle_trails(),
    "orbit": lambda app: app.scene.toggle_orbit(),
    "labels": lambda app: app.scene.toggle_labels(),
    "links": lambda app: app.scene.toggle_links(),
    "frame": lambda app: app.toggle_view(),
    "reset_camera": lambda app: app.scene.set_camera(force=True),
    "help": lambda app: app.toggle_help(),
    # The viewer's own methods where it has them (the ground track and the 2D map).
    "ground_track": "toggle_ground_track",
    "next_view": "next_view",
}
# Most images a second sent to the browsers while following the stream.
MAX_FPS = 10.0
# A click selects the visible node drawn within this many pixels of it.
PICK_RADIUS_PX = 12.0
EARTH_RADIUS_KM = 6371.0
# How often the stream is polled (seconds).
POLL_S = 0.02


def _quiet_closed_tabs(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """A send to a tab that just closed fails with a connection error: how tabs end, not
    an error worth a traceback. Everything else is reported as asyncio does."""
    if isinstance(context.get("exception"), ConnectionError):
        return
    loop.default_exception_handler(context)


def _behind_earth(eye: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Which points the Earth (a sphere of the mean radius) hides from ``eye`` (km)."""
    ray = points - eye
    length2 = np.maximum(np.sum(ray * ray, axis=1), 1e-9)
    # The point of each eye-to-node segment nearest the Earth's centre.
    t = np.clip(-(eye @ ray.T) / length2, 0.0, 1.0)
    nearest = eye + t[:, None] * ray
    return (np.sum(nearest * nearest, axis=1) < EARTH_RADIUS_KM**2) & (t < 1.0)


def browser_key_action(key: str) -> keymap.KeyAction | None:
    """The 3D view's keymap entry for a browser ``KeyboardEvent.key``, or None."""
    name = BROWSER_KEYS.get(key, key)
    for entry in keymap.for_viewer(keymap.VIEW):
        if name in entry.keys:
            return entry
    return None


class WebView:
    """The shared 3D scene of `odc web`: follows the stream, renders for trame, takes keys.

    Args:
        server: The trame server.
        pub, cmd: The twin's stream and command addresses.
        keys: CURVE client keys, or None.
        field: Colour field (None: the viewer's default).
    """

    def __init__(self, server: Any, pub: str, cmd: str, keys: Any = None,
                 field: str | None = None) -> None:
        import pyvista as pv

        from viz.viewer import ViewerApp, ViewOptions

        self.server = server
        self.stream = StreamClient(pub, keys=keys)
        # Its own socket, used only from the command thread (ZeroMQ sockets are not
        # shared between threads).
        self.commands = CommandClient(cmd, timeout_s=1.5, keys=keys)
        self.plotter = pv.Plotter(off_screen=True, window_size=[1280, 720])
        self.app = ViewerApp(self.plotter, self.stream, self.commands, ViewOptions(field=field))
        self.app.render()  # off screen, VTK draws nothing before pyvista's first show
        # trame renders the window itself, at the browser's size: the text follows that
        # size at every render, as in `odc view` (at 1080 rows it stayed 720-row small).
        self.plotter.render_window.AddObserver("StartEvent", self._fit_text)
        # Until the first state places it, the camera looks at the Earth from 5 radii (not
        # at the whole star sphere from outside, where pyvista would put it).
        camera = self.plotter.renderer.GetActiveCamera()
        camera.SetFocalPoint(0.0, 0.0, 0.0)
        camera.SetPosition(0.0, -5.0 * EARTH_RADIUS_KM, 1.5 * EARTH_RADIUS_KM)
        camera.SetViewUp(0.0, 0.0, 1.0)
        self.plotter.renderer.ResetCameraClippingRange()
        self.plotter.camera_set = True  # pyvista: the camera is placed, leave it
        # The help (`?`) lists the keys this page takes: the keymap's, as in the desktop.
        help_lines = [line for line in keymap.help_lines(keymap.VIEW) if "quit" not in line]
        self.app.scene.hud_help.SetInput("KEYS\n\n" + "\n".join(help_lines))
        self.command_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="odc-cmd")
        self.remote_view: Any = None
        self.images_pushed = 0
        self._last_push = 0.0
        self._pending_push = False
        self._meta_asked = -1e9
        self._meta_request: asyncio.Future | None = None
        self._task: asyncio.Task | None = None
        # The camera as a press found it: the click that ends a drag (the browser sends
        # one after every drag) moved it, and is not a pick.
        self._camera_at_press: tuple[float, ...] = ()
        style = self.plotter.iren.interactor.GetInteractorStyle()
        if style is not None:
            style.AddObserver("StartInteractionEvent", self._camera_pressed)

    def _fit_text(self, *_args: Any) -> None:
        self.app.scene.fit_text()

    # ------------------------------------------------------------------ keys
    def key(self, key: str) -> None:
        """A key from the browser (``KeyboardEvent.key``): what the keymap says it does."""
        entry = browser_key_action(key)
        if entry is None:
            return
        if entry.action in COMMAND_ACTIONS:
            loop = asyncio.get_running_loop()
            future = loop.run_in_executor(self.command_thread, self._run_command,
                                          entry.action)
            future.add_done_callback(lambda _f: self._after_key())
            self.app.message = f"{entry.help} …"
            self.publish_status()
            return
        handler = VIEW_ACTIONS.get(entry.action)
        if isinstance(handler, str):
            handler = getattr(type(self.app), handler, None)
        if handler is None:
            self.app.message = f"{entry.label}: {entry.help} is not in the browser view"
        else:
            try:
                handler(self.app)
            except Exception as exc:  # a failing key never takes the page down
                log.exception("key %r failed", key)
                self.app.message = f"error: {exc}"
        self._after_key()

    def _camera(self) -> tuple[float, ...]:
        # Position and focal point: VTK straightens the view up at every render.
        camera = self.plotter.renderer.GetActiveCamera()
        return (*camera.GetPosition(), *camera.GetFocalPoint())

    def _camera_pressed(self, *_args: Any) -> None:
        self._camera_at_press = self._camera()

    def click(self, event: Any) -> None:
        """A click on the image (trame's remote ``click``): select the node under it."""
        pressed, self._camera_at_press = self._camera_at_press, ()
        if pressed and not np.allclose(pressed, self._camera(), rtol=0.0, atol=1e-3):
            return  # the end of a drag: the camera moved (km)
        try:
            position = event["position"]
            x, y = float(position["x"]), float(position["y"])
        except (TypeError, KeyError, ValueError):
            return  # not what the remote view sends: ignored
        if not (0 <= x < 1e5 and 0 <= y < 1e5):
            return
        index = self.sat_at(x, y)
        if index >= 0:
            self.app.scene.select(index)
        self._after_key()

    def sat_at(self, x: float, y: float) -> int:
        """The visible node drawn nearest display pixel (x, y), y up; -1 if none is
        within PICK_RADIUS_PX. Vectorized over the fleet: a projection, no VTK picker. On
        the 2D map the map's node marks are projected (one per node, in node order)."""
        scene = self.app.scene
        map_view = getattr(scene, "map_view", None)  # the 2D map, where the viewer has one
        on_map = bool(getattr(map_view, "active", False))
        drawn = (getattr(map_view, "sats", None) if on_map else
                 getattr(scene, "sats", None) if scene.n_sats else None)
        points = np.asarray(drawn.points if drawn is not None else [],
                            dtype=float).reshape(-1, 3)
        width, height = self.plotter.renderer.GetSize()
        if len(points) == 0 or width <= 0 or height <= 0:
            return -1
        camera = self.plotter.renderer.GetActiveCamera()
        matrix = camera.GetCompositeProjectionTransformMatrix(width / height, -1.0, 1.0)
        m = np.array([[matrix.GetElement(i, j) for j in range(4)] for i in range(4)])
        clip = np.c_[points, np.ones(len(points))] @ m.T
        w = clip[:, 3]
        in_front = w > 1e-9
        safe_w = np.where(in_front, w, 1.0)
        px = (clip[:, 0] / safe_w + 1.0) * 0.5 * width
        py = (clip[:, 1] / safe_w + 1.0) * 0.5 * height
        distance2 = (px - x) ** 2 + (py - y) ** 2
        eye = np.asarray(camera.GetPosition(), dtype=float)
        candidates = in_front & (distance2 <= PICK_RADIUS_PX**2)
        if not on_map:
            candidates &= ~_behind_earth(eye, points)
        if not candidates.any():
            return -1
        return int(np.argmin(np.where(candidates, distance2, np.inf)))

    def _run_command(self, action: str) -> None:
        """On the command thread: the viewer's own handler (it sets the HUD's message)."""
        try:
            COMMAND_ACTIONS[action](self.app)
        except Exception as exc:
            log.exception("command key %s failed", action)
            self.app.message = f"error: {exc}"

    def _after_key(self) -> None:
        self.app.refresh_hud(force=True)
        self.publish_status()
        self.push(force=True)

    # ------------------------------------------------------------------ stream
    def start(self) -> None:
        """Follow the stream on the server's event loop (call once the loop runs)."""
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(_quiet_closed_tabs)
        self._task = loop.create_task(self._follow())

    async def _follow(self) -> None:
        while True:
            try:
                self.poll()
            except Exception:  # the scene's own guards count bad messages; this is a bug
                log.exception("3D view: following the stream failed")
            await asyncio.sleep(POLL_S)

    def poll(self) -> None:
        """Take what arrived; push an image when a state was drawn (at most MAX_FPS)."""
        drawn = self.app.take(self.stream.poll(0.0))
        if self.app.meta is None:
            self._ask_meta()
        self.app.refresh_hud(force=drawn)
        if drawn or self._pending_push:
            self.push()
        self.publish_status()

    def _ask_meta(self) -> None:
        """Ask the twin for meta every 2 s until it comes, on the command thread."""
        now = time.monotonic()
        if self._meta_request is not None or now - self._meta_asked < 2.0:
            return
        self._meta_asked = now
        loop = asyncio.get_running_loop()
        self._meta_request = loop.run_in_executor(self.command_thread, self.commands.send,
                                                  "meta")
        self._meta_request.add_done_callback(self._meta_reply)

    def _meta_reply(self, future: asyncio.Future) -> None:
        self._meta_request = None
        if future.cancelled():
            return  # shutting down
        if future.exception() is not None:
            log.error("3D view: asking the twin for meta failed: %s", future.exception())
            return
        reply = future.result()
        if reply.get("ok") and isinstance(reply.get("meta"), dict) and self.app.meta is None:
            self.app._guarded("meta", self.app.apply_meta, reply["meta"])

    def push(self, force: bool = False) -> None:
        """Send the browsers a new image, at most MAX_FPS a second unless ``force``."""
        now = time.monotonic()
        if not force and now - self._last_push < 1.0 / MAX_FPS:
            self._pending_push = True
            return
        self._pending_push = False
        self._last_push = now
        if self.remote_view is not None:
            self.remote_view.update()
            self.images_pushed += 1

    def publish_status(self) -> None:
        """The page's status line and message, from the viewer's own state."""
        app = self.app
        header = app.scene.header or {}
        paused = app.clock.get("paused")
        warp = app.clock.get("warp")
        state = self.server.state
        status = {
            "odc_connection": self.stream.connection,
            "odc_clock": ("PAUSED" if paused else "running") if paused is not None else "",
            "odc_warp": f"warp {warp:g}×" if isinstance(warp, float) else "",
            "odc_time": hud_text.utc_text(float(header["t_utc"])) if "t_utc" in header else "",
            "odc_message": app.message,
            "odc_refused": self.stream.refused,
            "odc_nodes": int(app.scene.n_sats),
            "odc_selected": hud_text.node_name(app.meta, app.scene.selected)
            if app.scene.selected >= 0 else "",
        }
        changed = {k: v for k, v in status.items() if state[k] != v}
        if changed:
            with state:
                state.update(changed)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self.command_thread.shutdown(wait=False, cancel_futures=True)
        self.plotter.close()
        self.stream.close()
        self.commands.close()

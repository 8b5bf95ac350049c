"""The 3D viewer's keys and clicks: view toggles, node selection, and commands to the twin.

A mixin of ``viz.viewer.ViewerApp``. The keys and their help come from the one keymap,
``viz.keymap`` (``for_viewer("view")``): each keymap action is bound by name, through
:data:`ACTION_METHODS`, to a method of the viewer. An action whose method the viewer does
not have (yet) is a no-op that says "not available" in the HUD. Keys that change only the
view (colour field, trails, frame, labels, camera) act on the ``FleetScene``; keys that
change the twin (pause, warp, step) send a command and say its answer in the HUD. A
failing key never takes the viewer down.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from viz import keymap
from viz.tui.forms import declared_range

if TYPE_CHECKING:
    from viz.fleet_scene import FleetScene

log = logging.getLogger("odc.viz.viewer")

# The warp keys' range where meta.commands does not declare one (an old twin).
WARP_MIN, WARP_MAX = 1e-3, 100_000.0

# Keymap action -> the viewer's method that does it. A method the viewer lacks makes the
# key a no-op with "not available" in the HUD: views added later (the 2D map's
# ``next_view``, ``toggle_ground_track``) only need their method.
ACTION_METHODS: dict[str, str] = {
    "toggle_pause": "toggle_pause",
    "step": "single_step",
    "warp_up": "warp_up",
    "warp_down": "warp_down",
    "next_node": "next_node",
    "previous_node": "previous_node",
    "mirror": "go_to_mirror",
    "next_view": "next_view",
    "next_field": "cycle_field",
    "trails": "toggle_trails",
    "ground_track": "toggle_ground_track",
    "orbit": "toggle_orbit",
    "labels": "toggle_labels",
    "links": "toggle_links",
    "frame": "toggle_view",
    "reset_camera": "reset_camera",
    "help": "toggle_help",
    "quit": "quit",
}
# Keys with ctrl: the window sees ctrl+c as the keysym "c" with the control key down (and
# the terminal as SIGINT, viz.viewer); pressed with ctrl, "c" quits instead of colouring.
_CTRL = "ctrl+"
# The camera keys pyvista's plotter offers that the keymap leaves free: kept.
_CAMERA_KEYS = {"Up": 1.05, "Down": 0.95}


def help_text() -> str:
    """The ``?`` panel: the keymap's help for the 3D view, then the mouse.

    Every line is padded to the longest: the panel is centred, and in a monospaced font
    equal lengths keep its columns aligned.
    """
    lines = ["KEYS  (? closes)", "", *keymap.help_lines(keymap.VIEW), "",
             f"  {'click':>10s}  select the node under the cursor",
             f"  {'drag':>10s}  turn the camera (scroll: zoom)"]
    width = max(len(line) for line in lines) + 2
    return "\n".join(f" {line:<{width}s}" for line in lines)


class ViewerKeys:
    """Key and click handlers of a ``ViewerApp``.

    The host class provides the plotter, the scene, the command client (None: commands
    are refused with a message), the twin's clock as last heard, meta, the HUD's message
    line, ``refresh_hud`` and ``render``.
    """

    pl: Any
    scene: FleetScene
    commands: Any
    clock: dict[str, Any]
    meta: Mapping[str, Any] | None
    message: str
    _running: bool
    refresh_hud: Callable[..., None]
    render: Callable[[], None]
    toggle_ground_track: Callable[[], None]
    next_view: Callable[[], None]

    def _bind_keys(self) -> None:
        """Register every keymap key of the 3D view with the plotter; write the help panel.

        pyvista's own key bindings go first (its ``+``/``-`` change point sizes, its ``v``
        and ``q`` would fight ours): a key means what the keymap says, nothing else.
        """
        iren = self.pl.iren
        if iren is not None:
            iren.clear_key_event_callbacks()
            self._mute_vtk_char_keys()
            for key, factor in _CAMERA_KEYS.items():
                iren.add_key_event(key, lambda f=factor: self._zoom(f))
        # VTK keysym -> keymap action, for the tests and the bench to press keys by name.
        self.key_actions: dict[str, str] = {}
        self.ctrl_actions: dict[str, str] = {}
        for entry in keymap.for_viewer(keymap.VIEW):
            for key in entry.keys:
                if key.startswith(_CTRL):
                    self.ctrl_actions[keymap.vtk_keysym(key[len(_CTRL):])] = entry.action
                else:
                    self.key_actions[keymap.vtk_keysym(key)] = entry.action
        for keysym in {**self.key_actions, **self.ctrl_actions}:
            if iren is not None:
                iren.add_key_event(keysym, self._wrap(keysym))
        self.scene.hud_help.SetInput(help_text())

    def _mute_vtk_char_keys(self) -> None:
        """Turn off VTK's own one-letter keys (``w`` wireframe, ``s`` surface, ``e`` exit,
        ``r`` reset, ``3`` stereo, ...): an interactor style with an observer on CharEvent
        hands the event to it instead of its built-in handler, and this one does nothing."""
        style = self.pl.iren.interactor.GetInteractorStyle()
        if style is not None and not style.HasObserver("CharEvent"):
            style.AddObserver("CharEvent", lambda *_: None)

    def handler(self, action: str) -> Callable[[], None] | None:
        """The viewer's method for a keymap action, or None when it has none (yet)."""
        method = getattr(self, ACTION_METHODS.get(action, ""), None)
        return method if callable(method) else None

    def do(self, action: str) -> None:
        """Run a keymap action; one without a method says "not available" in the HUD."""
        method = self.handler(action)
        if method is None:
            self.message = f"{action.replace('_', ' ')}: not available"
            return
        method()

    def _wrap(self, keysym: str) -> Callable[[], None]:
        def run() -> None:
            ctrl = self.pl.iren is not None and self.pl.iren.interactor.GetControlKey()
            action = self.ctrl_actions.get(keysym) if ctrl else None
            action = action or self.key_actions.get(keysym)
            if action is None:
                return  # a key bound only with ctrl, pressed without it
            # A failing key must never take the viewer down; say what went wrong.
            try:
                self.do(action)
            except Exception as exc:
                log.exception("key %s failed", action)
                self.message = f"error: {exc}"
            self.refresh_hud(force=True)
            self.render()

        return run

    def _zoom(self, factor: float) -> None:
        self.pl.camera.zoom(factor)
        self.render()

    # ------------------------------------------------------------------ commands
    def _command(self, cmd: str, **arguments: Any) -> dict[str, Any]:
        if self.commands is None:
            self.message = f"{cmd}: no command connection"
            return {"ok": False}
        reply = self.commands.send(cmd, **arguments)
        detail = " ".join(f"{k}={v}" for k, v in arguments.items())
        self.message = f"{cmd} {detail}: " + ("ok" if reply.get("ok") else reply.get("error", "?"))
        return reply

    def toggle_pause(self) -> None:
        reply = self._command("resume" if self.clock.get("paused") else "pause")
        if reply.get("ok"):
            self.clock["paused"] = not self.clock.get("paused")

    def change_warp(self, factor: float) -> None:
        """Warp times ``factor``, kept within the range ``meta.commands`` declares."""
        low, high = declared_range((self.meta or {}).get("commands"), "warp", "value",
                                   (WARP_MIN, WARP_MAX))
        warp = min(max(float(self.clock.get("warp", 60.0)) * factor, low), high)
        if self._command("warp", value=warp).get("ok"):
            self.clock["warp"] = warp

    def warp_up(self) -> None:
        self.change_warp(2.0)

    def warp_down(self) -> None:
        self.change_warp(0.5)

    def single_step(self) -> None:
        if not self.clock.get("paused") and self._command("pause").get("ok"):
            self.clock["paused"] = True
        self._command("step", n=1)

    # ------------------------------------------------------------------ view and selection
    def cycle_field(self) -> None:
        name = self.scene.cycle_field()
        self.message = f"colour: {name}" if name else "no colour fields in meta"

    def cycle_node(self, step: int) -> None:
        n = self.scene.n_sats
        if n:
            current = self.scene.selected
            self.scene.select((current + step) % n if current >= 0 else (0 if step > 0 else n - 1))

    def next_node(self) -> None:
        self.cycle_node(1)

    def previous_node(self) -> None:
        self.cycle_node(-1)

    def go_to_mirror(self) -> None:
        sat = self.scene.select_mirror()
        self.message = "" if sat >= 0 else "no mirrored node (the twin runs no [mirror])"

    def toggle_trails(self) -> None:
        self.scene.toggle_trails()

    def toggle_orbit(self) -> None:
        self.scene.toggle_orbit()

    def toggle_labels(self) -> None:
        self.scene.toggle_labels()

    def toggle_links(self) -> None:
        on = self.scene.toggle_links()
        # The 2D map draws no links: say where they are.
        where = " (on the globe and the cluster close-up)" if self.scene.map_view.active \
            else ""
        self.message = f"optical links {'shown' if on else 'hidden'}{where}"

    def toggle_view(self) -> None:
        self.scene.set_earth_fixed(not self.scene.earth_fixed)
        self.scene.set_camera(force=True)

    def reset_camera(self) -> None:
        self.scene.set_camera(force=True)

    def toggle_help(self) -> None:
        panel = self.scene.hud_help
        panel.SetVisibility(not panel.GetVisibility())
        if panel.GetVisibility():  # drawn last: over the station names too
            self.pl.renderer.RemoveViewProp(panel)
            self.pl.renderer.AddViewProp(panel)

    def pick(self, point: Any) -> None:
        """Select the node nearest a picked world point."""
        if point is None:
            return
        index = self.scene.nearest_node(point)
        if self.scene.map_view.active:  # a point on the 2D map (viz.map_view)
            index = self.scene.map_view.nearest_node(point)
        elif self.scene.cluster_view.active:  # a member of the close-up (viz.cluster_view)
            index = self.scene.cluster_view.nearest_node(point)
        self.scene.select(index)
        self.refresh_hud(force=True)

    def quit(self) -> None:
        self._running = False

"""The 3D viewer's keys and clicks: view toggles, node selection, and commands to the twin.

A mixin of ``viz.viewer.ViewerApp``. Keys that change only the view (colour field,
trails, frame, labels, camera) act on the ``FleetScene``; keys that change the twin
(pause, warp, step) send a command and say its answer in the HUD. A failing key never
takes the viewer down.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from viz import scene
from viz.tui.forms import declared_range

if TYPE_CHECKING:
    from viz.fleet_scene import FleetScene

log = logging.getLogger("odc.viz.viewer")

# The warp keys' range where meta.commands does not declare one (an old twin).
WARP_MIN, WARP_MAX = 1e-3, 100_000.0

KEYS_HELP = (
    ("space", "pause / resume the twin"),
    ("] / [", "warp x2 / warp /2"),
    (".", "single step (pauses first)"),
    ("c", "next colour field"),
    ("n / N", "next / previous node"),
    ("click", "select the node under the cursor"),
    ("t", "trails on / off"),
    ("O", "selected node's full orbit on / off"),
    ("m", "go to the mirrored node (testbed)"),
    ("g", "ground track of the selected node on / off"),
    ("v", "globe / 2D map"),
    ("l", "labels on / off"),
    ("i", "inertial / Earth-fixed view"),
    ("o", "reset camera"),
    ("h", "this help"),
    ("q", "quit"),
)


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
        """Register every key with the plotter and write the help panel."""
        self.keys: dict[str, tuple[str, Callable[[], None]]] = {
            "space": ("pause/resume", self.toggle_pause),
            "bracketright": ("warp up", lambda: self.change_warp(2.0)),
            "bracketleft": ("warp down", lambda: self.change_warp(0.5)),
            "period": ("step", self.single_step),
            "c": ("colour field", self.cycle_field),
            "n": ("next node", lambda: self.cycle_node(1)),
            "N": ("previous node", lambda: self.cycle_node(-1)),
            "t": ("trails", self.scene.toggle_trails),
            "O": ("orbit", self.scene.toggle_orbit),
            "m": ("mirrored node", self.go_to_mirror),
            "g": ("ground track", self.toggle_ground_track),  # viz.ground_track
            "v": ("next view", self.next_view),  # globe / 2D map (viz.map_view)
            "l": ("labels", self.scene.toggle_labels),
            "i": ("view", self.toggle_view),
            "o": ("reset camera", lambda: self.scene.set_camera(force=True)),
            "h": ("help", self.toggle_help),
        }
        for key, (_, handler) in self.keys.items():
            if self.pl.iren is not None:  # pyvista's own meaning of a key (v: isometric) goes
                self.pl.iren.clear_events_for_key(key)
            self.pl.add_key_event(key, self._wrap(handler))
        self.pl.add_key_event("q", self.quit)
        self.scene.hud_help.SetInput(
            "KEYS\n\n" + "\n".join(f"{k:>7s}  {what}" for k, what in KEYS_HELP))

    def _wrap(self, handler: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            # A failing key must never take the viewer down; say what went wrong.
            try:
                handler()
            except Exception as exc:
                log.exception("key handler failed")
                self.message = f"error: {exc}"
            self.refresh_hud(force=True)
            self.render()

        return run

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

    def go_to_mirror(self) -> None:
        sat = self.scene.select_mirror()
        self.message = "" if sat >= 0 else "no mirrored node (the twin runs no [mirror])"

    def toggle_view(self) -> None:
        self.scene.set_earth_fixed(not self.scene.earth_fixed)
        self.scene.set_camera(force=True)

    def toggle_help(self) -> None:
        self.scene.hud_help.SetVisibility(not self.scene.hud_help.GetVisibility())

    def pick(self, point: Any) -> None:
        """Select the node nearest a picked world point."""
        if point is None:
            return
        index = scene.nearest_sat(self.scene.sats.points, point)
        if self.scene.map_view.active:  # a point on the 2D map (viz.map_view)
            index = self.scene.map_view.nearest_node(point)
        self.scene.select(index)
        self.refresh_hud(force=True)

    def quit(self) -> None:
        self._running = False

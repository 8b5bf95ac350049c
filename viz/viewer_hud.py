"""The 3D viewer's HUD: status top left, fleet totals top right, the node bottom left, events.

A mixin of ``viz.viewer.ViewerApp``. The words come from ``viz.hud_text``; this puts them
into the scene's text actors, at most twice a second unless a frame was just drawn.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from viz import hud_text, keymap

if TYPE_CHECKING:
    from viz.fleet_scene import FleetScene, ViewOptions

# The keys the HUD names, as the keymap labels them (``m``, ``?``).
KEY_LABELS = {action: entry.label for action, entry in keymap.action_keys(keymap.VIEW).items()}


class ViewerHud:
    """The HUD of a ``ViewerApp``: what it says and how often it is rewritten.

    The host class provides the scene (whose text actors it fills), the stream (None
    for a static scene), the options, meta, the twin's clock, the message line, the
    drawn frames' times, the bad-message counts and the recent events.
    """

    scene: FleetScene
    stream: Any
    options: ViewOptions
    meta: Mapping[str, Any] | None
    clock: dict[str, Any]
    replay: Mapping[str, Any] | None
    message: str
    events: deque[str]
    _frame_times: deque[float]
    _last_hud: float
    bad_messages: int
    last_bad: str
    receiving_line: Any

    @property
    def fps(self) -> float:
        times = self._frame_times
        if len(times) < 5 or times[-1] == times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])

    def add_event(self, header: Mapping[str, Any]) -> None:
        """Keep the last few warnings and alarms (and all mirror news) for the HUD."""
        if header.get("severity") in ("warning", "alarm") or \
                str(header.get("kind", "")).startswith("mirror_"):
            stamp = hud_text.utc_text(float(header.get("t_utc", 0.0)))[11:19]
            # Limit alarms read from their values in display units (°C, %), not kelvin.
            self.events.append(f"{stamp} {header.get('severity', '').upper()}: "
                               f"{self.scene.catalog.event_text(header)}")

    def refresh_hud(self, force: bool = False, connection: str | None = None) -> None:
        now = time.monotonic()
        if not force and now - self._last_hud < 0.5:
            return
        self._last_hud = now
        s = self.scene
        if connection is None:
            connection = self.stream.connection if self.stream is not None else "LIVE"
        header = s.header or {}
        if not header:
            where = self.stream.address if self.stream is not None else "?"
            refused = self.stream.refused if self.stream is not None else ""
            lines = [f"ODC Twin — {connection}", refused or f"waiting for the twin at {where}"]
            lines += hud_text.bad_lines(self.bad_messages, self.last_bad)
            s.hud_top.SetInput("\n".join(lines))
            return
        lines = hud_text.status_lines(
            {**header, **self.clock}, self.meta, connection, earth_fixed=s.earth_fixed,
            map_shown=s.map_view.active,
            missed=self.stream.gaps if self.stream is not None else 0,
            restarts=self.stream.restarts if self.stream is not None else 0,
            fps=self.fps if self.options.show_fps else None,
            bad=self.bad_messages, last_bad=self.last_bad, replay=self.replay,
        )
        if s.field is not None:
            lines.append(f"colour: {s.field.reads.label()} ({s.field.name})")
        receiving = self.receiving_line()
        if receiving:  # subscribed (viz.view_subscription): what comes, and how
            lines.append(receiving)
            if s.lod_every > 1 and s.drawn is not None:  # fewer drawn at this zoom
                lines.append(f"drawing {len(s.drawn):,} of them + the worst"
                             " (zoom in for more)")
        elif s.drawn is not None:  # a sampled fleet (viz.lod): say so, flagged are all drawn
            zoom = "; zoom in for more" if s.lod_every > 1 else ""
            lines.append(f"drawing {len(s.drawn):,} of {s.n_sats:,} nodes"
                         f" (1 in {s.n_sats / len(s.drawn):.3g}{zoom}) and every flagged one")
        for binding in s.mirrors:
            lines.append(f"{hud_text.mirror_tag(s.arrays, binding)} on "
                         f"{hud_text.node_name(self.meta, binding.sat)}   "
                         f"{KEY_LABELS['mirror']}: go to")
        if self.message:
            lines.append(self.message)
        lines.append(f"{KEY_LABELS['help']}: keys")
        s.hud_top.SetInput("\n".join(lines).translate(hud_text.HUD_GLYPHS))
        n_flagged = int(np.count_nonzero(s.alarms))
        fleet = hud_text.fleet_lines(header.get("fleet", {}), n_flagged, catalog=s.catalog,
                                     alarm_table=getattr(self, "alarm_table", None))
        s.hud_fleet.SetInput("\n".join(fleet).translate(hud_text.HUD_GLYPHS))
        mirror = hud_text.mirror_lines(self.meta, s.arrays, s.selected)
        # The panel keeps its height: mirror lines take the place of the last fields.
        node = hud_text.node_lines(self.meta or {}, s.arrays, s.selected, s.fields,
                                   max_lines=max(18 - len(mirror), 6), colour=s.field)
        if mirror:
            # Measured beside predicted first: on a mirrored node it is the point.
            node = node[:1] + mirror + node[1:]
        s.hud_node.SetInput("\n".join(node).translate(hud_text.HUD_GLYPHS))
        s.hud_events.SetInput("\n".join(self.events).translate(hud_text.HUD_GLYPHS))

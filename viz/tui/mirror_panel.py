"""The dashboard's "Mirrored nodes" panel: every testbed the twin mirrors, with its health.

Two lines per binding (``meta.subsystems.mirror.bindings``): the node and the testbed that
drives it, whether its telemetry is live and how old the newest sample is; then its health,
the worst residual against its threshold. Shown beside the events and alarms only when the
twin mirrors something, so a twin with several testbeds shows all of them at once, each on
its own node.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from rich.text import Text

from viz.mirror import MirrorBinding
from viz.tui.levels import ALARM, OK, WARN
from viz.tui.mirror_rows import MIRROR_MARK

if TYPE_CHECKING:
    from viz.tui.model import FleetModel

HEALTH_STYLE = {"lost": "bold red", "waiting": "dim", ALARM: "bold red", WARN: "yellow",
                OK: "green"}


def binding_health(model: FleetModel, binding: MirrorBinding) -> tuple[str, str]:
    """(words, style) for one binding: lost, waiting, or live with its worst residual
    against its threshold (``T comp +15.0 K > ±10.0 K``)."""
    live = model.mirror_live(binding)
    if live is None:
        return "waiting for telemetry", HEALTH_STYLE["waiting"]
    if not live:
        return "runs on the model (lost)", HEALTH_STYLE["lost"]
    rows = [r for r in model.mirror_rows(binding)
            if r.role == "state" and math.isfinite(r.residual)]
    if not rows:
        return "live, nothing compared", HEALTH_STYLE[OK]
    worst = max(rows, key=lambda r: (r.level, abs(r.residual) / r.threshold
                                     if math.isfinite(r.threshold) and r.threshold else 0.0))
    quantity = model.quantities.mirrored(worst.quantity)
    words = f"{quantity.label(10)} {quantity.difference(worst.residual)}"
    if math.isfinite(worst.threshold):
        limit = quantity.difference(worst.threshold)[1:]
        words += f" {'>' if worst.level >= ALARM else 'of'} ±{limit}"
    return words, HEALTH_STYLE[worst.level]


def mirror_panel_text(model: FleetModel) -> Text:
    """The panel's lines, two per binding (empty when the twin mirrors nothing)."""
    text = Text(no_wrap=True, overflow="ellipsis")
    for i, binding in enumerate(model.mirrors):
        if i:
            text.append("\n")
        words, style = binding_health(model, binding)
        live = model.mirror_live(binding)
        state = "LIVE" if live else "LOST" if live is False else "WAIT"
        text.append(f"{MIRROR_MARK} ", style="bold")
        text.append(f"{model.name(binding.sat)}", style="bold")
        text.append(f" ← {binding.testbed} ")
        text.append(f" {state} ", style=f"reverse {style}" if live is not None else "reverse")
        age = model.mirror_age_s(binding)
        text.append("\n  ")
        if live and math.isfinite(age):
            text.append(f"{age:.1f} s · ", style="dim")
        text.append(words, style=style)
    return text

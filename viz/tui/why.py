"""Why a node computes no more than it does, in words, for the detail screen.

The twin names each node's limit (``limit_reason``: the cause that costs it the most
accelerators now) and why it runs below full speed (``throttle_code``); this says it with
the node's own numbers: ``power-capped: 0 W available to the payload (battery SOC 19.8 %)``,
so "Util 100 % · Compute 0.00" explains itself. Nothing limits a node whose reason is
``none``: no line then.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from viz.tui.model import FleetModel

# The twin's limit-reason words (twin.models.compute.params.LIMIT_REASONS), as labelled.
POWER, HEAT, RADIATION, NONE = "power", "heat", "radiation", "none"


def _value(model: FleetModel, name: str, sat: int) -> float:
    values = model.values(name)
    if values is None or not 0 <= sat < values.size:
        return math.nan
    return float(values[sat])


def _text(model: FleetModel, name: str, value: float) -> str:
    if value == 0.0 and model.quantities.field(name).unit == "W":
        return "0 W"
    return model.quantities.field(name).format(value)


def _word(model: FleetModel, name: str, sat: int) -> tuple[str, str]:
    """An enum field's label for the node, split at its colon: ("power", "clock lowered…")."""
    code = _value(model, name, sat)
    if not math.isfinite(code):
        return "", ""
    word, _, detail = model.quantities.field(name).label_of(code).partition(":")
    return word.strip(), detail.strip()


def why_not_more(model: FleetModel, sat: int) -> str | None:
    """What limits node ``sat`` now, with its numbers, or None when nothing does."""
    reason, detail = _word(model, "limit_reason", sat)
    throttle, _ = _word(model, "throttle_code", sat)
    if POWER in (reason, throttle):
        return _power(model, sat)
    if HEAT in (reason, throttle):
        clock = _value(model, "clock_frac", sat)
        temp = _value(model, "temp_compute_k", sat)
        text = "heat: the chip"
        if math.isfinite(temp):
            text += f" at {_text(model, 'temp_compute_k', temp)}"
        text += " is thermally throttled"
        if math.isfinite(clock):
            text += f" to a {_text(model, 'clock_frac', clock)} clock"
        return text
    if reason == RADIATION:
        return ("radiation: a device reset after an upset stalls its job; the accelerators "
                "stay held (Util) but compute less until the reset ends")
    if not reason or reason == NONE:
        return None
    return f"{reason}: {detail}" if detail else reason


def _power(model: FleetModel, sat: int) -> str:
    """``power-capped: 0 W available to the payload (battery SOC 19.8 %)``."""
    cap = _value(model, "compute_cap_w", sat)
    system_cap = _value(model, "power_cap_w", sat)
    soc = _value(model, "soc_frac", sat)
    text = "power-capped"
    if math.isfinite(cap):
        text += f": {_text(model, 'compute_cap_w', cap)} available to the payload"
    why = []
    if math.isfinite(system_cap) and (not math.isfinite(cap) or system_cap <= cap + 1e-6):
        why.append("the power system's cap")
        if math.isfinite(soc):
            why.append(f"battery SOC {_text(model, 'soc_frac', soc)}")
    elif math.isfinite(cap):
        why.append("set by an operator with set_power_cap")
    if why:
        text += f" ({', '.join(why)})"
    util = _value(model, "utilization_frac", sat)
    delivered = _value(model, "delivered_flop_s", sat)
    if util > 0 and delivered == 0:
        text += "; its jobs hold the accelerators (Util) but compute nothing"
    return text

"""The 3D viewer's HUD text: status, fleet totals, the selected node and its mirror.

Pure text from a ``state`` header, its arrays and ``meta``; values read as the catalog
says (``viz.quantity``, shared with the dashboard): °C, %, kW. ``viz.viewer_hud`` puts
these lines on screen.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from viz import estimate
from viz.mirror import MirrorBinding, mirror_bindings
from viz.node_colours import ColourField
from viz.quantity import Catalog, Quantity

# Characters the HUD's font has no glyph for (VTK draws nothing there), and what to draw.
HUD_GLYPHS = str.maketrans({"∞": "inf"})


def utc_text(t_utc: float) -> str:
    """POSIX seconds as ``2026-03-20 12:00:00 UTC``."""
    try:
        return datetime.fromtimestamp(t_utc, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return f"t = {t_utc!r} s"


# Characters of the last bad message's reason in the HUD (its line stays on screen).
BAD_LINE_CHARS = 72


def bad_lines(bad: int, last_bad: str = "") -> list[str]:
    """HUD lines for bad stream messages: ``BAD MESSAGES 3`` and the last reason; none at 0."""
    if not bad:
        return []
    lines = [f"BAD MESSAGES {bad:,d} (dropped)"]
    if last_bad:
        if len(last_bad) > BAD_LINE_CHARS:
            last_bad = last_bad[:BAD_LINE_CHARS - 1] + "…"
        lines.append(f"last: {last_bad}")
    return lines


def replay_line(replay: Mapping[str, Any]) -> str:
    """Where a replay is in its recording: ``12:00:00 [=====|-----] 12:10:00  50%``."""
    start, end = (float(t) for t in replay["span_utc"])
    fraction = (float(replay["position_utc"]) - start) / (end - start) if end > start else 1.0
    fraction = min(max(fraction, 0.0), 1.0)
    cells = 20
    marker = min(round(fraction * cells), cells)
    bar = "=" * marker + "|" + "-" * (cells - marker)
    ended = "   ENDED" if replay.get("ended") else ""
    return (f"{utc_text(start)[11:19]} [{bar}] {utc_text(end)[11:19]}  "
            f"{100 * fraction:.0f}%{ended}")


def _missed_text(missed: int | Mapping[str, int]) -> str:
    """``missed 3 states and 78,735 other messages``: states apart, since a mass of events
    (a megafleet's first minute) would otherwise read as lost frames; "" for none."""
    if not isinstance(missed, Mapping):
        missed = {"state": int(missed)}
    states = int(missed.get("state", 0))
    other = sum(int(n) for topic, n in missed.items() if topic != "state")
    parts = [f"{count:,} {what}" for count, what in ((states, "states"),
                                                     (other, "other messages")) if count]
    return "missed " + " and ".join(parts) if parts else ""


def status_lines(header: Mapping[str, Any], meta: Mapping[str, Any] | None, connection: str,
                 *, earth_fixed: bool, map_shown: bool = False,
                 missed: int | Mapping[str, int] = 0,
                 restarts: int = 0,
                 fps: float | None = None, bad: int = 0, last_bad: str = "",
                 replay: Mapping[str, Any] | None = None) -> list[str]:
    """Top-left HUD: scenario, simulation time, warp, connection, view, bad messages.

    ``missed``: messages lost in the stream's gaps, by topic (a number: states).

    On a replay (``replay``: its newest ``replay`` header) the first line says REPLAY and
    the run's name, the time is the recorded one, REPLAY stands where LIVE would, and a
    line shows the position in the recording.
    """
    scenario = (meta or {}).get("scenario", {}).get("name", "?")
    warp = header.get("warp")
    warp_text = f"x{warp:g}" if isinstance(warp, int | float) else "?"
    clock = "PAUSED" if header.get("paused") else f"warp {warp_text}"
    when = utc_text(float(header.get("t_utc", 0.0)))
    if replay is not None:
        name = replay.get("name") or scenario
        lines = [f"ODC Twin — REPLAY {name}" + (f" ({scenario})" if scenario != name else ""),
                 f"recorded {when}",
                 f"{clock}   step {header.get('step', '?')}   "
                 f"{'REPLAY' if connection == 'LIVE' else connection}",
                 replay_line(replay)]
    else:
        lines = [f"ODC Twin — {scenario}", when,
                 f"{clock}   step {header.get('step', '?')}   {connection}"]
    # On the 2D map the globe's frame means nothing: the map is always Earth-fixed.
    frame = "Earth-fixed (ITRS)" if earth_fixed else "inertial (GCRS)"
    lines.append(f"view: {'2D map (Earth-fixed)' if map_shown else frame}")
    extra = []
    if fps:
        extra.append(f"{fps:.0f} fps")
    missed_text = _missed_text(missed)
    if missed_text:
        extra.append(missed_text)  # the stream ran ahead of drawing
    if restarts:
        extra.append(f"restarts {restarts}")
    if extra:
        lines.append("   ".join(extra))
    return lines + bad_lines(bad, last_bad)


# Fleet totals an operator wants at a glance, by exact name, in display order. The
# header may carry dozens; the rest show on demand (``full=True``).
FLEET_HIGHLIGHTS = ("n_limit_alarm", "delivered_pflop_s", "goodput_frac", "p_solar_total_w",
                    "p_load_total_w", "compute_power_w", "soc_min_frac", "soc_mean_frac",
                    "temp_compute_max_k", "temp_battery_min_k", "n_in_eclipse", "n_in_contact",
                    "n_nodes_faulted", "n_throttled_thermal", "n_throttled_power",
                    "queue_length", "downlink_backlog_bytes")


def fleet_lines(fleet: Mapping[str, Any], n_flagged: int, *, full: bool = False,
                max_lines: int = 13, catalog: Catalog | None = None,
                alarm_table: Mapping[str, Any] | None = None) -> list[str]:
    """Top-right HUD: fleet totals from the header, as meta's totals catalog says.

    Args:
        fleet: The header's ``fleet`` map.
        n_flagged: Nodes the viewer flags (``alarm_mask``).
        full: Every key, sorted, instead of the highlights.
        max_lines: Highlight lines at most.
        catalog: meta's catalogs; without, the totals show as bare numbers.
        alarm_table: The twin's ``alarms`` message, when one has come: its counts show.
    """
    catalog = catalog or Catalog()
    keys = sorted(fleet) if full else [k for k in FLEET_HIGHLIGHTS if k in fleet][:max_lines]
    lines = ["FLEET"]
    lines += [f"{catalog.total(k).label()}: {catalog.total(k).format(fleet[k])}" for k in keys]
    lines.append(f"flagged (alarm/fault): {n_flagged:,d}")
    if alarm_table is not None:
        alarms = alarm_table.get("alarms", [])
        unacked = sum(a.get("state") in ("active_unack", "rtn_unack") for a in alarms)
        lines.append(f"alarms: {len(alarms):,d} ({unacked:,d} unacknowledged)")
    return lines


def node_lines(meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray], index: int,
               fields: Sequence[ColourField], max_lines: int = 18,
               colour: ColourField | None = None) -> list[str]:
    """Bottom-left HUD: the selected node's name and its per-satellite values, each as
    meta's catalog says (``T comp: 80.0 °C``, ``Pump mode: high``).

    Args:
        colour: The field the nodes are coloured by: its value comes first, never cut.
    """
    sats = meta.get("sats", {})
    names = sats.get("names", [])
    if not 0 <= index < len(names):
        return []
    groups = sats.get("groups", [])
    group = groups[index] if index < len(groups) else ""
    lines = [f"NODE {index}: {names[index]}" + (f"  [{group}]" if group else "")]
    contact = arrays.get("contact_station")
    stations = meta.get("stations", [])
    if contact is not None and contact.ndim == 1 and index < len(contact) \
            and np.isfinite(contact[index]):
        k = int(contact[index])
        lines.append(f"contact: {stations[k]['name'] if 0 <= k < len(stations) else 'none'}")
    # The colour fields, then the node's enums and bitmasks by their catalog names.
    named = [Quantity.from_entry(str(e["name"]), e) for e in meta.get("fields", [])
             if isinstance(e, Mapping) and e.get("per_sat") and e.get("kind") in
             ("enum", "bitmask") and len(e.get("shape") or ()) == 1 and "name" in e]
    shown = [info.reads for info in fields if not info.categorical] + named
    if colour is not None:
        shown = [colour.reads] + [q for q in shown if q.name != colour.name]
    for reads in shown:
        values = arrays.get(reads.name)
        if values is None or values.ndim != 1 or index >= len(values) \
                or len(lines) >= max_lines:
            continue
        lines.append(f"{reads.label()}: {reads.format(values[index].item())}")
    return lines


def scalar_bar_title(info: ColourField, typical: float = math.nan) -> str:
    """Colour bar title: the field's label and its display unit (``T comp [°C]``); an
    enum's label alone (its swatches name the codes).

    Args:
        typical: The largest magnitude on the bar (wire unit), for an SI prefix (kW).
    """
    unit = info.reads.unit_text(typical)
    return f"{info.reads.label()} [{unit}]" if unit else info.reads.label()


# --------------------------------------------------------------------------- mirror
def _mirror_value(arrays: Mapping[str, np.ndarray], name: str, j: int) -> float:
    values = arrays.get(name)
    if values is None or values.ndim != 1 or not 0 <= j < len(values):
        return math.nan
    return float(values[j])


def mirror_live(arrays: Mapping[str, np.ndarray], binding: MirrorBinding) -> bool | None:
    """Whether the binding's telemetry is arriving; None before any state says."""
    values = arrays.get("mirror_live")
    if values is None or values.ndim != 1 or not 0 <= binding.index < len(values):
        return None
    return bool(values[binding.index])


def mirror_tag(arrays: Mapping[str, np.ndarray], binding: MirrorBinding) -> str:
    """The label beside a mirrored node: ``MIRROR flatsat live`` (or ``lost``)."""
    live = mirror_live(arrays, binding)
    return f"MIRROR {binding.testbed} " + ("live" if live else "lost" if live is False
                                           else "waiting")


def mirror_lines(meta: Mapping[str, Any] | None, arrays: Mapping[str, np.ndarray],
                 index: int) -> list[str]:
    """The node panel's mirror block for node ``index``: measured beside predicted.

    One block per binding on that node: a status line, then each compared state with its
    measured value, the model's prediction, the residual (measured minus predicted) with
    its threshold (``!`` when past it), then the measured drivers now feeding the model,
    then the state estimate (``viz.estimate.hud_lines``). Empty when the node is not
    mirrored.
    """
    lines: list[str] = []
    bindings = [b for b in mirror_bindings(meta) if b.sat == index]
    if not bindings:
        return lines  # the usual case: no catalog to build (the HUD asks twice a second)
    catalog = Catalog(meta)
    for b in bindings:
        age = _mirror_value(arrays, "mirror_age_s", b.index)
        age_text = f", newest sample {age:.1f} s ago" if math.isfinite(age) else ""
        lines.append(f"{mirror_tag(arrays, b).upper()}{age_text}")
        reads = {q: catalog.mirrored(q) for q in (*b.states, *b.drivers)}
        width = max([len(r.label()) for r in reads.values()] + [4])
        if b.states:
            lines.append(f"{'':{width}s}  {'measured':>10s} {'predicted':>10s} "
                         f"{'residual':>10s}  limit")
        for q in b.states:
            measured = _mirror_value(arrays, f"mirror_measured_{q}", b.index)
            predicted = _mirror_value(arrays, f"mirror_predicted_{q}", b.index)
            residual = _mirror_value(arrays, f"mirror_residual_{q}", b.index)
            threshold = b.thresholds.get(q, math.nan)
            over = math.isfinite(residual) and math.isfinite(threshold) \
                and abs(residual) > threshold
            r = reads[q]
            limit = r.difference(threshold)[1:] if math.isfinite(threshold) else ""
            lines.append(f"{r.label():{width}s}  {r.format(measured):>10s} "
                         f"{r.format(predicted):>10s} {r.difference(residual):>10s}  "
                         f"±{limit}{'  !' if over else ''}")
        for q in b.drivers:
            measured = _mirror_value(arrays, f"mirror_measured_{q}", b.index)
            lines.append(f"{reads[q].label():{width}s}  {reads[q].format(measured):>10s}  "
                         "measured, drives the model")
        lines += estimate.hud_lines(arrays, catalog, b)
    return lines


def node_name(meta: Mapping[str, Any] | None, index: int) -> str:
    """A satellite's name from meta (``#index`` when meta does not say)."""
    names = (meta or {}).get("sats", {}).get("names", [])
    return str(names[index]) if 0 <= index < len(names) else f"#{index}"

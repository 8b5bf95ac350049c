"""The dashboard's header: scenario, clock, connection, policy, alarms and fleet totals.

Three lines, each built from parts with a priority: as the terminal narrows the least
needed parts go first, whole, so nothing is ever cut mid-word or mid-number (the clock,
the connection and the active-alarm count stay to the end). A replay adds a fourth line,
its time bar.
"""

from __future__ import annotations

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.widget import Widget

from viz.mirror import MirrorBinding
from viz.tui.levels import ALARM
from viz.tui.mirror_rows import MIRROR_MARK
from viz.tui.model import FleetModel
from viz.tui.replay import REPLAY_STYLE, time_bar

# The header's mirror badge (live, lost, waiting).
MIRROR_BADGE = {True: "bold white on #7b2cbf", False: "bold black on dark_orange",
                None: "bold black on grey70"}
BAD_STYLE = "bold black on dark_orange"

# Priorities of the first line's parts: 0 stays to the end, higher goes sooner.
MUST, HIGH, MEDIUM, LOW, LEAST = range(5)


def fit_parts(parts: list[tuple[int, Text]], width: int) -> Text:
    """The parts joined, least needed (highest priority number, rightmost first) dropped
    whole until the rest fits ``width`` cells; ``width`` 0: all of them (not laid out yet)."""
    kept = list(parts)
    while width > 0 and len(kept) > 1 and sum(t.cell_len for _, t in kept) > width:
        least = max(range(len(kept)), key=lambda i: (kept[i][0], i))
        if kept[least][0] == MUST:
            break
        del kept[least]
    return Text("").join(t for _, t in kept)


def total_parts(items: list[tuple[str, str]], value_style: str) -> list[tuple[int, Text]]:
    """Fleet totals as parts, in order: the first ones stay longest."""
    parts = []
    for rank, (label, value) in enumerate(items):
        text = Text()
        text.append(f" {label} ", style="dim")
        text.append(f"{value} ", style=value_style)
        parts.append((rank, text))
    return parts


class HeaderLine(Widget):
    """One line of the header, repainted only when its text changes."""

    DEFAULT_CSS = """
    HeaderLine { height: 1; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.text = Text()

    def render(self) -> Text:
        return self.text

    def show(self, text: Text) -> None:
        if text.plain != self.text.plain or text.spans != self.text.spans:
            # A plain refresh, not a Static.update: the line's size never changes, so
            # the screen needs no new layout on every frame.
            self.text = text
            self.refresh()


class TimeBar(Widget):
    """A replay's time bar (viz.tui.replay.time_bar), as wide as the screen."""

    DEFAULT_CSS = """
    TimeBar { height: 1; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.replay: dict | None = None

    def render(self) -> Text:
        return time_bar(self.replay, self.size.width) if self.replay else Text()

    def show(self, replay: dict) -> None:
        if replay != self.replay:
            self.replay = replay
            self.refresh()


class HeaderBar(Widget):
    """Scenario, simulation time, warp, connection, policy and fleet totals, three lines;
    on a replay REPLAY and the run's name, and a fourth line, the time bar.

    A line each: the clock and status line changes once a second, the headline totals
    every few frames, only the last line on every state; each repaints on its own.
    """

    DEFAULT_CSS = """
    HeaderBar { height: 3; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.lines = [HeaderLine() for _ in range(3)]
        self.time_bar = TimeBar()
        self.time_bar.display = False

    def compose(self) -> ComposeResult:
        yield from self.lines
        yield self.time_bar

    def on_resize(self) -> None:
        # Which parts fit depends on the width: lay the lines out again for the new one.
        draw = getattr(self.app, "_draw_header", None)
        if draw is not None and self.app.screen_stack:
            draw()

    @property
    def text(self) -> Text:
        """The lines as one text (what the header shows; the time bar's when replaying)."""
        lines = [line.text for line in self.lines]
        if self.time_bar.replay is not None:
            lines.append(time_bar(self.time_bar.replay, max(self.size.width, 80)))
        return Text("\n").join(lines)

    def _show_replay(self, replay: dict | None) -> None:
        """The time bar under the header while replaying (the header grows a line)."""
        if (replay is not None) != self.time_bar.display:
            self.time_bar.display = replay is not None
            self.styles.height = 4 if replay is not None else 3
        if replay is not None:
            self.time_bar.show(replay)

    def show(self, model: FleetModel, connection: str, missed: int, restarts: int,
             paused: bool, warp: float | None, bad: int = 0,
             replay: dict | None = None) -> None:
        lines = self.lines
        width = self.size.width
        self._show_replay(replay)
        lines[0].show(fit_parts(status_parts(model, connection, missed, restarts, paused,
                                             warp, bad, replay), width))
        headline, rest = model.fleet_items()
        lines[1].show(fit_parts(total_parts(headline, "bold"), width))
        lines[2].show(fit_parts(total_parts(rest, ""), width))


def status_parts(model: FleetModel, connection: str, missed: int, restarts: int,
                 paused: bool, warp: float | None, bad: int,
                 replay: dict | None) -> list[tuple[int, Text]]:
    """The first line's parts, each with its priority."""
    parts: list[tuple[int, Text]] = []

    def add(priority: int, *pieces: str | tuple[str, str]) -> None:
        parts.append((priority, Text.assemble(*pieces)))

    add(LEAST, (" ODC Twin ", "bold black on bright_cyan"))
    if replay is not None:
        # What is shown is the past: say so first, with the recorded run's name.
        add(MUST, " ", (" REPLAY ", REPLAY_STYLE))
        add(MEDIUM, (f" {replay.get('name') or '—'} ", "bold"))
    scenario = (model.meta.get("scenario") or {}).get("name") or model.header.get("scenario")
    add(LOW, (f" {scenario or '—'} ", "bold" if replay is None else ""))
    add(MUST, f" {model.sim_time()} ")
    add(HIGH, f" warp {warp:g}× " if warp else " warp — ")
    if paused:
        add(MUST, (" PAUSED ", "bold black on yellow"))
    colour = {"LIVE": "bold black on green", "STALE": "bold white on red"}.get(
        connection, "bold black on yellow")
    if replay is None or connection != "LIVE":  # a replay heard: REPLAY says it
        add(MUST, " ", (f" {connection} ", colour))
    if bad:
        # Stream messages dropped as bad: the events log says why (the last reason).
        add(HIGH, " ", (f" BAD {bad} ", BAD_STYLE))
    for binding in model.mirrors:
        add(HIGH, " ", (mirror_badge(model, binding), MIRROR_BADGE[model.mirror_live(binding)]))
    policy = model.policy()
    if policy:
        add(MEDIUM, ("  policy ", "dim"), (policy, "bold"))
    add(LEAST, (f"  nodes {model.n:,d}", "dim"))
    add(LEAST, (f"  missed {missed:,d}", "dim"))
    if restarts:
        add(LOW, (f"  restarts {restarts}", "dim"))
    add(MUST, ("   active alarms ", "dim"),
        (f" {len(model.alarms)} ", "bold white on red" if model.alarms else "bold"))
    n_alarm_nodes = int(np.count_nonzero(model.worst >= ALARM)) if model.n else 0
    add(MEDIUM, (f" nodes over alarm limit {n_alarm_nodes}",
                 "bold red" if n_alarm_nodes else "dim"))
    return parts


def mirror_badge(model: FleetModel, binding: MirrorBinding) -> str:
    """`` ◉ MIRROR flatsat LIVE `` (``LOST`` once its telemetry stopped)."""
    live = model.mirror_live(binding)
    state = "LIVE" if live else "LOST" if live is False else "WAITING"
    return f" {MIRROR_MARK} MIRROR {binding.testbed} {state} "

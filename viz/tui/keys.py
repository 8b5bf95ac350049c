"""The dashboard's keys: its bindings built from the one keymap (``viz.keymap``), the
``?`` help built from it too, and the actions that move about (nodes, detail, back).

Each binding's action is the keymap's action name, so a key means the same here as in the
3D view and the help, the footer and ``docs/viewers.md`` cannot drift apart. A key whose
action the dashboard does not (yet) have is shown nowhere and does nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from viz import keymap

# The footer's words for the keys it shows (the rest show in the `?` help only).
FOOTER = {"toggle_pause": "Pause/Resume", "sort": "Sort", "filter": "Filter",
          "command": "Command", "mirror": "Mirror node", "help": "Keys", "quit": "Quit"}
# Keys that work on the detail screen as well as (or instead of) the main screen; the
# detail screen binds them itself so its footer shows them.
DETAIL_ACTIONS = ("previous_node", "next_node", "load_trend", "live_trend")
DETAIL_FOOTER = {"previous_node": "Prev node", "next_node": "Next node",
                 "load_trend": "Trend from a recording", "live_trend": "Live trend"}
# Keys that must win over any widget (textual 8 binds ctrl+c to copy).
PRIORITY_KEYS = {"ctrl+c"}


def _label(entry: keymap.KeyAction, key: str) -> str:
    """How the footer writes a key: the keymap's label for its main key."""
    return entry.label.split(" / ")[0] if key == entry.keys[0] else key


def bindings(actions: Iterable[str] | None = None,
             footer: dict[str, str] | None = None) -> list[Binding]:
    """Textual bindings for the dashboard's keymap entries (``actions``: only those).

    Args:
        actions: The keymap actions to bind; None for every one the dashboard offers.
        footer: Action → the footer's word, for those the footer shows.
    """
    footer = FOOTER if footer is None else footer
    wanted = None if actions is None else set(actions)
    out: list[Binding] = []
    for entry in keymap.for_viewer(keymap.TUI):
        if wanted is not None and entry.action not in wanted:
            continue
        plain = [k for k in entry.keys if k not in PRIORITY_KEYS]
        shown = entry.action in footer
        description = footer.get(entry.action, entry.help)
        if plain:
            out.append(Binding(",".join(plain), entry.action, description, show=shown,
                               key_display=_label(entry, plain[0]), tooltip=entry.help))
        for key in entry.keys:
            if key in PRIORITY_KEYS:
                out.append(Binding(key, entry.action, description, show=False, priority=True))
    return out


def hint(actions: Iterable[tuple[str, str]], width: int | None = None) -> str:
    """``space pause · . step · …``: the keymap's labels for (action, words) pairs.

    With ``width``, whole entries drop from the end until the line fits (the last entry,
    the one that leads to the rest, stays): a hint is never cut in the middle of a word.
    """
    keys = keymap.action_keys(keymap.TUI)
    entries = [f"{keys[action].label} {words}" for action, words in actions if action in keys]
    if width is None:
        return " · ".join(entries)
    kept, last = entries[:-1], entries[-1:]
    while kept and len(" · ".join(kept + last)) > width:
        kept.pop()
    return " · ".join(kept + last)


class HelpScreen(ModalScreen[None]):
    """The keys (``?``), from ``keymap.help_lines("tui")``; Esc or ``?`` closes it."""

    BINDINGS: ClassVar[list[Binding]] = [
        Binding("escape,question_mark", "dismiss(None)", "Close", key_display="esc"),
    ]

    def compose(self) -> ComposeResult:
        text = Text()
        text.append("Keys of odc tui", style="bold")
        text.append("  (a key means the same in odc view where it works there; "
                    "docs/viewers.md)\n\n", style="dim")
        for line in keymap.help_lines(keymap.TUI):
            if line and not line.startswith(" "):
                text.append(line + "\n", style="bold underline")
            else:
                text.append(line + "\n")
        text.append("\nEsc or ? closes this", style="dim")
        with VerticalScroll(id="help"):
            yield Static(text, id="help-text")


class KeyActions:
    """The moving-about actions of a ``DashboardApp`` (a mixin): the node after or before
    the selected one, its detail, back, the help, and the detail screen's trend keys,
    which on the main screen say where they work."""

    def action_next_node(self) -> None:
        self.fleet_table.action_cursor(1)

    def action_previous_node(self) -> None:
        self.fleet_table.action_cursor(-1)

    def action_detail(self) -> None:
        if self.screen is self.screen_stack[0]:  # from the main screen only
            self.fleet_table.action_choose()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_back(self) -> None:
        """Esc: off a screen on top, else clear a kept filter (name, alarms, eclipse)."""
        if self.screen is not self.screen_stack[0]:
            self.pop_screen()
            return
        self.clear_filters()

    def action_load_trend(self) -> None:
        self.notify("h loads a node's trend from a recording on its detail screen: "
                    "select a node, Enter, then h.", title="Trend")

    def action_live_trend(self) -> None:
        self.action_load_trend()

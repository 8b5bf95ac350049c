"""One keymap for both viewers: the terminal dashboard (``odc tui``) and the 3D view
(``odc view``).

A key means the same thing wherever it works. Each entry says which viewers offer it;
a key a viewer does not offer does nothing there rather than something else. Both
viewers build their bindings and their ``?`` help from this table, and
``docs/viewers.md`` documents it once (``tests/test_keymap.py`` keeps the three in step).

Keys are written as Textual names them (``space``, ``full_stop``); :func:`vtk_keysym`
gives the name VTK uses for the same key.
"""

from __future__ import annotations

from dataclasses import dataclass

TUI = "tui"
VIEW = "view"
BOTH = frozenset({TUI, VIEW})


@dataclass(frozen=True)
class KeyAction:
    """One key and what it does.

    Attributes:
        keys: Textual key names, the first being the main one (``"plus,equals_sign"``
            style lists are split into this tuple).
        label: What the help shows for the key (``"+"``, ``"] / ["``).
        action: A stable name for what the key does; each viewer maps it to a handler.
        help: One line saying what the key does, the same in both viewers.
        viewers: Where the key works: ``"tui"``, ``"view"`` or both.
        group: The help's section.
    """

    keys: tuple[str, ...]
    label: str
    action: str
    help: str
    viewers: frozenset[str]
    group: str


def _key(keys: str, label: str, action: str, help: str, viewers: frozenset[str] | str,
         group: str) -> KeyAction:
    if isinstance(viewers, str):
        viewers = frozenset({viewers})
    return KeyAction(tuple(keys.split(",")), label, action, help, viewers, group)


TWIN, NODES, VIEWS, TABLE, GENERAL = "The twin", "Nodes", "Views", "Table", "General"

KEYMAP: tuple[KeyAction, ...] = (
    # The twin: keys that send a command, under the twin's roles and confirmation rules.
    _key("space", "space", "toggle_pause", "pause / resume the twin", BOTH, TWIN),
    _key("full_stop", ".", "step", "single step (pauses first)", BOTH, TWIN),
    _key("plus,equals_sign", "+", "warp_up", "warp ×2", BOTH, TWIN),
    _key("minus", "-", "warp_down", "warp ÷2", BOTH, TWIN),
    _key("p", "p", "policy", "next scheduling policy", TUI, TWIN),
    _key("j", "j", "submit_job", "submit a job", TUI, TWIN),
    _key("f", "f", "fault", "inject a fault on the selected node", TUI, TWIN),
    _key("F", "F", "clear_fault", "clear the selected node's faults", TUI, TWIN),
    _key("k", "k", "ack_all", "acknowledge every alarm", TUI, TWIN),
    _key("colon", ":", "command", "command palette", TUI, TWIN),
    # Nodes: which node is selected.
    _key("right_square_bracket", "]", "next_node", "next node", BOTH, NODES),
    _key("left_square_bracket", "[", "previous_node", "previous node", BOTH, NODES),
    _key("m", "m", "mirror", "go to the mirrored node (testbed)", BOTH, NODES),
    _key("enter", "enter", "detail", "the selected node's detail", TUI, NODES),
    _key("h", "h", "load_trend", "load the node's trend from a recording", TUI, NODES),
    _key("H", "H", "live_trend", "back to the live trend", TUI, NODES),
    # Views: what is drawn and how.
    _key("v", "v", "next_view",
         "next view (table / fleet / clusters; globe / 2D map / cluster)", BOTH, VIEWS),
    _key("c", "c", "next_field", "next colour / histogram field", BOTH, VIEWS),
    _key("t", "t", "trails", "trails on / off", VIEW, VIEWS),
    _key("g", "g", "ground_track", "ground track of the selected node on / off", VIEW, VIEWS),
    _key("O", "O", "orbit", "selected node's full orbit on / off", VIEW, VIEWS),
    _key("l", "l", "labels", "labels on / off", VIEW, VIEWS),
    _key("L", "L", "links", "optical inter-satellite links on / off", VIEW, VIEWS),
    _key("i", "i", "frame", "inertial / Earth-fixed", VIEW, VIEWS),
    _key("o", "o", "reset_camera", "reset the camera", VIEW, VIEWS),
    # Table: the dashboard's node table.
    _key("s", "s", "sort",
         "sort by a column (fleet view: worst list nearest a limit / highest / lowest)", TUI,
         TABLE),
    _key("slash", "/", "filter", "filter by name or group", TUI, TABLE),
    _key("a", "a", "only_alarm", "nodes in alarm only", TUI, TABLE),
    _key("e", "e", "only_eclipse", "nodes in eclipse only", TUI, TABLE),
    _key("escape", "esc", "back", "back; clears a kept filter", TUI, TABLE),
    # General.
    _key("question_mark", "?", "help", "these keys", BOTH, GENERAL),
    _key("q,ctrl+c", "q / ctrl+c", "quit", "quit", BOTH, GENERAL),
)

# VTK's keysym for each Textual key name that differs (pyvista's add_key_event takes keysyms).
_VTK_KEYSYMS = {
    "full_stop": "period",
    "equals_sign": "equal",
    "right_square_bracket": "bracketright",
    "left_square_bracket": "bracketleft",
    "question_mark": "question",
    "slash": "slash",
    "colon": "colon",
    "escape": "Escape",
    "enter": "Return",
}


def vtk_keysym(key: str) -> str:
    """The VTK keysym for a Textual key name (``full_stop`` → ``period``)."""
    return _VTK_KEYSYMS.get(key, key)


def for_viewer(viewer: str) -> tuple[KeyAction, ...]:
    """The entries a viewer (``"tui"`` or ``"view"``) offers, in help order."""
    return tuple(entry for entry in KEYMAP if viewer in entry.viewers)


def action_keys(viewer: str) -> dict[str, KeyAction]:
    """A viewer's entries by action name."""
    return {entry.action: entry for entry in for_viewer(viewer)}


def help_lines(viewer: str) -> list[str]:
    """The help a viewer shows for ``?``: one line per key, grouped, in keymap order."""
    lines: list[str] = []
    group = ""
    for entry in for_viewer(viewer):
        if entry.group != group:
            if lines:
                lines.append("")
            lines.append(entry.group)
            group = entry.group
        lines.append(f"  {entry.label:>10s}  {entry.help}")
    return lines


def markdown_table() -> str:
    """The keymap as the Markdown table in ``docs/viewers.md``."""
    rows = ["| Key | What it does | Dashboard | 3D view |", "|---|---|:-:|:-:|"]
    for entry in KEYMAP:
        label = entry.label.replace("|", "\\|")
        rows.append(f"| `{label}` | {entry.help} | {'✓' if TUI in entry.viewers else ''} | "
                    f"{'✓' if VIEW in entry.viewers else ''} |")
    return "\n".join(rows)


def _check_unique() -> None:
    # One meaning per key: a key bound twice would do two things depending on the viewer.
    seen: dict[str, str] = {}
    for entry in KEYMAP:
        for key in entry.keys:
            if key in seen:
                raise ValueError(f"key {key!r} is bound to {seen[key]} and {entry.action}")
            seen[key] = entry.action


_check_unique()

"""The dashboard app (``odc tui``): the fleet table, events, alarms and the twin's clock.

``DashboardApp`` lays out the main screen, draws it at most ``max_fps`` times a second
and wires the table's keys (sort, filter, detail, alarms). Its other parts are mixins:
following the stream (``viz.tui.feed``), sending commands and their actions
(``viz.tui.commands``) and the command palette (``viz.tui.palette``).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, ClassVar

from rich.text import Text
from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Footer, Input, OptionList, RichLog, Static
from textual.widgets.option_list import Option

from twin.protocol.codec import DEFAULT_COMMAND_ADDRESS, DEFAULT_PUB_ADDRESS
from twin.security.clients import ClientKeys
from viz.checks import BadMessages
from viz.stream import CONNECTING, CommandClient
from viz.tui import keys
from viz.tui.cluster import ClusterView, ClusterViewActions
from viz.tui.commands import CommandActions
from viz.tui.feed import BAD_LINE_INTERVAL_S, RESTART_INTERVAL_S, StreamFeed, StreamUpdate
from viz.tui.fleet import FleetView, FleetViewActions
from viz.tui.header import HeaderBar
from viz.tui.keys import KeyActions
from viz.tui.mirror_panel import mirror_panel_text
from viz.tui.model import FleetModel
from viz.tui.palette import CommandPalette
from viz.tui.screens import DetailScreen, SortScreen
from viz.tui.table_subscription import TableRowsFeed
from viz.tui.upcoming import UpcomingPanel
from viz.tui.widgets import FleetTable
from viz.tui.words import plural

# StreamUpdate is what DashboardApp.feed takes: tests and snapshots build them.
__all__ = ["DashboardApp", "StreamUpdate"]


# The hint line's keys (their labels come from the keymap), and the table's.
HINT = (("toggle_pause", "pause/resume"), ("warp_up", "warp ×2"), ("warp_down", "÷2"),
        ("step", "step"), ("sort", "sort (T comp ▼ = hottest first)"), ("detail", "detail"),
        ("ack_all", "ack all"), ("command", "command"), ("help", "all keys"))
TABLE_HINT = (("next_node", "next"), ("previous_node", "previous"), ("detail", "detail"),
              ("filter", "filter"), ("only_alarm", "alarms"), ("only_eclipse", "eclipse"),
              ("back", "clear filters"))

ALARM_TAGS = {"active_unack": ("", "bold red"), "active_ack": ("ACK", "red"),
              "rtn_unack": ("RTN", "yellow"), "shelved": ("SHELVED", "dim")}
"""How each alarm state shows in the alarms panel (twin.protocol.alarms)."""


class DashboardApp(ClusterViewActions, FleetViewActions, TableRowsFeed, StreamFeed,
                   CommandActions, CommandPalette, KeyActions, App):
    """The ODC Twin terminal dashboard.

    Args:
        pub: The twin's stream address.
        cmd: The twin's command address.
        stale_after_s: Wall seconds of silence before the twin shows as STALE.
        command_timeout_s: How long a command waits for its reply.
        max_fps: Most redraws per second of the table (extra states are skipped).
        connect: Whether to follow the twin; False for tests that feed synthetic messages
            through :meth:`feed`.
        keys: CURVE keys for a twin that admits registered keys only (both sockets);
            None for plain connections.
        recording: The path the detail screen's `h` (a node's trend from a recording)
            offers first.
    """

    CSS_PATH = "dashboard.tcss"
    TITLE = "ODC Twin"
    # Every key from the one keymap (viz.keymap, docs/viewers.md): the action is the
    # keymap's action name (ctrl+c, which textual binds to copy, with priority).
    BINDINGS: ClassVar[list[Binding]] = keys.bindings()

    def __init__(
        self,
        pub: str = DEFAULT_PUB_ADDRESS,
        cmd: str = DEFAULT_COMMAND_ADDRESS,
        *,
        stale_after_s: float = 3.0,
        command_timeout_s: float = 2.0,
        max_fps: float = 10.0,
        connect: bool = True,
        keys: ClientKeys | None = None,
        recording: str = "",
    ) -> None:
        super().__init__()
        self.pub_address = pub
        self.cmd_address = cmd
        self.keys = keys
        # The path the detail screen's `h` offers (--recording, then the last one loaded).
        self.recording_path = recording
        self.stale_after_s = stale_after_s
        self.command_timeout_s = command_timeout_s
        self.min_draw_interval_s = 1.0 / max_fps
        self.connect = connect
        self.model = FleetModel()
        self.connection = CONNECTING
        self.missed = 0
        self.restarts = 0
        self.paused = False
        self.warp: float | None = None
        # The newest `replay` header while following a replay (odc replay), else None.
        self.replay: dict[str, Any] | None = None
        self.recent_events: deque[dict[str, Any]] = deque(maxlen=500)
        self.known_commands: list[str] = ["pause", "resume", "step", "warp", "rate", "status",
                                          "meta"]
        self.last_reply: dict[str, Any] | None = None
        self.states_drawn = 0
        # Bad stream messages: those the stream worker dropped (counted there, reported in
        # each update) and those the model could not take (counted here).
        self.stream_bad, self.stream_last_bad, self._stream_bad_wall = 0, "", 0.0
        self.stream_refused = ""  # why the twin refused the stream, said once when it changes
        self.unusable = BadMessages()
        self._bad_line_wall = -BAD_LINE_INTERVAL_S
        self._bad_logged = 0
        self._restart_wall = -RESTART_INTERVAL_S
        self._ui_ready = threading.Event()
        self._ui_ready.set()
        self._command_lock = threading.Lock()
        self._command_client: CommandClient | None = None
        self._last_draw = 0.0
        self._draw_pending = False
        self._alarm_keys: list[tuple[str, int]] = []
        self._asked_commands = False
        # meta.commands: each command's arguments, choices and significance (docs/protocol.md)
        self.command_catalog: dict[str, dict[str, Any]] = {}
        self._asked_meta = False

    # -- layout -----------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield HeaderBar(id="header")
        yield Input(placeholder="filter by name or group (Enter to keep, Esc to clear)",
                    id="filter")
        yield Static(id="waiting")
        yield FleetTable(self.model, id="fleet")
        yield FleetView(self.model, id="fleet-view")
        yield ClusterView(self.model, lambda: self.recent_events, id="cluster-view")
        with Horizontal(id="bottom"):
            # Long events wrap at the log's width (RichLog's default keeps 78 columns).
            yield RichLog(id="events", markup=False, max_lines=1000, wrap=True, min_width=20)
            yield UpcomingPanel(id="upcoming")
            yield OptionList(id="alarms")
            yield Static(id="mirrors")
        yield Static(id="reply")
        yield Footer()

    def on_mount(self) -> None:
        # Held once: the main screen's widgets stay alive while other screens are on top.
        self.fleet_table = self.query_one("#fleet", FleetTable)
        self.events_log = self.query_one("#events", RichLog)
        self.alarm_list = self.query_one("#alarms", OptionList)
        self.reply_line = self.query_one("#reply", Static)
        self.filter_box = self.query_one("#filter", Input)
        self.events_log.border_title = "Events"
        self.alarm_list.border_title = "Active alarms"
        self.alarm_list.border_subtitle = "Enter ack · k ack all"
        self.mirror_panel = self.query_one("#mirrors", Static)
        self.mirror_panel.border_title = "Mirrored nodes"
        self.mirror_panel.border_subtitle = keys.hint([("mirror", "opens each in turn")])
        self.mirror_panel.display = False  # until meta announces a mirror
        self.waiting = self.query_one("#waiting", Static)
        self.upcoming_panel = self.query_one("#upcoming", UpcomingPanel)
        self.held_fleet_view = self.query_one("#fleet-view", FleetView)
        self.held_cluster_view = self.query_one("#cluster-view", ClusterView)
        self.waiting.border_title = "No fleet yet"
        self.waiting.display = False  # until a draw finds no node
        self._fit_hints()
        self.fleet_table.focus()
        self._draw()
        if self.connect:
            self.start_table_subscription()  # asks only on a reduced stream
            self._follow_stream()

    def on_resize(self, event: events.Resize) -> None:
        if hasattr(self, "reply_line"):  # a resize can come before on_mount
            self._fit_hints(event.size.width)

    def _fit_hints(self, width: int | None = None) -> None:
        """The key hints at this terminal's width: whole entries, never a cut word (the
        reply line keeps a command's reply until the next one)."""
        width = width or self.size.width
        shown = self.reply_line.content
        if not shown or getattr(shown, "plain", None) == getattr(self, "_hint_text", None):
            self._hint_text = keys.hint(HINT, width - 2)
            self.reply_line.update(Text(self._hint_text, style="dim"))
        self.fleet_table.border_subtitle = "↑↓ move · " + keys.hint(TABLE_HINT, width - 16)

    # -- drawing ----------------------------------------------------------------------

    def _schedule_draw(self) -> None:
        wait = self._last_draw + self.min_draw_interval_s - time.monotonic()
        if wait <= 0:
            self._draw()
        elif not self._draw_pending:
            self._draw_pending = True
            self.set_timer(wait, self._draw)

    def header_args(self) -> tuple[str, int, int, bool, float | None, int,
                                   dict[str, Any] | None]:
        return (self.connection, self.missed, self.restarts, self.paused, self.warp,
                self.bad_messages, self.replay)

    def _draw_header(self) -> None:
        for header in self.screen.query(HeaderBar):
            header.show(self.model, *self.header_args())

    def _draw(self) -> None:
        self._draw_pending = False
        if not self.screen_stack or not self.is_running:  # (closing: no parts to draw on)
            return
        self._last_draw = time.monotonic()
        self.states_drawn += 1
        table = self.fleet_table
        if self.fleet_view_shown or self.cluster_view_shown:  # the table is hidden; the
            # fleet and cluster views keep their own pace
            self._show_waiting()
            self._draw_header()
            if isinstance(self.screen, DetailScreen):  # a node opened from the fleet view
                self.screen.update_values()
            return
        table.refresh_data()
        model = self.model
        reduced_title = self.table_title(len(table.order))
        parts = [reduced_title or f"Fleet · {len(table.order):,d} of {plural(model.n, 'node')}"]
        column = model.column(model.sort_key)
        ranked = reduced_title is not None and self.table_subscription is not None and \
            self.table_subscription.ranks_by_sort(model)
        if column is not None and not ranked:  # (a twin's top N by it says so already)
            parts.append(f"sorted by {column.heading} {'▼' if model.sort_descending else '▲'}")
        if model.text_filter:
            parts.append(f"name has {model.text_filter!r}")
        if model.only_alarm:
            parts.append("in alarm only")
        if model.only_eclipse:
            parts.append("in eclipse only")
        if model.text_filter or model.only_alarm or model.only_eclipse:
            parts.append("esc clears")
        hidden = len(model.columns) - table.columns_fitted
        if hidden > 0 and model.n:
            parts.append(f"{hidden} more column{'s' if hidden != 1 else ''} →")
        title = " · ".join(parts)
        if table.border_title != title:
            table.border_title = title
        self._show_waiting()
        self._draw_header()
        self._draw_mirrors()
        t_utc = model.header.get("t_utc")
        self.upcoming_panel.show(t_utc if isinstance(t_utc, int | float) else None)
        if isinstance(self.screen, DetailScreen):
            self.screen.update_values()

    def _draw_mirrors(self) -> None:
        """Every mirrored node and its health, beside the events (none: hidden)."""
        panel = self.mirror_panel
        panel.display = bool(self.model.mirrors)
        if self.model.mirrors:
            panel.update(mirror_panel_text(self.model))

    def waiting_text(self) -> Text | None:
        """What the dashboard waits for while no node is known, or None once there are."""
        if self.model.n:
            return None
        text = Text()
        if self.stream_refused:
            text.append(f"Refused by the twin at {self.pub_address}: ", style="bold red")
            text.append(f"{self.stream_refused}\n\n")
        elif self.connection == CONNECTING:
            text.append("Waiting for a twin", style="bold")
            text.append(f" — its stream at {self.pub_address}, its commands at "
                        f"{self.cmd_address}\n\n")
        else:
            text.append(f"The twin at {self.pub_address} is {self.connection} and has sent "
                        "no nodes yet.\n\n", style="bold")
        text.append("No twin running? Start one in another terminal:\n", style="dim")
        # The addresses this dashboard waits on, where they are not the twin's defaults.
        flags = "".join(f" --{flag} {address}" for flag, address, default in (
            ("pub", self.pub_address, DEFAULT_PUB_ADDRESS),
            ("cmd", self.cmd_address, DEFAULT_COMMAND_ADDRESS)) if address != default)
        text.append(f"    odc run{flags}\n", style="bold")
        # One short line: on an 80x24 terminal the panel holds about eight.
        text.append("    (--scenario NAME for another than default; odc scenarios lists "
                    "them)\n", style="dim")
        text.append("A twin elsewhere: odc tui --pub ADDRESS --cmd ADDRESS.  "
                    "? shows the keys, q quits.", style="dim")
        return text

    def _show_waiting(self) -> None:
        text = self.waiting_text()
        waiting = text is not None
        if waiting != self.waiting.display:  # the table's display is left alone otherwise
            self.waiting.display = waiting
            if self.table_shown:  # the fleet or cluster view keeps the table hidden
                self.fleet_table.display = not waiting
        if text is not None:
            self.waiting.update(text)

    def _refresh_alarms(self) -> None:
        model = self.model
        keys = sorted(model.alarms, key=lambda k: -model.alarms[k].t_utc)
        shown = [(k, model.alarms[k].state, model.alarms[k].count) for k in keys]
        if shown == self._alarm_keys:
            return
        self._alarm_keys = shown
        alarms = self.alarm_list
        alarms.clear_options()
        for key in keys:
            alarm = model.alarms[key]
            who = model.name(alarm.sat) if alarm.sat >= 0 else "fleet"
            times = f" ×{alarm.count}" if alarm.count > 1 else ""
            # The message usually names the node already; say it once, in red.
            message = alarm.message.replace(who, "").strip(" :") or alarm.kind
            tag, style = ALARM_TAGS.get(alarm.state, ("", "bold red"))
            alarms.add_option(Option(Text.assemble((tag, "reverse"), " " if tag else "",
                                                   (who, style), f" {message}{times}"),
                                     id=f"{key[0]}|{key[1]}"))
        unacked = sum(a.state in ("active_unack", "rtn_unack") for a in model.alarms.values())
        alarms.border_title = (f"Alarms ({len(keys)}, {unacked} unacknowledged)"
                               if getattr(model, "twin_keeps_alarms", False)
                               else f"Active alarms ({len(keys)})")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option_list.id != "alarms" or event.option.id is None:
            return
        kind, _, sat = event.option.id.rpartition("|")
        alarm = self.model.alarms.get((kind, int(sat)))
        if alarm is not None and alarm.alarm_id is not None:  # the twin's: acknowledge there
            self.send_command("ack_alarm", ids=[alarm.alarm_id], comment="from odc tui")
            return
        if self.model.acknowledge((kind, int(sat))):
            self._log_line(Text(f"acknowledged {kind} on {self.model.name(int(sat))}",
                                style="dim"))
        self._refresh_alarms()
        self._schedule_draw()

    # -- table interaction ------------------------------------------------------------

    def on_fleet_table_chosen(self, message: FleetTable.Chosen) -> None:
        self.push_screen(DetailScreen(self.model, message.sat))

    def on_fleet_table_sort_requested(self, message: FleetTable.SortRequested) -> None:
        self.sort_by(message.key)

    def sort_by(self, key: str | None, descending: bool | None = None) -> None:
        if key:
            self.model.set_sort(key, descending)
            self.fleet_table.to_top()
            self._draw()

    def action_sort(self) -> None:
        if self.fleet_view_shown:  # the fleet view's list: nearest a limit, highest, lowest
            self.next_worst_order()
            return
        self.push_screen(SortScreen(self.model), self.sort_by)

    def action_filter(self) -> None:
        box = self.filter_box
        box.display = True
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self.model.set_text_filter(event.value)
            self.fleet_table.to_top()
            self._draw()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            event.input.display = bool(event.value)
            self.fleet_table.focus()

    def on_key(self, event) -> None:
        box = self.filter_box
        if event.key == "escape" and box.has_focus:
            box.value = ""
            box.display = False
            self.fleet_table.focus()
            event.stop()

    def action_only_alarm(self) -> None:
        self.model.only_alarm = not self.model.only_alarm
        self.fleet_table.to_top()
        self._draw()

    def action_only_eclipse(self) -> None:
        self.model.only_eclipse = not self.model.only_eclipse
        self.fleet_table.to_top()
        self._draw()

    def action_ack_all(self) -> None:
        if getattr(self.model, "twin_keeps_alarms", False):  # every viewer sees the ack
            self.send_command("ack_alarm", all=True, comment="from odc tui (ack all)")
            return
        count = self.model.acknowledge(None)
        self._log_line(Text(f"acknowledged {plural(count, 'alarm')}", style="dim"))
        self._refresh_alarms()
        self._schedule_draw()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "mirror":
            return bool(self.model.mirrors)
        # A keymap action this dashboard does not have (yet): shown nowhere, does nothing.
        return hasattr(self, f"action_{action}") or hasattr(self, f"_action_{action}")

    def clear_filters(self) -> None:
        """Esc on the main screen: every kept filter off (name, alarms only, eclipse only)."""
        model = self.model
        if not (model.text_filter or model.only_alarm or model.only_eclipse):
            return
        self.filter_box.value = ""  # its Changed message clears the name filter
        self.filter_box.display = False
        model.set_text_filter("")
        model.only_alarm = model.only_eclipse = False
        self.fleet_table.to_top()
        self.fleet_table.focus()
        self._draw()

    def action_mirror(self) -> None:
        """Open the mirrored node's detail (the next one, where a twin mirrors several)."""
        sats = sorted(self.model.mirror_of)
        if not sats:
            self.notify("The twin mirrors no node (no [mirror] in its scenario).",
                        title="Mirror")
            return
        current = self.selected_sat()
        sat = sats[(sats.index(current) + 1) % len(sats)] if current in sats else sats[0]
        self.fleet_table.select_sat(sat)
        if isinstance(self.screen, DetailScreen):
            self.screen.sat = sat
            self.screen.rebuild()
        else:
            self.push_screen(DetailScreen(self.model, sat))

    def selected_sat(self) -> int | None:
        if isinstance(self.screen, DetailScreen):
            return self.screen.sat
        if self.fleet_view_shown:  # the node under the fleet view's worst-list cursor
            return self.fleet_view.selected_sat()
        if self.cluster_view_shown:  # the member under the cluster view's cursor
            return self.cluster_view.selected_sat()
        return self.fleet_table.selected_sat

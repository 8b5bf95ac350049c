"""The dashboard app: follows the stream in a worker thread and commands the twin.

Network I/O never runs on the UI thread. One worker thread owns the subscriber, polls it
with a short timeout and hands each batch to the UI with ``post_message``; it sends the
next batch only after the UI has drawn the last one, so a slow terminal skips frames
instead of queueing them. Commands run in their own short-lived worker threads; a twin
that is gone answers with an error after the client's timeout, never a hang.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Input, OptionList, RichLog, Static
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from twin.core.clock import MAX_WARP, MIN_WARP
from twin.protocol.codec import DEFAULT_COMMAND_ADDRESS, DEFAULT_PUB_ADDRESS
from twin.protocol.codec import Message as WireMessage
from viz.checks import BadMessages, check_meta
from viz.stream import CONNECTING, LIVE, MAX_BATCH_EVENTS, STALE, CommandClient, StreamClient
from viz.tui import forms
from viz.tui.model import FleetModel, utc_text
from viz.tui.screens import (
    SEVERITY_STYLE,
    CommandError,
    CommandFormScreen,
    CommandScreen,
    DetailScreen,
    SortScreen,
    parse_command,
)
from viz.tui.widgets import FleetTable, HeaderBar

# Wall seconds between events-log lines about bad stream messages, and between meta
# requests after a restart (a rogue publisher may flip run_id on every message).
BAD_LINE_INTERVAL_S = 5.0
RESTART_INTERVAL_S = 5.0


@dataclass
class StreamUpdate(Message):
    """What the stream worker gathered since the UI last drew (newest state, all events)."""

    state: WireMessage | None = None
    meta: WireMessage | None = None
    heartbeat: WireMessage | None = None
    events: list[WireMessage] = field(default_factory=list)
    connection: str = CONNECTING
    missed: int = 0
    restarts: int = 0
    restarted: bool = False
    skipped: int = 0
    bad: int = 0
    last_bad: str = ""
    last_bad_wall: float = 0.0


class CommandDone(Message):
    """A command's reply (or the client's error when the twin did not answer)."""

    def __init__(self, line: str, reply: dict[str, Any]) -> None:
        self.line = line
        self.reply = reply
        super().__init__()


class DashboardApp(App):
    """The ODC Twin terminal dashboard.

    Args:
        pub: The twin's stream address.
        cmd: The twin's command address.
        stale_after_s: Wall seconds of silence before the twin shows as STALE.
        command_timeout_s: How long a command waits for its reply.
        max_fps: Most redraws per second of the table (extra states are skipped).
        connect: Whether to follow the twin; False for tests that feed synthetic messages
            through :meth:`feed`.
    """

    CSS_PATH = "dashboard.tcss"
    TITLE = "ODC Twin"
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("space", "toggle_pause", "Pause/Resume"),
        Binding("n", "step", "Step", show=False),
        Binding("plus,equals_sign", "warp(2.0)", "Warp×2", key_display="+", show=False),
        Binding("minus", "warp(0.5)", "Warp÷2", key_display="-", show=False),
        Binding("s", "sort", "Sort"),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("a", "only_alarm", "Alarms only", show=False),
        Binding("e", "only_eclipse", "Eclipse only", show=False),
        Binding("k", "ack_all", "Ack alarms", show=False),
        Binding("colon", "command", "Command", key_display=":"),
        Binding("m", "mirror", "Mirror node"),
        Binding("p", "policy", "Next policy", show=False),
        Binding("j", "submit_job", "Submit job", show=False),
        Binding("f", "fault", "Inject fault", show=False),
        Binding("F", "clear_fault", "Clear fault", show=False),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        pub: str = DEFAULT_PUB_ADDRESS,
        cmd: str = DEFAULT_COMMAND_ADDRESS,
        *,
        stale_after_s: float = 3.0,
        command_timeout_s: float = 2.0,
        max_fps: float = 10.0,
        connect: bool = True,
    ) -> None:
        super().__init__()
        self.pub_address = pub
        self.cmd_address = cmd
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
        self.recent_events: deque[dict[str, Any]] = deque(maxlen=500)
        self.known_commands: list[str] = ["pause", "resume", "step", "warp", "rate", "status",
                                          "meta"]
        self.last_reply: dict[str, Any] | None = None
        self.states_drawn = 0
        # Bad stream messages: those the stream worker dropped (counted there, reported in
        # each update) and those the model could not take (counted here).
        self.stream_bad, self.stream_last_bad, self._stream_bad_wall = 0, "", 0.0
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
        yield FleetTable(self.model, id="fleet")
        with Horizontal(id="bottom"):
            yield RichLog(id="events", markup=False, max_lines=1000, wrap=False)
            yield OptionList(id="alarms")
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
        self.reply_line.update(Text(
            "space pause/resume · +/- warp · n step · s sort (T comp ▼ = hottest first) · "
            "Enter detail · a alarms · e eclipse · k ack · : cmd · ^p all", style="dim"))
        self.fleet_table.border_subtitle = (
            "↑↓ move · Enter detail · s sort · / filter · a alarms · e eclipse")
        self.fleet_table.focus()
        self._draw()
        if self.connect:
            self._follow_stream()

    def on_unmount(self) -> None:
        with self._command_lock:
            if self._command_client is not None:
                self._command_client.close()
                self._command_client = None

    # -- the stream -------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="stream")
    def _follow_stream(self) -> None:
        worker = get_current_worker()
        client = StreamClient(self.pub_address, stale_after_s=self.stale_after_s)
        pending = StreamUpdate()
        has_data = False
        last_connection, last_post = "", 0.0
        try:
            while not worker.is_cancelled:
                batch = client.poll(timeout_ms=50)
                if not batch.empty or batch.restarted:
                    has_data = True
                    if batch.state is not None:
                        pending.skipped += batch.states_skipped + (pending.state is not None)
                        pending.state = batch.state
                    pending.meta = batch.meta or pending.meta
                    pending.heartbeat = batch.heartbeat or pending.heartbeat
                    pending.events.extend(batch.events)
                    # A slow screen and an event flood: keep the newest, not them all.
                    del pending.events[:-MAX_BATCH_EVENTS]
                    pending.restarted |= batch.restarted
                connection = client.connection
                now = time.monotonic()
                due = has_data or connection != last_connection or now - last_post > 0.5
                if due and self._ui_ready.is_set():
                    pending.connection = connection
                    pending.missed, pending.restarts = client.missed, client.restarts
                    pending.bad, pending.last_bad = client.bad.count, client.bad.last
                    pending.last_bad_wall = client.bad.last_wall
                    self._ui_ready.clear()
                    self.post_message(pending)
                    pending, has_data = StreamUpdate(), False
                    last_connection, last_post = connection, now
        finally:
            client.close()

    def feed(self, update: StreamUpdate) -> None:
        """Hand the UI an update directly (tests and snapshots, with ``connect=False``)."""
        self._ui_ready.clear()
        self.on_stream_update(update)

    def on_stream_update(self, update: StreamUpdate) -> None:
        try:
            if self.screen_stack:  # not while the app is shutting down
                self._take(update)
        finally:
            self._ui_ready.set()

    def _take(self, update: StreamUpdate) -> None:
        before = self.connection
        self.connection, self.missed, self.restarts = (
            update.connection, update.missed, update.restarts)
        self.stream_bad, self.stream_last_bad = update.bad, update.last_bad
        self._stream_bad_wall = update.last_bad_wall
        if before != update.connection:
            self._connection_changed(before, update.connection)
        now = time.monotonic()
        if update.restarted and now - self._restart_wall >= RESTART_INTERVAL_S:
            self._restart_wall = now
            self.notify("The twin restarted; fetching its description again.", title="Twin")
            self.send_command("meta", quiet=True)
        # Each message is taken on its own: one the model cannot use is counted and shown,
        # and the ones after it are taken as usual (the stream worker checked them all).
        if update.meta is not None:
            self._guarded("meta", self._take_meta, update.meta)
        for source in (update.heartbeat, update.state):
            if source is not None:
                self._take_clock(source.header)
        if update.state is not None:
            self._guarded("state", self.model.apply_state, update.state)
            if not self.model.meta and not self._asked_meta and self.connect:
                # A late joiner: ask for meta now rather than wait for the next broadcast.
                self._asked_meta = True
                self.send_command("meta", quiet=True)
        if update.events:
            self._guarded("event", self._log_events, update.events)
        self._log_bad()
        if update.state is not None or update.meta is not None or update.events:
            self._schedule_draw()
        else:
            self._draw_header()

    def _guarded(self, topic: str, take: Any, message: Any) -> None:
        """``take(message)``; an exception is counted as a bad message, never raised."""
        try:
            take(message)
        except Exception as exc:
            if topic == "state":
                self.model.forget_state()  # no half-taken state: blank until the next one
            self.unusable.add(f"unusable_{topic}",
                              f"{topic} not shown ({type(exc).__name__}: {exc})")

    def _take_meta(self, meta: WireMessage | dict[str, Any]) -> None:
        mirrors = self.model.mirrors
        self.model.apply_meta(meta)
        self._take_command_catalog(meta)
        if self.model.mirrors != mirrors:
            self.refresh_bindings()  # "m Mirror node" shows only with a mirror
        if not self._asked_commands and self.connect:
            self._asked_commands = True
            self.send_command("commands", quiet=True)

    def _take_clock(self, header: dict[str, Any]) -> None:
        """``paused`` and ``warp`` from a state or heartbeat header (checked by the stream)."""
        paused, warp = header.get("paused"), header.get("warp")
        if isinstance(paused, bool):
            self.paused = paused
        if isinstance(warp, int | float) and not isinstance(warp, bool) and 0 < warp < 1e300:
            self.warp = float(warp)

    @property
    def bad_messages(self) -> int:
        """Stream messages dropped as bad, by the stream worker and by the model."""
        return self.stream_bad + self.unusable.count

    @property
    def last_bad(self) -> str:
        """Why the newest bad message was dropped (shortened), or ``""``."""
        if self.unusable.count and self.unusable.last_wall >= self._stream_bad_wall:
            return self.unusable.last
        return self.stream_last_bad

    def _log_bad(self) -> None:
        """One events-log line now and then while bad messages arrive, never one each."""
        count, now = self.bad_messages, time.monotonic()
        if count:
            title = f"Events · {count:,d} bad stream message(s) dropped"
            if self.events_log.border_title != title:
                self.events_log.border_title = title
        if count == self._bad_logged or now - self._bad_line_wall < BAD_LINE_INTERVAL_S:
            return
        self._log_line(Text(f"stream: {count - self._bad_logged} bad message(s) dropped "
                            f"({count} in all); last: {self.last_bad}", style="dark_orange"))
        self._bad_logged, self._bad_line_wall = count, now

    def _connection_changed(self, before: str, now: str) -> None:
        if now == STALE:
            self.notify("No word from the twin: STALE. Still listening; it reconnects by "
                        "itself when the twin is back.", title="Connection", severity="warning")
            self._log_line(Text("connection STALE: twin silent, waiting for it", style="yellow"))
        elif now == LIVE and before == STALE:
            self.notify("The twin is back: LIVE again.", title="Connection")
            self._log_line(Text("connection LIVE again (reconnected)", style="green"))

    def _log_events(self, events: list[WireMessage]) -> None:
        detail = self.screen if isinstance(self.screen, DetailScreen) else None
        lines = []
        for message in events[-200:]:
            body = self.model.apply_event(message)
            self.recent_events.append(body)
            lines.append(self._event_line(body))
            if detail is not None and body.get("sat", -1) == detail.sat:
                detail.add_event(body)
        # One write for the batch: the log renders, sizes and scrolls once per frame, not
        # once per event (a warped twin sends a hundred contact events a second).
        self.events_log.write(Text("\n").join(lines))
        self._refresh_alarms()

    def _event_line(self, body: dict[str, Any]) -> Text:
        severity = str(body.get("severity", "info"))
        sat = body.get("sat", -1)
        sat = sat if isinstance(sat, int) else -1
        line = Text(utc_text(float(body.get("t_utc", 0.0)))[11:] + " ")
        line.append(f"{severity:7s}", style=SEVERITY_STYLE.get(severity, ""))
        who = self.model.name(sat) if sat >= 0 else "fleet"
        # Limit alarms read from their values, in the table's units (°C, %), not kelvin.
        message = self.model.event_text(body)
        if who not in message:
            line.append(f" {who}:", style="bold")
        line.append(f" {message}")
        return line

    def _log_line(self, text: Text) -> None:
        self.events_log.write(text)

    # -- drawing ----------------------------------------------------------------------

    def _schedule_draw(self) -> None:
        wait = self._last_draw + self.min_draw_interval_s - time.monotonic()
        if wait <= 0:
            self._draw()
        elif not self._draw_pending:
            self._draw_pending = True
            self.set_timer(wait, self._draw)

    def header_args(self) -> tuple[str, int, int, bool, float | None, int]:
        return (self.connection, self.missed, self.restarts, self.paused, self.warp,
                self.bad_messages)

    def _draw_header(self) -> None:
        for header in self.screen.query(HeaderBar):
            header.show(self.model, *self.header_args())

    def _draw(self) -> None:
        self._draw_pending = False
        if not self.screen_stack:
            return
        self._last_draw = time.monotonic()
        self.states_drawn += 1
        table = self.fleet_table
        table.refresh_data()
        model = self.model
        parts = [f"Fleet · {len(table.order)} of {model.n} nodes"]
        column = model.column(model.sort_key)
        if column is not None:
            parts.append(f"sorted by {column.heading} {'▼' if model.sort_descending else '▲'}")
        if model.text_filter:
            parts.append(f"name has {model.text_filter!r}")
        if model.only_alarm:
            parts.append("in alarm only")
        if model.only_eclipse:
            parts.append("in eclipse only")
        title = " · ".join(parts)
        if table.border_title != title:
            table.border_title = title
        self._draw_header()
        if isinstance(self.screen, DetailScreen):
            self.screen.update_values()

    def _refresh_alarms(self) -> None:
        keys = sorted(self.model.alarms, key=lambda k: -self.model.alarms[k].t_utc)
        if keys == self._alarm_keys and all(self.model.alarms[k].count == 1 for k in keys):
            return
        self._alarm_keys = keys
        alarms = self.alarm_list
        alarms.clear_options()
        for key in keys:
            alarm = self.model.alarms[key]
            who = self.model.name(alarm.sat) if alarm.sat >= 0 else "fleet"
            times = f" ×{alarm.count}" if alarm.count > 1 else ""
            # The message usually names the node already; say it once, in red.
            message = alarm.message.replace(who, "").strip(" :") or alarm.kind
            alarms.add_option(Option(Text.assemble((who, "bold red"), f" {message}{times}"),
                                     id=f"{key[0]}|{key[1]}"))
        alarms.border_title = f"Active alarms ({len(keys)})"

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option_list.id != "alarms" or event.option.id is None:
            return
        kind, _, sat = event.option.id.rpartition("|")
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
            self.fleet_table.cursor_row = 0
            self.fleet_table.scroll_to(y=0, animate=False)
            self._draw()

    def action_sort(self) -> None:
        self.push_screen(SortScreen(self.model), self.sort_by)

    def action_filter(self) -> None:
        box = self.filter_box
        box.display = True
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self.model.set_text_filter(event.value)
            self.fleet_table.cursor_row = 0
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
        self.fleet_table.cursor_row = 0
        self._draw()

    def action_only_eclipse(self) -> None:
        self.model.only_eclipse = not self.model.only_eclipse
        self.fleet_table.cursor_row = 0
        self._draw()

    def action_ack_all(self) -> None:
        count = self.model.acknowledge(None)
        self._log_line(Text(f"acknowledged {count} alarm(s)", style="dim"))
        self._refresh_alarms()
        self._schedule_draw()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "mirror":
            return bool(self.model.mirrors)
        return True

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
        return self.fleet_table.selected_sat

    # -- commands ---------------------------------------------------------------------

    def send_command(self, cmd: str, *, quiet: bool = False, **arguments: Any) -> None:
        """Send a command from a worker thread; the reply comes back as ``CommandDone``."""
        line = " ".join([cmd, *(f"{k}={v}" for k, v in arguments.items())])
        if not quiet:
            self.reply_line.update(Text(f"› {line} …", style="bold"))
        self._command_worker(cmd, arguments, line, quiet)

    @work(thread=True, group="commands")
    def _command_worker(self, cmd: str, arguments: dict[str, Any], line: str,
                        quiet: bool) -> None:
        with self._command_lock:
            if self._command_client is None:
                self._command_client = CommandClient(self.cmd_address,
                                                     timeout_s=self.command_timeout_s)
            reply = self._command_client.send(cmd, **arguments)
        self.post_message(CommandDone("" if quiet else line, reply))

    def on_command_done(self, message: CommandDone) -> None:
        if not self.screen_stack:
            return
        reply = message.reply
        self._learn_commands(reply)
        if isinstance(reply.get("meta"), dict):
            try:
                check_meta(reply["meta"])
            except ValueError as exc:
                self.unusable.add("bad_meta_reply", f"meta reply: {exc}")
            else:
                self._guarded("meta", self.model.apply_meta, reply["meta"])
                self.refresh_bindings()
                self._schedule_draw()
        if not message.line:
            return
        self.last_reply = reply
        if reply.get("ok"):
            extras = {k: v for k, v in reply.items() if k not in ("ok", "meta", "counters",
                                                                    "events_by_kind", "seq")}
            summary = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                                for k, v in list(extras.items())[:8])
            text = Text.assemble(("› ", "bold"), (message.line, "bold"), ("  ok ", "bold green"),
                                 summary)
            for key in ("paused", "warp"):
                if key in reply:
                    setattr(self, key, reply[key] if key == "paused" else float(reply[key]))
            self._draw_header()
        else:
            text = Text.assemble(("› ", "bold"), (message.line, "bold"),
                                 ("  error ", "bold white on red"), f" {reply.get('error')}")
            self.notify(str(reply.get("error")), title=f"{message.line}: refused",
                        severity="error", timeout=6)
        self.reply_line.update(text)
        self._log_line(text)

    def _learn_commands(self, reply: dict[str, Any]) -> None:
        """Keep the twin's command list from a ``commands`` reply (a twin without a catalog)."""
        names = reply.get("commands")
        if isinstance(names, list | dict) and names and not self.command_catalog:
            self.known_commands = sorted({str(n) for n in names})

    def _take_command_catalog(self, meta: WireMessage | dict[str, Any]) -> None:
        """The twin's commands, their arguments and choices, from ``meta.commands``."""
        body = meta.header if isinstance(meta, WireMessage) else meta
        catalog = body.get("commands") if isinstance(body, dict) else None
        if isinstance(catalog, dict) and catalog:
            self.command_catalog = {str(k): v for k, v in catalog.items() if isinstance(v, dict)}
            self.known_commands = sorted(self.command_catalog)

    def _arg(self, command: str, arg: str) -> dict[str, Any]:
        """The catalog's entry for ``command``'s argument ``arg`` ({} when not declared)."""
        args = self.command_catalog.get(command, {}).get("args")
        entry = args.get(arg) if isinstance(args, dict) else None
        return entry if isinstance(entry, dict) else {}

    def _choices(self, command: str, arg: str) -> list[str]:
        choices = self._arg(command, arg).get("choices")
        return [str(c) for c in choices] if isinstance(choices, list) else []

    def _form_hint(self, command: str) -> str:
        """A one-line form for ``command`` from its catalog entry: each argument's range."""
        args = self.command_catalog.get(command, {}).get("args")
        if not isinstance(args, dict):
            return ""
        parts = []
        for name, arg in args.items():
            if not isinstance(arg, dict):
                continue
            if isinstance(arg.get("choices"), list):
                what = "|".join(str(c) for c in arg["choices"])
            elif "min" in arg or "max" in arg:
                what = f"{arg.get('min', '')}..{arg.get('max', '')} {arg.get('unit', '')}"
            else:
                what = str(arg.get("type", ""))
            parts.append(f"{name}{'' if arg.get('required') else '?'}={what.strip()}")
        return "; ".join(parts)

    def command_line(self, line: str | None) -> None:
        """Send a typed command line (``warp value=120``); a bad line is shown, not sent."""
        if not line:
            return
        try:
            cmd, arguments = parse_command(line)
        except CommandError as exc:
            self.reply_line.update(Text(f"› {exc}", style="bold red"))
            return
        self.send_command(cmd, **arguments)

    def action_form(self, cmd: str, prefill: dict[str, Any] | None = None) -> None:
        """Open ``cmd``'s form, built from its catalog entry (sent at once without
        arguments); the typed prompt for a command the catalog does not declare."""
        entry = self.command_catalog.get(cmd)
        if entry is None:
            words = " ".join(f"{k}={v}" for k, v in (prefill or {}).items())
            self.action_command(f"{cmd} {words}".strip() + " ", hint=self._form_hint(cmd))
            return
        if not forms.args_of(entry):
            self.send_command(cmd)
            return

        def done(arguments: dict[str, Any] | None) -> None:
            if arguments is not None:
                self.send_command(cmd, **arguments)

        self.push_screen(CommandFormScreen(cmd, entry, prefill, self.model.n), done)

    def action_command(self, prefill: str = "", hint: str = "") -> None:
        self.push_screen(CommandScreen(prefill, self.known_commands, hint), self.command_line)

    def action_toggle_pause(self) -> None:
        self.send_command("resume" if self.paused else "pause")

    def action_step(self) -> None:
        self.send_command("step", n=1)

    def action_warp(self, factor: float) -> None:
        """Warp times ``factor``, kept within the range the catalog declares."""
        low, high = forms.declared_range(self.command_catalog, "warp", "value",
                                         (MIN_WARP, MAX_WARP))
        current = self.warp or 60.0
        self.send_command("warp", value=round(min(max(current * factor, low), high), 6))

    def _current_policy(self) -> str | None:
        """The policy in force: the ``scheduler_policy_code`` total, named by its labels."""
        code = self.model.header.get("fleet", {}).get("scheduler_policy_code")
        entry = self.model.quantities.total("scheduler_policy_code")
        return entry.label_of(code) if code is not None else None

    def action_policy(self, policy: str | None = None) -> None:
        """Switch the scheduler to ``policy``, or to the next one the twin offers."""
        if policy is None:
            policies = self._choices("set_policy", "policy")
            if not policies:
                self.action_command("set_policy policy=", hint=self._form_hint("set_policy"))
                return
            current = self._current_policy()
            following = policies.index(current) + 1 if current in policies else 0
            policy = policies[following % len(policies)]
        self.send_command("set_policy", policy=policy)

    def _on_selected(self) -> dict[str, Any]:
        """A form's starting ``sat``: the node under the cursor (or on the detail screen)."""
        sat = self.selected_sat()
        return {"sat": sat} if sat is not None else {}

    def action_submit_job(self) -> None:
        self.action_form("submit_job")

    def action_fault(self) -> None:
        self.action_form("inject_fault", self._on_selected())

    def action_clear_fault(self) -> None:
        self.action_form("clear_fault", self._on_selected())

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Pause the twin", "Stop the simulation clock",
                            lambda: self.send_command("pause"))
        yield SystemCommand("Resume the twin", "Restart the simulation clock",
                            lambda: self.send_command("resume"))
        yield SystemCommand("Step once", "Take one step while paused", self.action_step)
        yield SystemCommand("Warp ×2", "Run simulated time twice as fast",
                            lambda: self.action_warp(2.0))
        yield SystemCommand("Warp ÷2", "Run simulated time half as fast",
                            lambda: self.action_warp(0.5))
        yield SystemCommand("Set warp…", "Simulated seconds per wall second",
                            lambda: self.action_command(f"warp value={self.warp or 60:g}"))
        yield SystemCommand("Scheduler policy: next", "Switch to the next scheduler policy",
                            self.action_policy)
        for policy in self._choices("set_policy", "policy"):
            yield SystemCommand(f"Scheduler policy: {policy}", "Choose how jobs are placed",
                                lambda policy=policy: self.action_policy(policy))
        yield SystemCommand("Submit job…", "Queue a job on the fleet", self.action_submit_job)
        yield SystemCommand("Inject fault on selected node…", "Fail a part of a node",
                            self.action_fault)
        yield SystemCommand("Clear faults on selected node…", "Repair a node",
                            self.action_clear_fault)
        yield SystemCommand("Send a command…", "Any twin command, typed",
                            self.action_command)
        # Every command the twin declares, with a form from its catalog entry.
        for cmd, entry in sorted(self.command_catalog.items()):
            has_args = bool(forms.args_of(entry))
            summary = str(entry.get("summary", "")) or f"the twin's {cmd} command"
            significance = str(entry.get("significance", ""))
            yield SystemCommand(f"Twin: {cmd}{'…' if has_args else ''}",
                                f"{summary} ({significance})" if significance else summary,
                                lambda cmd=cmd: self.action_form(cmd, self._on_selected()))
        yield SystemCommand("Sort the fleet…", "Choose the sort column", self.action_sort)
        yield SystemCommand("Show only nodes in alarm", "Toggle the alarm filter",
                            self.action_only_alarm)
        yield SystemCommand("Show only nodes in eclipse", "Toggle the eclipse filter",
                            self.action_only_eclipse)
        yield SystemCommand("Acknowledge all alarms", "Clear the active alarm list",
                            self.action_ack_all)
        for column in self.model.columns:
            yield SystemCommand(f"Sort by {column.heading}",
                                column.description or f"Sort the fleet by {column.key}",
                                lambda key=column.key: self.sort_by(key), discover=False)

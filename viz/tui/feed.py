"""The dashboard's feed: a worker thread follows the stream, the UI takes what it gathered.

A mixin of ``viz.tui.app.DashboardApp``. Network I/O never runs on the UI thread. One
worker thread owns the subscriber, polls it with a short timeout and hands each batch to
the UI with ``post_message``; it sends the next batch only after the UI has drawn the
last one, so a slow terminal skips frames instead of queueing them. Each message is taken
on its own: one the model cannot use is counted and shown, never raised.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rich.text import Text
from textual import work
from textual.message import Message
from textual.widgets import RichLog
from textual.worker import get_current_worker

from twin.protocol.codec import NODE_EVENTS_SUMMARY
from twin.protocol.codec import Message as WireMessage
from twin.security.clients import ClientKeys
from viz.checks import BadMessages
from viz.stream import CONNECTING, LIVE, MAX_BATCH_EVENTS, STALE, StreamClient
from viz.tui.model import FleetModel, utc_text
from viz.tui.screens import DetailScreen, event_grid, event_when
from viz.tui.upcoming import UpcomingPanel
from viz.tui.words import plural, summary_lines

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
    alarms: WireMessage | None = None
    aggregate: WireMessage | None = None
    connection: str = CONNECTING
    missed: int = 0
    restarts: int = 0
    restarted: bool = False
    skipped: int = 0
    bad: int = 0
    last_bad: str = ""
    last_bad_wall: float = 0.0
    refused: str = ""
    """Why the twin refused the subscriber (its key, or the lack of one); ``""`` if not."""
    replay: WireMessage | None = None
    """The newest ``replay`` message: the stream is a replay of a recording."""
    seeked: bool = False
    """The replay moved to another point of its recording since the last update."""
    replaying: bool = False
    """The stream is a replay (its replay messages keep coming)."""
    selections: dict[str, WireMessage] = field(default_factory=dict)
    """The newest message of each selective stream this dashboard asked for, by topic."""



# Commands that only read, for a twin whose catalog has not arrived yet.
READ_ONLY_COMMANDS = frozenset({"status", "meta", "commands", "alarms", "events"})


class StreamFeed:
    """The stream side of a ``DashboardApp``: following the twin, taking its messages.

    The host class (a textual ``App``) provides the model, the connection and clock state,
    the bad-message counts, the events log widget, ``send_command`` and the drawing
    methods; ``connect`` False leaves the stream alone (tests :meth:`feed` updates).
    """

    model: FleetModel
    reduced_seen: bool = False
    """A state without per-node values (a large fleet, docs/protocol.md) came: the fleet
    view was brought up once, as what to look at first."""
    pub_address: str
    keys: ClientKeys | None
    stream_refused: str
    stale_after_s: float
    connect: bool
    connection: str
    missed: int
    restarts: int
    paused: bool
    warp: float | None
    replay: dict[str, Any] | None
    command_catalog: dict[str, dict[str, Any]]
    recent_events: deque[dict[str, Any]]
    upcoming_panel: UpcomingPanel
    stream_bad: int
    stream_last_bad: str
    _stream_bad_wall: float
    unusable: BadMessages
    _bad_line_wall: float
    _bad_logged: int
    _restart_wall: float
    _ui_ready: threading.Event
    _asked_meta: bool
    _asked_commands: bool
    events_log: RichLog
    send_command: Callable[..., None]
    _take_command_catalog: Callable[[Any], None]
    _schedule_draw: Callable[[], None]
    _draw_header: Callable[[], None]
    _refresh_alarms: Callable[[], None]
    selection_topics: frozenset[bytes]  # viz.tui.table_subscription.TableRowsFeed
    take_selections: Callable[[dict[str, WireMessage], bool], bool]

    @work(thread=True, exclusive=True, group="stream")
    def _follow_stream(self) -> None:
        worker = get_current_worker()
        client = StreamClient(self.pub_address, stale_after_s=self.stale_after_s, keys=self.keys)
        pending = StreamUpdate()
        has_data = False
        last_connection, last_refused, last_post = "", "", 0.0
        try:
            while not worker.is_cancelled:
                client.selection_topics = set(self.selection_topics)  # the UI's, now
                batch = client.poll(timeout_ms=50)
                if not batch.empty or batch.restarted:
                    has_data = True
                    if batch.state is not None:
                        pending.skipped += batch.states_skipped + (pending.state is not None)
                        pending.state = batch.state
                    pending.meta = batch.meta or pending.meta
                    pending.heartbeat = batch.heartbeat or pending.heartbeat
                    pending.events.extend(batch.events)
                    pending.alarms = batch.alarms or pending.alarms
                    pending.aggregate = batch.aggregate or pending.aggregate
                    pending.selections.update(batch.selections)
                    pending.replay = batch.replay or pending.replay
                    pending.seeked |= batch.seeked
                    # A slow screen and an event flood: keep the newest, not them all.
                    del pending.events[:-MAX_BATCH_EVENTS]
                    pending.restarted |= batch.restarted
                connection = client.connection
                now = time.monotonic()
                refused = client.refused
                due = has_data or connection != last_connection or now - last_post > 0.5 \
                    or refused != last_refused
                if due and self._ui_ready.is_set():
                    pending.connection = connection
                    pending.missed, pending.restarts = client.missed, client.restarts
                    pending.bad, pending.last_bad = client.bad.count, client.bad.last
                    pending.last_bad_wall = client.bad.last_wall
                    pending.refused = refused
                    pending.replaying = client.replaying
                    self._ui_ready.clear()
                    self.post_message(pending)
                    pending, has_data = StreamUpdate(), False
                    last_connection, last_refused, last_post = connection, refused, now
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
        if update.refused != self.stream_refused:
            self._refused_changed(update.refused)
        now = time.monotonic()
        if update.restarted and now - self._restart_wall >= RESTART_INTERVAL_S:
            self._restart_wall = now
            self.notify("The twin restarted; fetching its description again.", title="Twin")
            self._log_restart(update)
            self.send_command("meta", quiet=True)
        if update.replay is not None:
            self._take_replay(update.replay.header)
        elif self.replay is not None and not update.replaying:
            self.replay = None  # its replay messages stopped: a twin may serve here now
            self._log_line(Text("no replay messages any more: the header shows the stream "
                                "as a twin's", style="magenta"))
        if update.seeked:
            self.model.clear_trends()  # a trend across the jump would join two times
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
        if update.alarms is not None:
            self._guarded("alarms", self._take_alarms, update.alarms)
        if update.aggregate is not None:  # checked by the stream (viz.aggregate)
            self.model.aggregate = update.aggregate.header
        if update.state is not None and update.state.header.get("reduced") is True \
                and not self.reduced_seen:
            self.reduced_seen = True
            if not getattr(self, "fleet_view_shown", True) \
                    and not getattr(self, "cluster_view_shown", False):
                self.action_next_view()  # type: ignore[attr-defined]
                self.notify(f"{self.model.n:,} nodes: the stream carries the fleet's "
                            "summary, not every node. v: node table.",  # type: ignore[attr-defined]
                            title="Large fleet")
        table_changed = self.take_selections(update.selections, update.restarted)
        self._log_bad()
        if update.state is not None or update.meta is not None or update.events \
                or update.replay is not None or table_changed:
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
        self.upcoming_panel.take(self.model.meta.get("autonomy"))
        if self.replay is None:  # a replay's recorded meta lists the twin's commands, not its
            self._take_command_catalog(meta)
        if self.model.mirrors != mirrors:
            self.refresh_bindings()  # "m Mirror node" shows only with a mirror
        if not self._asked_commands and self.connect:
            self._asked_commands = True
            self.send_command("commands", quiet=True)

    def _take_replay(self, header: dict[str, Any]) -> None:
        """A ``replay`` message: the replay's own clock, and on the first one, a word."""
        first = self.replay is None
        self.replay = header
        self.paused, self.warp = header["paused"], float(header["warp"])
        if first:
            self._log_line(Text(f"REPLAY of {header['name']!r}: a recording, not a live twin;"
                                " :seek 12:30, :seek +10m, :seek 50% move it", style="magenta"))
            # The replay's own commands (seek; no model commands) come with its meta reply.
            self.command_catalog = {}
            if self.connect:
                self.send_command("meta", quiet=True)

    def _take_clock(self, header: dict[str, Any]) -> None:
        """``paused`` and ``warp`` from a state or heartbeat header (checked by the stream)."""
        if self.replay is not None:
            return  # the recorded twin's clock; the replay's own is in its replay messages
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
            title = f"Events · {plural(count, 'bad stream message')} dropped"
            if self.events_log.border_title != title:
                self.events_log.border_title = title
        if count == self._bad_logged or now - self._bad_line_wall < BAD_LINE_INTERVAL_S:
            return
        self._log_line(Text(f"stream: {plural(count - self._bad_logged, 'bad message')} dropped "
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

    def _refused_changed(self, refused: str) -> None:
        """Say once why the twin refused the stream (else it just looks like CONNECTING)."""
        self.stream_refused = refused
        if refused:
            self.notify(refused, title="Refused by the twin", severity="error", timeout=15)
            self._log_line(Text(f"stream: {refused}", style="bold red"))
        else:
            self._log_line(Text("stream: the twin accepted the key", style="green"))

    def _log_events(self, events: list[WireMessage]) -> None:
        detail = self.screen if isinstance(self.screen, DetailScreen) else None
        grid = event_grid()
        for message in events[-200:]:
            body = self.model.apply_event(message)
            self.recent_events.append(body)
            if self._routine_audit(body):
                continue
            grid.add_row(*self._event_line(body))
            if detail is not None and body.get("sat", -1) == detail.sat:
                detail.add_event(body)
        # One write for the batch: the log renders, sizes and scrolls once per frame, not
        # once per event (a warped twin sends a hundred contact events a second).
        if grid.row_count:
            self.events_log.write(grid, expand=True)
        self._refresh_alarms()

    def _take_alarms(self, message: WireMessage) -> None:
        """The twin's alarm table (it keeps it: a late dashboard sees every alarm)."""
        self.model.apply_alarm_table(message.header.get("alarms", []))
        self._refresh_alarms()
        self._schedule_draw()

    def _routine_audit(self, body: dict[str, Any]) -> bool:
        """An `audit` event of a command that only reads and succeeded (every dashboard's
        `meta` and `commands` at start): kept in the audit file and the node's history,
        not in the operator's log, where it would bury what changed the twin."""
        if body.get("kind") != "audit" or body.get("outcome") != "ok":
            return False
        declared = self.command_catalog.get(str(body.get("cmd")), {})
        significance = declared.get("significance") if isinstance(declared, dict) else None
        return significance == "informational" or (
            significance is None and body.get("cmd") in READ_ONLY_COMMANDS)

    def _event_line(self, body: dict[str, Any]) -> tuple[Text, Text]:
        """An event's time and severity, and its text (the log's two columns)."""
        sat = body.get("sat", -1)
        sat = sat if isinstance(sat, int) else -1
        when = event_when(utc_text(float(body.get("t_utc", 0.0)))[11:],
                          str(body.get("severity", "info")))
        who = self.model.name(sat) if sat >= 0 else "fleet"
        line = Text()
        if body.get("kind") == NODE_EVENTS_SUMMARY:  # many nodes: short lines, not one long
            first, *rest = summary_lines(body)
            line.append(f"{who}:", style="bold")
            line.append(f" {first}")
            return when, Text("\n").join([line, *(Text(r) for r in rest)])
        # Limit alarms read from their values, in the table's units (°C, %), not kelvin.
        message = self.model.event_text(body)
        if who not in message:
            line.append(f"{who}: ", style="bold")
        line.append(message)
        return when, line

    def _log_restart(self, update: StreamUpdate) -> None:
        """A separator in the events log: the events above it are the previous run's."""
        wall = utc_text(time.time())
        # A node's detail lists this run's events only; the main log keeps both, split.
        self.recent_events.clear()
        first = update.state or update.heartbeat or update.meta
        sim = f", its clock at {utc_text(first.t_utc)} UTC" if first is not None else ""
        self._log_line(Text(f"──── twin restarted at {wall} UTC{sim}: a new run; the events "
                            "above are the previous run's ────", style="bold magenta"))

    def _log_line(self, text: Text) -> None:
        self.events_log.write(text)

"""Screens of the dashboard besides the main one: node detail, command prompt and form, sort."""

from __future__ import annotations

import json
import shlex
from typing import Any, ClassVar

import numpy as np
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import (
    Button,
    DataTable,
    Footer,
    Input,
    Label,
    OptionList,
    RichLog,
    Select,
    Static,
    Switch,
)
from textual.widgets.option_list import Option

from viz.tui import forms, keys
from viz.tui.estimate_table import estimate_table
from viz.tui.header import MIRROR_BADGE, HeaderBar, mirror_badge
from viz.tui.levels import ALARM, WARN
from viz.tui.model import FleetModel, utc_text
from viz.tui.recorded import RecordedTrend, RecordedTrendError, read_trend
from viz.tui.why import why_not_more
from viz.tui.widgets import LEVEL_STYLE, Trend, unit_for
from viz.tui.words import plain_error, plural

# Characters of a value in the detail table; longer ones (a vector) end in "…".
VALUE_WIDTH = 26
SEVERITY_STYLE = {"info": "cyan", "warning": "bold yellow", "alarm": "bold white on red"}


def event_grid() -> Table:
    """The events logs' rows: time and severity in a column of their own, so that a long
    event wraps under its text, not under its time (a hanging indent)."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(ratio=1, overflow="fold")
    return grid


def event_when(time_text: str, severity: str) -> Text:
    """An event's first column: its time, and its severity in that severity's style."""
    when = Text(time_text + " ")
    when.append(f"{severity:7s}", style=SEVERITY_STYLE.get(severity, ""))
    return when
# Residual colours: within half its threshold, past half, past it (the twin's event).
RESIDUAL_STYLE = {0: "bold green", WARN: "bold yellow", ALARM: "bold white on red"}


class CommandError(ValueError):
    """A command line the dashboard cannot turn into a request."""


def parse_command(line: str) -> tuple[str, dict[str, Any]]:
    """``warp value=120`` → ``("warp", {"value": 120})``.

    Values are read as JSON where they parse (numbers, true/false, lists, quoted strings),
    else taken as plain strings, so ``policy policy=sun_aware`` needs no quotes.

    Raises:
        CommandError: on an empty line, a bad quote or an argument without ``=``.
    """
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise CommandError(f"cannot read {line!r}: {exc}") from exc
    if not words:
        raise CommandError("type a command, like: warp value=120")
    cmd, arguments = words[0], {}
    for word in words[1:]:
        key, sep, text = word.partition("=")
        if not sep or not key:
            raise CommandError(f"argument {word!r} should look like key=value")
        try:
            arguments[key] = json.loads(text)
        except ValueError:
            arguments[key] = text
    return cmd, arguments


class CommandScreen(ModalScreen[str | None]):
    """A one-line prompt for any twin command, prefilled with a template."""

    BINDINGS: ClassVar[list[Binding]] = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, prefill: str = "", known: list[str] | None = None,
                 hint: str = "") -> None:
        super().__init__()
        self.prefill = prefill
        self.known = known or []
        self.hint = hint

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Send a command to the twin  (Enter sends, Esc cancels)")
            yield Input(self.prefill, placeholder="warp value=120", id="command-input")
            if self.hint:
                yield Static(self.hint, classes="dim")
            if self.known:
                yield Static("known: " + ", ".join(self.known), id="known", classes="dim")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)


class RecordingPathScreen(ModalScreen[str | None]):
    """Ask for a recording's path (the detail screen's `h`)."""

    BINDINGS: ClassVar[list[Binding]] = [Binding("escape", "dismiss(None)", "Cancel")]
    ABOUT = ("The whole recording, state channel only; H on the detail screen goes back to "
            "live trends.")

    def __init__(self, prefill: str = "") -> None:
        super().__init__()
        self.prefill = prefill

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Load this node's trend from a recording  (Enter loads, Esc cancels)")
            yield Input(self.prefill, placeholder="run.mcap", id="recording-input")
            yield Static(self.ABOUT, id="recording-help", classes="dim")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if not event.value.strip():
            # The greyed "run.mcap" is only a placeholder: Enter on an empty box used to
            # close the dialog and load nothing, without a word.
            self.query_one("#recording-help", Static).update(Text(
                "Type the path of a recording first (odc run --record run.mcap makes one), "
                "or Esc to cancel.", style="bold yellow"))
            return
        self.dismiss(event.value)


class CommandFormScreen(ModalScreen[dict[str, Any] | None]):
    """A form for one twin command, built from its ``meta.commands`` entry alone.

    One row per argument: a box for numbers, integers and nodes, a list of the choices, a
    switch for a bool, each with its unit, range, default and description beside it
    (`viz.tui.forms`). Send checks every value against the declaration and shows what is
    wrong beside the form, sending nothing; a good form returns the typed arguments.

    Args:
        cmd: The command's name.
        entry: Its catalog entry.
        prefill: Values to start from (the selected node for ``sat``); else the defaults.
        n_sats: Nodes in the fleet, for the node hint and check.
    """

    BINDINGS: ClassVar[list[Binding]] = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, cmd: str, entry: dict[str, Any], prefill: dict[str, Any] | None = None,
                 n_sats: int = 0) -> None:
        super().__init__()
        self.cmd = cmd
        self.entry = entry
        self.args = forms.args_of(entry)
        self.prefill = prefill or {}
        self.n_sats = n_sats

    def _widget(self, name: str, arg: dict[str, Any]) -> Input | Select | Switch:
        start = self.prefill.get(name, arg.get("default"))
        wid = f"arg-{name}"
        if arg["type"] == "bool":
            return Switch(bool(start), id=wid)
        if arg["type"] == "choice":
            choices = [str(c) for c in arg.get("choices") or []]
            value = str(start) if start is not None and str(start) in choices else Select.NULL
            return Select([(c, c) for c in choices], prompt="choose", value=value,
                          allow_blank=True, id=wid, compact=True)
        kind = {"number": "number", "integer": "integer"}.get(arg["type"], "text")
        if arg.get("nullable"):
            kind = "text"  # "none" clears
        text = "" if start is None else f"{start:g}" if isinstance(start, float) else str(start)
        return Input(text, placeholder=forms.range_text(arg, self.n_sats), type=kind, id=wid,
                     compact=True)

    def compose(self) -> ComposeResult:

        significance = str(self.entry.get("significance", ""))
        title = Text.assemble((f" {self.cmd} ", "bold black on bright_cyan"), "  ",
                              str(self.entry.get("summary", "")))
        style = "bold white on red" if significance == "hazardous" else "dim"
        what = forms.SIGNIFICANCE_TEXT.get(significance, "")
        with VerticalScroll(id="form"):
            yield Static(title)
            if significance:
                yield Static(Text(f" {significance}{': ' + what if what else ''} ", style=style),
                             id="form-significance")
            for name, arg in self.args.items():
                with Horizontal(classes="form-row"):
                    yield Label(name + ("" if arg.get("required") else "?"),
                                classes="form-name")
                    yield self._widget(name, arg)
                yield Static(forms.hint(arg, self.n_sats), classes="form-hint dim",
                             id=f"hint-{name}")
            yield Static(id="form-errors")
            with Horizontal(id="form-buttons"):
                yield Button("Send", variant="primary", id="form-send")
                yield Button("Cancel", id="form-cancel")
            yield Static("Enter sends · Tab next field · Esc cancels · ? marks optional",
                         classes="dim")

    def on_mount(self) -> None:
        rows = self.query(".form-row")
        if rows:
            rows.first().children[1].focus()

    def raws(self) -> dict[str, Any]:
        """What each argument's widget holds now."""
        out: dict[str, Any] = {}
        for name in self.args:
            widget = self.query_one(f"#arg-{name}")
            if isinstance(widget, Select):
                out[name] = None if widget.value is Select.NULL else widget.value
            else:
                out[name] = widget.value
        return out

    def send(self) -> None:
        values, errors = forms.request(self.entry, self.raws(), self.n_sats)
        for name in self.args:
            self.query_one(f"#arg-{name}").set_class(name in errors, "-invalid")
        if errors:
            self.query_one("#form-errors", Static).update(
                "\n".join(f"{name}: {text}" for name, text in errors.items()))
            self.query_one(f"#arg-{next(iter(errors))}").focus()
            return
        self.dismiss(values)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.send()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "form-send":
            self.send()
        else:
            self.dismiss(None)


class SortScreen(ModalScreen[str | None]):
    """Pick the column to sort by; the current one again reverses the order.

    The list opens on its first row, so counting rows down from the top picks the row
    counted; the current column is marked where it is.
    """

    BINDINGS: ClassVar[list[Binding]] = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, model: FleetModel) -> None:
        super().__init__()
        self.model = model

    def compose(self) -> ComposeResult:
        options = []
        for column in self.model.columns:
            label = Text(column.heading)
            if column.key == self.model.sort_key:
                arrow = "▼" if self.model.sort_descending else "▲"
                label = Text.assemble((f"{column.heading} {arrow}", "bold"),
                                      ("  ← now; again reverses", "dim"))
            options.append(Option(label, id=column.key))
        with Vertical(id="dialog"):
            yield Label("Sort the fleet by  (numbers: highest first; Esc cancels)")
            yield OptionList(*options, id="sort-options")

    def on_mount(self) -> None:
        self.query_one(OptionList).highlighted = 0

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)


class DetailScreen(Screen):
    """One node: every field with its limits, and trends of temperatures, SOC and compute."""

    # escape goes back; ] [ h H come from the keymap (viz.keymap), as on every screen.
    BINDINGS: ClassVar[list[Binding]] = [
        Binding("escape", "app.pop_screen", "Back", key_display="esc"),
        *keys.bindings(keys.DETAIL_ACTIONS, keys.DETAIL_FOOTER),
    ]

    def __init__(self, model: FleetModel, sat: int) -> None:
        super().__init__()
        self.model = model
        self.sat = sat
        self._trend_names: list[str] | None = None
        self._trends: dict[str, Trend] = {}
        # The node's trend read from a recording (`h`), shown instead of the live one.
        self.recorded: RecordedTrend | None = None
        # A state can arrive between push_screen and on_mount: nothing to update yet.
        self._ready = False

    def compose(self) -> ComposeResult:
        yield HeaderBar(id="header")
        yield Static(id="detail-title")
        yield Static(id="detail-why")
        with Horizontal(id="detail-body"):
            with Vertical(id="detail-left"):
                yield Static(id="detail-mirror")
                yield DataTable(id="detail-fields", cursor_type="row", zebra_stripes=True)
                yield RichLog(id="detail-events", markup=False, max_lines=200, wrap=True,
                              min_width=20)  # (at least 78 columns otherwise, cut here)
            yield VerticalScroll(id="detail-trends")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#detail-fields", DataTable)
        table.add_column("Field", key="field")
        table.add_column("Value", key="value", width=VALUE_WIDTH)
        table.add_column("Limits", key="limits")
        self.query_one("#detail-events", RichLog).border_title = "Events of this node"
        self._show_trend_source()
        self._ready = True
        self.rebuild()

    def action_next_node(self) -> None:
        self.action_neighbour(1)

    def action_previous_node(self) -> None:
        self.action_neighbour(-1)

    def action_neighbour(self, delta: int) -> None:
        order = self.app.fleet_table.order
        rows = np.flatnonzero(order == self.sat)
        if not len(order):
            return
        row = (int(rows[0]) + delta) % len(order) if rows.size else 0
        self.sat = int(order[row])
        self.app.fleet_table.select_sat(self.sat)
        self.action_live_trend()  # the recorded trend was the other node's
        self.rebuild()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "live_trend":
            return self.recorded is not None
        return True

    def action_load_trend(self) -> None:
        """Ask for a recording and show this node's trend from it (read off the UI thread)."""
        def chosen(path: str | None) -> None:
            if path and path.strip():
                self.app.recording_path = path.strip()
                self._read_trend(path.strip(), list(self.model.trend_fields),
                                 self.model.name(self.sat), self.sat,
                                 self.model.trend_samples)

        self.app.push_screen(RecordingPathScreen(getattr(self.app, "recording_path", "")),
                             chosen)

    @work(thread=True, exclusive=True, group="recorded-trend")
    def _read_trend(self, path: str, fields: list[str], name: str, sat: int,
                    limit: int) -> None:
        try:
            trend = read_trend(path, fields, name, sat, limit)
        except (RecordedTrendError, OSError) as exc:
            self.app.call_from_thread(self.notify, plain_error(str(exc)), title="Trend not loaded",
                                      severity="error")
            return
        self.app.call_from_thread(self._show_recorded, trend, sat)

    def _show_recorded(self, trend: RecordedTrend, sat: int) -> None:
        if sat != self.sat or not self.is_attached:  # moved on while it was read
            return
        self.recorded = trend
        self._show_trend_source()
        self.refresh_bindings()
        self.update_values()

    def action_live_trend(self) -> None:
        if self.recorded is None:
            return
        self.recorded = None
        self._show_trend_source()
        self.refresh_bindings()
        self.update_values()

    def _show_trend_source(self) -> None:
        box = self.query_one("#detail-trends", VerticalScroll)
        trend = self.recorded
        box.set_class(trend is not None, "-recorded")
        if trend is None:
            box.border_title = "Trends (live)"
            box.border_subtitle = "h load from a recording"
        else:
            end = utc_text(trend.end_utc)
            if end[:10] == utc_text(trend.start_utc)[:10]:
                end = end[11:]
            box.border_title = f"from {trend.file_name}, {utc_text(trend.start_utc)}–{end} UTC"
            box.border_subtitle = f"{trend.t_utc.size} samples · H back to live"

    def _fetched_rows(self) -> list[tuple[str, str, str, str]] | None:
        """The rows from the twin's ``node`` reply where the stream has no node rows (a
        large fleet's reduced state; asked for again each second), else None."""
        model, sat = self.model, self.sat
        if any(a.ndim and a.shape[0] == model.n for a in model.arrays.values()) \
                or not model.n:
            return None
        self.app.fetch_node_row(sat)  # type: ignore[attr-defined]
        reply = getattr(self.app, "node_rows", {}).get(sat)
        rows: list[tuple[str, str, str, str]] = []
        for name, value in (reply or {}).get("row", {}).items():
            if model.catalog.get(name, {}).get("per_sat", True) is False:
                continue  # a station x node table: the node screen shows per-node fields
            q = model.quantities.field(name)
            if isinstance(value, list):
                if not 0 < len(value) <= 4:
                    continue
                text = q.format_vector(np.asarray(value, dtype=float), VALUE_WIDTH)
            else:
                text = q.format(value, VALUE_WIDTH)
            rows.append((name, name, text, q.limits_text()))
        return rows

    def _field_rows(self) -> list[tuple[str, str, str, str]]:
        """(key, label, value text, limits text) for every per-node field."""
        model, sat, rows = self.model, self.sat, []
        if not 0 <= sat < model.n:  # the fleet shrank under this screen (a new scenario)
            return rows
        fetched = self._fetched_rows()
        if fetched is not None:
            return fetched
        for name, array in model.arrays.items():
            # Arrays the catalog says are not per node (the mirror's run along its
            # bindings and have their own panel) are left out, whatever their length.
            per_sat = model.catalog.get(name, {}).get("per_sat", True)
            if array.ndim == 0 or array.shape[0] != model.n or per_sat is False:
                continue
            q = model.quantities.field(name)
            if array.ndim == 1:
                column = model.column(name)
                if column is not None and column.kind in ("sun", "station"):
                    value = model.cell(column, sat)[0]
                else:  # its own unit, with the unit: "12.3 kW", "high", "80.0 °C"
                    value = q.format(array[sat].item(), VALUE_WIDTH)
            elif array.ndim == 2 and array.shape[1] <= 4:
                value = q.format_vector(array[sat], VALUE_WIDTH)
            else:
                continue
            rows.append((name, name, value, q.limits_text()))
        return rows

    def rebuild(self) -> None:
        """Lay the screen out for ``self.sat`` (new node, or new fields from the twin)."""
        table = self.query_one("#detail-fields", DataTable)
        table.clear()
        for key, label, value, limits in self._field_rows():
            table.add_row(label, value, limits, key=key)
        if self._trend_names != list(self.model.trend_fields):
            self._build_trends()
        log = self.query_one("#detail-events", RichLog)
        log.clear()
        for event in self.app.recent_events:
            if event.get("sat", -1) == self.sat:
                self.add_event(event)
        self.update_values()

    def _build_trends(self) -> None:
        """One trend per trend field. Kept across nodes (only their samples change):
        removing children completes later, so widgets are held by reference, not by id."""
        trends = self.query_one("#detail-trends", VerticalScroll)
        trends.remove_children()
        self._trend_names = list(self.model.trend_fields)
        self._trends = {}
        for name in self._trend_names:
            entry = self.model.catalog.get(name, {})
            unit = unit_for(self.model, name)
            limits = {k: float(v) for k, v in (entry.get("limits") or {}).items()}
            column = self.model.column(name)
            title = column.label if column is not None else name
            self._trends[name] = Trend(title, unit, limits, classes=f"trend-{name}")
        widgets: list[Static | Trend] = list(self._trends.values())
        if not widgets:
            widgets.append(Static("No trend fields on the stream yet (temperatures, SOC, "
                                  "utilization, compute appear here when the twin sends them).",
                                  classes="dim"))
        trends.mount_all(widgets)

    def add_event(self, event: dict[str, Any]) -> None:
        when = event_when(utc_text(float(event.get("t_utc", 0))),
                          str(event.get("severity", "info")))
        grid = event_grid()
        grid.add_row(when, Text(f"{event.get('kind', '?')}: {self.model.event_text(event)}"))
        self.query_one("#detail-events", RichLog).write(grid, expand=True)

    def mirror_table(self) -> Any:
        """Measured beside predicted for a mirrored node (a rich Table), or None."""
        from rich.table import Table

        model = self.model
        bindings = model.mirror_of.get(self.sat, [])
        if not bindings:
            return None
        tables = []
        for binding in bindings:
            age = model.mirror_age_s(binding)
            title = Text(mirror_badge(model, binding),
                         style=MIRROR_BADGE[model.mirror_live(binding)])
            if np.isfinite(age):
                title.append(f"  newest sample {age:.1f} s ago", style="dim")
            table = Table(title=title, title_justify="left", expand=True, box=None,
                          padding=(0, 1), header_style="bold")
            for heading in ("Quantity", "Measured", "Predicted", "Residual", "Threshold"):
                table.add_column(heading, justify="left" if heading == "Quantity" else "right")
            for row in model.mirror_rows(binding):
                q = model.quantities.mirrored(row.quantity)
                # The table column's scale where there is one, so both read alike.
                unit = unit_for(model, row.quantity) if model.column(row.quantity) else \
                    q.scale_for(abs(row.measured))
                label = q.label(20)
                if row.role == "driver":
                    table.add_row(label, unit.text(row.measured), "—",
                                  Text("drives the model", style="dim"), "")
                    continue
                threshold = q.difference(row.threshold)
                table.add_row(label, unit.text(row.measured), unit.text(row.predicted),
                              Text(q.difference(row.residual), style=RESIDUAL_STYLE[row.level]
                                   if np.isfinite(row.residual) else "dim"),
                              f"±{threshold[1:]}" if np.isfinite(row.threshold) else "—")
            tables.append(table)
            estimate = estimate_table(model, binding)
            if estimate is not None:
                tables.append(estimate)
        if len(tables) == 1:
            return tables[0]
        from rich.console import Group

        return Group(*tables)

    def update_values(self) -> None:
        """Refresh values and trends from the model (called on every state)."""

        model, sat = self.model, self.sat
        headers = self.query(HeaderBar)
        if not self._ready or not headers:
            # Not mounted yet, or taken down (the app quitting while a draw was due).
            return
        headers.first().show(model, *self.app.header_args())
        mirror = self.query_one("#detail-mirror", Static)
        table = self.mirror_table()
        mirror.display = table is not None
        if table is not None:
            mirror.update(table)
        title = Text()
        title.append(f" {model.name(sat)} ", style="bold black on bright_cyan")
        title.append(f"  node {sat}  group {model.group(sat) or '—'}  ")
        for binding in model.mirror_of.get(sat, []):
            title.append(mirror_badge(model, binding),
                         style=MIRROR_BADGE[model.mirror_live(binding)])
            title.append("  ")
        alarms = [a for a in model.alarms.values() if a.sat == sat]
        if alarms:
            title.append(f" {plural(len(alarms), 'active alarm')} ", style="bold white on red")
        title.append("   " + keys.hint((("next_node", "next node"),
                                           ("previous_node", "previous"),
                                           ("load_trend", "trend from a recording"),
                                           ("back", "back"))), style="dim")
        self.query_one("#detail-title", Static).update(title)
        why = why_not_more(model, sat)
        why_line = self.query_one("#detail-why", Static)
        why_line.display = why is not None
        if why is not None:
            why_line.update(Text.assemble(("Limited by ", "bold"), why))
        if self._trend_names != list(model.trend_fields):
            self.rebuild()
            return
        table = self.query_one("#detail-fields", DataTable)
        rows = self._field_rows()
        if len(rows) != table.row_count:
            self.rebuild()
            return
        for key, _, value, _ in rows:
            column = model.column(key)
            # A fetched row's field (a large fleet) has no array in the model: no level.
            level = model.cell(column, sat)[1] if column and key in model.arrays else 0
            try:
                table.update_cell(key, "value", Text(value, style=LEVEL_STYLE[level]))
            except Exception:  # a field that appeared this very frame: next rebuild adds it
                self.rebuild()
                return
        recorded = self.recorded
        for name, trend in self._trends.items():
            if recorded is not None:
                trend.set_samples(recorded.series.get(name, np.zeros(0, np.float32)), fit=True)
            else:
                trend.set_samples(model.trend_of(name, sat))

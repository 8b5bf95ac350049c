"""The dashboard's cluster-health view: each formation cluster as an operator watches it.

``v`` cycles the main screen through the node table, the fleet view and, when the twin's
scenario has ``[[cluster]]`` tables, this view (as ``odc view`` cycles globe, 2D map and
cluster close-up). On top, the cluster's health (:mod:`viz.tui.cluster_health`): members
up, failed and in alarm, the closest pair against its warning and alarm separations and
the closest-approach alarms, Δv and propellant, station-keeping boxes, links, power and
compute; beside or under it the multi-node jobs on the cluster. Below, the members,
closest first; Enter opens a member's node screen. With several clusters a list on top
chooses the one shown (Tab moves between the lists).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Static

from viz.tui.cluster_health import (
    ClusterHealth,
    JobHealth,
    cluster_health,
    index,
    member_rows,
    number,
)
from viz.tui.fleet import FLEET_INTERVAL_S, SHORT_ROWS, PacedTicks, StatsTable
from viz.tui.model import FleetModel
from viz.tui.words import iso_utc

WIDE_COLUMNS = 150
"""From this many terminal columns the jobs sit beside the health, not under it."""
WIDE_MEMBERS = 110
"""From this many columns the members list adds each member's load, compute and shade."""
LEVEL_STYLE = {0: "bold green", 1: "bold yellow", 2: "bold white on red"}
LEVEL_WORD = {0: "ok", 1: "WARNING", 2: "ALARM"}
JOB_STYLE = {"running": "green", "stalled": "bold yellow", "queued": "yellow", "done": "dim"}
NO_CLUSTERS = ("No formation clusters in this scenario.\n\nA scenario flies a cluster with "
               "a [[cluster]] table (docs/scenarios.md); the bundled one is\n"
               "    odc run --scenario suncatcher\n\nv shows the node table.")


def metres(value: float) -> str:
    return "—" if not math.isfinite(value) else f"{value:,.1f} m"


def count(value: float | int | None) -> str:
    return "—" if value is None or value != value else f"{int(value):,}"


class ClusterText:
    """The health block's lines, formatted with the twin's catalog (units, prefixes)."""

    def __init__(self, model: FleetModel, health: ClusterHealth) -> None:
        self.model, self.h = model, health

    def fmt(self, name: str, value: float | None) -> str:
        if value is None or value != value:
            return "—"
        return self.model.quantities.field(name).format(value)

    def lines(self, with_jobs: bool = False) -> Text:
        """The health block; ``with_jobs``: the jobs too (a narrow terminal)."""
        h, model = self.h, self.model
        text = Text(no_wrap=False)

        def label(words: str) -> None:
            text.append(f"{words:<11}", style="bold")

        label("Members")
        text.append(f"{h.n:,}")
        if h.up is None:
            text.append(" · no per-node rows in this stream", style="dim")
        else:
            text.append(f" · {h.up:,} up · ")
            text.append(f"{h.failed:,} failed", style="bold red" if h.failed else "")
            text.append(" · ")
            alarm = h.in_alarm or 0
            text.append(f"{alarm:,} in alarm", style="bold white on red" if alarm else "")
        text.append("\n")

        label("Closest")
        level = h.separation_level if math.isfinite(h.min_dist_m) else 0
        text.append(metres(h.min_dist_m), style=LEVEL_STYLE[level])
        if h.pair[0] >= 0:
            text.append(f" {model.name(h.pair[0])}–{model.name(h.pair[1])}")
        text.append(f" · warn <{h.warn_m:g} m · alarm <{h.alarm_m:g} m · ")
        text.append(LEVEL_WORD[level], style=LEVEL_STYLE[level])
        text.append("\n")

        label("Approaches")
        text.append(f"{h.approach_alarms} alarm{'s' if h.approach_alarms != 1 else ''} active",
                    style="bold white on red" if h.approach_alarms else "")
        last = h.last_approach
        if last is not None:
            who = f"{model.name(index(last.get('sat')))}–{model.name(index(last.get('other')))}"
            text.append(f" · last {who} {metres(number(last.get('dist_m')))}"
                        f" at {(iso_utc(last.get('t_utc')) or '?')[11:19]}",
                        style="bold red" if last.get("severity") == "alarm" else "yellow")
        else:
            text.append(" · none seen", style="dim")
        text.append("\n")

        label("Δv used")
        text.append(f"{h.dv_total_m_s:.3f} m/s in all · per member mean "
                    f"{h.dv_mean_m_s * 1e3:.1f} max {h.dv_max_m_s * 1e3:.1f} mm/s\n")

        label("Propellant")
        text.append(f"{h.propellant_kg:,.1f} kg left · Δv rate {h.dv_per_member_year_m_s:.2f}"
                    " m/s/yr · ")
        boxes = h.box_violations
        text.append(f"{count(boxes)} outside {h.box_m:g} m box",
                    style="bold yellow" if boxes else "")
        text.append("\n")

        links = h.links
        label("Links")
        if links is None:
            text.append("none (no [links] table)\n", style="dim")
        else:
            text.append(f"{count(links['links_up'])} up · {count(links['links_acquiring'])}"
                        f" acquiring · {count(links['links_lost'])} lost · util mean "
                        f"{self.fmt('group_link_util_mean_frac', links['link_util_mean_frac'])}"
                        f" max {self.fmt('group_link_util_max_frac', links['link_util_max_frac'])}"
                        "\n")
            label("")
            text.append(f"capacity {self.fmt('group_capacity_bps', links['capacity_bps'])}"
                        f" · bisection {self.fmt('group_bisection_bps', links['bisection_bps'])}"
                        "\n")

        label("Power")
        if h.load_w is None:
            text.append("no per-node rows in this stream", style="dim")
        else:
            text.append(f"{self.fmt('p_load_w', h.load_w)} load · "
                        f"{self.fmt('p_solar_w', h.solar_w)} solar · "
                        f"{self.fmt('delivered_flop_s', h.delivered_flop_s)}")
            if h.accelerators_ok is not None:
                text.append(f" on {count(h.accelerators_busy)}/{count(h.accelerators_ok)}"
                            " accel")
        if with_jobs:
            text.append("\n")
            label("Jobs")
            if not h.jobs:
                text.append("no multi-node job on this cluster", style="dim")
            for i, job in enumerate(h.jobs):
                if i:
                    text.append("\n")
                    label("")
                self._job(text, job, indent=" " * 11)
        return text

    def jobs(self) -> Text:
        jobs = self.h.jobs
        text = Text()
        if not jobs:
            text.append("no multi-node job on this cluster", style="dim")
            return text
        for i, job in enumerate(jobs):
            if i:
                text.append("\n")
            self._job(text, job, indent="      ")
        return text

    def _job(self, text: Text, job: JobHealth, indent: str) -> None:
        """Two lines: the job's state, nodes and progress; its all-reduce and ring."""
        text.append(f"Job {job.number} ", style="bold")
        text.append(job.state, style=JOB_STYLE.get(job.state, ""))
        text.append(f" · {job.nodes} nodes · {job.progress_frac * 100:.2f} % done")
        if job.rollbacks:
            text.append(f" · rolled back ×{job.rollbacks}", style="bold yellow")
        if job.state in ("running", "stalled"):
            slow = ("no progress" if not math.isfinite(job.slowdown)
                    else f"×{job.slowdown:.2f} slower")
            text.append(f"\n{indent}all-reduce {job.comm_frac * 100:.1f} % ({slow}) · ring "
                        f"{self.fmt('multi_node_job_bottleneck_bps', job.bottleneck_bps)}")


class ClusterView(Vertical):
    """The clusters list (several only), the health and jobs, the members."""

    DEFAULT_CSS = """
    ClusterView { display: none; height: 1fr; }
    ClusterView StatsTable, ClusterView Static {
        border: round $primary 50%;
        border-title-color: $text;
        border-subtitle-color: $text-muted;
    }
    ClusterView StatsTable:focus { border: round $accent; }
    ClusterView #cluster-list { height: auto; max-height: 6; display: none; }
    ClusterView #cluster-top { height: auto; }
    ClusterView #cluster-health { width: 1fr; height: auto; padding: 0 1; }
    ClusterView #cluster-jobs { width: 1fr; height: 100%; padding: 0 1; }
    ClusterView #cluster-members { height: 1fr; min-height: 4; }
    ClusterView #cluster-none { height: 1fr; padding: 1 2; display: none; }
    """

    def __init__(self, model: FleetModel, events: Callable[[], Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.events = events
        self.chosen = 0
        self.member_sats = np.zeros(0, np.intp)
        self.health: list[ClusterHealth] = []

    def compose(self) -> ComposeResult:
        yield Static(NO_CLUSTERS, id="cluster-none")
        yield StatsTable(id="cluster-list", cursor_type="row")
        with Horizontal(id="cluster-top"):
            yield Static(id="cluster-health")
            yield Static(id="cluster-jobs")
        yield StatsTable(id="cluster-members", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self.list_table = self.query_one("#cluster-list", StatsTable)
        self.health_text = self.query_one("#cluster-health", Static)
        self.jobs_text = self.query_one("#cluster-jobs", Static)
        self.members_table = self.query_one("#cluster-members", StatsTable)
        self.none_text = self.query_one("#cluster-none", Static)
        self.none_text.border_title = "Clusters"
        self.jobs_text.border_title = "Multi-node jobs"
        self.members_table.border_subtitle = "Enter node screen · v node table"

    def update_view(self) -> None:
        """Work out and show everything from the model's newest state."""
        self.health = health = cluster_health(self.model, self.events())
        empty = not health
        self.none_text.display = empty
        for part in (self.query_one("#cluster-top"), self.members_table):
            part.display = not empty
        self.list_table.display = len(health) > 1
        if empty:
            self.member_sats = np.zeros(0, np.intp)
            return
        if len(health) > 1:
            self._show_list(health)
            self.chosen = min(max(self.list_table.cursor_row, 0), len(health) - 1)
        else:
            self.chosen = 0
        chosen = health[self.chosen]
        words = ClusterText(self.model, chosen)
        narrow = self.size.width < WIDE_COLUMNS
        self.health_text.update(words.lines(with_jobs=narrow))
        self.jobs_text.display = not narrow
        self.health_text.border_title = (f"Cluster {chosen.name} · {chosen.n:,} members · "
                                         f"{chosen.design}, radius {chosen.radius_m:,.0f} m")
        self.jobs_text.update(words.jobs())
        self._show_members(chosen)

    def _show_list(self, health: list[ClusterHealth]) -> None:
        rows = []
        for h in health:
            level = h.separation_level if math.isfinite(h.min_dist_m) else 0
            rows.append([h.name, Text(f"{h.n:,}", justify="right"),
                         Text(count(h.in_alarm), justify="right"),
                         Text(metres(h.min_dist_m), style=LEVEL_STYLE[level], justify="right"),
                         Text(f"{h.dv_total_m_s:.3f}", justify="right"),
                         Text(count(h.links["links_up"]) if h.links else "—", justify="right"),
                         Text(str(len(h.jobs)), justify="right")])
        self.list_table.fill(["Cluster", "Members", "Alarm", "Closest", "Δv m/s", "Links",
                              "Jobs"], rows)
        self.list_table.border_title = f"{len(health)} clusters · ↑↓ choose · Tab members"

    def _show_members(self, health: ClusterHealth) -> None:
        model = self.model
        rows = member_rows(model, health)
        table = self.members_table
        if not rows:
            self.member_sats = np.zeros(0, np.intp)
            table.fill(["Member"], [])
            table.border_title = "Members (no per-node rows in this stream)"
            return
        sats = rows["sat"]
        self.member_sats = sats
        worst = model.worst if model.worst.shape == (model.n,) else np.zeros(model.n, np.uint8)
        cells = []
        wide = self.size.width >= WIDE_MEMBERS
        nn_dist = rows.get("nn_dist_m", np.full(sats.size, np.nan))
        for i, sat in enumerate(sats.tolist()):
            d = float(nn_dist[i])
            level = 2 if d < health.alarm_m else 1 if d < health.warn_m else 0
            peer = int(rows["nn_sat"][i]) if "nn_sat" in rows else -1
            box = float(rows["box_error_m"][i]) if "box_error_m" in rows else math.nan
            job = int(rows["multi_node_job"][i]) if "multi_node_job" in rows else -1
            state = "ALARM" if worst[sat] >= 2 else "warn" if worst[sat] == 1 else "ok"
            cells.append([
                Text(model.name(sat), style=LEVEL_STYLE[int(min(worst[sat], 2))]
                     if worst[sat] else ""),
                Text(state, style=LEVEL_STYLE[int(min(worst[sat], 2))] if worst[sat] else "dim"),
                Text(metres(d), style=LEVEL_STYLE[level] if level else "", justify="right"),
                model.name(peer) if peer >= 0 else "—",
                Text(f"{box:.1f}", style="bold yellow" if box > health.box_m else "",
                     justify="right"),
                Text(f"{float(rows['dv_used_m_s'][i]) * 1e3:.1f}" if "dv_used_m_s" in rows
                     else "—", justify="right"),
                Text(f"{float(rows['propellant_kg'][i]):.2f}" if "propellant_kg" in rows
                     else "—", justify="right"),
                Text(str(int(rows["links_up"][i])) if "links_up" in rows else "—",
                     justify="right"),
                Text(str(job) if job > 0 else "—", justify="right")])
            if wide:
                cells[-1].extend(self._wide_cells(rows, i))
        headings: list[str | Text] = [
            "Member", "State", Text("Nearest", justify="right"), "to",
            Text("Box m", justify="right"), Text("Δv mm/s", justify="right"),
            Text("Prop kg", justify="right"), Text("Links", justify="right"),
            Text("Job", justify="right")]
        if wide:
            headings += [Text(h, justify="right") for h in ("Load", "Compute", "Shaded")]
        table.fill(headings, cells)
        table.border_title = f"{health.name} members, closest first"

    def _wide_cells(self, rows: dict[str, np.ndarray], i: int) -> list[Text]:
        """Load, compute and shaded share of member ``i`` (a wide terminal)."""
        quantities = self.model.quantities
        cells = []
        for name in ("p_load_w", "delivered_flop_s", "self_shade_frac"):
            value = rows.get(name)
            cells.append(Text("—" if value is None else quantities.field(name).format(
                float(value[i])), justify="right"))
        return cells

    def selected_sat(self) -> int | None:
        """The member under the members list's cursor."""
        row = self.members_table.cursor_row
        return int(self.member_sats[row]) if 0 <= row < len(self.member_sats) else None


class ClusterViewActions:
    """``v`` through the cluster view for ``DashboardApp`` (before ``FleetViewActions`` in
    its bases), the timer that keeps the view current, and Enter on a member."""

    model: FleetModel
    cluster_view_shown: bool = False
    _cluster_timer: PacedTicks | None = None
    _cluster_drawn: tuple = ()
    _said_no_clusters: bool = False

    @property
    def cluster_view(self) -> ClusterView:
        return self.held_cluster_view  # type: ignore[attr-defined]  (held: see fleet_view)

    def has_clusters(self) -> bool:
        formation = self.model.meta.get("subsystems", {}).get("formation", {})
        return bool(isinstance(formation, dict) and formation.get("clusters"))

    def action_next_view(self) -> None:
        """Node table → fleet view → cluster view (where the scenario has clusters) → node
        table."""
        if self.screen is not self.screen_stack[0]:  # type: ignore[attr-defined]
            return  # a node's detail or a prompt is on top: the view under it stays
        if self.cluster_view_shown:
            self._show_cluster_view(False)
            return
        leaving_fleet = self.fleet_view_shown  # type: ignore[attr-defined]
        self.fleet_view.next_view = ("v cluster view" if self.has_clusters() else  # type: ignore[attr-defined]
                                     "v node table (scenario has no clusters)")
        super().action_next_view()  # type: ignore[misc]
        if not leaving_fleet:
            return
        if self.has_clusters():
            self._show_cluster_view(True)
        elif not self._said_no_clusters and self.model.meta:
            self._said_no_clusters = True
            self.notify("No formation clusters in this scenario: v cycles the node table "  # type: ignore[attr-defined]
                        "and the fleet view.", title="Clusters")

    def _show_cluster_view(self, shown: bool) -> None:
        self.cluster_view_shown = shown
        view, table = self.cluster_view, self.fleet_table  # type: ignore[attr-defined]
        view.display, table.display = shown, not shown
        self._fit_fleet_view()
        if self._cluster_timer is not None:
            self._cluster_timer.stop()
            self._cluster_timer = None
        if shown:
            self._cluster_drawn = ()
            self.update_cluster_view()
            self._cluster_timer = PacedTicks(self, FLEET_INTERVAL_S, self.update_cluster_view)
            view.members_table.focus()
        else:
            table.focus()
            self._draw()  # type: ignore[attr-defined]

    def _fit_fleet_view(self) -> None:
        """On a short terminal the fleet and cluster views hide the events and alarms."""
        shown = self.fleet_view_shown or self.cluster_view_shown  # type: ignore[attr-defined]
        short = shown and self.size.height < SHORT_ROWS  # type: ignore[attr-defined]
        self.screen.set_class(short, "-fleet-short")  # type: ignore[attr-defined]

    cluster_view_seconds: float = 0.0

    def update_cluster_view(self, force: bool = False) -> None:
        """Work the view out again if it shows and something it draws from changed."""
        if not self.cluster_view_shown or not self.is_running:  # type: ignore[attr-defined]
            return
        view, model = self.cluster_view, self.model
        key = (model.states_seen, id(model.meta), len(model.alarms), model.events_seen,
               view.size, view.list_table.cursor_row)
        if key == self._cluster_drawn and not force:
            return
        start = time.perf_counter()
        view.update_view()
        self._cluster_drawn = key
        self.cluster_view_seconds += time.perf_counter() - start

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "cluster-list":
            self.update_cluster_view(force=True)
            return
        if event.data_table.id != "cluster-members":
            return
        sat = self.cluster_view.selected_sat()
        if sat is not None:
            self.fleet_table.select_sat(sat)  # type: ignore[attr-defined]
            self.open_detail(sat)  # type: ignore[attr-defined]

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "cluster-list":
            self.update_cluster_view(force=True)

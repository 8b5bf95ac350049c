"""The dashboard's command palette (ctrl+p): every action and every twin command by name.

A mixin of ``viz.tui.app.DashboardApp``: textual asks ``get_system_commands`` each time
the palette opens, so the twin's command catalog and the table's columns are current.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from textual.app import SystemCommand
from textual.screen import Screen

from viz.tui import forms
from viz.tui.model import FleetModel


class CommandPalette:
    """The palette entries of a ``DashboardApp``.

    It comes before ``App`` in the app's bases, so ``super()`` reaches textual's own
    entries. The host class provides the model, the twin's command catalog, the warp as
    last heard and the actions the entries run.
    """

    model: FleetModel
    command_catalog: dict[str, dict[str, Any]]
    warp: float | None
    send_command: Callable[..., None]
    sort_by: Callable[..., None]
    _choices: Callable[[str, str], list[str]]
    _on_selected: Callable[[], dict[str, Any]]

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

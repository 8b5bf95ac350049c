"""The dashboard's commands: sending them, their replies, and the actions that send them.

A mixin of ``viz.tui.app.DashboardApp``. Commands run in their own short-lived worker
threads; a twin that is gone answers with an error after the client's timeout, never a
hang. Forms and choices come from ``meta.commands`` (``viz.tui.forms``); a command the
catalog does not declare opens the typed prompt. A command the twin holds for confirmation
(``confirm_required``) opens ``viz.tui.confirm.ConfirmScreen``; only its Confirm sends
``confirm`` with the twin's token.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual import work
from textual.message import Message
from textual.widgets import Static

from twin.core.clock import MAX_WARP, MIN_WARP
from twin.protocol.codec import Message as WireMessage
from twin.security.clients import ClientKeys
from twin.security.keys import KeyFileError
from viz.checks import BadMessages, check_meta
from viz.stream import CommandClient
from viz.tui import forms
from viz.tui.confirm import ConfirmScreen, confirmation
from viz.tui.model import FleetModel
from viz.tui.replay import SeekError, parse_seek
from viz.tui.screens import (
    CommandError,
    CommandFormScreen,
    CommandScreen,
    parse_command,
)
from viz.tui.words import plain_error, reply_value


class CommandDone(Message):
    """A command's reply (or the client's error when the twin did not answer)."""

    def __init__(self, line: str, reply: dict[str, Any]) -> None:
        self.line = line
        self.reply = reply
        self.received = time.monotonic()  # a confirmation's seconds count from here
        super().__init__()


class CommandActions:
    """The command side of a ``DashboardApp``: one client, the twin's catalog, the actions.

    The host class (a textual ``App``) provides the model, the command address and
    timeout, the clock as last heard (``paused``, ``warp``), the reply line, the events
    log (``_log_line``), the guarded model input (``_guarded``) and the drawing methods.
    """

    model: FleetModel
    cmd_address: str
    keys: ClientKeys | None
    command_timeout_s: float
    paused: bool
    warp: float | None
    replay: dict[str, Any] | None
    known_commands: list[str]
    command_catalog: dict[str, dict[str, Any]]
    last_reply: dict[str, Any] | None
    unusable: BadMessages
    _command_lock: threading.Lock
    _command_client: CommandClient | None
    reply_line: Static
    _log_line: Callable[[Text], None]
    _guarded: Callable[[str, Any, Any], None]
    _schedule_draw: Callable[[], None]
    _draw_header: Callable[[], None]
    selected_sat: Callable[[], int | None]

    # One node's full row from the twin (``node``), for the node screen when the stream
    # carries no node rows (a large fleet): by node, the newest reply.
    node_rows: dict[int, dict[str, Any]] = {}  # noqa: RUF012 (replaced, never mutated)
    _node_asked_at = -1e9
    _node_asking = False

    def fetch_node_row(self, sat: int) -> None:
        """Ask the twin for node ``sat``'s full row, at most once a second and one at a
        time (a lost reply frees the next ask after 5 s); it lands in ``node_rows``."""
        now = time.monotonic()
        if now - self._node_asked_at < (5.0 if self._node_asking else 1.0):
            return
        self._node_asked_at, self._node_asking = now, True
        self.send_command("node", quiet=True, sat=int(sat))

    def on_unmount(self) -> None:
        with self._command_lock:
            if self._command_client is not None:
                self._command_client.close()
                self._command_client = None

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
            try:
                if self._command_client is None:
                    self._command_client = CommandClient(
                        self.cmd_address, timeout_s=self.command_timeout_s, keys=self.keys)
                reply = self._command_client.send(cmd, **arguments)
            except KeyFileError as exc:  # the key files went away since the start
                reply = {"ok": False, "error": str(exc)}
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
                if self.replay is not None:  # a replay's reply lists what the replay answers
                    self._take_command_catalog(reply["meta"])
                self.refresh_bindings()
                self._schedule_draw()
        if reply.get("ok") and isinstance(reply.get("row"), dict) and \
                isinstance(reply.get("sat"), int):  # the node command's reply
            self.node_rows = {reply["sat"]: reply}
            self._node_asking = False
            self._schedule_draw()
        if not message.line:
            return
        self.last_reply = reply
        asked = confirmation(reply)
        if asked is not None:
            self._ask_confirmation(message.line, *asked, received=message.received)
            return
        if reply.get("ok"):
            extras = {k: v for k, v in reply.items() if k not in ("ok", "meta", "counters",
                                                                    "events_by_kind", "seq")}
            summary = ", ".join(f"{k}={reply_value(k, v)}"
                                for k, v in list(extras.items())[:8])
            text = Text.assemble(("› ", "bold"), (message.line, "bold"), ("  ok ", "bold green"),
                                 summary)
            for key in ("paused", "warp"):
                if key in reply:
                    setattr(self, key, reply[key] if key == "paused" else float(reply[key]))
            if isinstance(reply.get("note"), str):  # done, but not all it may seem
                self.notify(reply["note"][:300], title=f"{message.line}: note",
                            severity="warning", timeout=8)
            self._draw_header()
        else:
            error = plain_error(str(reply.get("error")))
            text = Text.assemble(("› ", "bold"), (message.line, "bold"),
                                 ("  error ", "bold white on red"), f" {error}")
            self.notify(error, title=f"{message.line}: refused",
                        severity="error", timeout=6)
        self.reply_line.update(text)
        self._log_line(text)

    def _ask_confirmation(self, line: str, token: str, summary: str, expires_in_s: float,
                          received: float) -> None:
        """The twin holds ``line`` until confirmed: ask, and send ``confirm`` only on yes."""
        text = Text.assemble(("› ", "bold"), (line, "bold"),
                             ("  confirm? ", "bold black on yellow"), f" {summary}")
        self.reply_line.update(text)
        self._log_line(text)

        def decided(confirmed: bool | None) -> None:
            if confirmed:
                label = f"confirm {line}"
                self.reply_line.update(Text(f"› {label} …", style="bold"))
                self._command_worker("confirm", {"token": token}, label, False)
                return
            text = Text.assemble(("› ", "bold"), (line, "bold"),
                                 ("  not confirmed", "bold yellow"), ": nothing sent")
            self.reply_line.update(text)
            self._log_line(text)

        self.push_screen(ConfirmScreen(line, summary, expires_in_s, received), decided)

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
        words = line.split()
        if words[0] == "seek" and len(words) == 2 and "=" not in words[1]:
            self._seek(words[1])
            return
        try:
            cmd, arguments = parse_command(line)
        except CommandError as exc:
            self.reply_line.update(Text(f"› {exc}", style="bold red"))
            return
        self.send_command(cmd, **arguments)

    def _seek(self, when: str) -> None:
        """``:seek WHEN`` on a replay: a time, a clock time, +10m, 50% (viz.tui.replay)."""
        replay = self.replay
        if replay is None:
            self.reply_line.update(Text("› seek: this is a live twin; seek moves a replay "
                                        "(odc replay FILE)", style="bold red"))
            return
        try:
            t_utc = parse_seek(when, float(replay["position_utc"]),
                               (float(replay["span_utc"][0]), float(replay["span_utc"][1])))
        except SeekError as exc:
            self.reply_line.update(Text(f"› seek: {exc}", style="bold red"))
            return
        self.send_command("seek", t_utc=round(t_utc, 6))

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

    def action_warp_up(self) -> None:
        self.action_warp(2.0)

    def action_warp_down(self) -> None:
        self.action_warp(0.5)

    def action_warp(self, factor: float) -> None:
        """Warp times ``factor``, kept within the range the catalog declares."""
        low, high = forms.declared_range(self.command_catalog, "warp", "value",
                                         (MIN_WARP, MAX_WARP))
        current = self.warp or 60.0
        self.send_command("warp", value=round(min(max(current * factor, low), high), 6))

    def _current_policy(self) -> str | None:
        """The policy in force: the ``scheduler_policy_code`` total, named by its labels."""
        return self.model.policy()

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

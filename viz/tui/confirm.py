"""The confirmation dialog: a command the twin holds until the operator confirms it.

A twin that admits keys may answer a command with ``{"ok": false, "confirm_required":
true, "token": T, "summary": S, "expires_in_s": N}`` instead of running it: ``S`` says what
the command would do. Only ``{"cmd": "confirm", "token": T}`` within ``N`` seconds runs it.
The dialog names the effect, counts the seconds down and confirms only on an explicit
Confirm (the button, or ``y``); Cancel, ``n`` or Esc send nothing, and so does a dialog
whose time ran out. Enter alone never confirms: Cancel has the focus when it opens.
"""

from __future__ import annotations

import math
import time
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

DEFAULT_EXPIRES_S = 30.0
"""Seconds to confirm in when a reply does not say (the twin's documented default)."""


def confirmation(reply: dict[str, Any]) -> tuple[str, str, float] | None:
    """``(token, summary, expires_in_s)`` of a reply that asks for confirmation, else None."""
    if reply.get("confirm_required") is not True:
        return None
    token = reply.get("token")
    if not isinstance(token, str) or not token:
        return None
    summary = reply.get("summary")
    expires = reply.get("expires_in_s")
    if isinstance(expires, bool) or not isinstance(expires, int | float) or \
            not 0 < expires < 1e6:
        expires = DEFAULT_EXPIRES_S
    return token, str(summary) if summary else "(the twin gave no summary)", float(expires)


class ConfirmScreen(ModalScreen[bool]):
    """Ask whether to run a command the twin holds for confirmation; dismisses True to send.

    Args:
        line: The command as the operator gave it (``inject_fault sat=3 kind=...``).
        summary: What the twin says the command would do.
        expires_in_s: Seconds the twin holds it, counted from ``received``.
        received: ``time.monotonic()`` when the reply arrived.
    """

    BINDINGS: ClassVar[list[Binding]] = [
        Binding("y", "confirm", "Confirm"),
        Binding("n,escape", "cancel", "Cancel"),
    ]
    # Cancel has the focus from the first frame: textual's default focuses the first
    # button (Confirm) when the screen shows, before on_mount's focus() lands, so an
    # Enter in between would confirm.
    AUTO_FOCUS = "#confirm-cancel"

    def __init__(self, line: str, summary: str, expires_in_s: float,
                 received: float | None = None) -> None:
        super().__init__()
        self.line = line
        self.summary = summary
        self.deadline = (time.monotonic() if received is None else received) + expires_in_s

    @property
    def seconds_left(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm"):
            yield Static(Text.assemble((" confirm ", "bold white on red"), "  ",
                                       (self.line, "bold")), id="confirm-title")
            yield Static(Text(self.summary), id="confirm-summary")
            yield Static(id="confirm-left")
            with Horizontal(id="confirm-buttons"):
                yield Button("Confirm (y)", variant="error", id="confirm-yes")
                yield Button("Cancel (Esc)", id="confirm-cancel")

    def on_mount(self) -> None:
        self.query_one("#confirm-cancel", Button).focus()
        self._tick()
        self.set_interval(0.25, self._tick)

    def _tick(self) -> None:
        left = self.seconds_left
        shown = self.query_one("#confirm-left", Static)
        if left > 0:
            shown.update(Text(f"The twin holds it for {math.ceil(left)} s more. "
                              "y or Confirm runs it; Esc or Cancel sends nothing.",
                              style="bold yellow"))
            return
        shown.update(Text("Time is up: the twin dropped it. Nothing was sent; give the "
                          "command again to run it.", style="bold red"))
        self.query_one("#confirm-yes", Button).disabled = True

    def action_confirm(self) -> None:
        if self.seconds_left > 0:
            self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "confirm-yes":
            self.action_confirm()
        else:
            self.action_cancel()

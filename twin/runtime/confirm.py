"""Two steps for a hazardous command: asked for, then confirmed by the same caller.

The first request of a hazardous command (twin.protocol.commands: ``significance
"hazardous"``, or ``sat = "all"`` where the declaration says so) is checked in full and
then held: the reply is ``ok: false, confirm_required: true`` with a token, a summary of the
effect and the seconds left. ``{"cmd": "confirm", "token": ...}`` from the same caller within
``CONFIRM_WINDOW_S`` carries it out, once. A wrong, expired, replayed or foreign token does
nothing. Held requests are bounded in number, per caller and in all.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twin.core.subsystem import CommandRejected

CONFIRM_WINDOW_S = 30.0
MAX_HELD_PER_CALLER = 8
MAX_HELD = 256


@dataclass(frozen=True)
class Held:
    """A checked hazardous request waiting for its confirmation."""

    caller: str
    name: str
    args: dict[str, Any]
    summary: str
    expires: float


class Confirmations:
    """Hazardous requests held for confirmation, by token.

    Args:
        window_s: Seconds a held request waits for its confirmation.
        clock: Monotonic seconds.
    """

    def __init__(self, window_s: float = CONFIRM_WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self._clock = clock
        self._held: OrderedDict[str, Held] = OrderedDict()

    def hold(self, caller: str, name: str, args: dict[str, Any], summary: str
             ) -> tuple[str, float]:
        """Hold a checked request; returns (token, seconds to confirm in)."""
        self._expire()
        mine = [t for t, h in self._held.items() if h.caller == caller]
        if len(mine) >= MAX_HELD_PER_CALLER:
            del self._held[mine[0]]  # the caller's oldest gives way
        while len(self._held) >= MAX_HELD:
            self._held.popitem(last=False)
        token = secrets.token_urlsafe(18)
        self._held[token] = Held(caller, name, dict(args), summary,
                                 self._clock() + self.window_s)
        return token, self.window_s

    def take(self, caller: str, token: str) -> Held:
        """The held request of ``token`` for ``caller``, released (it runs once).

        Raises:
            CommandRejected: No such token (never given, used, expired or dropped), or
                another caller's.
        """
        self._expire()
        held = self._held.get(token)
        if held is None:
            raise CommandRejected("no hazardous command waits for this token (wrong, used, "
                                  f"or older than {self.window_s:g} s): send it again")
        if held.caller != caller:
            raise CommandRejected("this token was given to another client; only the one who "
                                  "asked may confirm")
        del self._held[token]
        return held

    def expired(self) -> list[Held]:
        """Held requests whose time ran out since the last call (for the audit)."""
        return self._expire()

    def _expire(self) -> list[Held]:
        now = self._clock()
        gone = [t for t, h in self._held.items() if h.expires <= now]
        return [self._held.pop(t) for t in gone]

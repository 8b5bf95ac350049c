"""The command catalog: every command, its arguments and how much it matters, checked once.

Each command the twin answers is declared with its arguments (type, range, unit, choices,
default) and its significance, by the server here (``SERVER_COMMANDS``) and by each model in
its registry entry (twin.models.registry): ``informational`` (reads only), ``operational``
(changes how the twin runs: the clock, jobs, policies, caps) or ``hazardous`` (degrades the
simulated fleet: injected faults and upsets, coolant flow). The server checks every request
against its declaration before the handler runs (`check_request`), so a command is
validated one way, and ``meta.commands`` carries the catalog for clients to build their
forms from (docs/protocol.md). Handlers still check what depends on the scenario (an
accelerator count up to the node's, a satellite's name).

A satellite is named one way everywhere (type ``sat``): its index (0..N-1), its name, or its
NORAD id as a string; where ``all`` is allowed, the string ``"all"``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from twin.core.subsystem import CommandRejected, only_keys
from twin.security.roles import RANKED_ROLES

SIGNIFICANCE = ("informational", "operational", "hazardous")
ARG_TYPES = ("number", "integer", "bool", "choice", "sat", "token", "text", "integers",
             "command")
RESERVED_KEYS = frozenset({"cmd", "id"})
MAX_TOKEN_CHARS = 64
MAX_TEXT_CHARS = 500
"""A ``text`` argument (a comment) is at most this long."""
MAX_LIST_ITEMS = 1000
"""An ``integers`` argument holds at most this many."""
MAX_COMMAND_ARG_KEYS = 16
"""A ``command`` argument (a command map carried by another, as a timeline entry's) holds
at most this many keys of plain values; its own command checks it further."""


@dataclass(frozen=True)
class Arg:
    """One argument of a command.

    Attributes:
        name: Key in the request map.
        type: ``number``, ``integer``, ``bool``, ``choice`` or ``sat``.
        description: One line for people (and for a client's form).
        unit: The unit of a number (``W``, ``s``, ``1``), empty otherwise.
        min, max: Inclusive bounds of a number or integer (None: unbounded).
        choices: The allowed strings of a ``choice``.
        required: The request must carry it.
        default: What the twin uses when it is absent (for the catalog; None: no default).
        nullable: ``nil`` is a value (it clears something, e.g. a power cap).
        allow_all: A ``sat`` may be ``"all"``.
    """

    name: str
    type: str
    description: str
    unit: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    required: bool = False
    default: Any = None
    nullable: bool = False
    allow_all: bool = False

    def entry(self) -> dict[str, Any]:
        """The catalog entry ``meta.commands[cmd].args[name]``."""
        out: dict[str, Any] = {"type": self.type, "description": self.description,
                               "required": self.required}
        for key in ("unit", "min", "max", "default"):
            value = getattr(self, key)
            if value not in (None, ""):
                out[key] = value
        if self.choices:
            out["choices"] = list(self.choices)
        if self.nullable:
            out["nullable"] = True
        if self.allow_all:
            out["allow_all"] = True
        return out


@dataclass(frozen=True)
class CommandSpec:
    """One command: what it does, how much it matters, who may send it, its arguments.

    Attributes:
        role: The lowest role allowed to send it (twin.security.roles); every command
            declares one.
        confirm_for_all: Naming every satellite (``sat = "all"``) makes it hazardous: it
            then needs confirming, as a hazardous command always does.
    """

    name: str
    summary: str
    significance: str
    args: tuple[Arg, ...] = field(default_factory=tuple)
    role: str = ""
    confirm_for_all: bool = False

    def entry(self) -> dict[str, Any]:
        """The catalog entry ``meta.commands[name]``."""
        confirm = ("always" if self.significance == "hazardous"
                   else "for_all" if self.confirm_for_all else "never")
        return {"summary": self.summary, "significance": self.significance,
                "role": self.role, "confirm": confirm,
                "args": {arg.name: arg.entry() for arg in self.args}}

    def needs_confirmation(self, args: dict[str, Any]) -> bool:
        """Whether this request takes two steps (a hazardous effect)."""
        return self.significance == "hazardous" or (
            self.confirm_for_all and args.get("sat") == "all")


def sat_arg(description: str, *, required: bool = True, allow_all: bool = False) -> Arg:
    """The ``sat`` argument: a satellite by index, name or NORAD id (or ``"all"``)."""
    return Arg("sat", "sat", description, required=required, allow_all=allow_all)


SERVER_COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("commands", "list every command this twin answers", "informational",
                role="viewer"),
    CommandSpec("status", "clock, counters and events so far", "informational",
                role="viewer"),
    CommandSpec("meta", "the meta body (and republish it on the stream)", "informational",
                role="viewer"),
    CommandSpec("pause", "stop the clock; heartbeats go on", "operational", role="operator"),
    CommandSpec("resume", "restart the clock", "operational", role="operator"),
    CommandSpec("step", "while paused, take n steps at the publish rate", "operational", (
        Arg("n", "integer", "steps to take", min=1, max=100_000, default=1),),
        role="operator"),
    CommandSpec("warp", "simulated seconds per wall second", "operational", (
        Arg("value", "number", "the new warp", unit="s/s", min=1e-3, max=1e5,
            required=True),), role="operator"),
    CommandSpec("rate", "steps and publishes per wall second", "operational", (
        Arg("value", "number", "the new rate", unit="Hz", min=0.01, max=1000.0,
            required=True),), role="operator"),
    CommandSpec("confirm", "carry out a hazardous command asked for in the last 30 s",
                "informational", (
        Arg("token", "token", "the token its first request was answered with",
            required=True),), role="viewer"),
    CommandSpec("reload_keys", "read the key registry again; revoked keys lose access",
                "operational", role="admin"),
    CommandSpec("shutdown", "stop the twin (its process exits)", "hazardous", role="admin"),
)
"""The server's own commands; each model's are in its registry entry."""


def check_catalog(specs: dict[str, CommandSpec], handlers: set[str]) -> None:
    """Every command answered is declared, and every declaration is well formed.

    Args:
        specs: The catalog, by name (the server's own and every model's).
        handlers: The commands answered.

    Raises:
        ValueError: Naming the command without a declaration, or the bad declaration.
    """
    missing = sorted(handlers - set(specs))
    if missing:
        raise ValueError(f"command(s) {', '.join(missing)} answered but not declared "
                         "(arguments, significance): see docs/architecture.md")
    for spec in specs.values():
        if spec.significance not in SIGNIFICANCE:
            raise ValueError(f"{spec.name}: significance {spec.significance!r}")
        if spec.role not in RANKED_ROLES:
            raise ValueError(f"{spec.name}: role {spec.role!r}, expected one of "
                             f"{', '.join(RANKED_ROLES)} (who may send it)")
        for arg in spec.args:
            if arg.type not in ARG_TYPES or arg.name in RESERVED_KEYS:
                raise ValueError(f"{spec.name}.{arg.name}: type {arg.type!r}")


class SatelliteNames:
    """Resolves the one way a command names a satellite: index, name or NORAD id.

    Args:
        names: Satellite names, by index.
        norad_ids: NORAD catalog numbers, by index.
    """

    def __init__(self, names: Sequence[str], norad_ids: Sequence[int | str]) -> None:
        self.n = len(names)
        self._names = list(names)
        self._by_name: dict[str, int] = {}
        # A name wins over a NORAD id that happens to be spelled the same.
        for i, norad in enumerate(norad_ids):
            self._by_name.setdefault(str(norad), i)
        for i, name in enumerate(names):
            self._by_name[name] = i

    def name_of(self, index: int) -> str:
        """The name of satellite ``index``."""
        return self._names[index]

    def resolve(self, key: str, value: Any, allow_all: bool = False) -> int | str:
        """The satellite's index (or ``"all"`` where allowed).

        Raises:
            CommandRejected: Naming the argument and what it takes.
        """
        if allow_all and value == "all":
            return "all"
        if isinstance(value, bool):
            raise CommandRejected(f"'{key}' must be a satellite index or name, got {value!r}")
        if isinstance(value, int):
            if not 0 <= value < self.n:
                raise CommandRejected(f"'{key}' index {value} out of range 0..{self.n - 1}")
            return value
        if isinstance(value, str):
            index = self._by_name.get(value)
            if index is None and value == "all":  # (no node is named "all": say why)
                raise CommandRejected(f"'{key}' must be one satellite here, not \"all\"")
            if index is None:
                raise CommandRejected(f"no satellite named {value[:60]!r} (names are in "
                                      "meta.sats.names)")
            return index
        raise CommandRejected(f"'{key}' must be a satellite index or name, got "
                              f"{repr(value)[:60]}")


def check_request(spec: CommandSpec, request: dict[str, Any],
                  satellites: SatelliteNames | None = None) -> dict[str, Any]:
    """Refuse a request its declaration does not allow; return it with satellites resolved.

    The returned map is the request with each ``sat`` argument replaced by the satellite's
    index (or ``"all"``), so a handler trusts the types and ranges the catalog declares and
    checks only what depends on the scenario (an accelerator count up to the node's).

    Args:
        satellites: Resolves ``sat`` arguments; without it they are checked for type only.

    Raises:
        CommandRejected: Naming the argument, what it got and what it takes.
    """
    only_keys(request, {arg.name for arg in spec.args})
    args = dict(request)
    for arg in spec.args:
        if arg.name not in request:
            if arg.required:
                raise CommandRejected(f"needs '{arg.name}': {_expected(arg)}")
            continue
        value = request[arg.name]
        if value is None and arg.nullable:
            continue
        if not _accepts(arg, value):
            raise CommandRejected(f"'{arg.name}' must be {_expected(arg)}, got "
                                  f"{repr(value)[:60]}")
        if not _within(arg, value):
            unit = f" {arg.unit}" if arg.unit and arg.unit != "1" else ""
            shown = f"{value}" if isinstance(value, int) else f"{value:g}"
            raise CommandRejected(f"'{arg.name}' = {shown} out of range "
                                  f"[{_bound(arg.min, '-inf')}, {_bound(arg.max, 'inf')}]{unit}")
        if arg.type == "sat" and satellites is not None:
            args[arg.name] = satellites.resolve(arg.name, value, arg.allow_all)
    return args


def _accepts(arg: Arg, value: Any) -> bool:
    if arg.type == "bool":
        return isinstance(value, bool)
    if arg.type == "choice":
        return isinstance(value, str) and value in arg.choices
    if arg.type == "token":
        return isinstance(value, str) and 0 < len(value) <= MAX_TOKEN_CHARS
    if arg.type == "text":
        return isinstance(value, str) and len(value) <= MAX_TEXT_CHARS
    if arg.type == "integers":
        return (isinstance(value, list) and 0 < len(value) <= MAX_LIST_ITEMS
                and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                        for v in value))
    if arg.type == "command":
        return (isinstance(value, dict) and isinstance(value.get("cmd"), str)
                and len(value) <= MAX_COMMAND_ARG_KEYS
                and all(isinstance(k, str) and (v is None or isinstance(v, bool | int | float
                                                                       | str | list))
                        for k, v in value.items()))
    if arg.type == "sat":
        if arg.allow_all and value == "all":
            return True
        if isinstance(value, str):
            return 0 < len(value) <= 200  # the handler resolves the name
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0
    return is_finite_number(value) and (arg.type != "integer" or isinstance(value, int))


def _within(arg: Arg, value: Any) -> bool:
    """A number of the right type within the argument's bounds (anything else: True)."""
    if arg.type not in ("number", "integer"):
        return True
    return ((arg.min is None or value >= arg.min)
            and (arg.max is None or value <= arg.max))


def _bound(value: float | None, missing: str) -> str:
    return missing if value is None else f"{value:g}"


def is_finite_number(value: Any) -> bool:
    """An int or float (not a bool) that is finite; an integer past float range is not."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # msgpack carries 64-bit integers; float() of 2**70 overflows
        return False


def _expected(arg: Arg) -> str:
    if arg.type == "bool":
        return "true or false"
    if arg.type == "choice":
        return "one of " + ", ".join(arg.choices)
    if arg.type == "token":
        return "a confirmation token (a string)"
    if arg.type == "text":
        return f"a string of at most {MAX_TEXT_CHARS} characters"
    if arg.type == "integers":
        return f"a list of 1 to {MAX_LIST_ITEMS} non-negative integers"
    if arg.type == "command":
        return (f"a command map of at most {MAX_COMMAND_ARG_KEYS} plain values, as on the "
                "command socket ({'cmd': 'pause'})")
    if arg.type == "sat":
        return ("a satellite index, name or NORAD id" + (', or "all"' if arg.allow_all
                                                         else ""))
    kind = "an integer" if arg.type == "integer" else "a number"
    low, high = _bound(arg.min, "-inf"), _bound(arg.max, "inf")
    unit = f" {arg.unit}" if arg.unit and arg.unit != "1" else ""
    return f"{kind} in [{low}, {high}]{unit}" + (" or nil" if arg.nullable else "")

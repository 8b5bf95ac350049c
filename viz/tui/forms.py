"""Command forms from ``meta.commands``: what each argument takes, and a typed request.

The twin declares every command with its arguments (docs/protocol.md, "Commands"): a
``type`` (``number``, ``integer``, ``bool``, ``choice``, ``sat``), ``required``, and where
they apply ``unit``, inclusive ``min``/``max``, ``default``, ``choices``, ``nullable`` and
``allow_all``. Everything here reads that declaration and nothing else, so a command the
dashboard has never seen gets a form like any other. Pure Python, no textual: the form
screen (`viz.tui.screens.CommandFormScreen`) shows these hints and sends what
:func:`read_arg` returns. The twin checks every request again; checking here first means
a typo is shown beside its field instead of coming back as the twin's error.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

ARG_TYPES = ("number", "integer", "bool", "choice", "sat")
SIGNIFICANCE_TEXT = {
    "informational": "reads only",
    "operational": "changes how the twin runs",
    "hazardous": "degrades the simulated fleet",
}
# What leaves a nullable argument empty on purpose (nil: "clear it").
NULL_WORDS = frozenset({"none", "nil", "null"})
_INDEX = re.compile(r"[0-9]+")


class Omit:
    """An optional argument left empty: not sent, the twin uses its default."""

    def __repr__(self) -> str:
        return "OMIT"


OMIT = Omit()


class ArgError(ValueError):
    """A value the argument's declaration does not allow; the message says what it takes."""


def args_of(entry: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """A command entry's arguments that are maps with a known type, in catalog order."""
    args = entry.get("args") if isinstance(entry, Mapping) else None
    if not isinstance(args, Mapping):
        return {}
    return {str(name): dict(arg) for name, arg in args.items()
            if isinstance(arg, Mapping) and arg.get("type") in ARG_TYPES}


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) and not isinstance(value, bool) \
        else str(value)


def unit_text(arg: Mapping[str, Any]) -> str:
    """The unit as a person reads it beside a box: ``W``, ``s``; ``1`` is a fraction."""
    unit = str(arg.get("unit") or "")
    return "fraction" if unit == "1" else unit


def range_text(arg: Mapping[str, Any], n_sats: int = 0) -> str:
    """``0.5 to 40 W``, ``at least 1``, ``node 0 to 39, a name or all``."""
    kind = arg.get("type")
    if kind == "sat":
        nodes = f"node 0 to {n_sats - 1}" if n_sats > 0 else "node index"
        return f"{nodes}, a name" + (" or all" if arg.get("allow_all") else "")
    if kind == "choice":
        return " | ".join(str(c) for c in arg.get("choices") or [])
    if kind == "bool":
        return "yes or no"
    low, high = arg.get("min"), arg.get("max")
    if low is not None and high is not None:
        text = f"{_number(low)} to {_number(high)}"
    elif low is not None:
        text = f"at least {_number(low)}"
    elif high is not None:
        text = f"at most {_number(high)}"
    else:
        text = "a whole number" if kind == "integer" else "a number"
    unit = unit_text(arg)
    return f"{text} {unit}" if unit else text


def hint(arg: Mapping[str, Any], n_sats: int = 0) -> str:
    """One line beside an argument's box: range and unit, default, what it is."""
    parts = [range_text(arg, n_sats)]
    default = arg.get("default")
    if isinstance(default, bool):
        parts.append(f"default {'yes' if default else 'no'}")
    elif default is not None:
        unit = unit_text(arg) if arg.get("type") == "number" else ""
        parts.append(f"default {_number(default)}"
                     + (f" {unit}" if unit and unit != "fraction" else ""))
    if arg.get("nullable"):
        parts.append("none clears")
    if arg.get("description"):
        parts.append(str(arg["description"]))
    return " · ".join(p for p in parts if p)


def read_arg(arg: Mapping[str, Any], raw: Any, n_sats: int = 0) -> Any:
    """The request value of one argument from what the form holds.

    Args:
        arg: The argument's catalog entry.
        raw: A box's text (number, integer, sat), the chosen string or None (choice), a
            bool (bool).
        n_sats: Nodes in the fleet, to check an index (0: not checked).

    Returns:
        A float (number), an int (integer, a sat's index), a str (choice, a sat's name,
        ``"all"``), a bool, None (a nullable argument cleared), or :data:`OMIT`.

    Raises:
        ArgError: The value is missing, malformed or out of the declared range.
    """
    kind = arg.get("type")
    if kind == "bool":
        return bool(raw)
    text = "" if raw is None else str(raw).strip()
    if not text:
        if arg.get("required"):
            what = "choose one" if kind == "choice" else "needs a value"
            raise ArgError(f"{what}: {range_text(arg, n_sats)}")
        return OMIT
    if kind == "choice":
        choices = [str(c) for c in arg.get("choices") or []]
        if text not in choices:
            raise ArgError(f"must be one of {', '.join(choices)}")
        return text
    if kind == "sat":
        if arg.get("allow_all") and text == "all":
            return "all"
        if _INDEX.fullmatch(text):
            index = int(text)
            if n_sats > 0 and index >= n_sats:
                raise ArgError(f"no node {index}: {range_text(arg, n_sats)}")
            return index
        return text  # a name (or a NORAD id's string): the twin resolves it
    if arg.get("nullable") and text.lower() in NULL_WORDS:
        return None
    try:
        value: float | int = int(text) if kind == "integer" else float(text)
    except ValueError:
        what = "a whole number" if kind == "integer" else "a number"
        raise ArgError(f"{text!r} is not {what}: {range_text(arg)}") from None
    if not math.isfinite(value):
        raise ArgError(f"must be finite: {range_text(arg)}")
    low, high = arg.get("min"), arg.get("max")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ArgError(f"{_number(value)} is out of range: {range_text(arg)}")
    return value


def request(entry: Mapping[str, Any], raws: Mapping[str, Any],
            n_sats: int = 0) -> tuple[dict[str, Any], dict[str, str]]:
    """The typed arguments of a command from its form, and the errors by argument.

    Args:
        entry: The command's catalog entry (``meta.commands[cmd]``).
        raws: What each argument's widget holds, by argument name.
        n_sats: Nodes in the fleet, to check an index.
    """
    values, errors = {}, {}
    for name, arg in args_of(entry).items():
        try:
            value = read_arg(arg, raws.get(name), n_sats)
        except ArgError as exc:
            errors[name] = str(exc)
            continue
        if value is not OMIT:
            values[name] = value
    return values, errors


def declared_range(commands: Any, cmd: str, name: str,
                   default: tuple[float, float]) -> tuple[float, float]:
    """The inclusive ``(min, max)`` that ``meta.commands`` declares for one argument, each
    end ``default``'s where the catalog gives none (an old twin)."""
    entry = commands.get(cmd) if isinstance(commands, Mapping) else None
    arg = args_of(entry).get(name, {})
    ends = []
    for key, fallback in zip(("min", "max"), default, strict=True):
        value = arg.get(key)
        finite = isinstance(value, int | float) and not isinstance(value, bool) \
            and math.isfinite(value)
        ends.append(float(value) if finite else fallback)
    return ends[0], ends[1]

"""The scripting client's methods, made from the twin's command catalog (``meta.commands``).

``odc.client.Twin`` reads the catalog when it connects and gets one method per command from
here: its keyword arguments, their checks and its docstring all come from the catalog entry,
so a command the twin declares tomorrow is a method tomorrow, with no change to this code.
The checks are the twin's own (``twin.protocol.commands.check_request``, fed with the
entry's declarations), so a bad argument is refused before it is sent with the words the
twin would have used. Nothing from the wire is evaluated: the catalog is data, read into
``Arg`` and ``CommandSpec`` values.
"""

from __future__ import annotations

import difflib
import inspect
import keyword
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from twin.core.subsystem import CommandRejected
from twin.protocol.commands import (
    ARG_TYPES,
    Arg,
    CommandSpec,
    SatelliteNames,
    check_request,
)

CONFIRM_KEYWORD = "confirmed"
"""The generated methods' own keyword: ``confirmed=True`` confirms a hazardous command at
once with the token the twin answers (no catalog argument may take this name)."""

PYTHON_TYPES: dict[str, Any] = {
    "number": float, "integer": int, "bool": bool, "choice": str, "sat": int | str,
    "token": str, "text": str, "integers": list[int], "command": dict[str, Any],
}
"""The Python type of each catalog argument type, for the methods' signatures."""


class CatalogError(ValueError):
    """The twin's command catalog is not what docs/protocol.md describes."""


class CommandArgumentError(ValueError):
    """A command refused by the client before sending: the catalog's rule it breaks.

    Attributes:
        cmd: The command.
    """

    def __init__(self, cmd: str, message: str) -> None:
        super().__init__(f"{cmd}: {message}")
        self.cmd = cmd


class TwinCommandError(RuntimeError):
    """The twin answered ``ok: false`` (or did not answer): its error text and whole reply.

    Attributes:
        cmd: The command.
        error: The twin's error text.
        reply: The twin's reply map.
    """

    def __init__(self, cmd: str, reply: Mapping[str, Any]) -> None:
        self.cmd = cmd
        self.error = str(reply.get("error", "no error text in the reply"))
        self.reply = dict(reply)
        super().__init__(f"the twin refused {cmd}: {self.error}")


class ConfirmationRequired(TwinCommandError):
    """The twin holds a hazardous command until ``twin.confirm(token)``; nothing ran yet.

    Attributes:
        token: The token to confirm it with.
        summary: What it would do, in the twin's words.
    """

    def __init__(self, cmd: str, reply: Mapping[str, Any]) -> None:
        super().__init__(cmd, reply)
        self.token = str(reply.get("token", ""))
        self.summary = str(reply.get("summary", ""))


def _number_or_none(where: str, value: Any) -> float | None:
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
        return value
    raise CatalogError(f"{where}: expected a number, got {value!r:.60}")


def arg_from_entry(cmd: str, name: str, entry: Any) -> Arg:
    """One ``meta.commands[cmd].args[name]`` entry as the twin's ``Arg``.

    Raises:
        CatalogError: Naming the command and argument, for an entry that is not a map of
            the documented keys and types.
    """
    where = f"meta.commands.{cmd}.args.{name}"
    if not isinstance(entry, Mapping):
        raise CatalogError(f"{where}: expected a map, got {type(entry).__name__}")
    choices = entry.get("choices", [])
    if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
        raise CatalogError(f"{where}.choices: expected a list of strings")
    return Arg(name, str(entry.get("type", "")), str(entry.get("description", "")),
               unit=str(entry.get("unit", "")),
               min=_number_or_none(f"{where}.min", entry.get("min")),
               max=_number_or_none(f"{where}.max", entry.get("max")),
               choices=tuple(choices), required=entry.get("required") is True,
               default=entry.get("default"), nullable=entry.get("nullable") is True,
               allow_all=entry.get("allow_all") is True)


def spec_from_entry(cmd: str, entry: Any) -> CommandSpec:
    """One ``meta.commands[cmd]`` entry as the twin's ``CommandSpec``.

    Raises:
        CatalogError: Naming the command, for an entry that is not as documented.
    """
    if not isinstance(entry, Mapping) or not isinstance(entry.get("args", {}), Mapping):
        raise CatalogError(f"meta.commands.{cmd}: expected a map with an 'args' map")
    args = tuple(arg_from_entry(cmd, str(name), arg) for name, arg in entry.get("args",
                                                                                 {}).items())
    return CommandSpec(cmd, str(entry.get("summary", "")), str(entry.get("significance", "")),
                       args, role=str(entry.get("role", "")),
                       confirm_for_all=entry.get("confirm") == "for_all")


def specs_from_catalog(catalog: Any) -> dict[str, CommandSpec]:
    """Every command of ``meta.commands``, by name."""
    if not isinstance(catalog, Mapping):
        raise CatalogError("meta.commands: expected a map of command name -> entry")
    return {str(cmd): spec_from_entry(str(cmd), entry) for cmd, entry in catalog.items()}


def plain(value: Any) -> Any:
    """A numpy scalar or array as the plain Python value msgpack and the checks take."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def check_arguments(spec: CommandSpec, arguments: dict[str, Any],
                    satellites: SatelliteNames | None) -> None:
    """Refuse arguments the catalog does not allow, with the twin's own words.

    An argument of a type this client does not know (a newer twin's) is left for the twin.

    Raises:
        CommandArgumentError: Naming the command, the argument and the rule it breaks.
    """
    unknown_types = {a.name for a in spec.args if a.type not in ARG_TYPES}
    known = CommandSpec(spec.name, spec.summary, spec.significance,
                        tuple(a for a in spec.args if a.name not in unknown_types),
                        role=spec.role)
    request = {k: v for k, v in arguments.items() if k not in unknown_types}
    try:
        check_request(known, request, satellites)
    except CommandRejected as exc:
        message = str(exc)
        stray = sorted(set(request) - {a.name for a in known.args})
        if stray:  # say what the command does take, and the likely spelling
            takes = ", ".join(a.name for a in spec.args) or "no arguments"
            close = difflib.get_close_matches(stray[0], [a.name for a in spec.args], 1)
            message = (f"takes no argument {stray[0]!r}"
                       + (f" (did you mean {close[0]!r}?)" if close else "")
                       + f"; it takes {takes}")
        raise CommandArgumentError(spec.name, message) from None


def _describe_arg(arg: Arg) -> str:
    parts = [arg.type]
    if arg.min is not None or arg.max is not None:
        low = "-inf" if arg.min is None else f"{arg.min:g}"
        high = "inf" if arg.max is None else f"{arg.max:g}"
        parts.append(f"in [{low}, {high}]")
    if arg.unit and arg.unit != "1":
        parts.append(arg.unit)
    if arg.choices:
        parts.append("one of " + ", ".join(arg.choices))
    parts.append("required" if arg.required else "optional")
    if arg.default is not None:
        parts.append(f"default {arg.default!r}")
    if arg.nullable:
        parts.append("None clears it")
    if arg.allow_all:
        parts.append('"all" for every node')
    return ", ".join(parts)


def docstring(spec: CommandSpec, confirm: str) -> str:
    """The generated method's docstring, from the catalog entry alone."""
    lines = [f"{spec.summary or spec.name} (the twin's `{spec.name}` command).", "",
             f"Significance {spec.significance or '?'}; role {spec.role or '?'}; "
             f"confirm {confirm or 'never'}."]
    if confirm in ("always", "for_all"):
        lines.append(f"The twin holds it for confirmation: pass {CONFIRM_KEYWORD}=True to "
                     "confirm at once, else ConfirmationRequired carries its token.")
    if spec.args:
        lines += ["", "Args:"]
        lines += [f"    {a.name} ({_describe_arg(a)}): {a.description}" for a in spec.args]
    lines += ["", "Returns:", "    The twin's reply map (``ok`` is True).", "",
              "Raises:", "    CommandArgumentError: An argument the catalog does not allow "
              "(nothing is sent).",
              "    TwinCommandError: The twin refused it; ``error`` holds its words."]
    return "\n".join(lines)


def signature(spec: CommandSpec) -> inspect.Signature:
    """Keyword-only parameters, one per catalog argument (required ones without default)."""
    params: list[inspect.Parameter] = []
    for arg in spec.args:
        if not arg.name.isidentifier() or keyword.iskeyword(arg.name):
            params.append(inspect.Parameter("arguments", inspect.Parameter.VAR_KEYWORD))
            break
        annotation = PYTHON_TYPES.get(arg.type, Any)
        if arg.nullable:
            annotation = annotation | None
        default = inspect.Parameter.empty if arg.required else arg.default
        params.append(inspect.Parameter(arg.name, inspect.Parameter.KEYWORD_ONLY,
                                        default=default, annotation=annotation))
    if CONFIRM_KEYWORD not in {a.name for a in spec.args}:
        params.append(inspect.Parameter(CONFIRM_KEYWORD, inspect.Parameter.KEYWORD_ONLY,
                                        default=False, annotation=bool))
    return inspect.Signature(params, return_annotation=dict[str, Any])


def method_name_ok(cmd: str) -> bool:
    """Whether a command's name can be a method's (an identifier, not private)."""
    return cmd.isidentifier() and not keyword.iskeyword(cmd) and not cmd.startswith("_")


def make_method(call: Callable[..., dict[str, Any]], spec: CommandSpec,
                confirm: str) -> Callable[..., dict[str, Any]]:
    """The method for one command: ``call(cmd, **arguments)`` with its name, docstring and
    signature from the catalog."""

    def method(*positional: Any, **arguments: Any) -> dict[str, Any]:
        if positional:
            raise TypeError(f"{spec.name}() takes keyword arguments only "
                            f"({', '.join(a.name for a in spec.args) or 'none'})")
        return call(spec.name, **arguments)

    method.__name__ = spec.name
    method.__qualname__ = f"Twin.{spec.name}"
    method.__doc__ = docstring(spec, confirm)
    method.__signature__ = signature(spec)  # type: ignore[attr-defined]
    return method


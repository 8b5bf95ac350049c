"""Send one command to the twin and print its reply as JSON, confirming it when the twin asks.

``odc cmd status``, ``odc cmd warp value=120``, ``odc cmd inject_fault sat=3 kind=radiator
health_frac=0.5``. Each value is read as JSON where it parses (numbers, true/false, null,
lists, quoted strings), else taken as a plain string, so ``policy=sun_aware`` needs no
quotes. A command the twin holds for confirmation prints its summary on stderr and asks
"type yes to confirm" on a terminal (``--yes`` confirms at once); only then is ``confirm``
sent with the twin's token.

Standard output carries exactly one JSON reply: the command's, or the confirmation's, as
strict JSON (a number JSON has not, infinity or NaN, is the string ``"inf"``, ``"-inf"`` or
``"nan"``: an uncapped ``power_cap_w`` reads ``"inf"``).
The exit status is 0 when that reply is ok, 1 when it is not (refused, no reply, not
confirmed), 2 for a bad command line.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any

from twin.protocol.codec import DEFAULT_COMMAND_ADDRESS
from twin.runtime.addresses import address_argument
from twin.security.clients import add_key_arguments, keys_from_args
from twin.security.keys import KeyFileError

ENVELOPE_KEYS = ("cmd", "id")
"""Request keys the client sets itself; an argument may not take them."""


def key_value(word: str) -> tuple[str, Any]:
    """``sat=3`` → ``("sat", 3)``; ``policy=sun_aware`` → ``("policy", "sun_aware")``."""
    key, sep, text = word.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{word!r} should look like key=value (sat=3)")
    if key in ENVELOPE_KEYS:
        raise argparse.ArgumentTypeError(f"{key!r} is set by odc cmd itself; give the command "
                                         "as NAME and its arguments as key=value")
    try:
        return key, json.loads(text)
    except ValueError:
        return key, text


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"must be in (0, 3600] seconds, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `odc cmd`."""
    parser.add_argument("name", metavar="NAME",
                        help="the command (odc cmd commands lists them; docs/protocol.md)")
    parser.add_argument("arguments", metavar="key=value", nargs="*", type=key_value,
                        help="the command's arguments; values as JSON where they parse")
    parser.add_argument("--cmd", type=address_argument, default=DEFAULT_COMMAND_ADDRESS,
                        help="the twin's command (ROUTER) address (default: %(default)s)")
    parser.add_argument("--timeout", type=_positive_seconds, default=5.0, metavar="SECONDS",
                        help="how long to wait for each reply (default: %(default)s)")
    parser.add_argument("--yes", action="store_true",
                        help="confirm at once if the twin asks (no question on the terminal)")
    add_key_arguments(parser)


def strict_json(value: Any) -> Any:
    """``value`` with each infinity or NaN as a string (``"inf"``, ``"-inf"``, ``"nan"``):
    JSON has none, and strict readers (jq turns Infinity into 1.8e308) would misread it."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if value != value else "inf" if value > 0 else "-inf"
    if isinstance(value, dict):
        return {strict_json(k) if isinstance(k, float) else k: strict_json(v)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(v) for v in value]
    return value


def _print_reply(reply: dict[str, Any]) -> None:
    # Indented for a person, one line for a pipe (jq, a log).
    indent = 2 if sys.stdout.isatty() else None
    print(json.dumps(strict_json(reply), indent=indent, default=str, allow_nan=False),
          flush=True)


def _asked_yes(deadline: float) -> bool:
    """Ask on the terminal; True only for a typed ``yes`` (the prompt goes to stderr)."""
    left = max(0, round(deadline - time.monotonic()))
    print(f"type yes to confirm (within {left} s): ", end="", file=sys.stderr, flush=True)
    try:
        answer = sys.stdin.readline()
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return False
    return answer.strip().lower() == "yes"


def run(args: argparse.Namespace) -> int:
    """Send the command, confirm it if asked and allowed; returns the exit status."""
    from odc.client import TwinClient, needs_confirmation  # zmq loads only when it runs

    arguments: dict[str, Any] = {}
    for key, value in args.arguments:
        if key in arguments:
            print(f"odc cmd: argument {key!r} given twice", file=sys.stderr)
            return 2
        arguments[key] = value
    try:
        keys = keys_from_args(args)
        twin = TwinClient(args.cmd, key=keys.key_file if keys else None,
                          server_key=keys.server_key_file if keys else None,
                          timeout_s=args.timeout)
    except KeyFileError as exc:
        print(f"odc cmd: {exc}", file=sys.stderr)
        return 2
    with twin:
        reply = twin.command(args.name, **arguments)
        if needs_confirmation(reply):
            reply = _confirm(twin, args, arguments, reply)
    _print_reply(reply)
    return 0 if reply.get("ok") is True else 1


def _confirm(twin: Any, args: argparse.Namespace, arguments: dict[str, Any],
             held: dict[str, Any]) -> dict[str, Any]:
    """The confirmation's reply, or ``held`` (the twin's question) when not confirmed."""
    expires = held.get("expires_in_s")
    expires = float(expires) if isinstance(expires, int | float) else 30.0
    deadline = time.monotonic() + expires
    line = " ".join([args.name, *(f"{k}={json.dumps(v)}" for k, v in arguments.items())])
    print(f"odc cmd: the twin holds `{line}` until confirmed: {held.get('summary', '?')} "
          f"(for {expires:g} s)", file=sys.stderr, flush=True)
    if args.yes:
        print("odc cmd: confirming (--yes)", file=sys.stderr, flush=True)
    elif not sys.stdin.isatty():
        print("odc cmd: not confirmed, nothing ran: no terminal to ask on; give --yes to "
              "confirm without asking", file=sys.stderr)
        return held
    elif not _asked_yes(deadline):
        print("odc cmd: not confirmed, nothing ran", file=sys.stderr)
        return held
    return twin.confirm(held["token"])

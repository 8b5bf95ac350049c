"""Read the twin's audit file: who asked for what, when, and how it ended (`odc audit FILE`).

The twin appends one JSON object per line for every command it is sent: ``wall_utc`` (ISO
8601, UTC), ``sim_utc``, ``key`` (the key's name), ``peer`` (its address), ``cmd``,
``args`` (a map), ``outcome`` (``ok``, ``rejected``, ``confirm_required``, ``confirmed``,
``expired``, ``failed``) and ``error`` (a string or null). ``odc audit`` prints them as a
table, or as the JSON lines themselves with ``--json``, keeping those that match every
filter given. The file is append-only and a crash can cut its last line: lines that are
not JSON objects are skipped, and counted on stderr at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

OUTCOMES = ("ok", "rejected", "confirm_required", "confirmed", "expired", "failed")
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
DURATION_UNITS_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
MAX_LINE_BYTES = 1 << 20
"""A longer line is not an audit entry (the twin's are a few hundred bytes); it is skipped."""
# The table's columns: heading and width (the last two take what they need).
COLUMNS = (("WALL UTC", 19), ("KEY", 12), ("PEER", 21), ("CMD", 14), ("OUTCOME", 16))
SHOWN_LINE_NUMBERS = 5


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``--since``: an ISO 8601 time (UTC when it names no zone) or a duration back from
    now: ``90s``, ``10m``, ``2h``, ``1d``.

    Raises:
        argparse.ArgumentTypeError: Neither.
    """
    match = DURATION.match(text)
    if match:
        seconds = float(match.group(1)) * DURATION_UNITS_S[match.group(2)]
        return (now or datetime.now(UTC)) - timedelta(seconds=seconds)
    moment = parse_utc(text)
    if moment is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither an ISO 8601 time (2025-03-01T12:00:00Z) nor a duration "
            "back from now (90s, 10m, 2h, 1d)")
    return moment


def parse_utc(text: Any) -> datetime | None:
    """An ISO 8601 time as an aware UTC datetime (naive ones are UTC); None if it is not."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `odc audit`."""
    parser.add_argument("file", type=Path, metavar="FILE", help="the twin's audit file")
    parser.add_argument("--since", type=parse_since, metavar="TIME_OR_DURATION",
                        help="entries at or after this: an ISO 8601 time (UTC unless it says "
                        "otherwise) or a duration back from now: 90s, 10m, 2h, 1d")
    parser.add_argument("--who", metavar="KEY", help="only this key's entries")
    parser.add_argument("--cmd", metavar="NAME", help="only this command's entries")
    parser.add_argument("--outcome", choices=OUTCOMES, help="only entries that ended so")
    parser.add_argument("--json", action="store_true",
                        help="print the matching entries' JSON lines as they are in the file")


@dataclass
class Skipped:
    """Lines left out because they are not audit entries, by reason, with line numbers."""

    lines: dict[str, list[int]] = field(default_factory=dict)

    def add(self, reason: str, number: int) -> None:
        self.lines.setdefault(reason, []).append(number)

    @property
    def count(self) -> int:
        return sum(len(numbers) for numbers in self.lines.values())

    def report(self) -> str:
        parts = []
        for reason, numbers in self.lines.items():
            shown = ", ".join(str(n) for n in numbers[:SHOWN_LINE_NUMBERS])
            more = f" and {len(numbers) - SHOWN_LINE_NUMBERS} more" \
                if len(numbers) > SHOWN_LINE_NUMBERS else ""
            parts.append(f"{len(numbers)} {reason} (line {shown}{more})")
        return "; ".join(parts)


def entries(lines: BinaryIO, skipped: Skipped) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(line number, the line as written, its object) for each line that is a JSON object."""
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        if len(raw) > MAX_LINE_BYTES:
            skipped.add("too long", number)
            continue
        try:
            text = raw.decode("utf-8").strip()
            entry = json.loads(text)
        except (UnicodeDecodeError, ValueError):
            skipped.add("not JSON", number)
            continue
        if not isinstance(entry, dict):
            skipped.add("not a JSON object", number)
            continue
        yield number, text, entry


def matches(entry: dict[str, Any], args: argparse.Namespace) -> bool:
    """Whether ``entry`` passes every filter given (``--since`` is checked by the caller)."""
    return (args.who is None or entry.get("key") == args.who) and \
        (args.cmd is None or entry.get("cmd") == args.cmd) and \
        (args.outcome is None or entry.get("outcome") == args.outcome)


def _cell(value: Any, width: int | None = None) -> str:
    text = "-" if value is None or value == "" else str(value)
    text = text.replace("\n", " ")
    if width is not None and len(text) > width:
        text = text[:width - 1] + "…"
    return text if width is None else text.ljust(width)


def row(entry: dict[str, Any]) -> str:
    """One table row: time, key, peer, command, outcome, arguments, error."""
    wall = parse_utc(entry.get("wall_utc"))
    when = wall.strftime("%Y-%m-%d %H:%M:%S") if wall is not None else entry.get("wall_utc")
    cells = [_cell(value, width) for value, (_, width) in zip(
        (when, entry.get("key"), entry.get("peer"), entry.get("cmd"), entry.get("outcome")),
        COLUMNS, strict=True)]
    arguments = entry.get("args")
    if isinstance(arguments, dict):
        shown = " ".join(f"{k}={json.dumps(v, default=str)}" for k, v in arguments.items())
    else:
        shown = _cell(arguments)
    cells.append(_cell(shown or "-", 40))
    cells.append(_cell(entry.get("error")))
    return "  ".join(cells).rstrip()


def run(args: argparse.Namespace) -> int:
    """Print the matching entries; returns 2 when the file cannot be read."""
    skipped = Skipped()
    try:
        lines = args.file.open("rb")
    except OSError as exc:
        print(f"odc audit: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:
        with lines:
            if not args.json:
                print("  ".join([*(h.ljust(w) for h, w in COLUMNS), "ARGS".ljust(40), "ERROR"]))
            for number, text, entry in entries(lines, skipped):
                if not matches(entry, args):
                    continue
                if args.since is not None:
                    wall = parse_utc(entry.get("wall_utc"))
                    if wall is None:
                        skipped.add("without a readable wall_utc (needed by --since)", number)
                        continue
                    if wall < args.since:
                        continue
                print(text if args.json else row(entry))
    except BrokenPipeError:
        # `odc audit FILE | head`: the reader has what it wanted. Point stdout at devnull
        # so the interpreter's last flush does not complain about the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        print(f"odc audit: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if skipped.count:
        print(f"odc audit: skipped {skipped.count} line(s) of {args.file} that are not audit "
              f"entries: {skipped.report()}; the last line may be cut by a crash",
              file=sys.stderr)
    return 0

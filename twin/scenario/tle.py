"""TLE catalogs: the strict two- and three-line reader and the age check against the epoch.

A ``[[tle]]`` table names a catalog file (relative to the scenario's folder) and optionally
how many of its satellites to take. The reader checks every line against the fixed-column
format and its checksum and shows the expected template above a bad line; the age check
refuses elements too far from the scenario epoch for SGP4 to be worth running.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sgp4.api import WGS72, Satrec

from twin.astro.constellation import SGP4_EPOCH_ORIGIN
from twin.scenario.errors import ScenarioError
from twin.scenario.files import read_bounded

MAX_TLE_BYTES = 64 << 20
"""A TLE catalog of MAX_SATELLITES 3-line entries is ~22 MB; 64 MiB leaves room for more
entries than the limit takes (``limit = N`` reads only the first N)."""
MAX_TLE_AGE_DAYS = 90.0
"""Farthest the scenario epoch may lie from a TLE's element epoch, either way (days). SGP4
elements are good to a few km for days; months away the orbits they give have decayed or
flown off (the bundled Starlink catalog gives positions of 1e11 km a year out)."""

TLE_LINE1_TEMPLATE = "1 NNNNNC NNNNNAAA NNNNN.NNNNNNNN +.NNNNNNNN +NNNNN-N +NNNNN-N N NNNNN"
TLE_LINE2_TEMPLATE = "2 NNNNN NNN.NNNN NNN.NNNN NNNNNNN NNN.NNNN NNN.NNNN NN.NNNNNNNNNNNNNN"
_TLE_LEGEND = ("(N = digit or space, C = classification letter, A = any character, + and - ="
               " sign '+', '-' or space, '.' and spaces exactly where shown; 69 columns)")
# What each template character allows, as a regex character class.
_TEMPLATE_CLASSES = {"N": "[0-9 ]", "C": "[A-Za-z ]", "A": ".", "+": "[-+ ]", "-": "[-+ ]",
                     ".": r"\.", " ": " ", "1": "1", "2": "2"}


def _column_classes(template: str) -> list[str]:
    classes = [_TEMPLATE_CLASSES[char] for char in template]
    classes[2] = "[0-9A-Z ]"  # Alpha-5 catalog numbers put a letter in the first digit
    if template.startswith("1"):
        for column in range(9, 17):  # international designator: free-form, often blank
            classes[column] = "."
    return classes


_TLE_CLASSES = {"1": _column_classes(TLE_LINE1_TEMPLATE), "2": _column_classes(TLE_LINE2_TEMPLATE)}
_TLE_PATTERNS = {which: re.compile("".join(classes)) for which, classes in _TLE_CLASSES.items()}
_TLE_TEMPLATES = {"1": TLE_LINE1_TEMPLATE, "2": TLE_LINE2_TEMPLATE}


@dataclass(frozen=True)
class TleGroup:
    """One ``[[tle]]`` table."""

    name: str
    path: str
    limit: int | None = field(default=None, metadata={"min": 1, "unit": "1"})


@dataclass(frozen=True)
class TleEntry:
    """One satellite read from a TLE catalog (name, WGS72 satrec, element epoch in UTC)."""

    name: str
    satrec: Satrec
    epoch_utc: datetime


def read_tle_group(group: TleGroup, key: str, source: str, base_dir: Path) -> list[TleEntry]:
    """Read and parse the catalog of ``[[tle]]`` table ``key``; a ScenarioError blames its path."""
    path = Path(group.path).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    try:
        text = read_bounded(path, MAX_TLE_BYTES, "TLE file").decode("utf-8", errors="replace")
    except OSError as exc:
        raise ScenarioError(
            source, f"{key}.path", f"cannot read TLE file {path} ({exc.strerror or exc}):"
            f" relative paths resolve against {base_dir}") from exc
    try:
        return parse_tle_text(text, str(path), group.limit)
    except ValueError as exc:
        raise ScenarioError(source, f"{key}.path", str(exc)) from exc


def check_tle_ages(epoch: datetime, catalogs: list[list[TleEntry]], source: str) -> None:
    """Refuse a catalog whose farthest element epoch is over MAX_TLE_AGE_DAYS from ``epoch``."""
    for index, catalog in enumerate(catalogs):
        farthest = max(catalog, key=lambda entry: abs((entry.epoch_utc - epoch).total_seconds()))
        days = (epoch - farthest.epoch_utc).total_seconds() / 86400.0
        if abs(days) > MAX_TLE_AGE_DAYS:
            when = "before" if days > 0 else "after"
            raise ScenarioError(
                source, f"tle[{index}].path", f"{farthest.name!r} has elements from"
                f" {farthest.epoch_utc:%Y-%m-%d %H:%M} UTC, {abs(days):,.0f} days {when} the"
                f" scenario epoch {epoch:%Y-%m-%d %H:%M} UTC; SGP4 elements hold for days, and"
                f" at most {MAX_TLE_AGE_DAYS:g} days are accepted: use epoch = \"tle\" or"
                f" elements from near the epoch")


def parse_tle_text(text: str, path: str = "<string>", limit: int | None = None
                   ) -> list[TleEntry]:
    """Parse 2-line or 3-line (name line first, optionally "0 NAME") TLE text strictly.

    Args:
        text: Catalog text.
        path: Shown in messages.
        limit: Keep only the first ``limit`` satellites.

    Returns:
        Entries with name, satrec (WGS72) and epoch, in file order.

    Raises:
        ValueError: A line breaks the fixed-column format, a checksum or the line pairing;
            the message shows the expected template above the bad line.
    """
    entries: list[TleEntry] = []
    pending_name: tuple[int, str] | None = None
    line1: tuple[int, str] | None = None
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        if not line:
            continue
        if line1 is not None:
            if not line.startswith("2"):
                raise ValueError(_tle_problem(path, line_no, line, "2",
                                              f"expected TLE line 2 after line 1 (line"
                                              f" {line1[0]})"))
            _check_tle_line(path, line_no, line, "2")
            if line[2:7] != line1[1][2:7]:
                raise ValueError(_tle_problem(
                    path, line_no, line, "2", f"catalog number {line[2:7].strip()!r} differs"
                    f" from line 1's {line1[1][2:7].strip()!r} (line {line1[0]})"))
            name = pending_name[1] if pending_name else f"NORAD {line[2:7].strip()}"
            satrec = Satrec.twoline2rv(line1[1], line, WGS72)
            if satrec.error:
                raise ValueError(_tle_problem(path, line_no, line, "2",
                                              f"SGP4 rejects these elements (error code"
                                              f" {satrec.error})"))
            epoch = SGP4_EPOCH_ORIGIN + timedelta(
                days=(satrec.jdsatepoch - 2433281.5) + satrec.jdsatepochF)
            entries.append(TleEntry(name=name, satrec=satrec, epoch_utc=epoch))
            pending_name, line1 = None, None
            if limit is not None and len(entries) >= limit:
                break
        elif line.startswith("1 "):
            _check_tle_line(path, line_no, line, "1")
            line1 = (line_no, line)
        elif line.startswith("2 "):
            raise ValueError(_tle_problem(path, line_no, line, "2",
                                          "TLE line 2 without a line 1 before it"))
        elif pending_name is not None:
            raise ValueError(_tle_problem(
                path, line_no, line, "1", f"expected TLE line 1 after the name line"
                f" {pending_name[1]!r} (line {pending_name[0]}), found another line that does"
                f" not start with '1 '"))
        else:
            name = line[2:] if line.startswith("0 ") else line
            pending_name = (line_no, name.strip())
    if line1 is not None:
        raise ValueError(f"{path} line {line1[0]}: TLE line 1 has no line 2 after it"
                         " (the file ends)")
    if pending_name is not None:
        raise ValueError(f"{path} line {pending_name[0]}: name line {pending_name[1]!r} has no"
                         " TLE lines after it (the file ends)")
    if not entries:
        raise ValueError(f"{path}: no TLEs found; expected 2-line or 3-line elements like\n"
                         f"  ISS (ZARYA)\n  {TLE_LINE1_TEMPLATE}\n  {TLE_LINE2_TEMPLATE}")
    return entries


def _check_tle_line(path: str, line_no: int, line: str, which: str) -> None:
    if len(line) != 69 or not _TLE_PATTERNS[which].fullmatch(line):
        if len(line) != 69:
            column, why = min(len(line), 69), f"the line has {len(line)} columns, expected 69"
        else:
            column = next(i for i, cls in enumerate(_TLE_CLASSES[which])
                          if not re.fullmatch(cls, line[i]))
            expected = TLE_LINE1_TEMPLATE if which == "1" else TLE_LINE2_TEMPLATE
            why = (f"column {column + 1} is {line[column]!r} where the format has"
                   f" {expected[column]!r}")
        raise ValueError(_tle_problem(path, line_no, line, which, why, column))
    digits = sum(int(char) for char in line[:68] if char.isdigit()) + line[:68].count("-")
    if line[68] != str(digits % 10):
        raise ValueError(_tle_problem(
            path, line_no, line, which, f"checksum {line[68]!r} is wrong: the digits (with '-'"
            f" counting 1) of columns 1-68 sum to {digits}, so column 69 should be"
            f" {digits % 10}", 68))


def _tle_problem(path: str, line_no: int, line: str, which: str, why: str,
                 column: int | None = None) -> str:
    # Template and line share one left margin so the columns line up under each other.
    label = f"line {line_no}: "
    width = max(len(label), len("expected: "))
    pointer = f"\n{' ' * (2 + width + column)}^" if column is not None else ""
    return (f"{path} line {line_no}: {why}\n"
            f"  {'expected: ':<{width}}{_TLE_TEMPLATES[which]}\n"
            f"  {label:<{width}}{line}{pointer}\n  {_TLE_LEGEND}")

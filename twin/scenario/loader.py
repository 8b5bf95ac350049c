"""Scenario files: parse and validate a TOML scenario into satellites, stations and settings.

A scenario names its epoch, random seed and clock, lists generated shells (``[[walker]]``,
``[[sun_synchronous]]``), TLE catalogs (``[[tle]]``) and ground stations (``[[station]]``),
and carries raw tables (``[thermal]``, ``[power]``, ...) that later subsystems validate with
``parse_section``. Every problem is reported as a ``ScenarioError`` that names the file, the
key path (``walker[1].altitude_km``, 0-based indices), what is wrong and what is expected.
The reference for every key is docs/scenarios.md.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import stat
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sgp4.api import WGS72, Satrec

from twin.astro.constellation import (
    SGP4_EPOCH_ORIGIN,
    SunSynchronousShell,
    WalkerShell,
    make_satrec,
)
from twin.astro.sun import EPHEMERIS_END_UTC
from twin.core.assets import assets_dir
from twin.core.clock import MAX_RATE_HZ, MAX_WARP, MIN_RATE_HZ, MIN_WARP, check_step

ASSETS_DIR: Path = assets_dir()
"""The bundled assets: the checkout's assets/ folder, or the installed odc_assets package."""
SCENARIOS_DIR: Path = ASSETS_DIR / "scenarios"
"""Where bundled scenarios live: ``load_scenario("default")`` reads default.toml here."""

MAX_SCENARIO_BYTES = 1 << 20
"""A scenario file is a few kB of hand-written TOML; 1 MiB is far past any real one."""
MAX_TLE_BYTES = 64 << 20
"""A TLE catalog of MAX_SATELLITES 3-line entries is ~22 MB; 64 MiB leaves room for more
entries than the limit takes (``limit = N`` reads only the first N)."""
MAX_TLE_AGE_DAYS = 90.0
"""Farthest the scenario epoch may lie from a TLE's element epoch, either way (days). SGP4
elements are good to a few km for days; months away the orbits they give have decayed or
flown off (the bundled Starlink catalog gives positions of 1e11 km a year out)."""
EARLIEST_EPOCH_UTC = datetime(1957, 1, 1, tzinfo=UTC)
"""SGP4's element epochs start with the space age."""

MAX_SATELLITES = 100_000
"""More satellites than this is almost surely a typo (and would not fit a real-time step)."""
GENERATED_NORAD_BASE = 90_000
"""Catalog numbers of generated satellites start here, above today's real catalog (~60,000).
Numbers above 99,999 are valid Alpha-5 numbers in SGP4."""

_SINGLE_SECTIONS = ("scenario", "clock")
_ARRAY_SECTIONS = ("walker", "sun_synchronous", "tle", "station")


def model_sections() -> tuple[str, ...]:
    """The models' tables (twin.models.registry), kept raw in ``Scenario.sections`` for each
    model to parse with parse_section."""
    # Imported here: the models import this module.
    from twin.models.registry import scenario_sections

    return scenario_sections()


def all_sections() -> tuple[str, ...]:
    """Every table a scenario may hold."""
    return _SINGLE_SECTIONS + _ARRAY_SECTIONS + model_sections()

T = TypeVar("T")


class ScenarioError(ValueError):
    """A scenario file is wrong; the message says where, what and what is expected.

    Attributes:
        file: The scenario file's path, or ``"<string>"``.
        key: Key path of the problem, e.g. ``"walker[1].altitude_km"`` (0-based index);
            empty for problems of the whole file (syntax errors, missing file).
        problem: The explanation without the location prefix.
    """

    def __init__(self, file: str, key: str, problem: str) -> None:
        self.file = file
        self.key = key
        self.problem = problem
        where = f"{file}: {key}" if key else file
        super().__init__(f"{where}: {problem}")


class InvalidField(ValueError):
    """Raise from a section dataclass's ``__post_init__`` to blame one of its fields.

    ``parse_section`` turns it into a ScenarioError naming ``section.field``; a plain
    ValueError blames the whole section.
    """

    def __init__(self, field_name: str, problem: str) -> None:
        super().__init__(problem)
        self.field = field_name


@dataclass(frozen=True)
class GroundStation:
    """A ground station that can downlink when a satellite is above its elevation mask.

    Attributes:
        name: Display name.
        lat_deg: Geodetic latitude (deg, -90..90, north positive).
        lon_deg: Longitude (deg, east positive); given in -180..360, stored in [-180, 180).
        alt_m: Height above the WGS84 ellipsoid (m).
        min_elevation_deg: Elevation mask (deg, 0..90).
        downlink_bps: Downlink rate while in contact (bit/s).
    """

    name: str
    lat_deg: float = field(metadata={"min": -90.0, "max": 90.0, "unit": "deg"})
    lon_deg: float = field(metadata={"min": -180.0, "max": 360.0, "unit": "deg"})
    alt_m: float = field(default=0.0, metadata={"min": -500.0, "max": 9000.0, "unit": "m"})
    min_elevation_deg: float = field(default=5.0,
                                     metadata={"min": 0.0, "max": 90.0, "unit": "deg"})
    downlink_bps: float = field(default=1.0e9,
                                metadata={"gt": 0.0, "max": 1.0e12, "unit": "bit/s"})

    def __post_init__(self) -> None:
        # One longitude convention downstream, whatever the operator typed; values already in
        # range are kept bit-exact.
        if not -180.0 <= self.lon_deg < 180.0:
            object.__setattr__(self, "lon_deg", (self.lon_deg + 180.0) % 360.0 - 180.0)


@dataclass(frozen=True)
class Satellite:
    """One satellite of the scenario.

    Attributes:
        sat_id: Index 0..n-1, unique within the scenario: the key every subsystem uses.
        name: Display name (generated ``GROUP-PP-SS`` or the TLE's name line).
        group: Name of the ``[[walker]]``/``[[sun_synchronous]]``/``[[tle]]`` table.
        norad_id: Catalog number (TLE's, or ``GENERATED_NORAD_BASE + n`` when generated).
        satrec: SGP4 elements on WGS72.
    """

    sat_id: int
    name: str
    group: str
    norad_id: int
    satrec: Satrec


@dataclass(frozen=True)
class ClockSettings:
    """How the twin's clock advances.

    Attributes:
        rate_hz: Steps (and publishes) per wall-clock second (Hz).
        warp: Simulated seconds per wall-clock second (1 = real time).
    """

    rate_hz: float = field(default=10.0,
                           metadata={"min": MIN_RATE_HZ, "max": MAX_RATE_HZ, "unit": "Hz"})
    warp: float = field(default=1.0, metadata={"min": MIN_WARP, "max": MAX_WARP, "unit": "s/s"})

    def __post_init__(self) -> None:
        # The same bounds as SimClock and the warp/rate commands (twin.clock).
        try:
            check_step(self.warp, self.rate_hz)
        except ValueError as exc:
            raise InvalidField("warp", str(exc)) from None

    @property
    def step_s(self) -> float:
        """Simulated seconds per step (s)."""
        return self.warp / self.rate_hz


@dataclass(frozen=True)
class Scenario:
    """A parsed, validated scenario.

    Attributes:
        name: Scenario name (``[scenario].name``, default the file's stem).
        description: Free text.
        source: Path of the file it came from, or ``"<string>"``.
        epoch_utc: Simulation start (timezone-aware UTC).
        seed: The one seed of the twin's random generator.
        clock: Clock settings.
        satellites: All satellites, ``satellites[i].sat_id == i``.
        stations: Ground stations.
        sections: Raw tables of later subsystems (``thermal``, ``power``, ...), present only
            when the file has them; parse them with ``parse_section``.
    """

    name: str
    description: str
    source: str
    epoch_utc: datetime
    seed: int
    clock: ClockSettings
    satellites: tuple[Satellite, ...]
    stations: tuple[GroundStation, ...]
    sections: Mapping[str, Mapping[str, Any]]

    @property
    def groups(self) -> tuple[str, ...]:
        """Group names in sat_id order."""
        return tuple(dict.fromkeys(sat.group for sat in self.satellites))


@dataclass(frozen=True)
class _Header:
    """The ``[scenario]`` table."""

    name: str = ""
    description: str = ""
    epoch: str | datetime | None = None
    seed: int = field(default=0, metadata={"min": 0, "max": 2**63 - 1, "unit": "1"})


@dataclass(frozen=True)
class _TleGroup:
    """One ``[[tle]]`` table."""

    name: str
    path: str
    limit: int | None = field(default=None, metadata={"min": 1, "unit": "1"})


# --------------------------------------------------------------------------------------------
# Public entry points


def bundled_scenarios() -> list[str]:
    """Names of the scenarios shipped in assets/scenarios (``load_scenario`` accepts them)."""
    return sorted(path.stem for path in SCENARIOS_DIR.glob("*.toml"))


def load_scenario(name_or_path: str) -> Scenario:
    """Load a bundled scenario by name (``"default"``) or a scenario file by path.

    Args:
        name_or_path: A name from ``bundled_scenarios()``, or a path to a TOML file. Relative
            paths inside the file (TLE catalogs) resolve against the file's folder.

    Returns:
        The validated scenario.

    Raises:
        ScenarioError: The file is missing, unreadable or invalid.
    """
    if not name_or_path.strip():
        raise ScenarioError("<no scenario>", "", f"the scenario name is empty. Give a path to a"
                            f" .toml file or one of the bundled names:"
                            f" {', '.join(bundled_scenarios())}")
    bundled = SCENARIOS_DIR / f"{name_or_path}.toml"
    if "/" not in name_or_path and not name_or_path.endswith(".toml") and bundled.is_file():
        path = bundled
    else:
        path = Path(name_or_path).expanduser()
    if not path.exists():
        raise ScenarioError(
            str(path), "",
            f"no such scenario file. Give a path to a .toml file or one of the bundled"
            f" names: {', '.join(bundled_scenarios())}")
    try:
        data = read_bounded(path, MAX_SCENARIO_BYTES, "scenario file")
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ScenarioError(str(path), "", f"cannot read the file: {why} (a scenario is a"
                            " UTF-8 TOML text file)") from exc
    return parse_scenario(text, source=str(path), base_dir=path.parent)


def read_bounded(path: Path, max_bytes: int, what: str) -> bytes:
    """Read a regular file of at most ``max_bytes``; anything else is an ``OSError``.

    Opened non-blocking and checked after opening, so a FIFO, a device (``/dev/zero``), a
    directory or a file that grows while read never hangs the twin or fills its memory.

    Args:
        path: The file.
        max_bytes: Largest size accepted.
        what: What the file is, for messages ("TLE file").

    Raises:
        OSError: Missing, unreadable, not a regular file, or too big; ``strerror`` says which.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = ("a directory" if stat.S_ISDIR(info.st_mode)
                    else "a device, pipe or socket, not a regular file")
            raise OSError(0, f"it is {kind}", str(path))
        if info.st_size > max_bytes:
            raise OSError(0, f"it is {info.st_size:,} bytes, more than the {max_bytes:,} a"
                          f" {what} may have", str(path))
        with os.fdopen(fd, "rb", closefd=True) as stream:
            fd = -1
            data = stream.read(max_bytes + 1)
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > max_bytes:
        raise OSError(0, f"it grew past the {max_bytes:,} bytes a {what} may have", str(path))
    return data


def parse_scenario(text: str, source: str = "<string>", base_dir: Path | None = None) -> Scenario:
    """Parse and validate scenario TOML text.

    Args:
        text: TOML text.
        source: Where it came from, for messages (a path or ``"<string>"``).
        base_dir: Folder that relative ``[[tle]].path`` values resolve against; default the
            current directory.

    Returns:
        The validated scenario.

    Raises:
        ScenarioError: Anything is wrong; the message names file, key path and the fix.
    """
    doc = _parse_toml(text, source)
    base_dir = base_dir if base_dir is not None else Path.cwd()
    _check_top_level(doc, source)

    header = _build(_Header, doc.get("scenario", {}), "scenario", source)
    clock = _build(ClockSettings, doc.get("clock", {}), "clock", source)
    walkers = [_build(WalkerShell, table, f"walker[{i}]", source)
               for i, table in enumerate(doc.get("walker", []))]
    sun_synchronous = [_build(SunSynchronousShell, table, f"sun_synchronous[{i}]", source)
                       for i, table in enumerate(doc.get("sun_synchronous", []))]
    tle_groups = [_build(_TleGroup, table, f"tle[{i}]", source)
                  for i, table in enumerate(doc.get("tle", []))]
    stations = tuple(_build(GroundStation, table, f"station[{i}]", source)
                     for i, table in enumerate(doc.get("station", [])))

    _check_group_names(source, walkers, sun_synchronous, tle_groups)
    _check_generated_count(source, walkers, sun_synchronous)
    catalogs = [_read_tle_group(group, f"tle[{i}]", source, base_dir)
                for i, group in enumerate(tle_groups)]
    epoch_utc = _resolve_epoch(header.epoch, catalogs, source)
    _check_tle_ages(epoch_utc, catalogs, source)

    satellites: list[Satellite] = []
    generated = 0
    shells: list[tuple[WalkerShell | SunSynchronousShell, str]] = [
        *((shell, f"walker[{i}]") for i, shell in enumerate(walkers)),
        *((shell, f"sun_synchronous[{i}]") for i, shell in enumerate(sun_synchronous))]
    for shell, key in shells:
        orbits = shell.orbits() if isinstance(shell, WalkerShell) else shell.orbits(epoch_utc)
        for orbit in orbits:
            norad_id = GENERATED_NORAD_BASE + generated
            generated += 1
            try:
                satrec = make_satrec(orbit, norad_id, epoch_utc)
            except ValueError as exc:
                raise ScenarioError(source, key, str(exc)) from exc
            satellites.append(Satellite(
                sat_id=len(satellites),
                name=f"{shell.name}-{orbit.plane_index + 1:02d}-{orbit.slot_index + 1:02d}",
                group=shell.name, norad_id=norad_id, satrec=satrec))
    for group, catalog in zip(tle_groups, catalogs, strict=True):
        for entry in catalog:
            satellites.append(Satellite(sat_id=len(satellites), name=entry.name,
                                        group=group.name, norad_id=entry.satrec.satnum,
                                        satrec=entry.satrec))

    if not satellites:
        raise ScenarioError(
            source, "", "the scenario has no satellites: add a [[walker]], [[sun_synchronous]]"
            " or [[tle]] table (see docs/scenarios.md)")
    if len(satellites) > MAX_SATELLITES:
        raise ScenarioError(
            source, "tle", f"{len(satellites):,} satellites is more than the limit of"
            f" {MAX_SATELLITES:,}: use 'limit = N' in [[tle]] to take the first N")

    sections = types.MappingProxyType(
        {name: types.MappingProxyType(doc[name]) for name in model_sections() if name in doc})
    return Scenario(
        name=header.name or (Path(source).stem if source != "<string>" else "unnamed"),
        description=header.description,
        source=source,
        epoch_utc=epoch_utc,
        seed=header.seed,
        clock=clock,
        satellites=tuple(satellites),
        stations=stations,
        sections=sections,
    )


def parse_section(cls: type[T], scenario: Scenario, section: str) -> T:
    """Build a subsystem's frozen parameter dataclass from ``scenario.sections[section]``.

    Missing keys take the dataclass defaults (a field without a default is required); unknown
    keys are rejected with the closest valid key suggested; ints are accepted for floats;
    nested tables map to fields typed as dataclasses (give them a ``default_factory``);
    arrays map to ``tuple[X, ...]``. Per-field bounds come from field metadata:
    ``field(default=0.9, metadata={"min": 0, "max": 1, "unit": "1"})`` with keys ``min``/
    ``max`` (inclusive), ``gt``/``lt`` (exclusive), ``choices`` (allowed values) and ``unit``
    (shown in messages). Cross-field checks go in ``__post_init__``: raise
    ``InvalidField("key", "why")`` to blame one key.

    Args:
        cls: A dataclass type.
        scenario: The loaded scenario.
        section: Section name, e.g. ``"thermal"``.

    Returns:
        The validated instance.

    Raises:
        ScenarioError: Naming the scenario file and e.g. ``thermal.radiator_area_m2``.
    """
    return _build(cls, dict(scenario.sections.get(section, {})), section, scenario.source)


# --------------------------------------------------------------------------------------------
# TOML, top level and the generic dataclass builder


def _parse_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except RecursionError:
        # tomllib recurses once per nesting level; thousands of [[[... levels exhaust the
        # stack long before any real scenario would.
        raise ScenarioError(source, "", "TOML nested too deeply (arrays or inline tables inside"
                            " each other thousands of levels down); scenario tables are at"
                            " most a few levels deep") from None
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = re.search(r"\(at line (\d+), column (\d+)\)", message)
        if not found:
            raise ScenarioError(source, "", f"TOML syntax error: {message}") from exc
        line_no, column = int(found.group(1)), int(found.group(2))
        lines = text.splitlines()
        shown = lines[line_no - 1] if 0 < line_no <= len(lines) else ""
        gutter = f"{line_no:5d} | "
        raise ScenarioError(
            source, "",
            f"TOML syntax error at line {line_no}, column {column}:"
            f" {message[:found.start()].strip()}\n{gutter}{shown}\n"
            f"{' ' * (len(gutter) + column - 1)}^\n"
            f"(strings need quotes, keys are 'name = value', tables are [name] and arrays of"
            f" tables [[name]]; see docs/scenarios.md)") from exc


def _check_top_level(doc: dict[str, Any], source: str) -> None:
    for key, value in doc.items():
        known = all_sections()
        if key not in known:
            if not isinstance(value, dict | list):
                owner = _owning_section(key)
                hint = (f" It looks like a key of [{owner}]: move it below a [{owner}] line."
                        if owner else "")
                raise ScenarioError(
                    source, key, f"'{key} = ...' is outside any section; every key belongs to a"
                    f" [section].{hint}")
            raise ScenarioError(
                source, key, f"unknown section [{key}].{_suggest(key, known)} Known"
                f" sections: {', '.join(known)}")
        if key in _ARRAY_SECTIONS and not isinstance(value, list):
            raise ScenarioError(
                source, key, f"[{key}] must be an array of tables: write [[{key}]] (double"
                f" brackets) once per {key}")
        if key in _ARRAY_SECTIONS and not all(isinstance(item, dict) for item in value):
            raise ScenarioError(
                source, key, f"'{key}' must be an array of tables written as [[{key}]] blocks,"
                f" not an inline array of values")
        if key not in _ARRAY_SECTIONS and not isinstance(value, dict):
            raise ScenarioError(
                source, key, f"[{key}] must be a single table: write [{key}] (single brackets)"
                " once")


def _owning_section(key: str) -> str | None:
    for section, cls in (("scenario", _Header), ("clock", ClockSettings)):
        if key in {f.name for f in dataclasses.fields(cls)}:
            return section
    return None


def _suggest(key: str, valid: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


def _build(cls: type[T], table: Any, key: str, source: str) -> T:
    """Build dataclass ``cls`` from a TOML table, validating keys, types and bounds."""
    if not isinstance(table, dict):
        raise ScenarioError(source, key, f"expected a table ([{key}] or key = {{ ... }}),"
                            f" got {_toml_type(table)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    for name in table:
        if name not in fields:
            raise ScenarioError(
                source, f"{key}.{name}", f"unknown key.{_suggest(name, fields)} Valid keys"
                f" of {_describe_table(key)}: {', '.join(fields)}")
    kwargs: dict[str, Any] = {}
    for name, spec in fields.items():
        path = f"{key}.{name}"
        if name in table:
            kwargs[name] = _coerce(table[name], hints[name], path, source, spec.metadata)
        elif spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
            raise ScenarioError(
                source, path, f"missing required key: add '{name} = ...' to"
                f" {_describe_table(key)}, expected {_describe_type(hints[name], spec.metadata)}")
    try:
        return cls(**kwargs)
    except ScenarioError:
        raise
    except ValueError as exc:
        blamed = getattr(exc, "field", None)
        raise ScenarioError(source, f"{key}.{blamed}" if blamed else key, str(exc)) from exc


def _describe_table(key: str) -> str:
    found = re.fullmatch(r"(\w+)\[(\d+)\]", key)
    if found:
        ordinal = int(found.group(2)) + 1
        return f"the [[{found.group(1)}]] table #{ordinal} (counting from 1)"
    return f"[{key}]"


def _non_none_args(tp: Any) -> tuple[Any, ...] | None:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return tuple(arg for arg in typing.get_args(tp) if arg is not type(None))
    return None


def _matches(value: Any, tp: Any) -> bool:
    if tp is Any:
        return True
    options = _non_none_args(tp)
    if options is not None:  # isinstance() refuses a union holding tuple[float, ...]
        return any(_matches(value, option) for option in options)
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if typing.get_origin(tp) in (tuple, list):
        return isinstance(value, list)
    if dataclasses.is_dataclass(tp) or typing.get_origin(tp) in (dict, Mapping):
        return isinstance(value, dict)
    return isinstance(value, tp)


def _coerce(value: Any, tp: Any, path: str, source: str, meta: Mapping[str, Any]) -> Any:
    """Check ``value`` against annotation ``tp`` and field bounds; return the Python value."""
    options = _non_none_args(tp)
    if options is not None:
        for option in options:
            if _matches(value, option):
                return _coerce(value, option, path, source, meta)
        raise _type_error(value, tp, path, source, meta)
    if not _matches(value, tp):
        raise _type_error(value, tp, path, source, meta)
    origin = typing.get_origin(tp)
    if origin in (tuple, list):
        item_type = typing.get_args(tp)[0] if typing.get_args(tp) else Any
        items = [_coerce(item, item_type, f"{path}[{i}]", source, meta)
                 for i, item in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path, source)
    if tp is float:
        value = float(value)
        if not math.isfinite(value):
            raise ScenarioError(source, path, f"{value} is not a finite number: expected"
                                f" {_describe_type(tp, meta)}")
    if tp in (float, int):
        _check_bounds(value, path, source, meta)
    if "choices" in meta and value not in meta["choices"]:
        allowed = meta["choices"]
        suggestion = _suggest(str(value), map(str, allowed))
        raise ScenarioError(source, path, f"{value!r} is not allowed.{suggestion} Expected one"
                            f" of: {', '.join(map(repr, allowed))}")
    return value


def _check_bounds(value: float, path: str, source: str, meta: Mapping[str, Any]) -> None:
    name = path.rsplit(".", 1)[-1]
    unit = f" {meta['unit']}" if meta.get("unit") not in (None, "1") else ""
    low = ("min", "<=") if "min" in meta else ("gt", "<") if "gt" in meta else None
    high = ("max", "<=") if "max" in meta else ("lt", "<") if "lt" in meta else None
    too_low = low is not None and (value < meta[low[0]] if low[0] == "min"
                                   else value <= meta[low[0]])
    too_high = high is not None and (value > meta[high[0]] if high[0] == "max"
                                     else value >= meta[high[0]])
    if too_low or too_high:
        expected = name
        if low is not None:
            expected = f"{_fmt(meta[low[0]])} {low[1]} {expected}"
        if high is not None:
            expected = f"{expected} {high[1]} {_fmt(meta[high[0]])}"
        raise ScenarioError(source, path, f"{_fmt(value)}{unit} is out of range: expected"
                            f" {expected}{unit}")


def _fmt(number: float) -> str:
    return f"{number:g}" if isinstance(number, float) else str(number)


def _type_error(value: Any, tp: Any, path: str, source: str,
                meta: Mapping[str, Any]) -> ScenarioError:
    hint = ""
    if tp is int and isinstance(value, float) and value.is_integer():
        hint = f" (write {int(value)}, without the decimal point)"
    elif isinstance(value, str) and _matches(_maybe_number(value), tp):
        hint = f" (write {value} without quotes)"
    return ScenarioError(source, path, f"{value!r} is {_toml_type(value)}: expected"
                         f" {_describe_type(tp, meta)}{hint}")


def _maybe_number(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def _toml_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, datetime):
        return "a date-time"
    return type(value).__name__


def _describe_type(tp: Any, meta: Mapping[str, Any]) -> str:
    options = _non_none_args(tp)
    if options is not None:
        return " or ".join(_describe_type(option, meta) for option in options)
    unit = f" in {meta['unit']}" if meta.get("unit") not in (None, "1") else ""
    if tp in (float, int):
        low = (f"{_fmt(meta['min'])} <= " if "min" in meta
               else f"{_fmt(meta['gt'])} < " if "gt" in meta else "")
        high = (f" <= {_fmt(meta['max'])}" if "max" in meta
                else f" < {_fmt(meta['lt'])}" if "lt" in meta else "")
        bounds = f" ({low}value{high})" if low or high else ""
        return f"{'a number' if tp is float else 'an integer'}{unit}{bounds}"
    if tp is str:
        return "a string in quotes"
    if tp is bool:
        return "true or false"
    if tp is datetime:
        return "a date-time"
    if typing.get_origin(tp) in (tuple, list):
        args = typing.get_args(tp)
        return f"an array of {_describe_type(args[0], meta) if args else 'values'}s"
    if dataclasses.is_dataclass(tp):
        return "a table"
    return getattr(tp, "__name__", str(tp))


# --------------------------------------------------------------------------------------------
# Groups and epoch


def _check_group_names(source: str, walkers: list[WalkerShell],
                       sun_synchronous: list[SunSynchronousShell],
                       tle_groups: list[_TleGroup]) -> None:
    seen: dict[str, str] = {}
    keyed = [*((f"walker[{i}]", g.name) for i, g in enumerate(walkers)),
             *((f"sun_synchronous[{i}]", g.name) for i, g in enumerate(sun_synchronous)),
             *((f"tle[{i}]", g.name) for i, g in enumerate(tle_groups))]
    for key, name in keyed:
        if not name.strip():
            raise ScenarioError(source, f"{key}.name", "the group name is empty: give each"
                                " group a short unique name, e.g. name = \"mid-53\"")
        if name in seen:
            raise ScenarioError(source, f"{key}.name", f"group name {name!r} is already used by"
                                f" {seen[name]}: group names must be unique")
        seen[name] = key


def _check_generated_count(source: str, walkers: list[WalkerShell],
                           sun_synchronous: list[SunSynchronousShell]) -> None:
    # Checked before generating so a typo like planes = 100000 fails fast, not after minutes.
    total = 0
    for key, shell in [*((f"walker[{i}]", s) for i, s in enumerate(walkers)),
                       *((f"sun_synchronous[{i}]", s) for i, s in enumerate(sun_synchronous))]:
        total += shell.total_satellites
        if total > MAX_SATELLITES:
            raise ScenarioError(
                source, key, f"this shell brings the scenario to {total:,} satellites, more than"
                f" the limit of {MAX_SATELLITES:,}: check planes and sats_per_plane")


_EPOCH_HELP = ("expected an ISO-8601 UTC date-time such as \"2026-03-20T12:00:00Z\", \"now\", or"
               " \"tle\" (the catalog's epoch)")


def _resolve_epoch(raw: str | datetime | None, catalogs: list[list[TleEntry]],
                   source: str) -> datetime:
    key = "scenario.epoch"
    if raw is None or raw == "tle":
        entries = [entry for catalog in catalogs for entry in catalog]
        if not entries:
            why = "is missing" if raw is None else "is \"tle\" but there is no [[tle]] catalog"
            raise ScenarioError(source, key, f"{why}: {_EPOCH_HELP}")
        latest = max(entry.epoch_utc for entry in entries)
        return _check_epoch_range(_round_to_minute(latest), source)
    if raw == "now":
        return _check_epoch_range(datetime.now(UTC).replace(microsecond=0), source)
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw.strip())
        except ValueError as exc:
            raise ScenarioError(source, key, f"{raw!r} is not a date-time: {_EPOCH_HELP}"
                                ) from exc
    else:
        parsed = raw
    if parsed.tzinfo is None:
        raise ScenarioError(source, key, f"{raw!s} has no time zone: add 'Z' for UTC, e.g."
                            f" \"{parsed.isoformat()}Z\"")
    try:
        epoch = parsed.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 pushed past the calendar by its time zone
        epoch = EARLIEST_EPOCH_UTC.replace(year=1) if parsed.year < 1957 else datetime.max
    return _check_epoch_range(epoch.replace(tzinfo=UTC), source, shown=str(raw))


def _check_epoch_range(epoch: datetime, source: str, shown: str | None = None) -> datetime:
    if not EARLIEST_EPOCH_UTC <= epoch <= EPHEMERIS_END_UTC:
        raise ScenarioError(
            source, "scenario.epoch", f"{shown or epoch.isoformat()} is outside"
            f" {EARLIEST_EPOCH_UTC:%Y-%m-%d} to {EPHEMERIS_END_UTC:%Y-%m-%d} UTC: SGP4"
            f" elements start in 1957 and the Sun ephemeris (DE421) the twin uses ends on"
            f" {EPHEMERIS_END_UTC:%Y-%m-%d}")
    return epoch


def _check_tle_ages(epoch: datetime, catalogs: list[list[TleEntry]], source: str) -> None:
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


def _round_to_minute(moment: datetime) -> datetime:
    return (moment + timedelta(seconds=30)).replace(second=0, microsecond=0)


# --------------------------------------------------------------------------------------------
# TLE catalogs

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
class TleEntry:
    """One satellite read from a TLE catalog (name, WGS72 satrec, element epoch in UTC)."""

    name: str
    satrec: Satrec
    epoch_utc: datetime


def _read_tle_group(group: _TleGroup, key: str, source: str, base_dir: Path) -> list[TleEntry]:
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

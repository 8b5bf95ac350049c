"""Scenario files: load and parse a TOML scenario into satellites, stations and settings.

A scenario names its epoch, random seed and clock, lists generated shells (``[[walker]]``,
``[[sun_synchronous]]``), TLE catalogs (``[[tle]]``) and ground stations (``[[station]]``),
and carries raw tables (``[thermal]``, ``[power]``, ...) that later subsystems validate with
``parse_section``. Every problem is reported as a ``ScenarioError`` that names the file, the
key path (``walker[1].altitude_km``, 0-based indices), what is wrong and what is expected.
The reference for every key is docs/scenarios.md.

This module reads the whole file and holds what it becomes (``Scenario``, ``Satellite``,
``GroundStation``, ``ClockSettings``); the tables are built by ``twin.scenario.sections``,
TLE catalogs read by ``twin.scenario.tle`` and the epoch resolved by ``twin.scenario.epoch``.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sgp4.api import Satrec

from twin.astro.constellation import ShellElements, SunSynchronousShell, WalkerShell
from twin.core.assets import assets_dir
from twin.core.clock import MAX_RATE_HZ, MAX_WARP, MIN_RATE_HZ, MIN_WARP, check_step
from twin.scenario.cluster import Cluster, ClusterSpec
from twin.scenario.epoch import resolve_epoch
from twin.scenario.errors import InvalidField, ScenarioError, suggest
from twin.scenario.files import read_bounded
from twin.scenario.node_class import NodeClass, parse_node_classes
from twin.scenario.sections import build
from twin.scenario.tle import TleGroup, check_tle_ages, read_tle_group

ASSETS_DIR: Path = assets_dir()
"""The bundled assets: the checkout's assets/ folder, or the installed odc_assets package."""
SCENARIOS_DIR: Path = ASSETS_DIR / "scenarios"
"""Where bundled scenarios live: ``load_scenario("default")`` reads default.toml here."""

MAX_SCENARIO_BYTES = 1 << 20
"""A scenario file is a few kB of hand-written TOML; 1 MiB is far past any real one."""
MAX_SATELLITES = 1_000_000
"""More satellites than this is almost surely a typo: a million (the ``megafleet`` scenario,
the size of the 2026 FCC filing for orbital data centres) is the largest fleet the twin is
built and measured for (docs/performance.md, "A million satellites")."""
GENERATED_NORAD_BASE = 90_000
"""Catalog numbers of generated satellites start here, above today's real catalog (~60,000).
Numbers above 99,999 are valid Alpha-5 numbers in SGP4."""

_SINGLE_SECTIONS = ("scenario", "clock", "security")
_ARRAY_SECTIONS = ("walker", "sun_synchronous", "tle", "station", "node_class", "cluster",
                   "timeline", "rule")
_AUTONOMY_SECTIONS = ("timeline", "rule")
"""Kept raw in ``Scenario.autonomy``; checked against the field and command catalogs when
the twin starts (twin.autonomy)."""
_RAW_SECTIONS = ("economics",)
"""Tables kept raw for a part outside the models (``[economics]``: twin.economics parses
it with ``parse_section``, so its keys are checked where they are used)."""


def model_sections() -> tuple[str, ...]:
    """The models' tables (twin.models.registry), kept raw in ``Scenario.sections`` for each
    model to parse with parse_section."""
    # Imported here: the models import this module.
    from twin.models.registry import scenario_sections

    return scenario_sections()


def all_sections() -> tuple[str, ...]:
    """Every table a scenario may hold."""
    return _SINGLE_SECTIONS + _ARRAY_SECTIONS + model_sections() + _RAW_SECTIONS


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
class GeneratedSource:
    """Where a generated satellite's satrec comes from: its shell's element arrays.

    One is shared by every member of a shell, so a million generated satellites hold no
    satrec (about 1 kB each) until one is asked for.

    Attributes:
        elements: The shell's elements, one row per member.
        first_sat_id: sat_id of the shell's first member (row 0).
    """

    elements: ShellElements = field(repr=False)
    first_sat_id: int


@dataclass(frozen=True, slots=True, init=False)
class Satellite:
    """One satellite of the scenario.

    Attributes:
        sat_id: Index 0..n-1, unique within the scenario: the key every subsystem uses.
        name: Display name (generated ``GROUP-PP-SS`` or the TLE's name line).
        group: Name of the ``[[walker]]``/``[[sun_synchronous]]``/``[[tle]]`` table.
        norad_id: Catalog number (TLE's, or ``GENERATED_NORAD_BASE + n`` when generated).
        source: The satrec itself (TLE, cluster), or the generated shell it is built from.
        satrec: SGP4 elements on WGS72 (a property: a generated satellite's is built anew on
            each access from its shell's arrays, so keep it if you use it twice).
    """

    sat_id: int
    name: str
    group: str
    norad_id: int
    source: Satrec | GeneratedSource

    def __init__(self, sat_id: int, name: str, group: str, norad_id: int,
                 satrec: Satrec | None = None, source: Satrec | GeneratedSource | None = None,
                 ) -> None:
        # satrec= wins over source= so that dataclasses.replace(sat, satrec=other) works.
        chosen = satrec if satrec is not None else source
        if chosen is None:
            raise TypeError("Satellite needs satrec= or source=")
        object.__setattr__(self, "sat_id", sat_id)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "group", group)
        object.__setattr__(self, "norad_id", norad_id)
        object.__setattr__(self, "source", chosen)

    @property
    def satrec(self) -> Satrec:
        """SGP4 elements on WGS72."""
        source = self.source
        if isinstance(source, GeneratedSource):
            return source.elements.satrec(self.sat_id - source.first_sat_id, self.norad_id)
        return source


def mean_semi_major_axes_km(satellites: Sequence[Satellite]) -> np.ndarray:
    """SGP4's mean semi-major axis of every satellite (km, ``satrec.a`` times the Earth radius).

    A generated shell's members share it (it depends on altitude and inclination, not on the
    angles), so one satrec per shell is built instead of one per satellite: a second saved
    at a million.
    """
    by_shell: dict[int, float] = {}
    out = np.empty(len(satellites))
    for i, sat in enumerate(satellites):
        source = sat.source
        if isinstance(source, GeneratedSource):
            a_km = by_shell.get(id(source))
            if a_km is None:
                satrec = sat.satrec
                a_km = by_shell[id(source)] = satrec.a * satrec.radiusearthkm
            out[i] = a_km
        else:
            out[i] = source.a * source.radiusearthkm
    return out


@dataclass(frozen=True)
class ClockSettings:
    """How the twin's clock advances.

    Attributes:
        rate_hz: Steps (and publishes) per wall-clock second (Hz).
        warp: Simulated seconds per wall-clock second (1 = real time).
        control_period_s: Longest stretch of simulated time the control loop (compute, power,
            thermal) is stepped over at once: a longer step is cut into equal sub-steps no
            longer than this, so the step (the warp) does not change the results
            (docs/models.md, "Step-size independence").
    """

    rate_hz: float = field(default=10.0,
                           metadata={"min": MIN_RATE_HZ, "max": MAX_RATE_HZ, "unit": "Hz"})
    warp: float = field(default=1.0, metadata={"min": MIN_WARP, "max": MAX_WARP, "unit": "s/s"})
    control_period_s: float = field(default=6.0, metadata={"min": 0.1, "max": 600.0,
                                                             "unit": "s"})

    def __post_init__(self) -> None:
        # The same bounds as SimClock and the warp/rate commands (twin.core.clock).
        try:
            check_step(self.warp, self.rate_hz)
        except ValueError as exc:
            raise InvalidField("warp", str(exc)) from None

    @property
    def step_s(self) -> float:
        """Simulated seconds per step (s)."""
        return self.warp / self.rate_hz


@dataclass(frozen=True)
class SecuritySettings:
    """Keys and audit for a twin started on this scenario (``odc run --keys`` overrides).

    Attributes:
        keys: The key folder (docs/security.md); relative to the scenario file. Empty: no
            keys, the twin listens on loopback only.
        audit: The audit file; relative to the scenario file. Empty: ``KEYS/audit.jsonl``
            with keys, none without.
    """

    keys: str = field(default="", metadata={"unit": "path"})
    audit: str = field(default="", metadata={"unit": "path"})


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
        security: Keys and audit (``[security]``), paths resolved against the file's folder.
        node_classes: Per-node parameters (``[[node_class]]``, twin.scenario.node_class).
        clusters: Formation clusters (``[[cluster]]``), their members among ``satellites``.
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
    security: SecuritySettings = field(default_factory=SecuritySettings)
    node_classes: tuple[NodeClass, ...] = ()
    clusters: tuple[Cluster, ...] = ()
    autonomy: Mapping[str, Any] = field(default_factory=dict)
    """``[[timeline]]`` and ``[[rule]]`` tables as written (twin.autonomy checks them)."""

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
    return parse_scenario_document(_parse_toml(text, source), source, base_dir)


def parse_scenario_document(doc: dict[str, Any], source: str = "<string>",
                            base_dir: Path | None = None) -> Scenario:
    """Validate a scenario already read from TOML (a sweep edits keys of one, then builds
    it here); arguments, result and errors as ``parse_scenario``."""
    base_dir = base_dir if base_dir is not None else Path.cwd()
    _check_top_level(doc, source)

    header = build(_Header, doc.get("scenario", {}), "scenario", source)
    clock = build(ClockSettings, doc.get("clock", {}), "clock", source)
    security = build(SecuritySettings, doc.get("security", {}), "security", source)
    security = SecuritySettings(*(str(base_dir / path) if path else ""
                                  for path in (security.keys, security.audit)))
    walkers = [build(WalkerShell, table, f"walker[{i}]", source)
               for i, table in enumerate(doc.get("walker", []))]
    sun_synchronous = [build(SunSynchronousShell, table, f"sun_synchronous[{i}]", source)
                       for i, table in enumerate(doc.get("sun_synchronous", []))]
    tle_groups = [build(TleGroup, table, f"tle[{i}]", source)
                  for i, table in enumerate(doc.get("tle", []))]
    stations = tuple(build(GroundStation, table, f"station[{i}]", source)
                     for i, table in enumerate(doc.get("station", [])))
    cluster_specs = [build(ClusterSpec, table, f"cluster[{i}]", source)
                     for i, table in enumerate(doc.get("cluster", []))]

    _check_group_names(source, walkers, sun_synchronous, tle_groups, cluster_specs)
    _check_generated_count(source, walkers, sun_synchronous, cluster_specs)
    catalogs = [read_tle_group(group, f"tle[{i}]", source, base_dir)
                for i, group in enumerate(tle_groups)]
    epoch_utc = resolve_epoch(header.epoch, catalogs, source)
    check_tle_ages(epoch_utc, catalogs, source)

    satellites: list[Satellite] = []
    generated = 0
    shells: list[tuple[WalkerShell | SunSynchronousShell, str]] = [
        *((shell, f"walker[{i}]") for i, shell in enumerate(walkers)),
        *((shell, f"sun_synchronous[{i}]") for i, shell in enumerate(sun_synchronous))]
    for shell, key in shells:
        elements = shell.elements(epoch_utc)
        first = len(satellites)
        try:
            # One satrec per shell is built here to check the elements: every member shares
            # the shell's altitude and inclination, only the angles differ.
            elements.satrec(0, GENERATED_NORAD_BASE + generated)
        except ValueError as exc:
            raise ScenarioError(source, key, f"sgp4init rejected the shell's elements ({exc})"
                                ) from exc
        origin = GeneratedSource(elements, first)
        names = _member_names(shell.name, elements)
        satellites.extend(
            Satellite(first + i, name, shell.name, GENERATED_NORAD_BASE + generated + i,
                      source=origin)
            for i, name in enumerate(names))
        generated += len(names)
    clusters: list[Cluster] = []
    for i, spec in enumerate(cluster_specs):
        try:
            chief = spec.chief_satrec(GENERATED_NORAD_BASE + generated, epoch_utc)
        except ValueError as exc:
            raise ScenarioError(source, f"cluster[{i}]", str(exc)) from exc
        first = len(satellites)
        # Every member carries the chief's elements: the orbit model propagates the chief by
        # SGP4 and places the members by their relative motion (twin.models.formation).
        for k in range(spec.members):
            satellites.append(Satellite(
                sat_id=len(satellites), name=f"{spec.name}-{k:02d}", group=spec.name,
                norad_id=GENERATED_NORAD_BASE + generated, satrec=chief))
            generated += 1
        clusters.append(Cluster(spec, f"cluster[{i}]",
                                tuple(range(first, first + spec.members))))
    for group, catalog in zip(tle_groups, catalogs, strict=True):
        for entry in catalog:
            satellites.append(Satellite(sat_id=len(satellites), name=entry.name,
                                        group=group.name, norad_id=entry.satrec.satnum,
                                        satrec=entry.satrec))

    if not satellites:
        raise ScenarioError(
            source, "", "the scenario has no satellites: add a [[walker]], [[sun_synchronous]],"
            " [[cluster]] or [[tle]] table (see docs/scenarios.md)")
    if len(satellites) > MAX_SATELLITES:
        raise ScenarioError(
            source, "tle", f"{len(satellites):,} satellites is more than the limit of"
            f" {MAX_SATELLITES:,}: use 'limit = N' in [[tle]] to take the first N")

    from twin.models.registry import parameter_sections  # the models import this module

    node_classes = parse_node_classes(doc.get("node_class", []), satellites,
                                      parameter_sections(), source)
    sections = types.MappingProxyType(
        {name: types.MappingProxyType(doc[name])
         for name in model_sections() + _RAW_SECTIONS if name in doc})
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
        security=security,
        node_classes=node_classes,
        clusters=tuple(clusters),
        autonomy=types.MappingProxyType({k: doc[k] for k in _AUTONOMY_SECTIONS if k in doc}),
    )


def _member_names(group: str, elements: ShellElements) -> list[str]:
    """``GROUP-PP-SS`` for every member (1-based plane and slot, at least two digits)."""
    planes = [f"{group}-{k:02d}-" for k in range(1, int(elements.plane_index.max()) + 2)]
    slots = [f"{j:02d}" for j in range(1, int(elements.slot_index.max()) + 2)]
    return [planes[k] + slots[j] for k, j in zip(elements.plane_index.tolist(),
                                                 elements.slot_index.tolist(), strict=True)]


# --------------------------------------------------------------------------------------------
# TOML and the top level


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
                source, key, f"unknown section [{key}].{suggest(key, known)} Known"
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


# --------------------------------------------------------------------------------------------
# Groups


def _check_group_names(source: str, walkers: list[WalkerShell],
                       sun_synchronous: list[SunSynchronousShell],
                       tle_groups: list[TleGroup], clusters: list[ClusterSpec]) -> None:
    seen: dict[str, str] = {}
    keyed = [*((f"walker[{i}]", g.name) for i, g in enumerate(walkers)),
             *((f"sun_synchronous[{i}]", g.name) for i, g in enumerate(sun_synchronous)),
             *((f"cluster[{i}]", g.name) for i, g in enumerate(clusters)),
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
                           sun_synchronous: list[SunSynchronousShell],
                           clusters: list[ClusterSpec]) -> None:
    # Checked before generating so a typo like planes = 100000 fails fast, not after minutes.
    total = 0
    for key, shell in [*((f"walker[{i}]", s) for i, s in enumerate(walkers)),
                       *((f"sun_synchronous[{i}]", s) for i, s in enumerate(sun_synchronous)),
                       *((f"cluster[{i}]", s) for i, s in enumerate(clusters))]:
        total += (shell.members if isinstance(shell, ClusterSpec)
                  else shell.total_satellites)
        if total > MAX_SATELLITES:
            raise ScenarioError(
                source, key, f"this shell brings the scenario to {total:,} satellites, more than"
                f" the limit of {MAX_SATELLITES:,}: check planes and sats_per_plane")

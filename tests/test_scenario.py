"""Tests for scenario files: bundled scenarios, validation messages, TLE catalogs, sections."""

from __future__ import annotations

import dataclasses
import textwrap
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from twin.astro.constellation import EARTH_RADIUS_KM
from twin.scenario import (
    ASSETS_DIR,
    InvalidField,
    Scenario,
    ScenarioError,
    bundled_scenarios,
    load_scenario,
    parse_scenario,
    parse_section,
)
from twin.scenario.loader import GENERATED_NORAD_BASE
from twin.scenario.tle import TLE_LINE2_TEMPLATE

CATALOG = ASSETS_DIR / "tle" / "starlink-2023-07-18.tle"

# A small valid scenario the malformed cases start from.
VALID = """\
[scenario]
name = "test"
epoch = "2026-03-20T12:00:00Z"
seed = 7

[clock]
rate_hz = 10.0
warp = 60.0

[[walker]]
name = "a"
altitude_km = 550.0
inclination_deg = 53.0
planes = 3
sats_per_plane = 2
phasing = 1

[[station]]
name = "Svalbard"
lat_deg = 78.23
lon_deg = 15.41
"""


def _write(tmp_path: Path, text: str, name: str = "case.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _load_error(tmp_path: Path, text: str) -> tuple[ScenarioError, Path]:
    path = _write(tmp_path, text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(str(path))
    return caught.value, path


# ------------------------------------------------------------------------------------------
# Bundled scenarios


def test_bundled_scenarios_are_listed():
    assert {"default", "starlink"} <= set(bundled_scenarios())


def test_megafleet_is_a_million_in_the_filings_ranges():
    # Read as TOML only: generating a million belongs in bench/scale.py --load, not here.
    import tomllib

    from twin.scenario.loader import MAX_SATELLITES, SCENARIOS_DIR

    doc = tomllib.loads((SCENARIOS_DIR / "megafleet.toml").read_text())
    shells = doc["walker"] + doc["sun_synchronous"]
    assert sum(s["planes"] * s["sats_per_plane"] for s in shells) == 1_000_000
    assert MAX_SATELLITES >= 1_000_000
    assert all(500.0 <= s["altitude_km"] <= 2000.0 for s in shells)
    assert {s["inclination_deg"] for s in doc["walker"]} == {30.0}
    assert len(doc["sun_synchronous"]) >= 2
    default = tomllib.loads((SCENARIOS_DIR / "default.toml").read_text())
    assert doc["station"] == default["station"]


def test_generated_satellites_past_the_satrec_catalog_range_still_propagate():
    # Catalog numbers above 339,999 do not fit a satrec (Alpha-5); the satellite keeps its
    # own unique norad_id and its satrec carries the largest number SGP4 accepts.
    scenario = parse_scenario(VALID.replace("planes = 3", "planes = 501").replace(
        "sats_per_plane = 2", "sats_per_plane = 500").replace("phasing = 1", "phasing = 0"))
    last = scenario.satellites[-1]
    assert last.norad_id == GENERATED_NORAD_BASE + len(scenario.satellites) - 1 > 339_999
    assert last.satrec.satnum == 339_999
    error, position_km, _ = last.satrec.sgp4(last.satrec.jdsatepoch, 0.5)
    assert error == 0 and 6900.0 < sum(x * x for x in position_km) ** 0.5 < 7000.0
    assert dataclasses.replace(last, satrec=scenario.satellites[0].satrec).satrec.satnum \
        == GENERATED_NORAD_BASE


def test_default_scenario_is_a_24_to_48_node_pilot():
    scenario = load_scenario("default")
    assert scenario.name == "default"
    assert 24 <= len(scenario.satellites) <= 48
    assert [sat.sat_id for sat in scenario.satellites] == list(range(len(scenario.satellites)))
    assert len(scenario.stations) >= 4
    assert scenario.epoch_utc == datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
    assert scenario.seed == 42
    assert (scenario.clock.rate_hz, scenario.clock.warp) == (10.0, 60.0)
    assert set(scenario.groups) == {"mid-53", "dawn-dusk"}
    assert scenario.source == str(ASSETS_DIR / "scenarios" / "default.toml")
    svalbard = next(s for s in scenario.stations if "Svalbard" in s.name)
    assert (svalbard.lat_deg, svalbard.lon_deg) == (78.23, 15.41)
    dawn_dusk = [sat for sat in scenario.satellites if sat.group == "dawn-dusk"]
    assert all(97.9 < sat.satrec.inclo * 180 / 3.141592653589793 < 98.1 for sat in dawn_dusk)


def test_starlink_scenario_loads_the_whole_catalog_at_its_epoch():
    scenario = load_scenario("starlink")
    assert len(scenario.satellites) == 4428
    assert len(scenario.stations) >= 4
    assert scenario.clock.warp == 1.0
    latest_jd = max(sat.satrec.jdsatepoch + sat.satrec.jdsatepochF
                    for sat in scenario.satellites)
    latest = datetime(1949, 12, 31, tzinfo=UTC) + timedelta(days=latest_jd - 2433281.5)
    assert abs(scenario.epoch_utc - latest) <= timedelta(seconds=30)
    assert scenario.epoch_utc.second == 0 and scenario.epoch_utc.date().isoformat() == "2023-07-18"
    first = scenario.satellites[0]
    assert (first.name, first.norad_id, first.group) == ("STARLINK-1007", 44713, "starlink")


def test_loading_is_deterministic():
    first, second = load_scenario("default"), load_scenario("default")
    for a, b in zip(first.satellites, second.satellites, strict=True):
        assert (a.sat_id, a.name, a.norad_id) == (b.sat_id, b.name, b.norad_id)
        assert (a.satrec.inclo, a.satrec.nodeo, a.satrec.mo, a.satrec.no_kozai) == (
            b.satrec.inclo, b.satrec.nodeo, b.satrec.mo, b.satrec.no_kozai)
        jd, fraction = a.satrec.jdsatepoch, a.satrec.jdsatepochF + 0.25
        assert a.satrec.sgp4(jd, fraction) == b.satrec.sgp4(jd, fraction)


def test_generated_satellites_fly_at_the_requested_altitude():
    scenario = parse_scenario(VALID)
    error, position_km, _ = scenario.satellites[0].satrec.sgp4_tsince(0.0)
    assert error == 0
    assert 530.0 < sum(c * c for c in position_km) ** 0.5 - EARTH_RADIUS_KM < 570.0


# ------------------------------------------------------------------------------------------
# Valid variations


def test_string_scenario_defaults():
    scenario = parse_scenario(VALID.replace('name = "test"\n', ""))
    assert isinstance(scenario, Scenario)
    assert (scenario.name, scenario.source, scenario.seed) == ("unnamed", "<string>", 7)
    assert [sat.name for sat in scenario.satellites[:3]] == ["a-01-01", "a-01-02", "a-02-01"]
    assert scenario.satellites[0].norad_id == GENERATED_NORAD_BASE
    station = scenario.stations[0]
    assert (station.alt_m, station.min_elevation_deg, station.downlink_bps) == (0.0, 5.0, 1e9)
    assert scenario.sections == {}


def test_epoch_forms():
    native = parse_scenario(VALID.replace('"2026-03-20T12:00:00Z"', "2026-03-20T14:00:00+02:00"))
    assert native.epoch_utc == datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
    now = parse_scenario(VALID.replace('"2026-03-20T12:00:00Z"', '"now"'))
    assert abs(now.epoch_utc - datetime.now(UTC)) < timedelta(seconds=5)


def test_mixed_scenario_generated_first_then_tle_at_catalog_epoch(tmp_path: Path):
    text = VALID.replace('epoch = "2026-03-20T12:00:00Z"\n', "") + textwrap.dedent(f"""
        [[sun_synchronous]]
        name = "dd"
        altitude_km = 650.0
        ltan_h = [18.0, 6.0]
        sats_per_plane = 2

        [[tle]]
        name = "starlink"
        path = "{CATALOG}"
        limit = 5
        """)
    scenario = parse_scenario(text, base_dir=tmp_path)
    assert [sat.group for sat in scenario.satellites] == ["a"] * 6 + ["dd"] * 4 + ["starlink"] * 5
    assert [sat.sat_id for sat in scenario.satellites] == list(range(15))
    assert scenario.epoch_utc.date().isoformat() == "2023-07-18"  # epoch omitted -> catalog


def test_relative_tle_path_resolves_against_the_scenario_file(tmp_path: Path):
    (tmp_path / "tle").mkdir()
    lines = CATALOG.read_text().splitlines()[:6]
    (tmp_path / "tle" / "two.tle").write_text("\n".join(lines[1:3] + lines[4:6]) + "\n")
    path = _write(tmp_path, """\
        [[tle]]
        name = "two-line"
        path = "tle/two.tle"
        """)
    scenario = load_scenario(str(path))
    assert [sat.name for sat in scenario.satellites] == ["NORAD 44713", "NORAD 44714"]
    assert scenario.name == "case"


def test_subsystem_sections_are_kept_raw():
    scenario = parse_scenario(VALID + "\n[thermal]\nradiator_area_m2 = 4\n[power.panel]\nx = 1\n")
    assert dict(scenario.sections["thermal"]) == {"radiator_area_m2": 4}
    assert scenario.sections["power"]["panel"] == {"x": 1}
    assert "compute" not in scenario.sections


def test_station_longitude_is_normalised():
    scenario = parse_scenario(VALID.replace("lon_deg = 15.41", "lon_deg = 212.15"))
    assert scenario.stations[0].lon_deg == pytest.approx(-147.85)


# ------------------------------------------------------------------------------------------
# Malformed scenarios: each error names the file, the key path and the problem

MALFORMED = [
    pytest.param(VALID + '\n[[walker]]\nname = "b"\naltitude_km = 90.0\ninclination_deg = 53.0\n'
                 "planes = 1\nsats_per_plane = 1\n",
                 "walker[1].altitude_km", ["90 km is out of range", "160 <= altitude_km <= 40000"],
                 id="altitude-too-low"),
    pytest.param(VALID.replace("altitude_km", "altitude"), "walker[0].altitude",
                 ["unknown key", "Did you mean 'altitude_km'?"], id="unknown-key"),
    pytest.param(VALID + "\n[thermals]\nx = 1\n", "thermals",
                 ["unknown section", "Did you mean 'thermal'?"], id="unknown-section"),
    pytest.param(VALID.replace("planes = 3", 'planes = "3"'), "walker[0].planes",
                 ["is a string", "expected an integer", "without quotes"], id="quoted-number"),
    pytest.param(VALID.replace("planes = 3", "planes = 3.0"), "walker[0].planes",
                 ["expected an integer", "without the decimal point"], id="float-for-int"),
    pytest.param(VALID.replace("phasing = 1", "phasing = 3"), "walker[0].phasing",
                 ["0..planes-1 = 0..2"], id="phasing"),
    pytest.param(VALID.replace("inclination_deg = 53.0", "inclination_deg = 200.0"),
                 "walker[0].inclination_deg", ["0 <= inclination_deg <= 180 deg"],
                 id="inclination"),
    pytest.param(VALID.replace("sats_per_plane = 2", "sats_per_plane = 0"),
                 "walker[0].sats_per_plane", ["out of range", "1 <= sats_per_plane"],
                 id="zero-sats"),
    pytest.param(VALID.replace("lat_deg = 78.23", "lat_deg = 95.0"), "station[0].lat_deg",
                 ["-90 <= lat_deg <= 90 deg"], id="latitude"),
    pytest.param(VALID.replace("lon_deg = 15.41", "lon_deg = 400"), "station[0].lon_deg",
                 ["-180 <= lon_deg <= 360 deg"], id="longitude"),
    pytest.param(VALID + "min_elevation_deg = 95.0\n", "station[0].min_elevation_deg",
                 ["0 <= min_elevation_deg <= 90 deg"], id="mask"),
    pytest.param(VALID.replace("rate_hz = 10.0", "rate_hz = 0"), "clock.rate_hz",
                 ["0.01 <= rate_hz <= 1000 Hz"], id="rate-zero"),
    pytest.param(VALID.replace("rate_hz = 10.0", "rate_hz = 5000.0"), "clock.rate_hz",
                 ["out of range"], id="rate-high"),
    pytest.param(VALID.replace("warp = 60.0", "warp = -1.0"), "clock.warp",
                 ["0.001 <= warp <= 100000"], id="warp"),
    pytest.param(VALID.replace("altitude_km = 550.0", "altitude_km = nan"),
                 "walker[0].altitude_km", ["not a finite number"], id="nan"),
    pytest.param(VALID.replace("altitude_km = 550.0", "altitude_km = 5 50"), "",
                 ["TOML syntax error at line 12, column 17", "altitude_km = 5 50", "^"],
                 id="toml-syntax"),
    pytest.param(VALID.replace("2026-03-20T12:00:00Z", "2026-13-01T00:00:00Z"), "scenario.epoch",
                 ["not a date-time", "2026-03-20T12:00:00Z"], id="epoch-garbage"),
    pytest.param(VALID.replace("2026-03-20T12:00:00Z", "2026-03-20T12:00:00"), "scenario.epoch",
                 ["no time zone", "add 'Z'"], id="epoch-naive"),
    pytest.param(VALID.replace('epoch = "2026-03-20T12:00:00Z"\n', ""), "scenario.epoch",
                 ["is missing", "now"], id="epoch-missing"),
    pytest.param(VALID.replace('"2026-03-20T12:00:00Z"', '"tle"'), "scenario.epoch",
                 ["no [[tle]] catalog"], id="epoch-tle-without-catalog"),
    pytest.param(VALID.split("[[walker]]")[0], "", ["no satellites", "[[walker]]"],
                 id="no-satellites"),
    pytest.param(VALID.replace("planes = 3", "planes = 10000").replace(
        "sats_per_plane = 2", "sats_per_plane = 200"), "walker[0]",
                 ["2,000,000 satellites", "limit of 1,000,000"], id="too-many"),
    pytest.param(VALID.replace("[[walker]]", "[walker]"), "walker", ["double brackets"],
                 id="single-brackets"),
    pytest.param(VALID.replace("altitude_km = 550.0\n", ""), "walker[0].altitude_km",
                 ["missing required key", "table #1", "a number in km (160 <= value <= 40000)"],
                 id="missing-key"),
    pytest.param(VALID + '\n[[sun_synchronous]]\nname = "a"\naltitude_km = 650.0\nltan_h = 18.0\n'
                 "sats_per_plane = 1\n", "sun_synchronous[0].name",
                 ["'a' is already used by walker[0]"], id="duplicate-group"),
    pytest.param(VALID + '\n[[sun_synchronous]]\nname = "b"\naltitude_km = 7000.0\nltan_h = 18.0\n'
                 "sats_per_plane = 1\n", "sun_synchronous[0].altitude_km",
                 ["no sun-synchronous orbit exists"], id="sso-too-high"),
    pytest.param(VALID + '\n[[sun_synchronous]]\nname = "b"\naltitude_km = 650.0\nltan_h = 24.5\n'
                 "sats_per_plane = 1\n", "sun_synchronous[0].ltan_h",
                 ["0 <= ltan_h < 24 h"], id="ltan-range"),
    pytest.param(VALID + '\n[[sun_synchronous]]\nname = "b"\naltitude_km = 650.0\n'
                 'ltan_h = [18.0, "6"]\nsats_per_plane = 1\n', "sun_synchronous[0].ltan_h[1]",
                 ["is a string"], id="ltan-list-item"),
    pytest.param(VALID + '\n[[sun_synchronous]]\nname = "b"\naltitude_km = 650.0\n'
                 "ltan_h = [18.0, 6.0]\nplanes = 3\nsats_per_plane = 1\n",
                 "sun_synchronous[0].planes", ["lists 2 local times"], id="ltan-list-planes"),
    pytest.param('seed = 1\n' + VALID, "seed", ["outside any section", "[scenario]"],
                 id="key-outside-section"),
    pytest.param(VALID + '\n[[tle]]\nname = "t"\npath = "missing.tle"\n', "tle[0].path",
                 ["cannot read TLE file", "missing.tle"], id="tle-missing-file"),
    pytest.param(VALID + '\n[[tle]]\nname = "t"\npath = "x.tle"\nlimit = 0\n', "tle[0].limit",
                 ["1 <= limit"], id="tle-limit"),
]


@pytest.mark.parametrize(("text", "key", "fragments"), MALFORMED)
def test_malformed_scenario_is_explained(tmp_path: Path, text: str, key: str,
                                         fragments: list[str]):
    error, path = _load_error(tmp_path, text)
    assert error.file == str(path)
    assert error.key == key
    message = str(error)
    assert message.startswith(f"{path}: {key}" if key else f"{path}: ")
    for fragment in fragments:
        assert fragment in message, message


def test_missing_scenario_file_lists_bundled_names(tmp_path: Path):
    with pytest.raises(ScenarioError, match="default, megafleet, starlink") as caught:
        load_scenario(str(tmp_path / "nope.toml"))
    assert caught.value.file == str(tmp_path / "nope.toml")


# ------------------------------------------------------------------------------------------
# Malformed TLE catalogs


def _tle_case(tmp_path: Path, catalog_lines: list[str]) -> tuple[ScenarioError, Path]:
    tle_path = tmp_path / "bad.tle"
    tle_path.write_text("\n".join(catalog_lines) + "\n", encoding="utf-8")
    return _load_error(tmp_path, '[[tle]]\nname = "bad"\npath = "bad.tle"\n')


def test_tle_column_error_shows_the_template_above_the_bad_line(tmp_path: Path):
    lines = CATALOG.read_text().splitlines()[:6]
    lines[5] = lines[5][:8] + " 530.547" + lines[5][16:]  # decimal point moved
    error, _ = _tle_case(tmp_path, lines)
    message = str(error)
    assert error.key == "tle[0].path"
    assert f"{tmp_path / 'bad.tle'} line 6" in message
    assert "column 12 is '0' where the format has '.'" in message
    template_at = message.index(TLE_LINE2_TEMPLATE)
    assert template_at < message.index(lines[5])
    template_row = next(row for row in message.splitlines() if TLE_LINE2_TEMPLATE in row)
    quoted_row = next(row for row in message.splitlines() if lines[5] in row)
    assert template_row.index(TLE_LINE2_TEMPLATE) == quoted_row.index(lines[5])  # aligned
    # The caret sits under column 12 of the quoted line.
    quoted = next(line for line in message.splitlines() if lines[5] in line)
    caret = message.splitlines()[message.splitlines().index(quoted) + 1]
    assert caret.index("^") == quoted.index(lines[5]) + 11


def test_tle_checksum_error(tmp_path: Path):
    lines = CATALOG.read_text().splitlines()[:3]
    lines[1] = lines[1][:68] + str((int(lines[1][68]) + 1) % 10)
    error, _ = _tle_case(tmp_path, lines)
    assert "line 2" in str(error) and "checksum" in str(error) and "should be 4" in str(error)


def test_tle_short_line_and_missing_line_two(tmp_path: Path):
    lines = CATALOG.read_text().splitlines()[:3]
    error, _ = _tle_case(tmp_path, [lines[0], lines[1][:60], lines[2]])
    assert "has 60 columns, expected 69" in str(error)
    error, _ = _tle_case(tmp_path, lines[:2])
    assert "has no line 2" in str(error)
    error, _ = _tle_case(tmp_path, [lines[0], "garbage", *lines[1:]])
    assert "expected TLE line 1 after the name line 'STARLINK-1007'" in str(error)


def test_tle_limit_takes_the_first_satellites(tmp_path: Path):
    path = _write(tmp_path, f'[[tle]]\nname = "s"\npath = "{CATALOG}"\nlimit = 10\n')
    scenario = load_scenario(str(path))
    assert len(scenario.satellites) == 10
    assert scenario.satellites[-1].sat_id == 9


# ------------------------------------------------------------------------------------------
# parse_section, the validator later subsystems use


@dataclass(frozen=True)
class _Panel:
    area_m2: float = field(default=1.0, metadata={"gt": 0.0, "unit": "m^2"})


@dataclass(frozen=True)
class _Thermal:
    radiator_area_m2: float = field(default=2.0, metadata={"min": 0.0, "max": 100.0,
                                                           "unit": "m^2"})
    emissivity: float = field(default=0.9, metadata={"min": 0.0, "max": 1.0, "unit": "1"})
    mode: str = field(default="passive", metadata={"choices": ("passive", "pumped")})
    setpoints_c: tuple[float, ...] = (20.0, 40.0)
    panel: _Panel = field(default_factory=_Panel)

    def __post_init__(self) -> None:
        if self.mode == "pumped" and self.radiator_area_m2 < 1.0:
            raise InvalidField("radiator_area_m2", "a pumped loop needs at least 1 m^2")


def _thermal(body: str) -> Scenario:
    return parse_scenario(VALID + "\n[thermal]\n" + body, source="odc.toml")


def test_parse_section_defaults_values_and_nesting():
    assert parse_section(_Thermal, parse_scenario(VALID), "thermal") == _Thermal()
    parsed = parse_section(_Thermal, _thermal(
        'radiator_area_m2 = 3\nmode = "pumped"\nsetpoints_c = [10, 30.5]\npanel = { area_m2 = 2 }'
    ), "thermal")
    assert parsed == _Thermal(radiator_area_m2=3.0, mode="pumped", setpoints_c=(10.0, 30.5),
                              panel=_Panel(area_m2=2.0))
    assert isinstance(parsed.radiator_area_m2, float)
    assert dataclasses.is_dataclass(parsed.panel)


@pytest.mark.parametrize(("body", "key", "fragment"), [
    ("radiator_area = 3\n", "thermal.radiator_area", "Did you mean 'radiator_area_m2'?"),
    ("emissivity = 1.5\n", "thermal.emissivity", "0 <= emissivity <= 1"),
    ("radiator_area_m2 = -1\n", "thermal.radiator_area_m2", "-1 m^2 is out of range"),
    ('mode = "pumpd"\n', "thermal.mode", "Did you mean 'pumped'?"),
    ("emissivity = true\n", "thermal.emissivity", "is a boolean: expected a number"),
    ("[thermal.panel]\narea_m2 = 0\n", "thermal.panel.area_m2", "0 < area_m2"),
    ('mode = "pumped"\nradiator_area_m2 = 0.5\n', "thermal.radiator_area_m2", "at least 1 m^2"),
])
def test_parse_section_errors_name_the_key(body: str, key: str, fragment: str):
    with pytest.raises(ScenarioError) as caught:
        parse_section(_Thermal, _thermal(body), "thermal")
    assert (caught.value.file, caught.value.key) == ("odc.toml", key)
    assert fragment in str(caught.value)


def test_mean_semi_major_axes_match_each_satellites_satrec():
    from twin.scenario.loader import mean_semi_major_axes_km

    scenario = load_scenario("default")
    expected = [s.satrec.a * s.satrec.radiusearthkm for s in scenario.satellites]
    assert mean_semi_major_axes_km(scenario.satellites).tolist() == expected

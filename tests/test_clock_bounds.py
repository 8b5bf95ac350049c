"""One set of clock bounds, the ephemeris range, bounded reads and the CLI's flags (issue #12).

Each bad input gets a clear error naming what and where: a ``ValueError`` from the clock,
a ``ScenarioError`` from a scenario, exit status 2 with a message from the CLI.
"""

from __future__ import annotations

import argparse
import math
import os
import stat
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from odc import cli as odc_cli
from odc import demo
from twin.astro.sun import (
    EPHEMERIS_END_T_UTC,
    EPHEMERIS_END_UTC,
    EPHEMERIS_START_UTC,
    SunEphemeris,
    ephemeris_covers,
    ephemeris_wall_s_left,
    ephemeris_warning,
)
from twin.core.clock import (
    MAX_RATE_HZ,
    MAX_STEP_S,
    MAX_WARP,
    MIN_RATE_HZ,
    MIN_STEP_S,
    MIN_WARP,
    SimClock,
    check_clock,
)
from twin.core.engine import Engine
from twin.runtime.addresses import address_argument, check_address
from twin.scenario import (
    ASSETS_DIR,
    ClockSettings,
    ScenarioError,
    load_scenario,
    parse_scenario,
)
from twin.scenario.loader import MAX_SCENARIO_BYTES

EPOCH = datetime(2026, 3, 20, 12, tzinfo=UTC)
CATALOG = ASSETS_DIR / "tle" / "starlink-2023-07-18.tle"
SMALL = """\
[scenario]
epoch = "{epoch}"

[clock]
rate_hz = {rate_hz}
warp = {warp}

[[walker]]
name = "a"
altitude_km = 550.0
inclination_deg = 53.0
planes = 1
sats_per_plane = 2
"""


@pytest.fixture(autouse=True)
def no_twin_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    """A flag that should be refused must never start a twin: fail fast instead of running."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a twin was started")

    monkeypatch.setattr("twin.runtime.cli.TwinServer", refuse)
    monkeypatch.setattr("odc.demo.start_twin", refuse)


def small(epoch: str = "2026-03-20T12:00:00Z", rate_hz: str = "10.0", warp: str = "60.0") -> str:
    return SMALL.format(epoch=epoch, rate_hz=rate_hz, warp=warp)


def scenario_error(text: str) -> ScenarioError:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text)
    return caught.value


# --------------------------------------------------------------------------------------------
# The clock


def test_the_scenario_schema_uses_the_clock_bounds() -> None:
    fields = ClockSettings.__dataclass_fields__
    rate, warp = fields["rate_hz"].metadata, fields["warp"].metadata
    # The control loop's longest sub-step spans the steps a clock allows.
    assert fields["control_period_s"].metadata["max"] == MAX_STEP_S
    assert (rate["min"], rate["max"]) == (MIN_RATE_HZ, MAX_RATE_HZ)
    assert (warp["min"], warp["max"]) == (MIN_WARP, MAX_WARP)
    assert MIN_WARP / MAX_RATE_HZ < MIN_STEP_S < MAX_STEP_S < MAX_WARP / MIN_RATE_HZ


def test_a_slow_warp_then_a_slow_rate_is_refused_and_the_wait_stays_bounded() -> None:
    clock = SimClock(EPOCH, rate_hz=10.0, warp=1.0)
    with pytest.raises(ValueError, match=r"warp must be a number from 0\.001 to 100000"):
        clock.set_warp(1e-6)
    with pytest.raises(ValueError, match=r"rate must be a number from 0\.01 to 1000 Hz"):
        clock.set_rate(1e-7)
    assert (clock.warp, clock.rate_hz) == (1.0, 10.0)  # a refused change changes nothing
    clock.set_warp(MIN_WARP * 10)
    clock.set_rate(MIN_RATE_HZ)
    clock.mark_tick()
    assert clock.seconds_until_tick() <= 1.0 / MIN_RATE_HZ


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, -1.0, 0.0, 1e-300, 1e7,
                                   True, "60", None, [60.0], 10**400])
def test_warp_and_rate_refuse_what_is_not_a_number_in_bounds(value: object) -> None:
    clock = SimClock(EPOCH, rate_hz=10.0, warp=60.0)
    with pytest.raises(ValueError, match=r"warp must be a number from 0\.001 to 100000"):
        clock.set_warp(value)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"rate must be a number from 0\.01 to 1000 Hz"):
        clock.set_rate(value)  # type: ignore[arg-type]
    assert (clock.warp, clock.rate_hz) == (60.0, 10.0)


def test_numpy_numbers_are_numbers() -> None:
    clock = SimClock(EPOCH, rate_hz=np.float32(10.0), warp=np.int64(60))  # type: ignore[arg-type]
    assert clock.dt_s == 6.0 and type(clock.warp) is float


def test_the_step_must_be_neither_too_long_nor_too_short() -> None:
    with pytest.raises(ValueError, match="the longest step is 600 s"):
        check_clock(MAX_WARP, 1.0)
    with pytest.raises(ValueError, match=r"the shortest step is 0\.0001 s"):
        check_clock(MIN_WARP, MAX_RATE_HZ)
    clock = SimClock(EPOCH, rate_hz=1.0, warp=0.01)
    with pytest.raises(ValueError, match="shortest step"):
        clock.set_rate(MAX_RATE_HZ)
    assert clock.rate_hz == 1.0


@pytest.mark.parametrize(("warp", "rate_hz", "key", "fragment"), [
    ("1e7", "10.0", "clock.warp", "0.001 <= warp <= 100000"),
    ("1e-300", "10.0", "clock.warp", "0.001 <= warp <= 100000"),
    ("nan", "10.0", "clock.warp", "not a finite number"),
    ("true", "10.0", "clock.warp", "a boolean"),
    ("60.0", "1e-7", "clock.rate_hz", "0.01 <= rate_hz <= 1000"),
    ("1e5", "1.0", "clock.warp", "the longest step is 600 s"),
    ("0.001", "1000", "clock.warp", "the shortest step is 0.0001 s"),
])
def test_the_scenario_clock_is_checked_against_the_same_bounds(
        warp: str, rate_hz: str, key: str, fragment: str) -> None:
    error = scenario_error(small(warp=warp, rate_hz=rate_hz))
    assert error.key == key
    assert fragment in str(error)


def test_odc_scenarios_check_refuses_warp_1e7_without_a_traceback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "fast.toml"
    path.write_text(small(warp="1e7", rate_hz="1000"))
    assert odc_cli.main(["scenarios", "--check", str(path)]) == 2
    assert "clock.warp" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# The ephemeris


def test_the_ephemeris_range_lies_inside_de421() -> None:
    with SunEphemeris() as sun:
        unix_jd = 2440587.5
        end_jd = unix_jd + EPHEMERIS_END_T_UTC / 86400.0
        start_jd = unix_jd + EPHEMERIS_START_UTC.timestamp() / 86400.0
        # At least the TDB-UTC offset (~70 s) and the hour the interpolation looks ahead.
        assert sun.jd_tdb_end - end_jd >= 2.0 / 24.0
        assert start_jd - sun.jd_tdb_start >= 2.0 / 24.0
        whole, frac = math.floor(end_jd), end_jd - math.floor(end_jd)
        assert np.isfinite(sun.gcrs_km(whole, frac + 80.0 / 86400.0)).all()


def test_ephemeris_helpers() -> None:
    assert ephemeris_covers(EPOCH.timestamp())
    assert ephemeris_covers(EPHEMERIS_END_T_UTC)
    assert not ephemeris_covers(EPHEMERIS_END_T_UTC + 1.0)
    assert not ephemeris_covers(math.nan)
    assert ephemeris_wall_s_left(EPHEMERIS_END_T_UTC - 3600.0, 60.0) == 60.0
    assert ephemeris_wall_s_left(EPHEMERIS_END_T_UTC + 10.0, 1.0) == 0.0
    assert ephemeris_warning(EPOCH.timestamp(), 1.0) is None
    message = ephemeris_warning(EPOCH.timestamp(), MAX_WARP)
    assert message is not None and "2053-10-08" in message and "wall hours" in message


@pytest.mark.parametrize("epoch", ["2060-01-01T00:00:00Z", "2053-10-09T00:00:00Z",
                                   "1950-01-01T00:00:00Z", "9999-12-31T23:59:59-23:00"])
def test_an_epoch_outside_the_ephemeris_is_refused_at_load(epoch: str) -> None:
    error = scenario_error(small(epoch=epoch))
    assert error.key == "scenario.epoch"
    assert "2053-10-08" in str(error) and "DE421" in str(error)


def test_a_run_at_the_last_covered_day_builds_and_steps() -> None:
    scenario = parse_scenario(small(epoch="2053-10-07T23:00:00Z"))
    engine = Engine(scenario, SimClock(scenario.epoch_utc, 1.0, 600.0, fast=True))
    for _ in range(3):
        engine.step()


def test_tles_far_from_the_epoch_are_refused(tmp_path: Path) -> None:
    text = (f'[scenario]\nepoch = "2026-03-20T12:00:00Z"\n[[tle]]\nname = "s"\n'
            f'path = "{CATALOG}"\nlimit = 5\n')
    error = scenario_error(text)
    assert error.key == "tle[0].path"
    assert "days before the scenario epoch" in str(error) and "90 days" in str(error)
    near = text.replace("2026-03-20T12:00:00Z", "2023-07-20T00:00:00Z")
    assert len(parse_scenario(near).satellites) == 5


def test_odc_run_refuses_a_duration_or_steps_past_the_ephemeris(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert odc_cli.main(["run", "-q", "--duration", "1e9"]) == 2
    assert "--duration" in capsys.readouterr().err
    assert odc_cli.main(["run", "-q", "--steps", str(10**12)]) == 2
    assert "--steps" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# Files and TOML that used to end in a traceback


def test_deeply_nested_toml_is_a_scenario_error() -> None:
    error = scenario_error("a = " + "[" * 100_000 + "]" * 100_000)
    assert "nested too deeply" in str(error)


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


def _odd_paths(tmp_path: Path, fifo: Path) -> dict[str, Path]:
    huge = tmp_path / "huge.toml"
    with huge.open("wb") as out:
        out.truncate(MAX_SCENARIO_BYTES + 1)  # sparse: no disk used
    return {"device": Path("/dev/zero"), "fifo": fifo, "directory": tmp_path, "huge": huge}


@pytest.mark.parametrize("kind", ["device", "fifo", "directory", "huge"])
def test_odd_scenario_paths_are_refused_quickly(tmp_path: Path, fifo: Path, kind: str) -> None:
    path = _odd_paths(tmp_path, fifo)[kind]
    with pytest.raises(ScenarioError, match="cannot read the file: it is"):
        load_scenario(str(path))


@pytest.mark.parametrize("kind", ["device", "fifo", "directory"])
def test_odd_tle_paths_are_refused_quickly(tmp_path: Path, fifo: Path, kind: str) -> None:
    path = _odd_paths(tmp_path, fifo)[kind]
    text = f'[scenario]\nepoch = "2023-07-18T00:00:00Z"\n[[tle]]\nname = "s"\npath = "{path}"\n'
    error = scenario_error(text)
    assert error.key == "tle[0].path" and "cannot read TLE file" in str(error)


def test_an_empty_scenario_name_is_explained() -> None:
    with pytest.raises(ScenarioError, match="scenario name is empty"):
        load_scenario("")


def test_a_scenario_without_stations_loads_and_steps() -> None:
    scenario = parse_scenario(small())
    assert scenario.stations == ()
    engine = Engine(scenario, SimClock(scenario.epoch_utc, 10.0, 60.0, fast=True))
    for _ in range(3):
        engine.step()
    assert np.isfinite(engine.orbit.pos_gcrs.array).all()
    # The wire side (twin.wire) must also publish a (0, n) station block: not checked here.


# --------------------------------------------------------------------------------------------
# Addresses and flags


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:5555", "tcp://*:0", "tcp://127.0.0.1:*",
                                     "tcp://localhost:65535", "tcp://[::1]:5555",
                                     "ipc:///tmp/odc.sock", "ipc://*", "inproc://twin"])
def test_good_addresses_pass(address: str) -> None:
    assert check_address(address) == address


@pytest.mark.parametrize(("address", "fragment"), [
    ("tcp://127.0.0.1:99999", "port '99999' is not a port number"),
    ("tcp://127.0.0.1:-1", "not a port number"),
    ("tcp://127.0.0.1:", "not a port number"),
    ("tcp://127.0.0.1:５５５５", "not a port number"),
    ("tcp://127.0.0.1", "no host and port"),
    ("tcp://:5555", "no host and port"),
    ("tcp://::1:5555", "IPv6 host in brackets"),
    ("tcp://127.0.0.1:5 5", "blanks or control characters"),
    ("pgm://eth0;239.0.0.1:5555", "unknown transport 'pgm'"),
    ("localhost:5555", "not a ZeroMQ address"),
    ("", "not a ZeroMQ address"),
    ("ipc://", "empty"),
    ("ipc:///" + "x" * 200, "at most 107 bytes"),
])
def test_bad_addresses_are_explained(address: str, fragment: str) -> None:
    with pytest.raises(ValueError) as caught:
        check_address(address)
    assert fragment in str(caught.value)
    with pytest.raises(argparse.ArgumentTypeError):
        address_argument(address)


BAD_FLAGS = [
    (["run", "--warp", "1e-6", "--rate", "1e-7"], "--warp"),
    (["run", "--warp", "nan"], "--warp"),
    (["run", "--warp", "inf"], "--warp"),
    (["run", "--warp", ""], "--warp"),
    (["run", "--rate", "1e-7"], "--rate"),
    (["run", "--rate", "1e309"], "--rate"),
    (["run", "--duration", "-1"], "--duration"),
    (["run", "--duration", "nan"], "--duration"),
    (["run", "--steps", "-1"], "--steps"),
    (["run", "--steps", "1e3"], "--steps"),
    (["run", "--seed", str(2**64)], "--seed"),
    (["run", "--seed", "x"], "--seed"),
    (["run", "--pub", "tcp://127.0.0.1:99999"], "--pub"),
    (["run", "--cmd", "tcp://127.0.0.1:65536"], "--cmd"),
    (["run", "--ingest", "udp://127.0.0.1:5557"], "--ingest"),
    (["scenarios", "--check"], "--check"),
    (["demo", "--warp", "1e9"], "--warp"),
    (["demo", "--rate", "0"], "--rate"),
    (["demo", "--duration", "inf"], "--duration"),
    (["demo", "--pub", "tcp://127.0.0.1:99999"], "--pub"),
]


@pytest.mark.parametrize(("argv", "flag"), BAD_FLAGS, ids=[" ".join(a) for a, _ in BAD_FLAGS])
def test_bad_flags_exit_2_naming_the_flag(
        argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        odc_cli.main(argv)
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}" in err and "Traceback" not in err


@pytest.mark.parametrize(("argv", "fragment"), [
    (["run", "--warp", "0.001", "--rate", "1000"], "the shortest step"),
    (["run", "--warp", "100000", "--rate", "1"], "the longest step"),
    (["run", "--scenario", ""], "scenario name is empty"),
    (["run", "--scenario", "/dev/zero"], "not a regular file"),
    (["scenarios", "--check", ""], "scenario name is empty"),
])
def test_flags_that_parse_but_cannot_run_exit_2(
        argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert odc_cli.main([*argv, "-q"] if argv[0] == "run" else argv) == 2
    assert fragment in capsys.readouterr().err


def test_the_demo_viewer_log_is_in_a_private_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[list[str]] = []

    class FakePopen:
        def __init__(self, command: list[str], **kwargs: object) -> None:
            started.append(command)

    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.setattr(demo.subprocess, "Popen", FakePopen)
    result = demo.start_viewer({"stream": "tcp://127.0.0.1:1", "commands": "tcp://127.0.0.1:2"})
    if result is None:
        pytest.skip("no 3D viewer module")
    _, log_path = result
    try:
        folder = log_path.parent
        assert folder != Path(tempfile.gettempdir())
        assert str(os.getpid()) not in log_path.name
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert started and started[0][0] == sys.executable
    finally:
        log_path.unlink(missing_ok=True)
        log_path.parent.rmdir()


def test_a_run_far_in_the_future_is_not_refused_if_it_stays_inside() -> None:
    end_epoch = (EPHEMERIS_END_UTC - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    scenario = parse_scenario(small(epoch=end_epoch))
    assert scenario.epoch_utc < EPHEMERIS_END_UTC


def test_a_quoted_number_for_a_union_key_is_explained() -> None:
    # Found by tests/test_scenario_fuzz.py: ltan_h is float | tuple[float, ...], and the
    # "write it without quotes" hint called isinstance() on the union (a TypeError).
    text = small() + '[[sun_synchronous]]\nname = "s"\naltitude_km = 650.0\nltan_h = "18"\n' \
        'sats_per_plane = 1\n'
    error = scenario_error(text)
    assert error.key == "sun_synchronous[0].ltan_h" and "without quotes" in str(error)

"""The bench scripts check their flags: a bad one exits 2 with a message naming it."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from twin.runtime.cli import count_argument, positive_argument

ROOT = Path(__file__).resolve().parent.parent

# Loaded from its file: putting bench/ on sys.path would let its step.py, viewer.py, ...
# shadow other modules for the rest of the test session.
_spec = importlib.util.spec_from_file_location("benchargs", ROOT / "bench" / "benchargs.py")
benchargs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(benchargs)


def test_the_checked_types_take_good_values_and_name_what_is_wrong() -> None:
    assert count_argument(20)("300") == 300
    assert positive_argument("hours", 8760.0)("0.5") == 0.5
    assert benchargs.checked_scenario("default") == "default"
    assert benchargs.window_size("1280X720") == (1280, 720)
    for parse, text, message in (
        (count_argument(20), "5", "must be at least 20"),
        (count_argument(), "-1", "must be zero or more"),
        (count_argument(), "1.5", "whole number"),
        (positive_argument("hours", 8760.0), "0", r"hours must be in \(0, 8760\]"),
        (positive_argument("hours", 8760.0), "nan", "hours must be in"),
        (positive_argument("hours", 8760.0), "fast", "hours must be a number"),
        (benchargs.checked_scenario, "no-such-scenario", "no such scenario file"),
        (benchargs.window_size, "1280", "WIDTHxHEIGHT"),
        (benchargs.window_size, "8x8", "16 to 8192"),
    ):
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            parse(text)


@pytest.mark.parametrize(("script", "flags", "expected"), [
    ("step.py", ["--steps", "0"], "argument --steps: must be at least 1"),
    ("sgp4_cache.py", ["--steps", "5"], "argument --steps: must be at least 20"),
    ("compute.py", ["--scenario", "no-such-scenario"], "argument --scenario: no-such-scenario"),
    ("ingest.py", ["--packets", "many"], "argument --packets: must be a whole number"),
    ("policy_compare.py", ["--hours", "0"], "argument --hours: hours must be in (0, 8760]"),
    ("lifecycle_years.py", ["--years", "0"], "argument --years: years must be in (0, 100]"),
    ("policy_compare.py", ["--extra", "[x"], "argument --scenario with --extra"),
    ("tui.py", ["--rate", "-1"], "argument --rate: rate must be in [0.01, 1000] Hz"),
    ("curve.py", ["--subscribers", "0"], "argument --subscribers: must be at least 1"),
    ("viewer.py", ["--size", "big"], "argument --size: must be WIDTHxHEIGHT"),
    ("abuse.py", ["--classes", "meta_noread,nope"], "argument --classes: unknown class nope"),
    ("replay.py", ["--seeks", "0"], "argument --seeks: must be at least 1"),
    ("design_year.py", ["--days", "0"], "argument --days: days must be in (0, 3660]"),
    ("design_year.py", ["--scenario", "no-such-scenario"], "argument --scenario: no-such"),
    ("sweep.py", ["--runs", "0"], "argument --runs: must be at least 1"),
    ("scale.py", ["--sizes", "10k,2m"], "argument --sizes: sizes are a comma-separated list"),
    ("scale.py", ["--workers", "0"], "argument --workers: must be at least 1"),
    ("sgp4_ahead.py", ["--rounds", "0"], "argument --rounds: must be at least 1"),
    ("sgp4_ahead.py", ["--size", "10k,1m"], "argument --size: one size, not 2"),
    ("restart_memory.py", ["--workers", "1"], "argument --workers: must be at least 2"),
    ("live_memory.py", ["--every", "0"], "argument --every: every must be in (0, 3600]"),
    ("memory_soak.py", ["--trim-interval-s", "x"], "trim interval must be a number"),
    ("view_scale.py", ["--nodes", "2000000"], "argument --nodes: counts from 1 to 1,000,000"),
])
def test_a_bench_script_refuses_a_bad_flag(script: str, flags: list[str], expected: str) -> None:
    result = subprocess.run([sys.executable, str(ROOT / "bench" / script), *flags], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr[-1000:]
    assert expected in result.stderr
    assert "Traceback" not in result.stderr

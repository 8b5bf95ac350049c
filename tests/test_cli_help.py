"""The viewers' --help reads on an 80-column terminal: every line wrapped (issue 16 review:
`odc web --help` had a 100-column line and a description cut inside a word's quotes)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from procutil import ROOT


@pytest.mark.parametrize("command", ["view", "tui", "web"])
def test_help_fits_80_columns(command: str) -> None:
    env = {**os.environ, "COLUMNS": "80"}
    done = subprocess.run([sys.executable, "-m", "odc.cli", command, "--help"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60, check=True)
    lines = done.stdout.splitlines()
    assert len(lines) > 10
    too_long = [line for line in lines if len(line) > 80]
    assert too_long == [], too_long
    # A description line never ends inside a quoted name (`odc / web`).
    assert not any(line.count("`") % 2 for line in lines), done.stdout


def test_documented_addresses_use_the_default_ports_for_their_socket() -> None:
    """A first-time user copies these lines: `--pub` is the stream (5555), `--cmd` the
    commands (5556), `--ingest` the telemetry (5557), as `odc run` binds them by default
    (docs/viewers.md had `--pub ...:5556 --cmd ...:5557`)."""
    import re
    from pathlib import Path

    expected = {"pub": 5555, "cmd": 5556, "ingest": 5557}
    flag = re.compile(r"--(pub|cmd|ingest)[ =]tcp://[\w.\-]+:(555[5-7])\b")
    wrong = []
    for path in [Path(ROOT) / "README.md", *sorted((Path(ROOT) / "docs").glob("*.md"))]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for name, port in flag.findall(line):
                if int(port) != expected[name]:
                    wrong.append(f"{path.name}:{number}: --{name} ...:{port}")
    assert wrong == []

"""The README's client example runs, as written, against a real twin."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from twinutil import running_twin

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_client_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    assert "tcp://127.0.0.1:5555" in code
    with running_twin("default") as twin:
        # The only change: the twin under test listens on a random port.
        exec(compile(code.replace("tcp://127.0.0.1:5555", twin.addresses.pub), "README", "exec"),
             {})
    printed = capsys.readouterr().out.split()
    assert len(printed) > 3 and float(printed[0]) > 1.7e9  # t_utc, then arrays

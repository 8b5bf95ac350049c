"""docs/scenarios.md lists every subsystem key with the defaults and bounds the code enforces."""

from __future__ import annotations

from pathlib import Path

from twin.scenario.paramdoc import BEGIN, END, reference

DOC = Path(__file__).resolve().parent.parent / "docs" / "scenarios.md"


def test_scenario_reference_matches_the_code() -> None:
    text = DOC.read_text(encoding="utf-8")
    documented = text[text.index(BEGIN):text.index(END) + len(END)]
    assert documented == reference(), (
        "docs/scenarios.md is out of date: regenerate the block between the params "
        "markers with `python -m twin.scenario.paramdoc`"
    )

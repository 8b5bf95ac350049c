"""Checked values for the bench scripts' flags.

A bad flag ends with argparse's usage line and a message naming the flag (exit status 2),
never with a traceback minutes into a run. Numbers use the twin's own checked types
(`twin.runtime.cli.count_argument`, `twin.runtime.cli.positive_argument`); these are the
bench's others.
The scripts run as ``python bench/NAME.py``, which puts this folder first on ``sys.path``.
"""

from __future__ import annotations

import argparse

from twin.scenario import ScenarioError, load_scenario


def checked_scenario(text: str) -> str:
    """An argparse ``type``: a bundled scenario's name or a scenario file that loads.

    The text itself is returned: the benches hand it on to the twins they start.
    """
    try:
        load_scenario(text)
    except ScenarioError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def window_size(text: str) -> tuple[int, int]:
    """An argparse ``type``: ``WIDTHxHEIGHT`` in pixels, each 16 to 8192."""
    width, _, height = text.lower().partition("x")
    try:
        size = (int(width), int(height))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be WIDTHxHEIGHT in pixels, like 1280x720, got {text!r}") from None
    if not all(16 <= side <= 8192 for side in size):
        raise argparse.ArgumentTypeError(f"each side must be 16 to 8192 pixels, got {text}")
    return size

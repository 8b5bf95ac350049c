"""The errors a scenario file raises, and the "did you mean" hint their messages share.

Every problem of a scenario is one ``ScenarioError`` naming the file, the key path
(``walker[1].altitude_km``, 0-based indices), what is wrong and what is expected. Section
dataclasses blame one of their own keys with ``InvalidField``; ``twin.scenario.sections``
turns that into a ScenarioError.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


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


def suggest(key: str, valid: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` for the valid name closest to a mistyped ``key``, else ``""``."""
    close = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""

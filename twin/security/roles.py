"""Roles: what a key may do. Checked before a command runs and before telemetry is applied.

Four ranked roles, each including the ones below it:

- ``viewer``: the stream and read-only commands (``status``, ``meta``, ``job``);
- ``operator``: the clock, jobs and the scheduling policy;
- ``engineer``: faults, power caps, coolant flow, upsets, node retirements;
- ``admin``: keys (``reload_keys``) and ``shutdown``.

and one per testbed, ``testbed:NAME``: may push telemetry for testbed NAME only (and nothing
else). Every command declares the role it needs (twin.protocol.commands); ``meta`` carries it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

RANKED_ROLES: tuple[str, ...] = ("viewer", "operator", "engineer", "admin")
"""The command roles, lowest first; each grants what the ones before it grant."""
TESTBED_PREFIX = "testbed:"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
"""Key and testbed names: 1-64 characters, letters, digits, ``_ . -``, not starting with a
punctuation mark (they become file names and TOML keys)."""


def check_role(role: str) -> str:
    """Return ``role`` if it is a known role, else raise ``ValueError`` saying which exist."""
    if role in RANKED_ROLES:
        return role
    if role.startswith(TESTBED_PREFIX) and NAME_PATTERN.match(role[len(TESTBED_PREFIX):]):
        return role
    raise ValueError(f"unknown role {role[:80]!r}: one of {', '.join(RANKED_ROLES)} or "
                     f"{TESTBED_PREFIX}NAME")


def grants(roles: Iterable[str], required: str) -> bool:
    """Whether a key with ``roles`` may do what needs ``required`` (a ranked role)."""
    need = RANKED_ROLES.index(required)
    return any(role in RANKED_ROLES and RANKED_ROLES.index(role) >= need for role in roles)


def may_feed(roles: Iterable[str], testbed: str) -> bool:
    """Whether a key with ``roles`` may push telemetry for ``testbed``."""
    return f"{TESTBED_PREFIX}{testbed}" in roles


def highest(roles: Iterable[str]) -> str:
    """The highest ranked role among ``roles``, or ``"none"``."""
    ranked = [RANKED_ROLES.index(r) for r in roles if r in RANKED_ROLES]
    return RANKED_ROLES[max(ranked)] if ranked else "none"

"""Which nodes mirror a hardware testbed, read from ``meta`` (shared by both viewers)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class MirrorBinding:
    """One testbed mirrored on one node, from ``meta.subsystems.mirror.bindings``.

    Attributes:
        index: Position in the bindings list: axis 0 of every ``mirror_*`` field.
        testbed: The testbed's name (``flatsat``).
        sat: The mirrored satellite's index.
        drivers: Quantities the testbed drives (measured only, they replace model inputs).
        states: Quantities compared, measured beside predicted (``temp_compute_k``).
        thresholds: Residual magnitude per state that raises ``mirror_residual`` (SI).
    """

    index: int
    testbed: str
    sat: int
    drivers: tuple[str, ...] = ()
    states: tuple[str, ...] = ()
    thresholds: Mapping[str, float] = field(default_factory=dict)


def mirror_bindings(meta: Mapping[str, Any] | None) -> list[MirrorBinding]:
    """The mirrored nodes meta announces; none without a ``[mirror]``.

    A malformed binding is skipped: a viewer must not die on a bad meta.
    """
    facts = ((meta or {}).get("subsystems") or {}).get("mirror")
    if not isinstance(facts, Mapping):
        return []
    out = []
    for j, b in enumerate(facts.get("bindings") or []):
        try:
            out.append(MirrorBinding(
                j, str(b.get("testbed", f"testbed {j}")), int(b["sat"]),
                tuple(sorted({str(q) for q in (b.get("drivers") or {}).values()})),
                tuple(sorted({str(q) for q in (b.get("states") or {}).values()})),
                {str(k): float(v) for k, v in (b.get("thresholds") or {}).items()}))
        except (AttributeError, KeyError, TypeError, ValueError):
            continue
    return out

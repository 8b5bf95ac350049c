"""The reference of every subsystem table a scenario may hold, written from the code itself.

`python -m twin.scenario.paramdoc` prints the Markdown that docs/scenarios.md carries between its
``<!-- params:begin -->`` and ``<!-- params:end -->`` markers; a test fails when the two
differ, so the reference cannot drift from the defaults and bounds the twin enforces.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

from twin.models.registry import parameter_sections

BEGIN = "<!-- params:begin -->"
END = "<!-- params:end -->"

SECTIONS: tuple[tuple[str, type], ...] = parameter_sections()
"""(table, parameters dataclass) of every model table, in step order (twin.models.registry)."""


def _default(spec: dataclasses.Field) -> str:
    if spec.default is not dataclasses.MISSING:
        value: Any = spec.default
    elif spec.default_factory is not dataclasses.MISSING:
        value = spec.default_factory()
    else:
        return "required"
    if dataclasses.is_dataclass(value):
        return "table"
    return f"`{value!r}`" if not isinstance(value, float) else f"`{value:g}`"


def _allowed(meta: dict[str, Any]) -> str:
    parts = []
    if "choices" in meta:
        parts.append(" or ".join(f"`{c}`" for c in meta["choices"]))
    for key, symbol in (("min", ">="), ("gt", ">"), ("max", "<="), ("lt", "<")):
        if key in meta:
            parts.append(f"{symbol} {meta[key]:g}")
    if meta.get("per_node"):
        parts.append("per node (`[[node_class]]`)")
    return ", ".join(parts)


def section_table(name: str, cls: type) -> str:
    """Markdown for one ``[name]`` table: key, default, unit and allowed values."""
    lines = [f"### `[{name}]`", "", (cls.__doc__ or "").strip().splitlines()[0], "",
             "| key | default | unit | allowed |", "|---|---|---|---|"]
    for spec in dataclasses.fields(cls):
        meta = dict(spec.metadata)
        unit = meta.get("unit", "")
        lines.append(f"| `{spec.name}` | {_default(spec)} | {unit} | {_allowed(meta)} |")
    return "\n".join(lines)


def reference() -> str:
    """The whole generated block, markers included."""
    body = "\n\n".join(section_table(name, cls) for name, cls in parameter_sections())
    return f"{BEGIN}\n{body}\n{END}"


def main() -> int:
    sys.stdout.write(reference() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Per-node parameters: ``[[node_class]]`` gives some model keys to a class of nodes.

A scenario's fleet-wide tables (``[thermal]``) hold for every node; a node class overrides
some keys for the nodes it lists::

    [[node_class]]
    name = "flatsat"                    # unique, for messages and the twin's meta
    nodes = ["dawn-dusk-01-01"]         # satellite names, indices or group names
    [node_class.thermal]
    radiator_emissivity = 0.62
    loop_ua_w_k = 22.5

Only keys a model declares it can take per node (``per_node`` in the field metadata of its
parameters dataclass) are accepted; the model then holds an (n,) array for each such key a
class sets and the fleet's number everywhere else. A node belongs to at most one class. Every
problem is a ``ScenarioError`` naming the file, ``node_class[i]`` and the key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from twin.scenario.errors import ScenarioError, suggest
from twin.scenario.sections import build

if TYPE_CHECKING:
    from twin.scenario.loader import Satellite, Scenario

SECTION = "node_class"
"""The scenario's array of tables that holds the classes."""
_OWN_KEYS = ("name", "nodes", "description")


@dataclass(frozen=True)
class NodeClass:
    """One ``[[node_class]]``.

    Attributes:
        name: Its name (unique in the scenario).
        sats: Indices of its nodes, ascending.
        tables: Model table -> the keys it overrides for these nodes (validated values).
        description: Free text (``odc calibrate`` says where the values came from).
    """

    name: str
    sats: tuple[int, ...]
    tables: Mapping[str, Mapping[str, Any]]
    description: str = ""


def per_node_keys(cls: type) -> tuple[str, ...]:
    """Keys of a parameters dataclass that a model takes per node (``per_node`` metadata)."""
    return tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get("per_node"))


def parse_node_classes(raw: Sequence[Any], satellites: Sequence[Satellite],
                       sections: Sequence[tuple[str, type]], source: str
                       ) -> tuple[NodeClass, ...]:
    """Validate the ``[[node_class]]`` tables against the fleet and the models' tables.

    Args:
        raw: The array of tables as TOML gave it.
        satellites: The scenario's satellites (names, groups, indices).
        sections: (table, parameters dataclass) of every model table.
        source: The scenario file, for messages.
    """
    if not raw:
        return ()  # no name index to build: it costs a second and 100 MB at a million nodes
    by_table = dict(sections)
    names = {s.name: s.sat_id for s in satellites}
    groups: dict[str, list[int]] = {}
    for sat in satellites:
        groups.setdefault(sat.group, []).append(sat.sat_id)
    owner: dict[int, str] = {}
    classes: list[NodeClass] = []
    for i, table in enumerate(raw):
        key = f"{SECTION}[{i}]"
        name = table.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ScenarioError(source, f"{key}.name", "each node class needs a name, e.g."
                                " name = \"flatsat\"")
        if any(c.name == name for c in classes):
            raise ScenarioError(source, f"{key}.name", f"node class {name!r} is defined twice")
        description = table.get("description", "")
        if not isinstance(description, str):
            raise ScenarioError(source, f"{key}.description", "expected a string")
        try:
            sats = _members(table.get("nodes"), names, groups, f"{key}.nodes", source)
        except ScenarioError as exc:
            raise ScenarioError(source, exc.key, f"(node class {name!r}) {exc.problem}"
                                ) from None
        for sat in sats:
            if sat in owner:
                raise ScenarioError(source, f"{key}.nodes", f"node {satellites[sat].name!r} "
                                    f"(index {sat}) is already in node class {owner[sat]!r}: "
                                    "a node belongs to at most one class")
            owner[sat] = name
        tables: dict[str, Mapping[str, Any]] = {}
        for table_name, values in table.items():
            if table_name in _OWN_KEYS:
                continue
            tables[table_name] = _overrides(table_name, values, by_table, f"{key}.{table_name}",
                                            source, name)
        if not tables:
            raise ScenarioError(source, key, f"node class {name!r} sets no parameters: add a "
                                f"[{SECTION}.thermal] table (per-node tables: "
                                f"{', '.join(_per_node_tables(by_table))})")
        classes.append(NodeClass(name, tuple(sats), tables, description))
    return tuple(classes)


def _members(nodes: Any, names: dict[str, int], groups: dict[str, list[int]], key: str,
             source: str) -> list[int]:
    if not isinstance(nodes, list) or not nodes:
        raise ScenarioError(source, key, "expected a non-empty list of satellite names, "
                            "indices or group names, e.g. nodes = [\"dawn-dusk-01-01\"]")
    sats: list[int] = []
    for item in nodes:
        if isinstance(item, int) and not isinstance(item, bool) and 0 <= item < len(names):
            found = [item]
        elif isinstance(item, str) and item in names:
            found = [names[item]]
        elif isinstance(item, str) and item in groups:
            found = groups[item]
        else:
            hint = suggest(str(item), [*names, *groups]) if isinstance(item, str) else ""
            raise ScenarioError(source, key, f"{item!r} is not a satellite name, index "
                                f"(0..{len(names) - 1}) or group name.{hint}")
        sats.extend(s for s in found if s not in sats)
    return sorted(sats)


def _per_node_tables(by_table: dict[str, type]) -> list[str]:
    return [t for t, cls in by_table.items() if per_node_keys(cls)]


def _overrides(table_name: str, values: Any, by_table: dict[str, type], key: str,
               source: str, class_name: str) -> Mapping[str, Any]:
    try:
        return _checked_overrides(table_name, values, by_table, key, source)
    except ScenarioError as exc:  # say which class, not only its index
        raise ScenarioError(source, exc.key, f"(node class {class_name!r}) {exc.problem}"
                            ) from None


def _checked_overrides(table_name: str, values: Any, by_table: dict[str, type], key: str,
                       source: str) -> Mapping[str, Any]:
    tables = _per_node_tables(by_table)
    if table_name not in by_table:
        raise ScenarioError(source, key, f"unknown key.{suggest(table_name, tables)} A node "
                            f"class holds name, nodes, description and the per-node tables: "
                            f"{', '.join(tables)}")
    cls = by_table[table_name]
    allowed = per_node_keys(cls)
    if not allowed:
        raise ScenarioError(source, key, f"[{table_name}] takes no per-node keys: set it "
                            f"fleet-wide; per-node tables: {', '.join(tables)}")
    if not isinstance(values, dict) or not values:
        raise ScenarioError(source, key, f"expected a [{SECTION}.{table_name}] table with "
                            f"some of: {', '.join(allowed)}")
    fields = {f.name for f in dataclasses.fields(cls)}
    for name in values:
        if name not in fields:
            raise ScenarioError(source, f"{key}.{name}", f"unknown key of [{table_name}]."
                                f"{suggest(name, allowed)} Per-node keys: {', '.join(allowed)}")
        if name not in allowed:
            raise ScenarioError(source, f"{key}.{name}", f"[{table_name}] cannot take {name} "
                                f"per node; set it fleet-wide in [{table_name}]. Per-node "
                                f"keys: {', '.join(allowed)}")
    built = build(cls, dict(values), key, source)  # types and bounds, as the fleet table's
    return {name: getattr(built, name) for name in values}


def per_node_params(params: Any, scenario: Scenario, table: str) -> Any:
    """``params`` (a model's fleet-wide table) with an (n,) float64 array for every key a
    node class of ``scenario`` sets in ``table``: the class's value on its nodes, the fleet's
    elsewhere. Keys no class sets stay numbers, so a scenario without classes is unchanged.
    """
    n = len(scenario.satellites)
    arrays: dict[str, np.ndarray] = {}
    for node_class in getattr(scenario, "node_classes", ()):
        sats = np.asarray(node_class.sats, dtype=np.intp)
        for key, value in node_class.tables.get(table, {}).items():
            if key not in arrays:
                arrays[key] = np.full(n, float(getattr(params, key)))
            arrays[key][sats] = float(value)
    return dataclasses.replace(params, **arrays) if arrays else params


def node_params(params: Any, sat: int) -> Any:
    """``params`` as node ``sat`` has them: each per-node array (``per_node_params``) taken
    at that node, so code written for one node's numbers reads its class's values."""
    values = {f.name: float(value[sat]) for f in dataclasses.fields(params)
              if isinstance(value := getattr(params, f.name), np.ndarray)}
    return dataclasses.replace(params, **values) if values else params


def classes_meta(scenario: Scenario) -> list[dict[str, Any]]:
    """The node classes as the twin's meta carries them (names, nodes, overridden keys)."""
    return [{"name": c.name, "sats": list(c.sats), "description": c.description,
             "tables": {t: dict(v) for t, v in c.tables.items()}}
            for c in getattr(scenario, "node_classes", ())]

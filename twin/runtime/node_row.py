"""One node's full row on demand: the ``node`` command.

Above ``FULL_STATE_MAX_SATS`` satellites the default ``state`` carries no node rows and a
viewer subscribes only for what it draws (twin.runtime.subscriptions), so the node an
operator selects may have no value on the stream at all. ``node`` answers with every
field's value for that one node, as of the newest step: a few kilobytes, whatever the
fleet's size. docs/protocol.md, "One node's full row: `node` (issue 22)", is the contract.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from twin.core.subsystem import CommandHandler
from twin.protocol.codec import ok
from twin.protocol.commands import CommandSpec, sat_arg
from twin.runtime.subscriptions import satellite_axis

if TYPE_CHECKING:
    from twin.runtime.server import TwinServer

NODE_COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("node", "one node's full row: every field's value for it at the newest step",
                "informational", (sat_arg("the node (index or name)"),),
                role="viewer"),
)


def node_row(fields: list[Any], n_sats: int, sat: int) -> dict[str, Any]:
    """Every field's value for node ``sat``, as plain msgpack-able values.

    A per-node scalar gives a number, a per-node vector a list (``pos_gcrs_km``: 3
    numbers), a station-by-node table the node's column (one value per station). Fields
    without a satellite axis (per group, per cluster) are left out: they are no node's.
    """
    row: dict[str, Any] = {}
    for f in fields:
        axis = satellite_axis(f.array, f.spec, n_sats)
        if axis is None:
            continue
        value = np.take(f.array, sat, axis=axis)
        row[f.spec.name] = value.item() if value.ndim == 0 else value.tolist()
    return row


class NodeRowCommands:
    """The handler of ``node``."""

    def __init__(self, server: TwinServer) -> None:
        self.server = server

    def handlers(self) -> dict[str, CommandHandler]:
        return {"node": self.node}

    def node(self, request: dict[str, Any]) -> dict[str, Any]:
        engine = self.server.engine
        sat = int(request["sat"])  # resolved to an index by the dispatcher (sat_arg)
        satellite = engine.scenario.satellites[sat]
        row = node_row(engine.fields, engine.n_sats, sat)
        units = {f.spec.name: f.spec.unit for f in engine.fields if f.spec.name in row}
        return ok(sat=sat, name=satellite.name, group=satellite.group,
                  norad_id=satellite.norad_id, t_utc=self.server.clock.t_utc,
                  step=self.server.clock.steps, row=row, units=units)

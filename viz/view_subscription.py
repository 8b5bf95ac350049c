"""What ``odc view`` asks the twin for when the default stream carries no node rows.

Above the twin's full-state threshold (``odc run --full-state-max-sats``, 20,000 by
default) a ``state`` has its header and fleet totals but no node rows (``reduced: true``).
The viewer then subscribes (docs/protocol.md, "Selective streams") for what it draws:
positions and velocities as float32, the coloured field, the sunlit fraction, the
contacts and the flag fields (``viz.node_colours.FLAG_FIELDS``), for every node up to
``viz.lod.DRAW_BUDGET`` nodes, else for every k-th node, the level of detail's sample
(``viz.lod.subscription_every``). It renews the subscription before it expires, asks again
after a twin restart and when the coloured field changes, and fetches the selected node's
full row (the ``node`` command) with each new frame. All of it through
``viz.async_commands``: the window never waits for the twin.

``SelectionFrames`` turns each message of the subscription into a ``state`` the scene
draws as it is: arrays of the whole fleet's shape, the subscribed rows (and the selected
node's fetched row) written in, every other row "no data" (NaN, or 0 for integers).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from twin.protocol.codec import Message, WireError
from viz import lod
from viz.async_commands import AsyncCommands
from viz.node_colours import FLAG_FIELDS

log = logging.getLogger("odc.viz.viewer")

MOVING_FIELDS = ("pos_gcrs_km", "pos_itrs_km", "vel_gcrs_km_s")
DRAWN_FIELDS = (*MOVING_FIELDS, "sunlit_frac", "in_contact", *FLAG_FIELDS)
"""What the 3D view draws besides the coloured field (those the twin has)."""
FLAGGED_BUDGET = 256
"""Where a sample is drawn, this many more nodes, the worst by the twin's limit monitor,
are received (positions and flags), so that those in alarm are drawn wherever they are."""
LET_GO_LINGER_S = 0.2
"""At close, how long the last ``unsubscribe`` may take to leave (a twin that is gone
costs the viewer this much)."""
RETRY_S = 2.0
"""After a refused or unanswered ``subscribe``, ask again this much later. (Unanswered
means 30 s, ``AsyncCommands``' default: a megafleet twin under load answers between steps
that take seconds.)"""
SILENT_S = 5.0
"""Reduced states but no message on our topic for this long: ask again (the twin lost it)."""


class Grant:
    """One subscription of the viewer: what it asked, what the twin granted, when to renew."""

    def __init__(self, commands: AsyncCommands) -> None:
        self.commands = commands
        self.request: dict[str, Any] | None = None  # the one asked for (or being asked)
        self.topic: bytes | None = None  # its topic once the twin granted it
        self.granted: dict[str, Any] = {}  # the twin's reply
        self.renew_at = math.inf
        self.error = ""
        self.asking: int | None = None
        self.id: str | None = None  # the granted subscription's id, until we let it go
        self._retry_at = 0.0
        self._granted_wall = 0.0
        self.last_message_wall = 0.0

    def reset(self) -> None:
        """Forget the grant (a new twin: it has none of ours to let go)."""
        self.__init__(self.commands)  # type: ignore[misc]

    def let_go(self) -> None:
        """Tell the twin we no longer take our subscription: it ends at once unless another
        client holds it (else it would run on for up to 30 s, and hold one of 32 slots)."""
        if self.id is not None:
            self.commands.send("unsubscribe", sub=self.id)
            self.id = None

    def want(self, wanted: dict[str, Any] | None, now: float) -> None:
        """Ask for ``wanted`` if it changed, renewal is due, or the topic went silent
        (None: want nothing, and let the old subscription go)."""
        if self.asking is not None:
            return
        if wanted is None:
            self.let_go()
            self.request, self.topic = None, None
            return
        silent = self.topic is not None and \
            now - max(self.last_message_wall, self._granted_wall) > SILENT_S
        if (wanted != self.request or now >= self.renew_at or silent) and \
                now >= self._retry_at:
            self.request = wanted
            self.asking = self.commands.send("subscribe", **wanted)

    def take(self, reply: Mapping[str, Any], now: float) -> None:
        """The twin's answer to our ``subscribe``."""
        self.asking = None
        topic = reply.get("topic")
        if reply.get("ok") and isinstance(topic, str) and topic.startswith("sub/"):
            # Its id ("sub"; the reply's "id" is our request's, echoed), else the topic's.
            sub = reply.get("sub")
            granted_id = sub if isinstance(sub, str) else topic.removeprefix("sub/")
            if self.id is not None and self.id != granted_id:
                self.let_go()  # the one it replaces (another sort, page or colour)
            self.id = granted_id
            self._granted_wall = now  # give it time to speak before calling it silent
            self.topic = topic.encode()
            self.granted = dict(reply)
            renew = reply.get("renew_every_s")
            self.renew_at = now + (float(renew) if isinstance(renew, int | float) and
                                   0 < renew < 3600 else 10.0)
            self.error = ""
        else:
            self.error = str(reply.get("error", "subscribe refused"))[:200]
            log.warning("subscribe: %s", self.error)
            self.request = None  # ask again after the pause
            self._retry_at = now + RETRY_S


class ViewSubscription:
    """The viewer's subscriptions, asked for, renewed, changed and re-asked after restarts:
    ``drawn``, the nodes it draws, and ``flagged``, where a sample is drawn, the nodes the
    twin's limit monitor ranks worst (``top_field`` ``limit_level``), so that flagged nodes
    outside the sample are drawn too.

    Args:
        commands: The non-blocking command socket.
    """

    def __init__(self, commands: AsyncCommands) -> None:
        self.commands = commands
        self.drawn = Grant(commands)
        self.flagged = Grant(commands)
        self.every = 1
        self.n_sats = 0
        self.node_pending: int | None = None
        self.node_rows: dict[int, dict[str, Any]] = {}  # the fetched row, by node

    # The drawn subscription's state, as the viewer and its tests read it.
    @property
    def topic(self) -> bytes | None:
        return self.drawn.topic

    @property
    def request(self) -> dict[str, Any] | None:
        return self.drawn.request

    @property
    def granted(self) -> dict[str, Any]:
        return self.drawn.granted

    @property
    def error(self) -> str:
        return self.drawn.error or self.flagged.error

    @property
    def topics(self) -> set[bytes]:
        return {g.topic for g in (self.drawn, self.flagged) if g.topic is not None}

    def heard(self, topic: str, now: float) -> None:
        for grant in (self.drawn, self.flagged):
            if grant.topic is not None and grant.topic.decode() == topic:
                grant.last_message_wall = now

    def wanted(self, meta: Mapping[str, Any], colour_field: str | None) -> dict[str, Any]:
        """The drawn ``subscribe`` request for this meta and coloured field."""
        names = self._names(meta)
        chosen = [n for n in (*DRAWN_FIELDS, colour_field) if n and n in names]
        n = int(meta.get("sats", {}).get("n", 0))
        request: dict[str, Any] = {"fields": ",".join(dict.fromkeys(chosen)),
                                   "dtype": "float32"}
        every = lod.subscription_every(n)
        if every > 1:
            request["every"] = every
        return request

    def wanted_flagged(self, meta: Mapping[str, Any]) -> dict[str, Any] | None:
        """The flagged nodes' request where a sample is drawn (None: every node is)."""
        names = self._names(meta)
        n = int(meta.get("sats", {}).get("n", 0))
        if lod.subscription_every(n) <= 1 or "limit_level" not in names:
            return None
        chosen = [f for f in (*MOVING_FIELDS, *FLAG_FIELDS) if f in names]
        return {"fields": ",".join(chosen), "dtype": "float32", "top_field": "limit_level",
                "top_n": min(FLAGGED_BUDGET, n)}

    @staticmethod
    def _names(meta: Mapping[str, Any]) -> set[str]:
        return {str(f.get("name")) for f in meta.get("fields", []) if isinstance(f, dict)}

    def close(self) -> None:
        """Let our subscriptions go (the twin ends those no other client holds) and close."""
        self.drawn.let_go()
        self.flagged.let_go()
        self.commands.close(linger_s=LET_GO_LINGER_S)

    def reset(self) -> None:
        """Forget the grants (a twin restart): the next ``poll`` asks again at once."""
        self.drawn.reset()
        self.flagged.reset()
        self.node_pending = None

    def poll(self, meta: Mapping[str, Any] | None, colour_field: str | None,
             now: float | None = None) -> None:
        """Take replies; ask (or ask again) when a request changed, renewal is due, a
        refusal's retry time came, or a topic went silent."""
        now = time.monotonic() if now is None else now
        for request_id, cmd, reply in self.commands.replies():
            if cmd == "node" and request_id == self.node_pending:
                self.node_pending = None
                if reply.get("ok") and isinstance(reply.get("row"), dict):
                    self.node_rows = {int(reply.get("sat", -1)): reply}
            for grant in (self.drawn, self.flagged):
                if cmd == "subscribe" and request_id == grant.asking:
                    grant.take(reply, now)
        if meta is None:
            return
        wanted = self.wanted(meta, colour_field)
        if self.drawn.asking is None and wanted != self.drawn.request:
            self.n_sats = int(meta.get("sats", {}).get("n", 0))
            self.every = int(wanted.get("every", 1))
        self.drawn.want(wanted, now)
        self.flagged.want(self.wanted_flagged(meta), now)

    def fetch_node(self, sat: int) -> None:
        """Ask for node ``sat``'s full row, unless a fetch is on its way."""
        if self.node_pending is None and sat >= 0:
            self.node_pending = self.commands.send("node", sat=int(sat))

    def status_line(self, n_selected: int | None) -> str:
        """What the viewer receives, for the HUD."""
        if self.error:
            return f"subscribe: {self.error}"
        if self.drawn.topic is None:
            return "asking the twin for node rows (subscribe)..."
        shown = self.n_sats if n_selected is None else n_selected
        sample = f", 1 in {self.every}" if self.every > 1 else ""
        flagged = " + the worst by limit level" if self.flagged.topic is not None else ""
        return f"showing {shown:,} of {self.n_sats:,} nodes, float32{sample}{flagged}"


class SelectionFrames:
    """Whole-fleet arrays from a subscription's messages, for the scene.

    Buffers are kept between messages (a million-row allocation per frame costs more
    than the rows written); only the subscribed rows, and the fetched row, change.
    """

    def __init__(self) -> None:
        self.meta_fields: dict[str, Mapping[str, Any]] = {}
        self.n_sats = 0
        self.buffers: dict[str, np.ndarray] = {}
        self.row_node = -1  # the node whose fetched row was written in
        self.extra_rows: np.ndarray | None = None  # the flagged nodes written in
        self.n_selected: int | None = None

    def configure(self, meta: Mapping[str, Any]) -> None:
        """Size for this meta's fleet and fields (drops every buffer)."""
        self.meta_fields = {str(f["name"]): f for f in meta.get("fields", [])
                            if isinstance(f, dict) and "name" in f}
        self.n_sats = int(meta.get("sats", {}).get("n", 0))
        self.buffers = {}
        self.row_node = -1
        self.extra_rows = None

    def _axis(self, name: str) -> int | None:
        entry = self.meta_fields.get(name)
        if entry is None:
            return None
        shape = list(entry.get("shape", ()))
        if entry.get("per_sat") and shape and shape[0] == self.n_sats:
            return 0
        if len(shape) == 2 and shape[1] == self.n_sats and shape[0] != self.n_sats:
            return 1
        return None

    def _buffer(self, name: str) -> np.ndarray:
        found = self.buffers.get(name)
        if found is None:
            entry = self.meta_fields[name]
            dtype = np.dtype(str(entry.get("dtype", "<f8")))
            shape = tuple(int(s) for s in entry.get("shape", ()))
            fill = np.nan if dtype.kind == "f" else 0
            found = self.buffers[name] = np.full(shape, fill, dtype=dtype)
        return found

    def frame(self, message: Message, row: Mapping[str, Any] | None = None,
              extra: Message | None = None) -> Message:
        """The ``state`` to draw from one subscription message, the newest message of the
        flagged nodes' subscription (``extra``) and a fetched row.

        Raises:
            WireError: a message that does not fit the meta (an unknown field, a node
                index out of range, rows that do not match the index).
        """
        self.clear_row(row)
        if self.extra_rows is not None:  # last frame's flagged nodes: no longer known
            self._fill(self.extra_rows)
            self.extra_rows = None
        out: dict[str, np.ndarray] = {}
        if extra is not None:  # first: the drawn nodes' rows, maybe a step newer, win
            self.extra_rows = self._write(extra, out, whole=False)
        index = self._write(message, out)
        self.n_selected = None if index is None else int(index.size)
        if row is not None:
            self.write_row(row, out)
        header = {key: value for key, value in message.header.items()
                  if key not in ("sub", "n_selected", "fields")}
        return Message("state", header, out)

    def _write(self, message: Message, out: dict[str, np.ndarray],
               whole: bool = True) -> np.ndarray | None:
        """A message's rows into the buffers (and into ``out``); returns its node index."""
        arrays = message.arrays
        index = arrays.get("sat_index")
        n = self.n_sats
        if index is not None:
            index = np.asarray(index, dtype=np.int64)
            if index.ndim != 1 or (index.size and (index.min() < 0 or index.max() >= n)):
                raise WireError(f"{message.topic}: sat_index out of range 0..{n - 1}")
        rows = n if index is None else int(index.size)
        for name, values in arrays.items():
            if name == "sat_index":
                continue
            if name not in self.meta_fields:
                raise WireError(f"{message.topic}: field {name!r} is not in meta")
            axis = self._axis(name)
            if axis is None:
                if whole:
                    out[name] = values
                continue
            if values.ndim <= axis or values.shape[axis] != rows:
                raise WireError(f"{message.topic}: {name} has {values.shape} for "
                                f"{rows} nodes")
            buffer = self._buffer(name)
            target = buffer if axis == 0 else buffer.T
            source = values if axis == 0 else values.T
            if source.shape[1:] != target.shape[1:]:
                raise WireError(f"{message.topic}: {name} rows are {source.shape[1:]}, "
                                f"meta says {target.shape[1:]}")
            if index is None:
                target[...] = source
            else:
                target[index] = source
            out[name] = buffer
        return index

    def _fill(self, nodes: np.ndarray | int) -> None:
        """Rows of ``nodes`` back to "no data" in every buffer."""
        for name, buffer in self.buffers.items():
            fill = np.nan if buffer.dtype.kind == "f" else 0
            if self._axis(name) == 1:
                buffer[:, nodes] = fill
            else:
                buffer[nodes] = fill

    def clear_row(self, row: Mapping[str, Any] | None) -> None:
        """Reset the previously fetched node's row when another (or none) takes over."""
        node = int(row.get("sat", -1)) if row is not None else -1
        if self.row_node < 0 or self.row_node == node:
            return
        self._fill(self.row_node)
        self.row_node = -1

    def write_row(self, reply: Mapping[str, Any], out: dict[str, np.ndarray]) -> None:
        """The ``node`` reply's values into the buffers (its fields added to ``out``)."""
        sat = reply.get("sat")
        values = reply.get("row")
        if not isinstance(sat, int) or not 0 <= sat < self.n_sats or \
                not isinstance(values, dict):
            return
        for name, value in values.items():
            axis = self._axis(name) if isinstance(name, str) else None
            if axis is None:
                continue
            buffer = self._buffer(name)
            try:
                if axis == 1:
                    buffer[:, sat] = value
                else:
                    buffer[sat] = value
            except (TypeError, ValueError):
                continue  # a value of another shape: that field stays as it was
            out.setdefault(name, buffer)
        self.row_node = sat


class ViewerSubscribe:
    """A ``ViewerApp``'s part in following a reduced stream (a mixin).

    The host class provides the scene, the stream, meta, ``reduced`` (the newest
    ``state`` said ``reduced: true``) and ``refresh_hud``.
    """

    scene: Any
    stream: Any
    meta: Mapping[str, Any] | None
    reduced: bool
    refresh_hud: Any

    def _init_subscription(self, commands: Any) -> None:
        self.reduced = False
        self.subscription: ViewSubscription | None = None
        self.selection_frames = SelectionFrames()
        self._frames_meta: Mapping[str, Any] | None = None
        self._row_shown: int | None = None
        self._flagged_message: Message | None = None
        address = getattr(commands, "address", None)
        if self.stream is not None and isinstance(address, str):
            self.subscription = ViewSubscription(AsyncCommands(
                address, keys=getattr(commands, "keys", None)))

    def close_subscription(self) -> None:
        if self.subscription is not None:
            self.subscription.close()

    def forget_subscription(self) -> None:
        """A twin restart: the new twin knows nothing of ours; ask it again."""
        if self.subscription is not None:
            self.subscription.reset()
            self.subscription.node_rows = {}
        self._flagged_message = None
        if self.stream is not None:
            self.stream.selection_topics = set()

    def selection_state(self, messages: Mapping[str, Message]) -> Message | None:
        """The ``state`` to draw from our subscriptions' messages, by topic (None: no
        message of the drawn nodes in them)."""
        sub = self.subscription
        if sub is None or self.meta is None:
            return None
        now = time.monotonic()
        for topic in messages:
            sub.heard(topic, now)
        flagged = sub.flagged.topic
        if flagged is not None and flagged.decode() in messages:
            self._flagged_message = messages[flagged.decode()]
        drawn = sub.drawn.topic
        message = messages.get(drawn.decode()) if drawn is not None else None
        if message is None:
            return None
        if self._frames_meta is not self.meta:
            self.selection_frames.configure(self.meta)
            self._frames_meta = self.meta
        extra = self._flagged_message if flagged is not None else None
        selected = int(self.scene.selected)
        state = self.selection_frames.frame(message, sub.node_rows.get(selected), extra)
        self._row_shown = selected if selected in sub.node_rows else None
        if selected >= 0:
            sub.fetch_node(selected)  # the selected node's row, fresh with each frame
        return state

    def follow_subscription(self) -> None:
        """Ask, renew or change the subscription; fetch a newly selected node's row."""
        sub = self.subscription
        if sub is not None and not self.reduced and self.scene.sample_every is not None:
            # A twin (restarted) that sends full states again: draw as before, not ours.
            self.scene.sample_every = None
            self.stream.selection_topics = set()
            if self.meta is not None:
                self.scene.build(self.meta)
        if sub is None or not self.reduced or self.meta is None:
            return
        field = self.scene.field.name if self.scene.field is not None else None
        sub.poll(self.meta, field)
        self.stream.selection_topics = sub.topics
        every = sub.every if sub.request is not None else None
        if every is not None and self.scene.sample_every != every:
            # The drawn sample is exactly the subscribed nodes (viz.lod.strided_nodes).
            self.scene.sample_every = every
            self.scene.build(self.meta)
        selected = int(self.scene.selected)
        if selected >= 0 and selected not in sub.node_rows:
            sub.fetch_node(selected)
        elif selected in sub.node_rows and self._row_shown != selected \
                and isinstance(self.scene.arrays, dict) and self.scene.arrays:
            # The row arrived between frames: show it now, not with the next frame.
            self.selection_frames.clear_row(sub.node_rows[selected])
            self.selection_frames.write_row(sub.node_rows[selected], self.scene.arrays)
            self._row_shown = selected
            self.scene.redraw()
            self.refresh_hud(force=True)

    def receiving_line(self) -> str | None:
        """What the viewer receives, when it subscribed (None: the default stream)."""
        if self.subscription is None or not self.reduced:
            return None
        return self.subscription.status_line(self.selection_frames.n_selected)

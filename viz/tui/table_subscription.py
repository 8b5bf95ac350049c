"""The node table's rows on a reduced stream: what ``odc tui`` asks the twin for.

Above the twin's full-state threshold (20,000 nodes by default) a ``state`` carries no
node rows (``reduced: true``). While the node table shows, the dashboard subscribes
(docs/protocol.md, "Selective streams") to the rows it lists, float32, at
``TABLE_RATE_HZ``:

* sorted by a number column: the ``TABLE_TOP_N`` nodes with the highest (``▼``) or lowest
  (``▲``) values of that field (``top_field``, ``top_n``, ``top_order``), in that order;
* sorted by name or group, or not sorted: ``TABLE_TOP_N`` nodes in index order from the
  page the table is on (``first``, ``stop``; ``]`` past the last row turns the page);
* a name filter that is exactly a group's name: only that group's nodes (``group``).

The fields are the table's columns' (at most the twin's 64 a subscription). The request
is asked again when the sort, the group or the page changes (once it has been the same
for ``SETTLE_S``), renewed before it expires and asked again after a twin restart, all
through ``viz.view_subscription.Grant`` on a ``viz.async_commands`` socket, so the
dashboard never waits for the twin. When the table is not shown nothing is renewed and
the twin drops the subscription 30 s later.

The rows of each message are kept as they came (``SelectedRows``: the nodes and one short
array per field), not spread into whole-fleet arrays: the table lists only the nodes it
received, and a million-node fleet costs the dashboard a few hundred rows.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from twin.protocol.codec import Message, WireError
from viz.async_commands import AsyncCommands
from viz.tui.levels import ALARM, OK, limit_levels
from viz.tui.model import COLUMN_PRIORITY
from viz.view_subscription import LET_GO_LINGER_S, Grant

if TYPE_CHECKING:
    from viz.tui.model import Column, FleetModel

TABLE_TOP_N = 200
"""Nodes the table asks for: a few pages of a tall terminal."""
TABLE_RATE_HZ = 2.0
"""Messages a second the table's subscription asks for (the header keeps the stream's pace)."""
SETTLE_S = 0.3
"""A changed request (sort, filter, page) is asked for once it stayed the same this long."""
MAX_FIELDS = 64
MAX_FIELDS_TEXT = 500
"""The twin's most fields a subscription, and the longest ``fields`` text it takes."""
POLL_S = 0.25
"""How often the dashboard takes the twin's replies and checks what the table needs."""
ALWAYS = ("limit_level", "sunlit_frac")
"""Fields asked for whatever the columns: the alarm colours and the eclipse filter."""


def fields_text(names: list[str]) -> str:
    """The first of ``names`` that fit the twin's bounds, comma-separated."""
    kept: list[str] = []
    length = -1
    for name in names[:MAX_FIELDS]:
        if length + 1 + len(name) > MAX_FIELDS_TEXT:
            break
        kept.append(name)
        length += 1 + len(name)
    return ",".join(kept)


@dataclass
class SelectedRows:
    """One message of the table's subscription: its nodes and their values.

    Attributes:
        sats: (k,) node indices, in the twin's order (rank for a top-N request).
        arrays: field name -> (k,) values of those nodes (wire units).
        step: The twin's step the rows are of.
        topic: The subscription's topic they came on.
        levels: field name -> (k,) limit levels (the columns' limits).
        worst: (k,) the worst level of each row.
    """

    sats: np.ndarray
    arrays: dict[str, np.ndarray]
    step: int = -1
    topic: bytes = b""
    levels: dict[str, np.ndarray] = field(default_factory=dict)
    worst: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))

    def rows_of(self, sats: np.ndarray) -> np.ndarray:
        """Positions of ``sats`` in this message (-1: not in it)."""
        order = np.argsort(self.sats, kind="stable")
        sorted_sats = self.sats[order]
        where = np.searchsorted(sorted_sats, sats)
        where = np.clip(where, 0, max(sorted_sats.size - 1, 0))
        found = sorted_sats.size > 0
        hit = (sorted_sats[where] == sats) if found else np.zeros(sats.shape, bool)
        return np.where(hit, order[where] if found else -1, -1)

    def values(self, key: str, sats: np.ndarray) -> np.ndarray | None:
        """Field ``key`` of nodes ``sats`` (NaN for a node not in the message)."""
        array = self.arrays.get(key)
        if array is None:
            return None
        rows = self.rows_of(sats)
        out = np.full(sats.shape, np.nan)
        out[rows >= 0] = array[rows[rows >= 0]]
        return out

    def rate(self, columns: list[Column]) -> None:
        """Each row's limit levels, from the columns' limits and the twin's limit monitor."""
        worst = np.zeros(self.sats.size, np.uint8)
        for column in columns:
            values = self.arrays.get(column.key)
            if column.limits and values is not None:
                levels = limit_levels(values.astype(np.float64), column.limits)
                self.levels[column.key] = levels
                np.maximum(worst, levels, out=worst)
        own = self.arrays.get("limit_level")
        if own is not None:
            own = np.clip(np.nan_to_num(own), OK, ALARM).astype(np.uint8)
            self.levels["limit_level"] = own
            np.maximum(worst, own, out=worst)
        self.worst = worst


def selected_rows(message: Message, n_sats: int) -> SelectedRows:
    """A ``sub/`` message as rows.

    Raises:
        WireError: no ``sat_index``, one out of ``0..n_sats-1``, or a field whose length
            is not the number of nodes.
    """
    index = message.arrays.get("sat_index")
    if index is None or index.ndim != 1:
        raise WireError(f"{message.topic}: no sat_index (the table asked for selected nodes)")
    sats = np.asarray(index, dtype=np.int64)
    if sats.size and (sats.min() < 0 or sats.max() >= n_sats):
        raise WireError(f"{message.topic}: sat_index out of range 0..{n_sats - 1}")
    arrays: dict[str, np.ndarray] = {}
    for name, values in message.arrays.items():
        if name == "sat_index" or values.ndim != 1:
            continue  # the index itself; fields without a satellite axis come whole
        if values.shape[0] != sats.size:
            raise WireError(f"{message.topic}: {name} has {values.shape[0]} values for "
                            f"{sats.size} nodes")
        arrays[name] = values
    step = message.header.get("step")
    return SelectedRows(sats, arrays, step if isinstance(step, int) else -1,
                        message.topic.encode())


class TableSubscription:
    """The node table's subscription: asked, changed, renewed, taken.

    Args:
        commands: The non-blocking command socket (its own DEALER).
    """

    def __init__(self, commands: AsyncCommands) -> None:
        self.commands = commands
        self.grant = Grant(commands)
        self.page_first = 0
        self._pending: dict[str, Any] | None = None
        self._pending_since = 0.0
        self._groups: tuple[int, dict[str, str]] = (0, {})  # id(model.groups), lower -> name

    @property
    def topic(self) -> bytes | None:
        return self.grant.topic

    @property
    def error(self) -> str:
        return self.grant.error

    def wanted(self, model: FleetModel) -> dict[str, Any]:
        """The request for the table as the model sorts and filters it."""
        names = {str(e.get("name")) for e in model.meta.get("fields", [])
                 if isinstance(e, dict)}
        # The columns most needed first (as a narrow terminal keeps them), so those that
        # show are asked for when the twin's bounds leave some out.
        rank = {key: i for i, key in enumerate(COLUMN_PRIORITY)}
        keys = sorted((c.key for c in model.columns if c.key in names),
                      key=lambda k: rank.get(k, len(rank)))
        sort = model.sort_key
        column = model.column(sort) if sort else None
        by_field = column is not None and column.numeric and sort in names
        chosen = [k for k in (sort if by_field else "", *ALWAYS) if k in names]
        chosen += [k for k in keys if k not in chosen]
        request: dict[str, Any] = {"fields": fields_text(chosen), "dtype": "float32",
                                   "rate_hz": TABLE_RATE_HZ}
        group = self.group_filter(model)
        if group:
            request["group"] = group
        if by_field:
            request.update(top_field=sort, top_n=min(TABLE_TOP_N, max(model.n, 1)),
                           top_order="max" if model.sort_descending else "min")
        elif group and "limit_level" in names:  # the group's nodes, those in alarm first
            request.update(top_field="limit_level", top_n=TABLE_TOP_N)
        else:
            first = min(self.page_first, max(model.n - 1, 0))
            request.update(first=first, stop=min(first + TABLE_TOP_N, model.n))
        return request

    def group_filter(self, model: FleetModel) -> str:
        """The group the name filter names exactly (case aside), or ``""``."""
        text = model.text_filter
        if not text:
            return ""
        if self._groups[0] != id(model.groups):  # a million names: once per meta
            self._groups = (id(model.groups), {g.lower(): g for g in set(model.groups)})
        return self._groups[1].get(text, "")

    def poll(self, model: FleetModel | None, shown: bool, now: float | None = None) -> None:
        """Take replies; ask for what the table shows (settled), renew, or want nothing."""
        now = time.monotonic() if now is None else now
        for request_id, cmd, reply in self.commands.replies():
            if cmd == "subscribe" and request_id == self.grant.asking:
                self.grant.take(reply, now)
        if not shown or model is None or not model.n or not model.meta:
            self.grant.want(None, now)
            self._pending = None
            return
        wanted = self.wanted(model)
        if wanted != self._pending:
            self._pending, self._pending_since = wanted, now
        if wanted != self.grant.request and self.grant.request is not None and \
                now - self._pending_since < SETTLE_S:
            return  # the operator is still choosing (typing, pressing s): ask once settled
        self.grant.want(wanted, now)

    def heard(self, now: float) -> None:
        self.grant.last_message_wall = now

    def reset(self) -> None:
        """A twin restart: ask the new twin again at the next poll."""
        self.grant.reset()

    def close(self) -> None:
        """Let the table's subscription go (the twin ends it unless shared) and close."""
        self.grant.let_go()
        self.commands.close(linger_s=LET_GO_LINGER_S)

    def title(self, model: FleetModel, listed: int) -> str:
        """What the table lists, for its title."""
        request = self.grant.request or {}
        if self.grant.error:
            return f"Fleet · {model.n:,} nodes · the twin refused the table's rows: " \
                   f"{self.grant.error}"
        rows = model.selected
        group = request.get("group")
        where = f" of group {group}" if group else ""
        if self.ranks_by_sort(model):
            column = model.column(model.sort_key)
            label = column.label if column is not None else model.sort_key
            words = "lowest" if request.get("top_order") == "min" else "top"
            whole = f"group {group}" if group else f"{model.n:,}"
            what = f"{words} {request['top_n']:,} of {whole} by {label}"
        elif "first" in request:
            what = f"nodes {request['first'] + 1:,}–{request['stop']:,} of {model.n:,}{where} " \
                   "by index"
        else:
            what = f"{TABLE_TOP_N:,} nodes{where}, those in alarm first"
        if rows is None or self.grant.topic is None:
            return f"Fleet · asking the twin for the {what} (subscribe)…"
        if rows.topic != self.grant.topic:
            return f"Fleet · asking the twin for the {what}…"
        shown = f"{listed:,} listed of the " if listed != rows.sats.size else ""
        paging = " (↑↓ past the ends: the next nodes)" if "first" in request else ""
        return f"Fleet · {shown}{what}, from the twin's selective stream{paging}"

    def ranks_by_sort(self, model: FleetModel) -> bool:
        """Whether the rows are the twin's top (or lowest) by the table's sort field."""
        request = self.grant.request or {}
        return request.get("top_field") == model.sort_key and bool(model.sort_key)

    def turn_page(self, model: FleetModel, direction: int) -> bool:
        """``direction`` +1 or -1: the next or previous nodes by index (True: turned)."""
        request = self.grant.request or {}
        if "first" not in request:
            return False
        step = TABLE_TOP_N // 2  # half a request: the rows around the cursor stay listed
        first = int(np.clip(self.page_first + direction * step, 0,
                            max(model.n - TABLE_TOP_N, 0)))
        if first == self.page_first:
            return False
        self.page_first = first
        return True


def merge_selection(model: FleetModel, selections: Mapping[str, Message],
                    subscription: TableSubscription) -> bool:
    """Take our topic's newest message into ``model.selected``; True if it changed.

    Raises:
        WireError: a message that does not fit the fleet (counted as bad by the caller).
    """
    topic = subscription.topic
    message = selections.get(topic.decode()) if topic is not None else None
    if message is None:
        return False
    subscription.heard(time.monotonic())
    rows = selected_rows(message, model.n)
    model.scale_from_rows(rows.arrays)
    rows.rate(model.columns)
    model.selected = rows
    return True


class TableRowsFeed:
    """``DashboardApp``'s part in the table's subscription (a mixin).

    The host provides the model, ``connect``, the addresses and keys, the view flags,
    ``fleet_table``, ``unusable`` (bad messages), ``_schedule_draw`` and textual's ``App``.
    The stream worker reads ``selection_topics`` (the topics it hands the UI).
    """

    model: FleetModel
    table_subscription: TableSubscription | None = None
    selection_topics: frozenset[bytes] = frozenset()
    fleet_view_shown: bool = False
    cluster_view_shown: bool = False

    def start_table_subscription(self) -> None:
        """A non-blocking command socket of its own, and the timer that asks and renews."""
        self.table_subscription = TableSubscription(AsyncCommands(
            self.cmd_address, keys=self.keys))  # type: ignore[attr-defined]
        self.set_interval(POLL_S, self.follow_table_subscription)  # type: ignore[attr-defined]

    @property
    def reduced_stream(self) -> bool:
        """The newest state has no node rows (a fleet above the twin's full-state limit)."""
        return self.model.header.get("reduced") is True

    @property
    def table_shown(self) -> bool:
        """The node table is the main screen's view (a node's screen may be on top)."""
        return not (self.fleet_view_shown or self.cluster_view_shown)

    def follow_table_subscription(self) -> None:
        """Ask for the table's rows while it shows on a reduced stream, else let go."""
        sub = self.table_subscription
        if sub is None:
            return
        wanted = self.reduced_stream and self.table_shown
        sub.poll(self.model if wanted else None, wanted)
        topic = sub.topic if wanted else None
        self.selection_topics = frozenset() if topic is None else frozenset({topic})
        if not wanted and self.model.selected is not None:
            self.model.selected = None  # not listed now; fresh rows when the table is back

    def take_selections(self, selections: Mapping[str, Message], restarted: bool) -> bool:
        """The table's subscription's newest rows (True: the table changed)."""
        sub = self.table_subscription
        if sub is None:
            return False
        if restarted:  # the new twin knows nothing of ours: ask it again at once
            sub.reset()
            self.model.selected = None
            self.selection_topics = frozenset()
            return True
        if not selections or not (self.reduced_stream and self.table_shown):
            return False
        try:
            return merge_selection(self.model, selections, sub)
        except WireError as exc:
            self.unusable.add("unusable_selection",  # type: ignore[attr-defined]
                              f"table rows not shown ({exc})")
            return False

    def table_title(self, listed: int) -> str | None:
        """The node table's title on a reduced stream (None: a full stream's)."""
        if not self.reduced_stream:
            return None
        sub = self.table_subscription
        if sub is None:
            return f"Fleet · {self.model.n:,} nodes · this stream carries no node rows " \
                   "(v: the fleet view)"
        return sub.title(self.model, listed)

    def on_fleet_table_page_turn(self, message: Any) -> None:
        """Past the last (first) row of a page by index: the next (previous) nodes."""
        sub = self.table_subscription
        if sub is not None and sub.turn_page(self.model, message.direction):
            self.follow_table_subscription()

    def on_unmount(self) -> None:
        # (textual calls each class's handler along the MRO: CommandActions' too)
        if self.table_subscription is not None:
            self.table_subscription.close()

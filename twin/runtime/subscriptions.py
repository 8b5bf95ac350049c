"""Selective streams: a client asks, over the command socket, for the fields, dtype,
satellites and rate it needs, and reads them on a topic of its own.

Why a command and a topic, not a topic scheme alone: a PUB socket filters by topic prefix
and cannot see who listens, nor read anything a subscriber sends. So the request (fields,
a downcast, a selection, a rate) travels on the command socket, where it is checked against
the scenario and refused with a clear error; the reply names a topic, ``sub/<id>``, that
the client subscribes to. ``<id>`` is a hash of the normalised request, so every client
asking the same thing gets the same topic, and the twin encodes and sends each distinct
subscription once per frame however many clients share it (ZeroMQ fans the one message
out). A subscription lives ``SUBSCRIPTION_TTL_S`` after its last request: clients renew by
asking again (the twin cannot see who is still there). The topic does not start with
``state``, so a client subscribed to ``state`` (or to everything) never receives another's
selection by prefix, except the empty prefix, which receives every topic.

docs/protocol.md, "Selective streams and fleet aggregates (issue 22)", is the contract.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from twin.core.subsystem import CommandHandler, CommandRejected, Field
from twin.protocol.codec import TOPIC_SUBSCRIPTION_PREFIX, FieldSpec, ok, pack
from twin.protocol.commands import Arg, CommandSpec

if TYPE_CHECKING:
    from twin.runtime.server import TwinServer

MAX_SUBSCRIPTIONS = 32
"""Distinct live subscriptions at once; a 33rd is refused until one expires."""
MAX_SUBSCRIPTION_FIELDS = 64
MAX_SUBSCRIPTION_FRAME_BYTES = 64 << 20
"""A subscription whose frame would be larger is refused (ask for fewer fields or nodes)."""
MAX_HOLDERS = 1024
"""Clients counted as holding one subscription; past this the one whose renewal is oldest
gives way (it renews, or its share lapses as it would have)."""
SUBSCRIPTION_TTL_S = 30.0
"""A subscription no client has asked for again within this long stops (and its topic
goes quiet); clients renew every ``SUBSCRIPTION_TTL_S / 3``."""
FULL_STATE_MAX_SATS = 20_000
"""Above this many satellites the default ``state`` message leaves out every field with a
satellite axis (starlink, 4,428, keeps today's full frame); at a million a full frame is
~280 MB. Clients there read ``aggregate`` and ask for what they draw (``subscribe``)."""
DTYPES = ("native", "float32")

SUBSCRIPTION_COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("subscribe", "a stream of chosen fields, nodes, dtype and rate on a topic "
                "of its own (ask again within 30 s to keep it)", "informational", (
        Arg("fields", "text", "field names, comma-separated (default: every field)"),
        Arg("dtype", "choice", "float32: every 64-bit float field sent as 32-bit",
            choices=DTYPES, default="native"),
        Arg("group", "text", "only the nodes of this group"),
        Arg("first", "integer", "only nodes from this index", min=0),
        Arg("stop", "integer", "only nodes below this index", min=1),
        Arg("every", "integer", "then every k-th node (decimation)", min=1, max=1_000_000,
            default=1),
        Arg("top_field", "text", "then only the top_n nodes by this field"),
        Arg("top_n", "integer", "how many nodes top_field keeps", min=1),
        Arg("top_order", "choice", "max: the highest values; min: the lowest",
            choices=("max", "min"), default="max"),
        Arg("rate_hz", "number", "at most this many messages per wall second (default: "
            "every step)", unit="Hz", min=0.01, max=1000.0),
    ), role="viewer"),
    CommandSpec("unsubscribe", "let go of a subscription now (it ends when no client "
                "holds it)", "informational", (
        # (Not "id": that key is every request's own, echoed in its reply.)
        Arg("sub", "text", "the subscription's id: subscribe's reply's id, its messages' sub",
            required=True),
    ), role="viewer"),
    CommandSpec("subscriptions", "the live subscriptions and what each has cost",
                "informational", role="viewer"),
)


def satellite_axis(array: np.ndarray, spec: FieldSpec, n_sats: int) -> int | None:
    """The axis of a field that runs over satellites, or None (sent whole)."""
    if spec.per_sat and array.ndim >= 1 and array.shape[0] == n_sats:
        return 0
    if array.ndim == 2 and array.shape[1] == n_sats and array.shape[0] != n_sats:
        return 1  # station x satellite, user x satellite
    return None


def default_state_fields(fields: list[Field], n_sats: int,
                         full_state_max_sats: int = FULL_STATE_MAX_SATS) -> list[Field]:
    """The fields of the default ``state`` message: all of them up to
    ``full_state_max_sats`` satellites, above it those without a satellite axis."""
    if n_sats <= full_state_max_sats:
        return fields
    return [f for f in fields if n_sats not in f.array.shape]


@dataclass
class Subscription:
    """One distinct subscription: what it selects, and its counters."""

    id: str
    fields: list[Field]
    downcast: bool
    base_index: np.ndarray | None  # static selection (group, range, decimation); None: all
    top_field: Field | None
    top_n: int
    top_max: bool
    rate_hz: float | None
    n_sats: int
    expires_at: float = 0.0
    next_due: float = 0.0
    seq: int = 0
    encodings: int = 0
    bytes_sent: int = 0
    requests: int = 0
    specs: list[FieldSpec] = field(default_factory=list)
    holders: dict[str, float] = field(default_factory=dict)
    """Each client holding it (its connection) -> when its share lapses (monotonic s)."""

    @property
    def topic(self) -> bytes:
        return TOPIC_SUBSCRIPTION_PREFIX + self.id.encode()

    def selected(self) -> np.ndarray | None:
        """The nodes of this frame, in order (None: every node)."""
        index = self.base_index
        if self.top_field is None:
            return index
        values = self.top_field.array if index is None else self.top_field.array[index]
        values = np.asarray(values, dtype=np.float64)
        key = np.where(np.isfinite(values), -values if self.top_max else values, np.inf)
        k = min(self.top_n, key.size)
        # The k smallest keys; of equal ones at the cut, the lowest nodes (positions are in
        # ascending node order), so the selection does not depend on how a partition fell.
        threshold = np.partition(key, k - 1)[k - 1]
        better = np.flatnonzero(key < threshold)
        top = np.concatenate((better, np.flatnonzero(key == threshold)[:k - better.size]))
        top = top[np.isfinite(key[top])]  # never a node without a value
        top = top[np.lexsort((top, key[top]))]  # best first, ties by node index
        return top.astype(np.int64) if index is None else index[top]

    def arrays(self, index: np.ndarray | None) -> tuple[list[FieldSpec], list[np.ndarray]]:
        specs: list[FieldSpec] = []
        arrays: list[np.ndarray] = []
        if index is not None:
            specs.append(FieldSpec("sat_index", "<i4", (index.size,), "index",
                                   "the nodes of this frame, in buffer order"))
            arrays.append(index.astype("<i4"))
        for f in self.fields:
            array = f.array
            axis = satellite_axis(array, f.spec, self.n_sats)
            if index is not None and axis is not None:
                array = np.take(array, index, axis=axis)
            if self.downcast and array.dtype == np.float64:
                array = array.astype("<f4")
            array = np.ascontiguousarray(array)
            specs.append(FieldSpec(f.spec.name, array.dtype.str, array.shape, f.spec.unit))
            arrays.append(array)
        return specs, arrays

    def estimate_bytes(self) -> int:
        n = self.n_sats if self.base_index is None else self.base_index.size
        if self.top_field is not None:
            n = min(n, self.top_n)
        total = 4 * n
        for f in self.fields:
            itemsize = 4 if self.downcast and f.array.dtype == np.float64 else f.array.itemsize
            axis = satellite_axis(f.array, f.spec, self.n_sats)
            size = f.array.size if axis is None else f.array.size // self.n_sats * n
            total += size * itemsize
        return total

    def entry(self, now: float) -> dict[str, Any]:
        return {"id": self.id, "topic": self.topic.decode(), "fields": [
                f.spec.name for f in self.fields], "float32": self.downcast,
                "top_field": self.top_field.spec.name if self.top_field else None,
                "n_selected": None if self.base_index is None else int(self.base_index.size),
                "rate_hz": self.rate_hz, "expires_in_s": round(self.expires_at - now, 3),
                "holders": sum(1 for t in self.holders.values() if t > now),
                "encodings": self.encodings, "bytes_sent": self.bytes_sent,
                "requests": self.requests}


class SubscriptionHub:
    """The live subscriptions of one twin: made, renewed and expired by commands, and
    encoded once each per due frame."""

    def __init__(self, fields: list[Field], groups: list[str],
                 clock: Any = time.monotonic) -> None:
        self.fields = {f.spec.name: f for f in fields}
        self.groups = np.asarray(groups)
        self.group_names = set(groups)
        self.n_sats = len(groups)
        self.live: dict[str, Subscription] = {}
        self.clock = clock
        self.encodings = 0
        self.expired = 0
        self.ended = 0

    def subscribe(self, request: dict[str, Any], holder: str = "local") -> Subscription:
        """The subscription a request asks for, made or renewed, for client ``holder``.

        Raises:
            CommandRejected: naming what is wrong with the request.
        """
        self.expire()
        canonical, sub = self._parse(request)
        sub_id = hashlib.sha1(pack(canonical)).hexdigest()[:12]
        now = self.clock()
        existing = self.live.get(sub_id)
        if existing is None:
            if len(self.live) >= MAX_SUBSCRIPTIONS:
                raise CommandRejected(
                    f"{len(self.live)} subscriptions are live, at most "
                    f"{MAX_SUBSCRIPTIONS}; share one (ask for the same) or wait for one to "
                    f"expire ({SUBSCRIPTION_TTL_S:g} s after its last request)")
            sub.id = sub_id
            sub.next_due = now
            self.live[sub_id] = existing = sub
        existing.expires_at = now + SUBSCRIPTION_TTL_S
        holders = existing.holders
        if holder not in holders and len(holders) >= MAX_HOLDERS:
            del holders[min(holders, key=holders.__getitem__)]
        holders[holder] = existing.expires_at
        existing.requests += 1
        return existing

    def unsubscribe(self, sub_id: str, holder: str = "local") -> tuple[str, bool, int]:
        """Client ``holder`` lets go of subscription ``sub_id`` (or its topic): (its id,
        whether it ended, the clients still holding it).

        Raises:
            CommandRejected: No such live subscription, or this client does not hold it.
        """
        self.expire()
        sub_id = sub_id.removeprefix(TOPIC_SUBSCRIPTION_PREFIX.decode())  # (its topic, too)
        sub = self.live.get(sub_id)
        if sub is None:
            raise CommandRejected(f"no live subscription {sub_id[:40]!r} (it ended or "
                                  "expired; subscriptions lists those live)")
        if holder not in sub.holders:
            raise CommandRejected(f"subscription {sub_id} is not held by this client: only "
                                  "a client that subscribed, on the same connection, lets go "
                                  "(one that odc cmd made ends 30 s after its last subscribe)")
        del sub.holders[holder]
        now = self.clock()
        left = [t for t in sub.holders.values() if t > now]
        if not left:
            del self.live[sub_id]
            self.ended += 1
            return sub_id, True, 0
        sub.expires_at = max(left)
        return sub_id, False, len(left)

    def expire(self) -> None:
        now = self.clock()
        for sub_id in [k for k, s in self.live.items() if s.expires_at <= now]:
            del self.live[sub_id]
            self.expired += 1

    def _field(self, name: str, what: str) -> Field:
        found = self.fields.get(name)
        if found is None:
            close = sorted(n for n in self.fields if n.startswith(name[:4]))[:5]
            hint = f" (near: {', '.join(close)})" if close else ""
            raise CommandRejected(f"{what} {name[:64]!r} is not a field of this "
                                  f"twin{hint}; meta.fields lists them")
        return found

    def _parse(self, request: dict[str, Any]) -> tuple[dict[str, Any], Subscription]:
        n = self.n_sats
        names_text = request.get("fields")
        if names_text is None or names_text.strip() in ("", "all"):
            chosen = list(self.fields.values())
        else:
            names = [s.strip() for s in names_text.split(",") if s.strip()]
            if not names:
                raise CommandRejected("fields names no field (comma-separated "
                                      "names, or omit it for every field)")
            if len(names) != len(set(names)):
                raise CommandRejected("fields names a field twice")
            chosen_set = {self._field(name, "field").spec.name for name in names}
            chosen = [f for f in self.fields.values() if f.spec.name in chosen_set]
        if len(chosen) > MAX_SUBSCRIPTION_FIELDS:
            raise CommandRejected(f"{len(chosen)} fields, at most "
                                  f"{MAX_SUBSCRIPTION_FIELDS}; name the ones you need")
        first = int(request.get("first", 0))
        stop = int(request.get("stop", n))
        if stop > n:
            raise CommandRejected(f"stop {stop} is past the fleet's {n} nodes")
        if first >= stop:
            raise CommandRejected(f"first {first} is not below stop {stop}")
        group = request.get("group")
        every = int(request.get("every", 1))
        base: np.ndarray | None = None
        if group is not None or first > 0 or stop < n or every > 1:
            base = np.arange(first, stop, dtype=np.int64)
            if group is not None:
                if group not in self.group_names:
                    known = ", ".join(sorted(self.group_names))[:200]
                    raise CommandRejected(f"group {group[:64]!r} is not a group of "
                                          f"this scenario ({known})")
                base = base[self.groups[base] == group]
            base = base[::every]
            if base.size == 0:
                raise CommandRejected("the selection (group, first, stop, every) "
                                      "holds no node")
        top_name, top_n = request.get("top_field"), request.get("top_n")
        if (top_name is None) != (top_n is None):
            raise CommandRejected("top_field and top_n go together")
        top_field = None
        if top_name is not None:
            top_field = self._field(top_name, "top_field")
            if top_field.array.shape != (n,) or top_field.array.dtype.kind not in "fiu":
                raise CommandRejected(f"top_field {top_name!r} is not a number per "
                                      "node")
        downcast = request.get("dtype", "native") == "float32"
        rate = request.get("rate_hz")
        sub = Subscription("", chosen, downcast, base, top_field, int(top_n or 0),
                           request.get("top_order", "max") == "max",
                           None if rate is None else float(rate), n)
        size = sub.estimate_bytes()
        if size > MAX_SUBSCRIPTION_FRAME_BYTES:
            raise CommandRejected(
                f"a frame would be {size / 1e6:.1f} MB, at most "
                f"{MAX_SUBSCRIPTION_FRAME_BYTES / 1e6:.1f} MB; ask for fewer fields or nodes, "
                "or float32")
        canonical = {"fields": [f.spec.name for f in chosen], "float32": downcast,
                     "group": group, "first": first, "stop": stop, "every": every,
                     "top": None if top_field is None else
                     [top_field.spec.name, int(top_n), sub.top_max],
                     "rate_hz": sub.rate_hz}
        return canonical, sub

    def publish(self, send: Any, framing: Any, header: dict[str, Any]) -> None:
        """Encode each due subscription once and hand its frames to ``send``.

        Args:
            send: Sends one multipart message (a list of frames).
            framing: Gives ``{v, t_utc, run_id}``; each subscription counts its own ``seq``.
            header: The step's ``state`` header (engine part: step, dt_s, fleet, ...).
        """
        if not self.live:
            return
        self.expire()
        now = self.clock()
        for sub in self.live.values():
            if now < sub.next_due:
                continue
            if sub.rate_hz is not None:
                period = 1.0 / sub.rate_hz
                sub.next_due = sub.next_due + period if sub.next_due + period > now \
                    else now + period
            index = sub.selected()
            specs, arrays = sub.arrays(index)
            body = {**framing(), "seq": sub.seq, **header, "sub": sub.id,
                    "n_selected": self.n_sats if index is None else int(index.size),
                    "fields": [s.header_entry() for s in specs]}
            frames = [sub.topic, pack(body),
                      *(memoryview(a).cast("B") if a.size else b"" for a in arrays)]
            send(frames)
            sub.seq += 1
            sub.encodings += 1
            sub.bytes_sent += sum(len(f) for f in frames)
            self.encodings += 1


class SubscriptionCommands:
    """Handlers of ``subscribe`` and ``subscriptions``."""

    def __init__(self, server: TwinServer) -> None:
        self.server = server

    def handlers(self) -> dict[str, CommandHandler]:
        return {"subscribe": self.subscribe, "unsubscribe": self.unsubscribe,
                "subscriptions": self.subscriptions}

    def _holder(self) -> str:
        """The client asking: its connection, so that two clients sharing a key (even on
        one host) hold a subscription each; ``local`` in this process."""
        caller = self.server.dispatcher.current_caller
        return caller.connection or caller.identity

    def subscribe(self, request: dict[str, Any]) -> dict[str, Any]:
        hub = self.server.streams.hub
        sub = hub.subscribe(request, self._holder())
        # sub: the id again, under the name unsubscribe and the messages use ("id" gives
        # way to the request's own id where the client sends one).
        return ok(topic=sub.topic.decode(), id=sub.id, sub=sub.id,
                  expires_in_s=SUBSCRIPTION_TTL_S,
                  renew_every_s=SUBSCRIPTION_TTL_S / 3,
                  fields=[f.spec.name for f in sub.fields],
                  bytes_per_frame=sub.estimate_bytes())

    def unsubscribe(self, request: dict[str, Any]) -> dict[str, Any]:
        sub_id, ended, holders = self.server.streams.hub.unsubscribe(request["sub"],
                                                                     self._holder())
        return ok(sub=sub_id, ended=ended, holders=holders)

    def subscriptions(self, request: dict[str, Any]) -> dict[str, Any]:
        hub = self.server.streams.hub
        hub.expire()
        now = hub.clock()
        return ok(subscriptions=[s.entry(now) for s in hub.live.values()],
                  encodings=hub.encodings, expired=hub.expired, ended=hub.ended,
                  max_subscriptions=MAX_SUBSCRIPTIONS, ttl_s=SUBSCRIPTION_TTL_S)

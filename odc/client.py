"""A small Python client of the twin: commands (with confirmation) and the decoded stream.

::

    from odc.client import connect

    with connect("tcp://127.0.0.1:5556", "tcp://127.0.0.1:5555",
                 key="keys/alice.key_secret", server_key="keys/server.key") as twin:
        print(twin.command("status")["t_utc"])
        reply = twin.command("inject_fault", sat=3, kind="radiator", health_frac=0.5)
        if needs_confirmation(reply):       # the twin holds it: reply["summary"] says what
            reply = twin.confirm(reply["token"])   # within reply["expires_in_s"] seconds
        for message in twin.frames(topics=("state",), idle_timeout_s=5.0):
            print(message.header["t_utc"], message.arrays["temp_compute_k"].max())

The scripting client, ``Twin``, adds a typed API over both sockets: one method per
command of the twin's catalog (``meta.commands``, read when it connects), arguments checked
before sending, refusals raised as exceptions, and the stream as decoded states::

    from odc.client import Twin

    with Twin("tcp://127.0.0.1:5556", stream="tcp://127.0.0.1:5555") as twin:
        twin.inject_fault(sat=3, kind="radiator", health_frac=0.5, confirmed=True)
        twin.wait_for("compute_cap_w", "<=", 8000.0, sat=3, within_s=3600.0)
        for state in twin.subscribe(["soc_frac"], dtype="float32", every=10):
            print(state.t_utc, state.nodes[:3], state["soc_frac"].min())
            break

docs/procedures.md, "Scripting client", has worked procedures.

Commands go through ``viz.stream.CommandClient`` (a lost twin gives an error reply, never
a hang); the stream is a plain SUB socket decoded by ``twin.protocol.codec.decode``.
``key``/``server_key`` make both CURVE clients (``twin.security.clients``); without them
the connections are plain. A confirmation is never sent for you: ``command`` hands back
the twin's ``confirm_required`` reply and only an explicit ``confirm(token)`` sends it.
"""

from __future__ import annotations

import contextlib
import difflib
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import zmq

from odc.client_catalog import (
    CONFIRM_KEYWORD,
    CatalogError,
    CommandArgumentError,
    ConfirmationRequired,
    TwinCommandError,
    check_arguments,
    make_method,
    method_name_ok,
    plain,
    specs_from_catalog,
)
from twin.autonomy.checks import OPERATORS, UNIT_CONVERSIONS
from twin.core.subsystem import CommandRejected
from twin.protocol.codec import DEFAULT_COMMAND_ADDRESS, TOPICS, Message, WireError, decode
from twin.protocol.commands import CommandSpec, SatelliteNames, is_finite_number
from twin.security.clients import ClientKeys, HandshakeWatch
from twin.security.keys import KeyFileError
from viz.stream import MAX_MESSAGE_BYTES, CommandClient

__all__ = ["CatalogError", "CommandArgumentError", "ConfirmationRequired", "State", "Twin",
           "TwinClient", "TwinCommandError", "connect", "needs_confirmation"]

DEFAULT_TIMEOUT_S = 5.0
LET_GO_TIMEOUT_S = 0.5
"""How long a closing ``subscribe`` iterator waits for the twin's answer to its
``unsubscribe`` (the subscription expires on its own anyway)."""
RENEW_RETRY_S = 2.0
"""A subscription whose renewal went unanswered is asked for again this much later."""


def needs_confirmation(reply: dict[str, Any]) -> bool:
    """Whether the twin holds the command until ``confirm(reply["token"])``."""
    return reply.get("confirm_required") is True and isinstance(reply.get("token"), str)


class TwinClient:
    """Commands to the twin and, given ``pub_address``, its decoded stream.

    Args:
        command_address: The twin's command (ROUTER) address.
        pub_address: The twin's stream (PUB) address; needed by :meth:`frames` only.
        key: This client's secret key file (``NAME.key_secret``); with ``server_key``.
        server_key: The twin's public key file (``server.key``); with ``key``.
        timeout_s: How long a command waits for its reply.
        context: ZeroMQ context to use.

    Raises:
        KeyFileError: One of ``key``/``server_key`` without the other, or an unreadable file.
    """

    def __init__(self, command_address: str = DEFAULT_COMMAND_ADDRESS,
                 pub_address: str | None = None, *, key: str | Path | None = None,
                 server_key: str | Path | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
                 context: zmq.Context | None = None) -> None:
        if (key is None) != (server_key is None):
            raise KeyFileError("key and server_key go together: give both (the client's "
                               "NAME.key_secret and the twin's server.key) or neither")
        self.keys = ClientKeys.checked(key, server_key) if key is not None else None
        self.command_address = command_address
        self.pub_address = pub_address
        self.bad_frames = 0  # stream messages frames() skipped as undecodable
        self._closed = False
        # Live subscribe() iterators by topic: the twin is told to let a topic go only
        # when the last of this client's iterators on it closes.
        self._reading: Counter[str] = Counter()
        self._context = context or zmq.Context.instance()
        self._commands = CommandClient(command_address, timeout_s=timeout_s,
                                       context=self._context, keys=self.keys)
        self._stream: zmq.Socket | None = None
        self._stream_watch: HandshakeWatch | None = None
        self._topics: tuple[bytes, ...] = ()

    def command(self, cmd: str, **arguments: Any) -> dict[str, Any]:
        """Send ``{"cmd": cmd, **arguments}``; returns the twin's reply map.

        A reply with ``confirm_required`` (see :func:`needs_confirmation`) means nothing ran
        yet: its ``summary`` says what would, and :meth:`confirm` runs it.

        Raises:
            CommandArgumentError: An argument named ``id`` (each request's own, set by the
                client and echoed in its reply: another would lose the reply).
        """
        if "id" in arguments:
            raise CommandArgumentError(cmd, "'id' is set by the client itself (each "
                                       "request's own, echoed in its reply)")
        return self._commands.send(cmd, **arguments)

    def confirm(self, token: str) -> dict[str, Any]:
        """Run the command the twin holds under ``token``; returns the command's reply."""
        return self._commands.send("confirm", token=token)

    def frames(self, topics: Iterable[str] | None = None,
               idle_timeout_s: float | None = None) -> Iterator[Message]:
        """The stream's messages, decoded, as they arrive.

        Args:
            topics: Topics to take (``state``, ``meta``, ``event``, ``hb``); None for all.
            idle_timeout_s: Stop after this many seconds without a message; None waits
                for ever.

        Raises:
            ValueError: The client was made without ``pub_address``, or a topic is unknown.
            RuntimeError: The twin refused the subscriber (its key, or the lack of one).
        """
        self._need_stream()
        wanted = tuple(t.encode() for t in topics) if topics is not None else (b"",)
        unknown = [t.decode() for t in wanted if t and t not in TOPICS]
        if unknown:
            raise ValueError(f"frames(topics=...): unknown topic(s) {', '.join(unknown)}; the "
                             f"stream has {', '.join(t.decode() for t in TOPICS)}")
        for message in self._receive(wanted, idle_timeout_s):
            if message is not None:
                yield message

    def _need_stream(self) -> None:
        if self.pub_address is None:
            raise ValueError("the stream needs the stream address: connect(command_address, "
                             "pub_address=...), or Twin(address, stream=...)")

    def _receive(self, topics: tuple[bytes, ...], idle_timeout_s: float | None,
                 quiet_s: float | None = None) -> Iterator[Message | None]:
        """Decoded messages of ``topics``; None after each ``quiet_s`` without one (a
        caller's chance to renew); returns after ``idle_timeout_s`` without any."""
        sock = self._subscribe(topics)
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        assert self._stream_watch is not None
        poller.register(self._stream_watch.monitor, zmq.POLLIN)
        idle_since = time.monotonic()
        while True:
            waits = [t for t in (quiet_s, None if idle_timeout_s is None else
                                 idle_timeout_s - (time.monotonic() - idle_since))
                     if t is not None]
            ready = dict(poller.poll(max(0.0, min(waits)) * 1000.0 if waits else None))
            if not ready:
                if idle_timeout_s is not None and \
                        time.monotonic() - idle_since >= idle_timeout_s:
                    return
                yield None
                continue
            if self._stream_watch.monitor in ready and self._stream_watch.check():
                raise RuntimeError(self._stream_watch.refused)
            if sock not in ready:
                continue
            idle_since = time.monotonic()
            try:
                yield decode(sock.recv_multipart(copy=False))
            except WireError:
                self.bad_frames += 1  # one bad message; the ones after it are taken

    def _subscribe(self, topics: tuple[bytes, ...]) -> zmq.Socket:
        """The SUB socket, made on first use (a command-only client opens none), taking
        ``topics`` (b"" for all) from now on."""
        if self._stream is None:
            sock = self._context.socket(zmq.SUB)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
            if self.keys is not None:
                self.keys.apply(sock)
            assert self.pub_address is not None
            self._stream_watch = HandshakeWatch(sock, self.pub_address, self.keys)
            sock.connect(self.pub_address)
            self._stream = sock
        if topics != self._topics:
            for topic in self._topics:
                self._stream.setsockopt(zmq.UNSUBSCRIBE, topic)
            for topic in topics:
                self._stream.setsockopt(zmq.SUBSCRIBE, topic)
            self._topics = topics
        return self._stream

    def close(self) -> None:
        self._closed = True
        self._commands.close()
        if self._stream_watch is not None:
            self._stream_watch.close()
            self._stream_watch = None
        if self._stream is not None:
            self._stream.close(linger=0)
            self._stream = None

    def __enter__(self) -> TwinClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


def connect(command_address: str = DEFAULT_COMMAND_ADDRESS, pub_address: str | None = None,
            key: str | Path | None = None, server_key: str | Path | None = None,
            **options: Any) -> TwinClient:
    """A ``TwinClient`` of the twin at these addresses (``options``: ``timeout_s``,
    ``context``); use it in a ``with`` block, or ``close()`` it."""
    return TwinClient(command_address, pub_address, key=key, server_key=server_key, **options)


@dataclass(frozen=True)
class State:
    """One decoded ``state`` message: its time, its step, the fleet totals and the fields
    asked for, by name (numpy arrays, per node along axis 0 where per node)."""

    t_utc: float
    step: int
    dt_s: float
    fleet: dict[str, Any]
    values: dict[str, np.ndarray]
    seq: int = -1
    nodes: np.ndarray | None = None
    """The nodes of a selective stream's state, in row order (None: every node)."""

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.values[name]
        except KeyError:
            raise KeyError(f"state has no field {name!r} here; it has "
                           f"{', '.join(self.values) or 'none'} (subscribe to it)") from None


def _state(message: Message, values: dict[str, np.ndarray],
           nodes: np.ndarray | None = None) -> State:
    header = message.header
    return State(float(header["t_utc"]), int(header["step"]), float(header["dt_s"]),
                 dict(header.get("fleet", {})), values, int(header.get("seq", -1)), nodes)


Condition = Callable[[State], bool]

POLL_INTERVAL_S = 0.05
"""How often wait_for_event and wait_for_alarm ask the twin again (wall seconds)."""


class Twin(TwinClient):
    """A scripting client: one method per command of the twin's catalog, and the stream.

    The command catalog (``meta.commands``) is read when it connects, and each command
    becomes a method taking its arguments by keyword (``twin.set_power_cap(sat=3,
    power_w=4000.0)``), checked against the catalog before sending; ``help(twin.NAME)``
    shows the catalog's summary, arguments, units and ranges. Commands named like one of
    this class's own members (``status``, ``confirm``) are those members; every command is
    also ``twin.call(NAME, **arguments)``. A command added to the twin's catalog is a
    method at the next connect (or :meth:`refresh`), with no change here.

    Args:
        address: The twin's command (ROUTER) address.
        stream: The twin's stream (PUB) address; needed by the stream methods only.
        key, server_key: This client's secret key file and the twin's public key file,
            for a twin with keys (CURVE; docs/security.md); both or neither.
        timeout_s: How long a command waits for its reply.

    Raises:
        TwinCommandError: The twin did not answer ``meta`` (not running, wrong address, a
            key it refuses).
        CatalogError: Its catalog is not as docs/protocol.md describes.
    """

    def __init__(self, address: str = DEFAULT_COMMAND_ADDRESS, stream: str | None = None, *,
                 key: str | Path | None = None, server_key: str | Path | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S, context: zmq.Context | None = None
                 ) -> None:
        super().__init__(address, stream, key=key, server_key=server_key,
                         timeout_s=timeout_s, context=context)
        self.catalog: dict[str, Any] = {}
        self.specs: dict[str, CommandSpec] = {}
        self.field_catalog: dict[str, dict[str, Any]] = {}
        self.twin_meta: dict[str, Any] = {}
        self.satellites = SatelliteNames([], [])
        self._generated: set[str] = set()
        try:
            self.refresh()
        except BaseException:
            self.close()
            raise

    def refresh(self) -> None:
        """Read ``meta`` again: the command catalog (methods come and go with it), the
        field catalog and the satellites' names."""
        reply = self.command("meta")
        if reply.get("ok") is not True or not isinstance(reply.get("meta"), dict):
            raise TwinCommandError("meta", reply)
        meta = reply["meta"]
        specs = specs_from_catalog(meta.get("commands"))
        sats = meta.get("sats") or {}
        self.satellites = SatelliteNames(list(sats.get("names", [])),
                                         list(sats.get("norad_ids", [])))
        self.field_catalog = {f["name"]: f for f in meta.get("fields", [])
                              if isinstance(f, dict) and isinstance(f.get("name"), str)}
        self.twin_meta, self.catalog, self.specs = meta, meta["commands"], specs
        for name in self._generated - set(specs):
            delattr(self, name)  # a command the twin no longer answers
        self._generated &= set(specs)
        for name, spec in specs.items():
            if not method_name_ok(name) or hasattr(type(self), name):
                continue
            if name not in self._generated and name in vars(self):
                continue  # one of this object's own attributes: call(name) reaches it
            setattr(self, name, make_method(self.call, spec,
                                            str(self.catalog[name].get("confirm", ""))))
            self._generated.add(name)

    def call(self, cmd: str, **arguments: Any) -> dict[str, Any]:
        """Check ``arguments`` against the catalog, send the command, return the reply.

        ``confirmed=True`` confirms a command the twin holds (a hazardous one) at once.

        Raises:
            CommandArgumentError: An unknown command, or an argument the catalog does not
                allow (nothing is sent).
            ConfirmationRequired: The twin holds it and ``confirmed`` was not given.
            TwinCommandError: The twin refused it (its error text in ``error``).
        """
        spec = self.specs.get(cmd)
        if spec is None:
            close = difflib.get_close_matches(cmd, list(self.specs), 1)
            raise CommandArgumentError(cmd, "the twin's catalog has no such command"
                                       + (f" (did you mean {close[0]!r}?)" if close else ""))
        confirmed = False
        if CONFIRM_KEYWORD not in {a.name for a in spec.args}:
            confirmed = arguments.pop(CONFIRM_KEYWORD, False) is True
        arguments = {k: plain(v) for k, v in arguments.items()}
        check_arguments(spec, arguments, self.satellites)
        reply = self.command(cmd, **arguments)
        if needs_confirmation(reply):
            if not confirmed:
                raise ConfirmationRequired(cmd, reply)
            reply = self.confirm(reply["token"])
        if reply.get("ok") is not True:
            raise TwinCommandError(cmd, reply)
        return reply

    def status(self) -> dict[str, Any]:
        """The twin's ``status``: its time, step, clock and counters (docs/protocol.md)."""
        return self.call("status")

    def subscribe(self, fields: Iterable[str] | None = None, *, dtype: str = "native",
                  idle_timeout_s: float = 10.0, **selection: Any) -> Iterator[State]:
        """The twin's selective stream (its ``subscribe`` command, docs/protocol.md,
        "Selective streams"): per step a state with exactly ``fields`` (every field if
        None), 64-bit floats as 32-bit with ``dtype="float32"``, for the nodes
        ``selection`` picks (``group``, ``first``, ``stop``, ``every``, ``top_field`` with
        ``top_n`` and ``top_order``) at most ``rate_hz`` a second; ``State.nodes`` holds
        their indices (None: every node). Renewed while it is read; the twin sends it only
        while it is asked for, whatever the fleet's size.

        Raises:
            ValueError: A field the twin's catalog does not have (the closest named).
            TwinCommandError: The twin refused the request (its error names why).
            TimeoutError: No message for ``idle_timeout_s`` wall seconds.
        """
        wanted = None if fields is None else list(fields)
        self._check_fields(wanted)
        self._need_stream()
        request = {name: value for name, value in selection.items() if value is not None}
        if wanted is not None:
            request["fields"] = ",".join(wanted)
        if dtype != "native":
            request["dtype"] = dtype
        reply = self.call("subscribe", **request)
        topic, renew_s = str(reply["topic"]), float(reply.get("renew_every_s", 10.0))
        renew_at = time.monotonic() + renew_s
        self._reading[topic] += 1
        silent = False
        try:
            while True:
                for message in self._receive((topic.encode(),), idle_timeout_s,
                                             min(renew_s, RENEW_RETRY_S)):
                    if time.monotonic() >= renew_at:  # or the subscription expires (30 s)
                        renewed = self._renew(request)
                        # Unanswered (the twin is down or busy): ask again soon. A restarted
                        # twin grants the subscription under a new topic: follow it.
                        renew_at = time.monotonic() + (renew_s if renewed else RENEW_RETRY_S)
                        if renewed is not None and renewed != topic:
                            self._reading[topic] -= 1
                            topic = renewed
                            self._reading[topic] += 1
                            break
                    if message is None or message.topic != topic:
                        continue  # a quiet spell, or one queued before the topic changed
                    nodes = message.arrays.get("sat_index")
                    yield _state(message, {n: a for n, a in message.arrays.items()
                                           if n != "sat_index"}, nodes)
                else:
                    silent = True  # (the twin is gone or stuck: nobody to tell)
                    raise TimeoutError(f"no message on {topic} for {idle_timeout_s:g} s")
        finally:  # the iterator closed or failed: the twin need not send it any more
            self._reading[topic] -= 1
            if self._reading[topic] <= 0:
                del self._reading[topic]
                if not silent:
                    self._let_go(topic)

    def _let_go(self, topic: str) -> None:
        """Tell the twin this client no longer reads ``topic`` (``unsubscribe``): best
        effort, and never for long (a closing iterator, Ctrl-C, the interpreter's exit). A
        twin that is gone, older or refuses lets it expire on its own (30 s)."""
        if self._closed or sys.is_finalizing() or "unsubscribe" not in self.specs:
            return
        commands = self._commands
        waited, commands.timeout_s = commands.timeout_s, min(commands.timeout_s,
                                                             LET_GO_TIMEOUT_S)
        try:
            with contextlib.suppress(Exception):  # (nothing of it matters to the caller)
                self.call("unsubscribe", sub=topic.removeprefix("sub/"))
        finally:
            commands.timeout_s = waited

    def _renew(self, request: dict[str, Any]) -> str | None:
        """Ask for a subscription again; its topic, or None where the twin did not answer
        or refused (the caller asks again later: the twin may be restarting)."""
        try:
            return str(self.call("subscribe", **request)["topic"])
        except TwinCommandError:
            return None

    def states(self, fields: Iterable[str] | None = None, *,
               idle_timeout_s: float = 10.0) -> Iterator[State]:
        """The default ``state`` stream, each state keeping only ``fields`` (all if None),
        filtered here. Above the twin's full-state threshold these states carry no node
        rows: use :meth:`subscribe`.

        Raises:
            ValueError: A field the twin's catalog does not have (the closest named).
            TimeoutError: No state for ``idle_timeout_s`` wall seconds.
        """
        wanted = None if fields is None else list(fields)
        self._check_fields(wanted)
        for message in self.frames(("state",), idle_timeout_s=idle_timeout_s):
            names = wanted if wanted is not None else list(message.arrays)
            yield _state(message, {n: message.arrays[n] for n in names
                                   if n in message.arrays})
        raise TimeoutError(f"no state from the twin for {idle_timeout_s:g} s")

    def _check_fields(self, names: list[str] | None) -> None:
        for name in names or ():
            if name not in self.field_catalog:
                close = difflib.get_close_matches(name, list(self.field_catalog), 1)
                raise ValueError(f"subscribe: the twin has no field {name!r}"
                                 + (f" (did you mean {close[0]!r}?)" if close else "")
                                 + "; its fields are in meta.fields (docs/protocol.md)")

    def wait_for(self, condition: Condition | str, op: str | None = None,
                 threshold: float | None = None, *, sat: int | str | None = None,
                 unit: str | None = None, timeout_s: float = 30.0,
                 within_s: float | None = None, since_t_utc: float | None = None) -> State:
        """Wait for the first state from now on in which ``condition`` holds; return it.

        ``condition`` is a callable on a :class:`State` (with every field), or a field's
        name with ``op`` (one of a rule's: ``> >= < <= == !=``) and ``threshold``, in the
        field's unit or in ``unit`` (``degC``, ``%``, ``kW``, ``min``, ``h``, as a rule's),
        on node ``sat`` (index, name or NORAD id) or on any node (None).

        Args:
            timeout_s: Wall seconds to wait at most.
            within_s: Simulated seconds to wait at most, from ``since_t_utc``.
            since_t_utc: Simulation time to look from (a state seen earlier, ``state.t_utc``:
                states since then that the client holds count); the twin's time now if
                None.

        Raises:
            TimeoutError: It did not hold in time; names the condition and the last value.
            ValueError: A bad field, operator, unit or node.
        """
        test, described, value_of = self._condition(condition, op, threshold, sat, unit)
        fields = None if callable(condition) else [condition]
        start_t = float(self.status()["t_utc"] if since_t_utc is None else since_t_utc)
        wall_deadline = time.monotonic() + timeout_s
        last: State | None = None
        lost = 0  # states the stream dropped (a slow client): a gap in seq
        late = False
        try:
            # A field's condition reads the twin's stream of that field (any fleet size);
            # a function reads whole default states.
            states = self.states(None, idle_timeout_s=max(timeout_s, 0.1)) if fields is None \
                else self.subscribe(fields, idle_timeout_s=max(timeout_s, 0.1))
            for state in states:
                if state.t_utc < start_t:
                    continue  # queued before the time asked for
                if last is not None and state.seq > last.seq + 1:
                    lost += state.seq - last.seq - 1
                last = state
                # Past the window it fails even if it holds: when it began is unknown.
                late = within_s is not None and state.t_utc - start_t > within_s
                if test(state) and not late:
                    return state
                if late or time.monotonic() > wall_deadline:
                    break
        except TimeoutError:
            pass
        seen = "no state seen" if last is None else (
            f"at step {last.step}, {last.t_utc - start_t:g} s later: {value_of(last)}")
        limit = f"{within_s:g} simulated s" if late else f"{timeout_s:g} wall s"
        gaps = f"; {lost} state(s) lost on the way (a slow client)" if lost else ""
        raise TimeoutError(f"wait_for: {described} did not hold within {limit} ({seen}{gaps})")

    def _condition(self, condition: Condition | str, op: str | None,
                   threshold: float | None, sat: int | str | None, unit: str | None
                   ) -> tuple[Condition, str, Callable[[State], str]]:
        """The test, its description and what to show of a state, for wait_for."""
        if callable(condition):
            name = getattr(condition, "__name__", "condition")
            return condition, f"{name}()", lambda state: "it was false"
        if condition not in self.field_catalog:
            close = difflib.get_close_matches(str(condition), list(self.field_catalog), 1)
            raise ValueError(f"wait_for: the twin has no field {condition!r}"
                             + (f" (did you mean {close[0]!r}?)" if close else ""))
        if op not in OPERATORS:
            raise ValueError(f"wait_for: {op!r} is not an operator; one of "
                             f"{' '.join(OPERATORS)}")
        if not is_finite_number(threshold):
            raise ValueError(f"wait_for: threshold must be a finite number, got {threshold!r}")
        field_unit = str(self.field_catalog[condition].get("unit", ""))
        limit = float(threshold)  # type: ignore[arg-type]
        if unit not in (None, field_unit):
            convert = UNIT_CONVERSIONS.get((str(unit), field_unit))
            if convert is None:
                raise ValueError(f"wait_for: unit {unit!r} does not convert to "
                                 f"{condition}'s unit {field_unit!r}")
            limit = convert(limit)
        node = None
        if sat is not None:
            try:
                node = self.satellites.resolve("sat", plain(sat))
            except CommandRejected as exc:
                raise ValueError(f"wait_for: {exc}") from None
        compare = OPERATORS[op]

        def values(state: State) -> np.ndarray:
            array = state[condition]
            return np.asarray(array if node is None else array[node])

        def test(state: State) -> bool:
            return bool(np.any(compare(values(state), limit)))

        where = "any node" if node is None else f"node {node}"
        shown = (f"{condition} {op} {threshold:g}{'' if unit is None else ' ' + unit}"
                 f" on {where}")
        return test, shown, lambda state: f"{condition} = {values(state)}"

    def wait_for_event(self, kind: str, *, timeout_s: float = 30.0,
                       since_t_utc: float | None = None, **match: Any) -> dict[str, Any]:
        """The first event of ``kind`` the twin keeps (its ``events`` command) whose keys
        equal ``match`` (``sat=3``, ``rule="junction_hot"``), at or after ``since_t_utc``.

        Raises:
            TimeoutError: None within ``timeout_s`` wall seconds; names what was asked.
        """
        match = self._resolved(match)
        since = -1
        deadline = time.monotonic() + timeout_s
        while True:
            events = self.call("events", since=since)["events"]
            for event in events:
                since = max(since, int(event.get("seq", since)))
                if (event.get("kind") == kind
                        and (since_t_utc is None or event.get("t_utc", 0.0) >= since_t_utc)
                        and all(event.get(k) == v for k, v in match.items())):
                    return event
            if time.monotonic() > deadline:
                raise TimeoutError(f"wait_for_event: no {kind} event with {match} within "
                                   f"{timeout_s:g} s")
            time.sleep(POLL_INTERVAL_S)

    def wait_for_alarm(self, *, timeout_s: float = 30.0, **match: Any) -> dict[str, Any]:
        """The first alarm of the twin's table (``alarms``) whose keys equal ``match``
        (``kind="rule_fired", sat=3, parameter="junction_hot"``).

        Raises:
            TimeoutError: None within ``timeout_s`` wall seconds; names what was asked.
        """
        match = self._resolved(match)
        deadline = time.monotonic() + timeout_s
        while True:
            for alarm in self.call("alarms")["alarms"]:
                if all(alarm.get(k) == v for k, v in match.items()):
                    return alarm
            if time.monotonic() > deadline:
                raise TimeoutError(f"wait_for_alarm: no alarm with {match} within "
                                   f"{timeout_s:g} s")
            time.sleep(POLL_INTERVAL_S)

    def _resolved(self, match: dict[str, Any]) -> dict[str, Any]:
        """``match`` with a ``sat`` given by name turned into its index, as on the wire."""
        if "sat" in match and match["sat"] != -1:
            try:
                match = {**match, "sat": self.satellites.resolve("sat", plain(match["sat"]))}
            except CommandRejected as exc:
                raise ValueError(str(exc)) from None
        return match

    def __enter__(self) -> Twin:
        return self

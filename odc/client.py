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

Commands go through ``viz.stream.CommandClient`` (a lost twin gives an error reply, never
a hang); the stream is a plain SUB socket decoded by ``twin.protocol.codec.decode``.
``key``/``server_key`` make both CURVE clients (``twin.security.clients``); without them
the connections are plain. A confirmation is never sent for you: ``command`` hands back
the twin's ``confirm_required`` reply and only an explicit ``confirm(token)`` sends it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import zmq

from twin.protocol.codec import DEFAULT_COMMAND_ADDRESS, TOPICS, Message, WireError, decode
from twin.security.clients import ClientKeys, HandshakeWatch
from twin.security.keys import KeyFileError
from viz.stream import MAX_MESSAGE_BYTES, CommandClient

DEFAULT_TIMEOUT_S = 5.0


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
        """
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
        if self.pub_address is None:
            raise ValueError("frames() needs the stream address: connect(command_address, "
                             "pub_address=...)")
        wanted = tuple(t.encode() for t in topics) if topics is not None else (b"",)
        unknown = [t.decode() for t in wanted if t and t not in TOPICS]
        if unknown:
            raise ValueError(f"frames(topics=...): unknown topic(s) {', '.join(unknown)}; the "
                             f"stream has {', '.join(t.decode() for t in TOPICS)}")
        sock = self._subscribe(wanted)
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        assert self._stream_watch is not None
        poller.register(self._stream_watch.monitor, zmq.POLLIN)
        timeout_ms = None if idle_timeout_s is None else idle_timeout_s * 1000.0
        while True:
            ready = dict(poller.poll(timeout_ms))
            if not ready:
                return
            if self._stream_watch.monitor in ready and self._stream_watch.check():
                raise RuntimeError(self._stream_watch.refused)
            if sock not in ready:
                continue
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

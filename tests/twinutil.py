"""Test helpers: a real twin in a thread on random loopback ports, and socket helpers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import zmq

from odc.local_twin import serving
from twin.core.clock import SimClock
from twin.core.engine import Engine
from twin.protocol.codec import Message, decode, pack, unpack
from twin.runtime.server import Addresses, TwinServer
from twin.scenario import Scenario, load_scenario, parse_scenario

ANY_PORT = "tcp://127.0.0.1:*"
RECEIVE_TIMEOUT_MS = 5000


@dataclass
class RunningTwin:
    """A twin serving in a background thread."""

    server: TwinServer
    addresses: Addresses
    thread: threading.Thread

    @property
    def engine(self) -> Engine:
        return self.server.engine

    def stop(self) -> None:
        """Stop the twin now, before the test's own sockets close.

        Tests whose subscribers still hold queued frames of a fast twin call this last, so
        that those peers do not leave during the twin's shutdown (a race the twin's PUB
        linger covers, twin/runtime/server.py, and test_server.py tests on its own).
        """
        self.server.stop()
        self.thread.join(10)


def make_server(
    scenario: Scenario | str = "default",
    *,
    rate_hz: float = 20.0,
    warp: float = 60.0,
    fast: bool = False,
    paused: bool = False,
    addresses: Addresses | None = None,
    **server_options: Any,
) -> TwinServer:
    """Build (but do not start) a twin; ``scenario`` is a Scenario, a name, or TOML text."""
    if isinstance(scenario, str):
        scenario = parse_scenario(scenario) if "\n" in scenario else load_scenario(scenario)
    clock = SimClock(scenario.epoch_utc, rate_hz=rate_hz, warp=warp, fast=fast, paused=paused)
    engine = Engine(scenario, clock)
    addresses = addresses or Addresses(ANY_PORT, ANY_PORT, ANY_PORT)
    return TwinServer(engine, addresses, **server_options)


@contextmanager
def running_twin(scenario: Scenario | str = "default", **options: Any) -> Iterator[RunningTwin]:
    """Run a twin in a thread for the duration of the ``with`` block; stops it after."""
    max_steps = options.pop("max_steps", None)
    with serving(lambda: make_server(scenario, **options), max_steps=max_steps) as (server,
                                                                                    thread):
        yield RunningTwin(server, server.bound, thread)


@contextmanager
def connected(kind: int, address: str, **options: Any) -> Iterator[zmq.Socket]:
    """A client socket with a receive timeout, closed with linger 0."""
    sock = zmq.Context.instance().socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, RECEIVE_TIMEOUT_MS)
    for name, value in options.items():
        sock.setsockopt(getattr(zmq, name), value)
    sock.connect(address)
    try:
        yield sock
    finally:
        sock.close(linger=0)


def receive(sock: zmq.Socket, topic: str | None = None, timeout_s: float = 10.0) -> Message:
    """Receive and decode the next message (of ``topic`` if given) before the deadline."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        message = decode(sock.recv_multipart())
        if topic is None or message.topic == topic:
            return message
    raise TimeoutError(f"no {topic or 'message'} within {timeout_s} s")


def wait_state(sub: zmq.Socket, predicate: Callable[[dict], bool],
               timeout_s: float = 15.0) -> Message:
    """The first ``state`` whose arrays satisfy ``predicate`` before the deadline."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        message = receive(sub, "state", timeout_s=deadline - time.monotonic())
        if predicate(message.arrays):
            return message
    raise AssertionError("no state frame satisfied the condition in time")


def wait_event(sub: zmq.Socket, kind: str, timeout_s: float = 15.0) -> Message:
    """The first ``event`` of ``kind`` before the deadline."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        message = receive(sub, None, timeout_s=deadline - time.monotonic())
        if message.topic == "event" and message.header["kind"] == kind:
            return message
    raise AssertionError(f"no {kind} event in time")


def request(sock: zmq.Socket, payload: dict[str, Any]) -> dict[str, Any]:
    """Send a command on a REQ socket and return the reply map."""
    sock.send(pack(payload))
    return unpack(sock.recv())


def subscribed(sub: zmq.Socket, command: zmq.Socket, timeout_s: float = 10.0) -> None:
    """Return once the twin's stream socket holds every subscription ``sub`` made so far.

    A SUB socket's subscriptions reach the twin some time after ``connect`` and
    ``SUBSCRIBE`` (later on a loaded machine); what the twin publishes before then is
    lost to it. They travel in order, so once a ``meta`` (asked for on ``command``, a REQ
    socket) arrives on a ``meta`` subscription made last, the ones before it are in place.
    For a quiet stream (a paused twin): any other message that arrives meanwhile is
    dropped, so is the ``meta``; the ``meta`` subscription is undone.
    """
    deadline = time.monotonic() + timeout_s
    sub.setsockopt(zmq.SUBSCRIBE, b"meta")
    try:
        while time.monotonic() < deadline:
            assert request(command, {"cmd": "meta"})["ok"]  # republished at most 1/s
            asked = time.monotonic()
            while time.monotonic() - asked < 0.3:
                if sub.poll(50) and sub.recv_multipart()[0] == b"meta":
                    return
        raise TimeoutError(f"the subscriptions did not reach the twin within {timeout_s} s")
    finally:
        sub.setsockopt(zmq.UNSUBSCRIBE, b"meta")


def confirmed(server: TwinServer, request: dict[str, Any]) -> dict[str, Any]:
    """Run a command in-process as a local client would, confirming it if it is hazardous."""
    reply = server.handle_command_bytes(pack(request))
    if reply.get("confirm_required"):
        reply = server.handle_command_bytes(pack({"cmd": "confirm", "token": reply["token"]}))
    return reply

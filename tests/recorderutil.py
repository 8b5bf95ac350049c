"""Test helpers for recordings: a real twin in a thread recording itself (``odc run
--record``'s hook), started only once the test's own subscriber is connected."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq
from twinutil import make_server

from twin.recording.live import LiveRecording
from twin.runtime.server import TwinServer

SUBSCRIBE_SETTLE_S = 0.3
"""Time for a new subscriber's subscription to reach the twin before it publishes."""


@dataclass
class Heard:
    """What a live subscriber received: each message's frames and wall receive time."""

    messages: list[tuple[list[bytes], float]] = field(default_factory=list)

    def topic(self, topic: bytes) -> list[tuple[list[bytes], float]]:
        return [(frames, t) for frames, t in self.messages if frames[0] == topic]


@dataclass
class RecordingTwin:
    server: TwinServer
    live: LiveRecording | None
    go: threading.Event
    thread: threading.Thread

    @property
    def pub(self) -> str:
        return self.server.bound.pub


@contextmanager
def recording_twin(path: Path | str | None, every: int = 1, scenario: str = "default",
                   **options: Any) -> Iterator[RecordingTwin]:
    """A twin in a thread recording itself to ``path`` (no recorder if None). It runs once
    the test sets ``go`` (after connecting its subscribers), and stops after the block."""
    ready, go = threading.Event(), threading.Event()
    holder: dict[str, Any] = {}

    def serve() -> None:
        try:
            server = make_server(scenario, **options)
        except BaseException as exc:
            holder["error"] = exc
            ready.set()
            return
        try:
            holder["live"] = None if path is None else LiveRecording.start(server, path, every)
        except BaseException as exc:
            holder["error"] = exc
            server.close()
            ready.set()
            return
        holder["server"] = server
        ready.set()
        go.wait(60)
        try:
            server.run()
        finally:
            server.close()

    thread = threading.Thread(target=serve, name="twin", daemon=True)
    thread.start()
    assert ready.wait(60), "twin did not start within 60 s"
    if "error" in holder:
        raise holder["error"]
    server = holder["server"]
    try:
        yield RecordingTwin(server, holder["live"], go, thread)
    finally:
        server.stop()
        go.set()
        thread.join(30)
        assert not thread.is_alive(), "twin thread did not stop"


def listen(address: str) -> zmq.Socket:
    """A SUB to everything, with a receive timeout; the caller closes it."""
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 5000)
    sock.setsockopt(zmq.RCVHWM, 100_000)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    sock.connect(address)
    return sock


def hear(sock: zmq.Socket, heard: Heard, until: Any, timeout_s: float = 30.0) -> None:
    """Receive into ``heard`` until ``until(heard)`` holds (or fail after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while not until(heard):
        assert time.monotonic() < deadline, "the stream did not deliver in time"
        if sock.poll(200):
            heard.messages.append((sock.recv_multipart(), time.time()))

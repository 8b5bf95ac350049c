"""A stand-in for the twin's command socket: a real ROUTER on a random loopback port.

It answers each request from a script (a function of the request), so a test can make
the twin say what the real one says only in rare states, such as ``confirm_required``,
and records every request it got, with the key name CURVE gave it (``User-Id``). Given a
key folder, it is a CURVE server admitting that folder's registered keys, through the
twin's own ``serve_curve`` and ``KeyAuthenticator``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import zmq

from twin.protocol.codec import pack, unpack
from twin.security.auth import KeyAuthenticator, serve_curve, user_of
from twin.security.keys import KeyRegistry

Answer = Callable[[dict[str, Any]], dict[str, Any]]
TOKEN = "tok-7f3a"
SUMMARY = "degrade node 3's radiator to 50 % of its capacity"


def confirming(expires_in_s: float = 30.0) -> Answer:
    """The twin of issue 14: the first command is held for confirmation, ``confirm`` with
    the right token runs it, anything else is answered ok."""
    def answer(request: dict[str, Any]) -> dict[str, Any]:
        if request.get("cmd") == "confirm":
            if request.get("token") == TOKEN:
                return {"ok": True, "confirmed": "inject_fault"}
            return {"ok": False, "error": "confirm: unknown or expired token"}
        if request.get("cmd") == "inject_fault":
            return {"ok": False, "confirm_required": True, "token": TOKEN, "summary": SUMMARY,
                    "expires_in_s": expires_in_s}
        return {"ok": True}

    return answer


class FakeTwin:
    """The ROUTER, its requests (each with ``_user``, the CURVE key name or ``""``)."""

    def __init__(self, answer: Answer, key_folder: Path | None = None) -> None:
        self.answer = answer
        self.requests: list[dict[str, Any]] = []
        self.context = zmq.Context()
        self.authenticator: KeyAuthenticator | None = None
        self.socket = self.context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        if key_folder is not None:
            self.authenticator = KeyAuthenticator(self.context, KeyRegistry.load(key_folder))
            self.authenticator.start()
            serve_curve(self.socket, key_folder)
        port = self.socket.bind_to_random_port("tcp://127.0.0.1")
        self.address = f"tcp://127.0.0.1:{port}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            if not self.socket.poll(50):
                continue
            frames = self.socket.recv_multipart(copy=False)
            request = unpack(frames[-1].buffer)
            request["_user"] = user_of(frames[-1])
            self.requests.append(request)
            reply = {**self.answer(request), "id": request.get("id")}
            self.socket.send_multipart([frames[0].bytes, b"", pack(reply)])

    def wait_for(self, count: int, timeout_s: float = 5.0) -> list[dict[str, Any]]:
        """The requests once there are ``count`` of them; fails after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while len(self.requests) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.requests)} request(s) within {timeout_s} s, "
                                     f"expected {count}: {self.requests}")
            time.sleep(0.02)
        return list(self.requests)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.socket.close(linger=0)
        if self.authenticator is not None:
            self.authenticator.stop()
        self.context.term()


@contextmanager
def fake_twin(answer: Answer, key_folder: Path | None = None) -> Iterator[FakeTwin]:
    twin = FakeTwin(answer, key_folder)
    twin._thread.start()
    try:
        yield twin
    finally:
        twin.close()

"""A real Mosquitto broker on a free loopback port, for the MQTT bridge tests.

The broker is Debian's ``mosquitto`` (``.ci/run`` installs it where missing). A test that
needs it fails, never skips, when it is absent: the MQTT source would otherwise go untested.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

DEBIAN_PATH = Path("/usr/sbin/mosquitto")


def mosquitto_binary() -> str:
    """The broker's path; fails the test with what to install when there is none."""
    found = shutil.which("mosquitto") or (str(DEBIAN_PATH) if DEBIAN_PATH.is_file() else None)
    if found is None:
        pytest.fail("the MQTT tests need Debian's mosquitto broker (apt-get install mosquitto;"
                    " .ci/run installs it): not on PATH nor at /usr/sbin/mosquitto")
    return found


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """One Mosquitto process at a time on ``127.0.0.1:port``; stop and start it again there.

    Args:
        folder: Where its generated config file goes.
        port: The port (default: a free one).
    """

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.binary = mosquitto_binary()
        self.port = port or free_tcp_port()
        self.config = folder / "mosquitto.conf"
        self.config.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                               "persistence false\nlog_dest stderr\n")
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10.0) -> None:
        """Start it; return once it accepts connections."""
        assert self.proc is None, "broker already running"
        self.proc = subprocess.Popen([self.binary, "-c", str(self.config)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read()
                self.proc = None
                pytest.fail(f"mosquitto exited at start ({self.config}): {err[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        pytest.fail(f"mosquitto did not accept connections on {self.address} in {timeout_s} s")

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL); its clients see the connection close."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc.stderr.close()
        self.proc = None


@contextmanager
def running_broker(folder: Path) -> Iterator[Broker]:
    broker = Broker(folder)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()

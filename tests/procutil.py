"""Run `python -m twin` as its own process on loopback ports, for tests.

Imports nothing from the twin, so the protocol test that uses it stays a client written
from docs/protocol.md alone.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ANY_PORT = "tcp://127.0.0.1:*"
ADDRESS_LINE = re.compile(r"\s+(stream|commands|ingest)\s+(tcp://\S+)")


@contextmanager
def twin_process(*flags: str, pub: str = ANY_PORT, cmd: str = ANY_PORT,
                 ingest: str = ANY_PORT) -> Iterator[tuple[subprocess.Popen, dict[str, str]]]:
    """Start the twin; yield the process and the addresses it reports binding."""
    command = [sys.executable, "-m", "twin", "--quiet", "--pub", pub, "--cmd", cmd,
               "--ingest", ingest, *flags]
    with serving_process(command, 3) as served:
        yield served


@contextmanager
def serving_process(command: list[str], n_addresses: int
                    ) -> Iterator[tuple[subprocess.Popen, dict[str, str]]]:
    """Start a process that prints its bound addresses as `odc run` does (``  stream
    tcp://...``); yield it and the ``n_addresses`` it reported."""
    proc = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    addresses: dict[str, str] = {}
    deadline = time.monotonic() + 60
    try:
        while len(addresses) < n_addresses and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            match = ADDRESS_LINE.match(line)
            if match:
                addresses[match.group(1)] = match.group(2)
        assert len(addresses) == n_addresses, \
            f"{' '.join(command[2:4])} did not report its addresses: {addresses}"
        yield proc, addresses
    finally:
        stop_process(proc)
        proc.stderr.close()


def stop_process(proc: subprocess.Popen) -> None:
    """SIGINT, then SIGKILL if it has not gone within 10 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def odc_process(*args: str) -> Iterator[subprocess.Popen]:
    """`odc ARGS` in the background (stdout dropped, stderr piped); SIGTERM at the end."""
    proc = subprocess.Popen([sys.executable, "-m", "odc.cli", *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        proc.stderr.close()

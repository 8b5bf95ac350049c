"""A real twin in a background thread on free loopback ports, for scripts and tests.

::

    from odc.local_twin import local_twin

    with local_twin("default", warp=600.0) as served, served.client() as twin:
        print(twin.status()["t_utc"])

It is the twin ``odc run`` serves (``twin.runtime.server.TwinServer`` over an ``Engine`` on
a ``SimClock``), bound to ``tcp://127.0.0.1:*`` so that tests running side by side never
share a port. The pytest plugin (``odc.pytest_plugin``) starts its ``twin`` fixture here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from odc.client import Twin
from twin.core.clock import SimClock
from twin.core.engine import Engine
from twin.core.registry import ModelEntry
from twin.runtime.server import Addresses, TwinServer
from twin.runtime.subscriptions import FULL_STATE_MAX_SATS
from twin.scenario import Scenario, load_scenario, parse_scenario

ANY_LOOPBACK_PORT = "tcp://127.0.0.1:*"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


class LocalTwinError(RuntimeError):
    """The twin did not start, or did not stop in time."""


@dataclass
class LocalTwin:
    """A twin serving in a thread of this process.

    Attributes:
        server: The running server (its ``engine``, ``counters``, ``clock``).
        addresses: The addresses it bound (``command``, ``pub``, ``ingest``).
        audit_path: Its audit file, if it keeps one.
        keys_dir: Its key folder, if it runs with keys.
        client_key: The secret key file :meth:`client` uses by default (with keys).
    """

    server: TwinServer
    addresses: Addresses
    audit_path: Path | None = None
    keys_dir: Path | None = None
    client_key: Path | None = None

    def client(self, **options: Any) -> Twin:
        """A :class:`odc.client.Twin` connected to both its sockets (``options``: ``key``,
        ``server_key``, ``timeout_s``; with keys, ``client_key`` and the twin's
        ``server.key`` unless given)."""
        if self.keys_dir is not None and self.client_key is not None and "key" not in options:
            options = {"key": self.client_key,
                       "server_key": self.keys_dir / "server.key", **options}
        return Twin(self.addresses.command, self.addresses.pub, **options)


def scenario_of(scenario: Scenario | str) -> Scenario:
    """A Scenario, a scenario's name (``default``) or a path, or TOML text (with a newline)."""
    if isinstance(scenario, Scenario):
        return scenario
    return parse_scenario(scenario) if "\n" in scenario else load_scenario(scenario)


@contextmanager
def serving(build: Callable[[], TwinServer], *, max_steps: int | None = None
            ) -> Iterator[tuple[TwinServer, threading.Thread]]:
    """Build a server in a thread of its own and run it there for the ``with`` block.

    ZeroMQ sockets live and die in the thread that made them, so ``build`` runs in the
    serving thread. Yields the server and that thread; stops it and waits after the block.
    ``tests/twinutil.py`` serves its test twins through this too.

    Raises:
        LocalTwinError: It did not start within a minute, or did not stop within 10 s.
        Whatever ``build`` raised (a refused scenario, a port in use).
    """
    ready = threading.Event()
    holder: dict[str, Any] = {}

    def serve() -> None:
        try:
            server = build()
        except BaseException as exc:
            holder["error"] = exc
            ready.set()
            return
        holder["server"] = server
        ready.set()
        try:
            server.run(max_steps=max_steps)
        finally:
            server.close()

    thread = threading.Thread(target=serve, name="local-twin", daemon=True)
    thread.start()
    if not ready.wait(START_TIMEOUT_S):
        raise LocalTwinError(f"the twin did not start within {START_TIMEOUT_S:g} s")
    if "error" in holder:
        raise holder["error"]
    server: TwinServer = holder["server"]
    try:
        yield server, thread
    finally:
        server.stop()
        thread.join(STOP_TIMEOUT_S)
        if thread.is_alive():
            raise LocalTwinError(f"the twin did not stop within {STOP_TIMEOUT_S:g} s")


@contextmanager
def local_twin(scenario: Scenario | str = "default", *, warp: float = 600.0,
               rate_hz: float = 20.0, fast: bool = False, paused: bool = False,
               seed: int | None = None, models: tuple[ModelEntry, ...] | None = None,
               audit_path: Path | None = None, keys_dir: Path | None = None,
               full_state_max_sats: int = FULL_STATE_MAX_SATS) -> Iterator[LocalTwin]:
    """Serve a twin for the ``with`` block, then stop it and wait for its thread.

    Args:
        scenario: What :func:`scenario_of` takes.
        warp, rate_hz, fast, paused: Its clock (``odc run``'s flags of those names).
        seed: Overrides the scenario's seed.
        models: The model registry to build it from (``twin.models.registry.MODELS`` by
            default); a test adds a model, and so a command, this way.
        audit_path, keys_dir: As ``odc run --audit`` and ``--keys``.
        full_state_max_sats: As ``odc run --full-state-max-sats``.

    Raises:
        LocalTwinError: It did not start within a minute, or did not stop within 10 s.
        ScenarioError: The scenario is refused (its file and key named).
    """
    def build() -> TwinServer:
        loaded = scenario_of(scenario)
        clock = SimClock(loaded.epoch_utc, rate_hz=rate_hz, warp=warp, fast=fast,
                         paused=paused)
        engine = Engine(loaded, clock, seed=seed, models=models)
        return TwinServer(engine, Addresses(ANY_LOOPBACK_PORT, ANY_LOOPBACK_PORT,
                                            ANY_LOOPBACK_PORT),
                          audit_path=audit_path, keys_dir=keys_dir,
                          full_state_max_sats=full_state_max_sats)

    with serving(build) as (server, _thread):
        yield LocalTwin(server, server.bound, audit_path, keys_dir)

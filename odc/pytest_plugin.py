"""A pytest plugin: the ``twin`` fixture, a real twin on free loopback ports and a client.

::

    import pytest

    @pytest.mark.twin_scenario("default", warp=600.0)
    def test_node_3_keeps_its_battery(twin):          # twin: a connected odc.client.Twin
        state = twin.wait_for("soc_frac", ">", 0.25, sat=3)
        assert state["soc_frac"][3] > 0.25

The marker ``twin_scenario(scenario="default", **options)`` names the scenario (a name, a
path, or TOML text) and ``odc.local_twin.local_twin``'s options (``warp``, ``rate_hz``,
``fast``, ``paused``, ``seed``, ``models``, ``keys``); an indirect parametrization
(``@pytest.mark.parametrize("twin", ["default", {"scenario": "default", "warp": 60.0}],
indirect=True)``) does the same per case. Without either, the default scenario runs at
warp 600. The twin keeps an audit file in the test's ``tmp_path`` (``twin_server.audit_path``).
With ``keys={"NAME": ["engineer"]}`` it runs with keys in a fresh folder and the client
uses the first key. ``full_state_max_sats`` is ``odc run --full-state-max-sats``.

``twin_server`` is the running twin itself (``odc.local_twin.LocalTwin``: its server,
addresses, audit path), for a test that reads what the client cannot. Both stop when the
test ends, the client first.

Registered by the ``pytest11`` entry point ``odc.pytest_plugin`` (pyproject.toml), and by
this repository's tests/conftest.py, so it runs in ``make test`` before a reinstall too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from odc.client import Twin
from odc.local_twin import LocalTwin, local_twin

MARKER = "twin_scenario"
DEFAULT_OPTIONS: dict[str, Any] = {"scenario": "default", "warp": 600.0}
LOCAL_TWIN_OPTIONS = frozenset({"scenario", "warp", "rate_hz", "fast", "paused", "seed",
                                "models", "keys", "full_state_max_sats"})


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(scenario='default', **options): the scenario and clock of the "
        "`twin` fixture (odc.pytest_plugin)")


def _options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The twin's options: the defaults, then the marker, then an indirect parameter."""
    options = dict(DEFAULT_OPTIONS)
    marker = request.node.get_closest_marker(MARKER)
    if marker is not None:
        if len(marker.args) > 1:
            raise pytest.UsageError(f"{MARKER}: one positional argument (the scenario), got "
                                    f"{len(marker.args)}")
        options.update(marker.kwargs)
        if marker.args:
            options["scenario"] = marker.args[0]
    # Parametrized indirectly on `twin` (or `twin_server`): the twin itself is made here.
    params = getattr(getattr(request.node, "callspec", None), "params", {})
    param = params.get("twin", params.get("twin_server"))
    if isinstance(param, str):
        options["scenario"] = param
    elif isinstance(param, dict):
        options.update(param)
    elif param is not None:
        raise pytest.UsageError(f"twin: parametrize with a scenario name or a dict of "
                                f"options, got {type(param).__name__}")
    unknown = sorted(set(options) - LOCAL_TWIN_OPTIONS)
    if unknown:
        raise pytest.UsageError(f"{MARKER}: unknown option(s) {', '.join(unknown)}; it takes "
                                f"{', '.join(sorted(LOCAL_TWIN_OPTIONS))}")
    return options


def _key_folder(keys: dict[str, list[str]], folder: Path) -> Path:
    from twin.security.keys import new_key

    for name, roles in keys.items():
        new_key(folder, name, roles)
    return folder


@pytest.fixture
def twin_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LocalTwin]:
    """A real twin in a thread on free loopback ports (see the module's docstring)."""
    options = _options(request)
    keys = options.pop("keys", None)
    keys_dir = _key_folder(keys, tmp_path / "keys") if keys else None
    with local_twin(options.pop("scenario"), audit_path=tmp_path / "audit.jsonl",
                    keys_dir=keys_dir, **options) as served:
        if keys:
            served.client_key = keys_dir / f"{next(iter(keys))}.key_secret"
        yield served


@pytest.fixture
def twin(twin_server: LocalTwin) -> Iterator[Twin]:
    """A :class:`odc.client.Twin` connected to ``twin_server`` (with its first key, if it
    runs with keys)."""
    with twin_server.client() as client:
        yield client

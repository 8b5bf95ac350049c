"""Fuzzing the command path: any map, any frames, and the twin answers, counts and steps on.

Hypothesis builds command maps from the real command names and argument names with values
of every msgpack type, and raw ROUTER frames of any bytes. Each request goes through the
server's own entry points (the same code the ROUTER socket feeds; test_server_robust.py
drives the sockets), then the engine steps. Asserted for every example:

- no exception escapes, and the reply is a map with a boolean ``ok``;
- a refusal carries a non-empty error and is counted as a rejection;
- no command makes a handler fail inside (``commands_failed`` stays 0: each refusal is a
  validation, never a bug);
- the twin keeps stepping with finite state.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twinutil import make_server

from twin.protocol.codec import pack, unpack
from twin.runtime.dispatch import pack_reply
from twin.runtime.server import TwinServer

ARGUMENT_NAMES = [
    "value", "n", "sat", "kind", "count", "health_frac", "job_id", "reset", "policy",
    "power_w", "size_accel_h", "accelerators", "priority", "checkpoint_interval_s",
    "result_bytes", "id", "cmd", "x",
]

scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 39, 40, 1e-300, 1e300, 1e-7, 1e7, 0.5, "all", "training",
                     "inference", "solar", "accelerator", "battery", "radiator", "sun_aware",
                     "first_fit", "mid-53-01-01"]),
    st.text(max_size=40), st.binary(max_size=40),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12)


@pytest.fixture(scope="module")
def server() -> TwinServer:
    twin = make_server("default", paused=True)
    yield twin
    twin.close()


def command_maps(names: list[str]) -> st.SearchStrategy[dict]:
    cmd = st.one_of(st.sampled_from(names), st.text(max_size=12), values)
    keys = st.one_of(st.sampled_from(ARGUMENT_NAMES), st.text(max_size=8),
                     st.integers(-5, 5), st.binary(max_size=4))
    return st.builds(lambda c, args: {**args, "cmd": c}, cmd,
                     st.dictionaries(keys, values, max_size=5))


def assert_reply(server: TwinServer, reply: dict, before: tuple[int, int, int]) -> None:
    counters = server.counters
    assert isinstance(reply, dict) and isinstance(reply.get("ok"), bool)
    unpack(pack_reply(reply))  # the reply goes on the wire whole
    if not reply["ok"]:
        assert isinstance(reply["error"], str) and reply["error"]
        assert len(reply["error"]) <= 600
    now = (counters.commands_ok, counters.commands_rejected, counters.commands_failed,
            counters.commands_held)
    assert sum(now) - sum(before) == 1, (before, now)
    assert counters.commands_failed == before[2], reply


def step_and_check(server: TwinServer) -> None:
    engine = server.engine
    if not server.clock.paused:  # a resume among the fuzzed commands
        server.clock.paused = True
    server.pending_steps = 0
    engine.step()
    server._publish_state()
    server._publish_events()
    for f in engine.fields:
        if f.array.dtype.kind == "f" and not f.spec.name.startswith("mirror_"):
            assert not np.isnan(f.array).any(), f.spec.name
    assert all(math.isfinite(v) for v in engine.header()["fleet"].values())


@settings(max_examples=300, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_command_maps_are_answered_counted_and_never_break_the_twin(
        server: TwinServer, data: st.DataObject) -> None:
    names = sorted(server.handlers)
    for request in data.draw(st.lists(command_maps(names), min_size=1, max_size=4)):
        counters = server.counters
        before = (counters.commands_ok, counters.commands_rejected, counters.commands_failed,
            counters.commands_held)
        reply = server.handle_command_bytes(pack(request))
        assert_reply(server, reply, before)
        if "id" in request:
            # Echoed as sent: the same value (NaN included, which equals nothing).
            assert pack(reply["id"]) == pack(request["id"])
    step_and_check(server)


@settings(max_examples=200, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture])
@given(frames=st.lists(st.one_of(st.binary(max_size=64), st.just(b""),
                                 st.just(pack({"cmd": "status"}))), max_size=6))
def test_fuzzed_raw_frames_always_get_a_reply(server: TwinServer, frames: list[bytes]) -> None:
    counters = server.counters
    before = (counters.commands_ok, counters.commands_rejected, counters.commands_failed,
            counters.commands_held)
    reply = server.handle_command_frames(frames)
    if not frames:
        assert reply is None
        return
    envelope, payload = reply
    assert envelope == frames[:2] if len(frames) >= 2 and frames[1] == b"" else frames[:1]
    assert_reply(server, unpack(payload), before)


@settings(max_examples=150, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture])
@given(frames=st.lists(st.one_of(st.binary(max_size=200), st.just(b"tm"),
                                 values.map(lambda v: pack(v))), max_size=8))
def test_fuzzed_ingest_frames_are_counted_and_never_break_the_twin(
        server: TwinServer, frames: list[bytes]) -> None:
    counters = server.counters
    messages = counters.ingest_messages
    server._ingest_one(frames)
    assert counters.ingest_messages == messages + 1
    assert counters.ingest_dropped_by_reason.get("internal_error", 0) == 0
    step_and_check(server)

"""The viewers' stream and command clients against a real twin that stops and comes back."""

from __future__ import annotations

import time

from twinutil import running_twin

from viz.stream import LIVE, STALE, CommandClient, StreamClient


def poll_until(client: StreamClient, predicate, timeout_s: float = 10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        batch = client.poll(100)
        if predicate(batch):
            return batch
    raise TimeoutError("condition not met in time")


def test_clients_follow_a_twin_through_a_restart() -> None:
    with running_twin("default") as twin:
        addresses = twin.addresses
        stream = StreamClient(addresses.pub, stale_after_s=1.0)
        commands = CommandClient(addresses.command, timeout_s=1.0)
        batch = poll_until(stream, lambda b: b.state is not None)
        assert stream.connection == LIVE
        assert batch.state.arrays["pos_gcrs_km"].shape[1] == 3
        assert commands.send("pause")["ok"]
        assert commands.send("warp", value="x")["ok"] is False
        resumed = commands.send("resume")
        assert resumed["ok"] and resumed["paused"] is False
    # The twin is gone: once what it sent is drained, the stream goes STALE, and
    # commands fail fast instead of hanging.
    deadline = time.monotonic() + 10
    while stream.connection != STALE:
        assert time.monotonic() < deadline, "the stream never went STALE"
        stream.poll(100)
    started = time.monotonic()
    reply = commands.send("status")
    assert reply["ok"] is False and "no reply" in reply["error"]
    assert time.monotonic() - started < 5  # the 1 s timeout, with room for a loaded machine
    # A new twin on the same addresses: both clients recover by themselves.
    with running_twin("default", addresses=addresses):
        poll_until(stream, lambda b: b.state is not None and stream.connection == LIVE)
        poll_until(stream, lambda b: stream.restarts >= 1)
        assert commands.send("status")["ok"]
    stream.close()
    commands.close()

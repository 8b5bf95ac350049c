"""Selective streams (twin.runtime.subscriptions) and the default frame at large fleets,
over real sockets."""

from __future__ import annotations

import time

import numpy as np
import pytest
import zmq

from tests.twinutil import ANY_PORT, connected, receive, request, running_twin, subscribed
from twin.core.clock import SimClock
from twin.core.engine import Engine
from twin.protocol.codec import decode
from twin.runtime.server import Addresses, TwinServer
from twin.runtime.subscriptions import (
    FULL_STATE_MAX_SATS,
    MAX_SUBSCRIPTIONS,
    SUBSCRIPTION_TTL_S,
)
from twin.scenario import parse_scenario


def _subscribe(command: zmq.Socket, **args) -> dict:
    return request(command, {"cmd": "subscribe", **args})


def test_a_subscription_receives_exactly_its_fields_dtypes_and_nodes() -> None:
    with running_twin("default", rate_hz=20.0, paused=True) as twin, \
            connected(zmq.REQ, twin.addresses.command) as command, \
            connected(zmq.SUB, twin.addresses.pub) as sub:
        engine = twin.engine
        groups = [s.group for s in engine.scenario.satellites]
        group = groups[-1]
        reply = _subscribe(command, fields="pos_gcrs_km,temp_compute_k,elevation_deg",
                           dtype="float32", group=group, every=2, rate_hz=50.0)
        assert reply["ok"], reply
        assert reply["topic"].startswith("sub/")
        sub.setsockopt(zmq.SUBSCRIBE, reply["topic"].encode())
        subscribed(sub, command)  # before the step, which it would miss
        assert request(command, {"cmd": "step", "n": 1})["ok"]
        message = receive(sub, reply["topic"])
        assert message.header["step"] == engine.clock.steps  # paused after it: the same
        # The very values of those nodes, downcast.
        for name in ("pos_gcrs_km", "temp_compute_k"):
            full = next(f.array for f in engine.fields if f.spec.name == name)
            expected_values = full[message.arrays["sat_index"]].astype("<f4")
            assert np.array_equal(message.arrays[name], expected_values), name
        elevation = next(f.array for f in engine.fields if f.spec.name == "elevation_deg")
        assert np.array_equal(message.arrays["elevation_deg"],
                              elevation[:, message.arrays["sat_index"]])
        expected = np.flatnonzero(np.array(groups) == group)[::2]
        # sat_index first, then the fields in the twin's order (meta.fields).
        assert list(message.arrays) == ["sat_index", "pos_gcrs_km", "elevation_deg",
                                        "temp_compute_k"]
        assert message.arrays["sat_index"].tolist() == expected.tolist()
        assert message.header["n_selected"] == expected.size
        assert message.arrays["pos_gcrs_km"].dtype == np.dtype("<f4")
        assert message.arrays["pos_gcrs_km"].shape == (expected.size, 3)
        assert message.arrays["elevation_deg"].shape == (len(engine.scenario.stations),
                                                         expected.size)
        assert message.arrays["temp_compute_k"].dtype == np.dtype("<f4")
        # Top N by a field, lowest first, over an index range.
        top = _subscribe(command, fields="soc_frac", first=4, stop=30, top_field="soc_frac",
                         top_n=3, top_order="min")
        assert top["ok"], top
        sub.setsockopt(zmq.SUBSCRIBE, top["topic"].encode())
        subscribed(sub, command)
        assert request(command, {"cmd": "step", "n": 1})["ok"]
        message = receive(sub, top["topic"])
        soc_all = next(f.array for f in engine.fields if f.spec.name == "soc_frac")
        assert message.arrays["sat_index"].tolist() == (
            4 + np.argsort(soc_all[4:30], kind="stable")[:3]).tolist()
        index = message.arrays["sat_index"]
        soc = message.arrays["soc_frac"]
        assert index.size == 3 and ((index >= 4) & (index < 30)).all()
        assert list(soc) == sorted(soc)
        twin.stop()


@pytest.mark.parametrize(("args", "says"), [
    ({"fields": "pos_gcrs_km,no_such_field"}, "'no_such_field' is not a field"),
    ({"fields": "soc_frac,soc_frac"}, "twice"),
    ({"fields": " , "}, "names no field"),
    ({"group": "nowhere"}, "group 'nowhere' is not a group"),
    ({"stop": 100_000}, "stop 100000 is past the fleet's 40 nodes"),
    ({"first": 10, "stop": 5}, "first 10 is not below stop 5"),
    ({"top_field": "soc_frac"}, "top_field and top_n go together"),
    ({"top_field": "elevation_deg", "top_n": 3}, "not a number per node"),
    ({"dtype": "float16"}, "dtype"),
    ({"rate_hz": 0}, "rate_hz"),
    ({"colour": "red"}, "colour"),
])
def test_an_invalid_subscription_is_refused_naming_what_is_wrong(args, says) -> None:
    with running_twin("default", paused=True) as twin, \
            connected(zmq.REQ, twin.addresses.command) as command:
        reply = _subscribe(command, **args)
        assert reply["ok"] is False
        assert says in reply["error"], reply["error"]
        assert request(command, {"cmd": "subscriptions"})["subscriptions"] == []


def test_two_clients_with_one_subscription_cost_one_encoding() -> None:
    with running_twin("default", rate_hz=20.0, paused=True) as twin, \
            connected(zmq.REQ, twin.addresses.command) as first, \
            connected(zmq.REQ, twin.addresses.command) as second, \
            connected(zmq.SUB, twin.addresses.pub) as sub_a, \
            connected(zmq.SUB, twin.addresses.pub) as sub_b:
        ask = {"fields": "lat_deg,lon_deg", "every": 4}
        topic_a = _subscribe(first, **ask)["topic"]
        topic_b = _subscribe(second, **ask)["topic"]
        assert topic_a == topic_b
        for sock in (sub_a, sub_b):
            sock.setsockopt(zmq.SUBSCRIBE, topic_a.encode())
            subscribed(sock, first)  # before the steps, which it would miss
        assert request(first, {"cmd": "step", "n": 5})["ok"]
        seqs_a = [receive(sub_a, topic_a).seq for _ in range(5)]
        seqs_b = [receive(sub_b, topic_a).seq for _ in range(5)]
        assert seqs_a == seqs_b
        listing = request(first, {"cmd": "subscriptions"})
        (only,) = listing["subscriptions"]
        assert only["requests"] == 2
        # One encoding per frame: the 5 steps (and any frame before them), not 2 per frame.
        assert only["encodings"] == listing["encodings"]
        assert 5 <= only["encodings"] <= 6
        twin.stop()


def test_subscriptions_are_bounded_and_expire_when_not_renewed() -> None:
    with running_twin("default", paused=True) as twin, \
            connected(zmq.REQ, twin.addresses.command) as command:
        for k in range(MAX_SUBSCRIPTIONS):
            assert _subscribe(command, fields="lat_deg", first=k)["ok"]
        refused = _subscribe(command, fields="lat_deg", first=MAX_SUBSCRIPTIONS)
        assert refused["ok"] is False and f"at most {MAX_SUBSCRIPTIONS}" in refused["error"]
        # Asking again for a live one renews it, which the bound allows.
        assert _subscribe(command, fields="lat_deg", first=0)["ok"]
        hub = twin.server.streams.hub
        hub.clock = lambda: time.monotonic() + SUBSCRIPTION_TTL_S + 1.0
        assert request(command, {"cmd": "subscriptions"})["subscriptions"] == []
        assert _subscribe(command, fields="lat_deg", first=MAX_SUBSCRIPTIONS)["ok"]


def test_unsubscribe_ends_a_subscription_when_its_last_client_lets_go() -> None:
    """Two clients share a subscription: the first to let go leaves it running for the
    other; the last ends it at once (a slot freed without waiting 30 s). Another client, or
    an unknown id, is refused by name."""
    with running_twin("default", rate_hz=20.0, paused=True) as twin, \
            connected(zmq.REQ, twin.addresses.command) as first, \
            connected(zmq.REQ, twin.addresses.command) as second, \
            connected(zmq.REQ, twin.addresses.command) as third, \
            connected(zmq.SUB, twin.addresses.pub) as sub:
        ask = {"fields": "lat_deg", "every": 4}
        granted = _subscribe(first, **ask)
        assert _subscribe(second, **ask)["id"] == granted["id"]
        sub_id, topic = granted["id"], granted["topic"]
        (listed,) = request(first, {"cmd": "subscriptions"})["subscriptions"]
        assert listed["holders"] == 2
        refused = request(third, {"cmd": "unsubscribe", "sub": sub_id})
        assert refused["ok"] is False and "not held by this client" in refused["error"]
        assert request(first, {"cmd": "unsubscribe", "sub": sub_id}) == {
            "ok": True, "sub": sub_id, "ended": False, "holders": 1}
        # Still running for the second client.
        sub.setsockopt(zmq.SUBSCRIBE, topic.encode())
        subscribed(sub, first)
        assert request(first, {"cmd": "step", "n": 1})["ok"]
        assert receive(sub, topic).header["sub"] == sub_id
        again = request(first, {"cmd": "unsubscribe", "sub": sub_id})
        assert again["ok"] is False and "not held by this client" in again["error"]
        assert request(second, {"cmd": "unsubscribe", "sub": topic}) == {  # (sub/<id>)
            "ok": True, "sub": sub_id, "ended": True, "holders": 0}
        listing = request(first, {"cmd": "subscriptions"})
        assert listing["subscriptions"] == [] and listing["ended"] == 1
        gone = request(second, {"cmd": "unsubscribe", "sub": sub_id})
        assert gone["ok"] is False and f"no live subscription '{sub_id}'" in gone["error"]
        # Its topic is quiet from the next step.
        assert request(first, {"cmd": "step", "n": 2})["ok"]
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            assert not sub.poll(100) or sub.recv_multipart()[0] != topic.encode()
        # A slot freed at once: the bound counts live ones only.
        for k in range(MAX_SUBSCRIPTIONS):
            assert _subscribe(third, fields="lat_deg", first=k)["ok"]
        assert request(third, {"cmd": "unsubscribe",
                               "sub": _subscribe(third, fields="lat_deg", first=0)["id"]})["ok"]
        assert _subscribe(third, fields="lat_deg", first=MAX_SUBSCRIPTIONS)["ok"]
        twin.stop()


BIG_FLEET = """
[scenario]
name = "big"
epoch = "2026-03-20T12:00:00Z"
seed = 1
[[walker]]
name = "sso"
altitude_km = 600.0
inclination_deg = 97.8
planes = 100
sats_per_plane = 500
phasing = 1
[[walker]]
name = "mid"
altitude_km = 550.0
inclination_deg = 30.0
planes = 100
sats_per_plane = 500
phasing = 1
"""


def test_the_default_frame_stays_small_on_a_100k_fleet() -> None:
    scenario = parse_scenario(BIG_FLEET)
    n = len(scenario.satellites)
    assert n == 100_000 > FULL_STATE_MAX_SATS
    engine = Engine(scenario, SimClock(scenario.epoch_utc, rate_hz=10.0, warp=60.0))
    server = TwinServer(engine, Addresses(ANY_PORT, ANY_PORT, ANY_PORT))
    try:
        with connected(zmq.SUB, server.bound.pub, SUBSCRIBE=b"") as sub:
            # Published again until the subscription has reached the socket (later on a
            # loaded machine); the engine does not step, so each is the same frame.
            deadline = time.monotonic() + 10
            server._publish_state()
            while not sub.poll(100):
                assert time.monotonic() < deadline, "nothing published reached the socket"
                server._publish_state()
            topics = {}
            while len(topics) < 2:
                frames = sub.recv_multipart()
                topics[bytes(frames[0])] = (decode(frames), sum(len(f) for f in frames))
        state, state_bytes = topics[b"state"]
        aggregate, aggregate_bytes = topics[b"aggregate"]
        assert state.header["reduced"] is True and state.header["n_sats"] == n
        assert all(n not in array.shape for array in state.arrays.values())
        assert "temp_compute_k" in aggregate.header["fields"]
        per_million = (state_bytes + aggregate_bytes) * 1_000_000 / n
        assert per_million <= 1_000_000, (state_bytes, aggregate_bytes)
    finally:
        server.close()


def test_a_rate_limited_subscription_sends_at_most_its_rate() -> None:
    with running_twin("default", rate_hz=20.0) as twin, \
            connected(zmq.REQ, twin.addresses.command) as command, \
            connected(zmq.SUB, twin.addresses.pub) as sub:
        reply = _subscribe(command, fields="soc_frac", rate_hz=2.0)
        sub.setsockopt(zmq.SUBSCRIBE, reply["topic"].encode())
        sub.setsockopt(zmq.SUBSCRIBE, b"state")
        receive(sub, reply["topic"])  # from the first one on
        states, selective = 0, 0
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            message = decode(sub.recv_multipart())
            states += message.topic == "state"
            selective += message.topic == reply["topic"]
        assert states >= 20  # the twin steps at 20 Hz on this loaded machine, or near it
        assert 3 <= selective <= 5, (selective, states)
        twin.stop()


@pytest.mark.timeout(60)
def test_odc_run_sets_the_largest_fleet_with_a_full_default_state() -> None:
    """`odc run --full-state-max-sats N`: the 40-node default above N=10 sends the reduced
    state (the fleet summary, no node rows), as a million-node fleet does by default."""
    from tests.procutil import twin_process

    with twin_process("--scenario", "default", "--full-state-max-sats", "10") as (_, addresses), \
            connected(zmq.SUB, addresses["stream"], SUBSCRIBE=b"state") as sub:
        state = receive(sub, "state", timeout_s=30.0)
        assert state.header["reduced"] is True and state.header["n_sats"] == 40
        assert "pos_gcrs_km" not in state.arrays and "temp_compute_k" not in state.arrays

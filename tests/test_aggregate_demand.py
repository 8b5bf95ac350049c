"""The ``aggregate`` is computed only while a client reads it: one that subscribes to it by
name, or on a reduced stream one that takes everything (the stream socket is an XPUB:
twin.runtime.streams.TopicDemand), over real sockets."""

from __future__ import annotations

import time

import zmq

from tests.twinutil import connected, receive, request, running_twin


def _skipped(command: zmq.Socket) -> int:
    return request(command, {"cmd": "status"})["counters"]["aggregates_skipped"]


def _until(predicate, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.05)


def test_the_aggregate_follows_the_clients_subscriptions() -> None:
    with running_twin("default", rate_hz=20.0) as twin, \
            connected(zmq.REQ, twin.addresses.command) as command, \
            connected(zmq.SUB, twin.addresses.pub) as states:
        streams = twin.server.streams
        states.setsockopt(zmq.SUBSCRIBE, b"state")
        receive(states, "state")
        first = _skipped(command)
        _until(lambda: _skipped(command) > first)  # nobody takes it: not computed
        assert streams.aggregate_seq == 0 and not streams.aggregate_wanted

        # A prefix of the topic takes it; from the next step on, without gaps.
        with connected(zmq.SUB, twin.addresses.pub) as aggregates:
            aggregates.setsockopt(zmq.SUBSCRIBE, b"agg")
            seqs = [receive(aggregates, "aggregate").header["seq"] for _ in range(4)]
            assert seqs == list(range(seqs[0], seqs[0] + 4))
            taken_at = _skipped(command)
            receive(aggregates, "aggregate")
            assert _skipped(command) == taken_at
        # Gone: no longer computed.
        _until(lambda: not streams.aggregate_wanted)
        gone_at = _skipped(command)
        _until(lambda: _skipped(command) > gone_at)

        # Everything (b""), what the viewers subscribe to: they have every node's row.
        with connected(zmq.SUB, twin.addresses.pub) as everything:
            everything.setsockopt(zmq.SUBSCRIBE, b"")
            receive(everything, "state")
            _until(lambda: streams.aggregate_demand.everything)
            published, taken_at = streams.aggregate_seq, _skipped(command)
            _until(lambda: _skipped(command) > taken_at + 3)
            assert streams.aggregate_seq == published


def test_on_a_reduced_stream_a_client_taking_everything_gets_it() -> None:
    with running_twin("default", rate_hz=20.0, full_state_max_sats=0) as twin, \
            connected(zmq.SUB, twin.addresses.pub) as everything:
        everything.setsockopt(zmq.SUBSCRIBE, b"")
        assert receive(everything, "state").header.get("reduced") is True
        seqs = [receive(everything, "aggregate").header["seq"] for _ in range(3)]
        assert seqs == list(range(seqs[0], seqs[0] + 3))


def test_other_topics_and_a_flood_of_subscriptions_leave_it_off() -> None:
    with running_twin("default", rate_hz=20.0) as twin, \
            connected(zmq.REQ, twin.addresses.command) as command, \
            connected(zmq.SUB, twin.addresses.pub) as flood:
        flood.setsockopt(zmq.SUBSCRIBE, b"event")
        flood.setsockopt(zmq.SUBSCRIBE, b"hb")
        # Distinct topics, each passed up by the XPUB (under the 1,000 a SUB socket's queue
        # holds before libzmq drops a subscription, PUB or XPUB alike).
        for i in range(900):
            flood.setsockopt(zmq.SUBSCRIBE, b"aggregate/%d" % i)
        receive(flood, "hb")
        before = request(command, {"cmd": "status"})
        _until(lambda: request(command, {"cmd": "status"})["step"] > before["step"] + 5)
        streams = twin.server.streams
        assert not streams.aggregate_wanted
        assert streams.aggregate_seq == 0
        assert not streams.aggregate_demand._prefixes  # nothing of theirs kept


def test_a_late_subscriber_without_a_command_socket_gets_meta_soon() -> None:
    """``meta`` is published every few seconds; a client that joins late with no command
    socket to ask for it gets one soon after it subscribes (the socket is a verbose XPUB:
    each client's subscription is seen, a second one's to the same topic too)."""
    with running_twin("default", paused=True, meta_interval_s=3600.0) as twin, \
            connected(zmq.SUB, twin.addresses.pub) as first, \
            connected(zmq.SUB, twin.addresses.pub) as second:
        _until(lambda: twin.server.counters.meta_published >= 1)  # the first, at start
        # The second joins while the first still holds the same subscription: only a
        # verbose XPUB passes its subscription up.
        for late in (first, second):
            late.setsockopt(zmq.SUBSCRIBE, b"meta")
            started = time.monotonic()
            message = receive(late, "meta", timeout_s=5.0)
            assert message.header["sats"]["n"] == 40
            assert time.monotonic() - started < 4.0  # well before any periodic one (1 h)

"""``Twin.subscribe`` outlives a twin restart: renewals the twin cannot answer are asked
again, and the new twin's grant is followed (real twins on the same loopback ports)."""

from __future__ import annotations

import threading
import time

import odc.client as client_module
import twin.runtime.subscriptions as subscriptions
from odc.client import Twin
from tests.twinutil import running_twin
from twin.runtime.server import Addresses


def test_a_subscription_renews_through_a_restart(monkeypatch) -> None:
    monkeypatch.setattr(subscriptions, "SUBSCRIPTION_TTL_S", 3.0)  # renew every 1 s
    monkeypatch.setattr(client_module, "RENEW_RETRY_S", 0.2)
    with running_twin("default", rate_hz=10.0) as first:
        addresses = first.addresses
        client = Twin(addresses.command, stream=addresses.pub, timeout_s=0.5)
        states = client.subscribe(["soc_frac"], idle_timeout_s=30.0)
        before = next(states)
        assert before["soc_frac"].shape == (first.engine.n_sats,)
        first.stop()
    # Down for a few renewals (each unanswered), then another twin on the same addresses,
    # which knows nothing of the subscription until the client asks again.
    second_started = threading.Event()
    stop_second = threading.Event()

    def serve_second() -> None:
        time.sleep(3.0)
        with running_twin("default", rate_hz=10.0, addresses=Addresses(
                addresses.pub, addresses.command, addresses.ingest)) as second:
            second_started.set()
            stop_second.wait(60.0)
            second.stop()

    thread = threading.Thread(target=serve_second, daemon=True)
    thread.start()
    try:
        after = next(states)  # no exception while the twin is down
        assert second_started.is_set()
        assert after["soc_frac"].shape == before["soc_frac"].shape
        assert after.t_utc >= 0.0
    finally:
        stop_second.set()
        thread.join(30.0)
        client.close()

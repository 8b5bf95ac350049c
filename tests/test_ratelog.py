"""The rejection log: counted always, written at a bounded rate, never whole payloads."""

from __future__ import annotations

import logging

from twin.core.ratelog import MAX_MESSAGE_CHARS, RateLimitedLog, shorten


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_shorten_marks_the_cut() -> None:
    assert shorten("abc", 10) == "abc"
    assert shorten("x" * 20, 10) == "x" * 9 + "…"
    assert len(shorten("y" * 10_000)) == MAX_MESSAGE_CHARS


def test_a_flood_writes_a_burst_then_one_summary_per_period(caplog) -> None:
    clock = FakeClock()
    rate_log = RateLimitedLog(logging.getLogger("odc.test.ratelog"), burst=3, period_s=10.0,
                              clock=clock)
    with caplog.at_level(logging.WARNING, logger="odc.test.ratelog"):
        for _ in range(10_000):
            rate_log.log("not_msgpack", "bad %s", "z" * 5000)
        assert rate_log.counts["not_msgpack"] == 10_000
        # the burst, plus the line that says summaries follow
        assert len(caplog.records) == 4
        assert all(len(r.getMessage()) <= MAX_MESSAGE_CHARS + 100 for r in caplog.records)
        clock.now = 10.5
        rate_log.tick()
        assert "9997 more 'not_msgpack'" in caplog.records[-1].getMessage()
        rate_log.log("not_msgpack", "again")
        assert caplog.records[-1].getMessage() == "again"


def test_reasons_are_capped() -> None:
    rate_log = RateLimitedLog(logging.getLogger("odc.test.ratelog2"), burst=0)
    for i in range(1000):
        rate_log.log(f"reason{i}", "x")
    assert len(rate_log.counts) <= 257
    assert sum(rate_log.counts.values()) == 1000

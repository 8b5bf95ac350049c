"""The mirror's ingest against bad input: bounds, caps, exact counting, short logs, fuzz.

Messages are built the way the bridge builds them (``twin.protocol.telemetry.encode_telemetry``)
and fed to ``Mirror.ingest`` directly, on the flatsat mirror scenario (16 nodes, one binding).
"""

from __future__ import annotations

import logging
import time
import tracemalloc
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from twin.core.clock import SimClock
from twin.core.engine import Engine
from twin.core.ratelog import MAX_MESSAGE_CHARS
from twin.models.mirror import Mirror
from twin.models.mirror.ingest import MAX_BRIDGE_ENTRIES, MAX_PACKETS_PER_BINDING
from twin.protocol.codec import WIRE_DTYPES, pack
from twin.protocol.telemetry import decode_telemetry, encode_telemetry
from twin.scenario import ScenarioError, parse_scenario

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = (ROOT / "assets" / "testbeds" / "flatsat_mirror.toml").read_text()
LOGGER = "odc.twin.mirror"
ten_megabytes = 10 * 2**20


# -- helpers ---------------------------------------------------------------------------------


def _engine(text: str = SCENARIO, now: dict[str, float] | None = None) -> Engine:
    scenario = parse_scenario(text)
    engine = Engine(scenario, SimClock(scenario.epoch_utc, rate_hz=10.0, warp=1.0, fast=True))
    if now is not None:
        engine.mirror.wall_clock = lambda: now["t"]
    return engine


def _tm(now_s: float, testbed: str = "flatsat", packet: str = "hk", bridge: Any = None,
        **values: float) -> list[bytes]:
    """One sample, 50 ms old, as the bridge frames it (frames as bytes, as zmq hands them)."""
    frames = encode_telemetry(0, testbed, packet, np.array([now_s - 0.05]),
                              {k: np.array([v]) for k, v in values.items()}, bridge=bridge)
    return [bytes(f) for f in frames]


def _header(frames: list[bytes]) -> dict[str, Any]:
    return msgpack.unpackb(frames[1], raw=False)


def _with_header(frames: list[bytes], **changes: Any) -> list[bytes]:
    header = {**_header(frames), **changes}
    return [frames[0], pack(header), *frames[2:]]


def _accounted(mirror: Mirror) -> None:
    """Every message and every sample is in exactly one outcome."""
    c = mirror.counters
    assert c["messages"] == (c["messages_applied"] + c["messages_ignored"]
                             + sum(c["messages_dropped"].values()))
    assert c["samples_received"] == (c["samples_applied"] + c["samples_ignored"]
                                     + sum(c["samples_dropped"].values()))


def _assert_finite(engine: Engine) -> None:
    """No model field holds NaN (the mirror's own fields are NaN by design when not live);
    only power caps may be infinite (no cap); every fleet total is finite."""
    for f in engine.fields:
        a = f.array
        if a.dtype.kind != "f" or f.spec.name.startswith("mirror_"):
            continue
        assert not np.isnan(a).any(), f.spec.name
        assert f.spec.name.endswith("_cap_w") or np.isfinite(a).all(), f.spec.name
    fleet = engine.header()["fleet"]
    bad = {k: v for k, v in fleet.items() if not np.isfinite(v)}
    assert not bad


class _Lines(logging.Handler):
    """Collects the mirror's log records (caplog does not mix with hypothesis examples)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> _Lines:
        logging.getLogger(LOGGER).addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger(LOGGER).removeHandler(self)

    def check_short(self) -> None:
        for record in self.records:
            assert not record.exc_info, "a traceback for bad input"
            assert len(record.getMessage()) <= MAX_MESSAGE_CHARS + 80


# -- 1. physical bounds ----------------------------------------------------------------------


@pytest.mark.parametrize("power_w", [1e308, -5e6, 1e7, float("inf")])
def test_absurd_power_is_dropped_and_the_twin_stays_finite(power_w: float) -> None:
    now = {"t": time.time()}
    engine = _engine(now=now)
    mirror = engine.mirror
    engine.step()
    mirror.ingest(_tm(now["t"], compute_power_w=150.0))
    engine.step()
    with _Lines() as lines:
        for _ in range(3):
            now["t"] += 0.1
            mirror.ingest(_tm(now["t"], compute_power_w=power_w))
            for _ in range(5):
                engine.step()
    _assert_finite(engine)
    assert mirror.live[0].measured["compute_power_w"] == 150.0  # the last good one stays
    reason = "not_finite" if power_w == float("inf") else "out_of_bounds"
    assert mirror.counters["samples_dropped"][reason] == 3
    assert mirror.counters["messages_ignored"] == 3
    _accounted(mirror)
    if reason == "out_of_bounds":
        assert any("compute_power_w" in r.getMessage() for r in lines.records)
    lines.check_short()


def test_a_conversion_that_overflows_is_out_of_bounds() -> None:
    """1e306 kW is finite, but 1e309 W is not: checked after conversion."""
    text = SCENARIO.replace('compute_power_w = "compute_power_w"', 'compute_kw = "compute_power_w"')
    now = {"t": time.time()}
    engine = _engine(text, now)
    engine.mirror.ingest(_tm(now["t"], compute_kw=1e306))
    engine.mirror.ingest(_tm(now["t"] + 0.01, compute_kw=0.2))
    engine.step()
    assert engine.mirror.counters["samples_dropped"]["out_of_bounds"] == 1
    assert engine.mirror.live[0].measured["compute_power_w"] == pytest.approx(200.0)
    _assert_finite(engine)


def test_out_of_range_fraction_and_temperature_are_dropped() -> None:
    now = {"t": time.time()}
    engine = _engine(now=now)
    for i, values in enumerate([{"util_frac": 1.5}, {"util_frac": -0.1},
                                {"cold_plate_temp_c": -273.15 - 10},  # below absolute zero
                                {"radiator_temp_c": 5000.0}]):
        engine.mirror.ingest(_tm(now["t"] + 0.01 * i, **values))
        engine.step()
    assert engine.mirror.counters["samples_dropped"]["out_of_bounds"] == 4
    assert engine.mirror.live[0].measured == {}
    _assert_finite(engine)


def test_a_binding_sets_its_own_bounds() -> None:
    text = SCENARIO.replace("thresholds = {", "bounds = { temp_compute_k = [250.0, 400.0] }\n"
                            "thresholds = {")
    now = {"t": time.time()}
    mirror = _engine(text, now).mirror
    mirror.ingest(_tm(now["t"], cold_plate_temp_c=150.0))  # 423 K: physical, not this plate
    mirror.ingest(_tm(now["t"] + 0.01, cold_plate_temp_c=40.0))
    assert mirror.counters["samples_dropped"]["out_of_bounds"] == 1
    assert mirror.live[0].measured["temp_compute_k"] == pytest.approx(313.15)


@pytest.mark.parametrize("bad", ["[400.0, 250.0]", "[1.0]", '["a", 2]', "[0, 1e300]",
                                 "[true, 2]"])
def test_bad_binding_bounds_are_refused(bad: str) -> None:
    text = SCENARIO.replace("thresholds = {", f"bounds = {{ temp_compute_k = {bad} }}\n"
                            "thresholds = {")
    with pytest.raises(ScenarioError, match="bounds"):
        _engine(text)


def test_bounds_of_an_unmapped_quantity_are_refused() -> None:
    text = SCENARIO.replace("thresholds = {", "bounds = { soc_frac = [0.1, 0.9] }\n"
                            "thresholds = {")
    with pytest.raises(ScenarioError, match="not one of the mapped"):
        _engine(text)


# -- 2. memory: client-keyed maps are capped -------------------------------------------------


def test_unknown_testbeds_keep_nothing() -> None:
    now = {"t": time.time()}
    mirror = _engine(now=now).mirror
    bridge = {"push": {"sent_messages": 1}, "junk": "x" * 1000}
    for i in range(5000):
        mirror.ingest(_tm(now["t"], testbed=f"tb{i}", bridge=bridge, compute_power_w=1.0))
    assert mirror.bridge_counters == {}
    assert mirror.counters["messages_dropped"]["unknown_testbed"] == 5000
    assert len(msgpack.packb(mirror.status())) < 2000
    _accounted(mirror)


def test_only_known_bridge_counters_are_kept() -> None:
    now = {"t": time.time()}
    mirror = _engine(now=now).mirror
    bridge = {
        "push": {"sent_messages": 5, "dropped_samples": 0, "extra": "y" * 10_000,
                 "sent_samples": float("nan")},
        "decoder": {"received": 9, "accepted": 8, "rejected_total": 1, "bytes_received": 100,
                    "bytes_skipped": [1, 2], "rejected": {f"r{i}": i for i in range(5000)},
                    "seq": {f"p{i}": {"gaps": 1, "skipped": 2, "restarts": 0, "x": [1]}
                            for i in range(5000)}},
        "nested": [[[[[[[]]]]]]] * 1000,
    }
    mirror.ingest(_tm(now["t"], bridge=bridge, compute_power_w=1.0))
    kept = mirror.status()["bridges"]["flatsat"]
    assert set(kept) == {"push", "decoder"}
    assert kept["push"] == {"sent_messages": 5, "dropped_samples": 0}
    assert kept["decoder"]["received"] == 9 and "bytes_skipped" not in kept["decoder"]
    assert len(kept["decoder"]["rejected"]) == MAX_BRIDGE_ENTRIES
    assert len(kept["decoder"]["seq"]) == MAX_BRIDGE_ENTRIES
    assert kept["decoder"]["seq"]["p0"] == {"gaps": 1, "skipped": 2, "restarts": 0}
    assert len(msgpack.packb(kept)) < 4000


def test_packet_names_per_binding_are_capped() -> None:
    now = {"t": time.time()}
    mirror = _engine(now=now).mirror
    for i in range(MAX_PACKETS_PER_BINDING + 100):
        mirror.ingest(_tm(now["t"], packet=f"p{i}", compute_power_w=1.0))
    assert len(mirror.live[0].newest_t) == MAX_PACKETS_PER_BINDING
    assert mirror.counters["messages_dropped"]["too_many_packets"] == 100
    mirror.ingest(_tm(now["t"] + 0.01, packet="p0", compute_power_w=2.0))  # known: still fine
    assert mirror.live[0].measured["compute_power_w"] == 2.0
    _accounted(mirror)


def test_a_big_message_costs_bounded_memory() -> None:
    """2 M one-byte samples in 12 columns (24 MB): judged without widening every column."""
    now = {"t": time.time()}
    mirror = _engine(now=now).mirror
    n = 2_000_000
    column = np.zeros(n, dtype="|u1")
    names = ["t_utc", "compute_power_w", *(f"spare{i}_w" for i in range(10))]
    fields = [{"name": name, "dtype": "|u1", "shape": [n]} for name in names]
    header = {"v": 1, "seq": 0, "t_utc": now["t"], "testbed": "flatsat", "packet": "hk",
              "n": n, "fields": fields}
    frames = [b"tm", pack(header), *(column.tobytes() for _ in names)]
    tracemalloc.start()
    try:
        mirror.ingest(frames)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < ten_megabytes  # the whole message widened to f8 would be 192 MB
    assert mirror.counters["samples_dropped"]["late"] == n  # times of 0..255 s POSIX
    _accounted(mirror)


def test_decode_reads_columns_in_place() -> None:
    frames = _tm(1.0e9, compute_power_w=3.0)
    _, columns = decode_telemetry(frames)
    assert not columns["compute_power_w"].flags.owndata


# -- 3. every message counted once, cleanly --------------------------------------------------


def _malformed(now_s: float) -> list[Any]:
    good = _tm(now_s, compute_power_w=1.0)
    header = _header(good)
    spec = header["fields"][1]
    fields = header["fields"]
    return [
        None, [], [b"tm"], "tm", [b"tm", good[1]], [b"state", *good[1:]],
        [b"tm", b"\xc1", *good[2:]], [b"tm", pack([1, 2]), *good[2:]],
        [12345, *good[1:]], [good[0], good[1], 10**6], [good[0], good[1], good[2], "text"],
        [*good[:2], good[2][:5], good[3]], [*good, b"\x00" * 8],
        _with_header(good, v=True), _with_header(good, v="1"), _with_header(good, v=2),
        _with_header(good, testbed=7), _with_header(good, testbed=""),
        _with_header(good, testbed=["flatsat"]), _with_header(good, packet=["hk"]),
        _with_header(good, packet={"a": 1}), _with_header(good, packet="p" * 10_000),
        _with_header(good, n=True), _with_header(good, n=-1), _with_header(good, n=0),
        _with_header(good, n=10**12), _with_header(good, n=2**64 - 1), _with_header(good, n=1.0),
        _with_header(good, n="1"), _with_header(good, fields={"t_utc": 1}),
        _with_header(good, fields=[fields[0], 5]),
        _with_header(good, fields=[fields[0], [spec]]),
        _with_header(good, fields=[fields[0], {**spec, "name": 5}]),
        _with_header(good, fields=[fields[0], {**spec, "name": ""}]),
        _with_header(good, fields=[fields[0], {**spec, "dtype": ["<f8"]}]),
        _with_header(good, fields=[fields[0], {**spec, "dtype": {"a": 1}}]),
        _with_header(good, fields=[fields[0], {**spec, "dtype": "<f16"}]),
        _with_header(good, fields=[fields[0], {**spec, "dtype": "O"}]),
        _with_header(good, fields=[fields[0], {**spec, "shape": [True]}]),
        _with_header(good, fields=[fields[0], {**spec, "shape": [1.0]}]),
        _with_header(good, fields=[fields[0], {**spec, "shape": [-1]}]),
        _with_header(good, fields=[fields[0], {**spec, "shape": [2**64 - 1]}]),
        _with_header(good, fields=[fields[0], {**spec, "shape": [[1]]}]),
        _with_header(good, fields=[fields[0], {**spec, "shape": [1, 1]}]),
        _with_header(good, fields=[fields[0], {**spec, "shape": 1}]),
        _with_header(good, fields=[fields[0], {**spec, "name": "t_utc"}]),  # duplicate name
        _with_header(good, fields=[{**fields[0], "name": "x_w"}, spec]),  # no t_utc
    ]


def test_every_malformed_message_is_counted_once_without_a_traceback() -> None:
    now = {"t": time.time()}
    engine = _engine(now=now)
    mirror = engine.mirror
    bad = _malformed(now["t"])
    with _Lines() as lines:
        for frames in bad:
            mirror.ingest(frames)
            engine.step()
    c = mirror.counters
    assert c["messages"] == len(bad)
    assert c["messages_dropped"]["bad_message"] == len(bad)
    assert c["samples_received"] == 0
    _accounted(mirror)
    lines.check_short()
    assert mirror.live[0].measured == {}


def test_zmq_frames_and_memoryviews_are_accepted() -> None:
    import zmq

    now = {"t": time.time()}
    mirror = _engine(now=now).mirror
    frames = _tm(now["t"], compute_power_w=7.0)
    mirror.ingest([zmq.Frame(f) for f in frames])
    mirror.ingest([memoryview(f) for f in _tm(now["t"] + 0.01, compute_power_w=8.0)])
    assert mirror.counters["messages_applied"] == 2
    assert mirror.live[0].measured["compute_power_w"] == 8.0


# -- 4. logs: bounded, never the payload -----------------------------------------------------


def test_rejections_never_log_the_payload() -> None:
    now = {"t": time.time()}
    mirror = _engine(now=now).mirror
    payload = "Z" * 100_000
    with _Lines() as lines:
        for i in range(1000):
            mirror.ingest(_tm(now["t"], testbed=payload + str(i), compute_power_w=1.0))
            mirror.ingest(_with_header(_tm(now["t"], compute_power_w=1.0), packet=[payload]))
            mirror.ingest([b"tm", payload.encode(), b"x"])
    assert mirror.counters["messages"] == 3000
    assert len(lines.records) <= 3 * 6  # a burst per reason, then summaries
    lines.check_short()
    assert not any("Z" * 100 in r.getMessage() for r in lines.records)


# -- fuzz ------------------------------------------------------------------------------------

PARAMS = ("compute_power_w", "util_frac", "cold_plate_temp_c", "radiator_temp_c", "other_w")
HEADER_KEYS = ("v", "seq", "t_utc", "testbed", "packet", "n", "fields", "bridge", "junk")

msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats()
    | st.text(max_size=12) | st.binary(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)
values = st.one_of(
    st.floats(0.0, 1.0), st.floats(-1e3, 1e3), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, -1e308, 5e-324, -5e6, 1e7, 1e5, 0.0, -0.0]),
)


@st.composite
def tm_messages(draw: st.DrawFn, now_s: float) -> list[bytes]:
    """A bridge-framed ``tm`` message, then a few mutations of it."""
    n = draw(st.integers(1, 6))
    t = np.array(draw(st.lists(st.one_of(st.floats(now_s - 1.0, now_s),
                                         st.floats(now_s - 40.0, now_s + 10.0), st.floats()),
                               min_size=n, max_size=n)))
    params = draw(st.lists(st.sampled_from(PARAMS), unique=True, max_size=4))
    columns = {p: np.array(draw(st.lists(values, min_size=n, max_size=n))) for p in params}
    counts = draw(st.none() | st.lists(st.integers(-(2**40), 2**40), min_size=n, max_size=n))
    frames: list[Any] = [bytes(f) for f in encode_telemetry(
        draw(st.integers(0, 2**32)), draw(st.sampled_from(["flatsat", "flatsat", "other"])),
        draw(st.sampled_from(["hk", "status", ""])), t, columns,
        bridge=draw(st.none() | msgpack_values),
        seq_count=None if counts is None else np.array(counts))]
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 1, 2, 3]))):
        frames = draw(_mutation(frames))
    return frames


@st.composite
def _mutation(draw: st.DrawFn, frames: list[Any]) -> list[Any]:
    kind = draw(st.sampled_from(["drop", "add", "truncate", "header", "spec", "raw_header",
                                 "retype"]))
    frames = list(frames)
    if kind == "drop" and frames:
        del frames[draw(st.integers(0, len(frames) - 1))]
    elif kind == "add":
        frames.insert(draw(st.integers(0, len(frames))), draw(st.binary(max_size=24)))
    elif kind == "truncate" and frames:
        i = draw(st.integers(0, len(frames) - 1))
        frames[i] = frames[i][:draw(st.integers(0, max(0, len(frames[i]) - 1)))]
    elif kind == "raw_header" and len(frames) > 1:
        frames[1] = draw(st.binary(max_size=40))
    elif kind in ("header", "spec", "retype") and len(frames) > 1:
        try:
            header = msgpack.unpackb(frames[1], raw=False, strict_map_key=False)
        except Exception:
            return frames
        if not isinstance(header, dict):
            return frames
        specs = header.get("fields")
        if kind == "header" or not isinstance(specs, list) or not specs:
            header[draw(st.sampled_from(HEADER_KEYS))] = draw(msgpack_values)
        else:
            i = draw(st.integers(0, len(specs) - 1))
            if kind == "retype" and isinstance(specs[i], dict):
                dtype = draw(st.sampled_from(sorted(WIRE_DTYPES)))
                specs[i] = {**specs[i], "dtype": dtype}
            elif isinstance(specs[i], dict):
                key = draw(st.sampled_from(["name", "dtype", "shape", "unit"]))
                specs[i] = {**specs[i], key: draw(msgpack_values | st.just("t_utc"))}
            else:
                specs[i] = draw(msgpack_values)
        frames[1] = pack(header)
    return frames


def _outcomes(mirror: Mirror) -> dict[str, int]:
    c = mirror.counters
    return {"applied": c["messages_applied"], "ignored": c["messages_ignored"],
            **c["messages_dropped"]}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_ingest_never_breaks_the_twin(data: st.DataObject) -> None:
    now = {"t": 1.9e9}
    engine = _engine(now=now)
    mirror = engine.mirror
    messages = data.draw(st.integers(1, 6))
    with _Lines() as lines:
        for _ in range(messages):
            before = _outcomes(mirror)
            mirror.ingest(data.draw(tm_messages(now["t"])))
            event(next(k for k, v in _outcomes(mirror).items() if v != before[k]))
            engine.step()
            now["t"] += 0.1
            _assert_finite(engine)
            _accounted(mirror)
            for lv in mirror.live:
                for q, v in lv.measured.items():
                    low, high = lv.bounds[q]
                    assert low <= v <= high, q
    lines.check_short()
    assert mirror.counters["messages"] == messages
    assert engine.clock.steps == messages  # the twin kept stepping


def test_bridge_summary_keeps_the_documented_counters_only() -> None:
    from twin.models.mirror.ingest import bridge_summary

    raw = {
        "push": {"sent_messages": 3, "junk": "x" * 1000},
        "decoder": {"received": 5, "rejected": {"crc": 2, "x" * 500: 1}},
        "source": {"open": 2, "refused_full": 1, "closed": {"idle": 4, "evil": [1] * 100},
                   "extra": {"deep": {"deeper": 1}}},
        "other": list(range(1000)),
    }
    assert bridge_summary(raw) == {
        "push": {"sent_messages": 3},
        "decoder": {"received": 5, "rejected": {"crc": 2}},
        "source": {"open": 2, "refused_full": 1, "closed": {"idle": 4}},
    }

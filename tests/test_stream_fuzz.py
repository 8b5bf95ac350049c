"""Bad stream messages against both viewers: a rogue publisher on loopback, then hypothesis.

Every message starts as the twin would frame it (``twin.protocol.codec.StateEncoder``,
``encode_map``) and is then broken on purpose: undecodable bytes, a header value of the
wrong type, a state that does not fit meta, a wild sequence number. A viewer must drop each
one, count it and show the count, stay up, and draw the good messages that follow
(docs/reliability.md, "Viewers"). NaN and inf inside arrays are data, not bad messages:
they are drawn.
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tuiutil
import viewerstate

from twin.protocol.codec import (
    PROTOCOL_VERSION,
    TOPIC_EVENT,
    TOPIC_HEARTBEAT,
    TOPIC_META,
    FieldSpec,
    Message,
    StateEncoder,
    encode_map,
    pack,
)
from viz.checks import MAX_SEQ_JUMP
from viz.stream import Batch, StreamClient, StreamGate
from viz.tui.model import FleetModel
from viz.tui.trends import TREND_MAX_BYTES

N = 40
RUN_ID = 0x5EED


# -- messages as the twin frames them -----------------------------------------------
class Twinlike:
    """Frames one fleet's messages as the twin does: the real encoder, seq per topic.

    Args:
        meta_body: The ``meta`` header (its catalog gives the state's field specs).
        state_of: A decoded ``state`` for a step number.
    """

    def __init__(self, meta_body: dict[str, Any], state_of: Callable[[int], Message]) -> None:
        self.meta_body = {k: v for k, v in meta_body.items()
                          if k not in ("v", "seq", "t_utc", "run_id")}
        self.state_of = state_of
        self.encoder = StateEncoder([
            FieldSpec(e["name"], e["dtype"], tuple(e["shape"]), e["unit"], e["description"],
                      e["per_sat"], e["limits"]) for e in meta_body["fields"]])
        self.seq: Counter[str] = Counter()
        self.t_utc = float(meta_body["t_utc"])

    def _framing(self, topic: str, t_utc: float | None = None) -> dict[str, Any]:
        seq = self.seq[topic]
        self.seq[topic] += 1
        return {"v": PROTOCOL_VERSION, "seq": seq, "t_utc": self.t_utc if t_utc is None
                else t_utc, "run_id": RUN_ID}

    def meta(self, **changes: Any) -> list[bytes]:
        return encode_map(TOPIC_META, {**self._framing("meta"), **self.meta_body, **changes})

    def state(self, step: int, **changes: Any) -> list[bytes]:
        state = self.state_of(step)
        header = {k: v for k, v in state.header.items() if k not in ("fields", "seq", "run_id")}
        header.update(self._framing("state", state.t_utc), **changes)
        arrays = [np.ascontiguousarray(state.arrays[s.name]) for s in self.encoder.specs]
        return [bytes(frame) for frame in self.encoder.encode(header, arrays)]

    def event(self, **changes: Any) -> list[bytes]:
        body = {**self._framing("event"), "kind": "limit", "severity": "alarm",
                "message": "node 7: temp_compute_k 366 K above alarm_high 358.1", "sat": 7}
        return encode_map(TOPIC_EVENT, {k: v for k, v in {**body, **changes}.items()
                                        if v is not DROP})

    def hb(self, **changes: Any) -> list[bytes]:
        body = {**self._framing("hb"), "wall_utc": time.time(), "step": 0, "paused": False,
                "warp": 60.0, "rate_hz": 10.0, "scenario": "default", "n_sats": N}
        return encode_map(TOPIC_HEARTBEAT, {**body, **changes})


DROP = object()  # a header key left out


def tui_twin() -> Twinlike:
    """The dashboard tests' fleet (tests/tuiutil.py): 40 nodes, thermal, power, compute."""
    return Twinlike(tuiutil.meta().header, tuiutil.state)


def viewer_state(step: int) -> Message:
    """The 3D viewer tests' fixed fleet (tests/viewerstate.py) at a later step."""
    _, state = viewerstate.meta_and_state()
    header = {**state.header, "step": step, "t_utc": state.t_utc + 6.0 * step}
    return Message("state", header, state.arrays)


def viewer_twin() -> Twinlike:
    meta, _ = viewerstate.meta_and_state()
    return Twinlike(meta, viewer_state)


def _retyped(frames: list[bytes], field: str, dtype: str) -> list[bytes]:
    """``frames`` with one field's dtype changed in the header (same item size: decodes)."""
    header = msgpack.unpackb(frames[1])
    for entry in header["fields"]:
        if entry["name"] == field:
            entry["dtype"] = dtype
    return [frames[0], pack(header), *frames[2:]]


# One of each kind of bad message; each must be dropped and counted, none may stop a viewer.
BAD: dict[str, Callable[[Twinlike], list[bytes]]] = {
    "not msgpack": lambda tw: [b"state", b"\xc1\xff\x00", b"junk"],
    "one frame": lambda tw: [b"state"],
    "unknown topic": lambda tw: [b"stat", pack({"v": 1, "seq": 0, "t_utc": 0.0})],
    "header a list": lambda tw: [b"hb", pack([1, 2, 3])],
    "seq a string": lambda tw: tw.hb(seq="seven"),
    "t_utc NaN": lambda tw: tw.event(t_utc=math.nan),
    "buffer cut short": lambda tw: [*(frames := tw.state(3))[:-1], frames[-1][:-3]],
    "dtype not meta's": lambda tw: _retyped(tw.state(3), "temp_compute_k", "<i4"),
    "n_sats a string": lambda tw: tw.state(3, n_sats="forty"),
    "n_sats not meta's": lambda tw: tw.state(3, n_sats=N + 1),
    "warp a string": lambda tw: tw.state(3, warp="fast"),
    "matrix of strings": lambda tw: tw.state(3, gcrs_to_itrs=["a"] * 9),
    "fleet a list": lambda tw: tw.state(3, fleet=[1, 2]),
    "event sat a string": lambda tw: tw.event(sat="x"),
    "event without kind": lambda tw: tw.event(kind=DROP),
    "hb warp a string": lambda tw: tw.hb(warp="x"),
    "meta sats garbage": lambda tw: tw.meta(sats="lots"),
    "meta station garbage": lambda tw: tw.meta(stations=[{"name": 5, "lat_deg": "north"}]),
    "wild seq": lambda tw: tw.hb(seq=2**63),
}


def _with_odd_values(frames: list[bytes], tw: Twinlike) -> list[bytes]:
    """A good state whose first node has NaN and inf values: drawn, not dropped."""
    spec_names = [s.name for s in tw.encoder.specs]
    out = list(frames)
    for name, value in (("temp_compute_k", np.nan), ("soc_frac", np.inf)):
        k = spec_names.index(name)
        array = np.frombuffer(out[2 + k], tw.encoder.specs[k].dtype).copy()
        array[0] = value
        out[2 + k] = array.tobytes()
    return out


class RoguePub:
    """A twin-like PUB socket on a random loopback port."""

    def __init__(self) -> None:
        self.socket = zmq.Context.instance().socket(zmq.PUB)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.bind("tcp://127.0.0.1:*")
        self.address = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)

    def send(self, frames: list[bytes]) -> None:
        self.socket.send_multipart(frames)

    def close(self) -> None:
        self.socket.close(linger=0)


# -- regression: the dashboard -------------------------------------------------------
def test_dashboard_counts_bad_messages_and_draws_the_good_ones_after() -> None:
    from test_tui import SIZE, until

    from viz.tui.app import DashboardApp

    pub, tw = RoguePub(), tui_twin()

    async def scenario() -> None:
        app = DashboardApp(pub.address, "tcp://127.0.0.1:1", stale_after_s=5.0,
                           command_timeout_s=0.3)
        async with app.run_test(size=SIZE) as pilot:
            def joined() -> bool:  # the subscriber connects some time after the app starts
                pub.send(tw.meta())
                pub.send(tw.hb())
                return app.model.n == N

            await until(pilot, joined)
            pub.send(tw.state(1))
            await until(pilot, lambda: app.model.header.get("step") == 1)
            for make in BAD.values():
                pub.send(make(tw))
            pub.send(_with_odd_values(tw.state(7), tw))
            pub.send(tw.event(sat=12, message="node 12: soc_frac 0.15 1 below alarm_low 0.2"))
            await until(pilot, lambda: app.model.header.get("step") == 7
                        and app.bad_messages == len(BAD))
            await tuiutil.drawn(pilot, app)  # the table's rows come with the next draw
            assert app.is_running
            assert app.model.n == N and len(app.fleet_table.order) == N
            assert ("limit", 12) in app.model.alarms
            header = app.query_one("#header").text.plain
            assert f" BAD {len(BAD)} " in header, header
            # The log writes a line at most every BAD_LINE_INTERVAL_S (5 s): a burst that
            # reaches the screen in two updates is told in two lines, the second later.
            def log() -> str:
                return "\n".join(strip.text for strip in app.events_log.lines)

            await until(pilot, lambda: f"({len(BAD)} in all)" in log(), 15.0)
            assert "bad messages dropped" in log(), log()
            assert "last: " in log()
            assert f"{len(BAD)} bad stream messages dropped" in str(app.events_log.border_title)
            # The NaN shows as no data in the table; the rest of the row is drawn.
            column = app.model.column("temp_compute_k")
            assert app.model.cell(column, 0)[0] == "—"
            assert app.model.cell(column, 1)[0] not in ("", "—")

    try:
        asyncio.run(scenario())
    finally:
        pub.close()


# -- regression: the 3D viewer -------------------------------------------------------
def make_viewer(stream: Any) -> Any:
    from viz.viewer import ViewerApp, ViewOptions, prefer_egl

    prefer_egl()
    pv = pytest.importorskip("pyvista")
    plotter = pv.Plotter(off_screen=True, window_size=[320, 180])
    return ViewerApp(plotter, stream, None, ViewOptions(show_fps=False))


def _tick_until(app: Any, condition: Callable[[], bool], timeout_s: float = 10.0,
                each: Callable[[], None] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        if each is not None:
            each()
        app.tick(timeout_ms=50.0)


def test_viewer_counts_bad_messages_and_draws_the_good_ones_after() -> None:
    pub, tw = RoguePub(), viewer_twin()
    stream = StreamClient(pub.address, stale_after_s=5.0)
    app = make_viewer(stream)
    try:
        _tick_until(app, lambda: app.meta is not None and app.stream.last_seq.get("hb", -1) >= 0,
                    each=lambda: (pub.send(tw.meta()), pub.send(tw.hb())))
        pub.send(tw.state(1))
        _tick_until(app, lambda: app.scene.header.get("step") == 1)
        for make in BAD.values():
            pub.send(make(tw))
        pub.send(_with_odd_values(tw.state(7), tw))
        pub.send(tw.event(sat=12, message="node 12: soc_frac 0.15 1 below alarm_low 0.2"))
        _tick_until(app, lambda: app.scene.header.get("step") == 7
                    and app.bad_messages == len(BAD))
        app.refresh_hud(force=True)
        hud = app.scene.hud_top.GetInput()
        assert f"BAD MESSAGES {len(BAD)}" in hud and "last: " in hud, hud
        assert any("below alarm_low" in line for line in app.events)
        assert np.isfinite(app.scene.sats.points).all()
        app.render()  # the frame after the bad messages renders
    finally:
        app.pl.close()
        stream.close()
        pub.close()


# -- fuzz: mutated frames through the decode path and into the model and the scene ---------
class GateStream(StreamGate):
    """A `StreamGate` with what the viewer's HUD asks of a stream (no socket)."""

    address = "fuzz"
    connection = "LIVE"


ANY_MSGPACK = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**63, max_value=2**64 - 1)
    | st.floats() | st.text(max_size=12) | st.binary(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=8,
)
HEADER_KEYS = ("v", "seq", "t_utc", "run_id", "n_sats", "warp", "paused", "step", "fleet",
               "gcrs_to_itrs", "sun_gcrs_km", "gast_rad", "fields", "kind", "severity", "sat",
               "message", "sats", "stations", "scenario", "subsystems")
NESTED = (("sats", "n"), ("sats", "names"), ("sats", "groups"), ("stations", 0, "lat_deg"),
          ("stations", 0, "name"), ("fields", 0, "shape"), ("fields", 0, "name"),
          ("fields", 3, "limits"), ("fields", 1, "dtype"), ("subsystems", "mirror"),
          ("scenario", "name"), ("fleet", "n_in_eclipse"), ("fleet", "made_up_w"))
MUTATIONS = ("truncate", "flip", "drop", "duplicate", "header_value", "header_delete",
             "nested_value", "field_entry", "seq", "odd_values", "odd_values")
# Values a good message may carry (data, not errors): drawn, never dropped.
ODD_VALUES = (math.nan, math.inf, -math.inf, 1e308, -1e308, 0.0, -1.0, 2**31 - 1)


def _mutate(data: st.DataObject, frames: list[bytes]) -> list[bytes]:
    """One random mutation of ``frames`` (it may leave a message that is still good)."""
    frames = list(frames)
    kind = data.draw(st.sampled_from(MUTATIONS))
    if kind in ("truncate", "flip", "drop", "duplicate"):
        if not frames:
            return frames
        i = data.draw(st.integers(0, len(frames) - 1))
        if kind == "drop":
            del frames[i]
        elif kind == "duplicate":
            frames.insert(i, frames[i])
        elif frames[i]:
            at = data.draw(st.integers(0, len(frames[i]) - 1))
            if kind == "truncate":
                frames[i] = frames[i][:at]
            else:
                flip = data.draw(st.integers(1, 255))
                frames[i] = frames[i][:at] + bytes([frames[i][at] ^ flip]) + frames[i][at + 1:]
        return frames
    if kind == "odd_values":
        if len(frames) < 3:
            return frames
        i = data.draw(st.integers(2, len(frames) - 1))
        try:
            entry = msgpack.unpackb(frames[1])["fields"][i - 2]
            array = np.frombuffer(frames[i], entry["dtype"]).copy()
        except Exception:
            return frames
        if array.size:
            with np.errstate(invalid="ignore", over="ignore"):
                array.flat[data.draw(st.integers(0, array.size - 1))] = \
                    np.array(data.draw(st.sampled_from(ODD_VALUES))).astype(array.dtype)
        frames[i] = array.tobytes()
        return frames
    if len(frames) < 2:
        return frames
    try:
        header = msgpack.unpackb(frames[1], strict_map_key=False)
    except Exception:
        return frames
    if not isinstance(header, dict):
        return frames
    if kind == "header_value":
        header[data.draw(st.sampled_from(HEADER_KEYS))] = data.draw(ANY_MSGPACK)
    elif kind == "header_delete" and header:
        header.pop(data.draw(st.sampled_from(sorted(map(str, header)))), None)
    elif kind == "seq":
        header["seq"] = data.draw(st.sampled_from(
            [0, 2**63, 2**64 - 1, MAX_SEQ_JUMP + 10, -1, 10**6, True]))
    elif kind == "field_entry" and isinstance(header.get("fields"), list) and header["fields"]:
        entry = data.draw(st.sampled_from(header["fields"]))
        if isinstance(entry, dict):
            entry[data.draw(st.sampled_from(["name", "dtype", "shape", "unit"]))] = \
                data.draw(ANY_MSGPACK)
    elif kind == "nested_value":
        *path, last = data.draw(st.sampled_from(NESTED))
        node: Any = header
        for key in path:
            try:
                node = node[key]
            except (KeyError, IndexError, TypeError):
                return frames
        if isinstance(node, dict) or (isinstance(node, list) and isinstance(last, int)
                                      and last < len(node)):
            node[last] = data.draw(ANY_MSGPACK)
    return [frames[0], pack(header), *frames[2:]]


def _base(data: st.DataObject, tw: Twinlike) -> list[bytes]:
    kind = data.draw(st.sampled_from(["state", "state", "state", "meta", "event", "hb"]))
    return {"state": lambda: tw.state(2), "meta": tw.meta, "event": tw.event,
            "hb": tw.hb}[kind]()


def _seeded_gate(tw: Twinlike, gate: StreamGate) -> StreamGate:
    """A gate that has heard meta, a state, an event and a heartbeat of ``tw``."""
    for frames in (tw.meta(), tw.state(1), tw.event(), tw.hb()):
        assert gate.accept(frames, Batch()) is not None
    return gate


def assert_model_consistent(model: FleetModel) -> None:
    n = model.n
    assert model.worst.shape == (n,)
    assert model.trend.shape[1:] == (len(model.trend_fields), n)
    assert model.trend.nbytes <= TREND_MAX_BYTES
    order = model.view_order()
    assert order.size == 0 or 0 <= order.min() <= order.max() < n
    rows = order[:12]
    for column in model.columns:
        texts, levels = model.cells(column, rows)
        assert len(texts) == len(levels) == len(rows)
        assert all(isinstance(t, str) for t in texts)
    headline, rest = model.fleet_items()
    assert all(isinstance(v, str) for _, v in headline + rest)
    assert isinstance(model.sim_time(), str)
    for name in model.trend_fields:
        model.trend_of(name, 0)


# A longer, random search: ODC_FUZZ_EXAMPLES=5000 (the default run is fixed and fast).
EXAMPLES = int(os.environ.get("ODC_FUZZ_EXAMPLES", "0"))
FUZZ = settings(max_examples=EXAMPLES or 100, deadline=None, derandomize=not EXAMPLES,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ
@given(st.data())
def test_fuzz_dashboard_model(data: st.DataObject) -> None:
    tw = tui_twin()
    gate = _seeded_gate(tw, StreamGate())
    model = FleetModel()
    model.apply_meta(gate.meta)
    model.apply_state(tuiutil.state(1))
    model.set_sort("temp_compute_k", descending=True)
    frames = _base(data, tw)
    for _ in range(data.draw(st.integers(1, 2))):
        frames = _mutate(data, frames)
    before, batch = gate.bad.count, Batch()
    message = gate.accept(frames, batch)
    event("dropped" if message is None else f"taken: {message.topic}")
    if message is None:
        assert gate.bad.count == before + 1 and batch.empty and gate.bad.last
    else:
        assert gate.bad.count == before
        # What the gate lets through, the model takes without an exception.
        if message.topic == "meta":
            model.apply_meta(message)
        elif message.topic == "state":
            model.apply_state(message)
        elif message.topic == "event":
            model.apply_event(message)
    assert_model_consistent(model)
    # The good messages after it are taken as usual.
    follow = gate.accept(tw.state(5), Batch())
    if follow is not None:
        model.apply_state(follow)
        assert model.header["step"] == 5
    else:  # only a meta that changed the fleet can make a good state not fit
        assert message is not None and message.topic == "meta"
    assert_model_consistent(model)


@pytest.fixture(scope="module")
def fuzz_viewer():
    tw = viewer_twin()
    app = make_viewer(GateStream())
    app.apply_meta(tw.meta_body)
    yield app
    app.pl.close()


@FUZZ
@given(st.data())
def test_fuzz_viewer_scene(fuzz_viewer, data: st.DataObject) -> None:
    from viz.checks import BadMessages

    app, tw = fuzz_viewer, viewer_twin()
    app.stream = gate = _seeded_gate(tw, GateStream())
    app.unusable = BadMessages()
    app.apply_meta(tw.meta_body)  # as the fixture built it (a no-op unless an example changed it)
    assert app.take(Batch(state=viewer_state(1)))
    frames = _base(data, tw)
    for _ in range(data.draw(st.integers(1, 2))):
        frames = _mutate(data, frames)
    before, batch = gate.bad.count, Batch()
    message = gate.accept(frames, batch)
    assert gate.bad.count == before + (message is None)
    app.take(batch)
    assert app.unusable.count == 0, app.unusable.last  # the scene takes what the gate passes
    follow = Batch()
    if gate.accept(tw.state(5), follow) is not None:
        assert app.take(follow)
        assert app.scene.header["step"] == 5
    assert np.isfinite(app.scene.sats.points).all()
    assert np.isfinite(app.scene.trails.points).all()
    app.refresh_hud(force=True)
    if gate.bad.count:
        assert f"BAD MESSAGES {gate.bad.count}" in app.scene.hud_top.GetInput()

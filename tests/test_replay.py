"""`odc replay` end to end: a real twin's stream recorded live, replayed, compared byte for byte.

The recording is a real `default` twin (its own seed, fast clock, rate 10 Hz at warp 1: a
state every 0.1 s of simulated time, 20 s in all) received by a live subscriber and written
as twin.recording.format says (tests/recordutil.py). The replay runs in a thread on random
loopback ports; subscribers and command clients are real sockets, every receive bounded.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zmq
from recordutil import (
    STEPS_AT_ONCE,
    Received,
    record_live,
    replay_process,
    write_recording,
)
from twinutil import ANY_PORT, connected, request

from twin.protocol.codec import encode_map, unpack
from twin.protocol.replay import TOPIC_REPLAY, decode_replay, encode_replay
from twin.recording import replay as replay_module
from twin.recording.format import RecordingError
from twin.recording.playback import Recording
from twin.recording.replay import ReplayAddresses, ReplayServer
from viz import hud_text
from viz import stream as stream_module
from viz.stream import Batch, StreamClient, StreamGate
from viz.tui.replay import SeekError, parse_seek, time_bar

ROOT = Path(__file__).resolve().parent.parent
STATES = 200
DT_S = 0.1


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Received], Path]:
    """The live messages of a real run, and their recording."""
    messages, run_id = record_live(STATES, rate_hz=10.0, warp=1.0)
    path = tmp_path_factory.mktemp("rec") / "default.mcap"
    write_recording(path, messages, run_id=run_id)
    return messages, path


@contextmanager
def running_replay(path: Path, **options: Any) -> Iterator[ReplayServer]:
    """A replay of ``path`` serving in a thread on random loopback ports."""
    recording = Recording(path)
    server = ReplayServer(recording, ReplayAddresses(ANY_PORT, ANY_PORT), **options)
    thread = threading.Thread(target=server.run, name="replay", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop()
        thread.join(10)
        assert not thread.is_alive(), "replay thread did not stop"
        server.close()
        recording.close()


def next_message(sub: zmq.Socket, topic: bytes, timeout_s: float = 5.0) -> list[bytes]:
    """The next message of ``topic`` (others dropped) before the deadline."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if sub.poll(max(1, int(1000 * (deadline - time.monotonic())))):
            frames = sub.recv_multipart()
            if frames[0] == topic:
                return frames
    raise TimeoutError(f"no {topic.decode()} within {timeout_s} s")


def replay_header(sub: zmq.Socket, **wanted: Any) -> dict[str, Any]:
    """The next ``replay`` header whose keys have the ``wanted`` values."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        header = decode_replay(next_message(sub, TOPIC_REPLAY)).header
        if all(header.get(k) == v for k, v in wanted.items()):
            return header
    raise TimeoutError(f"no replay message with {wanted}")


def t_of(frames: list[bytes]) -> float:
    return unpack(frames[1])["t_utc"]


# -- byte for byte --------------------------------------------------------------------------


def test_the_replayed_states_are_the_live_ones_byte_for_byte(live) -> None:
    messages, path = live
    live_states = [m.frames for m in messages if m.topic == b"state"]
    assert len(live_states) == STATES
    with running_replay(path, paused=True, warp=50.0) as server, \
            connected(zmq.SUB, server.bound.pub, RCVHWM=0, SUBSCRIBE=b"") as sub, \
            connected(zmq.REQ, server.bound.command) as req:
        replay_header(sub)  # subscribed: nothing from here on is missed
        start = server.recording.span_utc[0]
        assert request(req, {"cmd": "seek", "t_utc": start})["ok"]  # the first state
        replay_header(sub, seeks=1)  # what the seek publishes comes after this
        # A few states at a time, each lot heard before the next is asked for (as
        # record_live does): played at full warp, a subscriber held off the CPU of a
        # loaded machine meets the stream's bounded queue full and loses states to it,
        # which is the twin's rule (it never waits), not a replay defect.
        received: list[list[bytes]] = []
        last_state: list[bytes] = []
        n = 0
        while n < STATES:
            lot = min(STEPS_AT_ONCE, STATES - n)
            assert request(req, {"cmd": "step", "n": lot})["ok"]
            while lot:
                frames = sub.recv_multipart()  # RCVTIMEO bounds each wait
                if frames[0] == b"state" and received and frames == last_state:
                    continue  # paused, it republishes the state shown with its meta
                received.append(frames)
                if frames[0] == b"state":
                    n, lot, last_state = n + 1, lot - 1, frames
    states = [f for f in received if f[0] == b"state"]
    assert len(states) == STATES
    assert states == live_states, "a replayed state differs from the live one"
    # The other recorded messages travel as they were too: each event is a live one.
    live_events = [m.frames for m in messages if m.topic == b"event"]
    assert all(f in live_events for f in received if f[0] == b"event")


def test_a_replay_of_a_replay_is_the_same(live, tmp_path: Path) -> None:
    """Recording the replay's stream gives back the recording: nothing is re-framed."""
    _, path = live
    with running_replay(path, paused=True, warp=100.0) as server, \
            connected(zmq.SUB, server.bound.pub, RCVHWM=0, SUBSCRIBE=b"") as sub, \
            connected(zmq.REQ, server.bound.command) as req:
        replay_header(sub)
        assert request(req, {"cmd": "seek", "t_utc": server.recording.span_utc[0]})["ok"]
        replay_header(sub, seeks=1)
        assert request(req, {"cmd": "resume"})["ok"]
        again: list[Received] = []
        while len(again) < STATES:
            frames = next_message(sub, b"state")
            again.append(Received(frames, time.time_ns()))
    copy = write_recording(tmp_path / "again.mcap", again)
    with Recording(path) as first, Recording(copy) as second:
        a = [r.data for r in first.messages(first.start_ns) if r.topic == b"state"]
        b = [r.data for r in second.messages(second.start_ns) if r.topic == b"state"]
    assert a == b


# -- the clock: pause, resume, step, warp ----------------------------------------------------


def test_pause_resume_and_step(live) -> None:
    messages, path = live
    first = unpack(next(m for m in messages if m.topic == b"state").frames[1])["seq"]
    with running_replay(path, paused=True, warp=5.0, meta_interval_s=0.2) as server, \
            connected(zmq.SUB, server.bound.pub, RCVHWM=0, SUBSCRIBE=b"") as sub, \
            connected(zmq.REQ, server.bound.command) as req:
        replay_header(sub, paused=True)
        # Paused on the first state: nothing new for a while. Replay messages go on, and
        # the state shown comes again with each meta (for viewers that join), as it was.
        time.sleep(0.6)  # a fixed window on purpose: no new state may come in it
        # The repeats come with each meta (0.2 s); a loaded machine may send the first later.
        shown = [f for f in drain(sub) if f[0] == b"state"] or [next_message(sub, b"state")]
        assert shown and all(seq_of(f) == first for f in shown)
        # Step: exactly three new states, one after the other.
        reply = request(req, {"cmd": "step", "n": 3})
        assert reply["ok"] and reply["queued_steps"] == 3
        steps = states_after(sub, first, 3)
        assert [seq_of(f) for f in steps] == [first + 1, first + 2, first + 3]
        time.sleep(0.4)  # a fixed window on purpose: no fourth state may come in it
        assert all(seq_of(f) <= first + 3 for f in drain(sub) if f[0] == b"state"), \
            "more than 3 states stepped"
        status = request(req, {"cmd": "status"})
        assert status["paused"] and status["position_utc"] == t_of(steps[-1])
        # Resume: states flow on from the last one stepped.
        assert request(req, {"cmd": "resume"})["paused"] is False
        assert seq_of(states_after(sub, first + 3, 1)[0]) == first + 4
        reply = request(req, {"cmd": "step"})
        assert not reply["ok"] and "pause it before stepping" in reply["error"]
        assert request(req, {"cmd": "pause"})["paused"] is True
        replay_header(sub, paused=True)
        time.sleep(0.5)  # the state shown comes again (meta_interval_s): the last one
        shown = [f for f in drain(sub) if f[0] == b"state"] or [next_message(sub, b"state")]
        last = max(seq_of(f) for f in shown)
        time.sleep(0.5)  # a fixed window on purpose: no new state may come in it
        assert all(seq_of(f) <= last for f in drain(sub) if f[0] == b"state"), \
            "new states while paused"


def seq_of(frames: list[bytes]) -> int:
    return unpack(frames[1])["seq"]


def states_after(sub: zmq.Socket, seq: int, n: int) -> list[list[bytes]]:
    """The next ``n`` new states past ``seq`` (repeats of the one shown skipped)."""
    out: list[list[bytes]] = []
    while len(out) < n:
        frames = next_message(sub, b"state")
        if seq_of(frames) > seq:
            out.append(frames)
            seq = seq_of(frames)
    return out


def drain(sub: zmq.Socket) -> list[list[bytes]]:
    """What has arrived so far, without waiting."""
    out = []
    while sub.poll(0):
        out.append(sub.recv_multipart())
    return out


def test_warp_10_plays_ten_times_faster_than_recorded(live) -> None:
    """Recorded at warp 1 (simulated time as fast as wall time), played at warp 10."""
    messages, path = live
    assert unpack(next(m for m in messages if m.topic == b"state").frames[1])["warp"] == 1.0
    with running_replay(path, paused=True, warp=10.0) as server, \
            connected(zmq.SUB, server.bound.pub, RCVHWM=0, SUBSCRIBE=b"") as sub, \
            connected(zmq.REQ, server.bound.command) as req:
        replay_header(sub)
        assert request(req, {"cmd": "seek", "t_utc": server.recording.span_utc[0]})["ok"]
        assert request(req, {"cmd": "resume"})["ok"]
        arrivals = []
        while len(arrivals) < STATES - 1:
            frames = next_message(sub, b"state")
            arrivals.append((time.monotonic(), t_of(frames)))
    wall = arrivals[-1][0] - arrivals[0][0]
    simulated = arrivals[-1][1] - arrivals[0][1]
    speed = simulated / wall
    # 19.8 s of recording (its real time: recorded at warp 1) in ~1.98 s of wall time.
    assert 9.5 <= speed <= 10.5, f"played {speed:.2f}x the recorded pace, not 10x"


def test_warp_is_any_positive_factor_and_forwards_only(live) -> None:
    _, path = live
    with running_replay(path, paused=True) as server, \
            connected(zmq.REQ, server.bound.command) as req:
        assert server.warp == 1.0  # the recorded twin's warp by default
        for value in (0.25, 10, 1000.0):
            reply = request(req, {"cmd": "warp", "value": value})
            assert reply["ok"] and reply["warp"] == value
        for value in (0, -10, "fast"):
            reply = request(req, {"cmd": "warp", "value": value})
            assert not reply["ok"] and "'value'" in reply["error"]


# -- seek -----------------------------------------------------------------------------------


@pytest.mark.parametrize("paused", [True, False])
def test_seek_lands_on_the_nearest_state_and_publishes_it_at_once(live, paused: bool) -> None:
    messages, path = live
    first_state = next(m for m in messages if m.topic == b"state")
    with running_replay(path, paused=True, warp=1.0) as server, \
            connected(zmq.SUB, server.bound.pub, RCVHWM=0, SUBSCRIBE=b"") as sub, \
            connected(zmq.REQ, server.bound.command) as req:
        replay_header(sub)
        if not paused:
            assert request(req, {"cmd": "resume"})["ok"]
        start = server.recording.span_utc[0]
        for offset, lands in ((7.33, 7.3), (7.36, 7.4), (0.0, DT_S), (19.99, 20.0), (3.0, 3.0)):
            drain(sub)
            sent = time.monotonic()
            reply = request(req, {"cmd": "seek", "t_utc": start + offset})
            assert reply["ok"], reply
            assert reply["position_utc"] == pytest.approx(start + lands, rel=0, abs=1e-6)
            # In order: replay (seeks moved on), the meta for it, then the state itself.
            topics = []
            while True:
                frames = sub.recv_multipart()
                topics.append(frames[0])
                if frames[0] == b"state" and \
                        t_of(frames) == pytest.approx(start + lands, rel=0, abs=1e-6):
                    break
            elapsed = time.monotonic() - sent
            assert elapsed < 0.5, f"seek to +{offset} s published after {elapsed:.3f} s"
            # replay, the meta before it, the alarm table before it (the twin records one),
            # the state
            assert topics[-4:] == [TOPIC_REPLAY, b"meta", b"alarms", b"state"], (
                offset, topics)
        assert request(req, {"cmd": "status"})["seeks"] == 5
    # The seek to the very start lands on the first recorded state, byte for byte.
    assert unpack(first_state.frames[1])["t_utc"] == pytest.approx(start + DT_S, rel=0,
                                                                    abs=1e-6)


def test_a_seek_outside_the_span_is_refused_naming_the_span(live) -> None:
    _, path = live
    with running_replay(path, paused=True) as server, \
            connected(zmq.REQ, server.bound.command) as req:
        start, end = server.recording.span_utc
        for t_utc in (start - 60, end + 0.5, 0):
            reply = request(req, {"cmd": "seek", "t_utc": t_utc})
            assert not reply["ok"]
            assert "outside the recording's span 2026-03-20T12:00:00.000Z .. " \
                "2026-03-20T12:00:20.000Z" in reply["error"], reply["error"]
        reply = request(req, {"cmd": "seek"})
        assert not reply["ok"] and "needs 't_utc'" in reply["error"]
        reply = request(req, {"cmd": "inject_fault", "sat": 1})
        assert not reply["ok"] and "unknown command" in reply["error"]
        assert request(req, {"cmd": "seek", "t_utc": end})["position_utc"] == end


def test_meta_command_and_status(live) -> None:
    _, path = live
    with running_replay(path, paused=True) as server, \
            connected(zmq.SUB, server.bound.pub, RCVHWM=0, SUBSCRIBE=b"meta") as sub, \
            connected(zmq.REQ, server.bound.command) as req:
        time.sleep(1.1)  # past the at-most-once-a-second republication
        reply = request(req, {"cmd": "meta"})
        assert reply["ok"] and reply["meta"]["sats"]["n"] == 40
        assert "seek" in reply["meta"]["commands"] and "v" not in reply["meta"]
        assert "inject_fault" not in reply["meta"]["commands"]
        published = next_message(sub, b"meta")
        assert unpack(published[1])["scenario"]["name"] == "default"
        status = request(req, {"cmd": "status"})
        assert status["replay"] and status["name"] == "default" and status["paused"]
        assert status["recorded"]["state"] == STATES
        assert sorted(request(req, {"cmd": "commands"})["commands"]) == [
            "commands", "meta", "pause", "resume", "seek", "status", "step", "warp"]


def test_the_end_and_loop(live) -> None:
    _, path = live
    with running_replay(path, warp=1000.0) as server, \
            connected(zmq.SUB, server.bound.pub, RCVHWM=0, SUBSCRIBE=b"replay") as sub, \
            connected(zmq.REQ, server.bound.command) as req:
        header = replay_header(sub, ended=True)
        assert header["paused"] and header["position_utc"] == server.recording.span_utc[1]
        reply = request(req, {"cmd": "resume"})
        assert not reply["ok"] and "end of the recording" in reply["error"]
    with running_replay(path, warp=1000.0, loop=True) as server, \
            connected(zmq.SUB, server.bound.pub, RCVHWM=0, SUBSCRIBE=b"replay") as sub:
        header = replay_header(sub, seeks=2)  # twice round, never ended
        assert not header["ended"] and not header["paused"]


# -- viewers follow a replay ------------------------------------------------------------------


def test_the_viewers_stream_client_takes_a_replay_without_bad_messages(
        live, monkeypatch: pytest.MonkeyPatch) -> None:
    _, path = live
    # A lossless stream for this test. At warp 20 the replay publishes 200 states a second;
    # a subscriber (or the replay's own ZeroMQ thread) held off the CPU for a quarter of a
    # second meets a full queue, and the stream drops, as docs/protocol.md says it does for
    # a slow subscriber: a real gap, rightly counted in ``missed`` (7 to 12 of them, about
    # 4 runs in 10 on a loaded machine). Unbounded queues at both ends (the replay's, set
    # before it binds, and the client's) deliver every message published, so any gap or
    # restart counted here is one the replay or the client made up.
    monkeypatch.setattr(replay_module, "PUB_HIGH_WATER_MARK", 0)
    with running_replay(path, paused=True, warp=20.0, meta_interval_s=0.3) as server, \
            connected(zmq.REQ, server.bound.command) as req:
        assert server.pub.getsockopt(zmq.SNDHWM) == 0
        client = StreamClient(server.bound.pub, state_queue=0)
        try:
            def follow(seconds: float) -> list:
                batches, deadline = [], time.monotonic() + seconds
                while time.monotonic() < deadline:
                    batches.append(client.poll(timeout_ms=50))
                return batches

            assert any(b.replay is not None for b in follow(1.5))
            assert client.replay.header["name"] == "default"
            start = server.recording.span_utc[0]
            request(req, {"cmd": "seek", "t_utc": start + 10})
            request(req, {"cmd": "resume"})
            follow(1.0)
            request(req, {"cmd": "seek", "t_utc": start + 2})  # backwards
            batches = follow(1.0)
            assert any(b.seeked for b in batches)
            assert any(b.state is not None for b in batches)
            # The meta republished as recorded (same seq), seeks back and forth: none of
            # it is a bad message, a gap or a restart.
            assert client.bad.count == 0, client.bad.last
            assert client.restarts == 0 and client.missed == 0
            assert client.connection == "LIVE"
        finally:
            client.close()


def test_hud_and_time_bar_text() -> None:
    replay = {"name": "night-run", "span_utc": [1774008000.0, 1774008600.0],
              "position_utc": 1774008300.0, "warp": 60.0, "paused": False}
    header = {"t_utc": 1774008300.0, "warp": 60.0, "step": 3}
    lines = hud_text.status_lines(header, {"scenario": {"name": "default"}}, "LIVE",
                                  earth_fixed=False, replay=replay)
    assert lines[0] == "ODC Twin — REPLAY night-run (default)"
    assert lines[1] == "recorded 2026-03-20 12:05:00 UTC"
    assert lines[2].endswith("REPLAY") and "LIVE" not in "\n".join(lines)
    assert lines[3] == "12:00:00 [==========|----------] 12:10:00  50%"
    bar = time_bar(replay, 100).plain
    assert len(bar) == 100 and bar.startswith(" 2026-03-20 12:00:00 ")
    assert "●" in bar and "50.0 %" in bar and "▶ 60×" in bar


def test_seek_times_the_command_line_reads() -> None:
    position, span = 1774009800.0, (1774008000.0, 1774015200.0)  # 12:30 in 12:00..14:00
    assert parse_seek("2026-03-20T12:45:00", position, span) == 1774010700.0
    assert parse_seek("2026-03-20T13:45:00+01:00", position, span) == 1774010700.0
    assert parse_seek("12:45", position, span) == 1774010700.0
    assert parse_seek("12:45:30.5", position, span) == 1774010730.5
    assert parse_seek("+10m", position, span) == position + 600
    assert parse_seek("-30s", position, span) == position - 30
    assert parse_seek("+1.5h", position, span) == position + 5400
    assert parse_seek("+20", position, span) == position + 20
    assert parse_seek("50%", position, span) == 1774011600.0
    assert parse_seek("1774008000", position, span) == 1774008000.0
    for bad in ("soon", "25:00", "150%", "+10y", "nan"):
        with pytest.raises(SeekError, match=r"write it as|not a time|within 0%"):
            parse_seek(bad, position, span)


# -- bad files ------------------------------------------------------------------------------


def _cut(path: Path, out: Path) -> Path:
    data = path.read_bytes()
    out.write_bytes(data[: len(data) // 2])
    return out


@pytest.mark.parametrize(("case", "expected"), [
    ("not_mcap", "not an MCAP file"),
    ("truncated", "cut short"),
    ("no_summary", "run `odc record --recover"),
    ("foreign_profile", "profile 'ros2', not an odc recording"),
    ("no_odc_channels", "no odc channels"),
    ("missing", "cannot open the recording"),
])
def test_a_bad_file_is_refused_with_a_clear_error_and_exit_2(live, tmp_path: Path, case: str,
                                                             expected: str) -> None:
    messages, good = live
    path = tmp_path / f"{case}.mcap"
    if case == "not_mcap":
        path.write_text("time,temp\n0,300\n")
    elif case == "truncated":
        _cut(good, path)
    elif case == "no_summary":
        write_recording(path, messages[:50], finish=False)
    elif case == "foreign_profile":
        write_recording(path, messages[:50], profile="ros2")
    elif case == "no_odc_channels":
        write_recording(path, messages[:50], channel_prefix="/ros/")
    with pytest.raises(RecordingError, match=expected.replace("`", ".").replace("(", ".")):
        Recording(path)
    result = subprocess.run([sys.executable, "-m", "odc.cli", "replay", str(path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"odc replay: {path}")
    if case in ("truncated", "no_summary"):
        assert f"run `odc record --recover {path}`" in result.stderr


def test_odc_replay_reports_its_addresses_and_serves(live) -> None:
    _, path = live
    with replay_process(path, "--paused", "--warp", "30") as (proc, addresses), \
            connected(zmq.REQ, addresses["commands"]) as req:
        status = request(req, {"cmd": "status"})
        assert status["ok"] and status["paused"] and status["warp"] == 30.0
        assert status["file"] == str(path)
    assert proc.returncode == 0


def test_a_replay_binds_loopback_only(live) -> None:
    _, path = live
    with Recording(path) as recording, pytest.raises(OSError, match="loopback only"):
        ReplayServer(recording, ReplayAddresses("tcp://0.0.0.0:*", ANY_PORT))
    result = subprocess.run([sys.executable, "-m", "odc.cli", "replay", str(path), "--pub",
                             "tcp://0.0.0.0:5999"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and "loopback only" in result.stderr


def test_the_recording_is_read_through_its_index(live) -> None:
    messages, path = live
    # A chunk per 10 states (write_recording), and one more for what came after the last
    # state, if anything did (an ``hb`` or ``alarms`` falls there or not, by wall time).
    last_state = max(i for i, m in enumerate(messages) if m.topic == b"state")
    after_last_state = last_state < len(messages) - 1
    with Recording(path) as recording:
        assert recording.chunk_count == STATES // 10 + after_last_state
        assert recording.name == "default" and recording.run_id
        start = recording.start_ns
        assert recording.nearest_state(start + 7_340_000_000).log_time == start + 7_300_000_000
        # The first meta opens the recording; a run slower than the twin's meta interval
        # (a loaded machine) records a republished one later too.
        meta = recording.last_at_or_before(b"meta", start)
        assert meta is not None and meta.log_time == start
        latest = recording.last_at_or_before(b"meta", recording.end_ns)
        assert latest is not None and latest.log_time >= start
        alarms = recording.last_at_or_before(b"alarms", recording.end_ns)  # the twin's table
        assert alarms is not None and msgpack.unpackb(alarms.data, raw=True)[0] == b"alarms"
        assert msgpack.unpackb(meta.data, raw=True)[0] == b"meta"


def test_the_stream_gate_on_replay_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    """A seek resets sequence counting, a repeat is a repeat, and only while replaying."""
    def replay(seq: int, seeks: int) -> list[bytes]:
        return encode_replay({"v": 1, "seq": seq, "t_utc": 5.0, "run_id": 7, "name": "r",
                              "span_utc": [0.0, 10.0], "position_utc": 5.0, "warp": 1.0,
                              "paused": False, "ended": False, "seeks": seeks})

    def hb(seq: int) -> list[bytes]:
        return encode_map(b"hb", {"v": 1, "seq": seq, "t_utc": 5.0, "run_id": 7})

    gate = StreamGate()
    batch = Batch()
    for frames in (replay(0, 0), hb(10), hb(11), hb(11), replay(1, 1), hb(3), hb(4)):
        assert gate.accept(frames, batch) is not None
    assert batch.seeked and gate.replaying and batch.replay.header["seeks"] == 1
    assert gate.missed == 0 and gate.restarts == 0 and gate.bad.count == 0
    bad = encode_replay({"v": 1, "seq": 2, "t_utc": 5.0, "name": "r", "span_utc": [9, 1],
                         "position_utc": 5.0, "warp": 1.0, "paused": False})
    assert gate.accept(bad, Batch()) is None and "span_utc" in gate.bad.last
    # Replay messages stopped (a twin serves here now): a repeated seq is a restart again.
    monkeypatch.setattr(stream_module, "REPLAY_SILENCE_S", 0.05)
    time.sleep(0.1)
    assert not gate.replaying
    gate.accept(hb(4), Batch())
    assert gate.restarts == 1

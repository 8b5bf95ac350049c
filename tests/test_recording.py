"""Recording the stream (issue 15): what `odc run --record` and `odc record` write, read back
with the mcap library itself, against what a live subscriber received in the same run;
--every, rotation and budget; a recorder killed with SIGKILL and its file recovered; a disk
that fills or a path that cannot be written stops the recording, never the twin."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import pytest
import zmq
from mcap.reader import make_reader
from mcap.records import Message, Metadata
from mcap.stream_reader import StreamReader
from procutil import ROOT, stop_process
from recorderutil import SUBSCRIBE_SETTLE_S, Heard, hear, listen, recording_twin
from twinutil import running_twin

from odc import cli as odc_cli
from twin.recording.format import (
    CHANNELS,
    MESSAGE_ENCODING,
    METADATA_NAME,
    PROFILE,
    RecordingError,
    pack_frames,
    rotated_path,
    unpack_frames,
)
from twin.recording.reader import open_recording, recover, rotated_files
from twin.recording.writer import Recorder, pack_frames_fast
from twin.security.keys import new_key, server_key_paths

STATES = 60
"""States the shared run records (rate 50 Hz: a bit over a second)."""


def header_of(frames: list[bytes]) -> dict:
    return msgpack.unpackb(frames[1], raw=False, strict_map_key=False)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Heard, dict[bytes, int]]:
    """One default twin recording itself in-process while a live subscriber listens from
    its first message; returns the recording, what the subscriber heard, and the twin's
    next seq per topic when it stopped."""
    path = tmp_path_factory.mktemp("run") / "run.mcap"
    heard = Heard()
    with recording_twin(path, rate_hz=50.0, warp=60.0, meta_interval_s=0.5) as twin:
        sock = listen(twin.pub)
        try:
            time.sleep(SUBSCRIBE_SETTLE_S)
            twin.go.set()
            hear(sock, heard, lambda h: len(h.topic(b"state")) >= STATES)
            twin.server.stop()
            twin.thread.join(30)
            # The twin's last heartbeat, sent as it stopped.
            while sock.poll(500):
                heard.messages.append((sock.recv_multipart(), time.time()))
        finally:
            sock.close(linger=0)
        published = dict(twin.server.seq)
        assert twin.live is not None
        stats = twin.live.recorder.stats
        assert twin.live.recorder.error is None
        assert stats.dropped == {}, stats.line()
    return path, heard, published


def test_in_process_recording_holds_every_frame_the_live_stream_had(
        run: tuple[Path, Heard, dict[bytes, int]]) -> None:
    path, heard, published = run
    with open(path, "rb") as stream:
        reader = make_reader(stream)
        assert reader.get_header().profile == PROFILE
        summary = reader.get_summary()
        assert summary is not None and summary.chunk_indexes, "whole, indexed, chunked"
        assert {c.compression for c in summary.chunk_indexes} == {"zstd"}
        assert {c.topic for c in summary.channels.values()} == set(CHANNELS.values())
        assert {c.message_encoding for c in summary.channels.values()} == {MESSAGE_ENCODING}
        metadata = [m for m in reader.iter_metadata() if m.name == METADATA_NAME]
        recorded = [(channel.topic, message) for _, channel, message
                    in reader.iter_messages(log_time_order=False)]
    live = [frames for frames, _ in heard.messages]
    run_id = header_of(live[0])["run_id"]
    assert len(metadata) == 1
    assert metadata[0].metadata["scenario"] == "default"
    assert metadata[0].metadata["run_id"] == str(run_id)
    assert metadata[0].metadata["recorder"] == "odc run --record"
    assert metadata[0].metadata["every"] == "1"
    # Everything the twin published, in the order published, byte for byte, as the live
    # subscriber (connected before the twin started) received it.
    frames = [unpack_frames(message.data) for _, message in recorded]
    assert frames == live
    assert frames[0][0] == b"meta" and frames[-1][0] == b"hb"
    for (topic, message), message_frames in zip(recorded, frames, strict=True):
        header = header_of(message_frames)
        assert topic == CHANNELS[message_frames[0]]
        assert message.log_time == round(header["t_utc"] * 1e9)
        assert message.sequence == header["seq"]
        assert message.publish_time > 1.7e18  # wall ns
    states = [f for f in frames if f[0] == b"state"]
    assert [header_of(f)["seq"] for f in states] == list(range(published[b"state"]))
    assert len(states) >= STATES


def test_open_recording_reads_the_same_through_the_index_and_by_time(
        run: tuple[Path, Heard, dict[bytes, int]]) -> None:
    path, heard, _ = run
    recording = open_recording(path)
    assert recording.indexed and recording.truncated_at is None
    assert recording.info["scenario"] == "default"
    live_states = heard.topic(b"state")
    assert recording.counts["state"] == len(live_states)
    states = list(recording.messages(["state"]))
    assert [m.frames for m in states] == [frames for frames, _ in live_states]
    assert states[3].decode().header["step"] == header_of(live_states[3][0])["step"]
    # A time range through the index: [t10, t20) holds exactly states 10..19.
    t10, t20 = states[10].log_time_ns, states[20].log_time_ns
    picked = list(recording.messages(["/odc/state"], start_ns=t10, end_ns=t20))
    assert [m.sequence for m in picked] == list(range(10, 20))
    assert recording.start_ns <= t10 and recording.end_ns >= states[-1].log_time_ns


def test_every_nth_state_lz4_and_seq_gaps_counted(
        run: tuple[Path, Heard, dict[bytes, int]], tmp_path: Path) -> None:
    _, heard, _ = run
    path = tmp_path / "thin.mcap"
    recorder = Recorder(path, recorder="test", every=3, compression="lz4")
    states_fed = 0
    for frames, received in heard.messages:
        if frames[0] == b"state":
            states_fed += 1
            if header_of(frames)["seq"] in (7, 8):
                continue  # two states "lost on the way"
        recorder.write(frames, int(received * 1e9))
    recorder.close()
    assert recorder.error is None
    assert recorder.stats.dropped == {"state": 2}
    recording = open_recording(path)
    assert recording.compression == "lz4"
    assert recording.info["every"] == "3"
    seqs = [m.sequence for m in recording.messages(["state"])]
    # Every third by seq; after the gap the next state is kept once 3 have passed.
    expected, last = [], None
    for seq in range(states_fed):
        if seq in (7, 8):
            continue
        if last is None or seq - last >= 3:
            expected.append(seq)
            last = seq
    assert seqs == expected
    assert recording.counts["event"] == len(heard.topic(b"event"))
    assert recording.counts["hb"] == len(heard.topic(b"hb"))
    assert recording.counts["meta"] == len(heard.topic(b"meta"))


def test_a_cut_file_reads_up_to_its_last_whole_chunk_and_recovers(
        run: tuple[Path, Heard, dict[bytes, int]], tmp_path: Path) -> None:
    path, _, _ = run
    data = path.read_bytes()
    whole = [(m.topic, m.data) for m in open_recording(path).messages()]
    for k, fraction in enumerate((0.02, 0.2, 0.45, 0.7, 0.93, 0.999)):
        cut = tmp_path / f"cut{k}.mcap"
        cut.write_bytes(data[: int(len(data) * fraction)])
        recording = open_recording(cut)
        assert not recording.indexed and recording.truncated_at <= len(data) * fraction
        read = [(m.topic, m.data) for m in recording.messages()]
        assert read == whole[: len(read)], "a prefix of what was recorded, never garbage"
        recovered = recover(cut)
        assert recovered.output == tmp_path / f"cut{k}.recovered.mcap"
        again = open_recording(recovered.output)
        assert again.indexed and again.metadata == open_recording(path).metadata
        assert [(m.topic, m.data) for m in again.messages()] == read
    with pytest.raises(RecordingError, match="exists"):
        recover(tmp_path / "cut0.mcap")  # its .recovered.mcap is there already


def test_rotation_by_size_with_a_budget_keeps_whole_standalone_files(
        run: tuple[Path, Heard, dict[bytes, int]], tmp_path: Path) -> None:
    _, heard, _ = run
    base = tmp_path / "rot.mcap"
    # The recorder keeps the budget when it flushes (at least twice a wall second live).
    # Its clock here moves 20 ms a message (the run's 50 Hz) and it flushes every 0.1 s:
    # five messages between flushes, as a live 10 Hz twin has between its 0.5 s flushes.
    # Replayed with no time passing, nothing would flush between rotations and the last
    # file could grow to a whole rotation past the budget, depending only on where the
    # run's bytes happen to end.
    now = [0.0]
    recorder = Recorder(base, recorder="test", rotate_bytes=60_000, budget_bytes=150_000,
                        chunk_size=16_000, flush_interval_s=0.1, clock=lambda: now[0])
    for frames, received in heard.messages:
        now[0] += 0.02
        recorder.write(frames, int(received * 1e9))
    recorder.close()
    assert recorder.error is None
    deleted = recorder.stats.files_deleted
    assert deleted and deleted[0] == rotated_path(base, 1)
    assert not any(p.exists() for p in deleted)
    files = rotated_files(base)
    assert files == recorder.files and len(files) >= 2
    assert files[-1] == rotated_path(base, len(deleted) + len(files))
    # Under the budget, give or take the last file's summary (written as it closed) and
    # what arrives between two flushes (five states at most, counted uncompressed: the
    # budget is kept at flushes). Without the budget the files would hold the whole run.
    between_flushes = 5 * max(sum(len(f) for f in frames) for frames, _ in heard.messages
                              if frames[0] == b"state")
    total = sum(p.stat().st_size for p in files)
    assert total <= 150_000 + 20_000 + between_flushes, (total, between_flushes)
    last_seq = None
    for index, path in enumerate(files, start=len(deleted) + 1):
        recording = open_recording(path)
        assert recording.indexed
        assert recording.info["file_index"] == str(index)
        messages = list(recording.messages())
        assert messages[0].topic == "meta", "each file starts with the run's meta"
        seqs = [m.sequence for m in messages if m.topic == "state"]
        if not seqs and path == files[-1]:
            continue  # cut just after the last state: only the run's closing events remain
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        if last_seq is not None:
            assert seqs[0] == last_seq + 1, "no state lost between files"
        last_seq = seqs[-1]
    assert last_seq == header_of(heard.topic(b"state")[-1][0])["seq"]


def test_rotation_by_time(run: tuple[Path, Heard, dict[bytes, int]], tmp_path: Path) -> None:
    _, heard, _ = run
    now = [0.0]
    recorder = Recorder(tmp_path / "t.mcap", recorder="test", rotate_s=1.0,
                        clock=lambda: now[0])
    for frames, received in heard.messages[:40]:
        recorder.write(frames, int(received * 1e9))
        now[0] += 0.25
    recorder.close()
    assert recorder.error is None
    assert len(recorder.files) == 10  # 40 messages, 4 a wall second
    total = sum(open_recording(p).counts.get("state", 0) for p in recorder.files)
    assert total == len([f for f, _ in heard.messages[:40] if f[0] == b"state"])


def test_odc_record_killed_with_sigkill_loses_at_most_the_last_second(tmp_path: Path) -> None:
    path = tmp_path / "killed.mcap"
    heard = Heard()
    with running_twin("default", rate_hz=20.0, warp=60.0, meta_interval_s=0.5) as twin:
        sock = listen(twin.addresses.pub)
        proc = subprocess.Popen([sys.executable, "-m", "odc.cli", "record",
                                 twin.addresses.pub, str(path)], cwd=ROOT,
                                stderr=subprocess.PIPE, text=True)
        try:
            assert "recording" in proc.stderr.readline()
            # Until the recorder has had its first meta and a few seconds of states.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not (path.exists()
                                                       and path.stat().st_size > 50_000):
                if sock.poll(100):
                    heard.messages.append((sock.recv_multipart(), time.time()))
            started = time.time()
            hear(sock, heard, lambda h: time.time() > started + 2.5)
            killed_at = time.time()
            proc.kill()
            proc.wait(10)
            hear(sock, heard, lambda h: time.time() > killed_at + 0.5)
        finally:
            stop_process(proc)
            proc.stderr.close()
            sock.close(linger=0)
    recording = open_recording(path)
    assert not recording.indexed, "a killed recorder leaves no summary"
    recovered = open_recording(recover(path).output)
    assert recovered.indexed and recovered.info["recorder"] == "odc record"
    kept = {m.sequence: m.frames for m in recovered.messages(["state"])}
    first = min(kept)
    wanted = [(frames, t) for frames, t in heard.topic(b"state")
              if header_of(frames)["seq"] >= first and t < killed_at - 1.0]
    assert len(wanted) >= 30
    for frames, _ in wanted:
        assert kept.get(header_of(frames)["seq"]) == frames


def test_disk_full_stops_the_recording_with_one_alarm_and_the_twin_steps_on() -> None:
    with recording_twin("/dev/full", rate_hz=50.0, warp=60.0) as twin:
        sock = listen(twin.pub)
        try:
            time.sleep(SUBSCRIBE_SETTLE_S)
            twin.go.set()
            heard = Heard()

            def alarmed(h: Heard) -> bool:
                return any(header_of(f)["kind"] == "recording_stopped"
                           for f, _ in h.topic(b"event"))

            hear(sock, heard, alarmed)
            before = len(heard.topic(b"state"))
            hear(sock, heard, lambda h: len(h.topic(b"state")) >= before + 30)
        finally:
            sock.close(linger=0)
        alarms = [header_of(f) for f, _ in heard.topic(b"event")
                  if header_of(f)["kind"] == "recording_stopped"]
        assert len(alarms) == 1 and alarms[0]["severity"] == "alarm"
        assert "/dev/full" in alarms[0]["message"]
        assert "No space left on device" in alarms[0]["message"]
        assert twin.server.engine.events.counts["recording_stopped"] == 1


def test_odc_run_record_on_a_filling_disk_alarms_and_keeps_stepping(tmp_path: Path) -> None:
    """A file size limit (RLIMIT_FSIZE) stands in for a disk that fills mid-run."""
    path = tmp_path / "full.mcap"

    def small_disk() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

    proc = subprocess.Popen(
        [sys.executable, "-m", "twin", "--quiet", "--pub", "tcp://127.0.0.1:*", "--cmd",
         "tcp://127.0.0.1:*", "--ingest", "tcp://127.0.0.1:*", "--rate", "20",
         "--record", str(path)], cwd=ROOT, stderr=subprocess.PIPE, text=True,
        preexec_fn=small_disk)
    try:
        address = None
        for _ in range(20):
            line = proc.stderr.readline()
            if line.strip().startswith("stream"):
                address = line.split()[1]
                break
        assert address is not None
        sock = listen(address)
        heard = Heard()
        try:
            hear(sock, heard, lambda h: any(header_of(f)["kind"] == "recording_stopped"
                                            for f, _ in h.topic(b"event")))
            before = len(heard.topic(b"state"))
            hear(sock, heard, lambda h: len(h.topic(b"state")) >= before + 20)
        finally:
            sock.close(linger=0)
        alarm = next(header_of(f) for f, _ in heard.topic(b"event")
                     if header_of(f)["kind"] == "recording_stopped")
        assert "File too large" in alarm["message"] and str(path) in alarm["message"]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        stop_process(proc)
        proc.stderr.close()
    assert proc.returncode == 0
    assert "cannot write" in err and "Traceback" not in err
    assert open_recording(path).counts.get("state", 0) > 0, "what was written reads back"


def test_odc_record_refuses_bad_starts(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                       ) -> None:
    existing = tmp_path / "old.mcap"
    existing.write_bytes(b"precious")
    cases = [
        (["record", "not-an-address", str(tmp_path / "a.mcap")], "not a ZeroMQ address"),
        (["record", "tcp://127.0.0.1:5555"], "give the recording's path"),
        (["record", "tcp://127.0.0.1:5555", str(existing)], "exists"),
        (["record", "tcp://127.0.0.1:5555", str(tmp_path / "b.mcap"), "--budget-mb", "10"],
         "give --rotate-mb"),
        (["record", "tcp://127.0.0.1:5555", str(tmp_path / "c.mcap"), "--rotate-mb", "10",
          "--budget-mb", "15"], "at least twice"),
        (["record", "tcp://127.0.0.1:5555", str(existing / "d.mcap")], "cannot write"),
        (["record", "tcp://127.0.0.1:5555", str(tmp_path / "e.mcap"), "--key", "k"],
         "--key needs --server-key"),
        (["record", "--recover", str(existing), "--every", "2"], "do not apply"),
        (["run", "-q", "--pub", "tcp://127.0.0.1:*", "--cmd", "tcp://127.0.0.1:*",
          "--ingest", "tcp://127.0.0.1:*", "--record", str(existing)], "exists"),
        (["run", "-q", "--pub", "tcp://127.0.0.1:*", "--cmd", "tcp://127.0.0.1:*",
          "--ingest", "tcp://127.0.0.1:*", "--record-every", "5"], "goes with --record"),
    ]
    for argv, expected in cases:
        assert odc_cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err, (argv, err)
        assert len(err.strip().splitlines()) == 1, err
    assert existing.read_bytes() == b"precious"
    with pytest.raises(SystemExit) as exit_:
        odc_cli.main(["record", "tcp://127.0.0.1:5555", "x.mcap", "--every", "0"])
    assert exit_.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err


def test_odc_record_runs_and_stops_cleanly(tmp_path: Path) -> None:
    """`odc record --duration` end to end in its own process: a whole file, exit 0."""
    path = tmp_path / "rec.mcap"
    with running_twin("default", rate_hz=20.0, warp=60.0, meta_interval_s=0.5) as twin:
        done = subprocess.run([sys.executable, "-m", "odc.cli", "record", twin.addresses.pub,
                               str(path), "--duration", "2.5", "--compression", "lz4"],
                              cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "0 lost before the recorder" in done.stderr
    recording = open_recording(path)
    assert recording.indexed and recording.compression == "lz4"
    assert recording.counts["state"] >= 20 and recording.counts["meta"] >= 1
    messages = list(recording.messages())
    assert messages[0].topic == "meta", "a recording starts at the twin's meta"
    assert os.path.getsize(path) == recording.file_size


def test_the_fast_packing_is_format_pack_frames_byte_for_byte() -> None:
    sizes = [0, 1, 255, 256, 65535, 65536, 70000]
    for count in (1, 2, 15, 16, 17, 255, 256):
        frames = [bytes([k % 251]) * sizes[k % len(sizes)] for k in range(count)]
        assert pack_frames_fast(frames) == pack_frames(frames)
        assert pack_frames_fast([zmq.Frame(f) for f in frames]) == pack_frames(frames)
        assert unpack_frames(pack_frames_fast(frames)) == frames
    with pytest.raises(ValueError, match="more than a message has"):
        pack_frames_fast([b""] * 257)


def test_odc_record_with_keys_and_without(tmp_path: Path) -> None:
    """A twin that admits registered keys only: recorded with a viewer's key; refused, and
    told why, without one."""
    keys = tmp_path / "keys"
    new_key(keys, "watcher", ["viewer"])
    with running_twin("default", rate_hz=20.0, warp=60.0, meta_interval_s=0.5,
                      keys_dir=keys) as twin:
        base = [sys.executable, "-m", "odc.cli", "record", twin.addresses.pub]
        keyed = subprocess.run(
            [*base, str(tmp_path / "keyed.mcap"), "--duration", "2", "--key",
             str(keys / "watcher.key_secret"), "--server-key", str(server_key_paths(keys)[0])],
            cwd=ROOT, capture_output=True, text=True, timeout=60)
        plain = subprocess.run([*base, str(tmp_path / "plain.mcap"), "--duration", "1.5"],
                               cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert keyed.returncode == 0, keyed.stderr
    assert open_recording(tmp_path / "keyed.mcap").counts["state"] >= 10
    assert plain.returncode == 1 and "admits registered keys only" in plain.stderr
    assert open_recording(tmp_path / "plain.mcap").counts == {}


def test_a_twin_restart_gets_its_own_metadata_record_in_place(
        run: tuple[Path, Heard, dict[bytes, int]], tmp_path: Path) -> None:
    """`odc record` listening while the twin restarts: the new run (a new run_id, seq from
    0) waits for its own meta, and its metadata record sits between the two runs."""
    _, heard, _ = run
    first = heard.messages[:30]
    second = []
    for frames, received in heard.messages[:30]:
        header = header_of(frames)
        header["run_id"] += 1
        second.append(([frames[0], msgpack.packb(header, use_bin_type=True), *frames[2:]],
                       received + 100))
    # The restarted twin's stream as a late listener hears it: a state before its meta.
    second = [m for m in second if m[0][0] == b"state"][:1] + second
    path = tmp_path / "restart.mcap"
    recorder = Recorder(path, recorder="test")
    for frames, received in first + second:
        recorder.write(frames, int(received * 1e9))
    recorder.close()
    assert recorder.stats.runs == 2 and recorder.stats.before_meta == 1
    assert recorder.stats.dropped == {}
    order = []
    with open(path, "rb") as stream:
        for record in StreamReader(stream).records:
            if isinstance(record, Metadata):
                order.append(("metadata", record.metadata["run_id"]))
            elif isinstance(record, Message):
                order.append(("message", header_of(unpack_frames(record.data))["run_id"]))
    run_1 = header_of(first[0][0])["run_id"]
    expected = [("metadata", str(run_1))] + [("message", run_1)] * len(first) + [
        ("metadata", str(run_1 + 1))] + [("message", run_1 + 1)] * 30
    assert order == expected
    assert [m["run_id"] for m in open_recording(path).metadata] == [str(run_1),
                                                                    str(run_1 + 1)]

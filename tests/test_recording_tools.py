"""What is read out of a recording (issue 15): `odc export foxglove` (every JSON message
valid against its channel's schema, values as recorded) and `odc history` (values as the
live stream had them), and clear refusals of what is not a usable recording."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import zmq
from mcap.reader import make_reader
from mcap.writer import Writer
from procutil import ROOT
from recorderutil import SUBSCRIBE_SETTLE_S, Heard, hear, listen, recording_twin

from odc import cli as odc_cli
from twin.protocol.codec import decode
from twin.recording.export import plain_keys, quaternion
from twin.recording.reader import open_recording

STATES = 40


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Heard]:
    """A default twin recording itself while a live subscriber listens from the start."""
    path = tmp_path_factory.mktemp("tools") / "run.mcap"
    heard = Heard()
    with recording_twin(path, rate_hz=50.0, warp=60.0, meta_interval_s=0.5) as twin:
        sock = listen(twin.pub)
        try:
            time.sleep(SUBSCRIBE_SETTLE_S)
            twin.go.set()
            hear(sock, heard, lambda h: len(h.topic(b"state")) >= STATES
                 and len(h.topic(b"event")) >= 1)
        finally:
            sock.close(linger=0)
    return path, heard


def live_states(heard: Heard) -> dict[int, object]:
    return {m.header["step"]: m for m in (decode(f) for f, _ in heard.topic(b"state"))}


def meta_of(heard: Heard) -> dict:
    return decode(heard.topic(b"meta")[0][0]).header


def read_export(path: Path) -> dict[str, list[tuple[int, dict]]]:
    """Every message of an export, by topic, each checked against its channel's schema."""
    out: dict[str, list[tuple[int, dict]]] = {}
    with open(path, "rb") as stream:
        reader = make_reader(stream)
        validators = {}
        for schema, channel, message in reader.iter_messages(log_time_order=False):
            assert schema is not None and schema.encoding == "jsonschema"
            assert channel.message_encoding == "json"
            if channel.topic not in validators:
                parsed = json.loads(schema.data)
                cls = jsonschema.validators.validator_for(parsed)
                cls.check_schema(parsed)
                validators[channel.topic] = cls(parsed)
            body = json.loads(message.data)
            validators[channel.topic].validate(body)
            out.setdefault(channel.topic, []).append((message.log_time, body))
    return out


def test_export_foxglove_messages_match_their_schemas_and_the_recording(
        run: tuple[Path, Heard], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, heard = run
    output = tmp_path / "fox.mcap"
    assert odc_cli.main(["export", "foxglove", str(path), str(output)]) == 0
    assert "wrote" in capsys.readouterr().err
    topics = read_export(output)
    recording = open_recording(path)
    states = [m.decode() for m in recording.messages(["state"])]
    meta = meta_of(heard)
    names = meta["sats"]["names"]
    keys = plain_keys(names)
    assert set(topics) == {"/events", "/alarms", "/fleet", "/scene", "/tf",
                           "/nodes/temp_compute_k", "/nodes/temp_battery_k", "/nodes/soc_frac",
                           "/nodes/utilization_frac", "/nodes/p_solar_w", "/nodes/p_load_w",
                           "/nodes/compute_power_w"}
    for topic in ("/fleet", "/scene", "/tf", "/nodes/soc_frac"):
        assert len(topics[topic]) == len(states), topic
    with open(output, "rb") as stream:
        schemas = {c.topic: s.name for s, c, _ in make_reader(stream).iter_messages()}
    assert schemas["/events"] == "foxglove.Log"
    assert schemas["/scene"] == "foxglove.SceneUpdate"
    assert schemas["/tf"] == "foxglove.FrameTransform"
    for state, (log_time, fleet), (_, nodes), (_, scene), (_, tf) in zip(
            states, topics["/fleet"], topics["/nodes/temp_compute_k"], topics["/scene"],
            topics["/tf"], strict=True):
        assert log_time == round(state.t_utc * 1e9)
        assert fleet["timestamp"] == {"sec": log_time // 10**9, "nsec": log_time % 10**9}
        assert fleet["n_in_eclipse"] == state.header["fleet"]["n_in_eclipse"]
        assert list(nodes["values"]) == keys
        assert [nodes["values"][k] for k in keys] == state.arrays["temp_compute_k"].tolist()
        spheres = scene["entities"][1]["spheres"]
        assert len(spheres) == len(names)
        first = spheres[0]["pose"]["position"]
        assert [first[a] * 1000 for a in "xyz"] == pytest.approx(
            state.arrays["pos_itrs_km"][0].tolist(), rel=1e-12)
        # The transform takes a point given in the Earth-fixed frame into GCRS.
        matrix = np.asarray(state.header["gcrs_to_itrs"]).reshape(3, 3)
        q = tf["rotation"]
        x, y, z, w = q["x"], q["y"], q["z"], q["w"]
        rotation = np.array([
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
        itrs = state.arrays["pos_itrs_km"][0]
        assert rotation @ itrs == pytest.approx(state.arrays["pos_gcrs_km"][0], abs=1e-3)
        assert np.allclose(rotation, matrix.T, atol=1e-12)
    events = [m.decode().header for m in recording.messages(["event"])]
    assert len(topics["/events"]) == len(events) >= 1
    for (_, log), event in zip(topics["/events"], events, strict=True):
        assert log["name"] == event["kind"] and log["message"] == event["message"]
        assert log["level"] == {"info": 2, "warning": 3, "alarm": 4}[event["severity"]]


def test_export_writes_the_alarm_table_each_time_it_changed(tmp_path: Path) -> None:
    """``/alarms``: the recorded tables (resent once a second) each time they changed, the
    nodes by name; a plot can take ``/alarms.n_active``. Recorded from a twin whose limits
    put every node in alarm at once, stepped on command and then paused (the same table
    resent)."""
    from tests.twinutil import connected, request
    from twin.recording.export import alarm_table, export_foxglove

    path = tmp_path / "alarms.mcap"
    scenario = (ROOT / "assets" / "scenarios" / "default.toml").read_text() + (
        "\n[limits]\ntemp_compute_k = { alarm_low = 90.0, warn_low = 100.0, "
        "warn_high = 150.0, alarm_high = 200.0, hysteresis = 2.0 }\n")
    with recording_twin(path, scenario=scenario, paused=True) as twin, \
            connected(zmq.REQ, twin.server.bound.command) as req:
        twin.go.set()
        for _ in range(3):
            assert request(req, {"cmd": "step"})["ok"]
        deadline = time.monotonic() + 30
        while twin.server.engine.clock.steps < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(2.5)  # paused: the same table, resent once a second
    report = export_foxglove(path, tmp_path / "fox.mcap")
    recording = open_recording(path)
    recorded = [(m.log_time_ns, m.decode().header) for m in recording.messages(["alarms"])]
    meta = next(m.decode().header for m in recording.messages(["meta"]))
    names = meta["sats"]["names"]
    changes, last = [], None
    for log_time, header in recorded:
        table = alarm_table(header, names)
        if table != last:
            changes.append((log_time, table))
            last = table
    exported = read_export(tmp_path / "fox.mcap")["/alarms"]
    assert report.alarm_tables == len(exported) == len(changes) < len(recorded)
    for (log_time, body), (when, table) in zip(exported, changes, strict=True):
        assert log_time == when and body == {"timestamp": {"sec": when // 10**9,
                                                           "nsec": when % 10**9}, **table}
    final = recorded[-1][1]
    assert exported[-1][1]["n_active"] == final["n_active"] == len(names)  # every node
    assert [a["message"] for a in exported[-1][1]["alarms"]] == \
        [a["message"] for a in final["alarms"]]
    assert [a["node"] for a in exported[-1][1]["alarms"]] == \
        [names[a["sat"]] for a in final["alarms"]]
    # What a damaged table holds is read as far as it goes.
    odd = alarm_table({"n_active": "x", "alarms": [7, {"sat": 99, "severity": "?",
                                                         "count": -1}]}, names)
    assert odd == {"n_active": 0, "n_unacknowledged": 0, "n_shelved": 0, "alarms": [
        {"id": -1, "kind": "", "node": "", "parameter": "", "severity": "warning",
         "state": "", "active": False, "message": "", "count": 0}]}


def test_export_chooses_fields_nodes_and_every_nth(run: tuple[Path, Heard], tmp_path: Path
                                                   ) -> None:
    path, heard = run
    names = meta_of(heard)["sats"]["names"]
    output = tmp_path / "few.mcap"
    assert odc_cli.main(["export", "foxglove", str(path), str(output), "--fields",
                         "soc_frac,beta_deg", "--sats", f"{names[3]},{names[0]}",
                         "--every", "4"]) == 0
    topics = read_export(output)
    n_states = open_recording(path).counts["state"]
    assert set(topics) == {"/events", "/alarms", "/fleet", "/scene", "/tf", "/nodes/soc_frac",
                           "/nodes/beta_deg"}
    assert len(topics["/nodes/beta_deg"]) == (n_states + 3) // 4
    assert list(topics["/nodes/soc_frac"][0][1]["values"]) == plain_keys([names[3], names[0]])
    assert len(topics["/scene"][0][1]["entities"][1]["spheres"]) == 2


def test_quaternion_and_keys() -> None:
    for angle in (0.1, 2.0, 3.1, -2.9):
        c, s = np.cos(angle), np.sin(angle)
        for matrix in (np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]),
                       np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
                       np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])):
            q = quaternion(matrix)
            assert sum(v * v for v in q.values()) == pytest.approx(1.0)
    assert plain_keys(["mid-53-01-01", "mid_53_01_01", "7x", ""]) == [
        "mid_53_01_01", "mid_53_01_01_2", "sat_7x", "sat"]


def rows_of(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def test_history_csv_has_the_live_values(run: tuple[Path, Heard], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    path, heard = run
    live = live_states(heard)
    names = meta_of(heard)["sats"]["names"]
    out = tmp_path / "temp.csv"
    assert odc_cli.main(["history", str(path), "--field", "temp_compute_k", "--sat", names[5],
                         "--sat", "2", "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().err
    rows = rows_of(out)
    assert list(rows[0]) == ["time_utc", "t_utc", "step", names[5], names[2]]
    assert len(rows) == len(live)
    for row in rows:
        state = live[int(row["step"])]
        assert float(row["t_utc"]) == state.t_utc
        assert float(row[names[5]]) == float(state.arrays["temp_compute_k"][5])
        assert float(row[names[2]]) == float(state.arrays["temp_compute_k"][2])
        assert row["time_utc"].endswith("Z")
    # Every node, a vector field's components, a station-by-node field, a fleet total.
    for argv, width in ((["--field", "soc_frac"], len(names)),
                        (["--field", "pos_gcrs_km", "--sat", names[1]], 3),
                        (["--field", "elevation_deg", "--sat", names[1]],
                         len(meta_of(heard)["stations"])),
                        (["--field", "n_in_eclipse"], 1)):
        assert odc_cli.main(["history", str(path), *argv, "--out", str(out)]) == 0
        rows = rows_of(out)
        assert len(rows[0]) == 3 + width, argv
        state = live[int(rows[-1]["step"])]
        last = list(rows[-1].values())[3:]
        if argv[1] == "n_in_eclipse":
            assert [int(v) for v in last] == [state.header["fleet"]["n_in_eclipse"]]
        elif argv[1] == "pos_gcrs_km":
            assert [float(v) for v in last] == state.arrays["pos_gcrs_km"][1].tolist()
        elif argv[1] == "elevation_deg":
            assert [float(v) for v in last] == state.arrays["elevation_deg"][:, 1].tolist()
        else:
            assert [float(v) for v in last] == state.arrays["soc_frac"].tolist()
    capsys.readouterr()


def test_history_reads_a_time_range_through_the_index(run: tuple[Path, Heard],
                                                      tmp_path: Path) -> None:
    path, heard = run
    live = live_states(heard)
    steps = sorted(live)
    t_from, t_to = live[steps[10]].t_utc, live[steps[20]].t_utc
    start = open_recording(path).start_ns / 1e9
    out = tmp_path / "range.csv"
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t_from)) + \
        f".{round((t_from % 1) * 1000):03d}Z"
    assert odc_cli.main(["history", str(path), "--field", "n_in_contact", "--from", iso,
                         "--to", f"+{t_to - start}", "--out", str(out)]) == 0
    assert [int(r["step"]) for r in rows_of(out)] == steps[10:20]


def foreign(path: Path) -> Path:
    with open(path, "wb") as stream:
        writer = Writer(stream)
        writer.start(profile="ros2", library="test")
        channel = writer.register_channel("/chatter", "cdr", 0)
        writer.add_message(channel, 1, b"hello", 1)
        writer.finish()
    return path


def test_bad_recordings_and_requests_are_refused_in_one_line(
        run: tuple[Path, Heard], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, heard = run
    text = tmp_path / "notes.mcap"
    text.write_text("not a recording\n")
    empty = tmp_path / "empty.mcap"
    empty.write_bytes(b"")
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(path.read_bytes()[:12])
    ros = foreign(tmp_path / "ros.mcap")
    csv_out = str(tmp_path / "o.csv")
    fox_out = str(tmp_path / "o.mcap")
    cases = []
    for bad, expected in ((text, "is not an MCAP file"), (empty, "is empty"),
                          (cut, "cut short before its MCAP header"),
                          (ros, "profile 'ros2'"), (tmp_path / "none.mcap", "no such file"),
                          (tmp_path, "is a folder")):
        cases += [(["history", str(bad), "--field", "soc_frac", "--out", csv_out], expected),
                  (["export", "foxglove", str(bad), fox_out], expected),
                  (["record", "--recover", str(bad), str(tmp_path / "r.mcap")], expected)]
    name = meta_of(heard)["sats"]["names"][0]
    cases += [
        (["history", str(path), "--field", "temp_cpu_k", "--out", csv_out],
         "has no field 'temp_cpu_k': its fields include pos_gcrs_km"),
        (["history", str(path), "--field", "soc_frac", "--sat", "nobody", "--out", csv_out],
         f"has no satellite 'nobody': give a name or id of one of its 40 satellites ({name}"),
        (["history", str(path), "--field", "n_in_eclipse", "--sat", name, "--out", csv_out],
         "fleet total"),
        (["history", str(path), "--field", "soc_frac", "--from", "yesterday", "--out",
          csv_out], "is not a time"),
        (["history", str(path), "--field", "soc_frac", "--out", str(tmp_path / "x.xlsx")],
         "write .csv or .parquet"),
        (["history", str(path), "--field", "soc_frac", "--out",
          str(tmp_path / "no" / "dir.csv")], "cannot write"),
        (["export", "foxglove", str(path), fox_out, "--fields", "pos_itrs_km"],
         "not one value per node"),
        (["export", "foxglove", str(path), fox_out, "--sats", "nobody"], "no satellite"),
        (["export", "foxglove", str(path), str(tmp_path / "no" / "dir.mcap")], "cannot write"),
        (["export", "foxglove", str(path), str(path)], "is the recording itself"),
    ]
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        cases.append((["history", str(path), "--field", "soc_frac", "--out",
                       str(tmp_path / "o.parquet")], "needs pyarrow"))
    for argv, expected in cases:
        assert odc_cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert expected in err, (argv, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, (argv, err)
    # The same end to end: its own process, exit status 2, one line, no traceback.
    done = subprocess.run([sys.executable, "-m", "odc.cli", "history", str(ros), "--field",
                           "x", "--out", csv_out], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith("odc history: ") and "profile 'ros2'" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_history_of_a_cut_recording_reads_what_it_holds(run: tuple[Path, Heard],
                                                        tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    path, heard = run
    data = path.read_bytes()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(data[: len(data) * 3 // 4])
    out = tmp_path / "cut.csv"
    assert odc_cli.main(["history", str(cut), "--field", "soc_frac", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "has no index" in err and "--recover" in err
    rows = rows_of(out)
    live = live_states(heard)
    assert 0 < len(rows) < len(live)
    assert [int(r["step"]) for r in rows] == sorted(live)[: len(rows)]

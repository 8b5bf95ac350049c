"""The MQTT source of `odc bridge`: the [mqtt] table, payloads, and a real Mosquitto broker.

End to end: paho publisher -> Mosquitto -> `odc bridge --mqtt` -> twin ingest -> mirror.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pytest
import zmq

import bridge.mqtt
from bridge.definitions import DefinitionError, parse_definitions
from bridge.mqtt import MAX_PACKET_BYTES, MqttSource
from bridge.mqtt_topics import MAX_TOPICS, PayloadRejected
from tests.mqttutil import Broker, running_broker
from tests.procutil import odc_process
from tests.twinutil import connected, request, running_twin, wait_event, wait_state

ROOT = Path(__file__).resolve().parent.parent

DEFINITION = """
[testbed]
name = "mqttlab"

[mqtt]
subscribe = ["lab/#"]
max_payload_bytes = 256

[[mqtt.topic]]
topic = "lab/power"
parameter = "compute_power_w"
payload = "number"
unit = "kW"
min = 0.0
max = 600.0

[[mqtt.topic]]
topic = "lab/cold_plate"
parameter = "cold_plate_temp_k"
payload = "json"
key = "reading.value"
unit = "degC"
min = 193.15
max = 423.15
"""

# The flatsat mirror scenario, its binding replaced by one for the MQTT bench.
_FLATSAT = (ROOT / "assets" / "testbeds" / "flatsat_mirror.toml").read_text()
SCENARIO = _FLATSAT[:_FLATSAT.index("[[mirror.testbed]]")].replace(
    "lost_after_s = 3.0", "lost_after_s = 1.0") + """
[[mirror.testbed]]
name = "mqttlab"
node = "dawn-dusk-01-01"
drivers = { compute_power_w = "compute_power_w" }
states = { cold_plate_temp_k = "temp_compute_k" }
thresholds = { temp_compute_k = 100.0 }
"""
celsius_zero_k = 273.15
exact = 1e-9


def _table(text: str = DEFINITION):
    return parse_definitions(text, "lab.toml").mqtt


# -- the [mqtt] table ----------------------------------------------------------------------

@pytest.mark.parametrize(("change", "key", "problem"), [
    (("max_payload_bytes = 256", "max_payload_bytes = 256\nretain = true"), "mqtt.retain",
     "unknown key"),
    (('topic = "lab/power"', 'topic = "lab/+"'), "mqtt.topic[0].topic", "no wildcards"),
    (('subscribe = ["lab/#"]', 'subscribe = ["lab/#/x"]'), "mqtt.subscribe[0]", "'#' only"),
    (('subscribe = ["lab/#"]', 'subscribe = ["other/#"]'), "mqtt.subscribe",
     "no filter receives 'lab/power'"),
    (('parameter = "compute_power_w"', 'parameter = "compute_power_kw"'),
     "mqtt.topic[0].parameter", "must end in '_w'"),
    (('unit = "kW"', 'unit = "furlong"'), "mqtt.topic[0].unit", "'furlong' is not one of"),
    (("min = 0.0\n", ""), "mqtt.topic[0].min", "is required"),
    (("max = 600.0", "max = -1.0"), "mqtt.topic[0].min", "min <= max"),
    (('key = "reading.value"', 'key = "reading..value"'), "mqtt.topic[1].key", "non-empty"),
    (('payload = "number"', 'payload = "xml"'), "mqtt.topic[0].payload", "'json' or 'number'"),
    (('topic = "lab/cold_plate"', 'topic = "lab/power"'), "mqtt.topic[1].topic",
     "mapped twice"),
    (("max_payload_bytes = 256", "max_payload_bytes = 256\nqos = 2"), "mqtt.qos", "0 or 1"),
    (("max_payload_bytes = 256", 'max_payload_bytes = 256\nprotocol = "3"'), "mqtt.protocol",
     "'5' or '3.1.1'"),
    (("max_payload_bytes = 256", "max_payload_bytes = 65537"), "mqtt.max_payload_bytes",
     "outside 1..65536"),
])
def test_table_errors_name_file_and_key(change: tuple[str, str], key: str, problem: str) -> None:
    text = DEFINITION.replace(*change, 1)
    with pytest.raises(DefinitionError) as err:
        parse_definitions(text, "lab.toml")
    assert f"lab.toml: {key}: " in str(err.value) and problem in str(err.value)


def test_topic_count_is_bounded_and_packets_or_topics_are_needed() -> None:
    row = ('[[mqtt.topic]]\ntopic = "lab/t{i}"\nparameter = "t{i}_k"\npayload = "number"\n'
           'unit = "K"\nmin = 3.0\nmax = 1000.0\n')
    head = '[testbed]\nname = "x"\n[mqtt]\n'
    many = head + "".join(row.format(i=i) for i in range(MAX_TOPICS + 1))
    with pytest.raises(DefinitionError, match=f"x.toml: mqtt.topic: {MAX_TOPICS + 1} topics; "
                       f"at most {MAX_TOPICS}"):
        parse_definitions(many, "x.toml")
    assert len(_table(head + "".join(row.format(i=i) for i in range(MAX_TOPICS))).topics) \
        == MAX_TOPICS
    packets = "".join(f'[[packet]]\nname = "p{i}"\napid = {i + 1}\n[[packet.parameter]]\n'
                      'name = "a"\ntype = "u1"\noffset = 0\n' for i in range(20))
    with pytest.raises(DefinitionError, match=r"x\.toml: mqtt\.topic: 20 packets and 45 topics: "
                       "at most 64 together"):  # the packet names the twin remembers
        parse_definitions(head.replace("[mqtt]\n", packets + "[mqtt]\n")
                          + "".join(row.format(i=i) for i in range(45)), "x.toml")
    with pytest.raises(DefinitionError, match=r"x.toml: packet: define at least one "
                       r"\[\[packet\]\] \(or an \[mqtt\] table\)"):
        parse_definitions('[testbed]\nname = "x"\n', "x.toml")


def test_bundled_example_loads() -> None:
    from bridge.definitions import load_definitions

    defs = load_definitions("lab_mqtt")
    assert defs.testbed == "lab-mqtt" and not defs.packets
    load = defs.mqtt.topics["lab/bench1/load"]
    assert load.value_si(b"57.5") == pytest.approx(0.575, abs=exact)


# -- payloads --------------------------------------------------------------------------------

@pytest.mark.parametrize(("topic", "payload", "expected"), [
    ("lab/power", b"0.17", 170.0),                       # kW -> W
    ("lab/power", b" 1.5e-1\n", 150.0),
    ("lab/power", b"-0", 0.0),
    ("lab/cold_plate", b'{"reading": {"value": 25}}', 25.0 + celsius_zero_k),
    ("lab/cold_plate", b'{"reading": {"value": -73.15, "unit": "C"}, "ch": 1}', 200.0),
    ("lab/power", b"abc", "not_a_number"),
    ("lab/power", b"nan", "not_a_number"),              # float() would take these three
    ("lab/power", b"inf", "not_a_number"),
    ("lab/power", b"1_0", "not_a_number"),
    ("lab/power", b"0x10", "not_a_number"),
    ("lab/power", b"", "not_a_number"),
    ("lab/power", b"1" * 400, "not_finite"),            # 1e399 kW
    ("lab/power", b"0.6000001", "out_of_bounds"),       # 600.0001 W
    ("lab/power", b"-0.001", "out_of_bounds"),
    ("lab/cold_plate", b'{"reading": {"value": NaN}}', "not_finite"),
    ("lab/cold_plate", b'{"reading": {"value": 1e999}}', "not_finite"),
    ("lab/cold_plate", b'{"reading": {"value": true}}', "not_a_number"),
    ("lab/cold_plate", b'{"reading": {"value": "25"}}', "not_a_number"),
    ("lab/cold_plate", b'{"reading": 25}', "missing_key"),
    ("lab/cold_plate", b'{"reading": {}}', "missing_key"),
    ("lab/cold_plate", b'[1, 2]', "missing_key"),
    ("lab/cold_plate", b'{"reading": {"value": 25', "not_json"),
    ("lab/cold_plate", b"[" * 5000, "not_json"),         # nested past the recursion limit
    ("lab/cold_plate", b'{"reading": {"value": ' + b"9" * 5000 + b"}}", "not_json"),
    ("lab/cold_plate", b'\xff\xfe{', "not_text"),
    ("lab/cold_plate", b'{"reading": {"value": 200}}', "out_of_bounds"),   # 473 K
])
def test_payloads(topic: str, payload: bytes, expected: float | str) -> None:
    mapping = _table().topics[topic]
    if isinstance(expected, float):
        assert mapping.value_si(payload) == pytest.approx(expected, abs=exact)
        return
    with pytest.raises(PayloadRejected) as err:
        mapping.value_si(payload)
    assert err.value.reason == expected


def test_json_list_index_and_unit_conversions() -> None:
    text = DEFINITION.replace('key = "reading.value"', 'key = "readings.1"').replace(
        'unit = "degC"', 'unit = "degF"')
    mapping = _table(text).topics["lab/cold_plate"]
    assert mapping.value_si(b'{"readings": [0, 212, 5]}') == pytest.approx(373.15, abs=1e-9)
    assert mapping.value_si(b'{"readings": [32.0, -40.0]}') == pytest.approx(233.15, abs=1e-9)
    with pytest.raises(PayloadRejected, match=r"no 'readings\.1'"):
        mapping.value_si(b'{"readings": [0]}')


# -- the source against a real broker --------------------------------------------------------

def _until(condition, timeout_s: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"{what} not met within {timeout_s} s")


@contextmanager
def _publisher(broker: Broker) -> Iterator[mqtt.Client]:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-publisher")
    client.reconnect_delay_set(min_delay=0.1, max_delay=0.5)
    client.connect_async("127.0.0.1", broker.port)
    client.loop_start()
    _until(client.is_connected, what="publisher connected")
    try:
        yield client
    finally:
        client.disconnect()
        client.loop_stop()


def _publish(client: mqtt.Client, topic: str, payload: bytes, retain: bool = False) -> None:
    client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5.0)


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_source_applies_valid_messages_and_counts_the_rest(tmp_path: Path,
                                                           protocol: str) -> None:
    table = _table(DEFINITION.replace("[mqtt]", f'[mqtt]\nprotocol = "{protocol}"'))
    huge = b"1" * (MAX_PACKET_BYTES + 1)
    with running_broker(tmp_path) as broker, _publisher(broker) as pub:
        _publish(pub, "lab/power", b"0.1", retain=True)  # waiting at the broker: an old value
        source = MqttSource(broker.address, table, reconnect_max_s=1.0)
        try:
            _until(lambda: source.status()["subscribed"], what="source subscribed")
            sent = [("lab/power", b"0.17"), ("lab/power", b"abc"), ("lab/other", b"5"),
                    ("lab/cold_plate", b'{"reading": {"value": 25}}'),
                    ("lab/power", b"0.7"), ("lab/power", b"1" * 300),
                    ("lab/cold_plate", b'{"reading": {}}'), ("lab/power", b"0.2"),
                    ("lab/power", huge), ("lab/cold_plate", b'{"reading": {"value": NaN}}')]
            for topic, payload in sent:
                _publish(pub, topic, payload)
            # MQTT 5: the broker never sends the bridge a packet over MAX_PACKET_BYTES.
            expected = len(sent) + 1 - (protocol == "5")
            batches = []
            _until(lambda: batches.extend(source.read(0.05)) or
                   source.decoder.received == expected, what="all messages read")
            time.sleep(0.2)  # a fixed wait on purpose: nothing more may come in it
            batches.extend(source.read(0.05))
        finally:
            source.close()
    power = [b for b in batches if b.packet == "mqtt/compute_power_w"]
    cold = [b for b in batches if b.packet == "mqtt/cold_plate_temp_k"]
    values = np.concatenate([b.values["compute_power_w"] for b in power])
    assert values.tolist() == pytest.approx([170.0, 200.0], abs=exact)
    assert np.concatenate([b.count for b in power]).tolist() == [1, 2]
    assert next(b.units for b in power) == {"compute_power_w": "W"}
    assert np.concatenate([b.values["cold_plate_temp_k"] for b in cold]).tolist() \
        == pytest.approx([298.15], abs=exact)
    t = np.concatenate([b.t_utc for b in power])
    assert np.all(np.abs(t - time.time()) < 30.0)
    status = source.decoder.status()
    too_large = 1 + (protocol == "3.1.1")
    assert status["rejected"] == {"retained": 1, "not_a_number": 1, "unknown_topic": 1,
                                  "out_of_bounds": 1, "too_large": too_large,
                                  "missing_key": 1, "not_finite": 1}
    assert status["received"] == status["accepted"] + status["rejected_total"] == expected
    assert status["accepted"] == 3


def test_a_flood_past_the_queue_is_counted(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bridge.mqtt, "MAX_QUEUED_MESSAGES", 3)
    with running_broker(tmp_path) as broker, _publisher(broker) as pub:
        source = MqttSource(broker.address, _table(), reconnect_max_s=1.0)
        try:
            _until(lambda: source.status()["subscribed"], what="source subscribed")
            for i in range(10):
                _publish(pub, "lab/power", f"0.{i}".encode())
            _until(lambda: source.status()["queued"] == 3, what="queue full")
            # The other seven arrive and are dropped (counted by paho's thread, later on
            # a loaded machine: read only once all are).
            _until(lambda: source._queue_full == 7, what="the other seven dropped")
            batches = source.read(0.05)
        finally:
            source.close()
    assert batches[0].values["compute_power_w"].tolist() == pytest.approx([0.0, 100.0, 200.0])
    assert source.decoder.status()["rejected"] == {"queue_full": 7}
    assert source.decoder.status()["received"] == 10


def test_source_waits_for_a_broker_that_is_not_up_yet(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bridge.mqtt, "UNREACHED_NOTICE_S", 0.2)
    broker = Broker(tmp_path)
    source = MqttSource(broker.address, _table(), reconnect_max_s=0.5)
    try:
        time.sleep(0.3)
        assert source.read(0.1) == [] and not source.status()["connected"]
        assert source.notices() == [f"no MQTT broker reached at {broker.address} yet; still "
                                    "trying, every 0.5 s doubling up to 0.5 s"]
        assert source.notices() == []  # said once
        broker.start()
        _until(lambda: source.status()["subscribed"], what="source subscribed")
        assert source.status()["connects"] == 1
    finally:
        source.close()
        broker.stop()


# -- end to end, with a twin and the odc bridge process --------------------------------------

class _Sender:
    """Publishes the current good readings at 20 Hz until stopped (retrying while the
    broker is away)."""

    def __init__(self, client: mqtt.Client) -> None:
        self.client = client
        self.power_kw = b"0.17"
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(0.05):
            self.client.publish("lab/power", self.power_kw)
            self.client.publish("lab/cold_plate", b'{"reading": {"value": 25.0}}')

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)




def _bridge_counters(cmd: zmq.Socket, predicate, timeout_s: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = request(cmd, {"cmd": "mirror_status"})
        bridge = status["bridges"].get("mqttlab")
        if bridge is not None and predicate(bridge):
            return status
        time.sleep(0.2)
    raise AssertionError(f"bridge counters never satisfied the condition: {status}")


@pytest.mark.timeout(120)
def test_mqtt_end_to_end_with_broker_loss_and_recovery(tmp_path: Path) -> None:
    definition = tmp_path / "lab.toml"
    definition.write_text(DEFINITION)
    broker = Broker(tmp_path)
    broker.start()
    try:
        with running_twin(SCENARIO, rate_hz=20.0, warp=1.0) as twin, \
                connected(zmq.SUB, twin.addresses.pub, SUBSCRIBE=b"") as sub, \
                connected(zmq.REQ, twin.addresses.command) as cmd, \
                odc_process("bridge", "--mqtt", broker.address, "--definitions",
                            str(definition), "--ingest", twin.addresses.ingest,
                            "--mqtt-reconnect-max", "1", "--quiet") as bridge, \
                _publisher(broker) as pub:
            sender = _Sender(pub)
            try:
                _run_session(broker, sub, cmd, pub, sender)
            finally:
                sender.close()
            bridge.terminate()
            bridge.wait(10)
            said = bridge.stderr.read().decode()
    finally:
        broker.stop()
    assert f"connected to MQTT broker {broker.address}" in said
    assert f"lost the MQTT broker {broker.address}" in said
    assert f"reconnected to MQTT broker {broker.address}" in said


def _run_session(broker: Broker, sub: zmq.Socket, cmd: zmq.Socket, pub: mqtt.Client,
                 sender: _Sender) -> None:
    # Each topic is its own packet: wait for both to have arrived.
    live = wait_state(sub, lambda a: bool(a["mirror_live"][0])
                       and np.isfinite(a["mirror_measured_temp_compute_k"][0]))
    sat = int(live.arrays["mirror_sat"][0])
    assert float(live.arrays["mirror_measured_compute_power_w"][0]) == pytest.approx(170.0)
    assert float(live.arrays["compute_power_w"][sat]) == pytest.approx(170.0, abs=1e-3)
    assert float(live.arrays["mirror_measured_temp_compute_k"][0]) == pytest.approx(
        25.0 + celsius_zero_k, abs=1e-3)
    # Bad messages among the good ones: counted by the bridge, never reaching the node.
    bad = [("lab/power", b"abc"), ("lab/power", b"9999"), ("lab/other", b"1"),
           ("lab/cold_plate", b'{"reading": {}}'), ("lab/power", b"7" * 300)]
    for topic, payload in bad:
        _publish(pub, topic, payload)
    sender.power_kw = b"0.2"
    wait_state(sub, lambda a: math.isclose(a["mirror_measured_compute_power_w"][0], 200.0,
                                            abs_tol=1e-3))
    expected = {"not_a_number": 1, "out_of_bounds": 1, "unknown_topic": 1, "missing_key": 1,
                "too_large": 1}
    status = _bridge_counters(cmd, lambda b: b["decoder"].get("rejected") == expected)
    decoder = status["bridges"]["mqttlab"]["decoder"]
    assert decoder["rejected_total"] == 5 and decoder["accepted"] > 0
    twin_counts = status["counters"]
    assert twin_counts["samples_dropped"]["out_of_bounds"] == 0
    assert twin_counts["samples_dropped"]["not_finite"] == 0
    assert twin_counts["samples_applied"] > 0
    # The broker goes away: no telemetry, so the twin's mirror is lost.
    broker.stop()
    wait_event(sub, "mirror_lost")
    wait_state(sub, lambda a: not bool(a["mirror_live"][0]))
    # It comes back on the same port: the bridge reconnects and the mirror is regained.
    broker.start()
    wait_event(sub, "mirror_regained", timeout_s=20.0)
    back = wait_state(sub, lambda a: bool(a["mirror_live"][0]))
    assert float(back.arrays["mirror_measured_compute_power_w"][0]) == pytest.approx(200.0)
    assert request(cmd, {"cmd": "mirror_status"})["bindings"][0]["lost_count"] == 1


def test_cli_refuses_mqtt_without_a_table(capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    from odc.cli import main

    assert main(["bridge", "--mqtt", "127.0.0.1:1", "--definitions", "flatsat"]) == 2
    assert "has no [mqtt] table" in capsys.readouterr().err
    definition = tmp_path / "lab.toml"
    definition.write_text(DEFINITION)
    assert main(["bridge", "--udp", "127.0.0.1:0", "--definitions", str(definition)]) == 2
    assert "defines no [[packet]], only MQTT topics: add --mqtt" in capsys.readouterr().err
    assert main(["bridge", "--mqtt", "127.0.0.1:1", "--definitions", str(definition),
                 "--mqtt-reconnect-max", "0.1"]) == 2
    assert "--mqtt-reconnect-max 0.1 outside 0.5..3600 s" in capsys.readouterr().err

"""Throughput of the MQTT bridge source (docs/performance.md, "MQTT bridge source").

Usage:
    .venv/bin/python bench/mqtt_source.py [--decode 100000] [--publish 20000]

Two numbers: ``MqttDecoder.decode`` alone on messages held in memory (half plain numbers,
half small JSON documents), and messages published as fast as paho sends them through a
real Mosquitto broker on a free loopback port (tests/mqttutil.py starts it) to
``MqttSource``, judged. Needs Debian's ``mosquitto``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import paho.mqtt.client as mqtt  # noqa: E402

from bridge.definitions import parse_definitions  # noqa: E402
from bridge.mqtt import MqttDecoder, MqttSource, _Message  # noqa: E402
from tests.mqttutil import Broker  # noqa: E402
from tests.test_bridge_mqtt import DEFINITION  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decode", type=int, default=100_000, help="messages to judge")
    parser.add_argument("--publish", type=int, default=20_000, help="messages to publish")
    args = parser.parse_args()
    table = parse_definitions(DEFINITION, "bench").mqtt
    json_message = b'{"reading": {"value": 25.0}, "ch": 1}'
    messages = [_Message("lab/cold_plate", json_message, len(json_message), False, 1.8e9 + i)
                if i % 2 else _Message("lab/power", b"0.17", 4, False, 1.8e9 + i)
                for i in range(args.decode)]
    started = time.perf_counter()
    MqttDecoder(table).decode(messages)
    took = time.perf_counter() - started
    print(f"decoder: {args.decode / took:,.0f} messages/s ({took / args.decode * 1e6:.2f} µs "
          "each)")
    with tempfile.TemporaryDirectory() as folder:
        broker = Broker(Path(folder))
        broker.start()
        source = MqttSource(broker.address, table)
        publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        try:
            while not source.status()["subscribed"]:
                time.sleep(0.01)
            publisher.connect("127.0.0.1", broker.port)
            publisher.loop_start()
            started = time.perf_counter()
            for _ in range(args.publish):
                publisher.publish("lab/power", b"0.17")
            while (source.decoder.received < args.publish
                   and time.perf_counter() - started < 60.0):
                source.read(0.05)
            took = time.perf_counter() - started
        finally:
            publisher.loop_stop()
            source.close()
            broker.stop()
    received = source.decoder.received
    print(f"broker -> source: {received} of {args.publish} in {took:.2f} s: "
          f"{received / took:,.0f} messages/s; rejected {source.decoder.status()['rejected']}")
    return 0 if received == args.publish else 1


if __name__ == "__main__":
    sys.exit(main())

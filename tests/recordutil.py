"""Test recordings: a real twin's stream, received live by a subscriber and kept in MCAP.

`record_live` runs a real twin in a thread (tests/twinutil.running_twin, fast clock, the
scenario's own seed), subscribes before it steps, and keeps every message as it arrived;
`write_recording` writes such messages as twin.recording.format says (a channel per topic,
the frames packed, ``log_time`` the header's ``t_utc``, the ``odc.recording`` metadata,
chunked and indexed), until the recorder (twin.recording.writer) writes them itself. The
``replay_process`` helper runs `odc replay` as its own process and reads the addresses it
reports, as tests/procutil.py does for `odc run`.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import zmq
from mcap.writer import CompressionType, Writer
from procutil import serving_process
from twinutil import connected, request, running_twin

from twin import __version__
from twin.protocol.codec import PROTOCOL_VERSION, unpack
from twin.recording.format import (
    CHANNELS,
    MESSAGE_ENCODING,
    METADATA_NAME,
    PROFILE,
    log_time_ns,
    pack_frames,
)

STEPS_AT_ONCE = 10
"""Steps record_live asks for at once: their states and events fit the stream's queue."""


@dataclass
class Received:
    """One stream message as a subscriber received it."""

    frames: list[bytes]
    wall_ns: int

    @property
    def topic(self) -> bytes:
        return self.frames[0]

    @property
    def header(self) -> dict:
        return unpack(self.frames[1])


def record_live(states: int, *, rate_hz: float = 10.0, warp: float = 1.0,
                scenario: str = "default") -> tuple[list[Received], int]:
    """A real twin's first ``states`` steps as a subscriber received them; and its run_id.

    The twin starts paused; once the subscriber hears the stream (and a ``meta`` asked
    for), the twin takes exactly ``states`` steps (``step``, fast clock), all of them heard.
    What the twin published as it started (its first state, ``hb``, events and ``alarms``
    at step 0) reaches the subscriber only if it joined in time (ZeroMQ's slow joiner):
    the first state is left out, so the recording holds exactly the ``states`` stepped
    states, the first one step after the start, however the timing fell. The events at
    step 0 are kept as heard (all, some or none of them).
    """
    received: list[Received] = []
    with running_twin(scenario, fast=True, paused=True, rate_hz=rate_hz, warp=warp) as twin, \
            connected(zmq.SUB, twin.addresses.pub, RCVHWM=0, SUBSCRIBE=b"") as sub, \
            connected(zmq.REQ, twin.addresses.command) as req:
        deadline = time.monotonic() + 60  # a loaded machine
        while not any(r.topic == b"meta" for r in received):
            assert time.monotonic() < deadline, "no meta from the twin"
            assert request(req, {"cmd": "meta"})["ok"]
            while sub.poll(300):
                received.append(Received(sub.recv_multipart(), time.time_ns()))
        # The first state only if the subscription beat it (1 run in 5 or so): never.
        received = [r for r in received if r.topic != b"state"]
        n = 0
        while n < states:
            # A few steps at a time, each lot heard before the next is asked for: a fast
            # clock steps as fast as it can, and a subscriber held off the CPU would meet
            # the stream's queue (50 messages) full and lose states to it.
            lot = min(STEPS_AT_ONCE, states - n)
            assert request(req, {"cmd": "step", "n": lot})["ok"]
            while lot:
                assert time.monotonic() < deadline, f"only {n} of {states} states arrived"
                frames = sub.recv_multipart()  # RCVTIMEO bounds each wait
                received.append(Received(frames, time.time_ns()))
                if frames[0] == b"state":
                    n, lot = n + 1, lot - 1
        while sub.poll(200):  # the events of the last step (no state past the asked ones)
            frames = sub.recv_multipart()
            if frames[0] != b"state":
                received.append(Received(frames, time.time_ns()))
        run_id = twin.server.run_id
        twin.stop()
    return received, run_id


def write_recording(path: Path, messages: list[Received], *, profile: str = PROFILE,
                    run_id: int | None = None, scenario: str = "default",
                    states_per_chunk: int = 10, finish: bool = True,
                    channel_prefix: str = "/odc/") -> Path:
    """Write ``messages`` as a recording (twin.recording.format), a chunk per
    ``states_per_chunk`` states; ``finish`` False leaves it without summary and footer,
    another ``channel_prefix`` makes its channels foreign."""
    with open(path, "wb") as f:
        writer = Writer(f, chunk_size=64 << 20, compression=CompressionType.ZSTD)
        writer.start(profile=profile, library=f"odc-twin tests {__version__}")
        channels = {topic: writer.register_channel(
            channel.replace("/odc/", channel_prefix), MESSAGE_ENCODING, 0)
            for topic, channel in CHANNELS.items()}
        writer.add_metadata(METADATA_NAME, {
            "scenario": scenario, "run_id": str(run_id or 0), "twin_version": __version__,
            "protocol": str(PROTOCOL_VERSION), "recorder": "tests", "every": "1"})
        last, states = 0, 0
        for message in messages:
            last = log_time_ns(message.header.get("t_utc"), last)
            writer.add_message(channels[message.topic], last, pack_frames(message.frames),
                               message.wall_ns)
            if message.topic == b"state":
                states += 1
                if states % states_per_chunk == 0:
                    writer.flush()  # close the chunk, as the recorder does each second
        if finish:
            writer.finish()
    return path


@contextmanager
def replay_process(path: Path, *flags: str) -> Iterator[tuple[subprocess.Popen, dict[str, str]]]:
    """Run `odc replay PATH` on random loopback ports; yield it and its addresses."""
    command = [sys.executable, "-m", "odc.cli", "replay", str(path), "--quiet",
               "--pub", "tcp://127.0.0.1:*", "--cmd", "tcp://127.0.0.1:*", *flags]
    with serving_process(command, 2) as served:
        yield served

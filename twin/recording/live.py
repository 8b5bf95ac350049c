"""``odc run --record``: a recorder thread inside the twin's process, fed by its own stream.

The twin's PUB socket binds one more endpoint, ``inproc://`` (in-process, no network, no
encryption), and a SUB socket owned by the recorder thread connects to it. So the
recording gets exactly the frames every subscriber gets, and the twin's loop does nothing
more per step than hand libzmq one more reference to each message it already sends
(libzmq shares a message's buffer among its subscribers). Compression and file writes
run in the recorder thread; zstd and lz4 release the GIL while they work.

Like any subscriber, a recorder that cannot keep up loses whole messages (its queue is
bounded: ``RECEIVE_QUEUE``); the recording counts them as gaps. A write failure (disk
full, an unwritable path) stops the recorder, never the twin: the server's loop asks
``failure()`` each pass and raises the ``recording_stopped`` alarm once.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

from twin.recording.format import CHANNELS
from twin.recording.writer import Recorder

log = logging.getLogger("odc.recording")

QUEUE_BYTES = 256 << 20
"""About how much the recorder's queue may hold, in states: it absorbs the bursts of a twin
stepping as fast as it can (``--fast``), whose thread then holds the GIL most of the time,
and a disk that stalls for a while. Past it whole messages drop, and are counted."""
MIN_QUEUE = 50
MAX_QUEUE = 100_000
"""The queue in messages (ZeroMQ counts messages, not bytes): ``QUEUE_BYTES`` over a state's
size, within these bounds; 179 starlink states (1.4 MB each), 15,000 of the default
scenario's (17 kB). The inproc pipe adds the twin's PUB high-water mark (50)."""
CLOSE_TIMEOUT_S = 30.0
"""How long the twin waits, when it stops, for the recorder to write what is queued and
finish the file."""
_endpoints = itertools.count(1)


class LiveRecording:
    """A recorder thread fed from a twin's PUB socket (``TwinServer.recording``'s hook).

    Call from the thread that runs the server (it binds on the server's PUB socket).

    Args:
        pub: The server's PUB socket.
        context: Its ZeroMQ context (inproc endpoints live inside one context).
        recorder: The recorder to feed; this object owns it from now on.
        queue: The SUB's receive queue, messages.
        published: The server's next ``seq`` per topic, read when the twin stops: states
            that overflowed the queue at the very end leave no gap to count otherwise.
    """

    def __init__(self, pub: zmq.Socket, context: zmq.Context, recorder: Recorder,
                 queue: int = MIN_QUEUE,
                 published: Callable[[], dict[bytes, int]] | None = None) -> None:
        self.recorder = recorder
        self.queue = queue
        self._published = published
        self.endpoint = f"inproc://odc-record-{next(_endpoints)}"
        self._reported = False
        self._stop = threading.Event()
        self._ready = threading.Event()
        pub.bind(self.endpoint)
        self._thread = threading.Thread(target=self._run, args=(context,),
                                        name="odc-recorder", daemon=True)
        self._thread.start()
        # The SUB is connected and subscribed before the twin publishes anything, so the
        # recording starts with the twin's first meta.
        if not self._ready.wait(10):
            raise RuntimeError("the recorder thread did not start within 10 s")

    @classmethod
    def attach(cls, server: Any, recorder: Recorder) -> LiveRecording:
        """Record ``server``'s stream (a ``TwinServer``) and set its ``recording`` hook."""
        state_bytes = sum(f.array.nbytes for f in server.engine.fields) or 1
        queue = min(MAX_QUEUE, max(MIN_QUEUE, QUEUE_BYTES // state_bytes))
        live = cls(server.pub, server._context, recorder, queue, lambda: dict(server.seq))
        server.recording = live
        return live

    @classmethod
    def start(cls, server: Any, path: str | Path, every: int = 1) -> LiveRecording:
        """``odc run --record PATH --record-every N``: a recorder on ``server``'s stream.

        A path it cannot write is no error here: the recorder stops at once and the
        twin's first pass raises the ``recording_stopped`` alarm, as for a disk that fills.

        Raises:
            ValueError: ``every`` below 1.
            RecordingError: ``path`` exists (a recording is never overwritten).
        """
        return cls.attach(server, Recorder(path, recorder="odc run --record", every=every))

    def _run(self, context: zmq.Context) -> None:
        sub = context.socket(zmq.SUB)
        try:
            sub.setsockopt(zmq.LINGER, 0)
            sub.setsockopt(zmq.RCVHWM, self.queue)
            for topic in CHANNELS:  # not the selective streams (sub/...): clients' own
                sub.setsockopt(zmq.SUBSCRIBE, topic)
            sub.connect(self.endpoint)
            self._ready.set()
            self._pump(sub)
        except Exception as exc:  # a bug of ours must stop the recording, not the twin
            log.exception("recorder thread failed")
            if self.recorder.error is None:
                self.recorder.error = f"recorder failed: {type(exc).__name__}: {exc}"
        finally:
            self._ready.set()
            sub.close(linger=0)
            self.recorder.close()

    def _pump(self, sub: zmq.Socket) -> None:
        recorder = self.recorder
        while recorder.recording:
            if self._stop.is_set():
                # The twin has stopped publishing: take what is queued, then finish.
                while recorder.recording:
                    try:
                        frames = sub.recv_multipart(zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    recorder.write(frames, time.time_ns())
                if self._published is not None:
                    recorder.count_lost_tail(self._published())
                return
            timeout_ms = min(100.0, 1000.0 * recorder.seconds_to_next_tick())
            if sub.poll(timeout_ms, zmq.POLLIN):
                # A burst is written message by message, with the flush checked between.
                for _ in range(1000):
                    try:
                        frames = sub.recv_multipart(zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    recorder.write(frames, time.time_ns())
                    if not recorder.recording:
                        return
            recorder.tick()

    def failure(self) -> str | None:
        """Why recording stopped, the first time it is asked after it did; else None."""
        if self._reported or self.recorder.error is None:
            return None
        self._reported = True
        return (f"recording stopped: {self.recorder.error}; the twin runs on without it (what "
                "was written is readable; odc record --recover makes a cut file whole)")

    def close(self) -> None:
        """Write what is queued, finish the file and end the thread (the twin stops)."""
        self._stop.set()
        self._thread.join(CLOSE_TIMEOUT_S)
        if self._thread.is_alive():
            log.error("the recorder did not finish within %g s; the recording may lack its "
                      "index (odc record --recover)", CLOSE_TIMEOUT_S)
        log.info("recording %s: %s", self.recorder.path, self.recorder.stats.line())

"""Where telemetry comes from: UDP datagrams, a TCP stream, the host's own sensors, a recording.

Packet sources return raw bytes and never decode; ``bridge.ccsds`` does that. Every read
takes a timeout, so a silent source never hangs the bridge.

Recording format (``.odcrec``): the magic line ``ODCREC1\\n``, then one record per packet
or stream chunk: ``<f8 arrival wall time (POSIX s)``, ``<u4 byte count``, the bytes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import psutil

from twin.core.constants import KELVIN_PER_CELSIUS
from twin.core.ratelog import RateLimitedLog

log = logging.getLogger("odc.bridge")

MAX_DATAGRAMS_PER_READ = 8192
# One UDP read stops after this many bytes: 8192 datagrams of 64 KiB arriving as fast as
# they are drained would otherwise put 512 MiB into one read (and as much again decoding).
UDP_READ_BYTES = 4 << 20
UDP_RECEIVE_BUFFER_BYTES = 8 << 20
TCP_RECEIVE_BUFFER_BYTES = 8 << 20
# Listen mode: connections served at once; one more is accepted and closed at once.
TCP_MAX_CONNECTIONS = 16
# select() watches descriptors below 1024 only; stay far from that.
TCP_MAX_CONNECTIONS_LIMIT = 256
# A connection without a byte for this long is closed: a half-open socket or a slowloris
# must not hold a slot. Testbeds send housekeeping at 1 Hz or faster.
TCP_IDLE_TIMEOUT_S = 30.0
# One recv per ready connection per read, at most this: bounds what one read holds
# (16 x 256 KiB = 4 MiB) and shares the reads fairly between connections.
TCP_READ_BYTES_PER_CONNECTION = 256 << 10
TCP_ACCEPTS_PER_READ = 64
CLOSE_REASONS = ("peer", "idle", "error")
RECORD_MAGIC = b"ODCREC1\n"
_RECORD_HEAD = struct.Struct("<dI")


def parse_host_port(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``"HOST:PORT"`` or ``"PORT"`` -> (host, port); raises ValueError naming the text."""
    host, _, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"{text!r} is not HOST:PORT") from None
    if not 0 <= number <= 65535:
        raise ValueError(f"port {number} in {text!r} outside 0..65535")
    return host or default_host, number


class UdpSource:
    """Receives one CCSDS packet per datagram on a bound UDP socket."""

    def __init__(self, bind: str) -> None:
        host, port = parse_host_port(bind)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with contextlib.suppress(OSError):  # the kernel may cap it; a smaller buffer still works
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER_BYTES)
        self.sock.bind((host, port))
        self.sock.setblocking(False)
        self.address = self.sock.getsockname()

    def read(self, timeout_s: float) -> list[bytes]:
        """Datagrams that arrived, waiting at most ``timeout_s`` for the first.

        At most ``MAX_DATAGRAMS_PER_READ`` datagrams and ``UDP_READ_BYTES`` bytes; the rest
        wait in the kernel for the next read.
        """
        ready, _, _ = select.select([self.sock], [], [], timeout_s)
        if not ready:
            return []
        out: list[bytes] = []
        recv = self.sock.recv
        n_bytes = 0
        for _ in range(MAX_DATAGRAMS_PER_READ):
            try:
                datagram = recv(65536)
            except BlockingIOError:
                break
            out.append(datagram)
            n_bytes += len(datagram)
            if n_bytes > UDP_READ_BYTES - 65536:  # the next could pass the cap
                break
        return out

    def close(self) -> None:
        self.sock.close()


@dataclass
class StreamChunk:
    """Bytes of one TCP connection, in arrival order.

    Attributes:
        conn_id: The connection's number; never reused, so framing state keyed by it
            cannot leak from one connection into the next.
        data: The bytes (may be empty when only ``closed`` is news).
        closed: The connection ended after these bytes: its framing state can go.
    """

    conn_id: int
    data: bytes
    closed: bool = False


@dataclass
class _Connection:
    sock: socket.socket
    conn_id: int
    peer: str
    last_rx_s: float  # monotonic time of the last bytes (or of the accept)


class TcpSource:
    """A TCP byte stream: connecting to a testbed, or accepting up to ``max_connections``.

    Each connection is read on its own: one ``recv`` of at most
    ``TCP_READ_BYTES_PER_CONNECTION`` per ready connection per read, so a flooding peer
    cannot starve a quiet one, and no read returns more than
    ``max_connections * TCP_READ_BYTES_PER_CONNECTION`` bytes. A connection silent for
    ``idle_timeout_s`` is closed (a half-open socket or a slowloris must not hold a
    slot); connections beyond ``max_connections`` are accepted and closed at once.
    Every close is counted by reason (``status()``). The client mode reconnects after the
    peer goes away.

    Args:
        address: ``HOST:PORT`` to connect to, or to listen on with ``listen``.
        listen: Accept connections instead of connecting.
        max_connections: Connections served at once (listen mode).
        idle_timeout_s: Close a connection after this many seconds without a byte.
    """

    def __init__(self, address: str, *, listen: bool = False,
                 max_connections: int = TCP_MAX_CONNECTIONS,
                 idle_timeout_s: float = TCP_IDLE_TIMEOUT_S) -> None:
        if not 1 <= max_connections <= TCP_MAX_CONNECTIONS_LIMIT:
            raise ValueError(f"max_connections must be 1..{TCP_MAX_CONNECTIONS_LIMIT}, "
                             f"got {max_connections}")
        if not idle_timeout_s > 0:
            raise ValueError(f"idle_timeout_s must be > 0, got {idle_timeout_s}")
        self.host, self.port = parse_host_port(address)
        self.listen = listen
        self.max_connections = max_connections if listen else 1
        self.idle_timeout_s = idle_timeout_s
        self.conns: dict[int, _Connection] = {}
        self.server: socket.socket | None = None
        self.connects = 0
        self.refused_full = 0
        self.accept_errors = 0
        self.closed = dict.fromkeys(CLOSE_REASONS, 0)
        self.bytes_received = 0
        self.events = RateLimitedLog(log)
        self._next_id = 0
        self._next_try = 0.0
        if listen:
            self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.server.bind((self.host, self.port))
            self.server.listen(self.max_connections)
            self.server.setblocking(False)
            self.port = self.server.getsockname()[1]

    @property
    def connected(self) -> bool:
        return bool(self.conns)

    def status(self) -> dict[str, Any]:
        """Connection counters (for the status line and the ingest header)."""
        return {"open": len(self.conns), "accepted": self.connects,
                "refused_full": self.refused_full, "accept_errors": self.accept_errors,
                "closed": dict(self.closed), "bytes_received": self.bytes_received}

    def read(self, timeout_s: float) -> bytes:
        """Bytes that arrived (possibly b""), waiting at most ``timeout_s``.

        All connections' bytes run together here; a reader that frames packets and may
        face several connections uses ``read_chunks``.
        """
        return b"".join(chunk.data for chunk in self.read_chunks(timeout_s))

    def read_chunks(self, timeout_s: float) -> list[StreamChunk]:
        """What arrived on each connection, waiting at most ``timeout_s`` for anything."""
        out: list[StreamChunk] = []
        self._close_idle(time.monotonic(), out)
        if self.server is None and not self.conns:
            self._connect(timeout_s)
            return out
        watched = [c.sock for c in self.conns.values()]
        if self.server is not None:
            watched.append(self.server)
        ready, _, _ = select.select(watched, [], [], timeout_s)
        if not ready:
            return out
        now = time.monotonic()
        ready_set = set(ready)
        for conn in list(self.conns.values()):
            if conn.sock not in ready_set:
                continue
            try:
                data = conn.sock.recv(TCP_READ_BYTES_PER_CONNECTION)
            except BlockingIOError:
                continue
            except OSError as exc:  # reset by peer and the like
                self._close(conn, "error", out, f"{type(exc).__name__}")
                continue
            if not data:
                self._close(conn, "peer", out)
                continue
            conn.last_rx_s = now
            self.bytes_received += len(data)
            out.append(StreamChunk(conn.conn_id, data))
        if self.server is not None and self.server in ready_set:
            self._accept(now)
        return out

    def _accept(self, now: float) -> None:
        assert self.server is not None
        for _ in range(TCP_ACCEPTS_PER_READ):  # a connect flood cannot starve the reads
            try:
                sock, peer = self.server.accept()
            except BlockingIOError:
                return
            except OSError as exc:  # out of file descriptors, aborted handshakes
                self.accept_errors += 1
                self.events.log("accept_error", "tcp accept failed: %s", exc)
                return
            if len(self.conns) >= self.max_connections:
                sock.close()
                self.refused_full += 1
                self.events.log("refused_full", "tcp connection from %s:%s refused: %d "
                                "connections open (the limit)", peer[0], peer[1],
                                len(self.conns))
                continue
            self._register(sock, f"{peer[0]}:{peer[1]}", now)

    def _connect(self, timeout_s: float) -> None:
        if time.monotonic() < self._next_try:
            time.sleep(min(timeout_s, 0.05))
            return
        try:
            sock = socket.create_connection((self.host, self.port), timeout=timeout_s)
        except OSError:
            self._next_try = time.monotonic() + 0.5  # retry twice a second, quietly
            time.sleep(min(timeout_s, 0.05))
            return
        self._register(sock, f"{self.host}:{self.port}", time.monotonic())

    def _register(self, sock: socket.socket, peer: str, now: float) -> None:
        sock.setblocking(False)
        with contextlib.suppress(OSError):  # the kernel may cap it; a smaller buffer works
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, TCP_RECEIVE_BUFFER_BYTES)
        self._next_id += 1
        self.conns[self._next_id] = _Connection(sock, self._next_id, peer, now)
        self.connects += 1
        log.info("tcp connection %d from %s (%d open)", self._next_id, peer, len(self.conns))

    def _close_idle(self, now: float, out: list[StreamChunk]) -> None:
        for conn in list(self.conns.values()):
            if now - conn.last_rx_s > self.idle_timeout_s:
                self._close(conn, "idle", out, f"silent for {now - conn.last_rx_s:.1f} s")

    def _close(self, conn: _Connection, reason: str, out: list[StreamChunk],
               detail: str = "") -> None:
        conn.sock.close()
        del self.conns[conn.conn_id]
        self.closed[reason] += 1
        out.append(StreamChunk(conn.conn_id, b"", closed=True))
        if reason != "peer":
            self.events.log(f"closed_{reason}", "tcp connection %d from %s closed (%s): %s",
                            conn.conn_id, conn.peer, reason, detail)

    def tick(self) -> None:
        """Write the summaries of rate-limited log lines (call about once a second)."""
        self.events.tick()

    def close(self) -> None:
        for conn in self.conns.values():
            conn.sock.close()
        self.conns.clear()
        if self.server is not None:
            self.server.close()


class Recorder:
    """Appends raw packets (or stream chunks) with their arrival time to an ``.odcrec`` file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.file: BinaryIO = self.path.open("wb")
        self.file.write(RECORD_MAGIC)
        self.records = 0

    def write(self, data: bytes, t_rx: float) -> None:
        self.file.write(_RECORD_HEAD.pack(t_rx, len(data)))
        self.file.write(data)
        self.records += 1

    def close(self) -> None:
        self.file.close()


def read_recording(path: str | Path) -> Iterator[tuple[float, bytes]]:
    """Yield (arrival wall time, bytes) records; a truncated tail ends the file quietly."""
    with Path(path).open("rb") as f:
        if f.read(len(RECORD_MAGIC)) != RECORD_MAGIC:
            raise ValueError(f"{path}: not an .odcrec recording (magic {RECORD_MAGIC!r} missing)")
        while True:
            head = f.read(_RECORD_HEAD.size)
            if len(head) < _RECORD_HEAD.size:
                return
            t_rx, size = _RECORD_HEAD.unpack(head)
            data = f.read(size)
            if len(data) < size:
                log.warning("%s: last record truncated (%d of %d bytes)", path, len(data), size)
                return
            yield t_rx, data


class ReplaySource:
    """Plays a recording back at original speed times ``speed`` (0 = as fast as possible).

    ``read`` returns the records now due, each with its arrival time mapped onto the
    present (``t_rx' = start + (t_rx - t_first) / speed``), so a live twin accepts them.
    """

    def __init__(self, path: str | Path, speed: float = 1.0) -> None:
        if speed < 0:
            raise ValueError(f"replay speed must be >= 0, got {speed}")
        self.speed = speed
        self._records = read_recording(path)
        self._next: tuple[float, bytes] | None = next(self._records, None)
        self._t0 = self._next[0] if self._next else 0.0
        self._start = time.time()
        self.finished = self._next is None

    def retime(self, t: Any) -> Any:
        """Map original times (float or array, POSIX s) onto the replay's wall clock."""
        if self.speed == 0:
            return t - self._t0 + self._start
        return self._start + (t - self._t0) / self.speed

    def read(self, timeout_s: float) -> list[tuple[float, bytes]]:
        """Records due by now (waiting at most ``timeout_s`` for the next one)."""
        out: list[tuple[float, bytes]] = []
        deadline = time.time() + timeout_s
        while self._next is not None and len(out) < MAX_DATAGRAMS_PER_READ:
            due = self.retime(self._next[0]) if self.speed else time.time()
            now = time.time()
            if due > now:
                if out:
                    break
                if due > deadline:
                    time.sleep(max(0.0, deadline - now))
                    break
                time.sleep(due - now)
            out.append((self.retime(self._next[0]), self._next[1]))
            self._next = next(self._records, None)
        self.finished = self._next is None
        return out


class HostSensors:
    """The machine the bridge runs on, as a mirrored compute node.

    Reads psutil (CPU utilization, frequency, load, memory, temperatures where exposed),
    Intel RAPL package energy from /sys/class/powercap (power where the kernel allows it),
    and NVIDIA GPUs through NVML when the ``pynvml`` module (nvidia-ml-py) and a GPU are
    present. Names carry SI units; temperatures are converted to kelvin.
    """

    def __init__(self, powercap_root: str = "/sys/class/powercap", nvml: Any = None) -> None:
        psutil.cpu_percent(None)  # the first call primes the counter
        self._rapl = sorted(Path(powercap_root).glob("intel-rapl:[0-9]*/energy_uj"))
        self._rapl_last: tuple[float, list[int]] | None = None
        self._nvml = nvml if nvml is not None else _load_nvml()
        self._gpus: list[Any] = []
        if self._nvml is not None:
            try:
                self._nvml.nvmlInit()
                count = self._nvml.nvmlDeviceGetCount()
                self._gpus = [self._nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            except Exception as exc:  # NVML present but no driver or GPU: no GPU values
                log.info("NVML unavailable: %s", exc)
                self._gpus = []

    @property
    def n_gpus(self) -> int:
        return len(self._gpus)

    def sample(self) -> dict[str, float]:
        """One sample of everything this machine exposes (absent sensors are left out)."""
        out: dict[str, float] = {
            "cpu_util_frac": psutil.cpu_percent(None) / 100.0,
            "load_1m": os.getloadavg()[0],
            "mem_used_frac": psutil.virtual_memory().percent / 100.0,
        }
        freq = psutil.cpu_freq()
        if freq is not None and freq.current > 0:
            out["cpu_freq_hz"] = freq.current * 1e6
        temps = getattr(psutil, "sensors_temperatures", lambda: {})()
        readings = [t.current for group in temps.values() for t in group if t.current]
        if readings:
            out["cpu_temp_k"] = max(readings) + KELVIN_PER_CELSIUS
        power = self._rapl_power_w()
        if power is not None:
            out["cpu_package_power_w"] = power
        if self._gpus:
            out.update(self._gpu_sample())
        return out

    def _rapl_power_w(self) -> float | None:
        if not self._rapl:
            return None
        try:
            energy = [int(p.read_text()) for p in self._rapl]
        except (OSError, ValueError):  # unreadable without privileges on many kernels
            self._rapl = []
            return None
        now = time.monotonic()
        last, self._rapl_last = self._rapl_last, (now, energy)
        if last is None or now <= last[0]:
            return None
        # Counters wrap; a negative difference is a wrap and that interval is skipped.
        delta = [e - e0 for e, e0 in zip(energy, last[1], strict=True)]
        if any(d < 0 for d in delta):
            return None
        return sum(delta) * 1e-6 / (now - last[0])

    def _gpu_sample(self) -> dict[str, float]:
        nv = self._nvml
        power = util = 0.0
        temp = 0.0
        for handle in self._gpus:
            power += nv.nvmlDeviceGetPowerUsage(handle) * 1e-3  # mW -> W
            util += nv.nvmlDeviceGetUtilizationRates(handle).gpu / 100.0
            temp = max(temp, float(nv.nvmlDeviceGetTemperature(handle, nv.NVML_TEMPERATURE_GPU)))
        return {"gpu_power_w": power, "gpu_util_frac": util / len(self._gpus),
                "gpu_temp_k": temp + KELVIN_PER_CELSIUS}


def _load_nvml() -> Any:
    try:
        import pynvml  # optional: nvidia-ml-py
    except ImportError:
        return None
    return pynvml

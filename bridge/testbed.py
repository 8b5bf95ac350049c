"""A flatsat stand-in: the host's real CPU load as payload power, a lumped thermal response.

The "hardware" is two thermal nodes. The compute node (GPU board on its cold plate,
heat capacity ``C_c``) takes the payload's electrical power ``P`` as heat and passes it
through a conductance ``G`` to the radiator (``C_r``), which radiates to a sink (space or
a chamber shroud) at ``T_sink``:

    C_c dT_c/dt = P - G (T_c - T_r)
    C_r dT_r/dt = G (T_c - T_r) - eps sigma A (T_r^4 - T_sink^4)

``P = P_idle + u (P_max - P_idle)`` with ``u`` the host's CPU utilization (psutil). The
model is integrated with explicit Euler at sub-steps far below the smallest time
constant. Packets follow ``assets/testbeds/flatsat.toml``.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import psutil

from bridge.ccsds import SEQ_MODULO, encode_packets
from bridge.definitions import Definitions, load_definitions
from twin.core.constants import KELVIN_PER_CELSIUS, STEFAN_BOLTZMANN_W_M2_K4

MAX_SUBSTEP_S = 0.5


@dataclass(frozen=True)
class FlatsatParams:
    """The stand-in hardware's parameters (SI)."""

    idle_power_w: float = 40.0
    max_power_w: float = 300.0
    c_compute_j_k: float = 3000.0
    c_radiator_j_k: float = 6000.0
    g_compute_radiator_w_k: float = 20.0
    radiator_area_m2: float = 1.2
    radiator_emissivity: float = 0.88
    sink_temp_k: float = 250.0
    initial_temp_k: float = 293.15


class FlatsatModel:
    """The two-node thermal response of the flatsat (state in kelvin)."""

    def __init__(self, params: FlatsatParams | None = None) -> None:
        self.p = params or FlatsatParams()
        self.temp_compute_k = self.p.initial_temp_k
        self.temp_radiator_k = self.p.initial_temp_k
        self.power_w = self.p.idle_power_w

    def power_for(self, util_frac: float) -> float:
        p = self.p
        return p.idle_power_w + min(max(util_frac, 0.0), 1.0) * (p.max_power_w - p.idle_power_w)

    def step(self, dt_s: float, util_frac: float) -> None:
        """Advance ``dt_s`` seconds with the payload at ``util_frac`` utilization."""
        p = self.p
        self.power_w = self.power_for(util_frac)
        n = max(1, int(np.ceil(dt_s / MAX_SUBSTEP_S)))
        h = dt_s / n
        radiate = p.radiator_emissivity * STEFAN_BOLTZMANN_W_M2_K4 * p.radiator_area_m2
        tc, tr = self.temp_compute_k, self.temp_radiator_k
        for _ in range(n):
            q = p.g_compute_radiator_w_k * (tc - tr)
            tc += h * (self.power_w - q) / p.c_compute_j_k
            tr += h * (q - radiate * (tr**4 - p.sink_temp_k**4)) / p.c_radiator_j_k
        self.temp_compute_k, self.temp_radiator_k = tc, tr


def host_utilization() -> float:
    """Host CPU utilization since the last call, 0..1 (psutil)."""
    return psutil.cpu_percent(None) / 100.0


class Testbed:
    """Builds the flatsat's packets each tick and hands them to ``send``.

    Args:
        send: Called with the bytes of each packet.
        definitions: Packet definitions (default: bundled flatsat).
        model: The thermal model.
        utilization: Returns the payload utilization 0..1 (default: host CPU).
        status_period_s: Period of the slow ``status`` packet.
    """

    def __init__(self, send: Callable[[bytes], None], definitions: Definitions | None = None,
                 model: FlatsatModel | None = None,
                 utilization: Callable[[], float] = host_utilization,
                 status_period_s: float = 1.0) -> None:
        self.send = send
        self.defs = definitions or load_definitions("flatsat")
        self.hk = self.defs.by_name("hk")
        self.status_packet = self.defs.by_name("status")
        self.model = model or FlatsatModel()
        self.utilization = utilization
        self.status_period_s = status_period_s
        self.seq = {self.hk.apid: 0, self.status_packet.apid: 0}
        self.started = time.time()
        self._last_tick: float | None = None
        self._next_status = 0.0
        self.sent = 0
        host_utilization()  # prime psutil's counter

    def tick(self, now: float | None = None) -> None:
        """Measure, advance the model to ``now`` and send the packets due."""
        now = time.time() if now is None else now
        util = self.utilization()
        if self._last_tick is not None:
            self.model.step(max(0.0, now - self._last_tick), util)
        else:
            self.model.power_w = self.model.power_for(util)
        self._last_tick = now
        m = self.model
        self._emit(self.hk, now, {
            "util_frac": util, "compute_power_w": m.power_w,
            "cold_plate_temp_c": m.temp_compute_k - KELVIN_PER_CELSIUS,
            "radiator_temp_c": m.temp_radiator_k - KELVIN_PER_CELSIUS})
        if now >= self._next_status:
            self._next_status = now + self.status_period_s
            freq = psutil.cpu_freq()
            self._emit(self.status_packet, now, {
                "uptime_s": now - self.started,
                "cpu_freq_hz": freq.current * 1e6 if freq else 0.0,
                "load_1m": psutil.getloadavg()[0],
                "mem_used_frac": psutil.virtual_memory().percent / 100.0})

    def _emit(self, packet, now: float, values: dict[str, float]) -> None:
        seq = self.seq[packet.apid]
        self.seq[packet.apid] = (seq + 1) % SEQ_MODULO
        rows = encode_packets(packet, {k: np.array([v]) for k, v in values.items()},
                              np.array([seq]), np.array([now]))
        self.send(rows[0].tobytes())
        self.sent += 1


class UdpSender:
    """Sends each packet as one datagram."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def __call__(self, data: bytes) -> None:
        # Nobody listening (ICMP unreachable) is fine: telemetry is fire and forget.
        with contextlib.suppress(OSError):
            self.sock.sendto(data, self.target)

    def close(self) -> None:
        self.sock.close()


class TcpServerSender:
    """Serves the packet stream to one TCP client at a time (a bridge with ``--tcp``)."""

    def __init__(self, bind: tuple[str, int]) -> None:
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(bind)
        self.server.listen(1)
        self.server.setblocking(False)
        self.address = self.server.getsockname()
        self.conn: socket.socket | None = None

    def __call__(self, data: bytes) -> None:
        if self.conn is None:
            try:
                self.conn, _ = self.server.accept()
                self.conn.setblocking(True)
            except BlockingIOError:
                return
        try:
            self.conn.sendall(data)
        except OSError:
            self.conn.close()
            self.conn = None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.server.close()

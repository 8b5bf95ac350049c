"""A flatsat stand-in: the host's real CPU load as payload power, a lumped thermal response.

The "hardware" is two thermal nodes. The compute node (GPU board on its cold plate,
heat capacity ``C_c``) takes the payload's electrical power ``P`` as heat and passes it
through a conductance ``G`` to the radiator (``C_r``), which radiates to a sink (space or
a chamber shroud) at ``T_sink``:

    C_c dT_c/dt = P - G (T_c - T_r)
    C_r dT_r/dt = G (T_c - T_r) + P_h - eps sigma A (T_r^4 - T_sink^4)

``P = P_idle + u (P_max - P_idle)`` with ``u`` the host's CPU utilization (psutil). ``P_h``
is a radiator heater on a thermostat (on below ``heater_on_k``, off above ``heater_off_k``;
none in ``FlatsatParams()``, 20 W in the stand-in ``odc testbed`` runs, ``STAND_IN``). The
model is integrated with explicit Euler at sub-steps far below the smallest time
constant. Packets follow ``assets/testbeds/flatsat.toml``; each measured channel carries
the Gaussian noise its definition declares (``noise``), and ``--inject`` faults
(``bridge.testbed_faults``) make the stand-in develop a fault at a given time.
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
from bridge.testbed_faults import FaultEffects, Injection, effects_at
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
    heater_power_w: float = 0.0
    heater_on_k: float = 265.15
    heater_off_k: float = 270.15


STAND_IN = FlatsatParams(heater_power_w=20.0)
"""The stand-in ``odc testbed`` runs: the flatsat with its 20 W radiator heater."""


class FlatsatModel:
    """The two-node thermal response of the flatsat (state in kelvin).

    ``radiator_frac`` and ``loop_frac`` scale the radiator's emission and the loop
    conductance, and ``heater_works`` says whether the heater's heat arrives (injected
    faults); ``heater_on`` is the thermostat's command, reported whatever the heater does.
    """

    def __init__(self, params: FlatsatParams | None = None) -> None:
        self.p = params or FlatsatParams()
        self.temp_compute_k = self.p.initial_temp_k
        self.temp_radiator_k = self.p.initial_temp_k
        self.power_w = self.p.idle_power_w
        self.radiator_frac = 1.0
        self.loop_frac = 1.0
        self.heater_works = True
        self.heater_on = False

    @property
    def heater_command_w(self) -> float:
        """The heater's commanded power, as its controller reports it."""
        return self.p.heater_power_w if self.heater_on else 0.0

    def power_for(self, util_frac: float) -> float:
        p = self.p
        return p.idle_power_w + min(max(util_frac, 0.0), 1.0) * (p.max_power_w - p.idle_power_w)

    def step(self, dt_s: float, util_frac: float) -> None:
        """Advance ``dt_s`` seconds with the payload at ``util_frac`` utilization."""
        p = self.p
        self.power_w = self.power_for(util_frac)
        n = max(1, int(np.ceil(dt_s / MAX_SUBSTEP_S)))
        h = dt_s / n
        radiate = (p.radiator_emissivity * STEFAN_BOLTZMANN_W_M2_K4 * p.radiator_area_m2
                   * self.radiator_frac)
        conductance = p.g_compute_radiator_w_k * self.loop_frac
        tc, tr = self.temp_compute_k, self.temp_radiator_k
        for _ in range(n):
            if p.heater_power_w > 0.0:
                if tr < p.heater_on_k:
                    self.heater_on = True
                elif tr > p.heater_off_k:
                    self.heater_on = False
            heat = self.heater_command_w if self.heater_works else 0.0
            q = conductance * (tc - tr)
            tc += h * (self.power_w - q) / p.c_compute_j_k
            tr += h * (q + heat - radiate * (tr**4 - p.sink_temp_k**4)) / p.c_radiator_j_k
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
        injections: Faults to develop (``bridge.testbed_faults``), timed from the first tick.
        seed: Seed of the sensor noise (the definition's ``noise`` per parameter).
        noise: Whether to add that noise (False: exact values, for tests of the path).
    """

    def __init__(self, send: Callable[[bytes], None], definitions: Definitions | None = None,
                 model: FlatsatModel | None = None,
                 utilization: Callable[[], float] = host_utilization,
                 status_period_s: float = 1.0, injections: tuple[Injection, ...] = (),
                 seed: int | None = None, noise: bool = True) -> None:
        self.send = send
        self.defs = definitions or load_definitions("flatsat")
        self.hk = self.defs.by_name("hk")
        self.status_packet = self.defs.by_name("status")
        self.control = self.defs.by_name("thermal_control")
        self.model = model or FlatsatModel(STAND_IN)
        self.injections = tuple(injections)
        self.noise = {p.name: p.noise for p in self.hk.parameters if p.noise and noise}
        self.rng = np.random.default_rng(seed)
        self._first_tick: float | None = None
        self._stuck_radiator_c: float | None = None
        self.utilization = utilization
        self.status_period_s = status_period_s
        self.seq = {self.hk.apid: 0, self.status_packet.apid: 0, self.control.apid: 0}
        self.started = time.time()
        self._last_tick: float | None = None
        self._next_status = 0.0
        self.sent = 0
        host_utilization()  # prime psutil's counter

    def measure(self, now: float) -> dict[str, float]:
        """Advance the model to ``now`` and read the housekeeping channels as sensors do.

        The readings carry the definition's noise and the injected sensor faults; the
        model's own state stays the truth (``self.model``).
        """
        util = self.utilization()
        if self._first_tick is None:
            self._first_tick = now
        effects = effects_at(self.injections, now - self._first_tick)
        m = self.model
        m.radiator_frac, m.loop_frac = effects.radiator_frac, effects.loop_frac
        m.heater_works = effects.heater_works
        if self._last_tick is not None:
            m.step(max(0.0, now - self._last_tick), util)
        else:
            m.power_w = m.power_for(util)
        self._last_tick = now
        return self._sensors(util, effects)

    def _sensors(self, util: float, effects: FaultEffects) -> dict[str, float]:
        m = self.model
        values = {"util_frac": util, "compute_power_w": m.power_w + effects.power_offset_w,
                  "cold_plate_temp_c": m.temp_compute_k - KELVIN_PER_CELSIUS
                  + effects.compute_bias_k,
                  "radiator_temp_c": m.temp_radiator_k - KELVIN_PER_CELSIUS,
                  "heater_power_w": m.heater_command_w}
        for name, sigma in self.noise.items():
            if name in values:
                values[name] += float(self.rng.normal(0.0, sigma))
        if effects.stuck_radiator:
            if self._stuck_radiator_c is None:
                self._stuck_radiator_c = values["radiator_temp_c"]
            values["radiator_temp_c"] = self._stuck_radiator_c
        # What the wire can carry: the definition's bounds.
        for p in (*self.hk.parameters, *self.control.parameters):
            if p.name in values:
                values[p.name] = min(max(values[p.name], p.min), p.max)
        return values

    def tick(self, now: float | None = None) -> None:
        """Measure, advance the model to ``now`` and send the packets due."""
        now = time.time() if now is None else now
        readings = self.measure(now)
        heater = readings.pop("heater_power_w")
        self._emit(self.hk, now, readings)
        self._emit(self.control, now, {"heater_power_w": heater})
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

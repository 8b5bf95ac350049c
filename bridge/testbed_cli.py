"""A flatsat stand-in sending CCSDS packets over UDP, built from this host's real CPU load.

``odc testbed`` sends PUS-C housekeeping packets (``assets/testbeds/flatsat.toml``) to
``odc bridge`` ten times a second: the host's CPU utilization as the payload's compute
power and a lumped two-node thermal response to it (``bridge.testbed``).

It speaks no ZeroMQ and never talks to the twin, so it takes no keys: ``odc bridge``
(``--key``/``--server-key``) is what connects to a twin that admits registered keys only.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = ("odc testbed sends CCSDS packets over UDP (or serves them over TCP) to odc "
                     "bridge only; it never talks to the twin, so it takes no keys: give "
                     "--key/--server-key to odc bridge instead.")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--udp", default=None, metavar="HOST:PORT",
                        help="send datagrams here (default 127.0.0.1:10015)")
    target.add_argument("--tcp-listen", metavar="HOST:PORT",
                        help="serve the packet stream over TCP instead (odc bridge --tcp)")
    parser.add_argument("--rate", type=float, default=10.0,
                        help="housekeeping packets per second (default %(default)s)")
    parser.add_argument("--util", type=float, default=None, metavar="FRAC",
                        help="fixed payload utilization 0..1 instead of the host's CPU load")
    parser.add_argument("--duration", type=float, default=None,
                        help="stop after this many seconds")
    parser.add_argument("--quiet", action="store_true", help="no status line")
    parser.add_argument("--inject", action="append", default=[], metavar="KIND@T",
                        help="develop fault KIND T seconds after the start (repeatable); KIND: "
                        "radiator, coolant, heater, stuck_sensor, biased_sensor, power_drift "
                        "(docs/models.md, \"State estimation and diagnosis\")")
    parser.add_argument("--no-noise", action="store_true",
                        help="send exact values (no sensor noise; the definition's noise "
                        "keys still say what a real sensor has)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the sensor noise (default: a fresh one each run)")


def run(args: argparse.Namespace) -> int:
    from bridge.sources import parse_host_port
    from bridge.testbed import KELVIN_PER_CELSIUS, TcpServerSender, Testbed, UdpSender
    from bridge.testbed_faults import parse_injection

    if not 0.0 < args.rate <= 1000.0:
        print(f"odc testbed: --rate {args.rate} outside (0, 1000]", file=sys.stderr)
        return 2
    if args.util is not None and not 0.0 <= args.util <= 1.0:
        print(f"odc testbed: --util {args.util} outside [0, 1]", file=sys.stderr)
        return 2
    try:
        injections = tuple(parse_injection(text) for text in args.inject)
    except ValueError as exc:
        print(f"odc testbed: {exc}", file=sys.stderr)
        return 2
    try:
        if args.tcp_listen:
            sender = TcpServerSender(parse_host_port(args.tcp_listen))
            where = "tcp://{}:{}".format(*sender.address)
        else:
            target = parse_host_port(args.udp or "127.0.0.1:10015")
            sender = UdpSender(target)
            where = f"udp://{target[0]}:{target[1]}"
    except (ValueError, OSError) as exc:
        print(f"odc testbed: {exc}", file=sys.stderr)
        return 2
    util = (lambda: args.util) if args.util is not None else None
    testbed = Testbed(sender, **({"utilization": util} if util else {}), injections=injections,
                      seed=args.seed, noise=not args.no_noise)
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    print(f"odc testbed: flatsat sending to {where} at {args.rate:g} Hz", file=sys.stderr,
          flush=True)
    for inj in injections:
        print(f"odc testbed: will inject {inj.kind} at {inj.at_s:g} s", file=sys.stderr,
              flush=True)
    period = 1.0 / args.rate
    started = next_tick = time.monotonic()
    next_status = started + 1.0
    try:
        while not stop["now"]:
            now = time.monotonic()
            if args.duration is not None and now - started >= args.duration:
                break
            if now < next_tick:
                time.sleep(next_tick - now)
                continue
            next_tick = max(next_tick + period, now)
            testbed.tick()
            if not args.quiet and now >= next_status:
                next_status += 1.0
                m = testbed.model
                print(f"odc testbed: {testbed.sent} packets, power {m.power_w:6.1f} W, "
                      f"cold plate {m.temp_compute_k - KELVIN_PER_CELSIUS:6.2f} C, radiator "
                      f"{m.temp_radiator_k - KELVIN_PER_CELSIUS:6.2f} C", file=sys.stderr,
                      flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        sender.close()
    return 0

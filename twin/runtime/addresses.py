"""ZeroMQ endpoint checking for every address flag: refuse what libzmq would misread.

libzmq reads a tcp port with ``atoi`` and keeps 16 bits of it, so ``tcp://127.0.0.1:99999``
binds port 34463 without a word; an endpoint is therefore checked here before any socket
sees it. `check_address` raises ``ValueError`` with a message that shows the accepted
forms; `address_argument` is the same check as an ``argparse`` type.
"""

from __future__ import annotations

import argparse

import zmq

TRANSPORTS = ("tcp", "ipc", "inproc")
"""Transports the twin's sockets use; the others libzmq knows (pgm, ws, ...) are refused."""
MAX_PORT = 65535
MAX_IPC_PATH_BYTES = 107
"""A Unix socket path is at most 107 bytes (``sun_path`` is 108 with its NUL)."""

_FORMS = "tcp://HOST:PORT (PORT 0..65535 or *), ipc://PATH or inproc://NAME"


def check_address(text: object) -> str:
    """Return ``text`` if it is a well-formed ZeroMQ endpoint, else raise ``ValueError``.

    Accepted: ``tcp://HOST:PORT`` where HOST is a name, an IPv4 address, ``*`` or an IPv6
    address in brackets and PORT is 0..65535 or ``*`` (any free port); ``ipc://PATH`` with
    a path of at most 107 bytes (``ipc://*`` too); ``inproc://NAME``.
    """
    if not isinstance(text, str):
        raise ValueError(f"an address must be a string like tcp://127.0.0.1:5555, got {text!r}")
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise ValueError(f"{text!r} is not a ZeroMQ address; write it like"
                         f" tcp://127.0.0.1:5555 ({_FORMS})")
    if scheme not in TRANSPORTS:
        raise ValueError(f"{text!r}: unknown transport {scheme!r}; the twin speaks {_FORMS}")
    if not rest or rest != rest.strip() or any(ch.isspace() or ord(ch) < 32 for ch in rest):
        raise ValueError(f"{text!r}: the part after {scheme}:// is empty or has blanks or"
                         f" control characters; expected {_FORMS}")
    if scheme == "tcp":
        _check_tcp(text, rest)
    elif scheme == "ipc" and len(rest.encode()) > MAX_IPC_PATH_BYTES:
        raise ValueError(f"{text!r}: an ipc path may have at most {MAX_IPC_PATH_BYTES} bytes,"
                         f" this one has {len(rest.encode())}")
    return text


def _check_tcp(text: str, rest: str) -> None:
    host, colon, port = rest.rpartition(":")
    if not colon or not host:
        raise ValueError(f"{text!r} has no host and port; write it like tcp://127.0.0.1:5555"
                         f" (or tcp://127.0.0.1:* for any free port)")
    if host.startswith("[") != host.endswith("]") or (host.count(":") and not
                                                      host.startswith("[")):
        raise ValueError(f"{text!r}: write an IPv6 host in brackets, like tcp://[::1]:5555")
    if port == "*":
        return
    if not port.isascii() or not port.isdigit() or int(port) > MAX_PORT:
        raise ValueError(f"{text!r}: port {port!r} is not a port number: expected 0..{MAX_PORT}"
                         f" or * (any free port)")


LOOPBACK_HOSTS = ("localhost", "[::1]")


def is_loopback(address: str) -> bool:
    """Whether a checked address reaches only this machine (ipc, inproc, or a loopback host).

    A wildcard (``*``, ``0.0.0.0``) or any other host is not: the twin listens there only
    once keys exist (the security issue), never before.
    """
    scheme, _, rest = address.partition("://")
    if scheme in ("ipc", "inproc"):
        return True
    host = rest.rpartition(":")[0]
    if host in LOOPBACK_HOSTS:
        return True
    parts = host.split(".")
    return (len(parts) == 4 and parts[0] == "127"
            and all(p.isascii() and p.isdigit() and int(p) <= 255 for p in parts))


def address_argument(text: str) -> str:
    """`check_address` as an ``argparse`` type: a bad address ends with usage and exit 2."""
    try:
        return check_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def bind_socket(sock: zmq.Socket, address: str, **options: int) -> None:
    """Bind ``sock`` to ``address`` with linger 0, IPv6 where the host is one, and
    ``options`` (ZeroMQ option names, lower case: ``sndhwm=50``).

    Raises:
        OSError: The address cannot be bound (in use, no such interface), saying which.
    """
    sock.setsockopt(zmq.LINGER, 0)
    if "://[" in address:  # an IPv6 host: libzmq binds IPv4 only unless told
        sock.setsockopt(zmq.IPV6, 1)
    for name, value in options.items():
        sock.setsockopt(getattr(zmq, name.upper()), value)
    try:
        sock.bind(address)
    except zmq.ZMQError as exc:
        raise OSError(f"cannot bind {address}: {exc}") from exc

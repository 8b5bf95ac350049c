"""What every client of the twin shares for keys: the flags, the CURVE options, and why a
handshake failed.

A client (``odc tui``, ``odc view``, ``odc bridge``, ``odc cmd``, ``odc.client``) that is
given ``--key NAME.key_secret --server-key server.key`` makes each of its sockets a CURVE
client (``twin.security.auth.connect_curve``) before it connects; without the flags nothing
changes. CURVE refusals are silent on the wire: the socket just keeps reconnecting. So a
``HandshakeWatch`` reads the socket's monitor and turns a failed handshake into one
sentence (the key is not registered, the twin wants a key, the server key is not this
twin's), which clients show instead of "no reply".
"""

from __future__ import annotations

import argparse
import contextlib
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.utils.monitor import recv_monitor_message

from twin.security.auth import connect_curve
from twin.security.keys import KeyFileError, load_public_key, load_secret_pair

HANDSHAKE_EVENTS = (zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH
                    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
"""The monitor events that say how a security handshake ended."""


@dataclass(frozen=True)
class ClientKeys:
    """A client's CURVE settings: its own secret key file and the twin's public key file."""

    key_file: Path
    server_key_file: Path

    @property
    def name(self) -> str:
        """The key's name as the twin's registry knows it (the file name before ``.key``)."""
        return self.key_file.name.removesuffix(".key_secret").removesuffix(".key")

    @classmethod
    def checked(cls, key_file: str | Path, server_key_file: str | Path) -> ClientKeys:
        """Both files, read once now so a wrong path fails at start, not in a worker thread.

        Raises:
            KeyFileError: A file is missing or not what its flag needs.
        """
        key_file, server_key_file = Path(key_file), Path(server_key_file)
        try:
            load_secret_pair(key_file)
        except KeyFileError as exc:
            raise KeyFileError(f"--key {exc}") from None
        try:
            load_public_key(server_key_file)
        except KeyFileError as exc:
            raise KeyFileError(f"--server-key {exc}") from None
        _, secret = zmq.auth.load_certificate(server_key_file)  # it read well just now
        if secret:
            # A secret file names its owner's public key too; given here it is surely a
            # mix-up, and the twin's secret must not travel to clients.
            raise KeyFileError(f"--server-key {server_key_file}: holds a secret key; give the "
                               "twin's public key file (server.key)")
        return cls(key_file, server_key_file)

    def apply(self, sock: zmq.Socket) -> None:
        """Make ``sock`` a CURVE client of the twin (call before it connects)."""
        connect_curve(sock, self.key_file, self.server_key_file)


def add_key_arguments(parser: argparse.ArgumentParser, needs: str = "") -> None:
    """``--key FILE --server-key FILE`` (both or neither) on a client's parser.

    Args:
        parser: The client's parser.
        needs: What the key must allow, said in the help (``a testbed:NAME role``).
    """
    group = parser.add_argument_group(
        "keys", "for a twin that admits registered keys only (odc keys new NAME; "
        "docs/security.md); give both or neither")
    group.add_argument("--key", metavar="NAME.key_secret",
                       help="this client's secret key file" + (f" ({needs})" if needs else ""))
    group.add_argument("--server-key", metavar="server.key",
                       help="the twin's public key file, from its key folder")


def keys_from_args(args: argparse.Namespace) -> ClientKeys | None:
    """The ``ClientKeys`` the flags name, or None without them.

    Raises:
        KeyFileError: One flag without the other, or a file that is not what it should be.
    """
    key, server_key = getattr(args, "key", None), getattr(args, "server_key", None)
    if key is None and server_key is None:
        return None
    if key is None or server_key is None:
        given, missing = ("--key", "--server-key") if key else ("--server-key", "--key")
        raise KeyFileError(f"{given} needs {missing} too: a client with a key gives "
                           "--key NAME.key_secret --server-key server.key (or neither)")
    return ClientKeys.checked(key, server_key)


class HandshakeWatch:
    """Why the twin refused a socket, from the socket's monitor; ``""`` while nothing failed.

    Args:
        sock: The client socket (watched from before it connects, so no event is missed).
        address: The twin's address, for the sentences.
        keys: The socket's keys, or None for a plain socket.
    """

    def __init__(self, sock: zmq.Socket, address: str, keys: ClientKeys | None) -> None:
        self.address = address
        self.keys = keys
        self.refused = ""
        self._sock = sock
        self.monitor = sock.get_monitor_socket(HANDSHAKE_EVENTS)

    def check(self) -> str:
        """Take the events so far; returns the newest refusal (``""`` after a success)."""
        while True:
            try:
                event = recv_monitor_message(self.monitor, zmq.NOBLOCK)
            except (zmq.Again, zmq.ZMQError):
                return self.refused
            self.refused = self.describe(int(event["event"]), int(event["value"]))

    def describe(self, event: int, value: int) -> str:
        """One sentence for a handshake event (``""`` for success)."""
        where = f"the twin at {self.address}"
        keys = self.keys
        if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            return ""
        if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            who = f"key {keys.name!r}" if keys is not None else "this client"
            return (f"{where} refused {who} (status {value}): it is not in the twin's key "
                    "registry, or it was revoked (odc keys list)")
        if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL and \
                value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
            if keys is None:
                return (f"{where} admits registered keys only: give --key NAME.key_secret "
                        "--server-key server.key (odc keys new NAME)")
            return f"{where} does not use keys: leave out --key and --server-key"
        if keys is not None:
            return (f"the CURVE handshake with {where} failed: is {keys.server_key_file} "
                    "this twin's public key?")
        # A plain client meets a CURVE twin this way too when the twin hangs up first.
        return (f"the handshake with {where} failed (monitor event {event:#x}, value "
                f"{value:#x}); if the twin admits registered keys only, give --key "
                "NAME.key_secret --server-key server.key")

    def close(self) -> None:
        """Stop watching (before the socket closes)."""
        with contextlib.suppress(zmq.ZMQError):  # a closed socket's monitor stopped with it
            self._sock.disable_monitor()
        self.monitor.close(linger=0)

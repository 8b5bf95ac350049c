"""CURVE on the twin's sockets, and the ZAP handler that admits only registered keys.

CURVE alone only encrypts: libzmq asks a ZAP handler whether a client's key may connect.
``KeyAuthenticator`` answers from the key registry (twin.security.keys), names each
connection after its key (the ``User-Id`` every message from it carries) and counts
refusals. The registry is swapped whole on reload, so a handshake sees the old one or the
new one, never half of each.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import zmq
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

from twin.security.keys import (
    KeyRegistry,
    load_public_key,
    load_secret_pair,
    server_key_paths,
)

log = logging.getLogger("odc.twin.security")
ZAP_DOMAIN = "odc"


class KeyAuthenticator(ThreadAuthenticator):
    """A ZAP handler thread admitting the registry's active keys.

    Args:
        context: The twin's ZeroMQ context (ZAP is per context).
        registry: The keys admitted at start.
    """

    def __init__(self, context: zmq.Context, registry: KeyRegistry) -> None:
        super().__init__(context=context, log=logging.getLogger("odc.twin.zap"))
        self.registry = registry
        self.refused = 0  # handshakes with an unknown or revoked key
        self._lock = threading.Lock()

    def start(self) -> None:  # type: ignore[override]
        super().start()
        self.configure_curve_callback(ZAP_DOMAIN, credentials_provider=self)

    def callback(self, domain: str, client_key: bytes) -> bool:
        """ZAP: admit ``client_key`` (z85) if the registry has it active."""
        admitted = self.registry.admitted(client_key.decode("ascii")) is not None
        if not admitted:
            with self._lock:
                self.refused += 1
        return admitted

    def curve_user_id(self, client_public_key: bytes) -> str:
        """The key's name: every message of this connection carries it as ``User-Id``."""
        entry = self.registry.admitted(z85.encode(client_public_key).decode("ascii"))
        return entry.name if entry is not None else ""

    def replace_registry(self, registry: KeyRegistry) -> None:
        self.registry = registry


def serve_curve(sock: zmq.Socket, folder: Path) -> None:
    """Make ``sock`` a CURVE server with the twin's pair in ``folder`` (before it binds)."""
    _, secret_path = server_key_paths(folder)
    public, secret = load_secret_pair(secret_path)
    sock.curve_server = True
    sock.curve_publickey = public
    sock.curve_secretkey = secret
    sock.zap_domain = ZAP_DOMAIN.encode()


def connect_curve(sock: zmq.Socket, key_file: Path, server_key_file: Path) -> None:
    """Make ``sock`` a CURVE client with its secret key file and the twin's public key
    file (before it connects)."""
    public, secret = load_secret_pair(Path(key_file))
    sock.curve_publickey = public
    sock.curve_secretkey = secret
    sock.curve_serverkey = load_public_key(Path(server_key_file))


def user_of(frame: Any) -> str:
    """The ``User-Id`` (key name) a received frame carries, ``""`` without CURVE."""
    try:
        return frame.get("User-Id") or ""
    except (zmq.ZMQError, AttributeError):
        return ""


def peer_of(frame: Any) -> str:
    """The peer's address a received frame carries (``Peer-Address``), ``""`` if none."""
    try:
        return frame.get("Peer-Address") or ""
    except (zmq.ZMQError, AttributeError):
        return ""

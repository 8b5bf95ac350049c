"""Key pairs and the key registry: who may connect, under which name, with which roles.

A key folder holds:

- ``server.key`` / ``server.key_secret``: the twin's own CURVE pair (clients need the public
  one, ``--server-key``);
- ``NAME.key`` / ``NAME.key_secret``: one pair per person, viewer or testbed (``odc keys new
  NAME``), in pyzmq's ``zmq.auth`` certificate format; the secret file is mode 0600;
- ``registry.toml``: public key, roles and dates of every key the twin admits; a revoked key
  stays listed with ``revoked_utc`` and is admitted no more.

The twin reads the registry at start, on SIGHUP and on the ``reload_keys`` command. Nothing
here ever reads a secret key except the twin's own.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import zmq.auth

from twin.security.roles import NAME_PATTERN, check_role

REGISTRY_FILE = "registry.toml"
SERVER_NAME = "server"
MAX_REGISTRY_BYTES = 1 << 20
"""A registry of ~5,000 keys; a larger file is refused rather than read."""
Z85_KEY_CHARS = 40


class KeyFileError(ValueError):
    """A key folder, registry or key name is wrong; the message says which and how to fix it."""


@dataclass(frozen=True)
class KeyEntry:
    """One key of the registry."""

    name: str
    public_key: str
    roles: tuple[str, ...]
    created_utc: str
    revoked_utc: str = ""

    @property
    def active(self) -> bool:
        return not self.revoked_utc


def check_name(name: str) -> str:
    """A key name: 1-64 of ``A-Z a-z 0-9 _ . -``, not ``server``."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise KeyFileError(f"key name {str(name)[:80]!r}: use 1-64 letters, digits, '_', '.' or "
                        "'-', starting with a letter or digit")
    if name == SERVER_NAME:
        raise KeyFileError("'server' is the twin's own key pair; name the client another way")
    return name


class KeyRegistry:
    """The admitted keys of a key folder, by public key (z85) and by name.

    Args:
        entries: Every key, revoked ones included.
    """

    def __init__(self, entries: Iterable[KeyEntry] = ()) -> None:
        self.entries = {e.name: e for e in entries}
        self._by_key = {e.public_key: e for e in self.entries.values() if e.active}

    def admitted(self, public_key_z85: str) -> KeyEntry | None:
        """The active entry of a client's public key, or None (not registered, revoked)."""
        return self._by_key.get(public_key_z85)

    def by_name(self, name: str) -> KeyEntry | None:
        entry = self.entries.get(name)
        return entry if entry is not None and entry.active else None

    @classmethod
    def load(cls, folder: Path) -> KeyRegistry:
        """Read ``folder/registry.toml`` (an empty registry when it does not exist yet).

        Raises:
            KeyFileError: The file is unreadable, too large or malformed (naming the key).
        """
        path = Path(folder) / REGISTRY_FILE
        if not path.exists():
            return cls()
        try:
            if path.stat().st_size > MAX_REGISTRY_BYTES:
                raise KeyFileError(f"{path}: larger than {MAX_REGISTRY_BYTES} bytes")
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise KeyFileError(f"{path}: {exc}") from exc
        keys = doc.get("keys", {})
        if not isinstance(keys, dict):
            raise KeyFileError(f"{path}: 'keys' must be a table of [keys.NAME] tables")
        entries = []
        for name, table in keys.items():
            where = f"{path}: keys.{name}"
            if not isinstance(table, dict):
                raise KeyFileError(f"{where}: expected a table")
            try:
                check_name(name)
                public = table["public_key"]
                roles = tuple(check_role(r) for r in table.get("roles", []))
            except (KeyError, TypeError, ValueError) as exc:
                raise KeyFileError(f"{where}: {exc}") from exc
            if not isinstance(public, str) or len(public) != Z85_KEY_CHARS:
                raise KeyFileError(f"{where}.public_key: expected a {Z85_KEY_CHARS}-character "
                                "z85 CURVE public key")
            entries.append(KeyEntry(name, public, roles, str(table.get("created_utc", "")),
                                    str(table.get("revoked_utc", ""))))
        return cls(entries)

    def save(self, folder: Path) -> None:
        """Write the registry atomically (a reader never sees half a file)."""
        lines = ["# ODC Twin key registry: the keys the twin admits and their roles.",
                 "# Managed by `odc keys new|revoke|list`; the twin reloads it on SIGHUP and",
                 "# on the reload_keys command.", ""]
        for entry in sorted(self.entries.values(), key=lambda e: e.name):
            lines.append(f"[keys.{entry.name}]")
            lines.append(f'public_key = "{entry.public_key}"')
            lines.append("roles = [" + ", ".join(f'"{r}"' for r in entry.roles) + "]")
            lines.append(f'created_utc = "{entry.created_utc}"')
            if entry.revoked_utc:
                lines.append(f'revoked_utc = "{entry.revoked_utc}"')
            lines.append("")
        path = Path(folder) / REGISTRY_FILE
        temporary = path.with_suffix(".toml.tmp")
        temporary.write_text("\n".join(lines), encoding="utf-8")
        os.replace(temporary, path)


def _now_utc() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def _make_pair(folder: Path, name: str) -> tuple[Path, Path]:
    public, secret = zmq.auth.create_certificates(folder, name)
    os.chmod(secret, stat.S_IRUSR | stat.S_IWUSR)  # 0600: the secret is the identity
    return Path(public), Path(secret)


def server_key_paths(folder: Path) -> tuple[Path, Path]:
    """(public, secret) certificate paths of the twin's own pair in ``folder``."""
    folder = Path(folder)
    return folder / f"{SERVER_NAME}.key", folder / f"{SERVER_NAME}.key_secret"


def ensure_server_key(folder: Path) -> tuple[Path, Path]:
    """The twin's pair in ``folder``, made (with the folder, mode 0700) if missing."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    public, secret = server_key_paths(folder)
    if not secret.exists():
        _make_pair(folder, SERVER_NAME)
    return public, secret


def new_key(folder: Path, name: str, roles: Iterable[str]) -> KeyEntry:
    """Make a key pair for ``name`` with ``roles`` and register it.

    Raises:
        KeyFileError: A bad name or role, or the name exists (revoke it first, or pick another).
    """
    check_name(name)
    roles = tuple(dict.fromkeys(check_role(r) for r in roles)) or ("viewer",)
    folder = Path(folder)
    ensure_server_key(folder)
    registry = KeyRegistry.load(folder)
    if name in registry.entries:
        raise KeyFileError(f"a key named {name!r} exists already (revoked or not); pick another "
                        "name")
    public, _ = _make_pair(folder, name)
    public_key, _ = zmq.auth.load_certificate(public)
    entry = KeyEntry(name, public_key.decode("ascii"), roles, _now_utc())
    registry.entries[name] = entry
    registry.save(folder)
    return entry


def revoke_key(folder: Path, name: str) -> KeyEntry:
    """Mark ``name`` revoked in the registry (its files stay; the twin admits it no more
    once it reloads).

    Raises:
        KeyFileError: No such key.
    """
    folder = Path(folder)
    registry = KeyRegistry.load(folder)
    entry = registry.entries.get(name)
    if entry is None:
        raise KeyFileError(f"no key named {name[:80]!r} in {folder / REGISTRY_FILE}")
    if entry.active:
        entry = KeyEntry(entry.name, entry.public_key, entry.roles, entry.created_utc,
                         _now_utc())
        registry.entries[name] = entry
        registry.save(folder)
    return entry


def load_secret_pair(path: Path) -> tuple[bytes, bytes]:
    """(public, secret) z85 keys of a secret certificate file (``NAME.key_secret``).

    Raises:
        KeyFileError: Not a readable secret certificate.
    """
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"{path}: not a CURVE secret key file ({exc})") from exc
    if not secret:
        raise KeyFileError(f"{path}: holds no secret key; use NAME.key_secret, not NAME.key")
    return public, secret


def load_public_key(path: Path) -> bytes:
    """The z85 public key of a certificate file (``server.key``).

    Raises:
        KeyFileError: Not a readable certificate.
    """
    try:
        public, _ = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"{path}: not a CURVE public key file ({exc})") from exc
    return public

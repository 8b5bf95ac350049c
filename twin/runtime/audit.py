"""The audit log: one JSON line per command, accepted or not, that survives a crash.

Each line says when (wall and simulation time, UTC), who (the key's name, ``local`` without
keys) and from where (peer address), what (command and arguments) and what came of it
(``ok``, ``rejected``, ``confirm_required``, ``confirmed``, ``expired``, ``failed``, with
the error). Lines go to the file with one ``write`` each on a descriptor opened
``O_APPEND``: nothing waits in a buffer, so a SIGKILL loses at most the line being written.
``odc audit FILE`` reads it back.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from twin.core.ratelog import shorten

MAX_ARGS_CHARS = 2_000
"""Arguments are a few small values; a client's huge one is shortened, never written whole."""
OUTCOMES = ("ok", "rejected", "confirm_required", "confirmed", "expired", "failed")


def _iso(t_utc: float) -> str:
    return datetime.fromtimestamp(t_utc, UTC).isoformat(timespec="milliseconds")


def _plain(value: Any) -> Any:
    """A JSON-safe copy of a request value (msgpack may carry bytes and odd keys)."""
    if isinstance(value, dict):
        return {str(k)[:64]: _plain(v) for k, v in list(value.items())[:32]}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value[:32]]
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if value is None or isinstance(value, bool | int | float | str):
        return value if not isinstance(value, str) else value[:200]
    return repr(value)[:200]


def record(wall_t_utc: float, sim_t_utc: float, key: str, peer: str, cmd: str,
           args: dict[str, Any], outcome: str, error: str | None = None) -> dict[str, Any]:
    """One audit record (also the body of the ``audit`` event)."""
    args = {k: v for k, v in args.items() if k not in ("cmd", "id")}
    text = json.dumps(_plain(args), allow_nan=True, sort_keys=True)
    plain_args: Any = (_plain(args) if len(text) <= MAX_ARGS_CHARS
                       else {"shortened": shorten(text, MAX_ARGS_CHARS)})
    return {"wall_utc": _iso(wall_t_utc), "sim_utc": _iso(sim_t_utc), "key": key,
            "peer": peer, "cmd": cmd[:64], "args": plain_args, "outcome": outcome,
            "error": None if error is None else shorten(error, 500)}


class AuditLog:
    """Append-only JSON lines, each written whole with one system call.

    Args:
        path: The file; created (mode 0600) if missing, appended to if not.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.lines = 0
        self.write_errors = 0

    def write(self, entry: dict[str, Any]) -> None:
        """Append one record. A full disk is counted, never raised: commands go on."""
        line = (json.dumps(entry, allow_nan=True, sort_keys=True) + "\n").encode()
        try:
            os.write(self._fd, line)
            self.lines += 1
        except OSError:
            self.write_errors += 1

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

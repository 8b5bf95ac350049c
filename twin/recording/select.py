"""What the export and history tools share: a recording's ``meta``, and satellites and
fields chosen by name, each refused with a message that names the recording and shows what
it holds."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from twin.protocol.codec import WireError
from twin.recording.format import RecordingError
from twin.recording.reader import Recording

SHOWN = 8
"""How many known names an error lists."""


def first_meta(recording: Recording) -> dict[str, Any]:
    """The header of the recording's first ``meta`` (its satellites, fields, totals).

    Raises:
        RecordingError: The recording holds no readable ``meta``.
    """
    for message in recording.messages(["meta"]):
        try:
            return message.decode().header
        except (WireError, RecordingError) as exc:
            raise RecordingError(f"{recording.path}: its first meta message is unreadable "
                                 f"({exc})") from None
    raise RecordingError(f"{recording.path} holds no meta message: not a usable recording "
                         "(a recording starts with the twin's meta)")


def _some(names: Iterable[str]) -> str:
    names = list(names)
    shown = ", ".join(names[:SHOWN])
    return shown + (f", ... ({len(names)} in all)" if len(names) > SHOWN else "")


def resolve_sats(meta: dict[str, Any], texts: Iterable[str], where: str) -> list[int]:
    """Satellite indexes for names, ids or NORAD ids (as the ``sat`` of a command), in the
    order given, each once.

    Raises:
        RecordingError: One is none of the recording's satellites.
    """
    sats = meta.get("sats") or {}
    names = [str(n) for n in sats.get("names", [])]
    by_key: dict[str, int] = {}
    for key in ("norad_ids", "ids"):  # names win over ids, ids over NORAD ids
        for index, value in enumerate(sats.get(key) or []):
            by_key[str(value)] = index
    by_key.update({name: index for index, name in enumerate(names)})
    chosen: list[int] = []
    for text in texts:
        text = text.strip()
        if text not in by_key:
            raise RecordingError(f"{where} has no satellite {text!r}: give a name or id of "
                                 f"one of its {len(names)} satellites ({_some(names)})")
        if by_key[text] not in chosen:
            chosen.append(by_key[text])
    return chosen


def field_names(meta: dict[str, Any]) -> list[str]:
    """The names of the recording's ``state`` fields."""
    return [f["name"] for f in meta.get("fields", []) if isinstance(f, dict) and "name" in f]


def field_entry(meta: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    """The catalog entry of field ``name``.

    Raises:
        RecordingError: The recording has no such field (its fields and totals are listed).
    """
    for entry in meta.get("fields", []):
        if isinstance(entry, dict) and entry.get("name") == name:
            return entry
    totals = list((meta.get("totals") or {}).keys())
    raise RecordingError(f"{where} has no field {name!r}: its fields include "
                         f"{_some(field_names(meta))}" +
                         (f"; its fleet totals {_some(totals)}" if totals else ""))

"""The scenario epoch: ``[scenario].epoch`` resolved to one timezone-aware UTC instant.

An epoch is an ISO-8601 date-time with a time zone, ``"now"``, or ``"tle"`` (the newest
element epoch of the scenario's catalogs, to the minute; also the default when there is a
catalog). It must lie where both SGP4 (1957 on) and the twin's Sun ephemeris hold.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from twin.astro.sun import EPHEMERIS_END_UTC
from twin.scenario.errors import ScenarioError

if TYPE_CHECKING:
    from twin.scenario.tle import TleEntry

EARLIEST_EPOCH_UTC = datetime(1957, 1, 1, tzinfo=UTC)
"""SGP4's element epochs start with the space age."""

_EPOCH_HELP = ("expected an ISO-8601 UTC date-time such as \"2026-03-20T12:00:00Z\", \"now\", or"
               " \"tle\" (the catalog's epoch)")


def resolve_epoch(raw: str | datetime | None, catalogs: list[list[TleEntry]],
                  source: str) -> datetime:
    """The epoch ``[scenario].epoch`` names, in UTC.

    Args:
        raw: The key's value as TOML gave it (None when absent).
        catalogs: The scenario's TLE catalogs, for ``"tle"``.
        source: The scenario file, for messages.

    Raises:
        ScenarioError: Not a date-time, no time zone, no catalog for ``"tle"``, or out of range.
    """
    key = "scenario.epoch"
    if raw is None or raw == "tle":
        entries = [entry for catalog in catalogs for entry in catalog]
        if not entries:
            why = "is missing" if raw is None else "is \"tle\" but there is no [[tle]] catalog"
            raise ScenarioError(source, key, f"{why}: {_EPOCH_HELP}")
        latest = max(entry.epoch_utc for entry in entries)
        return _check_epoch_range(_round_to_minute(latest), source)
    if raw == "now":
        return _check_epoch_range(datetime.now(UTC).replace(microsecond=0), source)
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw.strip())
        except ValueError as exc:
            raise ScenarioError(source, key, f"{raw!r} is not a date-time: {_EPOCH_HELP}"
                                ) from exc
    else:
        parsed = raw
    if parsed.tzinfo is None:
        raise ScenarioError(source, key, f"{raw!s} has no time zone: add 'Z' for UTC, e.g."
                            f" \"{parsed.isoformat()}Z\"")
    try:
        epoch = parsed.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 pushed past the calendar by its time zone
        epoch = EARLIEST_EPOCH_UTC.replace(year=1) if parsed.year < 1957 else datetime.max
    return _check_epoch_range(epoch.replace(tzinfo=UTC), source, shown=str(raw))


def _check_epoch_range(epoch: datetime, source: str, shown: str | None = None) -> datetime:
    if not EARLIEST_EPOCH_UTC <= epoch <= EPHEMERIS_END_UTC:
        raise ScenarioError(
            source, "scenario.epoch", f"{shown or epoch.isoformat()} is outside"
            f" {EARLIEST_EPOCH_UTC:%Y-%m-%d} to {EPHEMERIS_END_UTC:%Y-%m-%d} UTC: SGP4"
            f" elements start in 1957 and the Sun ephemeris (DE421) the twin uses ends on"
            f" {EPHEMERIS_END_UTC:%Y-%m-%d}")
    return epoch


def _round_to_minute(moment: datetime) -> datetime:
    return (moment + timedelta(seconds=30)).replace(second=0, microsecond=0)

"""One field over time out of a recording: ``odc history run.mcap --field NAME --out f.csv``.

``--sat NAME|ID`` (repeatable, or comma-separated) picks nodes (default: all, a column
each); a fleet total (``--field n_in_eclipse``) gives one column. ``--from``/``--to`` take
ISO 8601 times (UTC unless they say otherwise) or ``+SECONDS`` after the recording's
start, and only the chunks that hold that range are read (the recording's index).
``--out`` ends in ``.csv``, or ``.parquet`` where pyarrow is installed.
Exit status: 0 written, 2 a bad command line, a field or node the recording lacks, a file
that is not a usable recording, or an output that cannot be written.
"""

from __future__ import annotations

import argparse
import sys

from twin.recording.format import RecordingError


def _sats(text: str) -> list[str]:
    return [word.strip() for word in text.split(",") if word.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `odc history`."""
    parser.add_argument("source", metavar="PATH.mcap", help="the recording (odc record)")
    parser.add_argument("--field", required=True, metavar="NAME",
                        help="a state field (temp_compute_k) or fleet total (n_in_eclipse)")
    parser.add_argument("--sat", type=_sats, action="extend", metavar="NAME|ID",
                        help="a node by name or id; repeat or separate by commas "
                        "(default: all)")
    parser.add_argument("--from", dest="start", metavar="T",
                        help="first time: ISO 8601 (2026-03-20T12:30:00Z) or +SECONDS after "
                        "the recording's start")
    parser.add_argument("--to", dest="end", metavar="T", help="end time (not included), "
                        "as --from")
    parser.add_argument("--out", required=True, metavar="FILE.csv|FILE.parquet",
                        help="the table to write (.parquet needs pyarrow)")


def run(args: argparse.Namespace) -> int:
    """Write the table; returns the exit status."""
    from twin.recording.history import history

    try:
        result = history(args.source, args.field, args.out, sats=args.sat, start=args.start,
                         end=args.end)
    except RecordingError as exc:
        print(f"odc history: {exc}", file=sys.stderr)
        return 2
    if not result.indexed:
        print(f"odc history: {args.source} has no index (cut short?): it was read from the "
              "start; odc record --recover makes it whole", file=sys.stderr)
    print(f"odc history: {result.line()}", file=sys.stderr)
    return 0

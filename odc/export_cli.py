"""Export a recording for other tools: ``odc export foxglove IN.mcap OUT.mcap``.

Writes a separate MCAP file of JSON channels with JSON Schemas that Foxglove and
Lichtblick draw with their own panels: ``/fleet`` (fleet totals), ``/nodes/<field>`` (a
value per node for each chosen field), ``/events`` (``foxglove.Log``), ``/scene``
(``foxglove.SceneUpdate``: the Earth and the nodes) and ``/tf``
(``foxglove.FrameTransform``). ``--fields`` and ``--sats`` choose what goes in, ``--every``
thins the states. docs/recording.md, "Foxglove and Lichtblick", says how to open it.
Exit status: 0 written, 2 a bad command line or a file that is not a usable recording.
"""

from __future__ import annotations

import argparse
import sys

from twin.recording.format import RecordingError


def _every(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _names(text: str) -> list[str]:
    return [word.strip() for word in text.split(",") if word.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `odc export`."""
    parser.add_argument("format", choices=["foxglove"],
                        help="what to export for: foxglove (Foxglove and Lichtblick)")
    parser.add_argument("source", metavar="IN.mcap", help="the recording (odc record)")
    parser.add_argument("output", metavar="OUT.mcap", help="the file to write")
    parser.add_argument("--fields", type=_names, metavar="a,b,...",
                        help="per-node fields for /nodes/<field> (default: temperatures, "
                        "state of charge, utilization and power, those the recording has)")
    parser.add_argument("--sats", type=_names, metavar="NAME,...",
                        help="nodes to export, by name or id (default: all)")
    parser.add_argument("--every", type=_every, default=1, metavar="N",
                        help="keep every Nth state of the recording (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    """Export; returns the exit status."""
    from twin.recording.export import export_foxglove

    try:
        report = export_foxglove(args.source, args.output, fields=args.fields, sats=args.sats,
                                 every=args.every)
    except RecordingError as exc:
        print(f"odc export: {exc}", file=sys.stderr)
        return 2
    print(f"odc export: {report.line()}", file=sys.stderr)
    return 0

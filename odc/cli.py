"""`odc`: dispatch to the twin (`run`), the viewers and the bridges by subcommand.

This front door is the only place that imports all three packages; each subcommand
imports its package lazily so `odc run` never loads the 3D or terminal UI libraries.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys

from twin import __version__
from twin.core.clock import SimClock
from twin.core.engine import Engine
from twin.runtime.cli import add_run_arguments
from twin.runtime.cli import run as run_twin
from twin.scenario import ScenarioError, bundled_scenarios, load_scenario


def _scenarios(args: argparse.Namespace) -> int:
    """List the bundled scenarios, or check a scenario file and say what it holds."""
    if args.check is not None:
        try:
            scenario = load_scenario(args.check)
            # Building the engine makes every subsystem validate its own table too.
            Engine(scenario, SimClock(scenario.epoch_utc, scenario.clock.rate_hz,
                                      scenario.clock.warp))
        except ScenarioError as exc:
            print(f"odc scenarios: bad scenario: {exc}", file=sys.stderr)
            return 2
        except (ValueError, OSError) as exc:
            # A subsystem that checks its table with a plain ValueError still gets a message.
            print(f"odc scenarios: bad scenario {args.check}: {exc}", file=sys.stderr)
            return 2
        groups: dict[str, int] = {}
        for sat in scenario.satellites:
            groups[sat.group] = groups.get(sat.group, 0) + 1
        print(f"{scenario.source}: scenario {scenario.name!r} is valid")
        print(f"  epoch {scenario.epoch_utc.isoformat()}, seed {scenario.seed}")
        for group, count in groups.items():
            print(f"  {count:9,d} satellite{'s' if count != 1 else ''} in {group}")
        n_stations = len(scenario.stations)
        print(f"  {n_stations:9,d} ground station{'s' if n_stations != 1 else ''}")
        return 0
    for name in bundled_scenarios():
        scenario = load_scenario(name)
        print(f"{name:12s} {len(scenario.satellites):9,d} sats  {scenario.description}")
    return 0


# name, module exposing add_arguments(parser) and run(args) -> int, one-line help.
TOOL_COMMANDS = (
    ("demo", "odc.demo", "start the twin and its viewers together (what make run does)"),
    ("view", "viz.viewer_cli", "the operator 3D viewer (pyvista), live from the stream"),
    ("tui", "viz.tui_cli", "the terminal dashboard (textual), live from the stream"),
    ("web", "viz.web.cli", "the dashboard and the 3D view in a browser, live from the stream"),
    ("bridge", "bridge.bridge_cli", "push hardware-testbed telemetry to the twin"),
    ("testbed", "bridge.testbed_cli", "a flatsat stand-in sending CCSDS packets over UDP"),
    ("calibrate", "bridge.calibrate_cli", "fit a mirrored node's thermal parameters"),
    ("cmd", "odc.cmd_cli", "send one command to the twin, print its reply as JSON"),
    ("keys", "odc.keys_cli", "make, list and revoke the keys a twin admits"),
    ("audit", "odc.audit_cli", "read the twin's audit file: who asked for what, and when"),
    ("record", "odc.record_cli", "record the twin's stream to MCAP; recover a cut recording"),
    ("export", "odc.export_cli", "export a recording for Foxglove and Lichtblick"),
    ("history", "odc.history_cli", "one field over time out of a recording, as CSV"),
    ("replay", "twin.recording.replay_cli", "serve a recording as the twin's stream, with seek"),
    ("sweep", "odc.sweep_cli", "run a design sweep on Dask: Parquet results and a report"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="odc",
        description="ODC Twin: the open digital twin for orbital data centers.",
        epilog="Run 'odc COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"odc-twin {__version__}")
    parser.add_argument("--log-level", default="warning",
                        choices=["debug", "info", "warning", "error"],
                        help="how much the process logs to stderr (default: %(default)s)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    run = commands.add_parser("run", help="run the twin: step a scenario and stream it",
                              description="Run the twin: step a scenario and stream it over "
                              "ZeroMQ (PUB stream, ROUTER commands, PULL telemetry).")
    add_run_arguments(run)
    run.set_defaults(handler=run_twin)

    scenarios = commands.add_parser("scenarios", help="list bundled scenarios or check a file",
                                    description="List the bundled scenarios, or validate one.")
    scenarios.add_argument("--check", metavar="NAME_OR_PATH",
                           help="validate this scenario and summarize it")
    scenarios.set_defaults(handler=_scenarios)

    for name, module_name, summary in TOOL_COMMANDS:
        # Modules that are not there yet are skipped, so each lands independently. Each
        # module keeps heavy imports (pyvista, textual) inside run(), so `odc --help` is quick.
        if importlib.util.find_spec(module_name) is None:
            continue
        module = importlib.import_module(module_name)
        sub = commands.add_parser(name, help=summary, description=module.__doc__.splitlines()[0])
        module.add_arguments(sub)
        sub.set_defaults(handler=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())

"""Fit a mirrored node's thermal parameters to a recorded session and write a scenario.

``odc calibrate session.odcrec --scenario flatsat_mirror.toml --output calibrated.toml``
decodes the recording (``odc bridge --record``), takes the power and temperatures the
scenario's ``[[mirror.testbed]]`` maps to ``compute_power_w``, ``temp_compute_k`` and
``temp_radiator_k``, fits heat capacities and conductances by least squares
(``bridge.calibrate``) against the sink the testbed definition gives (``[testbed]
sink_temp_k`` or a measured ``sink_temp_param``; ``--sink-temp-k`` overrides), reports the
fit error before and after, refuses a fit outside physical bounds or with a poor residual,
and writes the scenario with a ``[[node_class]]`` holding the fit for the mirrored node
only: the rest of the fleet keeps the scenario's ``[thermal]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

EXIT_BAD_INPUT = 2
EXIT_BAD_FIT = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recording", help="session recorded with odc bridge --record")
    parser.add_argument("--scenario", default=None,
                        help="scenario with the [mirror] binding (default: the bundled "
                        "testbeds/flatsat_mirror.toml)")
    parser.add_argument("--definitions", default="flatsat",
                        help="packet definitions of the recording (default %(default)s)")
    parser.add_argument("--testbed", default=None,
                        help="which [[mirror.testbed]] (default: the definitions' testbed)")
    parser.add_argument("--sink-temp-k", type=float, default=None,
                        help="radiative sink temperature of the session, K (default: the "
                        "definition's [testbed] sink_temp_k or measured sink_temp_param)")
    parser.add_argument("--max-rms-k", type=float, default=None,
                        help="largest RMS temperature error a fit may keep, K (default: "
                        "5 times the sensor noise the session shows, at least 0.05 K)")
    parser.add_argument("--output", required=True, help="scenario file to write")


def run(args: argparse.Namespace) -> int:
    from bridge.calibrate import PARAM_NAMES, check_fit, fit, max_rms_k, node_params
    from bridge.definitions import DefinitionError
    from twin.scenario import ScenarioError

    try:
        scenario, defs, binding, session, sink, sink_text = _inputs(args)
    except (ScenarioError, DefinitionError, ValueError, OSError) as exc:
        print(f"odc calibrate: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    thermal = _node_thermal(scenario, binding["node"])
    before = node_params(thermal)
    result = fit(session, before, sink)
    print(f"odc calibrate: {len(session.t_s)} points over {session.t_s[-1]:.0f} s, "
          f"sink {sink_text}")
    print("  fitted node parameters, scenario -> fit (the [thermal] keys that realise them, "
          "as written, follow)")
    for label, b, a in zip(PARAM_NAMES, before, result.params, strict=True):
        print(f"  {label:16s} {b:12.5g} -> {a:12.5g}")
    limit = max_rms_k(session) if args.max_rms_k is None else args.max_rms_k
    print(f"  RMS temperature error: before {result.rms_before_k:.3f} K, equation-error "
          f"start {result.rms_equation_k:.3f} K, after {result.rms_after_k:.3f} K "
          f"({result.iterations} iterations; limit {limit:.3g} K)")
    return _write(args, scenario, defs, binding, result, thermal, limit, check_fit)


def _node_thermal(scenario: Any, node: str | int) -> dict[str, Any]:
    """The ``[thermal]`` keys of the mirrored node: the fleet's, then its class's (an
    earlier calibration), so that "before" is the node as the scenario has it."""
    thermal = dict(scenario.sections.get("thermal", {}))
    sat = node if isinstance(node, int) else next(
        (s.sat_id for s in scenario.satellites if s.name == node), None)
    for node_class in scenario.node_classes:
        if sat in node_class.sats:
            thermal.update(node_class.tables.get("thermal", {}))
    return thermal


def _inputs(args: argparse.Namespace) -> tuple[Any, Any, dict[str, Any], Any, Any, str]:
    """Scenario, definitions, the binding, the session and its sink (value, words)."""
    from bridge.calibrate import load_session
    from bridge.definitions import TESTBEDS_DIR, load_definitions
    from twin.scenario import load_scenario

    scenario = load_scenario(args.scenario or str(TESTBEDS_DIR / "flatsat_mirror.toml"))
    defs = load_definitions(args.definitions)
    name = args.testbed or defs.testbed
    bindings = [b for b in scenario.sections.get("mirror", {}).get("testbed", [])
                if b.get("name") == name]
    if not bindings:
        raise ValueError(f"{scenario.source}: no [[mirror.testbed]] named {name!r}")
    wanted: dict[str, str | None] = dict.fromkeys(
        ("compute_power_w", "temp_compute_k", "temp_radiator_k"))
    for param, quantity in {**bindings[0].get("drivers", {}),
                            **bindings[0].get("states", {})}.items():
        if quantity in wanted:
            wanted[quantity] = param
    missing = [q for q, p in wanted.items() if p is None]
    if missing:
        raise ValueError(f"{scenario.source}: testbed {name!r} maps nothing to "
                         f"{', '.join(missing)}")
    sink_param = "" if args.sink_temp_k is not None else defs.sink_temp_param
    if args.sink_temp_k is None and defs.sink_temp_k is None and not sink_param:
        raise ValueError(f"{defs.source}: no sink temperature for the session: set [testbed] "
                         "sink_temp_k (what the unit radiates to: a lab's room or shroud, not "
                         "deep space) or sink_temp_param (a measured parameter), or give "
                         "--sink-temp-k")
    session = load_session(args.recording, defs, str(wanted["compute_power_w"]),
                           str(wanted["temp_compute_k"]), str(wanted["temp_radiator_k"]),
                           sink_param)
    if args.sink_temp_k is not None:
        return scenario, defs, bindings[0], session, args.sink_temp_k, \
            f"{args.sink_temp_k:g} K (--sink-temp-k)"
    if sink_param and session.sink_temp_k is not None:
        measured = session.sink_temp_k
        return scenario, defs, bindings[0], session, measured, \
            (f"measured {sink_param}, {measured.min():.1f}..{measured.max():.1f} K "
             f"({defs.source})")
    return scenario, defs, bindings[0], session, defs.sink_temp_k, \
        f"{defs.sink_temp_k:g} K ([testbed] sink_temp_k of {defs.source})"


def _write(args: argparse.Namespace, scenario: Any, defs: Any, binding: dict[str, Any],
           result: Any, thermal: dict[str, Any], max_rms_k: float, check_fit: Any) -> int:
    """Check the fit, then write it as the mirrored node's class; the exit status."""
    from bridge.calibrate import thermal_overrides, write_node_class
    from twin.scenario import ScenarioError, parse_scenario

    try:
        values = thermal_overrides(result.params, thermal, defs.radiating_area_m2)
    except ValueError as exc:
        print(f"odc calibrate: fit refused: {exc}", file=sys.stderr)
        return EXIT_BAD_FIT
    problems = check_fit(result, values, max_rms_k)
    if problems:
        print("odc calibrate: fit refused, nothing written:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return EXIT_BAD_FIT
    node = binding["node"]
    class_name = f"calibrated-{binding['name']}"
    note = (f"odc calibrate {Path(args.recording).name}: RMS {result.rms_before_k:.3g} -> "
            f"{result.rms_after_k:.3g} K")
    source = Path(scenario.source)
    text = write_node_class(source.read_text(encoding="utf-8"), class_name, node, values, note)
    try:  # the written scenario must load: relative paths resolve from the original's folder
        parse_scenario(text, str(args.output), source.parent)
    except ScenarioError as exc:
        print(f"odc calibrate: the calibrated scenario would not load, nothing written: "
              f"{exc}", file=sys.stderr)
        return EXIT_BAD_FIT
    Path(args.output).write_text(text, encoding="utf-8")
    print(f"  wrote [[node_class]] {class_name!r} for node {node!r} only (the rest of the "
          f"fleet keeps the scenario's [thermal]) to {args.output}:")
    for key, value in values.items():
        print(f"    {key} = {value!r}")
    print(f"  node {node!r} is now the bench unit: while testbed {binding['name']!r} is live "
          "its measured power drives it; without it the model's own compute power (a flight "
          "node's) may overheat a bench-sized radiator")
    return 0

"""Fit a mirrored node's thermal parameters to a recorded session and write a scenario.

``odc calibrate session.odcrec --scenario flatsat_mirror.toml --output calibrated.toml``
decodes the recording (``odc bridge --record``), takes the power and temperatures the
scenario's ``[[mirror.testbed]]`` maps to ``compute_power_w``, ``temp_compute_k`` and
``temp_radiator_k``, fits heat capacities and conductances by least squares
(``bridge.calibrate``), reports the fit error before and after, and writes the scenario
with the fitted ``[thermal]`` values.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


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
                        "scenario's [thermal].sink_temp_k; a lab flatsat sees its room)")
    parser.add_argument("--output", required=True, help="scenario file to write")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from bridge.calibrate import (
        PARAM_NAMES,
        THERMAL_DEFAULTS,
        fit,
        load_session,
        node_params,
        thermal_overrides,
        write_thermal,
    )
    from bridge.definitions import TESTBEDS_DIR, DefinitionError, load_definitions
    from twin.scenario import ScenarioError, load_scenario

    try:
        scenario = load_scenario(args.scenario or str(TESTBEDS_DIR / "flatsat_mirror.toml"))
        defs = load_definitions(args.definitions)
        name = args.testbed or defs.testbed
        bindings = [b for b in scenario.sections.get("mirror", {}).get("testbed", [])
                    if b.get("name") == name]
        if not bindings:
            raise ValueError(f"{scenario.source}: no [[mirror.testbed]] named {name!r}")
        wanted = {"compute_power_w": None, "temp_compute_k": None, "temp_radiator_k": None}
        for param, quantity in {**bindings[0].get("drivers", {}),
                                **bindings[0].get("states", {})}.items():
            if quantity in wanted:
                wanted[quantity] = param
        missing = [q for q, p in wanted.items() if p is None]
        if missing:
            raise ValueError(f"{scenario.source}: testbed {name!r} maps nothing to "
                             f"{', '.join(missing)}")
        session = load_session(args.recording, defs, wanted["compute_power_w"],
                               wanted["temp_compute_k"], wanted["temp_radiator_k"])
    except (ScenarioError, DefinitionError, ValueError, OSError) as exc:
        print(f"odc calibrate: {exc}", file=sys.stderr)
        return 2
    thermal = dict(scenario.sections.get("thermal", {}))
    sink = args.sink_temp_k if args.sink_temp_k is not None else thermal.get(
        "sink_temp_k", THERMAL_DEFAULTS["sink_temp_k"])
    before = node_params(thermal)
    result = fit(session, before, sink)
    print(f"odc calibrate: {len(session.t_s)} points over {session.t_s[-1]:.0f} s, "
          f"sink {sink:g} K")
    for label, b, a in zip(PARAM_NAMES, before, result.params, strict=True):
        print(f"  {label:16s} {b:12.5g} -> {a:12.5g}")
    print(f"  RMS temperature error: before {result.rms_before_k:.3f} K, equation-error "
          f"start {result.rms_equation_k:.3f} K, after {result.rms_after_k:.3f} K "
          f"({result.iterations} iterations)")
    try:
        values = thermal_overrides(result.params, thermal)
    except ValueError as exc:
        print(f"odc calibrate: {exc}", file=sys.stderr)
        return 1
    note = (f"odc calibrate {Path(args.recording).name}: RMS {result.rms_before_k:.3g} -> "
            f"{result.rms_after_k:.3g} K")
    text = Path(scenario.source).read_text(encoding="utf-8")
    Path(args.output).write_text(write_thermal(text, values, note), encoding="utf-8")
    print(f"  wrote [thermal] {', '.join(f'{k}={v:.4g}' for k, v in values.items())} "
          f"to {args.output}")
    return 0 if np.isfinite(result.rms_after_k) else 1

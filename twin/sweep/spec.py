"""Sweep specs: the TOML file ``odc sweep`` reads, checked whole before anything runs.

A spec names a base scenario, what to vary (any scenario key by its dotted path:
``power.battery_capacity_wh``, ``walker[0].altitude_km``, ``economics.launch_vehicle``,
``workload.policy``), as a ``[grid]`` or ``[distributions]`` (Monte Carlo), the seeds, the
simulated duration and step, and the KPIs to report. docs/sweeps.md is the reference.
Every problem is a ``SpecError`` naming the spec file and the key.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from twin.scenario import ScenarioError, parse_scenario_document
from twin.scenario.loader import SCENARIOS_DIR
from twin.scenario.sections import parse_section

MAX_RUNS = 100_000
MAX_SPEC_BYTES = 1 << 20
KNOWN_KPIS = ("usd_per_pflop_day", "usd_per_compute_kwh", "delivered_over_installed",
              "space_over_terrestrial", "terrestrial_usd_per_pflop_day", "cost_usd",
              "capex_usd", "node_wet_mass_kg", "launch_usd_per_kg", "pflop_days_useful",
              "violation_frac")
DEFAULT_KPIS = ("usd_per_pflop_day", "space_over_terrestrial", "delivered_over_installed",
                "violation_frac")
DISTRIBUTIONS = {"uniform": ("low", "high"), "loguniform": ("low", "high"),
                 "normal": ("mean", "sd"), "choice": ("values",)}
_SWEEP_KEYS = ("scenario", "duration_days", "duration_s", "step_s", "mode", "samples",
               "sampling_seed", "seeds", "kpis", "output", "series_samples", "name")


class SpecError(ValueError):
    """A sweep spec is wrong: names the file, the key and what is expected."""

    def __init__(self, file: str, key: str, problem: str) -> None:
        self.file, self.key, self.problem = file, key, problem
        super().__init__(f"{file}: {key}: {problem}" if key else f"{file}: {problem}")


@dataclass(frozen=True)
class RunPoint:
    """One run: the values set on the base scenario, and its seed."""

    run_id: str
    params: dict[str, Any]
    seed: int


@dataclass(frozen=True)
class SweepSpec:
    """A checked spec: its runs are in ``runs`` (in a fixed order)."""

    source: str
    name: str
    scenario_doc: dict[str, Any]
    scenario_source: str
    scenario_dir: str
    duration_s: float
    step_s: float
    mode: str
    parameters: tuple[str, ...]
    kpis: tuple[str, ...]
    output: Path
    series_samples: int
    runs: tuple[RunPoint, ...]


_PATH = re.compile(r"^([a-z_]+)(?:\[(\d+)\])?((?:\.[a-z_][a-z0-9_]*)+)$")


def set_key(doc: dict[str, Any], path: str, value: Any) -> None:
    """Set ``path`` (``power.battery_capacity_wh``, ``walker[0].altitude_km``,
    ``economics.terrestrial.pue``) in a scenario document, making tables on the way.

    Raises:
        KeyError: with the reason, for a path that cannot name a scenario key.
    """
    found = _PATH.match(path)
    if not found:
        raise KeyError("not a key path: write table.key, table[i].key or table.sub.key")
    table, index, rest = found.group(1), found.group(2), found.group(3)[1:].split(".")
    node: Any = doc
    if index is not None:
        items = doc.get(table)
        if not isinstance(items, list):
            raise KeyError(f"the base scenario has no [[{table}]] tables")
        if int(index) >= len(items):
            raise KeyError(f"the base scenario has {len(items)} [[{table}]] table(s); "
                           f"index {index} is past the last (indices count from 0)")
        node = items[int(index)]
    else:
        node = doc.setdefault(table, {})
    for name in rest[:-1]:
        if not isinstance(node, dict):
            raise KeyError(f"{name} is not inside a table")
        node = node.setdefault(name, {})
    if not isinstance(node, dict):
        raise KeyError(f"{rest[-1]} is not inside a table")
    node[rest[-1]] = value


def apply(doc: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``doc`` with ``params`` set (paths as ``set_key``)."""
    out = copy.deepcopy(doc)
    for path, value in params.items():
        set_key(out, path, value)
    return out


def check_tables(doc: dict[str, Any], source: str, base_dir: Path) -> None:
    """Build the scenario and every table a run reads, so an unknown key or a value out of
    bounds fails here. Raises ScenarioError."""
    from twin.economics import StaticEconomics
    from twin.models.registry import parameter_sections

    scenario = parse_scenario_document(doc, source, base_dir)
    for table, cls in parameter_sections():
        parse_section(cls, scenario, table)
    StaticEconomics.from_scenario(scenario)


def _read(path: Path) -> dict[str, Any]:
    source = str(path)
    try:
        data = path.read_bytes()[:MAX_SPEC_BYTES + 1]
    except OSError as exc:
        raise SpecError(source, "", f"cannot read the spec: {exc.strerror or exc}") from exc
    if len(data) > MAX_SPEC_BYTES:
        raise SpecError(source, "", "the spec is over 1 MiB; a spec is a short TOML file")
    try:
        return tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SpecError(source, "", f"not valid UTF-8 TOML: {exc}") from exc


def _number(value: Any, file: str, key: str, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SpecError(file, key, f"expected a finite number, got {value!r}")
    if positive and value <= 0:
        raise SpecError(file, key, f"must be above 0, got {value!r}")
    return float(value)


def _base_scenario(name: Any, spec_path: Path) -> tuple[dict[str, Any], str, Path]:
    file = str(spec_path)
    if not isinstance(name, str) or not name.strip():
        raise SpecError(file, "sweep.scenario", "name the base scenario: a bundled name "
                        "(default) or a path to a .toml file, relative to the spec")
    bundled = SCENARIOS_DIR / f"{name}.toml"
    path = bundled if ("/" not in name and not name.endswith(".toml") and bundled.is_file()) \
        else (spec_path.parent / name).resolve()
    if not path.is_file():
        raise SpecError(file, "sweep.scenario", f"no scenario {name!r} (not bundled, and no "
                        f"file {path})")
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SpecError(file, "sweep.scenario", f"cannot read {path}: {exc}") from exc
    return doc, str(path), path.parent


def _grid_values(value: Any, file: str, key: str) -> list[Any]:
    if isinstance(value, dict):
        if set(value) != {"start", "stop", "num"}:
            raise SpecError(file, key, "a range is { start = A, stop = B, num = N } "
                            "(N evenly spaced values, both ends included), or give a list")
        start = _number(value["start"], file, f"{key}.start")
        stop = _number(value["stop"], file, f"{key}.stop")
        num = value["num"]
        if isinstance(num, bool) or not isinstance(num, int) or num < 1:
            raise SpecError(file, f"{key}.num", f"empty range: num must be a whole number "
                            f"of at least 1, got {num!r}")
        return [float(v) for v in np.linspace(start, stop, num)]
    if not isinstance(value, list) or not value:
        raise SpecError(file, key, "empty range: give a non-empty list of values "
                        "or { start, stop, num }")
    return list(value)


def _sampler(value: Any, file: str, key: str) -> dict[str, Any]:
    if not isinstance(value, dict) or "dist" not in value:
        raise SpecError(file, key, "a distribution is a table with dist = one of "
                        f"{', '.join(DISTRIBUTIONS)}: {{ dist = \"uniform\", low = A, high = B }}")
    dist = value["dist"]
    if dist not in DISTRIBUTIONS:
        raise SpecError(file, f"{key}.dist", f"unknown distribution {dist!r}; known: "
                        f"{', '.join(DISTRIBUTIONS)}")
    needed = DISTRIBUTIONS[dist]
    extra = set(value) - {"dist", *needed}
    if extra or not all(k in value for k in needed):
        raise SpecError(file, key, f"{dist} takes {', '.join(needed)}"
                        + (f" (not {', '.join(sorted(extra))})" if extra else ""))
    if dist == "choice":
        if not isinstance(value["values"], list) or not value["values"]:
            raise SpecError(file, f"{key}.values", "cannot sample: give a non-empty list")
        return dict(value)
    a = _number(value[needed[0]], file, f"{key}.{needed[0]}")
    b = _number(value[needed[1]], file, f"{key}.{needed[1]}")
    if dist in ("uniform", "loguniform") and not a < b:
        raise SpecError(file, key, f"cannot sample: low ({a:g}) must be below high ({b:g})")
    if dist == "loguniform" and a <= 0:
        raise SpecError(file, f"{key}.low", f"cannot sample loguniform from {a:g}: low must "
                        "be above 0")
    if dist == "normal" and not b > 0:
        raise SpecError(file, f"{key}.sd", f"cannot sample: sd must be above 0, got {b:g}")
    return {"dist": dist, needed[0]: a, needed[1]: b}


def _draw(sampler: dict[str, Any], rng: np.random.Generator) -> Any:
    dist = sampler["dist"]
    if dist == "uniform":
        return float(rng.uniform(sampler["low"], sampler["high"]))
    if dist == "loguniform":
        return float(np.exp(rng.uniform(np.log(sampler["low"]), np.log(sampler["high"]))))
    if dist == "normal":
        return float(rng.normal(sampler["mean"], sampler["sd"]))
    values = sampler["values"]
    return values[int(rng.integers(len(values)))]


def run_id(scenario_doc: dict[str, Any], params: dict[str, Any], seed: int,
           duration_s: float, step_s: float) -> str:
    """A run's identity: the same base, values, seed, duration and step give the same id."""
    text = json.dumps({"base": scenario_doc, "params": params, "seed": seed,
                       "duration_s": duration_s, "step_s": step_s}, sort_keys=True,
                      default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _seeds(value: Any, file: str, default: int) -> list[int]:
    if value is None:
        return [default]
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise SpecError(file, "sweep.seeds", "a count of seeds must be at least 1")
        return list(range(value))
    if (not isinstance(value, list) or not value
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                       for s in value)):
        raise SpecError(file, "sweep.seeds", "give a count (3 runs seeds 0, 1, 2) or a "
                        "non-empty list of whole numbers >= 0")
    return list(dict.fromkeys(value))


def _check_values(doc: dict[str, Any], spec_file: str, scenario_source: str, base_dir: Path,
                  table: str, key: str, values: list[Any]) -> None:
    """Each value alone on the base: an unknown key or a value out of bounds stops the
    spec. A rule between two keys (heater_on_k below heater_off_k) that blames another key
    is left to the run, where the combination is known (recorded as a failed run)."""
    for value in dict.fromkeys(json.dumps(v) for v in values):
        try:
            check_tables(apply(doc, {key: json.loads(value)}), scenario_source, base_dir)
        except KeyError as exc:
            raise SpecError(spec_file, f"{table}.\"{key}\"", str(exc.args[0])) from exc
        except ScenarioError as exc:
            if exc.key and exc.key != key and exc.key.split(".")[0] == key.split(".")[0] \
                    and not exc.problem.startswith("unknown key"):
                continue
            raise SpecError(spec_file, f"{table}.\"{key}\"", f"value {json.loads(value)!r}: "
                            f"{exc}") from exc


def load_spec(path: str | Path) -> SweepSpec:
    """Read and check a spec; the runs are expanded and every varied key checked against
    the base scenario.

    Raises:
        SpecError: naming the file and key: an unknown key, an empty range, a distribution
            that cannot be sampled, a value the scenario rejects, an unknown KPI.
    """
    spec_path = Path(path)
    file = str(spec_path)
    doc = _read(spec_path)
    for top in doc:
        if top not in ("sweep", "grid", "distributions"):
            raise SpecError(file, top, "unknown table; a spec has [sweep], and [grid] or "
                            "[distributions]")
    sweep = doc.get("sweep")
    if not isinstance(sweep, dict):
        raise SpecError(file, "sweep", "missing [sweep] table (scenario, duration_days, ...)")
    for key in sweep:
        if key not in _SWEEP_KEYS:
            raise SpecError(file, f"sweep.{key}", f"unknown key; known: {', '.join(_SWEEP_KEYS)}")
    scenario_doc, scenario_source, base_dir = _base_scenario(sweep.get("scenario"), spec_path)
    try:
        base = parse_scenario_document(copy.deepcopy(scenario_doc), scenario_source, base_dir)
    except ScenarioError as exc:
        raise SpecError(file, "sweep.scenario", str(exc)) from exc
    if "duration_s" in sweep and "duration_days" in sweep:
        raise SpecError(file, "sweep.duration_s", "give duration_days or duration_s, not both")
    duration_s = (_number(sweep["duration_s"], file, "sweep.duration_s", True)
                  if "duration_s" in sweep else
                  86400.0 * _number(sweep.get("duration_days", 1.0), file,
                                    "sweep.duration_days", True))
    step_s = _number(sweep.get("step_s", 60.0), file, "sweep.step_s", True)
    if not 0.01 <= step_s <= 600.0:
        raise SpecError(file, "sweep.step_s", f"{step_s:g} s is outside the clock's 0.01..600 s")
    if duration_s < step_s:
        raise SpecError(file, "sweep.duration_s", "shorter than one step")
    mode = sweep.get("mode", "monte_carlo" if "distributions" in doc else "grid")
    if mode not in ("grid", "monte_carlo"):
        raise SpecError(file, "sweep.mode", f"{mode!r}: use \"grid\" or \"monte_carlo\"")
    table = "grid" if mode == "grid" else "distributions"
    other = "distributions" if mode == "grid" else "grid"
    if other in doc:
        raise SpecError(file, other, f"mode is {mode!r}: put the parameters in [{table}]")
    varied = doc.get(table, {})
    if not isinstance(varied, dict):
        raise SpecError(file, table, "must be a table of \"key.path\" = ...")
    kpis = sweep.get("kpis", list(DEFAULT_KPIS))
    if not isinstance(kpis, list) or not kpis:
        raise SpecError(file, "sweep.kpis", "give a non-empty list of KPI names")
    for kpi in kpis:
        if kpi not in KNOWN_KPIS:
            raise SpecError(file, "sweep.kpis", f"unknown KPI {kpi!r}; known: "
                            f"{', '.join(KNOWN_KPIS)}")
    seeds = _seeds(sweep.get("seeds"), file, base.seed)
    points: list[dict[str, Any]]
    if mode == "grid":
        axes = {key: _grid_values(value, file, f"grid.\"{key}\"") for key, value in varied.items()}
        points = [dict(zip(axes, combo, strict=True))
                  for combo in itertools.product(*axes.values())] if axes else [{}]
        values_by_key = axes
    else:
        samples = sweep.get("samples")
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise SpecError(file, "sweep.samples", "monte_carlo needs samples = N (N >= 1)")
        samplers = {key: _sampler(value, file, f"distributions.\"{key}\"")
                    for key, value in varied.items()}
        rng = np.random.default_rng(sweep.get("sampling_seed", 0))
        points = [{key: _draw(s, rng) for key, s in samplers.items()} for _ in range(samples)]
        values_by_key = {key: [p[key] for p in points] for key in samplers}
    if len(points) * len(seeds) > MAX_RUNS:
        raise SpecError(file, table, f"{len(points) * len(seeds):,} runs is over the limit "
                        f"of {MAX_RUNS:,}")
    for key, values in values_by_key.items():
        _check_values(scenario_doc, file, scenario_source, base_dir, table, key, values)
    runs = tuple(RunPoint(run_id(scenario_doc, params, seed, duration_s, step_s), params, seed)
                 for params in points for seed in seeds)
    output = sweep.get("output", f"sweep-results/{spec_path.stem}")
    if not isinstance(output, str) or not output.strip():
        raise SpecError(file, "sweep.output", "give a folder for the results")
    series = sweep.get("series_samples", 50)
    if isinstance(series, bool) or not isinstance(series, int) or not 1 <= series <= 10_000:
        raise SpecError(file, "sweep.series_samples", "a whole number from 1 to 10000")
    return SweepSpec(file, str(sweep.get("name", spec_path.stem)), scenario_doc,
                     scenario_source, str(base_dir), duration_s, step_s, mode,
                     tuple(values_by_key), tuple(kpis), Path(output).expanduser(), series,
                     runs)

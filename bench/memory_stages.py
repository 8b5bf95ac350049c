"""Where the twin's memory goes: resident memory by model through the build and the first
steps, each model's step temporaries, and the arrays each model holds.

Usage:
    .venv/bin/python bench/memory_stages.py [--size 1m] [--workers 2] [--top 25]

One process, as ``odc run`` tunes it (malloc, one BLAS thread). It loads the scenario
(``bench/scale.py``'s sizes), builds the engine with every model's build and step timed
by a 5 ms resident-memory sampler, and prints:

- after each model's build: the resident memory (MB);
- for step 0 (inside the build), step 1 (the first timed step: the thermal settle) and
  step 2: each model's resident memory before and after its step and the most the
  sampler saw in it; in step 2, also the most memory the model's step had allocated at
  once beyond what it started with (tracemalloc: numpy reports its arrays to it), and
  what it kept;
- the heap trimmed after the build and after each step (what the server does from
  250,000 satellites), and the PSS of the twin and its workers summed;
- the numpy arrays each model holds (found through its attributes), largest first.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import tracemalloc
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from memory_soak import PeakSampler  # noqa: E402
from scale import SIZES, load, total_pss_mb  # noqa: E402

from twin.runtime.cli import count_argument  # noqa: E402

MB = 1e6


def instrumented(entry: Any, sampler: PeakSampler, step_label: list[str]) -> Any:
    """``entry`` whose build prints its resident memory and whose model's step prints its
    own (``step_label[0]`` names the step)."""

    def build(built: Any, make: Any = entry.build, name: str = entry.name) -> Any:
        sampler.stage = f"build {name}"
        model = make(built)
        print(f"built {name:16s} resident {sampler.rss_mb():7.0f} MB", flush=True)
        step = model.step

        def timed_step(ctx: Any) -> None:
            sampler.stage = stage = f"{step_label[0]} {name}"
            tracing = tracemalloc.is_tracing()
            if tracing:
                tracemalloc.reset_peak()
                held = tracemalloc.get_traced_memory()[0]
            before = sampler.rss_mb()
            step(ctx)
            temporaries = ""
            if tracing:
                now, peak = tracemalloc.get_traced_memory()
                temporaries = (f"  temporaries at most {(peak - held) / MB:5.0f} MB,"
                               f" kept {(now - held) / MB:4.0f}")
            print(f"  {stage:24s} resident {before:7.0f} -> {sampler.rss_mb():7.0f},"
                  f" most {sampler.peaks.get(stage, before):7.0f} MB{temporaries}",
                  flush=True)

        model.step = timed_step
        return model

    return dataclasses.replace(entry, build=build)


def held_arrays(models: list[Any]) -> list[tuple[str, int]]:
    """(path, bytes) of every numpy array owning its memory reachable from the models'
    attributes (dicts, lists, tuples, objects), each counted once, largest first."""
    found: dict[int, tuple[str, int]] = {}
    seen: set[int] = set()

    def visit(obj: Any, path: str, depth: int) -> None:
        if id(obj) in seen or depth > 8 or isinstance(obj, (str, bytes, int, float)):
            return
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            owner = obj
            while isinstance(owner.base, np.ndarray):
                owner = owner.base
            if owner.base is None:
                found.setdefault(id(owner), (path, owner.nbytes))
            return
        if isinstance(obj, dict):
            for key, value in list(obj.items())[:50]:
                visit(value, f"{path}.{key}", depth + 1)
        elif isinstance(obj, (list, tuple)):
            for k, value in enumerate(obj[:50]):
                visit(value, f"{path}[{k}]", depth + 1)
        else:
            attributes = getattr(obj, "__dict__", None)
            if attributes is not None:
                visit(attributes, path, depth)
            for slot in getattr(type(obj), "__slots__", ()) or ():
                if hasattr(obj, slot):
                    visit(getattr(obj, slot), f"{path}.{slot}", depth + 1)

    for model in models:
        visit(model, model.name, 0)
    return sorted(found.values(), key=lambda item: -item[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=SIZES, default="1m")
    parser.add_argument("--workers", type=count_argument(1), default=2)
    parser.add_argument("--top", type=count_argument(0), default=25,
                        help="largest held arrays listed")
    args = parser.parse_args()

    from twin.core.clock import SimClock
    from twin.core.engine import Engine
    from twin.models.registry import MODELS
    from twin.runtime.allocator import keep_temporaries_in_heap, release_free_memory
    from twin.runtime.blas import limit_blas_threads

    keep_temporaries_in_heap()  # as odc run does
    limit_blas_threads(1)
    warnings.simplefilter("ignore", RuntimeWarning)
    sampler = PeakSampler(period_s=0.005)
    sampler.stage = "load"
    scenario = load(args.size)
    print(f"loaded {len(scenario.satellites):,} satellites: resident {sampler.rss_mb():.0f} MB")
    label = ["step 0"]
    models = tuple(instrumented(entry, sampler, label) for entry in MODELS)
    clock = SimClock(scenario.epoch_utc, rate_hz=1.0, warp=1.0, fast=True)
    engine = Engine(scenario, clock, workers=args.workers, models=models)
    try:
        print(f"engine built: resident {sampler.rss_mb():.0f} MB, twin and workers (PSS)"
              f" {total_pss_mb():.0f} MB")
        engine.events.drain()
        release_free_memory()
        print(f"  heap trimmed: resident {sampler.rss_mb():.0f} MB")
        for k in (1, 2):
            label[0] = sampler.stage = f"step {k}"
            if k == 2:
                tracemalloc.start()
            started = time.perf_counter()
            engine.step()
            engine.events.drain()
            most = max((mb for stage, mb in sampler.peaks.items()
                        if stage.startswith(f"step {k}")), default=0.0)
            print(f"step {k} ({time.perf_counter() - started:.2f} s): resident"
                  f" {sampler.rss_mb():.0f} MB, most {most:.0f};"
                  f" twin and workers (PSS) {total_pss_mb():.0f} MB", flush=True)
            tracemalloc.stop()
            release_free_memory()
            print(f"  heap trimmed: resident {sampler.rss_mb():.0f} MB, twin and workers"
                  f" (PSS) {total_pss_mb():.0f} MB")
        held = held_arrays(engine.subsystems)
        by_model: dict[str, int] = {}
        for path, nbytes in held:
            model = path.split(".")[0].split("[")[0]
            by_model[model] = by_model.get(model, 0) + nbytes
        print(f"arrays the models hold: {sum(by_model.values()) / MB:.0f} MB; by model: "
              + ", ".join(f"{name} {nbytes / MB:.0f}" for name, nbytes in
                          sorted(by_model.items(), key=lambda item: -item[1]) if nbytes >= MB / 2))
        for path, nbytes in held[:args.top]:
            print(f"  {nbytes / MB:7.1f} MB  {path}")
    finally:
        sampler.stop()
        engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

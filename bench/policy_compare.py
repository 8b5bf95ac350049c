"""Compare the scheduler policies over a simulated day on one scenario (docs/models.md).

Usage:
    .venv/bin/python bench/policy_compare.py [--hours 24]
        [--scenario assets/scenarios/sun_follow.toml]
        [--extra "[workload]\\narrivals_per_node_h = 0.6"]

Runs the full twin (orbit, faults, compute, power, thermal, limits) at 30 s steps once per
policy on the same seed and prints the fleet numbers that decide between them. Where the
scenario runs multi-node jobs (``[workload] multi_node_jobs``), it adds their progress,
rollbacks, steps stalled and queued, the mean bottleneck and communication fraction of the jobs
while they ran, and the share of their running time spent writing checkpoints
(docs/performance.md, "Multi-node jobs and the network-aware policy"):

    .venv/bin/python bench/policy_compare.py --scenario assets/scenarios/suncatcher.toml
    .venv/bin/python bench/policy_compare.py --scenario bench/walker_links.toml
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from twin.core.clock import SimClock  # noqa: E402
from twin.core.engine import Engine  # noqa: E402
from twin.runtime.cli import positive_argument  # noqa: E402
from twin.scenario import ScenarioError, parse_scenario  # noqa: E402

KEYS = ("energy_per_work_j_per_pflop", "goodput_frac", "lost_work_accel_h",
        "useful_work_accel_h", "queue_wait_mean_s", "jobs_done", "results_delivered")


def run(policy: str, text: str, hours: float) -> dict[str, float]:
    scenario = parse_scenario(text, base_dir=ROOT / "assets" / "scenarios")
    # The policy from the epoch on: the epoch step already places jobs.
    workload = {**scenario.sections.get("workload", {}), "policy": policy}
    scenario = dataclasses.replace(scenario, sections={**scenario.sections,
                                                       "workload": workload})
    clock = SimClock(scenario.epoch_utc, rate_hz=1.0, warp=30.0, fast=True)
    engine = Engine(scenario, clock)
    multinode = engine.compute_model.multinode
    capped = stalled = running = queued = 0
    bottleneck_sum = comm_sum = 0.0
    for _ in range(int(hours * 3600 / 30)):
        engine.step()
        capped += int(np.count_nonzero(np.isfinite(engine.quantity("power_cap_w"))))
        for job in [] if multinode is None else multinode.jobs:  # a handful
            if job.state == "running" and job.stalled:
                stalled += 1
            elif job.state == "queued":
                queued += 1
            elif job.state == "running":
                running += 1
                bottleneck_sum += job.bottleneck_bps
                comm_sum += job.comm_frac
    fleet = engine.header()["fleet"]
    numbers = {**{k: fleet[k] for k in KEYS}, "capped_node_steps": capped}
    if multinode is not None:
        numbers.update(
            mn_iterations=sum(job.iterations for job in multinode.jobs),
            mn_rollbacks=fleet["multi_node_rollbacks"], mn_stalled_steps=stalled,
            mn_queued_steps=queued,
            mn_bottleneck_gbps=bottleneck_sum / max(running, 1) / 1e9,
            mn_comm_frac=comm_sum / max(running, 1),
            mn_checkpoint_frac=fleet["multi_node_checkpoint_frac"])
    return numbers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default=str(ROOT / "assets/scenarios/default.toml"))
    parser.add_argument("--hours", type=positive_argument("hours", 8760.0), default=24.0)
    parser.add_argument("--extra", default="", help="TOML appended to the scenario")
    args = parser.parse_args()
    try:
        text = Path(args.scenario).read_text() + "\n" + args.extra.replace("\\n", "\n")
        parse_scenario(text, base_dir=ROOT / "assets" / "scenarios")  # a bad one stops here
    except OSError as exc:
        parser.error(f"argument --scenario: {exc}")
    except ScenarioError as exc:
        parser.error(f"argument --scenario with --extra: {exc}")
    for policy in ("first_fit", "sun_aware", "network_aware"):
        numbers = run(policy, text, args.hours)
        print(policy, " ".join(f"{k}={v:.4g}" for k, v in numbers.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

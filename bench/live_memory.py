"""The live twin's whole memory: ``odc run`` as an operator starts it, its PSS sampled.

Usage:
    .venv/bin/python bench/live_memory.py [--seconds 120] [--every 10] \
        -- --scenario megafleet --workers 2

Starts ``python -m odc.cli run -q <args after -->`` on loopback ports of its own (no
subscriber), waits for its first state message's step (the twin's log says ``workers``
once built), then every ``--every`` seconds prints the sum of the PSS of the twin and all
its descendants (SGP4 workers, the forkserver, Python's resource tracker: a page shared
by several counted once) and the twin's own RSS. Stops the twin with SIGINT at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from twin.runtime.cli import positive_argument  # noqa: E402

MB = 1e6
ANY_PORT = "tcp://127.0.0.1:*"


def total_pss_mb(process: psutil.Process) -> tuple[float, float]:
    """(PSS of the process and its descendants, the process's own RSS), MB."""
    total = 0
    for member in (process, *process.children(recursive=True)):
        try:
            total += member.memory_full_info().pss
        except psutil.NoSuchProcess:
            continue
    return total / MB, process.memory_info().rss / MB


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=positive_argument("seconds", 86400.0), default=120.0)
    parser.add_argument("--every", type=positive_argument("every", 3600.0), default=10.0)
    parser.add_argument("run_args", nargs="*", help="odc run's arguments, after --")
    args = parser.parse_args()
    command = [sys.executable, "-m", "odc.cli", "run", "-q", "--pub", ANY_PORT, "--cmd",
               ANY_PORT, "--ingest", ANY_PORT, *args.run_args]
    started = time.monotonic()
    twin = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        while "workers" not in (line := twin.stderr.readline()):
            if twin.poll() is not None or not line:
                print("odc run ended before it started", file=sys.stderr)
                return 1
        print(json.dumps({"built_s": round(time.monotonic() - started, 1)}), flush=True)
        process = psutil.Process(twin.pid)
        samples = []
        live_from = time.monotonic()
        while time.monotonic() - live_from < args.seconds and twin.poll() is None:
            time.sleep(args.every)
            pss, rss = total_pss_mb(process)
            samples.append(round(pss))
            print(json.dumps({"t_s": round(time.monotonic() - live_from), "total_pss_mb":
                              round(pss), "twin_rss_mb": round(rss)}), flush=True)
        print(json.dumps({"total_pss_mb_min": min(samples), "total_pss_mb_max": max(samples),
                          "load_average": [round(x, 2) for x in os.getloadavg()]}))
    finally:
        if twin.poll() is None:
            twin.send_signal(signal.SIGINT)
            try:
                twin.wait(30)
            except subprocess.TimeoutExpired:
                twin.kill()
                twin.wait()
        twin.stderr.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

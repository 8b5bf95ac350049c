"""State frames are byte for byte what they were before the contracts refactor (issue 13).

``tests/golden/state_frames.json`` was written by this module (``python -m
tests.test_golden_frames``) on the code before the refactor: per scenario, the field list
and the SHA-256 of every encoded ``state`` message (all frames, header included) at a few
steps, plus each field's bytes at the last step so a failure names the field. The run is
fixed: seed 7, a fast clock, and the same commands at the same steps (a job, a fault, a
power cap, a coolant change, an upset), so the generator, the scheduler and every model
are exercised. Regenerate only for a change of behaviour the docs state.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from twin.core.clock import SimClock
from twin.core.engine import Engine
from twin.protocol.codec import PROTOCOL_VERSION, StateEncoder
from twin.scenario import load_scenario

GOLDEN = Path(__file__).parent / "golden" / "state_frames.json"
SEED = 7
STEPS = {"default": 120, "starlink": 40}
CHECKED_STEPS = {"default": (0, 1, 30, 60, 119), "starlink": (0, 1, 20, 39)}
COMMANDS_AT = {
    2: {"cmd": "submit_job", "kind": "training", "size_accel_h": 40.0},
    3: {"cmd": "inject_fault", "sat": 1, "kind": "radiator", "health_frac": 0.4},
    4: {"cmd": "set_power_cap", "sat": 2, "power_w": 1500.0},
    5: {"cmd": "set_coolant_flow", "sat": 3, "value": 0.3},
    6: {"cmd": "inject_upset", "sat": 0, "reset": True},
    8: {"cmd": "inject_fault", "sat": 4, "kind": "accelerator", "count": 2},
}


def _command(engine: Engine, request: dict[str, Any]) -> None:
    reply = engine.run_command(dict(request))
    assert reply.get("ok"), reply


def record(name: str) -> dict[str, Any]:
    """The fields and frame hashes of the fixed run on bundled scenario ``name``."""
    scenario = load_scenario(name)
    clock = SimClock(scenario.epoch_utc, rate_hz=1.0, warp=60.0, fast=True)
    engine = Engine(scenario, clock, seed=SEED)
    encoder = StateEncoder(engine.field_specs)
    hashes: dict[str, str] = {}
    per_field: dict[str, str] = {}
    for k in range(STEPS[name]):
        if k in COMMANDS_AT:
            _command(engine, COMMANDS_AT[k])
        engine.step()
        if k in CHECKED_STEPS[name]:
            header = {"v": PROTOCOL_VERSION, "seq": k, "t_utc": clock.t_utc,
                      **engine.header()}
            frames = encoder.encode(header, [f.array for f in engine.fields])
            digest = hashlib.sha256()
            for frame in frames:
                digest.update(bytes(frame))
            hashes[str(k)] = digest.hexdigest()
    for f in engine.fields:
        per_field[f.spec.name] = hashlib.sha256(np.ascontiguousarray(f.array).tobytes()
                                                ).hexdigest()
    return {"fields": [spec.name for spec in engine.field_specs],
            "frame_sha256": hashes, "last_step_field_sha256": per_field}


@pytest.mark.parametrize("name", sorted(STEPS))
def test_state_frames_are_byte_for_byte_the_recorded_ones(name: str) -> None:
    golden = json.loads(GOLDEN.read_text())[name]
    now = record(name)
    assert now["fields"] == golden["fields"], "the field list changed"
    changed = [f for f, h in golden["last_step_field_sha256"].items()
               if now["last_step_field_sha256"][f] != h]
    assert not changed, f"fields that differ at the last step: {changed}"
    assert now["frame_sha256"] == golden["frame_sha256"]


if __name__ == "__main__":
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps({n: record(n) for n in sorted(STEPS)}, indent=1) + "\n")
    sys.stdout.write(f"wrote {GOLDEN}\n")

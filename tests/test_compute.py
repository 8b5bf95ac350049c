"""Compute: DVFS under a cap, thermal hysteresis, jobs finishing when they should, commands."""

from __future__ import annotations

import numpy as np
import pytest
from computeutil import (
    DAWN_DUSK,
    QUIET,
    SMALL_AIRFRAME,
    SMALL_HOST,
    STATION,
    WALKER,
    command,
    engine,
)

from twin.core.subsystem import CommandRejected, EventLog, StepContext
from twin.models.compute import (
    FAULT,
    HEAT,
    NONE,
    POWER,
    QUEUE,
    ComputeModel,
    ComputeParams,
    dvfs_clock,
)
from twin.protocol.codec import pack
from twin.scenario import ASSETS_DIR, parse_scenario

ONE_MS = 1e-3  # timing tolerance, s
ONE_MW = 1e-3  # power tolerance, W


def quiet_model(text: str = DAWN_DUSK + QUIET) -> ComputeModel:
    return ComputeModel(parse_scenario(text))


def step(model: ComputeModel, t: float, dt: float, rng: np.random.Generator,
         **shared: object) -> StepContext:
    ctx = StepContext.with_quantities(t, dt, EventLog(t_utc=t), rng, **shared)
    model.step(ctx)
    return ctx


def test_dvfs_clock_meets_the_cap_exactly() -> None:
    p = ComputeParams()
    static = np.array([1000.0, 1000.0, 1000.0, 1000.0])
    dynamic = np.array([4880.0, 4880.0, 4880.0, 0.0])
    # Cap for clock 0.6: static + dynamic * 0.6 ** k.
    cap = static + dynamic * np.array([0.6, 1.2, 0.2, 0.5]) ** p.dvfs_exponent
    cap[3] = 500.0  # no running work: nothing to throttle
    clock = dvfs_clock(p, cap, static, dynamic)
    assert clock[0] == pytest.approx(0.6, abs=1e-12)
    assert clock[1] == 1.0  # headroom: full clock
    assert clock[2] == 0.0  # below min_clock_frac (0.35): jobs suspend
    assert clock[3] == 1.0
    drawn = static[0] + dynamic[0] * clock[0] ** p.dvfs_exponent
    assert drawn == pytest.approx(cap[0], abs=ONE_MW)


def test_single_job_in_full_sun_finishes_on_time() -> None:
    """8 accelerator-hours on 8 accelerators at full clock: exactly one hour."""
    eng = engine(DAWN_DUSK + QUIET + SMALL_HOST, dt_s=60.0)
    job_id = command(eng, "submit_job", kind="training", size_accel_h=8.0, accelerators=8)[
        "job_id"]
    for _ in range(70):
        eng.step()
    job = command(eng, "job", job_id=job_id)["job"]
    assert job["state"] == "done"
    assert job["finish_t_utc"] - job["start_t_utc"] == pytest.approx(3600.0, abs=ONE_MS)
    compute = eng.compute_model
    assert not np.isfinite(eng.quantity("power_cap_w")).any()  # the Sun covers the load
    assert compute.fleet()["goodput_frac"] == 1.0
    assert compute.fleet()["useful_work_accel_h"] == pytest.approx(8.0, rel=1e-12)


def test_capped_interval_delays_the_job_by_the_dvfs_deficit() -> None:
    """A cap held for 20 min slows the clock to f: the job ends 20 min x (1 - f) later."""
    model = quiet_model()
    rng = np.random.default_rng(0)
    p = model.params
    model.commands()["submit_job"]({"kind": "training", "size_accel_h": 8.0, "accelerators": 8})
    t, dt = 1.0e9, 60.0
    step(model, t, dt, rng)  # places the job
    start = t
    static = p.host_power_w + 8 * p.idle_power_w
    cap_w = static + 8 * (p.full_power_w - p.idle_power_w) * 0.5 ** p.dvfs_exponent
    job_id = 1
    for k in range(1, 200):
        capped = 10 <= k < 30
        step(model, t + k * dt, dt, rng, power_cap_w=np.array([cap_w if capped else np.inf]))
        if capped:
            assert model.clock.array[0] == pytest.approx(0.5)
            assert model.throttle.array[0] == 2
            assert model.reason.array[0] == POWER
            assert model.power.array[0] == pytest.approx(cap_w, rel=1e-6)
    finished = model.finished[job_id]
    assert finished["start_t_utc"] == start
    assert finished["finish_t_utc"] - start == pytest.approx(3600.0 + 1200.0 * 0.5, abs=ONE_MS)


def test_small_battery_through_eclipse_caps_and_delays_by_the_clock_deficit() -> None:
    """Full twin (orbit, power, thermal): the delay equals the integral of (1 - clock)."""
    small_battery = "[power]\nbattery_capacity_wh = 2500.0\nsoc_initial_frac = 0.5\n"
    eng = engine(WALKER + QUIET + small_battery, dt_s=30.0)
    command(eng, "submit_job", kind="training", size_accel_h=24.0, accelerators=8)
    eng.step()  # placed at the end of this step
    deficit_s = 0.0
    capped_steps = 0
    for _ in range(2000):
        eng.step()
        compute = eng.compute_model
        if 1 not in compute.finished:
            deficit_s += 30.0 * (1.0 - float(compute.clock.array[0]))
            capped_steps += int(compute.throttle.array[0] == 2)
        else:
            break
    finished = compute.finished[1]
    assert capped_steps > 0, "the eclipse never capped the node: battery not small enough"
    elapsed = finished["finish_t_utc"] - finished["start_t_utc"]
    # Work = 8 accelerators x clock; the last step counts whole in the deficit sum but is
    # cut at the finish, so allow one step of clock deficit.
    assert elapsed == pytest.approx(3 * 3600.0 + deficit_s, abs=30.0)
    assert elapsed > 3 * 3600.0 + 60.0


def test_thermal_throttle_has_hysteresis() -> None:
    model = quiet_model()
    rng = np.random.default_rng(0)
    p = model.params
    model.commands()["submit_job"]({"kind": "training", "size_accel_h": 80.0, "accelerators": 8})
    limit, band = p.throttle_temp_k, p.throttle_hysteresis_k
    temps = [300.0, limit + 1.0, limit - 1.0, limit - band + 0.5, limit - band - 0.5, 300.0]
    expect = [False, True, True, True, False, False]
    t = 1.0e9
    step(model, t, 60.0, rng)
    for k, (temp, on) in enumerate(zip(temps, expect, strict=True)):
        ctx = step(model, t + (k + 1) * 60.0, 60.0, rng, temp_junction_k=np.array([temp]))
        assert bool(model.thermal_on[0]) is on, (temp, on)
        assert model.clock.array[0] == pytest.approx(p.thermal_clock_frac if on else 1.0)
        assert model.reason.array[0] == (HEAT if on else NONE)
        kinds = [e["kind"] for e in ctx.events.pending]
        if k == 1:
            assert kinds == ["thermal_throttle"]
        if k == 4:
            assert kinds == ["thermal_throttle_end"]


def test_reason_codes_for_queue_and_fault() -> None:
    eng = engine(DAWN_DUSK + QUIET)
    eng.step()
    assert eng.compute_model.reason.array[0] == QUEUE
    command(eng, "submit_job", kind="inference", size_accel_h=100.0, accelerators=8)
    eng.step()
    eng.step()
    assert eng.compute_model.reason.array[0] == NONE
    command(eng, "inject_fault", sat=0, kind="accelerator", count=2)
    eng.step()
    compute = eng.compute_model
    # The 8-accelerator job no longer fits 6 working ones: back in the queue.
    assert compute.fleet()["jobs_evicted"] == 1
    assert compute.throttle.array[0] == 3
    assert compute.reason.array[0] in (FAULT, QUEUE)
    command(eng, "clear_fault", sat=0)
    eng.step()
    eng.step()
    assert eng.quantity("accelerators_ok")[0] == 8
    assert compute.jobs_running.array[0] == 1


def test_operator_power_cap_and_its_validation() -> None:
    eng = engine(DAWN_DUSK + QUIET)
    command(eng, "submit_job", kind="training", size_accel_h=100.0, accelerators=8)
    eng.step()
    # Host 4.6 kW and 8 busy accelerators 720 W static: the cap leaves the clock room.
    reply = command(eng, "set_power_cap", sat=0, power_w=7500.0)
    assert reply == {"ok": True, "sat": 0, "power_w": 7500.0, "floor_w": 4600.0 + 8 * 90.0}
    eng.step()
    compute = eng.compute_model
    assert compute.cap.array[0] == 7500.0
    assert compute.power.array[0] == pytest.approx(7500.0, rel=1e-5)
    # Below the floor (host and idle accelerators) the reply says what it will do.
    low = command(eng, "set_power_cap", sat=0, power_w=4000.0)
    assert "below the node's floor of 5,320 W" in low["note"], low
    eng.step()
    clock = {f.spec.name: f.array for f in eng.fields}["clock_frac"]
    assert clock[0] == 0.0 and 4600.0 <= compute.power.array[0] <= 4600.0 + 8 * 90.0
    command(eng, "set_power_cap", sat=0, power_w=7500.0)
    command(eng, "set_power_cap", sat="all")
    eng.step()
    assert np.isinf(compute.cap.array[0])
    for bad, message in (
        ({"sat": 5, "power_w": 10.0}, "out of range"),
        ({"sat": 0, "power_w": -1.0}, "out of range"),
        ({"sat": 0, "power_w": "lots"}, "must be a number"),
        ({"sat": 0, "watts": 10.0}, "unexpected argument"),
    ):
        with pytest.raises(CommandRejected, match=message):
            command(eng, "set_power_cap", **bad)


def test_submit_and_cancel_validation() -> None:
    eng = engine(DAWN_DUSK + QUIET)
    for bad, message in (
        ({"kind": "mining"}, "'kind' must be one of"),
        ({"accelerators": 9}, "out of range"),
        ({"accelerators": 2.5}, "must be an integer"),
        ({"size_accel_h": 0.0}, "out of range"),
        ({"priority": True}, "must be an integer"),
    ):
        with pytest.raises(CommandRejected, match=message):
            command(eng, "submit_job", **bad)
    job_id = command(eng, "submit_job")["job_id"]
    assert command(eng, "cancel_job", job_id=job_id)["was"] == "queued"
    with pytest.raises(CommandRejected, match="not queued or running"):
        command(eng, "cancel_job", job_id=job_id)
    with pytest.raises(CommandRejected, match="'job_id' must be an integer in \\[1, inf\\]"):
        command(eng, "cancel_job", job_id="7")
    with pytest.raises(CommandRejected, match="'kind' must be one of"):
        command(eng, "inject_fault", sat=0, kind="meteor")


def test_fields_and_fleet_carry_units() -> None:
    eng = engine(DAWN_DUSK + QUIET)
    names = {f.spec.name: f.spec.unit for f in eng.compute_model.fields()}
    for name in ("utilization_frac", "delivered_flop_s", "throttle_code", "limit_reason",
                 "compute_cap_w", "compute_power_w", "jobs_running", "upsets", "dose_gy",
                 "storage_backlog_bytes"):
        assert name in names
    meta = eng.meta()["subsystems"]["compute"]
    assert set(meta["limit_reasons"]) == {str(k) for k in range(8)}
    assert meta["throttle_codes"]["2"] == "power"


# The default scenario made eventful: chips that throttle, frequent upsets half of which
# reset a device, a busy queue with frequent scheduling passes; power caps in eclipse.
EVENTFUL = """
[compute]
host_power_per_accelerator_w = 50.0
throttle_temp_k = 350.0
throttle_hysteresis_k = 1.0
[radiation]
see_scale = 1000.0
accel_sefi_dose_per_event_gy = 0.12
[workload]
arrivals_per_node_h = 3.0
schedule_interval_s = 120.0
max_queue = 200
"""

# Twenty dawn-dusk nodes at 5 s steps: no eclipse, so most steps change nothing for compute
# (the steps whose values are kept), with now and then a finish, an upset or a throttle.
STEADY = """
[scenario]
name = "steady"
epoch = "2026-03-20T12:00:00Z"
seed = 11

[[sun_synchronous]]
name = "dd"
altitude_km = 650.0
ltan_h = 18.0
planes = 2
sats_per_plane = 10

[compute]
host_power_per_accelerator_w = 50.0
throttle_temp_k = 368.0
hbm_throttle_temp_k = 378.0
[radiation]
see_scale = 15.0
accel_sefi_dose_per_event_gy = 0.12
""" + SMALL_AIRFRAME + STATION  # the small radiator: its chips throttle now and then

COMMANDS = {
    3: [("inject_fault", {"sat": 2, "kind": "accelerator", "count": 3})],
    8: [("set_policy", {"policy": "first_fit"}),
        ("inject_fault", {"sat": 5, "kind": "accelerator", "count": 8})],
    12: [("clear_fault", {"sat": 2})],
    20: [("clear_fault", {"sat": 5})],
    30: [("inject_upset", {"sat": 0, "reset": True}),
         ("set_power_cap", {"sat": 1, "power_w": 2000.0})],
    45: [("inject_upset", {"sat": 3, "reset": False})],
    60: [("set_power_cap", {"sat": "all"})],
    # A starved coolant loop heats node 4 until the throttle holds its dies, for a while.
    70: [("set_coolant_flow", {"sat": 4, "value": 0.02})],
    96: [("set_coolant_flow", {"sat": 4, "value": 1.0})],
}


@pytest.mark.parametrize(("text", "dt_s", "steps", "mirror_every"), [
    pytest.param(STEADY, 5.0, 300, 50, id="steady"),
    pytest.param((ASSETS_DIR / "scenarios" / "default.toml").read_text() + EVENTFUL, 60.0,
                 150, 9, id="eventful"),
])
def test_values_kept_between_steps_equal_a_fresh_computation(text: str, dt_s: float,
                                                             steps: int,
                                                             mirror_every: int) -> None:
    """Compute keeps what did not change from one step to the next and skips rewriting
    fields that would get the same values. A twin whose compute forgets all of it before
    every step, and takes the per-job and per-device paths for stalls and resets, publishes
    the same fields and fleet map, bit for bit: through quiet steps, finishes, upsets,
    resets, power caps, thermal throttling, failed accelerators, commands and a mirror's
    measured drivers."""
    kept, fresh = engine(text, dt_s=dt_s), engine(text, dt_s=dt_s)
    forgetful = fresh.compute_model
    forgetful.upsets.stall_horizon_t = forgetful.upsets.reset_horizon_t = np.inf
    seen = {"thermal": 0, "done": 0, "upsets": 0, "kept": 0}
    for k in range(steps):
        commands = [*COMMANDS.get(k, ())]
        if k % 40 == 10:  # short jobs: finishes while nothing else changes
            commands.append(("submit_job", {"kind": "inference", "size_accel_h": 0.02,
                                            "accelerators": 1}))
        for name, args in commands:
            assert command(kept, name, **args) == command(fresh, name, **args)
        forgetful.forget_kept()
        for eng in (kept, fresh):
            eng.step()
            if k % mirror_every == 4:  # the mirror writes some nodes' fields after the step
                eng.compute_model.take_measured(np.array([3, 7]), {
                    "utilization_frac": np.array([0.5, np.nan]),
                    "compute_power_w": np.array([np.nan, 1234.0])})
        for a, b in zip(kept.fields, fresh.fields, strict=True):
            assert a.array.tobytes() == b.array.tobytes(), (k, a.spec.name)
        fleet = kept.header()["fleet"]
        assert pack(fleet) == pack(fresh.header()["fleet"]), k  # NaN-safe, types and order
        seen["thermal"] += fleet["n_throttled_thermal"] > 0
        seen["kept"] += kept.compute_model._published is not None
        seen["done"], seen["upsets"] = fleet["jobs_done"], fleet["upsets_total"]
    # The run went through what it is meant to (steady: mostly steps with values kept).
    assert seen["thermal"] and seen["done"] and seen["upsets"], seen
    assert dt_s > 5.0 or seen["kept"] > steps // 2, seen

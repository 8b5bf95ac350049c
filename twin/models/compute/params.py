"""Compute's parameters and the codes and totals it declares.

``ComputeParams`` is the ``[compute]`` scenario table (one node's payload). The throttle
and limit-reason codes label the ``throttle_code`` and ``limit_reason`` fields, and
``FLEET_TOTALS`` declares the fleet totals compute publishes (``meta.totals``): the wire
contract, kept apart from the code that computes it so it reads in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field

THROTTLE_CODES: dict[int, str] = {0: "none", 1: "thermal", 2: "power", 3: "fault"}
"""``throttle_code``: why the node runs below its healthy full speed (fault: failed or
resetting accelerators, or no usable orbit)."""

LIMIT_REASONS: dict[int, str] = {
    0: "none: every working accelerator busy at full clock",
    1: "queue: idle accelerators, no queued job fits",
    2: "heat: chip thermally throttled",
    3: "power: clock lowered or work refused under the power cap",
    4: "radiation: job stalled by a device reset after an upset",
    5: "fault: failed accelerators or orbit error",
    6: "storage: result storage full, waiting for ground contact",
    7: "eclipse_ahead: sun-aware scheduler holding work for a predicted eclipse",
}
"""``limit_reason``: the cause that costs the node the most accelerator-equivalents now."""
NONE, QUEUE, HEAT, POWER, RADIATION, FAULT, STORAGE, ECLIPSE_AHEAD = range(8)

PFLOP = 1e15


@dataclass(frozen=True)
class ComputeParams:
    """``[compute]``: one node's payload. Defaults: an 8 x H100-SXM-class node.

    Attributes:
        accelerators_per_node: Installed accelerators.
        peak_flop_s: Dense BF16 peak per accelerator at full clock (FLOP/s); H100 SXM
            989 TFLOP/s (NVIDIA H100 datasheet).
        full_power_w: Power of one busy accelerator at full clock (W); H100 SXM TDP 700 W.
        idle_power_w: One accelerator holding a job but not computing (W).
        sleep_power_w: One accelerator with no job, clock- and power-gated (W).
        host_power_per_accelerator_w: Everything in the node but its accelerators (host
            CPUs, memory, NVSwitch, NICs, storage), always on, per installed accelerator
            (W): the node's host power is this times ``accelerators_per_node``
            (``host_power_w``). 575 W: an NVIDIA DGX H100 draws 10.2 kW at most with 8 x
            700 W GPUs, so 4.6 kW, 575 W per GPU, for the rest (docs/models.md, "Host").
        dvfs_exponent: Dynamic power ~ clock^exponent over the DVFS range (CMOS P ~ C V^2
            f with V roughly linear in f gives ~3; measured GPUs 2-3).
        min_clock_frac: Lowest DVFS clock; below it the node suspends its jobs.
        throttle_temp_k: Junction (die) temperature above which the clock is cut (K).
        hbm_throttle_temp_k: HBM temperature above which the clock is cut (K).
        throttle_hysteresis_k: The cut lifts once junction and HBM are this much below
            their limits (K).
        thermal_clock_frac: Clock while thermally throttled where the throttle knows no
            plate temperature and die resistances (compute stepped alone); in the twin it
            holds the dies at their limits instead (docs/models.md).
        storage_bytes: Result storage per node (bytes).
        leakage_frac: Leakage power of one powered accelerator at ``leakage_ref_temp_k``,
            as a fraction of ``full_power_w``; the datasheet powers above hold there.
        leakage_ref_temp_k: Junction temperature the datasheet powers hold at (K).
        leakage_temp_coeff_per_k: Leakage grows as exp(coeff * (T_j - T_ref)) (1/K).
    """

    accelerators_per_node: int = field(default=8, metadata={"min": 1, "max": 64})
    peak_flop_s: float = field(default=989e12, metadata={"gt": 0.0, "max": 1e18,
                                                         "unit": "FLOP/s"})
    full_power_w: float = field(default=700.0, metadata={"gt": 0.0, "max": 1e5, "unit": "W"})
    idle_power_w: float = field(default=90.0, metadata={"min": 0.0, "max": 1e5, "unit": "W"})
    sleep_power_w: float = field(default=15.0, metadata={"min": 0.0, "max": 1e5, "unit": "W"})
    host_power_per_accelerator_w: float = field(default=575.0, metadata={
        "min": 0.0, "max": 1e5, "unit": "W"})
    dvfs_exponent: float = field(default=2.5, metadata={"min": 1.0, "max": 4.0})
    min_clock_frac: float = field(default=0.35, metadata={"gt": 0.0, "max": 1.0})
    # 10 °C at least: the die and HBM fields warn 2 K past these, which must stay above
    # their 5 °C low warning (thermal.params.die_limits_k).
    throttle_temp_k: float = field(default=358.15, metadata={"min": 283.15, "max": 1000.0,
                                                             "unit": "K"})
    hbm_throttle_temp_k: float = field(default=368.15, metadata={"min": 283.15,
                                                                 "max": 1000.0, "unit": "K"})
    throttle_hysteresis_k: float = field(default=5.0, metadata={"min": 0.0, "max": 100.0,
                                                                "unit": "K"})
    thermal_clock_frac: float = field(default=0.5, metadata={"gt": 0.0, "max": 1.0})
    storage_bytes: float = field(default=30e12, metadata={"gt": 0.0, "max": 1e18, "unit": "B"})
    leakage_frac: float = field(default=0.10, metadata={"min": 0.0, "max": 1.0, "unit": "1"})
    leakage_ref_temp_k: float = field(default=343.15, metadata={"gt": 0.0, "max": 1000.0,
                                                                "unit": "K"})
    leakage_temp_coeff_per_k: float = field(default=0.023, metadata={"min": 0.0, "max": 0.2,
                                                                     "unit": "1/K"})

    def __post_init__(self) -> None:
        from twin.scenario import InvalidField

        if not self.sleep_power_w <= self.idle_power_w <= self.full_power_w:
            raise InvalidField("idle_power_w", "need sleep_power_w <= idle_power_w <="
                               " full_power_w")
        if self.thermal_clock_frac < self.min_clock_frac:
            raise InvalidField("thermal_clock_frac", "must be at least min_clock_frac")
        if self.leakage_w > self.idle_power_w:
            # Leakage is part of a powered accelerator's idle draw: a colder die lowers the
            # draw by at most its leakage, which must not take the draw below zero.
            raise InvalidField("leakage_frac", f"{self.leakage_frac:g} x full_power_w is"
                               f" {self.leakage_w:g} W, more than idle_power_w"
                               f" ({self.idle_power_w:g} W), of which leakage is a part")

    @property
    def host_power_w(self) -> float:
        """The node's host power, always on (W): per accelerator times the accelerators."""
        return self.host_power_per_accelerator_w * self.accelerators_per_node

    @property
    def leakage_w(self) -> float:
        """One powered accelerator's leakage at ``leakage_ref_temp_k`` (W)."""
        return self.leakage_frac * self.full_power_w


FLEET_TOTALS: dict[str, tuple[str, str]] = {
    "delivered_pflop_s": ("PFLOP/s", "useful compute delivered"),
    "peak_pflop_s": ("PFLOP/s", "peak compute of the installed accelerators, failed and "
                                "retired ones included"),
    "accelerators_busy": ("count", "accelerators running jobs"),
    "goodput_frac": ("1", "useful work over work done"),
    "useful_work_accel_h": ("accelerator-h", "useful work so far"),
    "lost_work_accel_h": ("accelerator-h", "work lost to upsets, faults and cancels"),
    "compute_power_w": ("W", "compute payload power"),
    "compute_energy_j": ("J", "compute payload energy so far"),
    "energy_per_work_j_per_pflop": ("J/PFLOP", "payload energy per useful PFLOP"),
    "queue_length": ("count", "jobs queued"),
    "queue_wait_mean_s": ("s", "mean wait of started jobs"),
    "queue_oldest_s": ("s", "wait of the oldest queued job"),
    "jobs_running": ("count", "jobs running"),
    "jobs_done": ("count", "jobs finished"),
    "jobs_cancelled": ("count", "jobs cancelled"),
    "jobs_dropped": ("count", "arrivals dropped by a full queue"),
    "jobs_evicted": ("count", "jobs requeued after a fault"),
    "upsets_total": ("count", "single-event upsets so far"),
    "device_resets_total": ("count", "upsets that needed a device reset"),
    "n_throttled_thermal": ("count", "nodes throttled by heat"),
    "n_throttled_power": ("count", "nodes throttled by the power cap"),
    "scheduler_policy_code": ("code", "scheduling policy"),
    "results_delivered": ("count", "job results downlinked"),
    "results_delivered_bytes": ("B", "result bytes downlinked"),
    "results_pending": ("count", "results waiting on board"),
    "downlink_backlog_bytes": ("B", "result bytes waiting on board"),
    "oldest_result_age_s": ("s", "age of the oldest undelivered result"),
    "result_latency_mean_s": ("s", "mean time from finish to delivery"),
    # Multi-node jobs (published only where [workload] multi_node_jobs > 0).
    "multi_node_running": ("count", "multi-node jobs making progress"),
    "multi_node_stalled": ("count", "multi-node jobs placed but stalled"),
    "multi_node_queued": ("count", "multi-node jobs waiting for a connected group"),
    "multi_node_done": ("count", "multi-node jobs finished"),
    "multi_node_rollbacks": ("count", "multi-node rollbacks to a checkpoint so far"),
    "multi_node_progress_frac": ("1", "mean progress of the multi-node jobs"),
    "multi_node_checkpoints": ("count", "multi-node checkpoints written so far"),
    "multi_node_checkpoint_frac": ("1", "share of multi-node running time spent writing "
                                        "checkpoints"),
}
"""The fleet totals this model publishes: name -> (unit, description) (meta.totals)."""


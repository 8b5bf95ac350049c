"""Ageing laws: solar arrays, battery capacity fade, radiator coating, accelerator failures.

Each is a closed form of elapsed time and an accumulated quantity (dose, Ah throughput),
so any step length gives the same answer (docs/models.md, "Lifecycle", ageing); the battery's
fades, whose rates change with conditions, advance by equivalent throughput or time.
"""

from __future__ import annotations

import numpy as np

GAS_CONSTANT_J_MOL_K = 8.314462618
REFERENCE_TEMP_K = 298.15

# Wang et al. (2011), "Cycle-life model for graphite-LiFePO4 cells", J. Power Sources 196,
# 3942-3948, eq. (3) and Table 3: Q_loss % = B exp(-(31700 - 370.3 C_rate)/(R T)) Ah^0.55,
# Ah the throughput of their 2.2 Ah cell = cycles x DoD x 2.2 Ah. B by C-rate:
WANG_C_RATES = np.array([0.5, 2.0, 6.0, 10.0])
WANG_B = np.array([31630.0, 21681.0, 12934.0, 15512.0])
WANG_EA_J_MOL = 31700.0
WANG_EA_PER_C_RATE = 370.3
WANG_Z = 0.55
WANG_CELL_AH = 2.2


def wang_prefactor(c_rate: np.ndarray | float, temp_k: np.ndarray | float) -> np.ndarray:
    """k = B(C) exp(-Ea(C)/(R T)), so that Q_loss % = k Ah^0.55 (B linear in the C-rate
    between the paper's rates, held at the ends)."""
    c = np.asarray(c_rate, dtype=float)
    b = np.interp(c, WANG_C_RATES, WANG_B)
    ea = WANG_EA_J_MOL - WANG_EA_PER_C_RATE * c
    return b * np.exp(-ea / (GAS_CONSTANT_J_MOL_K * np.asarray(temp_k, dtype=float)))


def wang_loss_frac(full_cycles: np.ndarray | float, c_rate: np.ndarray | float,
                   temp_k: np.ndarray | float) -> np.ndarray:
    """Cycle capacity loss (fraction) after ``full_cycles`` equivalent full cycles at a
    constant C-rate and temperature: Wang et al. (2011) eq. (3)."""
    ah = np.asarray(full_cycles, dtype=float) * WANG_CELL_AH
    return wang_prefactor(c_rate, temp_k) * ah ** WANG_Z / 100.0


def advance_cycle_loss(loss_frac: np.ndarray, cycles_step: np.ndarray, c_rate: np.ndarray,
                       temp_k: np.ndarray) -> np.ndarray:
    """Cycle loss after ``cycles_step`` more equivalent full cycles at this step's C-rate
    and temperature: the throughput that gives today's loss under today's conditions, plus
    this step's (the usual way to drive a power law under changing conditions)."""
    k = np.maximum(wang_prefactor(c_rate, temp_k) / 100.0, 1e-300)
    ah_equiv = (loss_frac / k) ** (1.0 / WANG_Z)
    return k * (ah_equiv + cycles_step * WANG_CELL_AH) ** WANG_Z


def calendar_loss_frac(years: float, coeff_per_sqrt_yr: float, ea_j_mol: float,
                       temp_k: np.ndarray) -> np.ndarray:
    """Calendar fade q √t with q Arrhenius in temperature about 25 °C (the √t form of
    Smith et al. 2017 and Schmalstieg et al. 2014), fraction."""
    arrhenius = np.exp(-ea_j_mol / GAS_CONSTANT_J_MOL_K
                       * (1.0 / np.asarray(temp_k, dtype=float) - 1.0 / REFERENCE_TEMP_K))
    return coeff_per_sqrt_yr * arrhenius * np.sqrt(max(years, 0.0))


def advance_calendar_loss(loss_frac: np.ndarray, years_step: float, coeff_per_sqrt_yr: float,
                          ea_j_mol: float, temp_k: np.ndarray) -> np.ndarray:
    """Calendar fade advanced by ``years_step`` at ``temp_k``, by equivalent time: the age
    that gives today's loss at this temperature, t_eq = (L/q(T))², then L' = q(T) √(t_eq + Δt).

    At a constant temperature it is q √t exactly, whatever the steps. Unlike q(T̄) √t with
    T̄ the mean temperature so far, it never falls: a battery that cools fades more slowly
    from then on but does not get its capacity back. Where q(T) is nil (no calendar fade,
    or a battery so cold that the Arrhenius factor underflows) the loss stays.
    """
    q = calendar_loss_frac(1.0, coeff_per_sqrt_yr, ea_j_mol, temp_k)
    fading = q > 1e-30
    q_safe = np.where(fading, q, 1.0)
    t_eq = (loss_frac / q_safe) ** 2
    return np.where(fading, q_safe * np.sqrt(t_eq + max(years_step, 0.0)), loss_frac)


def array_health(years: float, loss_per_yr: float, dose_gy: np.ndarray, c: float,
                 dx_gy: float) -> np.ndarray:
    """Solar array output left: (1 - loss)^t times the radiation remaining factor
    1 - C log10(1 + D/Dx) (Tada et al. 1982; Summers et al. 1993), fraction."""
    radiation = 1.0 - c * np.log10(1.0 + np.maximum(dose_gy, 0.0) / dx_gy)
    return np.clip((1.0 - loss_per_yr) ** max(years, 0.0) * radiation, 0.0, 1.0)


def radiator_alpha_rise(years: float, rise: float, tau_yr: float) -> float:
    """Rise of the radiator coating's solar absorptivity, saturating: Δα (1 - e^(-t/τ))."""
    return rise * -np.expm1(-max(years, 0.0) / tau_yr)


def accelerator_failures(rng: np.random.Generator, working: np.ndarray, rate_per_yr: float,
                         dt_yr: float) -> np.ndarray:
    """Accelerators failing this step: binomial, each with 1 - e^(-λ dt) (constant hazard)."""
    if rate_per_yr <= 0.0 or dt_yr <= 0.0 or not working.any():
        return np.zeros_like(working)
    p = -np.expm1(-rate_per_yr * dt_yr)
    return rng.binomial(working, p).astype(working.dtype)

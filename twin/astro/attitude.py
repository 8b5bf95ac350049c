"""Attitude laws: how each node's radiators and solar arrays face the Sun, from its beta angle.

Every node points its +Z axis at nadir. Two laws decide the rest (``[thermal] attitude``):

``"yaw_steering"`` (default)
    The body yaws about nadir so the Sun stays in its X-Z plane: +Y = unit(ŝ × r̂), normal to
    both the Sun direction ŝ and the local vertical r̂. Radiators on ±Y are therefore edge-on
    to the Sun at every point of every orbit and see the Earth as vertical plates. Arrays on a
    one-axis drive about Y can face the Sun exactly (incidence cosine 1). Near orbit noon and
    midnight at |β| ≈ 0 the yaw angle flips quickly; the Sun is then close to ±nadir, in the
    radiator plane whatever the yaw, so a rate-limited real flip changes nothing here.
``"lvlh"``
    The body is fixed in the local-vertical local-horizontal frame (+Y = -orbit normal ĥ, as
    the ISS flies). Radiators on ±Y are horizontal and edge-on to the Sun only at β = 0: the
    face on the Sun's side sees it at incidence cosine |sin β| (so β matters). Arrays on a
    one-axis drive about Y track the Sun's projection into the orbit plane: cosine |cos β|.
    The bus radiator sits on the +Y (= -ĥ) face: it sees the Sun when β < 0.

In both laws every radiating face is vertical (its normal is horizontal), which is what the
Earth view factor in ``twin.models.environment`` assumes. Circular orbits are assumed: for them the
orbit normal is exactly horizontal.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

ATTITUDE_LAWS = ("yaw_steering", "lvlh")


@dataclass
class SunExposure:
    """Cosines of the Sun's incidence on each surface, per satellite (before eclipse).

    Attributes:
        radiator_cos: (n,) sum over the two faces of the main radiator of max(0, n̂·ŝ).
        bus_radiator_cos: (n,) max(0, n̂·ŝ) of the single bus radiator face.
        array_cos: (n,) cosine of the Sun's incidence on the solar arrays.
    """

    radiator_cos: np.ndarray
    bus_radiator_cos: np.ndarray
    array_cos: np.ndarray


def sun_exposure(law: str, beta_deg: np.ndarray) -> SunExposure:
    """Incidence cosines on radiators and arrays for an attitude law.

    Args:
        law: One of ``ATTITUDE_LAWS``.
        beta_deg: (n,) beta angle, deg (positive: Sun on the orbit normal's side).

    Returns:
        The incidence cosines, each (n,) float64 in [0, 1].
    """
    beta = np.asarray(beta_deg, dtype=np.float64)
    if law == "yaw_steering":
        return _yaw_steering(beta.shape)
    if law == "lvlh":
        sin_b = np.sin(np.radians(beta))
        return SunExposure(np.abs(sin_b), np.maximum(-sin_b, 0.0), np.sqrt(1.0 - sin_b * sin_b))
    raise ValueError(f"unknown attitude law {law!r}: expected one of {ATTITUDE_LAWS}")


@functools.lru_cache(maxsize=8)
def _yaw_steering(shape: tuple[int, ...]) -> SunExposure:
    # Constant for the law: built once per fleet size (callers must not write into it).
    zeros = np.zeros(shape)
    zeros.flags.writeable = False
    ones = np.ones(shape)
    ones.flags.writeable = False
    return SunExposure(zeros, zeros, ones)

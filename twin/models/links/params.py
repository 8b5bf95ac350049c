"""The ``[links]`` table: optical inter-satellite link terminals, topology and users.

A preset names a class of terminal (``suncatcher`` or ``sda``, docs/models.md "Optical
inter-satellite links" gives every number's source); any terminal key given in the table
overrides the preset's value. Absent table: no links at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from twin.scenario import InvalidField


def _m(unit: str, **bounds: float) -> dict[str, Any]:
    return {"unit": unit, **bounds}


@dataclass(frozen=True)
class Terminal:
    """One optical terminal (both ends of a link are alike), SI units.

    Attributes:
        max_range_m: Longest range the terminal can point and track at, m.
        acquisition_s: Pointing, acquisition and tracking time before a new link carries data.
        tx_power_w: Optical power launched, all WDM channels together, W.
        wavelength_m: Carrier wavelength, m.
        divergence_rad: Full beam divergence (1/e² intensity), rad.
        aperture_m: Receive aperture diameter, m.
        optics_efficiency_frac: Transmit × receive optics and pointing efficiency, 1.
        photons_per_bit: Receiver sensitivity: photons needed per bit at the design error rate.
        channels: Wavelength-multiplexed channels.
        channel_rate_bps: Line rate of one channel, bit/s (the transceiver's cap).
        active_power_w: Electrical draw of a terminal acquiring or holding a link, W.
        idle_power_w: Electrical draw of a terminal with no link, W.
    """

    max_range_m: float
    acquisition_s: float
    tx_power_w: float
    wavelength_m: float
    divergence_rad: float
    aperture_m: float
    optics_efficiency_frac: float
    photons_per_bit: float
    channels: int
    channel_rate_bps: float
    active_power_w: float
    idle_power_w: float

    @property
    def rate_cap_bps(self) -> float:
        """The transceivers' total rate, one direction, bit/s."""
        return self.channels * self.channel_rate_bps


PRESETS: dict[str, Terminal] = {
    # Suncatcher-class: a DWDM link between formation neighbours 100-200 m apart; rate cap
    # the 2025 bench demonstration's 800 Gb/s each way over one transceiver pair. The beam
    # and receiver numbers are assumptions that put that rate out to about 2 km.
    "suncatcher": Terminal(
        max_range_m=10_000.0, acquisition_s=10.0, tx_power_w=0.5, wavelength_m=1550e-9,
        divergence_rad=1.0e-3, aperture_m=0.10, optics_efficiency_frac=0.5,
        photons_per_bit=10_000.0, channels=8, channel_rate_bps=100e9, active_power_w=40.0,
        idle_power_w=5.0),
    # SDA-class: the SDA Optical Communication Terminal standard's 2.5 Gb/s at 1550 nm, PAT
    # acquisition within 100 s (OCT v3.2.0); beam and receiver typical of LEO terminals.
    "sda": Terminal(
        max_range_m=5_000_000.0, acquisition_s=100.0, tx_power_w=1.0, wavelength_m=1550e-9,
        divergence_rad=25e-6, aperture_m=0.08, optics_efficiency_frac=0.3,
        photons_per_bit=250.0, channels=1, channel_rate_bps=2.5e9, active_power_w=80.0,
        idle_power_w=10.0),
}


@dataclass(frozen=True)
class UserLocation:
    """A ground user whose latency to the fleet is published (``[[links.user]]``)."""

    name: str
    lat_deg: float = field(metadata=_m("deg", min=-90.0, max=90.0))
    lon_deg: float = field(metadata=_m("deg", min=-180.0, max=360.0))
    alt_m: float = field(default=0.0, metadata=_m("m", min=-500.0, max=9000.0))
    min_elevation_deg: float = field(default=25.0, metadata=_m("deg", min=0.0, max=90.0))


MAX_TERMINALS = 16
MAX_USERS = 64


@dataclass(frozen=True)
class LinksParams:
    """The ``[links]`` table; terminal keys left out (None) take the preset's values.

    A ``[[links.user]]`` table has ``name``, ``lat_deg``, ``lon_deg``, ``alt_m`` (0) and
    ``min_elevation_deg`` (25): a ground user whose latency to every node is published.
    """

    terminals_per_sat: int = field(default=4, metadata=_m("1", min=1, max=MAX_TERMINALS))
    preset: str = field(default="sda", metadata={"choices": tuple(PRESETS), "unit": "1"})
    # auto: nearest neighbours for a node with another within cluster_distance_m, else +Grid.
    pattern: str = field(default="auto",
                         metadata={"choices": ("auto", "grid", "nearest"), "unit": "1"})
    cluster_distance_m: float = field(default=5_000.0, metadata=_m("m", gt=0.0, max=1.0e6))
    plane_tolerance_deg: float = field(default=1.0, metadata=_m("deg", gt=0.0, max=10.0))
    grazing_height_km: float = field(default=80.0, metadata=_m("km", min=0.0, max=1000.0))
    hop_delay_s: float = field(default=1.0e-4, metadata=_m("s", min=0.0, max=1.0))
    search_interval_s: float = field(default=60.0, metadata=_m("s", gt=0.0, max=3600.0))
    route_interval_s: float = field(default=10.0, metadata=_m("s", gt=0.0, max=3600.0))
    target_sat: str = field(default="", metadata={"unit": "name"})
    user: tuple[UserLocation, ...] = ()
    max_range_km: float | None = field(default=None, metadata=_m("km", gt=0.0, max=1.0e6))
    acquisition_s: float | None = field(default=None, metadata=_m("s", min=0.0, max=3600.0))
    tx_power_w: float | None = field(default=None, metadata=_m("W", gt=0.0, max=1.0e4))
    wavelength_nm: float | None = field(default=None, metadata=_m("nm", min=200.0, max=20000.0))
    divergence_urad: float | None = field(default=None, metadata=_m("urad", gt=0.0, max=1.0e5))
    aperture_m: float | None = field(default=None, metadata=_m("m", gt=0.0, max=10.0))
    optics_efficiency_frac: float | None = field(default=None, metadata=_m("1", gt=0.0, max=1.0))
    photons_per_bit: float | None = field(default=None, metadata=_m("1", gt=0.0, max=1.0e9))
    channels: int | None = field(default=None, metadata=_m("1", min=1, max=1024))
    channel_rate_bps: float | None = field(default=None, metadata=_m("bit/s", gt=0.0,
                                                                      max=1.0e13))
    active_power_w: float | None = field(default=None, metadata=_m("W", min=0.0, max=1.0e4))
    idle_power_w: float | None = field(default=None, metadata=_m("W", min=0.0, max=1.0e4))

    def __post_init__(self) -> None:
        if len(self.user) > MAX_USERS:
            raise InvalidField("user", f"{len(self.user)} users is more than {MAX_USERS}")
        names = [u.name for u in self.user]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate is not None:
            raise InvalidField("user", f"two users are named {duplicate!r}: names must differ")
        terminal = self.terminal()
        if terminal.idle_power_w > terminal.active_power_w:
            raise InvalidField("idle_power_w", f"{terminal.idle_power_w:g} W is more than"
                               f" active_power_w ({terminal.active_power_w:g} W)")

    def terminal(self) -> Terminal:
        """The preset's terminal with this table's overrides, SI."""
        overrides: dict[str, Any] = {
            "max_range_m": _scaled(self.max_range_km, 1e3),
            "acquisition_s": self.acquisition_s, "tx_power_w": self.tx_power_w,
            "wavelength_m": _scaled(self.wavelength_nm, 1e-9),
            "divergence_rad": _scaled(self.divergence_urad, 1e-6),
            "aperture_m": self.aperture_m, "optics_efficiency_frac": self.optics_efficiency_frac,
            "photons_per_bit": self.photons_per_bit, "channels": self.channels,
            "channel_rate_bps": self.channel_rate_bps, "active_power_w": self.active_power_w,
            "idle_power_w": self.idle_power_w}
        known = {f.name for f in fields(Terminal)}
        assert set(overrides) == known, set(overrides) ^ known  # one override per parameter
        return replace(PRESETS[self.preset],
                       **{k: v for k, v in overrides.items() if v is not None})


def _scaled(value: float | None, factor: float) -> float | None:
    return None if value is None else value * factor



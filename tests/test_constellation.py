"""Tests for generated constellations: element geometry, SGP4 conversion and sun geometry."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from skyfield.api import EarthSatellite, Loader, load, wgs84

from twin.astro.constellation import (
    EARTH_RADIUS_KM,
    MAX_SUN_SYNCHRONOUS_ALTITUDE_KM,
    CircularOrbit,
    ShellError,
    SunSynchronousShell,
    WalkerShell,
    kozai_mean_motion_rad_min,
    make_satrec,
    mean_semi_major_axis_km,
    raan_for_ltan_deg,
    sun_synchronous_inclination_deg,
    sun_synchronous_shell_inclination_deg,
)

EQUINOX_EPOCH = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def timescale():
    return load.timescale()  # built-in UT1/leap-second tables: no network


@pytest.fixture(scope="module")
def ephemeris():
    import skyfield_data  # bundles de421.bsp so the tests run offline

    return Loader(skyfield_data.get_skyfield_data_path(), verbose=False)("de421.bsp")


def _orbit_times(timescale, epoch: datetime, period_s: float, orbits: float, samples: int):
    offsets_s = np.linspace(0.0, orbits * period_s, samples, endpoint=False)
    return timescale.from_datetimes([epoch + timedelta(seconds=float(s)) for s in offsets_s])


def _period_s(satrec) -> float:
    # satrec.nm is SGP4's un-Kozai'd (Brouwer) mean motion (rad/min); satrec.no is an alias
    # of no_kozai in the Python API, ~6e-5 off.
    return 2.0 * math.pi / satrec.nm * 60.0


# ------------------------------------------------------------------------------------------
# Sun-synchronous inclination


@pytest.mark.parametrize(
    ("altitude_km", "published_deg"),
    # Textbook circular SSO inclinations (e.g. Vallado, Wertz SMAD tables), quoted to 0.01 deg.
    [(550.0, 97.59), (600.0, 97.79), (650.0, 97.99), (700.0, 98.19), (800.0, 98.60)],
)
def test_sso_inclination_matches_published_tables(altitude_km: float, published_deg: float):
    inclination_deg = sun_synchronous_inclination_deg(EARTH_RADIUS_KM + altitude_km)
    assert inclination_deg == pytest.approx(published_deg, abs=0.015)


def test_sso_inclination_matches_closed_form_j2_formula():
    a_km, mu, j2 = EARTH_RADIUS_KM + 650.0, 398600.8, 0.001082616
    omega_s = 2.0 * math.pi / (365.2422 * 86400.0)
    cos_i = -(2.0 * a_km**3.5 * omega_s) / (3.0 * j2 * EARTH_RADIUS_KM**2 * math.sqrt(mu))
    assert sun_synchronous_inclination_deg(a_km) == pytest.approx(
        math.degrees(math.acos(cos_i)), abs=1e-12)


@pytest.mark.parametrize("altitude_km", [300.0, 550.0, 650.0, 1200.0, 3000.0])
def test_generated_sso_precesses_once_per_tropical_year_in_sgp4(altitude_km: float):
    inclination_deg = sun_synchronous_shell_inclination_deg(altitude_km)
    # Within 0.05 deg of the first-order formula (the J2^2/J4 and mean-radius corrections).
    assert inclination_deg == pytest.approx(
        sun_synchronous_inclination_deg(EARTH_RADIUS_KM + altitude_km), abs=0.05)
    satrec = make_satrec(CircularOrbit(0, 0, altitude_km, inclination_deg, 0.0, 0.0), 1,
                         EQUINOX_EPOCH)
    degrees_per_year = math.degrees(satrec.nodedot) * 1440.0 * 365.2422
    assert degrees_per_year == pytest.approx(360.0, rel=1e-9)


def test_sso_above_the_highest_possible_altitude_is_rejected():
    with pytest.raises(ShellError, match="no sun-synchronous orbit") as caught:
        SunSynchronousShell(name="x", altitude_km=MAX_SUN_SYNCHRONOUS_ALTITUDE_KM + 100.0,
                            ltan_h=18.0, sats_per_plane=1)
    assert caught.value.field == "altitude_km"


# ------------------------------------------------------------------------------------------
# Mean motion and altitude


@pytest.mark.parametrize(("altitude_km", "inclination_deg"),
                         [(160.0, 30.0), (550.0, 53.0), (550.0, 0.0), (650.0, 97.99),
                          (1200.0, 87.9), (20200.0, 55.0)])
def test_mean_altitude_over_one_orbit_matches_request(altitude_km: float,
                                                      inclination_deg: float):
    satrec = make_satrec(CircularOrbit(0, 0, altitude_km, inclination_deg, 40.0, 10.0), 7,
                         EQUINOX_EPOCH)
    minutes = np.linspace(0.0, _period_s(satrec) / 60.0, 2000, endpoint=False)
    errors, positions_km, _ = satrec.sgp4_array(
        np.full(minutes.shape, satrec.jdsatepoch), satrec.jdsatepochF + minutes / 1440.0)
    assert not errors.any()
    mean_altitude_km = np.linalg.norm(positions_km, axis=1).mean() - EARTH_RADIUS_KM
    # The spec asks for ~1 km; the analytic short-period correction lands within ~10 m.
    assert mean_altitude_km == pytest.approx(altitude_km, abs=0.1)


def test_kozai_conversion_gives_sgp4_the_intended_brouwer_mean_motion():
    a_km = mean_semi_major_axis_km(550.0, 53.0)
    satrec = make_satrec(CircularOrbit(0, 0, 550.0, 53.0, 0.0, 0.0), 1, EQUINOX_EPOCH)
    brouwer_rad_min = math.sqrt(398600.8 / a_km**3) * 60.0
    assert satrec.nm == pytest.approx(brouwer_rad_min, rel=1e-12)  # nm: SGP4's Brouwer n
    assert satrec.no_kozai == pytest.approx(kozai_mean_motion_rad_min(a_km, 53.0), rel=1e-15)
    assert satrec.no_kozai != pytest.approx(satrec.nm, rel=1e-6)  # the difference is real


def test_satrec_epoch_is_the_requested_utc_instant():
    satrec = make_satrec(CircularOrbit(0, 0, 550.0, 53.0, 0.0, 0.0), 1, EQUINOX_EPOCH)
    jd = satrec.jdsatepoch + satrec.jdsatepochF
    assert jd == pytest.approx(2461120.0, abs=1e-9)  # JD of 2026-03-20 12:00 UTC


# ------------------------------------------------------------------------------------------
# Walker geometry


def test_walker_delta_spreads_planes_and_phases_slots():
    shell = WalkerShell(name="w", altitude_km=550.0, inclination_deg=53.0, planes=3,
                        sats_per_plane=8, phasing=1, raan_offset_deg=10.0)
    orbits = shell.orbits()
    assert len(orbits) == shell.total_satellites == 24
    assert sorted({o.raan_deg for o in orbits}) == pytest.approx([10.0, 130.0, 250.0])
    plane_1 = [o for o in orbits if o.plane_index == 1]
    # Slot j of plane k: 360 j / s + 360 f k / t  ->  45 j + 15 for k = 1.
    assert [o.mean_anomaly_deg for o in plane_1] == pytest.approx([45.0 * j + 15.0
                                                                   for j in range(8)])


def test_walker_phasing_beyond_planes_minus_one_blames_phasing():
    with pytest.raises(ShellError, match=r"0\.\.2") as caught:
        WalkerShell(name="w", altitude_km=550.0, inclination_deg=53.0, planes=3,
                    sats_per_plane=8, phasing=3)
    assert caught.value.field == "phasing"


def test_sso_planes_spread_in_local_time_or_follow_a_list():
    spread = SunSynchronousShell(name="s", altitude_km=650.0, ltan_h=18.0, sats_per_plane=2,
                                 planes=4)
    assert spread.plane_ltans_h == pytest.approx((18.0, 0.0, 6.0, 12.0))
    listed = SunSynchronousShell(name="s", altitude_km=650.0, ltan_h=(10.5, 22.5),
                                 sats_per_plane=3)
    assert listed.plane_count == 2 and listed.total_satellites == 6
    with pytest.raises(ShellError) as caught:
        SunSynchronousShell(name="s", altitude_km=650.0, ltan_h=(10.5, 22.5), sats_per_plane=3,
                            planes=3)
    assert caught.value.field == "planes"


def test_generation_is_deterministic():
    shell = SunSynchronousShell(name="s", altitude_km=650.0, ltan_h=18.0, sats_per_plane=4)
    first = [make_satrec(o, 90000 + i, EQUINOX_EPOCH)
             for i, o in enumerate(shell.orbits(EQUINOX_EPOCH))]
    second = [make_satrec(o, 90000 + i, EQUINOX_EPOCH)
              for i, o in enumerate(shell.orbits(EQUINOX_EPOCH))]
    for a, b in zip(first, second, strict=True):
        assert (a.inclo, a.nodeo, a.mo, a.no_kozai, a.jdsatepoch, a.jdsatepochF) == (
            b.inclo, b.nodeo, b.mo, b.no_kozai, b.jdsatepoch, b.jdsatepochF)
        assert a.sgp4(a.jdsatepoch, a.jdsatepochF + 0.5) == b.sgp4(b.jdsatepoch,
                                                                   b.jdsatepochF + 0.5)


# ------------------------------------------------------------------------------------------
# Sun geometry, checked independently with skyfield


@pytest.mark.parametrize(("ltan_h", "epoch"), [
    (18.0, EQUINOX_EPOCH),
    (10.5, datetime(2026, 6, 21, 3, 17, tzinfo=UTC)),
    (6.0, datetime(2025, 11, 3, 22, 40, tzinfo=UTC)),
])
def test_ascending_node_crosses_the_equator_at_the_requested_local_time(timescale, ltan_h,
                                                                        epoch):
    shell = SunSynchronousShell(name="s", altitude_km=650.0, ltan_h=ltan_h, sats_per_plane=1)
    satrec = make_satrec(shell.orbits(epoch)[0], 1, epoch)  # slot 0 starts at the node
    satellite = EarthSatellite.from_satrec(satrec, timescale)
    times = _orbit_times(timescale, epoch - timedelta(minutes=5), _period_s(satrec), 1.0, 600)
    z_km = satellite.at(times).position.km[2]
    crossing = next(i for i in range(len(z_km) - 1) if z_km[i] < 0.0 <= z_km[i + 1])
    fraction = -z_km[crossing] / (z_km[crossing + 1] - z_km[crossing])
    moment = times[crossing].utc_datetime() + fraction * (
        times[crossing + 1].utc_datetime() - times[crossing].utc_datetime())
    node = wgs84.subpoint_of(satellite.at(timescale.from_datetime(moment)))
    ut_h = moment.hour + moment.minute / 60.0 + moment.second / 3600.0
    local_mean_time_h = (ut_h + node.longitude.degrees / 15.0) % 24.0
    difference_min = ((local_mean_time_h - ltan_h + 12.0) % 24.0 - 12.0) * 60.0
    assert abs(difference_min) < 2.0


def test_raan_for_ltan_is_mean_sun_right_ascension_plus_hour_angle():
    # At 12:00 UT the mean Sun transits Greenwich, so its RA equals GMST; LTAN 18 h is 90 deg east.
    from sgp4.propagation import gstime

    gmst_deg = math.degrees(gstime(2461120.0))
    assert raan_for_ltan_deg(18.0, EQUINOX_EPOCH) == pytest.approx((gmst_deg + 90.0) % 360.0)


def test_dawn_dusk_sso_has_high_beta_and_stays_in_sunlight(timescale, ephemeris):
    shell = SunSynchronousShell(name="dd", altitude_km=650.0, ltan_h=18.0, sats_per_plane=1)
    satrec = make_satrec(shell.orbits(EQUINOX_EPOCH)[0], 1, EQUINOX_EPOCH)
    satellite = EarthSatellite.from_satrec(satrec, timescale)
    epoch_t = timescale.from_datetime(EQUINOX_EPOCH)
    state = satellite.at(epoch_t)
    normal = np.cross(state.position.km, state.velocity.km_per_s)
    sun = (ephemeris["sun"] - ephemeris["earth"]).at(epoch_t).position.km
    beta_deg = math.degrees(math.asin(np.dot(normal, sun) / np.linalg.norm(normal)
                                      / np.linalg.norm(sun)))
    assert 70.0 <= abs(beta_deg) <= 90.0
    times = _orbit_times(timescale, EQUINOX_EPOCH, _period_s(satrec), 2.0, 240)
    assert satellite.at(times).is_sunlit(ephemeris).all()


def test_53_degree_shell_is_eclipsed_every_orbit(timescale, ephemeris):
    shell = WalkerShell(name="mid-53", altitude_km=550.0, inclination_deg=53.0, planes=3,
                        sats_per_plane=1)
    for orbit in shell.orbits():
        satrec = make_satrec(orbit, 1, EQUINOX_EPOCH)
        satellite = EarthSatellite.from_satrec(satrec, timescale)
        times = _orbit_times(timescale, EQUINOX_EPOCH, _period_s(satrec), 3.0, 3 * 120)
        sunlit = satellite.at(times).is_sunlit(ephemeris).reshape(3, 120)
        assert (~sunlit).any(axis=1).all(), "every orbit must have an eclipse"
        assert 0.55 < sunlit.mean() < 0.8  # ~35 of 95 min in shadow at low beta


# Elements as arrays (what the loader keeps for large fleets)


_SATREC_ATTRIBUTES = ("no_kozai", "inclo", "nodeo", "mo", "ecco", "argpo", "jdsatepoch",
                      "jdsatepochF", "satnum", "nodedot", "mdot")


@pytest.mark.parametrize("shell", [
    WalkerShell(name="w", altitude_km=550.0, inclination_deg=53.0, planes=7, sats_per_plane=11,
                phasing=3, raan_offset_deg=-17.5),
    SunSynchronousShell(name="s", altitude_km=1200.0, ltan_h=(10.5, 22.5, 3.25),
                        sats_per_plane=5, phasing=2),
], ids=["walker", "sun-synchronous"])
def test_shell_elements_build_the_same_satrecs_as_one_orbit_at_a_time(shell):
    # The loader builds satrecs from ShellElements (arrays); they must be bit-identical to
    # make_satrec on each CircularOrbit, the path every other test here checks physically.
    orbits = (shell.orbits() if isinstance(shell, WalkerShell)
              else shell.orbits(EQUINOX_EPOCH))
    elements = shell.elements(EQUINOX_EPOCH)
    assert len(elements) == len(orbits) == shell.total_satellites
    for i, orbit in enumerate(orbits):
        assert (elements.plane_index[i], elements.slot_index[i]) == (orbit.plane_index,
                                                                     orbit.slot_index)
        expected = make_satrec(orbit, 90000 + i, EQUINOX_EPOCH)
        built = elements.satrec(i, 90000 + i)
        for name in _SATREC_ATTRIBUTES:
            assert getattr(built, name) == getattr(expected, name), (i, name)

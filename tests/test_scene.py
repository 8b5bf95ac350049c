"""The 3D viewer's pure state-to-arrays functions, without rendering: geometry
(viz.scene), paint and flags (viz.node_colours) and HUD text (viz.hud_text).

References: skyfield for WGS84 positions, Earth orientation and the Sun (independent of
the viewer's code), the real Earth texture for its orientation, matplotlib for colormaps.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image

from twin.models.registry import totals_catalog
from twin.protocol.catalog import display_of, kind_of
from viz import hud_text, node_colours, scene
from viz.mirror import mirror_bindings
from viz.quantity import Catalog

ROOT = Path(__file__).resolve().parents[1]
TEXTURE = ROOT / "assets" / "earth" / "land_ocean_ice_2048.jpg"
ONE_METRE_KM = 1e-3
TENTH_DEGREE = 0.1


@pytest.fixture(scope="module")
def skyfield_time():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from skyfield.api import load

        ts = load.timescale(builtin=True)
    return ts.utc(2026, 3, 20, 14, 0, 0)


# --------------------------------------------------------------------------- geometry
@pytest.mark.parametrize(("lat", "lon", "alt_km"), [
    (0.0, 0.0, 0.0), (90.0, 0.0, 0.0), (-90.0, 33.0, 0.0), (78.23, 15.41, 0.45),
    (-33.9, 18.4, 0.1), (45.0, -120.0, 550.0),
])
def test_geodetic_to_itrs_matches_skyfield(lat, lon, alt_km):
    from skyfield.api import wgs84

    expected = wgs84.latlon(lat, lon, elevation_m=alt_km * 1000.0).itrs_xyz.km
    assert np.allclose(scene.geodetic_to_itrs_km(lat, lon, alt_km), expected, atol=ONE_METRE_KM)


def test_geodetic_to_itrs_broadcasts():
    lat = np.array([[0.0, 10.0], [20.0, 30.0]])
    out = scene.geodetic_to_itrs_km(lat, 5.0)
    assert out.shape == (2, 2, 3)
    assert np.allclose(out[1, 0], scene.geodetic_to_itrs_km(20.0, 5.0))


@pytest.fixture(scope="module")
def texture():
    return np.asarray(Image.open(TEXTURE).convert("RGB"))


def _pixel(texture, lat, lon):
    h, w, _ = texture.shape
    col, row = scene.uv_to_pixel(scene.texture_uv(lat, lon), w, h)
    return texture[row, col].astype(int)


def _is_ocean(rgb):
    return rgb[2] > rgb[0] + 20 and rgb[0] < 60


def _is_dry_land(rgb):
    return rgb[0] > 100 and rgb[0] > rgb[2] + 30


def _is_ice(rgb):
    return rgb.min() > 200


# Each place is chosen so that its mirror image (flipped east-west or north-south) is a
# different kind of surface, which catches a flipped or shifted texture.
@pytest.mark.parametrize(("lat", "lon", "kind"), [
    (23.0, 10.0, _is_dry_land),    # Sahara (flipped north-south: Atlantic off Namibia)
    (-23.0, 10.0, _is_ocean),    # South Atlantic
    (25.0, -40.0, _is_ocean),    # North Atlantic (flipped east-west: Saudi Arabia)
    (24.0, 45.0, _is_dry_land),    # Arabian desert
    (-85.0, 0.0, _is_ice),       # Antarctic plateau
    (72.0, -40.0, _is_ice),      # Greenland ice sheet
    (0.0, -150.0, _is_ocean),    # Pacific
    (-25.0, 133.0, _is_dry_land),  # central Australia (flipped east-west: Pacific)
])
def test_texture_orientation_on_the_real_image(texture, lat, lon, kind):
    rgb = _pixel(texture, lat, lon)
    assert kind(rgb), f"pixel at {lat}, {lon} is {rgb}"


def test_station_lands_on_its_texture_pixel():
    """Svalbard (78.23 N, 15.41 E): pixel by hand, and through the drawn globe's vertex."""
    w, h = 1600, 800
    col, row = scene.uv_to_pixel(scene.texture_uv(78.23, 15.41), w, h)
    assert (col, row) == (int((15.41 + 180) / 360 * w), int((90 - 78.23) / 180 * h))
    grid = scene.earth_grid(180, 360)
    station = scene.geodetic_to_itrs_km(78.23, 15.41)
    nearest = np.argmin(np.sum((grid.points_km - station) ** 2, axis=1))
    g_col, g_row = scene.uv_to_pixel(grid.tcoords[nearest], w, h)
    # One grid cell (1 degree) is w/360 = 4.4 columns and h/180 = 4.4 rows.
    assert abs(g_col - col) <= 3 and abs(g_row - row) <= 3


def test_earth_grid_is_consistent():
    grid = scene.earth_grid(18, 36)
    n_points = 19 * 37
    assert grid.points_km.shape == (n_points, 3) and grid.tcoords.shape == (n_points, 2)
    faces = grid.faces.reshape(-1, 5)
    assert len(faces) == 18 * 36 and (faces[:, 0] == 4).all() and faces[:, 1:].max() < n_points
    # Texture coordinates say the same place as the vertex position.
    assert np.allclose(grid.points_km, scene.geodetic_to_itrs_km(grid.lat_deg, grid.lon_deg))
    assert np.allclose(grid.tcoords, scene.texture_uv(grid.lat_deg, grid.lon_deg))
    # Quads wind counter-clockwise from outside: the normal points away from the centre.
    a, b, c = (grid.points_km[faces[200, k]] for k in (1, 2, 3))
    centre = (a + b + c) / 3.0
    assert np.dot(np.cross(b - a, c - b), centre) > 0


def _header_at(t):
    """A state header built with skyfield, independent of the twin and the viewer."""
    from skyfield.api import load_file
    from skyfield.framelib import itrs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from skyfield_data import get_skyfield_data_path

        planets = load_file(str(Path(get_skyfield_data_path()) / "de421.bsp"))
    sun = (planets["sun"] - planets["earth"]).at(t).position.km
    return {"sun_gcrs_km": list(sun), "gast_rad": t.gast / 24 * math.tau,
            "gcrs_to_itrs": list(itrs.rotation_at(t).ravel())}, sun


def test_subsolar_point_matches_skyfield(skyfield_time):
    from skyfield.api import wgs84
    from skyfield.positionlib import Geocentric

    header, sun = _header_at(skyfield_time)
    lat, lon = scene.subsolar_point_deg(header)
    expected = wgs84.subpoint_of(Geocentric(sun / 149597870.7, t=skyfield_time))
    assert abs(lon - expected.longitude.degrees) < TENTH_DEGREE
    # Geocentric vs geodetic latitude differ by < 0.2 deg; at the equinox both are ~0.
    assert abs(lat - expected.latitude.degrees) < 0.2
    # 2026-03-20 14:00 UTC, two hours after noon at Greenwich: the Sun is near 30 W.
    assert -32.0 < lon < -28.0 and abs(lat) < 0.5


def test_gast_fallback_rotates_like_the_matrix(skyfield_time):
    header, _ = _header_at(skyfield_time)
    only_gast = {"gast_rad": header["gast_rad"], "sun_gcrs_km": header["sun_gcrs_km"]}
    m_full, m_gast = scene.gcrs_to_itrs(header), scene.gcrs_to_itrs(only_gast)
    # They differ only by precession-nutation since J2000: about 0.36 deg in 2026.
    angle = math.degrees(math.acos((np.trace(m_full @ m_gast.T) - 1) / 2))
    assert angle < 0.5
    # The vernal equinox direction lies at longitude -GAST in the Earth-fixed frame.
    x_itrs = m_gast @ np.array([1.0, 0.0, 0.0])
    lon = math.atan2(x_itrs[1], x_itrs[0])
    assert math.isclose(math.remainder(lon + header["gast_rad"], math.tau), 0.0, abs_tol=1e-12)


def test_earth_matrix_and_itrs_to_view_agree(skyfield_time):
    header, _ = _header_at(skyfield_time)
    station_itrs = scene.geodetic_to_itrs_km(78.23, 15.41)
    for earth_fixed in (False, True):
        matrix = scene.earth_matrix(header, earth_fixed)
        by_actor = (matrix @ np.append(station_itrs, 1.0))[:3]
        assert np.allclose(by_actor, scene.itrs_to_view(station_itrs, header, earth_fixed))
    # In the inertial view, the station is where GCRS says it is: M.T @ r_itrs.
    m = scene.gcrs_to_itrs(header)
    assert np.allclose(scene.itrs_to_view(station_itrs, header, False), m.T @ station_itrs)


def test_sun_direction_in_both_frames(skyfield_time):
    header, sun = _header_at(skyfield_time)
    inertial = scene.sun_direction(header, earth_fixed=False)
    fixed = scene.sun_direction(header, earth_fixed=True)
    assert np.allclose(inertial, sun / np.linalg.norm(sun))
    assert np.allclose(fixed, scene.gcrs_to_itrs(header) @ inertial)
    assert np.allclose(scene.sun_direction({}, False), [1.0, 0.0, 0.0])  # bad header: no crash


def test_earth_shading_puts_the_terminator_where_the_sun_says(skyfield_time):
    header, _ = _header_at(skyfield_time)
    lat, lon = scene.subsolar_point_deg(header)
    places = [(lat, lon), (-lat, lon + 180.0), (0.0, lon + 89.0), (0.0, lon + 91.0),
              (0.0, lon + 60.0)]
    normals = np.array([scene.geodetic_to_itrs_km(a, b) for a, b in places])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    shade = scene.earth_shading(normals, scene.sun_direction(header, earth_fixed=True),
                                ambient=0.1)[:, 0]
    night = round(0.1 * 255)
    assert shade[0] >= 254 and shade[1] == night  # subsolar point, antisolar point
    assert shade[2] > night and shade[3] == night  # either side of the terminator
    assert abs(shade[4] - (night + (255 - night) * 0.5)) <= 2  # 60 deg from the Sun: cos = 0.5


def test_trail_budget():
    assert scene.trail_budget(40) == (48, 1440.0 / 47)
    length, interval = scene.trail_budget(4428)
    assert length * 4428 <= 60_000 and length >= 8
    assert (length - 1) * interval == pytest.approx(1440.0)


def test_sat_positions_hides_invalid_rows():
    pos = np.array([[7000.0, 0.0, 0.0], [np.nan, np.nan, np.nan], [0.0, 7100.0, 1.0]])
    arrays = {"pos_gcrs_km": pos, "pos_itrs_km": pos * 2}
    out = scene.sat_positions(arrays, earth_fixed=False)
    assert out.dtype == np.float32 and out.shape == (3, 3)
    assert np.array_equal(out[1], [0, 0, 0]) and np.allclose(out[2], pos[2])
    assert np.allclose(scene.sat_positions(arrays, earth_fixed=True)[0], [14000.0, 0.0, 0.0])
    assert scene.nearest_sat(out, [7050.0, 10.0, 0.0]) == 0
    assert scene.nearest_sat(np.zeros((0, 3)), [0, 0, 0]) == -1


# --------------------------------------------------------------------------- colours
META = {
    "fields": [
        {"name": "pos_gcrs_km", "shape": [3, 3], "unit": "km", "per_sat": True, "limits": {}},
        {"name": "alt_km", "shape": [3], "unit": "km", "per_sat": True, "limits": {}},
        {"name": "status", "shape": [3], "unit": "code", "per_sat": True, "limits": {}},
        {"name": "in_contact", "shape": [2, 3], "unit": "bool", "per_sat": False},
        {"name": "sunlit_frac", "shape": [3], "unit": "1", "per_sat": True, "limits": {}},
        {"name": "temp_compute_k", "shape": [3], "unit": "K", "per_sat": True,
         "limits": {"warn_high": 353.15, "alarm_high": 358.15}},
        {"name": "soc_frac", "shape": [3], "unit": "1", "per_sat": True,
         "limits": {"warn_low": 0.3, "alarm_low": 0.2}},
        {"broken": True},
    ],
}


def test_colour_fields_from_the_catalog():
    fields = node_colours.colour_fields(META)
    assert [f.name for f in fields] == ["alt_km", "sunlit_frac", "temp_compute_k", "soc_frac"]
    assert fields[2].limits == {"warn_high": 353.15, "alarm_high": 358.15}
    assert node_colours.default_field(fields) == "temp_compute_k"
    assert node_colours.default_field(fields[:2]) == "alt_km"
    assert node_colours.default_field([]) is None
    # This META is an old twin's (no display rules): the raw unit, never a guess.
    assert hud_text.scalar_bar_title(fields[2]) == "T comp [K]"
    described = node_colours.colour_fields({"fields": [
        {**e, "kind": kind_of(e["unit"]), "display": display_of(e["unit"])}
        for e in META["fields"] if "unit" in e]})
    titles = {f.name: hud_text.scalar_bar_title(f, 2500.0) for f in described}
    assert titles["temp_compute_k"] == "T comp [°C]" and titles["soc_frac"] == "SOC [%]"
    # An enum colours by category: its label, no unit (its swatches name the codes).
    assert titles["status"] == "Status"


def test_colour_range():
    temp, soc = (f for f in node_colours.colour_fields(META)
                 if f.name in {"temp_compute_k", "soc_frac"})
    alt = node_colours.colour_fields(META)[0]
    # The high end is just past the alarm limit; the low end follows the data.
    pad = node_colours.LIMIT_PAD_FRAC
    lo, hi = node_colours.colour_range(temp, np.array([290.0, 300.0, np.nan]))
    assert lo == 290.0 and hi == pytest.approx(358.15 + pad * (358.15 - 290.0))
    # Fractions span 0..1 unless a limit says otherwise.
    lo, hi = node_colours.colour_range(soc, np.array([0.5, 0.9]))
    assert lo == pytest.approx(0.2 - pad * 0.8) and hi == 1.0
    # Data ends only widen.
    widened = node_colours.colour_range(alt, np.array([540.0, 560.0]), (500.0, 550.0))
    assert widened == (500.0, 560.0)
    # A constant or empty field still gives a usable range.
    lo, hi = node_colours.colour_range(alt, np.array([550.0, 550.0]))
    assert lo < 550.0 < hi
    lo, hi = node_colours.colour_range(alt, np.array([np.nan]))
    assert math.isfinite(lo) and lo < hi


def test_field_rgb_matches_matplotlib():
    table = node_colours.colormap_table("turbo")
    values = np.array([0.0, 0.25, 0.5, 0.999, 1.0, -np.inf, np.inf, np.nan])
    rgb = node_colours.field_rgb(values, (0.0, 1.0), table)
    cmap = matplotlib.colormaps["turbo"]
    floor = node_colours.COLORMAP_FLOOR
    expected = np.round(cmap(floor + (1 - floor) * np.clip(values[:5], 0, 1))[:, :3] * 255)
    assert np.abs(rgb[:5].astype(int) - expected).max() <= 8  # one of 256 table steps
    assert np.array_equal(rgb[5], table[0]) and np.array_equal(rgb[6], table[-1])
    assert tuple(rgb[7]) == node_colours.NO_DATA_RGB


def test_eclipse_dim():
    rgb = np.full((4, 3), 200, dtype=np.uint8)
    node_colours.eclipse_dim(rgb, np.array([1.0, 0.0, 0.5, np.nan], dtype=np.float32))
    assert rgb[0, 0] == 200 and rgb[1, 0] == round(200 * node_colours.NIGHT_BRIGHTNESS)
    assert rgb[1, 0] < rgb[2, 0] < rgb[0, 0] and rgb[3, 0] == 200  # unknown: not dimmed
    assert node_colours.eclipse_dim(rgb, None) is rgb


def test_alarm_mask():
    fields = node_colours.colour_fields(META)
    arrays = {
        "temp_compute_k": np.array([300.0, 358.15, 320.0]),
        "soc_frac": np.array([0.5, 0.5, 0.5]),
        "status": np.array([0, 0, 0], dtype=np.uint8),
    }
    assert list(node_colours.alarm_mask(arrays, fields, 3)) == [False, True, False]
    arrays["soc_frac"] = np.array([0.1, 0.5, 0.5])
    arrays["status"] = np.array([0, 0, 4], dtype=np.uint8)
    assert list(node_colours.alarm_mask(arrays, fields, 3)) == [True, True, True]
    # The twin's own verdicts flag a node: its limit monitor at alarm, a fault bit set.
    quiet = {"limit_level": np.array([1, 2, 0], dtype=np.uint8),
             "fault_flags": np.array([0, 0, 4], dtype=np.uint8)}
    assert list(node_colours.alarm_mask(quiet, fields, 3)) == [False, True, True]
    # A name is no verdict: a field that merely says "alarm" or "fault" flags nothing.
    named = {"alarm_count": np.array([0, 2, 0], dtype=np.int32),
             "fault_budget_w": np.array([5.0, 5.0, 5.0])}
    assert not node_colours.alarm_mask(named, fields, 3).any()


# --------------------------------------------------------------------------- trails, contacts
def test_trail_buffer_keeps_points_every_interval():
    trails = scene.TrailBuffer(n_sats=2, length=4, interval_s=10.0)
    assert trails.empty
    for t in range(0, 41, 5):  # 0, 5, ..., 40 s
        pos = np.array([[t, 0.0, 0.0], [0.0, t, 0.0]])
        trails.push(float(t), pos, pos + 1.0)
    pts = trails.points(earth_fixed=False).reshape(2, 4, 3)
    # A slot opens every 10 s and holds the last position of its interval; the newest
    # slot follows the satellite (40 s).
    assert list(pts[0, :, 0]) == [15.0, 25.0, 35.0, 40.0]
    assert pts[0, -1, 0] == 40.0 and pts[1, -1, 1] == 40.0
    assert np.all(np.diff(pts[0, :, 0]) > 0)  # oldest first
    assert np.allclose(trails.points(earth_fixed=True).reshape(2, 4, 3)[0, -1], [41, 1, 1])
    lines = trails.lines().reshape(2, 5)
    assert list(lines[1]) == [4, 4, 5, 6, 7]


def test_trail_buffer_starts_as_a_point_and_resets_backwards():
    trails = scene.TrailBuffer(n_sats=1, length=3, interval_s=10.0)
    trails.push(100.0, np.array([[1.0, 2.0, 3.0]]), np.array([[1.0, 2.0, 3.0]]))
    assert np.allclose(trails.points(False), [[1, 2, 3]] * 3)
    trails.push(130.0, np.array([[4.0, 5.0, 6.0]]), np.array([[4.0, 5.0, 6.0]]))
    trails.push(50.0, np.array([[7.0, 8.0, 9.0]]), np.array([[7.0, 8.0, 9.0]]))  # restart
    assert np.allclose(trails.points(False), [[7, 8, 9]] * 3)


def test_trail_buffer_collapses_invalid_satellites():
    trails = scene.TrailBuffer(n_sats=2, length=3, interval_s=1.0)
    good = np.array([[7000.0, 0, 0], [0, 7000.0, 0]])
    trails.push(0.0, good, good)
    bad = good.copy()
    bad[1] = np.nan
    trails.push(1.0, bad, bad)
    pts = trails.points(False).reshape(2, 3, 3)
    assert np.isfinite(pts).all() and not pts[1].any() and pts[0].any()


def test_contact_segments():
    in_contact = np.array([[True, False, True], [False, False, True]])
    stations = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    sats = np.array([[10.0, 0, 0], [20.0, 0, 0], [30.0, 0, 0]])
    points, lines = scene.contact_segments(in_contact, stations, sats)
    assert points.shape == (6, 3)
    assert np.allclose(points[0::2], [[1, 0, 0], [1, 0, 0], [0, 1, 0]])
    assert np.allclose(points[1::2, 0], [10, 30, 30])
    assert list(lines) == [2, 0, 1, 2, 2, 3, 2, 4, 5]
    points, lines = scene.contact_segments(np.zeros((2, 3), bool), stations, sats)
    assert points.shape == (0, 3) and lines.size == 0


# --------------------------------------------------------------------------- text
def test_hud_lines():
    header = {"t_utc": 1774008000.0, "warp": 60.0, "paused": False, "step": 7,
              "fleet": {"n_in_eclipse": 3, "delivered_flop_s": 1e15}}
    meta = {"scenario": {"name": "default"},
            "sats": {"names": ["A", "B"], "groups": ["g1", "g2"]},
            "stations": [{"name": "Svalbard"}]}
    top = hud_text.status_lines(header, meta, "LIVE", earth_fixed=False, missed=2, fps=31.4)
    assert top[1] == "2026-03-20 12:00:00 UTC"
    assert "warp x60" in top[2] and "LIVE" in top[2] and "inertial" in top[3]
    assert "missed 2 states" in top[4] and "31 fps" in top[4]
    # Lost events are not lost frames: the stream's gaps by topic say which.
    flood = hud_text.status_lines(header, meta, "LIVE", earth_fixed=False,
                                  missed={"state": 3, "event": 78_730, "hb": 5})
    assert "missed 3 states and 78,735 other messages" in flood[4]
    assert hud_text.status_lines(header, meta, "LIVE", earth_fixed=False,
                                 missed={"event": 4})[4] == "missed 4 other messages"
    assert "PAUSED" in hud_text.status_lines({**header, "paused": True}, meta, "STALE",
                                          earth_fixed=True)[2]
    totals = Catalog({"totals": {k: totals_catalog()[k] for k in
                                 ("n_in_eclipse", "delivered_pflop_s", "p_solar_total_w")}})
    fleet = hud_text.fleet_lines({"n_in_eclipse": 3, "delivered_pflop_s": 1.0,
                               "p_solar_total_w": 2.5e6}, n_flagged=1, catalog=totals)
    assert "Compute: 1.00 PFLOP/s" in fleet and "Eclipse: 3" in fleet
    assert "Solar: 2.50 MW" in fleet
    assert fleet[-1] == "flagged (alarm/fault): 1"
    # Without a totals catalog (an old twin): bare numbers, no unit guessed from a name.
    assert "Compute: 1e+15" in hud_text.fleet_lines(header["fleet"], 0, full=True)
    many = {f"n_thing_{i}": i for i in range(30)} | {"delivered_pflop_s": 2.0,
                                                     "n_limit_alarm": 4}
    short = hud_text.fleet_lines(many, 0, catalog=totals)
    assert len(short) <= 15
    assert short[1] == "Nodes alarm: 4" and short[2] == "Compute: 2.00 PFLOP/s"
    assert len(hud_text.fleet_lines(many, 0, full=True)) == 34
    fields = node_colours.colour_fields(META)
    arrays = {"contact_station": np.array([-1, 0], dtype=np.int16),
              "alt_km": np.array([550.0, 551.0]), "temp_compute_k": np.array([300.0, 310.0])}
    node = hud_text.node_lines(meta, arrays, 1, fields)
    assert node[0] == "NODE 1: B  [g2]" and node[1] == "contact: Svalbard"
    assert "Alt: 551 km" in node
    assert hud_text.node_lines(meta, arrays, 5, fields) == []


# --------------------------------------------------------------------------- selected orbit
def test_orbit_ring_passes_through_the_plane_mates_of_a_circular_orbit():
    """Analytic reference: 16 nodes 22.5 deg apart on one circular orbit (viewerstate).
    A 17-point ring from node 0's r and v must land on node k at vertex k, in order of
    motion."""
    import viewerstate

    pos, vel, names, _ = viewerstate._orbits()
    plane = [i for i, name in enumerate(names) if name.startswith("DD-")]
    ring = scene.orbit_ring(pos[plane[0]], vel[plane[0]], n_points=17)
    assert ring.shape == (17, 3) and ring.dtype == np.float32
    ten_metres_km = 1e-2  # float32 at 7,000 km
    assert np.allclose(ring[:16], pos[plane], atol=ten_metres_km)
    assert np.array_equal(ring[-1], ring[0])  # closed


def test_orbit_ring_matches_sgp4_over_one_revolution():
    """Independent reference: a real Starlink TLE propagated by SGP4 for one period stays
    on the ring drawn from its first position and velocity. Tolerance 40 km: the ring
    leaves out J2 (nodal drift ~0.3 deg per revolution, 35 km at 6,900 km, plus its
    short-period radius terms) and the orbit's eccentricity (a e = 0.7 km here)."""
    from sgp4.api import Satrec

    lines = (ROOT / "assets" / "tle" / "starlink-2023-07-18.tle").read_text().splitlines()
    sat = Satrec.twoline2rv(lines[1], lines[2])
    period_min = 2 * math.pi / sat.no_kozai
    minutes = np.linspace(0.0, period_min, 60)
    states = [sat.sgp4(sat.jdsatepoch, sat.jdsatepochF + m / 1440.0) for m in minutes]
    assert all(err == 0 for err, _, _ in states)
    r = np.array([s[1] for s in states])
    v0 = np.array(states[0][2])
    ring = scene.orbit_ring(r[0], v0, n_points=3601).astype(float)
    normal = np.cross(r[0], v0)
    normal /= np.linalg.norm(normal)
    # Distance of each propagated point from the circle: out of plane and off the radius.
    off_plane = r @ normal
    in_plane = r - off_plane[:, None] * normal
    off_radius = np.linalg.norm(in_plane, axis=1) - np.linalg.norm(r[0])
    forty_km = 40.0
    assert np.max(np.hypot(off_plane, off_radius)) < forty_km
    # ... and the ring's vertices are on that same circle, running the way the node flies.
    assert np.allclose(np.linalg.norm(ring, axis=1), np.linalg.norm(r[0]), atol=1e-2)
    assert np.allclose(ring @ normal, 0.0, atol=1e-2)
    assert np.dot(ring[1] - ring[0], v0) > 0


def test_orbit_ring_without_a_plane():
    assert scene.orbit_ring([7000.0, 0, 0], [np.nan, 7.5, 0]) is None
    assert scene.orbit_ring([7000.0, 0, 0], [7.5, 0.0, 0.0]) is None  # radial: no plane
    assert scene.orbit_ring([0.0, 0, 0], [0.0, 7.5, 0.0]) is None
    assert scene.orbit_ring([7000.0, 0], [0.0, 7.5]) is None


def test_gcrs_to_view_inverts_itrs_to_view(skyfield_time):
    header, _ = _header_at(skyfield_time)
    p = np.array([[7000.0, 100.0, -300.0], [0.0, 6900.0, 10.0]])
    assert np.allclose(scene.gcrs_to_view(p, header, earth_fixed=False), p)
    itrs = scene.gcrs_to_view(p, header, earth_fixed=True)
    assert np.allclose(scene.itrs_to_view(itrs, header, earth_fixed=False), p)


# --------------------------------------------------------------------------- mirror
def test_mirror_lines_show_measured_beside_predicted():
    """Synthetic mirror fields, framed by the real twin.wire codec (viewerstate)."""
    import viewerstate

    meta, state = viewerstate.meta_and_state(mirror=True)
    sat = viewerstate.MIRROR_SAT
    [binding] = mirror_bindings(meta)
    assert (binding.testbed, binding.sat, binding.index) == ("flatsat", sat, 0)
    assert binding.states == ("temp_compute_k", "temp_radiator_k")
    assert binding.drivers == ("compute_power_w", "utilization_frac")
    assert hud_text.mirror_live(state.arrays, binding) is True
    assert hud_text.mirror_tag(state.arrays, binding) == "MIRROR flatsat live"
    lines = hud_text.mirror_lines(meta, state.arrays, sat)
    assert lines[0] == "MIRROR FLATSAT LIVE, newest sample 0.4 s ago"
    assert lines[1].split() == ["measured", "predicted", "residual", "limit"]
    predicted_c = float(state.arrays["temp_compute_k"][sat]) - 273.15
    compute = lines[2].split()
    # Measured and predicted in °C, the residual in K (a difference), past its 10 K limit.
    assert compute[:2] == ["T", "comp"]
    assert compute[2:4] == [f"{predicted_c + 12.0:.1f}", "°C"]
    assert compute[4:6] == [f"{predicted_c:.1f}", "°C"]
    assert compute[6:] == ["+12.00", "K", "±10.00", "K", "!"]
    assert "-1.50 K" in lines[3] and not lines[3].endswith("!")
    assert "170 W" in lines[4] and "drives the model" in lines[4]
    assert "50.0 %" in lines[5]
    assert hud_text.mirror_lines(meta, state.arrays, sat + 1) == []


def test_mirror_lost_and_absent():
    import viewerstate

    meta, state = viewerstate.meta_and_state(mirror=True, mirror_live=False)
    [binding] = mirror_bindings(meta)
    assert hud_text.mirror_tag(state.arrays, binding) == "MIRROR flatsat lost"
    lines = hud_text.mirror_lines(meta, state.arrays, binding.sat)
    assert lines[0].startswith("MIRROR FLATSAT LOST")
    assert "—" in lines[2] and "!" not in lines[2]
    # Before any state: waiting. No mirror, or a malformed one: nothing, and no error.
    assert hud_text.mirror_tag({}, binding) == "MIRROR flatsat waiting"
    plain, _ = viewerstate.meta_and_state()
    assert mirror_bindings(plain) == [] and hud_text.mirror_lines(plain, {}, 0) == []
    bad = {"subsystems": {"mirror": {"bindings": [{"testbed": "x"}, "junk",
                                                  {"testbed": "ok", "sat": 3}]}}}
    assert [(b.index, b.sat) for b in mirror_bindings(bad)] == [(2, 3)]


def test_camera_direction_over_a_node_leans_to_the_sunward_side():
    r, v = np.array([7000.0, 0.0, 0.0]), np.array([0.0, 7.5, 0.0])  # normal +z
    up = scene.camera_direction_over(r, v, tilt=0.6)
    assert np.isclose(np.linalg.norm(up), 1.0)
    assert math.isclose(math.degrees(math.atan2(up[2], up[0])), math.degrees(math.atan(0.6)))
    down = scene.camera_direction_over(r, v, tilt=0.6, toward=[0.0, 0.0, -1.0])
    assert down[2] < 0 and down[0] > 0
    assert np.allclose(scene.camera_direction_over(r, None), [1.0, 0.0, 0.0])
    assert scene.camera_direction_over([np.nan, 0, 0], v) is None


def test_fields_and_totals_never_seen_render_from_the_catalog():
    """The issue's test for the 3D view: a new unit, an enum and a new total, from meta."""
    pump = {0: "off", 1: "low", 2: "high"}
    meta = {"sats": {"n": 2, "names": ["A", "B"]}, "stations": [], "fields": [
        {"name": "coolant_pressure_pa", "shape": [2], "unit": "Pa", "per_sat": True,
         "kind": "quantity", "labels": {}, "display": display_of("Pa"),
         "limits": {"alarm_high": 250_000.0}},
        {"name": "pump_mode", "shape": [2], "unit": "code", "per_sat": True, "kind": "enum",
         "labels": pump, "display": display_of("code"), "limits": {}}],
        "totals": {"coolant_heat_total_w": {"unit": "W", "kind": "quantity", "labels": {},
                                            "description": "", "display": display_of("W")}}}
    arrays = {"coolant_pressure_pa": np.array([180_000.0, 262_000.0], np.float32),
              "pump_mode": np.array([2, 0], np.uint8)}
    fields = node_colours.colour_fields(meta)
    assert [f.name for f in fields] == ["coolant_pressure_pa", "pump_mode"]
    assert hud_text.scalar_bar_title(fields[0], 262_000.0) == "Coolant pressure [Pa]"
    # The enum colours by category: a colour per named code, its label the bar's title.
    assert fields[1].categorical and hud_text.scalar_bar_title(fields[1]) == "Pump mode"
    codes, colours = node_colours.category_colours(fields[1], node_colours.colormap_table())
    assert codes == [0, 1, 2] and len({tuple(c) for c in colours}) == 3
    rgb = node_colours.category_rgb(arrays["pump_mode"], codes, colours)
    assert rgb.tolist() == [colours[2].tolist(), colours[0].tolist()]
    node = hud_text.node_lines(meta, arrays, 0, fields)
    assert sum(line.startswith("Pump mode") for line in node) == 1  # once, by its label
    assert "Coolant pressure: 180000 Pa" in node and "Pump mode: high" in node
    catalog = Catalog(meta)
    assert "Coolant heat total: 2.50 MW" in hud_text.fleet_lines(
        {"coolant_heat_total_w": 2.5e6}, 0, full=True, catalog=catalog)
    alarm = {"kind": "limit", "severity": "alarm", "field": "coolant_pressure_pa",
             "value": 262_000.0, "limit": 250_000.0, "level": "alarm_high", "message": "x"}
    assert catalog.event_text(alarm) == \
        "Coolant pressure 262000 Pa above alarm limit 250000 Pa"

"""The links model: scenario checks, topology patterns, acquisition, and its coupling to
compute's downlink (relay_bps) and to power and heat."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from tests.computeutil import QUIET, STATION, engine
from twin.models.links.model import MAX_LINK_EVENTS, UP
from twin.models.links.topology import AFT, FORE, LinkSearch, LinkTable
from twin.scenario import ScenarioError, parse_scenario

SHELL = """
[scenario]
name = "shell"
epoch = "2026-03-20T12:00:00Z"
seed = 7

[[walker]]
name = "w"
altitude_km = 550.0
inclination_deg = 53.0
planes = 6
sats_per_plane = 12
phasing = 1

[[station]]
name = "Wallops"
lat_deg = 37.94
lon_deg = -75.46
min_elevation_deg = 5.0
downlink_bps = 8.0e8
""" + STATION + QUIET

LINKS = """
[links]
terminals_per_sat = 4
preset = "sda"
acquisition_s = 90.0
[[links.user]]
name = "Svalbard user"
lat_deg = 78.0
lon_deg = 15.0
min_elevation_deg = 10.0
"""


@pytest.mark.parametrize(("table", "key", "words"), [
    ("preset = \"starlink\"", "links.preset", "not allowed"),
    ("terminals_per_sat = 0", "links.terminals_per_sat", "out of range"),
    ("grazing_height_km = -5.0", "links.grazing_height_km", "out of range"),
    ("max_rang_km = 10.0", "links.max_rang_km", "unknown key"),
    ("target_sat = \"nobody\"", "links.target_sat", "no satellite is named"),
    ("idle_power_w = 500.0", "links.idle_power_w", "more than active_power_w"),
    ("[[links.user]]\nname = \"x\"\nlat_deg = 95.0\nlon_deg = 0.0", "links.user[0].lat_deg",
     "out of range"),
    ("[[links.user]]\nname = \"x\"\nlat_deg = 1.0\nlon_deg = 0.0\n"
     "[[links.user]]\nname = \"x\"\nlat_deg = 2.0\nlon_deg = 0.0", "links.user", "two users"),
])
def test_bad_link_parameters_name_file_and_key(table: str, key: str, words: str) -> None:
    text = SHELL + "\n[links]\n" + table + "\n"
    with pytest.raises(ScenarioError) as caught:
        engine(text)
    assert caught.value.file == "<string>"
    assert caught.value.key == key
    assert words in caught.value.problem


def test_no_links_table_means_no_links_fields_totals_or_load() -> None:
    eng = engine(SHELL)
    names = {f.spec.name for f in eng.fields}
    assert not {n for n in names if n.startswith(("link_", "isl_", "relay_", "user_"))}
    assert "links_up" not in eng.header()["fleet"]
    assert eng.models["links"].outputs.relay_bps is None
    # Nor per-node arrays that nothing steps or reads (160 MB of them at a million).
    links = eng.models["links"]
    assert links.outputs.link_relay_bps is None
    assert links.table.peer.size == 0 and links.peer.array.size == 0 and links.n == 0


def test_grid_links_plane_neighbours_and_acquires_before_carrying_data() -> None:
    eng = engine(SHELL + LINKS, dt_s=60.0)
    links = eng.models["links"]
    peer = links.peer.array
    plane = np.array([int(s.name.split("-")[1]) for s in eng.scenario.satellites])
    # In-plane terminals link nodes of the same plane; cross-plane ones other planes.
    for slot in (FORE, AFT):
        used = peer[:, slot] >= 0
        assert used.mean() == 1.0
        assert (plane[peer[used, slot]] == plane[used]).all()
    cross = peer[:, 2:] >= 0
    assert cross.any()
    assert (plane[peer[:, 2:][cross]] != np.repeat(plane[:, None], 2, axis=1)[cross]).all()
    # Every link shows at both ends, and no terminal holds two.
    ends = [(i, int(j)) for i, row in enumerate(peer) for j in row if j >= 0]
    assert all((j, i) in ends for i, j in ends)
    assert (links.state.array[peer >= 0] == 1).all()  # acquiring at the epoch
    assert eng.header()["fleet"]["links_up"] == 0
    eng.step()  # 60 s: still acquiring (90 s)
    assert eng.header()["fleet"]["links_up"] == 0
    eng.step()  # 120 s: up
    fleet = eng.header()["fleet"]
    table = links.table
    t = eng.clock.t_utc
    assert fleet["links_up"] == np.count_nonzero(table.start_t <= t - 90.0) > 0
    assert fleet["links_acquiring"] == np.count_nonzero(table.start_t > t - 90.0)
    up = links.state.array == UP
    assert (links.capacity.array[up] == 2.5e9).all()  # SDA-class, within its full-rate range
    assert fleet["isl_bisection_bps"] > 0


def test_relay_over_real_topology_matches_networkx_and_reaches_the_downlink() -> None:
    eng = engine(SHELL + LINKS, dt_s=60.0)
    for _ in range(3):
        eng.step()
    links = eng.models["links"]
    table = links.table
    up = links._up
    graph = nx.Graph()
    graph.add_nodes_from(range(links.n))
    latency = links._range_m / 299792458.0 + links.params.hop_delay_s
    for k in np.flatnonzero(up):
        graph.add_edge(int(table.a[k]), int(table.b[k]), weight=float(latency[k]))
    contact = eng.orbit.contact_station.array
    gateways = set(np.flatnonzero(contact >= 0).tolist())
    assert gateways, "the scenario should have a node in contact"
    dist = nx.multi_source_dijkstra_path_length(graph, gateways)
    got = links.ground_latency.array
    for node in range(links.n):
        assert got[node] == pytest.approx(dist.get(node, np.inf), rel=1e-6)
    relay = links.relay.array
    out_of_contact = (contact < 0) & (relay > 0)
    assert out_of_contact.any()
    # Compute's downlink field is the station's rate plus the relay: relay alone out of contact.
    downlink = eng.compute_model.results.link.array
    np.testing.assert_allclose(downlink[out_of_contact], relay[out_of_contact], rtol=1e-6)


def test_terminal_power_is_a_bus_load_and_bus_heat() -> None:
    plain = engine(SHELL)
    linked = engine(SHELL + LINKS)
    isl = linked.models["links"].power.array
    assert (isl >= 4 * 10.0).all() and isl.max() <= 4 * 80.0
    extra = linked.power.p_load.array - plain.power.p_load.array
    np.testing.assert_allclose(extra, isl, rtol=1e-5)
    bus_extra = linked.power.outputs.bus_power_w - plain.power.outputs.bus_power_w
    np.testing.assert_allclose(bus_extra, isl, rtol=1e-9)  # what thermal puts in the bus


def test_link_events_are_bounded_per_step() -> None:
    eng = engine(SHELL + LINKS)
    events = eng.events.drain()
    acquiring = [e for e in events if e["kind"] == "link_acquiring"]
    assert len(acquiring) == MAX_LINK_EVENTS + 1
    assert acquiring[-1]["n_links"] == eng.models["links"].table.size - MAX_LINK_EVENTS


def cluster(n_side: int = 9, spacing_m: float = 150.0) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic formation: a square grid of members around a chief at 650 km."""
    r_km = 6378.137 + 650.0
    offsets = (np.arange(n_side) - (n_side - 1) / 2) * spacing_m / 1e3
    gx, gy = np.meshgrid(offsets, offsets)
    pos = np.stack((np.full(gx.size, r_km), gx.ravel(), gy.ravel()), axis=1)
    vel = np.tile([0.0, 7.5, 0.0], (gx.size, 1))
    return pos, vel


def test_cluster_links_nearest_neighbours_stably_within_the_terminal_count() -> None:
    pos, vel = cluster()
    n = len(pos)
    table = LinkTable(n, 4)
    search = LinkSearch(4, "auto", 5_000.0, 1.0, 10_000.0, 80.0)
    table.add(search.search(table, pos, vel, np.ones(n, dtype=bool)), 0.0)
    assert search.n_clustered == n
    degree = np.count_nonzero(table.peer >= 0, axis=1)
    assert degree.max() <= 4 and degree.mean() > 3.0
    lengths = np.linalg.norm(pos[table.a] - pos[table.b], axis=1) * 1e3
    assert lengths.max() < 150.0 * 1.5  # grid neighbours, no diagonals across the formation
    # A second search on the same formation changes nothing that exists.
    before = set(table.keys().tolist())
    table.add(search.search(table, pos, vel, np.ones(n, dtype=bool)), 1.0)
    assert before <= set(table.keys().tolist())
    # Each link shows at both ends.
    assert (table.peer[table.a, table.slot_a] == table.b).all()
    assert (table.peer[table.b, table.slot_b] == table.a).all()


def test_every_links_field_and_total_is_in_the_protocol_doc() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "protocol.md").read_text()
    eng = engine(SHELL + LINKS)
    names = [f.spec.name for f in eng.models["links"].fields()]
    names += list(eng.models["links"].fleet())
    assert [n for n in names if f"`{n}`" not in doc] == []


FORMATION = """
[scenario]
name = "formation"
epoch = "2026-03-20T12:00:00Z"
seed = 7

[[walker]]
name = "cluster"
altitude_km = 650.0
inclination_deg = 98.0
planes = 1
sats_per_plane = 81
""" + STATION + QUIET + """
[links]
preset = "suncatcher"
terminals_per_sat = 4
"""


def test_an_81_member_formation_links_at_full_rate_with_synthetic_positions() -> None:
    """The links model alone, fed a formation (members 150 m apart) as the orbit would."""
    from twin.core.subsystem import EventLog, StepContext
    from twin.models.links import LinksModel

    scenario = parse_scenario(FORMATION)
    model = LinksModel(scenario)
    pos, vel = cluster()
    n = len(pos)
    t0 = scenario.epoch_utc.timestamp()
    for k, t in enumerate((t0, t0 + 5.0, t0 + 11.0)):
        ctx = StepContext.with_quantities(
            t, 0.0 if k == 0 else 5.0, EventLog(t), np.random.default_rng(0),
            pos_gcrs_km=pos, vel_gcrs_km_s=vel, orbit_status=np.zeros(n, dtype=np.uint8),
            r2_km2=np.einsum("ij,ij->i", pos, pos),
            contact_station=np.where(np.arange(n) == 0, 0, -1).astype(np.int16))
        model.step(ctx)
        if k < 2:
            assert model.fleet()["links_up"] == 0  # acquiring for 10 s
    fleet = model.fleet()
    assert fleet["links_up"] == model.table.size > 120
    up = model.state.array == UP
    assert (model.capacity.array[up] == 800e9).all()  # 150-212 m: far inside 2.2 km
    # Every member relays to the ground through member 0, at its station's rate.
    relay = model.relay.array
    assert relay[0] == 0.0 and (relay[1:] == 1.0e9).all()
    assert (model.ground_latency.array[1:] > 0).all()
    assert np.isfinite(model.ground_latency.array).all()
    # A median cut across a 9 x 9 grid crosses at least its 9 grid links.
    assert fleet["isl_bisection_bps"] >= 9 * 800e9
    assert model.group_bisection.array[0] == fleet["isl_bisection_bps"]


def test_stored_results_load_the_links_on_their_relay_path() -> None:
    eng = engine(SHELL + LINKS, dt_s=60.0)
    for _ in range(3):
        eng.step()
    links = eng.models["links"]
    relay = links.relay.array
    node = int(np.flatnonzero((relay > 0) & (links.tree_depth() >= 2))[0])
    size_bytes = 1.0e9
    eng.compute_model.results.add(node, size_bytes, eng.clock.t_utc, job_id=10_000)
    eng.step()
    demand = min(size_bytes * 8.0 / 60.0, 2.5e9)
    tree = links._tree
    hops, at = [], node
    while tree.parent[at] >= 0:
        hops.append(int(tree.parent_link[at]))
        at = int(tree.parent[at])
    table = links.table
    util = links.utilization.array
    for k in hops:  # both ends of every link on the path show the same share
        expected = demand / links._cap_bps[k]
        assert util[table.a[k], table.slot_a[k]] == pytest.approx(expected, rel=1e-6)
        assert util[table.b[k], table.slot_b[k]] == pytest.approx(expected, rel=1e-6)
    assert np.count_nonzero(util) == 2 * len(hops)


@pytest.mark.parametrize(("terminals", "in_plane_only"), [(1, False), (2, True), (3, True)])
def test_fewer_terminals_still_link(terminals: int, in_plane_only: bool) -> None:
    eng = engine(SHELL + f"\n[links]\nterminals_per_sat = {terminals}\n")
    links = eng.models["links"]
    assert links.table.size > 0
    degree = np.count_nonzero(links.peer.array >= 0, axis=1)
    assert degree.max() <= terminals
    if in_plane_only:
        plane = np.array([int(s.name.split("-")[1]) for s in eng.scenario.satellites])
        assert (plane[links.table.a] == plane[links.table.b]).all()


def test_nodes_out_of_service_lose_their_links_and_make_none() -> None:
    """At design life the lifecycle takes every node out of service (disposed or derelict:
    terminals off, some re-entering later): their links are lost at once, with an event,
    and the search makes none again. Before, a re-entered node kept its links."""
    lifecycle = ("\n[lifecycle]\ndesign_life_yr = 0.05\ntime_acceleration = 10000.0\n"
                 "density_model = \"table\"\n")
    eng = engine(SHELL + LINKS + lifecycle, dt_s=60.0)
    links, lc = eng.models["links"], eng.models["lifecycle"]
    eng.step()
    eng.step()
    assert eng.header()["fleet"]["links_up"] > 0
    assert np.all(lc.state.array == 0)  # operating
    lost_events = 0
    for _ in range(10):  # 6,000 s a step: 0.05 yr is about 3 steps
        eng.step()
        lost_events += sum(1 for e in eng.events.drain() if e["kind"] == "link_lost")
        if np.all(lc.state.array != 0):
            break
    assert np.all(lc.state.array != 0)  # all out of service
    for _ in range(2):  # the links read the lifecycle's last step
        eng.step()
        lost_events += sum(1 for e in eng.events.drain() if e["kind"] == "link_lost")
    fleet = eng.header()["fleet"]
    assert fleet["links_up"] == 0 and fleet["links_acquiring"] == 0
    assert np.all(links.peer.array == -1) and links.table.size == 0
    assert lost_events > 0

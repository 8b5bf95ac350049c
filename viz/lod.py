"""Level of detail for the 3D view of a large fleet: which nodes to draw, and how big.

A CPU renderer (Mesa llvmpipe) pays for every point it draws, whether or not it lands on a
pixel another point already took: about 0.3 µs a point, so a million points alone take a
third of a second a frame. A window of 1280x720 has under a million pixels, and a million
nodes spread over a globe that fills a third of it are a solid sheet long before every
one is drawn. So past ``DRAW_BUDGET`` nodes the view draws an even sample of the fleet
(``DRAW_BUDGET`` nodes evenly spread over the indices: generated shells are numbered plane
by plane, so every plane keeps its share), and the point size falls with the density of
what is drawn, so the sample reads as a fleet rather than a blob. Nodes that matter one by
one are always drawn, whether sampled or not: flagged nodes (their red squares), the
selected node, mirrored nodes.
Colours, flags and picking use the same sample, so what is seen is what is picked.
"""

from __future__ import annotations

import math

import numpy as np

DRAW_BUDGET = 100_000
"""Most nodes drawn as points in one frame: about 30 ms on llvmpipe at 2 px."""
COVERAGE = 0.5
"""Share of the window's pixels the drawn points would cover if spread evenly: the point
size is chosen so that they cover about this much (a denser sample gets smaller points)."""
REFERENCE_PIXELS = 1280 * 720
"""The window the point sizes are chosen for (the view scales marks with its height)."""
LARGEST_PX = 5.0
"""Point size of a big fleet's nodes when they are few enough (today's look up to ~20k)."""
SMALLEST_PX = 1.5
"""Below this a node is a faint speck on llvmpipe (points are snapped to whole pixels)."""


def drawn_nodes(n_nodes: int, budget: int | None = None) -> np.ndarray | None:
    """Indices of the nodes to draw: None for all of them (``n_nodes <= budget``).

    Args:
        n_nodes: Nodes in the fleet.
        budget: Most nodes to draw; None: ``DRAW_BUDGET`` as it is now.

    Returns:
        ``budget`` node indices spread evenly from 0 (``floor(k n / budget)``: steps of
        ``n / budget`` rounded down, so one node past the budget still draws the budget,
        not half of it), int64, increasing; or None.
    """
    budget = DRAW_BUDGET if budget is None else budget
    if n_nodes <= budget:
        return None
    return np.arange(budget, dtype=np.int64) * n_nodes // budget


def subscription_every(n_nodes: int, budget: int | None = None) -> int:
    """The decimation a viewer subscribes with (docs/protocol.md, ``every``): 1 up to
    ``budget`` nodes, else the smallest k for which every k-th node fits the budget."""
    budget = DRAW_BUDGET if budget is None else budget
    return max(1, math.ceil(n_nodes / max(1, budget)))


def strided_nodes(n_nodes: int, every: int) -> np.ndarray | None:
    """Every ``every``-th node from 0 (what a subscription with ``every`` carries), int64;
    None for every node (``every`` 1)."""
    if every <= 1:
        return None
    return np.arange(0, n_nodes, every, dtype=np.int64)


def point_size_px(n_drawn: int, pixels: int = REFERENCE_PIXELS) -> float:
    """Point size (px, at the reference window) for ``n_drawn`` points: ``LARGEST_PX``
    for a few thousand, down to ``SMALLEST_PX`` as they crowd the window."""
    if n_drawn <= 0:
        return LARGEST_PX
    side = math.sqrt(COVERAGE * pixels / n_drawn)
    return float(min(LARGEST_PX, max(SMALLEST_PX, round(side * 2.0) / 2.0)))


CONTACT_BUDGET = 3_000
"""Most station-to-node contact lines drawn: tens of thousands merge into solid fans that
hide the globe (and cost a CPU renderer as much as the nodes)."""


def thinned_contacts(in_contact: np.ndarray, budget: int = CONTACT_BUDGET) -> np.ndarray:
    """``in_contact`` (stations x nodes, bool) with at most about ``budget`` contacts left:
    every k-th contact in station order, so each station keeps its share of the lines."""
    count = int(np.count_nonzero(in_contact))
    if count <= budget:
        return in_contact
    station, node = np.nonzero(in_contact)
    step = math.ceil(count / budget)
    thinned = np.zeros(in_contact.shape, dtype=bool)
    thinned[station[::step], node[::step]] = True
    return thinned


# ---------------------------------------------------------------- the screen's pixel budget
PX_PER_POINT = 10.0
"""Pixels of the fleet's disc on the screen per drawn point. The fitted globe at 1280x720
(a disc of about 330,000 px) then draws about 33,000 nodes at 3.5 px: they cover it as
100,000 at 2 px did, each node's colour reads, and a frame costs llvmpipe a third."""
MIN_DRAWN = 10_000
"""Fewest nodes a sampled fleet draws, however far the camera (a fleet this size or
smaller is always drawn whole)."""
HYSTERESIS = 0.3
"""How far past the half-way point between two thinnings the zoom must go before the
view changes to the other: a camera that rests at a boundary does not flicker."""


def footprint_px(fleet_radius_km: float, camera_distance_km: float, view_angle_deg: float,
                 window_height_px: int) -> float:
    """Area (px) of the disc the fleet's sphere covers on the screen, as if the window
    were unbounded: zooming in grows it past the window, which asks for a denser sample.

    Args:
        fleet_radius_km: Radius of the sphere holding the fleet (its highest node), km.
        camera_distance_km: Camera's distance from the Earth's centre, km.
        view_angle_deg: The camera's vertical view angle, deg.
        window_height_px: Window height, px.

    Returns:
        Area in px; ``inf`` with the camera inside the sphere.
    """
    if not (camera_distance_km > fleet_radius_km > 0.0):
        return math.inf
    half = math.asin(fleet_radius_km / camera_distance_km)
    radius_px = 0.5 * window_height_px * math.tan(half) / math.tan(
        math.radians(0.5 * view_angle_deg))
    return math.pi * radius_px * radius_px


def screen_budget(footprint: float) -> int:
    """Nodes to draw for a fleet disc of ``footprint`` px (``footprint_px``): one per
    ``PX_PER_POINT`` px, at least ``MIN_DRAWN``, at most ``DRAW_BUDGET``."""
    if not math.isfinite(footprint):
        return DRAW_BUDGET
    return int(min(DRAW_BUDGET, max(MIN_DRAWN, footprint / PX_PER_POINT)))


def thinning(rows: int, budget: int, current: int = 1) -> int:
    """Draw every k-th of ``rows`` candidate nodes to come near ``budget``: k, 1 or more.

    ``current`` is the k in use: it is kept unless ``rows / budget`` moved more than
    ``HYSTERESIS`` past the half-way point to another k.
    """
    if rows <= MIN_DRAWN or budget >= rows:
        return 1
    wanted = rows / max(1, budget)
    if current >= 1 and abs(wanted - current) < 0.5 + HYSTERESIS:
        return current
    return max(1, round(wanted))


RUN = 64
"""Candidates kept in a row when thinning: generated shells are numbered along each plane,
so a run of neighbours is an arc of an orbit, and the thinned fleet still reads as orbits
(a megafleet subscription's 64 rows: half a plane), not as an even snow."""


def thinned(base: np.ndarray | None, n_nodes: int, every: int) -> np.ndarray | None:
    """One run of ``RUN`` in every ``every`` runs of the candidate nodes ``base`` (None:
    all ``n_nodes``), int64, increasing; None when that is every node. Fewer than
    ``RUN * every * 64`` candidates are thinned in shorter runs, down to every
    ``every``-th node, so each part of the fleet keeps its share."""
    if every <= 1:
        return base
    nodes = np.arange(n_nodes, dtype=np.int64) if base is None else base
    run = max(1, min(RUN, len(nodes) // (64 * every)))
    keep = (np.arange(len(nodes)) // run) % every == 0
    return np.ascontiguousarray(nodes[keep])

"""Optical inter-satellite links: terminals, link budget, topology, routing (issue 19)."""

from twin.models.links.model import FLEET_TOTALS, LinksModel
from twin.models.links.params import PRESETS, LinksParams, Terminal, UserLocation

__all__ = ["FLEET_TOTALS", "PRESETS", "LinksModel", "LinksParams", "Terminal", "UserLocation"]

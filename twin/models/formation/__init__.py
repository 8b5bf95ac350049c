"""Formation clusters: members' relative motion, station keeping, safety and self-shadowing.

``clusters`` flies the members (owned by the orbit model, which places them each step);
``model`` publishes their safety and fuel fields, totals and events.
"""

"""ODC Twin: the twin process (scenario, clock, models, engine, wire, server)."""

__version__ = "0.1.0"

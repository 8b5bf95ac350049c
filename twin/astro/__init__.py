"""Reference frames, the Sun, SGP4, geometry and ground contacts."""

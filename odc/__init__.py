"""The `odc` command: one front door to the twin, its viewers and its bridges."""

"""`odc web`: the dashboard and the 3D view in a browser, live from the twin's stream."""

"""The running twin: sockets, the serve loop and the `odc run` CLI."""

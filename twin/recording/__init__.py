"""Recording the twin's stream to MCAP, replaying it, and reading it back (issue 15)."""

"""`odc run`'s live status line and its log lines share the terminal: a warning starts on a
line of its own (issue 16 review: "... commands 4 ok, 0 rejected2026-12-06 11:36:29,975
WARNING odc.twin: command rejected ..." on one line)."""

from __future__ import annotations

import io
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from twinutil import make_server

from twin.runtime.cli import StatusLine


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_line_clears_the_status_line_first() -> None:
    terminal = Terminal()
    handler = logging.StreamHandler(terminal)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("odc.test.status")
    logger.addHandler(handler)
    logger.propagate = False
    server = make_server("default", fast=True)
    try:
        server.engine.step()
        status = StatusLine(terminal)
        handler.addFilter(status.logging_filter())
        status(server)
        logger.warning("command rejected: pause")
        status._next = 0.0  # the next tick rewrites the status line
        status(server)
        shown = terminal.getvalue()
        # The warning starts at the left edge of a blanked line, and ends its own line.
        before, after = shown.split("WARNING", 1)
        assert before.endswith("\r\x1b[2K"), repr(before[-40:])
        assert after.split("\n", 1)[0].endswith("command rejected: pause")
        assert after.split("\n", 1)[1].startswith("\r\x1b[2K") and "rejected" in after
    finally:
        logger.removeHandler(handler)
        server.close()


def test_off_a_terminal_nothing_is_cleared() -> None:
    stream = io.StringIO()
    status = StatusLine(stream)
    status.clear()
    assert stream.getvalue() == ""


def test_odc_run_on_a_terminal_writes_a_warning_on_its_own_line() -> None:
    """The real `odc run` with its stderr on a pseudo-terminal: a refused command's
    warning comes after a blanked line, never after the status line's text."""
    import os
    import pty
    import re
    import subprocess
    import time

    from procutil import ANY_PORT, ROOT, stop_process

    from viz.stream import CommandClient

    master, slave = pty.openpty()
    command = [sys.executable, "-m", "odc.cli", "run", "--pub", ANY_PORT, "--cmd", ANY_PORT,
               "--ingest", ANY_PORT]
    proc = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    seen = b""

    def read_until(pattern: bytes, timeout_s: float = 60.0) -> re.Match[bytes]:
        nonlocal seen
        deadline = time.monotonic() + timeout_s
        while (match := re.search(pattern, seen)) is None:
            assert time.monotonic() < deadline, seen[-400:]
            try:
                seen += os.read(master, 65536)
            except OSError:  # the process closed the terminal
                break
        assert match is not None, seen[-400:]
        return match

    try:
        cmd = read_until(rb"commands (tcp://\S+)").group(1).decode()
        read_until(rb"rejected")  # the status line is up
        client = CommandClient(cmd, timeout_s=10.0)
        try:
            assert not client.send("set_power_cap")["ok"]
        finally:
            client.close()
        read_until(rb"WARNING[^\n]*set_power_cap")
        before = seen[:seen.index(b"WARNING")]
        # Since the last blanking of the line: only the log line's own time stamp (before
        # the fix, the status line's text ran on into it).
        since_clear = before.rsplit(b"\r\x1b[2K", 1)[-1]
        assert re.fullmatch(rb"\d{4}-\d\d-\d\d [\d:,]+ ", since_clear), since_clear[-200:]
    finally:
        stop_process(proc)
        os.close(master)

"""The dashboard in a browser: `odc tui` per browser tab, through textual-serve.

Each browser tab that opens ``/dashboard/`` gets its own `odc tui` process, started with
the same ``--pub``, ``--cmd`` and key options as `odc web`, so it follows the stream and
sends commands under exactly the rules of the terminal dashboard. textual-serve's own
page loads its font from the internet; ours (``templates/app_index.html``) takes the
same font from textual-serve's static folder, so nothing downloads at run time.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import shlex
import signal
import sys
from asyncio.subprocess import Process
from pathlib import Path
from typing import Any, ClassVar

from aiohttp import web
from textual_serve.app_service import AppService
from textual_serve.server import Server, to_int

from twin.security.clients import ClientKeys

TEMPLATES = Path(__file__).resolve().parent / "templates"
# Largest terminal a browser tab may ask for (columns, rows): bounds what one tab costs.
MAX_COLUMNS, MAX_ROWS = 500, 200
# Each tab is an `odc tui` process: a bound, so no client can start them without end.
MAX_TABS = 16
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def tui_command(pub: str, cmd: str, keys: ClientKeys | None) -> str:
    """The shell command textual-serve runs per tab: this Python's `odc tui`.

    Every part is quoted: addresses and key paths come from the operator, and
    textual-serve starts the command through a shell.
    """
    parts = [sys.executable, "-m", "odc.cli", "tui", "--pub", pub, "--cmd", cmd]
    if keys is not None:
        parts += ["--key", str(keys.key_file), "--server-key", str(keys.server_key_file)]
    # exec: the dashboard replaces the shell, so stopping the process stops the dashboard.
    return "exec " + shlex.join(parts)


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when `odc web` dies, even by SIGKILL (Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: `odc web` still stops its dashboards when it exits normally


class TrackedAppService(AppService):
    """textual-serve's per-tab process, started so that it never outlives `odc web`."""

    pids: ClassVar[set[int]] = set()

    async def _open_app_process(self, width: int = 80, height: int = 24) -> Process:
        environment = self._build_environment(width=width, height=height)
        self._process = process = await asyncio.create_subprocess_shell(
            self.command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=environment, preexec_fn=_die_with_parent)
        assert process.stdin is not None
        self._stdin = process.stdin
        self.pids.add(process.pid)
        return process

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            if self._process is not None:
                self.pids.discard(self._process.pid)

    @classmethod
    def stop_all(cls) -> None:
        """SIGTERM every dashboard process still running (at `odc web`'s exit)."""
        for pid in list(cls.pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        cls.pids.clear()


class _ClosedTabs(logging.Filter):
    """textual-serve logs a traceback when a tab closes while its app writes; that is
    how tabs end, not an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, ConnectionError)


log = logging.getLogger("textual-serve")
log.addFilter(_ClosedTabs())


class DashboardServer(Server):
    """textual-serve's server, as an aiohttp sub-application of `odc web`'s one server.

    Differences from textual-serve's own: the page is ours (no font from the internet),
    the websocket address is taken from the request (so it works whatever name or
    address the browser used), the terminal size a tab asks for is bounded, and the
    start-up banner is not printed.
    """

    def __init__(self, command: str, title: str = "ODC Twin — dashboard") -> None:
        super().__init__(command, title=title, templates_path=TEMPLATES)
        self.tabs = 0  # dashboard processes running now (at most MAX_TABS)

    async def make_app(self) -> web.Application:
        """The sub-application: the page at ``/``, its websocket, textual's static files."""
        return await self._make_app()

    async def on_startup(self, app: web.Application) -> None:
        """textual-serve prints a banner here; `odc web` prints its own addresses."""

    async def handle_index(self, request: web.Request) -> web.Response:
        # The page's addresses come from the request: the host the browser used, and the
        # sub-application's prefix (/dashboard) through the router.
        self.public_url = f"{request.scheme}://{request.host}"
        return await super().handle_index(request)

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        """textual-serve's, with the tab's terminal size bounded and its process tracked."""
        if self.tabs >= MAX_TABS:
            raise web.HTTPServiceUnavailable(
                text=f"odc web: {MAX_TABS} dashboard tabs are open, the most it serves; "
                     "close one and reload\n")
        self.tabs += 1
        try:
            return await self._serve_tab(request)
        finally:
            self.tabs -= 1

    async def _serve_tab(self, request: web.Request) -> web.WebSocketResponse:
        websocket = web.WebSocketResponse(heartbeat=15)
        width = min(max(to_int(request.query.get("width", "80"), 80), 20), MAX_COLUMNS)
        height = min(max(to_int(request.query.get("height", "24"), 24), 5), MAX_ROWS)
        app_service: TrackedAppService | None = None
        try:
            await websocket.prepare(request)
            app_service = TrackedAppService(
                self.command, write_bytes=websocket.send_bytes, write_str=websocket.send_str,
                close=websocket.close, download_manager=self.download_manager,
                debug=self.debug)
            await app_service.start(width, height)
            await self._process_messages(websocket, app_service)
        except asyncio.CancelledError:
            await websocket.close()
        except Exception:
            log.exception("dashboard tab failed")
        finally:
            if app_service is not None:
                await app_service.stop()
        return websocket

    async def handle_download(self, request: web.Request) -> Any:
        raise web.HTTPNotFound(text="the dashboard offers no downloads\n")

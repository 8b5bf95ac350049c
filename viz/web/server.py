"""`odc web`'s one server: an index, the dashboard and the 3D view on one port.

trame's aiohttp application is the host: it serves the 3D view (``/index.html``, its
websocket ``/ws``), and `odc web` adds its index (``/``) and textual-serve's dashboard
as a sub-application (``/dashboard/``), with one access check (``viz.web.access``) in
front of all of it. One process and one port: one address to give out, to open in a
firewall and to protect with the token, and nothing half-started when one part fails.
"""

from __future__ import annotations

import argparse
import functools
import html
import logging
import os
import socket
import sys
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from viz.web.access import Access
from viz.web.dashboard import TEMPLATES, DashboardServer, TrackedAppService, tui_command

log = logging.getLogger("odc.viz.web")

TITLE = "ODC Twin"


def dashboard_app(dashboard: DashboardServer) -> web.Application:
    """textual-serve's routes (its ``_make_app``, which is async for no reason) as an app."""
    app = web.Application()
    aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(TEMPLATES))
    app.add_routes([
        web.get("/", dashboard.handle_index, name="index"),
        web.get("/ws", dashboard.handle_websocket, name="websocket"),
        web.get("/download/{key}", dashboard.handle_download, name="download"),
        web.static("/static", dashboard.statics_path, name="static"),
    ])
    return app


def index_page(pub: str, cmd: str, token_needed: bool) -> str:
    """The landing page: what this server shows and where the twin is."""
    note = ("<p class=note>This server needs its access token; your browser keeps it in a "
            "cookie for this address.</p>" if token_needed else "")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{TITLE}</title>
<meta name="viewport" content="width=device-width,initial-scale=1">
<style>
 body {{ background:#0c181f; color:#e6edf3; font:16px/1.5 system-ui,sans-serif; margin:0; }}
 main {{ max-width:52rem; margin:4rem auto; padding:0 1.5rem; }}
 h1 {{ font-weight:600; margin:0 0 .25rem; }} .sub {{ color:#9fb3c8; margin:0 0 2rem; }}
 .cards {{ display:grid; grid-template-columns:1fr 1fr; gap:1.25rem; }}
 a.card {{ display:block; padding:1.5rem; border-radius:10px; background:#12232d;
   border:1px solid #24404f; color:inherit; text-decoration:none; }}
 a.card:hover, a.card:focus {{ border-color:#5fb3ff; background:#163040; }}
 a.card b {{ font-size:1.25rem; display:block; margin-bottom:.5rem; color:#8cc8ff; }}
 code {{ color:#c9d6e2; }} .note {{ color:#f0c674; }}
 footer {{ margin-top:2rem; color:#9fb3c8; font-size:.9rem; }}
</style></head><body><main>
<h1>{TITLE}</h1><p class=sub>The digital twin of an orbital data centre, live.</p>
<div class=cards>
 <a class=card href="/view" id=view-link><b>3D view →</b>The fleet around the Sun-lit Earth,
 coloured by any field; pause, step and warp the twin. Keys as in <code>odc view</code>.</a>
 <a class=card href="/dashboard/" id=dashboard-link><b>Dashboard →</b>Every node as numbers,
 trends and alarms; every command the twin declares. Keys as in <code>odc tui</code>.</a>
</div>{note}
<footer>Following the twin at <code>{html.escape(pub)}</code> (stream) and
<code>{html.escape(cmd)}</code> (commands). Each dashboard tab runs its own
<code>odc tui</code>; every 3D tab shows the same scene.</footer>
</main></body></html>
"""


def _host_for_links(host: str) -> str:
    """The host part of the addresses `odc web` prints: a wildcard bind is reached by this
    machine's name, an IPv6 address goes in brackets."""
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    return f"[{host}]" if ":" in host else host


class WebServer:
    """Builds and runs the trame server with the index and the dashboard mounted on it.

    Args:
        access: Who may connect (``viz.web.access.Access``).
        port: TCP port (0: any free one).
        pub, cmd: The twin's stream and command addresses.
        keys: CURVE client keys for the twin, or None.
        field: The 3D view's starting colour field, or None.
    """

    def __init__(self, access: Access, port: int, pub: str, cmd: str, keys: Any = None,
                 field: str | None = None) -> None:
        self.access = access
        self.port = port
        self.pub, self.cmd, self.keys = pub, cmd, keys
        self.field = field
        self.view: Any = None

    def run(self) -> int:
        """Serve until SIGINT or SIGTERM; returns the exit status."""
        from viz.viewer import prefer_egl

        prefer_egl()
        # wslink writes a readiness line for its launcher on stdout; we print our own.
        os.environ["WSLINK_READY_MSG"] = ""
        from trame.app import get_server

        from viz.web import page
        from viz.web.view3d import WebView

        server = get_server("odc-web", client_type="vue3")
        # trame reads its options from sys.argv; `odc web`'s are not for it.
        cli = server.cli
        cli.parse_known_args = functools.partial(argparse.ArgumentParser.parse_known_args, cli,
                                                 ["--server"])
        self.view = WebView(server, self.pub, self.cmd, keys=self.keys, field=self.field)
        page.build(server, self.view)
        dashboard = DashboardServer(tui_command(self.pub, self.cmd, self.keys))
        index = index_page(self.pub, self.cmd, self.access.token is not None)

        async def serve_index(_request: web.Request) -> web.Response:
            return web.Response(text=index, content_type="text/html")

        async def to_view(_request: web.Request) -> web.Response:
            raise web.HTTPFound("/index.html")

        async def to_dashboard(_request: web.Request) -> web.Response:
            raise web.HTTPFound("/dashboard/")

        async def session(request: web.Request) -> web.Response:
            # The trame page asks a ParaView-style launcher where its websocket is before
            # it falls back to its own address; answering saves it a failed request.
            scheme = "wss" if request.secure else "ws"
            return web.json_response({"sessionURL": f"{scheme}://USE_HOST/ws"})

        def bind(wslink_server: Any) -> None:
            app = wslink_server.app
            app.middlewares.append(self.access.middleware())
            app.router.add_get("/", serve_index)
            app.router.add_get("/view", to_view)
            app.router.add_post("/paraview/", session)
            app.router.add_get("/dashboard", to_dashboard)
            app.add_subapp("/dashboard", dashboard_app(dashboard))

        def ready(**_state: Any) -> None:
            self.view.start()
            shown = _host_for_links(self.access.host)
            token = f"/?token={self.access.token}" if self.access.token else "/"
            print(f"odc web: serving on http://{shown}:{server.port}{token}", file=sys.stderr,
                  flush=True)
            print(f"  index      http://{shown}:{server.port}/\n"
                  f"  dashboard  http://{shown}:{server.port}/dashboard/\n"
                  f"  3D view    http://{shown}:{server.port}/view", file=sys.stderr, flush=True)

        server.controller.on_server_bind.add(bind)
        server.controller.on_server_ready.add(ready)
        try:
            server.start(host=self.access.host, port=self.port, open_browser=False,
                         show_connection_info=False, timeout=0, disable_logging=True)
        except OSError as exc:
            why = (exc.strerror or str(exc)).lower()  # "address already in use", in words
            print(f"odc web: cannot serve on {self.access.host}:{self.port}: {why}",
                  file=sys.stderr)
            return 1
        finally:
            TrackedAppService.stop_all()
            self.view.close()
        return 0

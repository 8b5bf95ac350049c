"""`odc web` in a real browser: a real twin, a real `odc web` process, Debian's Chromium.

Playwright drives /usr/bin/chromium (never a downloaded browser). The server runs with an
access token, so every page here also goes through the token's query-then-cookie path,
websockets included. The access rule's other checks (Host, Origin, wrong or missing
token) run against a real aiohttp server on a loopback port.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from aiohttp import web
from procutil import ROOT, stop_process, twin_process

from twin.security.clients import ClientKeys
from twin.security.keys import new_key
from viz.stream import CommandClient
from viz.web.access import COOKIE, Access, AccessError, is_loopback_host, resolve_token
from viz.web.view3d import browser_key_action

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
TOKEN = "test-token-0123456789abcdef"
SERVING = re.compile(r"odc web: serving on (http://\S+?)/(\?token=\S+)?$")
ANSI = re.compile(r"\x1b(\[[0-9;?<>=]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[()][A-Z0-9]|.)")

playwright_api = pytest.importorskip("playwright.sync_api")
# CI (.ci/run installs Chromium, CI=true) never skips: a browser that did not install is
# a failure there, not a silently skipped test.
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists() and not os.environ.get("CI"),
                                    reason="Debian's chromium is not installed (.ci/run "
                                    "installs it)")


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def twin() -> Iterator[dict[str, str]]:
    with twin_process("--scenario", "default") as (_proc, addresses):
        yield addresses


@contextmanager
def web_process(*flags: str) -> Iterator[str]:
    """`odc web FLAGS` on a free loopback port; yields its base URL."""
    command = [sys.executable, "-m", "odc.cli", "web", "--port", "0", *flags]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        base = ""
        deadline = time.monotonic() + 60
        while not base and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            match = SERVING.match(line.strip())
            if match:
                base = match.group(1)
        assert base, f"odc web did not say where it serves (exit {proc.poll()})"
        yield base
    finally:
        stop_process(proc)
        proc.stderr.close()


@pytest.fixture(scope="module")
def web_server(twin: dict[str, str]) -> Iterator[str]:
    """`odc web` with a token, following the module's twin."""
    with web_process("--pub", twin["stream"], "--cmd", twin["commands"],
                     "--token", TOKEN) as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                              args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture()
def page(browser, web_server: str) -> Iterator[object]:
    """A tab that gave the token once (now in its cookie) and records every request."""
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    tab = context.new_page()
    tab.requested = []
    tab.on("request", lambda request: tab.requested.append(request.url))
    tab.goto(f"{web_server}/?token={TOKEN}")
    assert "token=" not in tab.url, "the token must leave the address bar"
    yield tab
    context.close()


def offsite(requests: list[str], base: str) -> list[str]:
    """Requests that left this server: nothing may download at run time. (The remote
    view shows each image through a ``blob:`` address of the page itself.)"""
    ours = (base + "/", base.replace("http", "ws", 1) + "/", f"blob:{base}/", "data:")
    return [url for url in requests if not url.startswith(ours)]


def image_of(tab) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(tab.screenshot())).convert("RGB")).astype(int)


def globe_and_satellites(image: np.ndarray, top: int) -> tuple[float, int]:
    """(earth-coloured fraction of the centre disc, count of small bright colour points).

    The globe: the disc at the view's centre is not black (space), much of it ocean
    blue. The satellites: 8-pixel cells holding a few saturated, bright pixels (node
    colours), away from the HUD (left, right) and the event line (bottom).
    """
    view = image[top:]
    h, w, _ = view.shape
    yy, xx = np.mgrid[0:h, 0:w]
    disc = (yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (0.18 * min(h, w)) ** 2
    pixels = view[disc]
    lit = pixels.sum(axis=1) > 12  # the night side's ocean is dark blue, space is black
    ocean = (pixels[:, 2] > pixels[:, 0] + 10) & lit
    earth = min(float(lit.mean()), 2.0 * float(ocean.mean()))
    bright, dull = view.max(axis=2), view.min(axis=2)
    points = (bright > 150) & (bright - dull > 90)
    middle = points[int(0.08 * h):int(0.9 * h), int(0.25 * w):int(0.8 * w)]
    cells = middle[: middle.shape[0] // 8 * 8, : middle.shape[1] // 8 * 8]
    per_cell = cells.reshape(cells.shape[0] // 8, 8, cells.shape[1] // 8, 8).sum(axis=(1, 3))
    return earth, int(np.count_nonzero((per_cell >= 2) & (per_cell <= 40)))


def wait_for_view(tab, base: str) -> np.ndarray:
    """Open the 3D page and wait until the twin's scene is drawn; returns the screenshot."""
    tab.goto(f"{base}/view")
    tab.wait_for_function("document.querySelector('#odc-clock')?.innerText === 'running'",
                          timeout=30_000)
    top = tab.eval_on_selector(".odc-view", "e => Math.ceil(e.getBoundingClientRect().top)")
    deadline = time.monotonic() + 30
    while True:
        image = image_of(tab)
        earth, points = globe_and_satellites(image, top)
        if (earth > 0.5 and points >= 20) or time.monotonic() > deadline:
            return image[top:]
        tab.wait_for_timeout(300)


# ---------------------------------------------------------------------------- browser
@needs_chromium
def test_3d_page_draws_the_globe_and_the_satellites(page, web_server: str) -> None:
    image = wait_for_view(page, web_server)
    earth, points = globe_and_satellites(image, 0)
    assert earth > 0.5, f"no lit globe at the centre (earth-coloured fraction {earth:.2f})"
    assert points >= 20, f"only {points} satellite-like points drawn"
    assert page.inner_text("#odc-connection") == "LIVE"
    assert page.inner_text(".odc-bar").count("40 nodes") == 1
    assert offsite(page.requested, web_server) == []


@needs_chromium
def test_a_key_on_the_3d_page_pauses_the_twin(page, web_server: str, twin) -> None:
    wait_for_view(page, web_server)
    commands = CommandClient(twin["commands"], timeout_s=3.0)
    try:
        page.keyboard.press(" ")
        page.wait_for_function("document.querySelector('#odc-clock').innerText === 'PAUSED'",
                               timeout=10_000)
        assert commands.send("status")["paused"] is True  # the twin itself, not the page
        assert "pause" in page.inner_text("#odc-message")
        step = commands.send("status")["step"]
        page.click("text=step")  # the button: the same command as `.`
        page.wait_for_function("document.querySelector('#odc-message').innerText"
                               ".startsWith('step')", timeout=10_000)
        assert commands.send("status")["step"] == step + 1
        page.click("text=pause / resume")
        page.wait_for_function("document.querySelector('#odc-clock').innerText === 'running'",
                               timeout=10_000)
        assert commands.send("status")["paused"] is False
    finally:
        commands.send("resume")
        commands.close()


def selection_square(image: np.ndarray) -> tuple[int, float, float]:
    """(white pixels, x, y) of the 15-pixel window whitest in the view's middle: the
    selected node's white square (the HUD's white text is at the sides)."""
    w = image.shape[1]
    left, right = int(0.25 * w), int(0.8 * w)
    white = (image[:, left:right].min(axis=2) > 235).astype(int)
    sums, k = white.cumsum(0).cumsum(1), 15
    box = sums[k:, k:] - sums[:-k, k:] - sums[k:, :-k] + sums[:-k, :-k]
    y, x = np.unravel_index(np.argmax(box), box.shape)
    return int(box[y, x]), left + x + k / 2, y + k / 2


@needs_chromium
def test_a_click_on_a_node_selects_it(page, web_server: str, twin) -> None:
    wait_for_view(page, web_server)
    commands = CommandClient(twin["commands"], timeout_s=3.0)
    try:
        assert commands.send("pause")["ok"]  # the nodes hold still
        page.wait_for_function("document.querySelector('#odc-clock').innerText === 'PAUSED'",
                               timeout=10_000)
        top = page.eval_on_selector(".odc-view",
                                    "e => Math.ceil(e.getBoundingClientRect().top)")
        for _ in range(12):  # `]` until the selected node is on the near side
            before = page.inner_text("#odc-selected")
            page.keyboard.press("]")
            page.wait_for_function(f"document.querySelector('#odc-selected').innerText "
                                   f"!== {before!r}", timeout=10_000)
            page.wait_for_timeout(500)  # its image
            white, x, y = selection_square(image_of(page)[top:])
            if white >= 120:
                break
        assert white >= 120, "no selected node's square in sight"
        chosen = page.inner_text("#odc-selected")
        page.keyboard.press("]")
        page.wait_for_function(f"document.querySelector('#odc-selected').innerText "
                               f"!== {chosen!r}", timeout=10_000)
        page.mouse.click(x, y + top)
        page.wait_for_function(f"document.querySelector('#odc-selected').innerText "
                               f"=== {chosen!r}", timeout=10_000)
        page.mouse.click(5.0, top + 300.0)  # empty space: the selection stays
        page.wait_for_timeout(500)
        assert page.inner_text("#odc-selected") == chosen
    finally:
        commands.send("resume")
        commands.close()


@needs_chromium
def test_dashboard_page_shows_live_and_the_node_rows(page, web_server: str, twin) -> None:
    commands = CommandClient(twin["commands"], timeout_s=3.0)
    try:
        names = set(commands.send("meta")["meta"]["sats"]["names"])
    finally:
        commands.close()
    # xterm.js draws on a canvas; what it was given to draw is the terminal's byte stream
    # on the page's websocket, read here as the browser received it.
    received: list[str] = []

    def on_socket(socket) -> None:
        socket.on("framereceived", lambda frame: received.append(
            frame.decode("utf-8", "replace") if isinstance(frame, bytes) else frame))

    def rows(text: str) -> set[str]:
        return {word for word in re.findall(r"[\w-]+", text) if word in names}

    page.on("websocket", on_socket)
    page.click("#dashboard-link")
    page.wait_for_url(f"{web_server}/dashboard/")
    deadline = time.monotonic() + 30
    text = ""
    while time.monotonic() < deadline:
        text = ANSI.sub("", "".join(received))
        if "LIVE" in text and len(rows(text)) >= 10:
            break
        page.wait_for_timeout(250)
    assert "LIVE" in text, "the dashboard never said LIVE"
    assert len(rows(text)) >= 10, f"node rows: {sorted(rows(text))}"
    image = image_of(page)
    assert image.std() > 20, "the dashboard page is blank"
    assert offsite(page.requested, web_server) == []


@needs_chromium
def test_a_command_the_twin_refuses_shows_its_error(browser, tmp_path: Path) -> None:
    # odc web with a viewer's key: the twin lets it watch, not pause.
    new_key(tmp_path, "wall", ["viewer"])
    new_key(tmp_path, "ops", ["operator"])
    keys = ["--key", str(tmp_path / "wall.key_secret"), "--server-key",
            str(tmp_path / "server.key")]
    with twin_process("--scenario", "default", "--keys", str(tmp_path)) as (_proc, twin), \
            web_process("--pub", twin["stream"], "--cmd", twin["commands"], *keys) as base:
        context = browser.new_context(viewport={"width": 1280, "height": 720})
        tab = context.new_page()
        try:
            tab.goto(f"{base}/view")
            tab.wait_for_function("document.querySelector('#odc-clock')?.innerText === "
                                  "'running'", timeout=30_000)
            tab.keyboard.press(" ")
            tab.wait_for_function("/needs role/.test(document.querySelector('#odc-message')"
                                  ".innerText)", timeout=10_000)
            message = tab.locator("#odc-message")
            assert "needs role 'operator'" in message.inner_text()
            assert "odc-error" in message.get_attribute("class")
            assert tab.inner_text("#odc-clock") == "running"
        finally:
            context.close()
        operator = CommandClient(twin["commands"], timeout_s=3.0,
                                 keys=ClientKeys.checked(tmp_path / "ops.key_secret",
                                                         tmp_path / "server.key"))
        try:
            assert operator.send("status")["paused"] is False
        finally:
            operator.close()


# ---------------------------------------------------------------------------- access
def test_a_non_loopback_host_without_a_token_is_refused() -> None:
    proc = subprocess.run([sys.executable, "-m", "odc.cli", "web", "--host", "0.0.0.0",
                           "--port", "0"], cwd=ROOT, capture_output=True, text=True,
                          timeout=30, env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2
    assert "--host 0.0.0.0 is reachable from other machines: give an access token" \
        in proc.stderr
    with pytest.raises(AccessError, match="reachable from other machines"):
        Access.checked("192.168.1.20", None)
    assert Access.checked("0.0.0.0", TOKEN).token == TOKEN
    assert Access.checked("127.0.0.2", None).token is None


def test_loopback_hosts() -> None:
    for host in ("127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"):
        assert is_loopback_host(host), host
    for host in ("0.0.0.0", "::", "192.168.1.20", "example.org", "127.0.0.1.example.org", ""):
        assert not is_loopback_host(host), host


def test_tokens_from_a_file_and_bad_ones(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("ODC_WEB_TOKEN", raising=False)
    token_file = tmp_path / "web.token"
    token_file.write_text(TOKEN + "\n")
    assert resolve_token(None, token_file) == TOKEN
    assert resolve_token(None, None) is None
    monkeypatch.setenv("ODC_WEB_TOKEN", TOKEN)
    assert resolve_token(None, None) == TOKEN
    with pytest.raises(AccessError, match="at least 16"):
        resolve_token("short", None)
    with pytest.raises(AccessError, match=r"cannot read it \(no such file or directory\)"):
        resolve_token(None, tmp_path / "missing.token")


def serve_guarded(access: Access, check) -> None:
    """Run ``check(base_url)`` against a real server with ``access`` in front of a page
    and a websocket."""

    async def page_handler(_request: web.Request) -> web.Response:
        return web.Response(text="inside")

    async def socket_handler(request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        await socket.send_str("inside")
        await socket.close()
        return socket

    async def main() -> None:
        app = web.Application(middlewares=[access.middleware()])
        app.router.add_get("/", page_handler)
        app.router.add_get("/ws", socket_handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            await check(f"http://127.0.0.1:{port}")
        finally:
            await runner.cleanup()

    # Its own thread: Playwright's sync API keeps an event loop running in this one.
    with ThreadPoolExecutor(max_workers=1) as thread:
        thread.submit(asyncio.run, main()).result(timeout=30)


def test_with_a_token_every_request_needs_it() -> None:
    async def check(base: str) -> None:
        async with aiohttp.ClientSession() as anonymous:
            async with anonymous.get(f"{base}/") as reply:
                assert reply.status == 401
                assert "access token" in await reply.text()
            async with anonymous.get(f"{base}/?token=wrong-token-0123456789") as reply:
                assert reply.status == 403
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await anonymous.ws_connect(f"{base}/ws")
            assert refused.value.status == 401
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as user:
            async with user.get(f"{base}/?token={TOKEN}", allow_redirects=False) as reply:
                assert reply.status == 302 and reply.headers["Location"] == "/"
                assert reply.cookies[COOKIE]["httponly"]
            async with user.get(f"{base}/") as reply:  # the cookie now
                assert reply.status == 200 and await reply.text() == "inside"
            socket = await user.ws_connect(f"{base}/ws")
            assert (await socket.receive_str()) == "inside"
            await socket.close()

    serve_guarded(Access.checked("127.0.0.1", TOKEN), check)


def test_loopback_refuses_other_sites_and_rebound_names() -> None:
    async def check(base: str) -> None:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/") as reply:
                assert reply.status == 200
            # DNS rebinding: a page of evil.example, its name now pointing at 127.0.0.1.
            async with session.get(f"{base}/", headers={"Host": "evil.example"}) as reply:
                assert reply.status == 403
            # Another site's page opening our websocket (browsers allow it cross-origin).
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(f"{base}/ws", origin="http://evil.example")
            assert refused.value.status == 403
            socket = await session.ws_connect(f"{base}/ws", origin=base)
            assert (await socket.receive_str()) == "inside"
            await socket.close()

    serve_guarded(Access.checked("127.0.0.1", None), check)


def test_browser_keys_follow_the_keymap() -> None:
    assert browser_key_action(" ").action == "toggle_pause"
    assert browser_key_action(".").action == "step"
    assert browser_key_action("+").action == "warp_up"
    assert browser_key_action("=").action == "warp_up"
    assert browser_key_action("-").action == "warp_down"
    assert browser_key_action("]").action == "next_node"
    assert browser_key_action("O").action == "orbit"
    assert browser_key_action("o").action == "reset_camera"
    assert browser_key_action("?").action == "help"
    assert browser_key_action("p") is None  # the dashboard's key only
    assert browser_key_action("x") is None


def test_the_dashboard_serves_a_bounded_number_of_tabs() -> None:
    """Each dashboard tab is an `odc tui` process: past MAX_TABS a tab is refused with a
    clear 503 before any process starts."""
    from aiohttp.test_utils import make_mocked_request

    from viz.web.dashboard import MAX_TABS, DashboardServer

    server = DashboardServer("odc tui")
    server.tabs = MAX_TABS
    request = make_mocked_request("GET", "/dashboard/ws")
    # In a thread of its own: the browser tests leave an event loop in this one.
    with pytest.raises(web.HTTPServiceUnavailable) as refused, \
            ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, server.handle_websocket(request)).result()
    assert "tabs are open" in refused.value.text
    assert server.tabs == MAX_TABS

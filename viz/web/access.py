"""Who may use `odc web`: loopback by default, an access token on any other address.

The web server is a door to the twin's commands (the dashboard and the 3D page both send
them), so it opens only to this machine unless the operator gives a token. With a token,
every HTTP and websocket request must carry it: once in the query string
(``?token=...``, which sets a cookie and redirects to the same page without it), then
in that cookie. Without a token (loopback), two browser-side attacks are still shut
out: another site's page opening our websocket (its ``Origin`` is not ours) and DNS
rebinding (a ``Host`` that is not a loopback name).
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

TOKEN_ENV = "ODC_WEB_TOKEN"
COOKIE = "odc_web_token"
# Shorter tokens are guessable over a network; `secrets.token_urlsafe()` gives 43 characters.
MIN_TOKEN_CHARS = 16
LOOPBACK_NAMES = ("localhost", "ip6-localhost")


class AccessError(ValueError):
    """The access settings cannot be used (a non-loopback host without a token, a bad token)."""


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a name or an IP address, IPv6 with or without brackets) is this
    machine only. ``0.0.0.0``, ``::`` and every other name or address are not."""
    host = host.strip().strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    """A fresh random token (what `odc web` suggests when one is missing)."""
    return secrets.token_urlsafe(32)


def resolve_token(token: str | None, token_file: Path | None) -> str | None:
    """The token from ``--token``, ``--token-file`` or ``$ODC_WEB_TOKEN``, in that order.

    Raises:
        AccessError: The file cannot be read, or the token is too short or not printable.
    """
    source = "--token"
    if token is None and token_file is not None:
        source = f"--token-file {token_file}"
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:  # in words, not "[Errno 2] ..."
            why = (exc.strerror or str(exc)).lower()
            raise AccessError(f"{source}: cannot read it ({why})") from None
        except UnicodeDecodeError:
            raise AccessError(f"{source}: cannot read it (not UTF-8 text)") from None
    if token is None and os.environ.get(TOKEN_ENV):
        source, token = f"${TOKEN_ENV}", os.environ[TOKEN_ENV].strip()
    if token is None:
        return None
    if len(token) < MIN_TOKEN_CHARS or not token.isascii() or not token.isprintable() \
            or any(c in token for c in " ;,\"\\"):
        raise AccessError(f"{source}: the token must be at least {MIN_TOKEN_CHARS} printable "
                          "ASCII characters without spaces, quotes, commas, semicolons or "
                          f"backslashes (for example: {new_token()})")
    return token


@dataclass(frozen=True)
class Access:
    """The access rule of one `odc web` server.

    Attributes:
        host: The address the server binds.
        token: The token every request must carry, or None (loopback only).
    """

    host: str
    token: str | None

    @classmethod
    def checked(cls, host: str, token: str | None) -> Access:
        """The rule for ``host``; refuses a non-loopback host without a token.

        Raises:
            AccessError: ``host`` is not loopback and ``token`` is None.
        """
        if token is None and not is_loopback_host(host):
            raise AccessError(
                f"--host {host} is reachable from other machines: give an access token "
                f"(--token-file FILE, or ${TOKEN_ENV}, or --token TOKEN), for example "
                f"{new_token()}, or bind loopback (--host 127.0.0.1)")
        return cls(host, token)

    def token_ok(self, presented: str | None) -> bool:
        """Whether ``presented`` is the token (compared in constant time)."""
        if self.token is None:
            return True
        return presented is not None and hmac.compare_digest(presented.encode(),
                                                             self.token.encode())

    def host_ok(self, request: web.Request) -> bool:
        """A loopback server answers loopback ``Host`` names only (no DNS rebinding)."""
        if self.token is not None:
            return True  # the token, held in a cookie of our own origin, is the check
        host = urlsplit(f"//{request.host}").hostname or ""
        return is_loopback_host(host) or host == self.host.strip("[]").lower()

    def middleware(self) -> Callable[..., Awaitable[web.StreamResponse]]:
        """The aiohttp middleware that applies this rule to every request."""

        @web.middleware
        async def check_access(request: web.Request,
                               handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                               ) -> web.StreamResponse:
            if not self.host_ok(request):
                raise web.HTTPForbidden(text=f"odc web: Host {request.host!r} is not this "
                                        "loopback server's; open http://127.0.0.1:PORT/\n")
            if _is_websocket(request) and not _same_origin(request):
                raise web.HTTPForbidden(text="odc web: a websocket from another site's page "
                                        "is refused\n")
            if self.token is None:
                return await handler(request)
            query_token = request.query.get("token")
            if query_token is not None:
                if not self.token_ok(query_token):
                    raise web.HTTPForbidden(text="odc web: wrong access token\n")
                if _is_websocket(request):
                    return await handler(request)
                # Once in the query string; from now on in a cookie, and out of the address
                # bar (and so out of the history and of links copied from it).
                kept = {k: v for k, v in request.query.items() if k != "token"}
                rest = request.rel_url.with_query(kept or None)
                response = web.HTTPFound(str(rest))
                response.set_cookie(COOKIE, self.token, httponly=True, samesite="Strict",
                                    path="/")
                raise response
            if not self.token_ok(request.cookies.get(COOKIE)):
                raise web.HTTPUnauthorized(
                    text="odc web: this server needs its access token: open the address "
                    "`odc web` printed, ending in ?token=...\n")
            return await handler(request)

        return check_access


def _is_websocket(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


def _same_origin(request: web.Request) -> bool:
    """A browser says which page opened a websocket (``Origin``); it must be one of ours.

    Programs other than browsers send no Origin; they are not the attack this stops.
    """
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc.lower() == request.host.lower()

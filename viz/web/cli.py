"""The dashboard and the 3D view in a browser, live from the twin's stream.

One server on one port: an index page, the dashboard (`odc tui` per browser tab, through
textual-serve) at /dashboard/ and the 3D view (the `odc view` scene rendered here,
through trame) at /view. Both send commands under the twin's rules, with the keys given
here. It listens on loopback unless --host says otherwise; any other address needs an
access token (docs/security.md, "The web server").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from twin.protocol.codec import DEFAULT_COMMAND_ADDRESS, DEFAULT_PUB_ADDRESS
from twin.runtime.addresses import address_argument
from twin.security.clients import add_key_arguments, keys_from_args
from twin.security.keys import KeyFileError
from viz.web.access import TOKEN_ENV, AccessError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def _port(text: str) -> int:
    if not text.isascii() or not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"must be a port number 0..65535 (0: any free port), "
                                         f"got {text!r}")
    return int(text)


class _ExamplesAsWritten(argparse.HelpFormatter):
    """Wraps descriptions to the terminal as argparse does (RawDescriptionHelpFormatter left
    the `keys` group's line 100 columns long); text with its own line breaks, the
    examples, stays as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `odc web`."""
    parser.formatter_class = _ExamplesAsWritten
    parser.epilog = (
        "examples:\n"
        "  odc web                          # http://127.0.0.1:8080/ on this machine\n"
        "  odc web --host 0.0.0.0 --token-file web.token   # the lab's browsers\n"
        "  odc web --key alice.key_secret --server-key keys/server.key  # keys")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help="address to listen on (default: %(default)s, this machine only); "
                        "any non-loopback address needs a token")
    parser.add_argument("--port", type=_port, default=DEFAULT_PORT,
                        help="port to listen on (default: %(default)s; 0: any free port)")
    parser.add_argument("--token-file", type=Path, metavar="FILE",
                        help="the access token, read from FILE (better than --token, which "
                        "other users of this machine can see in the process list)")
    parser.add_argument("--token", help=f"the access token itself (or set ${TOKEN_ENV})")
    parser.add_argument("--pub", type=address_argument, default=DEFAULT_PUB_ADDRESS,
                        help="the twin's stream (PUB) address (default: %(default)s)")
    parser.add_argument("--cmd", type=address_argument, default=DEFAULT_COMMAND_ADDRESS,
                        help="the twin's command (ROUTER) address (default: %(default)s)")
    parser.add_argument("--field", help="the 3D view's starting colour field (default: a "
                        "temperature or utilization when the twin publishes one)")
    add_key_arguments(parser, needs="its roles are what both pages may do")


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; returns the exit status."""
    from viz.web.access import Access, resolve_token

    try:
        keys = keys_from_args(args)
        access = Access.checked(args.host, resolve_token(args.token, args.token_file))
    except (KeyFileError, AccessError) as exc:
        print(f"odc web: {exc}", file=sys.stderr)
        return 2
    from viz.web.server import WebServer  # trame, VTK and textual-serve load only here

    return WebServer(access, args.port, args.pub, args.cmd, keys=keys, field=args.field).run()

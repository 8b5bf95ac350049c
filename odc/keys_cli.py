"""Make, list and revoke the keys a twin admits: `odc keys new|list|revoke`.

A key folder (default ``./keys``; layout in ``twin.security.keys``) holds the twin's own
pair, one pair per client and ``registry.toml``, the keys the twin admits with their
roles. ``new`` makes a pair and registers it (the secret file mode 0600), ``list`` shows
the registry, ``revoke`` marks a key revoked. A running twin reads the registry again on
SIGHUP or the ``reload_keys`` command; until then it goes on with the keys it read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from twin.security.keys import (
    REGISTRY_FILE,
    KeyEntry,
    KeyFileError,
    KeyRegistry,
    check_name,
    new_key,
    revoke_key,
    server_key_paths,
)
from twin.security.roles import RANKED_ROLES, TESTBED_PREFIX, check_role

DEFAULT_FOLDER = Path("keys")
RELOAD_HINT = ("A running twin sees this once it reloads its keys: send it SIGHUP "
               "(kill -HUP PID) or the reload_keys command (odc cmd reload_keys, as an admin).")


def _role(text: str) -> str:
    try:
        return check_role(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The subcommands of `odc keys`."""
    actions = parser.add_subparsers(dest="keys_action", metavar="ACTION")
    actions.required = True
    folder = argparse.ArgumentParser(add_help=False)
    folder.add_argument("--dir", type=Path, default=DEFAULT_FOLDER, metavar="DIR",
                        help="the key folder (default: ./%(default)s)")

    new = actions.add_parser("new", parents=[folder], help="make a key pair and register it",
                             description="Make NAME's key pair in the key folder and register "
                             "it with its roles (the folder and the twin's own pair are made "
                             "when missing).")
    new.add_argument("name", metavar="NAME",
                     help="who or what the key is for: 1-64 letters, digits, '_', '.', '-'")
    new.add_argument("--role", dest="roles", action="append", type=_role, default=[],
                     metavar="ROLE",
                     help=f"a role, repeatable: {', '.join(RANKED_ROLES)} (each includes the "
                     f"ones before it) or {TESTBED_PREFIX}NAME for a bridge (default: viewer)")
    actions.add_parser("list", parents=[folder], help="the registered keys",
                       description="List every key of the registry: name, roles, created, "
                       "revoked.")
    revoke = actions.add_parser("revoke", parents=[folder], help="revoke a key",
                                description="Mark NAME revoked in the registry (its files "
                                "stay); the twin refuses it once it reloads its keys.")
    revoke.add_argument("name", metavar="NAME", help="the key to revoke")


def run(args: argparse.Namespace) -> int:
    """Do the action; errors are one line on stderr and exit status 2."""
    action = {"new": _new, "list": _list, "revoke": _revoke}[args.keys_action]
    try:
        return action(args)
    except (KeyFileError, OSError) as exc:
        print(f"odc keys {args.keys_action}: {exc}", file=sys.stderr)
        return 2


def _new(args: argparse.Namespace) -> int:
    folder: Path = args.dir
    secret = folder / f"{check_name(args.name)}.key_secret"
    registered = KeyRegistry.load(folder).entries if folder.exists() else {}
    if args.name not in registered and secret.exists():
        # A pair the registry does not know: making the key would overwrite its secret.
        raise KeyFileError(f"{secret} exists but {args.name!r} is not in {folder / REGISTRY_FILE};"
                           " move the old files away or pick another name")
    server_public, _ = server_key_paths(folder)
    server_made = not server_public.exists()
    entry = new_key(folder, args.name, args.roles)
    print(f"odc keys: made key {entry.name!r} with roles {', '.join(entry.roles)}")
    print(f"  {folder / f'{entry.name}.key_secret'}  its secret key (mode 0600: it is the "
          "identity; give it to its owner only)")
    print(f"  {folder / f'{entry.name}.key'}  its public key")
    print(f"  {folder / REGISTRY_FILE}  the registry, now listing it")
    if server_made:
        print(f"  {server_public}  the twin's public key (its pair made now)")
    print("A client uses it with:")
    print(f"  --key {folder / f'{entry.name}.key_secret'} --server-key {server_public}")
    print(RELOAD_HINT)
    return 0


def _list(args: argparse.Namespace) -> int:
    folder: Path = args.dir
    if not folder.is_dir():
        raise KeyFileError(f"no key folder at {folder} (odc keys new NAME --dir {folder} "
                           "makes one)")
    entries = sorted(KeyRegistry.load(folder).entries.values(), key=lambda e: e.name)
    if not entries:
        print(f"odc keys: no keys in {folder / REGISTRY_FILE} (odc keys new NAME adds one)",
              file=sys.stderr)
        return 0
    rows = [("NAME", "ROLES", "CREATED (UTC)", "REVOKED (UTC)")]
    rows += [(e.name, ",".join(e.roles), e.created_utc, e.revoked_utc or "-") for e in entries]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(row[i].ljust(widths[i]) for i in range(3)) + "  " + row[3])
    return 0


def _revoke(args: argparse.Namespace) -> int:
    folder: Path = args.dir
    before: KeyEntry | None = KeyRegistry.load(folder).entries.get(args.name)
    entry = revoke_key(folder, args.name)
    if before is not None and not before.active:
        print(f"odc keys: {entry.name!r} was revoked already, at {entry.revoked_utc}")
        return 0
    print(f"odc keys: revoked {entry.name!r} at {entry.revoked_utc} in "
          f"{folder / REGISTRY_FILE}")
    print(RELOAD_HINT)
    return 0

"""``procward token new NAME --role read|admin`` (and list, revoke): API tokens.

Tokens are kept in the state dir as hashes; the daemon sees a change at once.
A new token is printed once and cannot be shown again.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from procward.cli import EXIT_BAD_CONFIG, EXIT_FAILED
from procward.cli._client import ClientError, fail, locate_state_dir
from procward.cli._common import add_config_options

if TYPE_CHECKING:
    from procward.api import TokenStore

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("token", help="make, list and revoke API tokens",
                       description="API tokens for the control API and the CLI on other "
                                   "hosts. Run on the daemon's machine, as its user.")
    tsub = p.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    new = tsub.add_parser("new", help="make a token and print it once",
                          description="Make a token (replacing one of the same name) and "
                                      "print it once; only its hash is kept.")
    new.add_argument("name", metavar="NAME", help="who or what will use it, e.g. grafana")
    new.add_argument("--role", choices=["read", "admin"], default="read",
                     help="read: look only (GET); admin: also start, stop, reload "
                          "(default: read)")
    add_config_options(new)
    new.set_defaults(func=make)
    listing = tsub.add_parser("list", help="list token names and roles (never the tokens)")
    add_config_options(listing)
    listing.set_defaults(func=show)
    revoke = tsub.add_parser("revoke", help="delete a token; it stops working at once")
    revoke.add_argument("name", metavar="NAME")
    add_config_options(revoke)
    revoke.set_defaults(func=remove)


def _store(args: argparse.Namespace) -> TokenStore:
    from procward.api import TokenStore

    return TokenStore(locate_state_dir(args))


def make(args: argparse.Namespace) -> int:
    try:
        token = _store(args).new(args.name, args.role)
    except ClientError as e:
        return fail(e)
    except ValueError as e:
        print(f"procward token: {e}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    except PermissionError as e:
        print(f"procward token: cannot write {e.filename}: run as the user that runs "
              "procward (or with sudo / an elevated prompt)", file=sys.stderr)
        return EXIT_FAILED
    print(token)
    print(f"(token {args.name!r}, role {args.role}: shown once, keep it safe; use it as "
          "--token or $PROCWARD_TOKEN)", file=sys.stderr)
    return 0


def show(args: argparse.Namespace) -> int:
    try:
        for name, role in _store(args).names():
            print(f"{name}\t{role}")
    except ClientError as e:
        return fail(e)
    return 0


def remove(args: argparse.Namespace) -> int:
    try:
        gone = _store(args).revoke(args.name)
    except ClientError as e:
        return fail(e)
    if not gone:
        print(f"procward token: no token named {args.name!r}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    print(f"revoked {args.name}")
    return 0

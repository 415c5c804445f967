"""``procward run``: supervise every service of a configuration in the foreground."""

from __future__ import annotations

import argparse
import sys

from procward.cli._common import add_config_options, load_or_report

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "run", help="supervise the configured services in the foreground",
        description="Start every service of the configuration, keep them running, capture "
                    "their output; Ctrl+C (or SIGTERM) stops them all, a second Ctrl+C kills.",
    )
    add_config_options(p)
    p.add_argument("--no-colour", "--no-color", dest="colour", action="store_false",
                   default=None, help="plain output even on a terminal")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from procward.config import find_config_path

    # Absolute: the daemon moves to the configuration's folder, and a reload
    # reads the file again from there.
    path = find_config_path(args.config).absolute()
    if not path.exists():
        print(f"procward: no configuration at {path}; write one with `procward init` "
              "or pass -c FILE", file=sys.stderr)
        return 2
    config = load_or_report(path, args.profile)
    if config is None:
        return 2
    from procward._daemon import run_foreground
    from procward.cli._render import EventPrinter

    return run_foreground(config, path, args.profile, on_event=EventPrinter(colour=args.colour))

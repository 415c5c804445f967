"""``procward check``: validate a configuration file and report every problem."""

from __future__ import annotations

import argparse
import sys

from procward.cli._common import add_config_options

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("check", help="validate a configuration file",
                       description="Validate a configuration file; exit 2 listing every problem.")
    add_config_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from procward.config import find_config_path, load_config
    from procward.errors import ConfigError

    path = find_config_path(args.config)
    try:
        cfg = load_config(path, profile=args.profile)
    except ConfigError as e:
        for p in e.problems:
            print(p, file=sys.stderr)
        return 2
    print(f"{path}: ok, {len(cfg.services)} services")
    return 0

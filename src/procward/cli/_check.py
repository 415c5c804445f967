"""``procward check``: validate a configuration file and report every problem in it."""

from __future__ import annotations

import argparse
import json
import os
import sys

from procward.cli._common import add_config_options

__all__ = ["register", "run"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "check",
        help="validate a configuration file",
        description="Load the configuration as `procward run` would (profile, ${VAR} "
        "interpolation, env_file, paths) and report every problem, one per line, as "
        "FILE:LINE KEY: MESSAGE, including a service's working folder or program that is "
        "not there. Exit 0 when the file is valid, 2 when it is not.",
    )
    add_config_options(p)
    p.add_argument("--json", action="store_true",
                   help="print the result as one JSON object on stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from procward.cli import EXIT_BAD_CONFIG, EXIT_OK
    from procward.config import find_config_path, load
    from procward.errors import ConfigError, ConfigProblem

    path = find_config_path(args.config)
    profile = args.profile or os.environ.get("PROCWARD_PROFILE") or None
    if not path.exists():
        # Nothing named a file: the search fell through to the platform default.
        searched = not args.config and not os.environ.get("PROCWARD_CONFIG")
        where = f"no ./procward.toml and no {path}" if searched else f"{path} does not exist"
        message = f"{where}; write a starter file with `procward init`"
        if searched:
            message += " or name one with -c FILE"
        if not args.json:
            print(f"procward check: {message}", file=sys.stderr)
            return EXIT_BAD_CONFIG
        problems = [ConfigProblem(path, None, "", message)]
    else:
        try:
            config = load(path, profile=profile, present=True)
        except ConfigError as e:
            problems = e.problems
        else:
            names = list(config.services)
            if args.json:
                print(json.dumps({
                    "ok": True, "file": str(path), "profile": profile, "services": names,
                }))
            else:
                listed = f" ({', '.join(names)})" if names else ""
                with_profile = f", profile {profile}" if profile else ""
                count = f"{len(names)} service{'' if len(names) == 1 else 's'}"
                print(f"{path}: ok, {count}{listed}{with_profile}")
            return EXIT_OK
    if args.json:
        print(json.dumps({
            "ok": False, "file": str(path), "profile": profile,
            "problems": [
                {"file": str(p.file), "line": p.line, "key": p.key, "message": p.message}
                for p in problems
            ],
        }))
    else:
        for p in problems:
            print(p, file=sys.stderr)
    return EXIT_BAD_CONFIG

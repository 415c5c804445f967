"""``procward run``: supervise every service of a configuration in the foreground."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from procward.cli._common import add_config_options

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


def _api_wanted(path: Path) -> bool:
    """False only when the file plainly says ``[api] enabled = false``."""
    import tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return True  # the real load will say what is wrong
    api = data.get("api")
    return not (isinstance(api, dict) and api.get("enabled") is False)


def run(args: argparse.Namespace) -> int:
    from procward.config import IsolatedLoad, find_config_path

    # Absolute: the daemon moves to the configuration's folder (below), and a
    # reload reads the file again from there.
    path = find_config_path(args.config).absolute()
    if not path.exists():
        print(f"procward: no configuration at {path}; write one with `procward init` "
              "or pass -c FILE", file=sys.stderr)
        return 2
    # Validation runs in a child process (the daemon never imports pydantic);
    # the engine is imported while it works.
    loading = IsolatedLoad(path, profile=args.profile)

    import asyncio

    from procward import __version__
    from procward._daemon import run_daemon
    from procward.cli._render import EventPrinter
    from procward.config import Config
    from procward.engine import Supervisor
    from procward.errors import ConfigError, ProcwardError, StateDirLocked

    if loading.validated and _api_wanted(path):
        # The web stack is the daemon's heaviest import: pay for it here, while
        # the child validates. With the configuration kept there is no child to
        # wait for, and the API imports it once the services' spawns are queued.
        from procward.api import ApiServer

        ApiServer.load_web_stack()

    try:
        config = loading.result()
    except ConfigError as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        return 2

    # The daemon works where its services run unless they say otherwise, so
    # they start through posix_spawn, which cannot set a working directory and
    # costs a quarter of Popen's CPU (see procward._os.posix). Every path the
    # daemon holds is absolute by now.
    try:
        os.chdir(config.source.parent)
    except OSError:
        pass  # gone since it was read: services then start through Popen

    def say(text: str) -> None:
        print(f"procward: {text}", flush=True)

    api_url: list[str] = []

    def banner(sup: Supervisor) -> None:
        n = len(config.services)
        say(f"{__version__} supervising {n} service{'s' if n != 1 else ''} from {config.source}")
        if api_url:
            say(f"api:    {api_url[0]}  (token: {sup.state_dir / 'admin.token'}; "
                "`procward status` finds both)")
        say(f"logs:   {sup.log_dir}")
        say(f"events: {sup.events_path}")
        say(f"state:  {sup.state_dir}")
        say("press Ctrl+C to stop all services")

    async def reload_config() -> Config:
        # The same isolated load as at start: pydantic stays out of the daemon.
        fresh = IsolatedLoad(path, profile=args.profile)
        return await asyncio.get_running_loop().run_in_executor(None, fresh.result)

    try:
        return asyncio.run(run_daemon(config, on_event=EventPrinter(colour=args.colour),
                                      on_ready=banner, say=say, reload_config=reload_config,
                                      on_api=api_url.append))
    except StateDirLocked as e:
        print(f"procward: {e}; stop it first, or give this configuration its own state_dir",
              file=sys.stderr)
        return 1
    except ProcwardError as e:
        print(f"procward: {e}", file=sys.stderr)
        return 1

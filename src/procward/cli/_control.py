"""``procward start|stop|restart NAME… | --all`` and ``procward reload``."""

from __future__ import annotations

import argparse
import json

from procward.cli import EXIT_BAD_CONFIG, EXIT_FAILED
from procward.cli._client import ClientError, add_client_options, connect, fail

__all__ = ["register"]

_HELP = {"start": "start services (clears failed)", "stop": "stop services",
         "restart": "stop, then start services"}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for action, text in _HELP.items():
        p = sub.add_parser(action, help=text, description=f"{text.capitalize()} of the "
                           "running daemon, by service name (all copies) or instance (web:1).")
        p.add_argument("names", nargs="*", metavar="NAME")
        p.add_argument("--all", action="store_true", help="every service")
        p.add_argument("--json", action="store_true", help="print JSON for scripts")
        add_client_options(p)
        p.set_defaults(func=act, action=action)
    p = sub.add_parser(
        "reload", help="re-read the configuration and apply only the difference",
        description="The daemon reads its file again: added services start, removed ones "
                    "stop, changed ones restart, unchanged ones keep running. A bad file "
                    "changes nothing. (SIGHUP does the same on Linux/macOS.)")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    add_client_options(p)
    p.set_defaults(func=reload)


def act(args: argparse.Namespace) -> int:
    if bool(args.names) == args.all:
        print(f"procward {args.action}: name the services, or pass --all", flush=True)
        return EXIT_BAD_CONFIG
    body = {"all": True} if args.all else {"names": args.names}
    try:
        answer = connect(args).call("POST", f"/v1/{args.action}", body)
    except ClientError as e:
        return fail(e)
    if args.json:
        print(json.dumps(answer))
    else:
        done = answer["done"]
        past = {"start": "started", "stop": "stopped", "restart": "restarted"}[args.action]
        if done:
            print(f"{past}: {', '.join(done)}")
        else:
            print(f"nothing to do: already {'running' if args.action == 'start' else past}")
    return 0


def reload(args: argparse.Namespace) -> int:
    try:
        answer = connect(args).call("POST", "/v1/reload", accept=(200, 422))
    except ClientError as e:
        return fail(e)
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0 if answer["ok"] else EXIT_FAILED
    if not answer["ok"]:
        print("reload refused; the running configuration is unchanged:")
        for problem in answer["problems"]:
            print(f"  {problem}")
        return EXIT_FAILED
    for key, label in (("added", "started (added)"), ("removed", "stopped (removed)"),
                       ("changed", "restarted (changed)"),
                       ("unchanged", "left running (unchanged)")):
        if answer[key]:
            print(f"{label}: {', '.join(answer[key])}")
    if not any(answer[k] for k in ("added", "removed", "changed", "unchanged")):
        print("no services before or after")
    if answer["needs_restart"]:
        print(f"changed, applied only when the daemon restarts: "
              f"[{'], ['.join(answer['needs_restart'])}]")
    return 0

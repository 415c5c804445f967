"""``procward logs NAME [-f] [-n N] [--stderr]`` and ``procward events [-f] [-n N]``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from urllib.parse import urlencode

from procward.cli._client import ClientError, add_client_options, connect, fail, segment

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "logs", help="show a service's output",
        description="The last lines of a service's log (stdout by default); -f keeps "
                    "following, across rotation. With several instances each line starts "
                    "with [instance].")
    p.add_argument("name", metavar="NAME", help="a service, or one instance (web:1)")
    p.add_argument("-n", "--lines", type=int, default=50, metavar="N",
                   help="how many of the last lines (default 50)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    p.add_argument("--stderr", action="store_true", help="the stderr log instead of stdout")
    add_client_options(p)
    p.set_defaults(func=logs)

    p = sub.add_parser(
        "events", help="show the daemon's events (state changes, exits, control actions)",
        description="The last events of the daemon's event log; -f keeps following.")
    p.add_argument("-n", "--lines", type=int, default=20, metavar="N",
                   help="how many of the last events (default 20)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new events")
    p.add_argument("--json", action="store_true", help="print the JSON lines as they are")
    add_client_options(p)
    p.set_defaults(func=events)


def _query(args: argparse.Namespace, **extra: str) -> str:
    params = {"n": str(max(0, args.lines)), "follow": "true" if args.follow else "false", **extra}
    return "?" + urlencode(params)


def _out(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def logs(args: argparse.Namespace) -> int:
    path = (f"/v1/services/{segment(args.name)}/logs"
            + _query(args, stream="stderr" if args.stderr else "stdout"))
    try:
        client = connect(args)
        if args.follow:
            for line in client.stream(path):
                _out(line)
        else:
            _out(client.text(path))
    except ClientError as e:
        return fail(e)
    return 0


def _human(line: bytes) -> str:
    try:
        event = json.loads(line)
    except ValueError:
        return line.decode("utf-8", "replace").rstrip("\n")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event.get("time", 0)))
    who = event.get("service") or "procward"
    return f"{when} {who:<14} {event.get('kind', ''):<12} {event.get('message', '')}"


def events(args: argparse.Namespace) -> int:
    path = "/v1/events" + _query(args)
    try:
        client = connect(args)
        lines = client.stream(path) if args.follow else iter(
            client.text(path).splitlines(keepends=True))
        for line in lines:
            if args.json:
                _out(line)
            else:
                print(_human(line), flush=True)
    except ClientError as e:
        return fail(e)
    return 0

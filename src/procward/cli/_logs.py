"""``procward logs NAME [-f] [-n N] [--stdout | --stderr]`` and ``procward events [-f] [-n N]``.

Both ask the running daemon; when there is none on this machine (or its API
is disabled) they read the files it writes, say so on stderr, and follow them
with ``-f`` (for a daemon that starts meanwhile, too).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from procward.cli import EXIT_BAD_CONFIG
from procward.cli._client import (
    ClientError,
    NoDaemon,
    add_client_options,
    connect,
    fail,
    segment,
)

if TYPE_CHECKING:
    from procward.config import Config

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "logs", help="show a service's output",
        description="The last lines of a service's stdout and stderr, each line marked "
                    "'stdout | ' or 'stderr | ' (unless the service merges them); -f keeps "
                    "following, across rotation. With several instances each line starts "
                    "with [instance]. Without a running daemon the files are read.")
    p.add_argument("name", metavar="NAME", help="a service, or one instance (web:1)")
    p.add_argument("-n", "--lines", type=int, default=50, metavar="N",
                   help="how many of the last lines (default 50)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--stdout", action="store_true", help="stdout only")
    which.add_argument("--stderr", action="store_true", help="stderr only")
    add_client_options(p)
    p.set_defaults(func=logs)

    p = sub.add_parser(
        "events", help="show the daemon's events (state changes, exits, control actions)",
        description="The last events of the daemon's event log; -f keeps following. "
                    "Without a running daemon the file is read.")
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


def _from_files(absent: NoDaemon, log_dir: Path, sources: list[tuple[bytes, Path]], *,
                n: int, follow: bool, each: Callable[[bytes], None]) -> None:
    """What the daemon would have sent, read from its files: ``each`` gets the
    last ``n`` lines of ``sources``, then with ``follow`` what comes, for ever."""
    from procward._logfiles import follow_lines, tail_lines

    # A service that never ran has no files: an empty answer would look like a fault.
    none = "" if any(path.exists() for _, path in sources) else " (none written yet)"
    print(f"procward: {absent.reason}; reading the files in {log_dir}{none}",
          file=sys.stderr, flush=True)
    if not follow:
        each(tail_lines(sources, n))
        return
    import asyncio

    async def pump() -> None:
        async for chunk in follow_lines(sources, n):
            each(chunk)

    asyncio.run(pump())


def _load(args: argparse.Namespace) -> Config:
    from procward.config import load
    from procward.errors import ConfigError

    try:
        return load(args.config, profile=args.profile)
    except ConfigError as e:
        raise ClientError(f"{e}\n(`procward check` says more)", EXIT_BAD_CONFIG) from None


def _files_on_disk(config: Config, name: str, stream: str) -> list[tuple[bytes, Path]]:
    """The files the daemon would read for ``name`` and ``stream``, labelled as it
    labels them."""
    from procward._logfiles import instance_log_files, instance_names, labelled

    # A service name has no ':' (SERVICE_NAME): what comes before one is the service.
    service = name.partition(":")[0]
    settings = config.services.get(service)
    names = [n for n in instance_names(service, settings.instances)
             if name in (service, n)] if settings is not None else []
    if settings is None or not names:
        raise ClientError(f"no service or instance named {name!r} in {config.source}",
                          EXIT_BAD_CONFIG)
    log_dir = config.procward.log_dir
    return labelled([f for n in names for f in instance_log_files(
        log_dir, n, stream, merged=settings.logs.merge_stderr)])


def _show(args: argparse.Namespace, path: str, each: Callable[[bytes], None],
          on_disk: Callable[[], tuple[Path, list[tuple[bytes, Path]]]]) -> int:
    """``path`` from the daemon, or, when none runs, the files ``on_disk`` names
    (the log dir and the labelled files), each chunk of lines to ``each``."""
    try:
        try:
            client = connect(args)
            if args.follow:
                for line in client.stream(path):
                    each(line)
            else:
                each(client.text(path))
        except NoDaemon as absent:
            log_dir, sources = on_disk()
            _from_files(absent, log_dir, sources, n=max(0, args.lines), follow=args.follow,
                        each=each)
    except ClientError as e:
        return fail(e)
    return 0


def logs(args: argparse.Namespace) -> int:
    stream = "stderr" if args.stderr else "stdout" if args.stdout else "both"

    def on_disk() -> tuple[Path, list[tuple[bytes, Path]]]:
        config = _load(args)
        return config.procward.log_dir, _files_on_disk(config, args.name, stream)

    return _show(args, f"/v1/services/{segment(args.name)}/logs" + _query(args, stream=stream),
                 _out, on_disk)


def _human(line: bytes) -> str:
    try:
        event = json.loads(line)
    except ValueError:
        return line.decode("utf-8", "replace").rstrip("\n")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event.get("time", 0)))
    who = event.get("service") or "procward"
    return f"{when} {who:<14} {event.get('kind', ''):<12} {event.get('message', '')}"


def events(args: argparse.Namespace) -> int:
    def show(data: bytes) -> None:
        for line in data.splitlines(keepends=True):
            if args.json:
                _out(line)
            else:
                print(_human(line), flush=True)

    def on_disk() -> tuple[Path, list[tuple[bytes, Path]]]:
        from procward._logfiles import EVENTS_FILE

        log_dir = _load(args).procward.log_dir
        return log_dir, [(b"", log_dir / EVENTS_FILE)]

    return _show(args, "/v1/events" + _query(args), show, on_disk)

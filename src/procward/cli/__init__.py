"""The ``procward`` command: one module per command, registered here.

Each command module exposes ``register(subparsers)`` which adds its parser and
sets ``func`` to a callable taking the parsed namespace and returning an exit
code. Commands import heavy modules inside ``func`` so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from procward import __version__

__all__ = ["EXIT_BAD_CONFIG", "EXIT_FAILED", "EXIT_OK", "EXIT_UNREACHABLE", "console", "main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_CONFIG = 2
EXIT_UNREACHABLE = 3


# Command -> the module that registers it, in the order --help lists them.
_COMMANDS = {
    "init": "_init", "check": "_check", "run": "_run", "status": "_status",
    "start": "_control", "stop": "_control", "restart": "_control", "reload": "_control",
    "shutdown": "_control",
    "logs": "_logs", "events": "_logs", "token": "_token", "service": "_service",
    "wrap": "_wrap",
}


def _parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="procward",
        description="Run programs as reliable services: supervise, restart, keep their logs.",
    )
    parser.add_argument("--version", action="version", version=f"procward {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Only the module of the command asked for is imported (`procward status` must
    # start in milliseconds); --help, no command or an unknown one registers them all.
    command = next((a for a in argv if not a.startswith("-")), None)
    wanted = [_COMMANDS[command]] if command in _COMMANDS else list(dict.fromkeys(
        _COMMANDS.values()))
    for name in wanted:
        importlib.import_module(f"procward.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_BAD_CONFIG
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        sys.stderr.close()
        return EXIT_FAILED


def console() -> None:
    """The ``procward`` program: ``main()``, then leave without tearing the interpreter down.

    Everything a command writes is closed or flushed by the time it returns;
    what is left is freeing objects one by one, which after ``procward run``
    with hundreds of services took 0.1 s of the stop. ``main()`` stays a normal
    function for callers that embed it.
    """
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    os._exit(code)

"""The ``procward`` command: one module per command, registered here.

Each command module exposes ``register(subparsers)`` which adds its parser and
sets ``func`` to a callable taking the parsed namespace and returning an exit
code. Commands import heavy modules inside ``func`` so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from procward import __version__

__all__ = ["EXIT_BAD_CONFIG", "EXIT_FAILED", "EXIT_OK", "EXIT_UNREACHABLE", "main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_CONFIG = 2
EXIT_UNREACHABLE = 3


def _parser() -> argparse.ArgumentParser:
    from procward.cli import (
        _check,
        _control,
        _init,
        _logs,
        _run,
        _service,
        _status,
        _token,
        _wrap,
    )

    parser = argparse.ArgumentParser(
        prog="procward",
        description="Run programs as reliable services: supervise, restart, keep their logs.",
    )
    parser.add_argument("--version", action="version", version=f"procward {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (_init, _check, _run, _status, _control, _logs, _token, _service, _wrap):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
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

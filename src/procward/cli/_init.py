"""``procward init``: write a commented starter procward.toml that passes ``procward check``."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

__all__ = ["register", "run"]

DEFAULT_FILE = "procward.toml"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "init",
        help="write a commented starter procward.toml",
        description="Write a starter configuration: two small example services and every "
        "common setting shown, commented out, with its default. Refuses to overwrite an "
        "existing file unless --force is given.",
    )
    p.add_argument(
        "file", nargs="?", default=DEFAULT_FILE, metavar="FILE",
        help=f"where to write it (default: ./{DEFAULT_FILE})",
    )
    p.add_argument("--force", action="store_true", help="overwrite FILE if it already exists")
    p.set_defaults(func=run)


def _python_command() -> str:
    """How the example services should start Python on this machine.

    ``python`` keeps the file portable; some Linux systems only have ``python3``;
    failing both, the interpreter running procward is certain to exist.
    """
    for name in ("python", "python3"):
        if shutil.which(name):
            return name
    return sys.executable


def run(args: argparse.Namespace) -> int:
    from procward.config import starter_config

    path = Path(args.file)
    if path.is_dir():
        print(f"procward init: {path} is a folder; name the file to write", file=sys.stderr)
        return 1
    text = starter_config(_python_command())
    try:
        # "x" creates the file only if it does not exist, without a check-then-write race.
        with path.open("w" if args.force else "x", encoding="utf-8") as f:
            f.write(text)
    except FileExistsError:
        print(
            f"procward init: {path} already exists; use --force to overwrite it",
            file=sys.stderr,
        )
        return 1
    except OSError as e:
        print(f"procward init: cannot write {path}: {e.strerror or e}", file=sys.stderr)
        return 1
    config = "" if path == Path(DEFAULT_FILE) else f" -c {path}"
    print(f"wrote {path}; check it with `procward check{config}`, "
          f"then start it with `procward run{config}`")
    return 0

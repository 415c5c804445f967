"""Options and helpers several commands share."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from procward.config import Config

__all__ = ["add_config_options", "load_or_report"]


def add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c", "--config", metavar="FILE",
        help="configuration file (default: $PROCWARD_CONFIG, ./procward.toml, then the "
             "platform default)",
    )
    parser.add_argument(
        "--profile", metavar="NAME",
        help="overlay [profiles.NAME] onto the file (default: $PROCWARD_PROFILE)",
    )


def load_or_report(path: Path, profile: str | None, *, present: bool = False) -> Config | None:
    """The configuration at ``path``; None once every problem in it is on stderr.
    ``present`` checks that the services' folders and programs are there too."""
    from procward.config import load
    from procward.errors import ConfigError

    try:
        return load(path, profile=profile, present=present)
    except ConfigError as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        return None

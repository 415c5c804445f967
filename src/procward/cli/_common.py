"""Options and helpers several commands share."""

from __future__ import annotations

import argparse

__all__ = ["add_config_options"]


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

"""``procward init``: write a commented starter procward.toml (placeholder)."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("init", help="write a starter procward.toml")
    p.set_defaults(func=lambda args: 1)

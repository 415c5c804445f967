"""procward: run any program, or your own Python code, as a reliable service."""

from __future__ import annotations

from typing import TYPE_CHECKING

from procward.errors import (
    ClientError,
    ConfigError,
    ConfigProblem,
    FrameError,
    IllegalTransition,
    NotPrivileged,
    OsHostError,
    ProcwardError,
    SpawnError,
    StateDirLocked,
    UnknownService,
)

if TYPE_CHECKING:
    from procward.service import Service

__version__ = "0.1.0"

__all__ = [
    "ClientError",
    "ConfigError",
    "ConfigProblem",
    "FrameError",
    "IllegalTransition",
    "NotPrivileged",
    "OsHostError",
    "ProcwardError",
    "Service",
    "SpawnError",
    "StateDirLocked",
    "UnknownService",
    "__version__",
]


def __getattr__(name: str) -> object:
    # ``Service`` brings the OS service backends and argparse: imported on first use
    # (PEP 562), so a program that only reports to its supervisor
    # (``procward.notify``) and the CLI's client commands do without them.
    if name == "Service":
        from procward.service import Service

        return Service
    raise AttributeError(f"module 'procward' has no attribute {name!r}")

"""The operating-system seam: the types the engine sees, and the one platform module.

Everything else in procward imports ``PLATFORM`` (this system's ``Platform``),
the types, and the platform's default locations from here, and never asks
which system it runs on. ``PLATFORM`` and the types are imported when first
asked for: the CLI's client commands ask this seam only where a file lives,
and must not pay for the process machinery (asyncio, psutil, dataclasses)
that a command like ``procward status`` never uses.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from procward._os._paths import default_config_path, running_dir

if TYPE_CHECKING:
    from procward._os._base import (
        Child,
        ExitStatus,
        Leftover,
        NotifySocket,
        OutputSink,
        Platform,
        SpawnSpec,
    )

__all__ = [
    "PLATFORM",
    "Child",
    "ExitStatus",
    "Leftover",
    "NotifySocket",
    "OutputSink",
    "Platform",
    "SpawnSpec",
    "default_config_path",
    "running_dir",
]

PLATFORM: Platform


def __getattr__(name: str) -> object:
    if name == "PLATFORM":
        if sys.platform == "win32":
            from procward._os.windows import PLATFORM as chosen
        else:
            from procward._os.posix import PLATFORM as chosen
        value: object = chosen
    elif name in __all__:
        from procward._os import _base

        value = getattr(_base, name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value

"""The operating-system seam: picks the one platform module this system needs.

Everything else in procward imports ``PLATFORM`` and the types from here, and
never asks which system it runs on.
"""

import sys

from procward._os._base import (
    Child,
    ExitStatus,
    Leftover,
    NotifySocket,
    OutputSink,
    Platform,
    SpawnSpec,
)

if sys.platform == "win32":
    from procward._os.windows import PLATFORM
else:
    from procward._os.posix import PLATFORM

__all__ = [
    "PLATFORM",
    "Child",
    "ExitStatus",
    "Leftover",
    "NotifySocket",
    "OutputSink",
    "Platform",
    "SpawnSpec",
]

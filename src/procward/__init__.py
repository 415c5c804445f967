"""procward: run any program, or your own Python code, as a reliable service."""

from typing import TYPE_CHECKING

from procward.errors import (
    ConfigError,
    ConfigProblem,
    ProcwardError,
    SpawnError,
    StateDirLocked,
    UnknownService,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "ConfigProblem",
    "ProcwardError",
    "Service",
    "SpawnError",
    "StateDirLocked",
    "UnknownService",
    "__version__",
]

if TYPE_CHECKING:
    from procward.service import Service


def __getattr__(name: str) -> object:
    # Imported on first use, so `import procward` (and `from procward import
    # notify`) stays light for programs that only report to a supervisor.
    if name == "Service":
        from procward.service import Service

        return Service
    raise AttributeError(f"module 'procward' has no attribute {name!r}")

"""procward: run any program, or your own Python code, as a reliable service."""

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
    "SpawnError",
    "StateDirLocked",
    "UnknownService",
    "__version__",
]

"""procward: run any program, or your own Python code, as a reliable service."""

from __future__ import annotations

# mypy reads this name as True; at run time `typing` is not imported, which keeps
# `procward status` and `from procward import notify` light.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from procward.errors import (
        ConfigError,
        ConfigProblem,
        ProcwardError,
        SpawnError,
        StateDirLocked,
        UnknownService,
    )
    from procward.service import Service

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

_ERRORS = frozenset(("ConfigError", "ConfigProblem", "ProcwardError", "SpawnError",
                     "StateDirLocked", "UnknownService"))


def __getattr__(name: str) -> object:
    # Imported on first use (PEP 562), so importing procward costs nothing for
    # programs that only report to a supervisor, or for the CLI's client commands.
    if name == "Service":
        from procward.service import Service

        return Service
    if name in _ERRORS:
        from procward import errors

        return getattr(errors, name)
    raise AttributeError(f"module 'procward' has no attribute {name!r}")

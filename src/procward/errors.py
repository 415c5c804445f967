"""The exceptions procward raises; this module imports nothing from procward.

    ProcwardError                 anything procward raises on purpose
    ├── ConfigError               a configuration file is wrong (carries every problem)
    ├── SpawnError                a program could not be started (missing, not executable)
    ├── StateDirLocked            another procward already runs on this state dir
    ├── UnknownService            a name matches no configured service or instance
    ├── FrameError                bytes on the notify channel that are not a valid frame
    ├── IllegalTransition         the engine tried a state change its table forbids (a bug)
    ├── ClientError               the CLI could not get an answer from a daemon (has ``code``)
    └── OsHostError               the OS service manager refused, or is missing
        └── NotPrivileged         ... because this process lacks the rights (nothing changed)

Catch ``ConfigError`` to show a user every mistake in their file at once;
each ``ConfigProblem`` names the file, the line and the key path. Catch
``ProcwardError`` to catch every error procward raises on purpose.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

__all__ = [
    "ClientError",
    "ConfigError",
    "ConfigProblem",
    "FrameError",
    "IllegalTransition",
    "NotPrivileged",
    "OsHostError",
    "ProcwardError",
    "SpawnError",
    "StateDirLocked",
    "UnknownService",
]


class ProcwardError(Exception):
    """Base of every error procward raises on purpose."""


class ConfigProblem(NamedTuple):
    """One mistake in a configuration file: where it is and what is wrong.

    A NamedTuple, not a dataclass: this module is imported by every command,
    and ``dataclasses`` costs the light ones (``procward status``) a tenth of
    their start-up time.
    """

    file: Path
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else str(self.file)
        return f"{where} {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ConfigError(ProcwardError):
    """A configuration could not be loaded; ``problems`` lists every mistake found."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class SpawnError(ProcwardError):
    """A program could not be started: the OS refused to run it."""


class StateDirLocked(ProcwardError):
    """Another procward daemon holds the lock on this state directory."""


class UnknownService(ProcwardError):
    """A name given to a control call matches no service or instance."""


class FrameError(ProcwardError, ValueError):
    """Bytes that are not a valid notify frame: the connection that sent them is closed."""


class IllegalTransition(ProcwardError, RuntimeError):
    """The engine tried a move the state machine does not allow: a bug in procward."""

    def __init__(self, name: str, old: str, new: str) -> None:
        super().__init__(f"{name}: illegal state change {old} -> {new}")


class ClientError(ProcwardError):
    """A CLI command could not do what was asked: say the message, exit with ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class OsHostError(ProcwardError):
    """The OS service manager refused or is missing; the message says what to do next."""


class NotPrivileged(OsHostError):
    """Installing or controlling needs privileges this process lacks (nothing was changed)."""

    def __str__(self) -> str:
        return f"{super().__str__()}. Nothing was changed."

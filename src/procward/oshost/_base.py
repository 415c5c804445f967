"""The one small interface every OS service backend implements.

A backend registers a program with the OS's service manager (Windows SCM,
systemd, launchd) and, when the OS starts that program, *hosts* it: runs a
body (the procward daemon, or an SDK user's function) while telling the
manager how it is going (pending with a wait hint, ready, stopping, alive).
One module per platform implements :class:`ServiceManager`; nothing outside
``procward.oshost`` checks which platform it is on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from procward.errors import NotPrivileged, OsHostError

__all__ = [
    "STOP_MARGIN",
    "ChecksReach",
    "Describes",
    "HostBody",
    "HostReporter",
    "NotPrivileged",
    "OsHostError",
    "ServiceManager",
    "ServiceSpec",
    "ServiceStatus",
    "StartType",
    "python_for_service",
    "stop_wait",
]

StartType = Literal["auto", "delayed", "manual", "disabled"]

# What a stopping service gets beyond the time its programs need (``stop_budget``):
# the daemon's own shutdown, its last events, the interpreter's exit. The one
# margin every backend and the hosted daemon add, so all agree how long a stop may take.
STOP_MARGIN = 15.0


def stop_wait(budget: float) -> float:
    """How long an OS manager must wait for a stop whose programs need ``budget`` seconds."""
    return budget + STOP_MARGIN


@dataclass(frozen=True)
class ServiceSpec:
    """What to register: the OS service ``name`` running ``argv``."""

    name: str
    argv: list[str]
    display_name: str = ""
    description: str = ""
    start_type: StartType = "auto"
    account: str | None = None        # None: the manager's default (LocalSystem / root)
    password: str | None = None
    depends_on: list[str] = field(default_factory=list)
    working_dir: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    user_scope: bool = False          # systemd --user / a launchd LaunchAgent
    stop_budget: float = 30.0         # seconds its programs need to stop (dependents first)
    restart_delay: float = 5.0        # recovery: restart the service this long after a crash
    reset_period: float = 86400.0     # recovery: forget earlier failures after this long
    # Added after the first cut (keep defaults so existing callers are unchanged):
    reload_argv: list[str] = field(default_factory=list)  # re-read configuration (ExecReload)
    watchdog: float = 0.0             # keep-alive period the manager enforces; 0: none
    remover: str = "procward service uninstall"  # the command that removes it, for its notes

    @property
    def stop_wait(self) -> float:
        """How long the manager waits for a stop before it kills what is left."""
        return stop_wait(self.stop_budget)


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    installed: bool
    state: str  # "running", "stopped", "start_pending", ... or "not installed"
    pid: int | None = None
    detail: str = ""


class HostReporter(Protocol):
    """How a hosted body tells the OS manager its progress. Thread-safe."""

    def pending(self, wait_hint: float) -> None:
        """Still starting (or stopping): wait at least ``wait_hint`` seconds more."""

    def ready(self) -> None:
        """Started: the manager may consider the service running."""

    def stopping(self, wait_hint: float) -> None:
        """Stopping; may take ``wait_hint`` seconds."""

    def alive(self) -> None:
        """Watchdog keep-alive (systemd WatchdogSec); a no-op where the manager has none."""

    def log(self, level: Literal["info", "warning", "error"], message: str) -> None:
        """Write to the OS log (Windows Event Log, the journal through stderr)."""


# The body gets the event set when the manager asks it to stop, and the reporter;
# it returns the process exit code (non-zero lets recovery actions apply).
HostBody = Callable[[threading.Event, HostReporter], int]


def python_for_service() -> str:
    """The interpreter an OS manager should start for a Python service.

    ``sys.executable`` as is: a venv's symlinked python on POSIX keeps the
    venv. On Windows a venv's python.exe is a launcher that runs the base
    interpreter as a child, which the SCM did not start (error 1063); the
    Windows backend's ``install()`` registers the base interpreter instead, with
    ``__PYVENV_LAUNCHER__`` in the service's environment so it is the venv's python.
    """
    import sys

    return sys.executable


class ServiceManager(Protocol):
    """One per platform: ``procward.oshost.manager()`` returns the right one."""

    def install(self, spec: ServiceSpec) -> None: ...
    def uninstall(self, name: str, *, user_scope: bool = False) -> None: ...
    def start(self, name: str, *, user_scope: bool = False) -> None: ...
    def stop(self, name: str, *, user_scope: bool = False) -> None: ...
    def status(self, name: str, *, user_scope: bool = False) -> ServiceStatus: ...

    def host(self, name: str, body: HostBody) -> int:
        """Run ``body`` as the OS service ``name`` (called in the process the manager started)."""
        ...

    def data_folder(self, *, user_scope: bool,
                    environ: Mapping[str, str] | None = None) -> Path:
        """Where procward keeps the files of services it installs on this OS (``procward
        wrap``'s folders): the system's, or with ``user_scope`` the user's. ``environ``
        stands for ``os.environ``."""
        ...

    def give_to(self, account: str, paths: Sequence[Path], *, check_only: bool = False) -> None:
        """Let ``account``, which the service runs as, write ``paths`` (POSIX: chown).
        LookupError when there is no such account; ``check_only`` checks only that."""
        ...


@runtime_checkable
class ChecksReach(Protocol):
    """A manager that can tell, at install, what the service's account cannot reach.

    ``install`` prints each line as a warning: the service would fail to start.
    """

    def unreachable(self, spec: ServiceSpec) -> list[str]: ...


def reach_warnings(mgr: object, spec: ServiceSpec) -> list[str]:
    """What would make the installed service fail to start later, each said in full:
    what ``mgr`` finds its account cannot reach, and a program in a folder that may
    not last (a temporary folder, a clone's ``.venv``)."""
    from procward.oshost._reach import impermanent_home

    warnings = []
    where = impermanent_home(spec.argv[0], user_scope=spec.user_scope) if spec.argv else None
    if where is not None:
        warnings.append(
            f"warning: the service will start {spec.argv[0]}, in {where}: once that folder "
            "is cleaned, moved or rebuilt, the service fails at every start. Install procward "
            "into a Python environment in a lasting system folder (a venv under /opt, or "
            "under C:\\Program Files on Windows) and install the service with its procward")
    if isinstance(mgr, ChecksReach):
        warnings += [f"warning: {problem}; the service would fail to start. Put Python, "
                     "procward and the service's files where that account can read them, "
                     "or grant it access" for problem in mgr.unreachable(spec)]
    return warnings


@runtime_checkable
class Describes(Protocol):
    """A manager that can say, without changing anything, what ``install`` would do.

    ``procward service install --dry-run`` prints it; a manager without it
    gets a generic description of the spec.
    """

    def describe(self, spec: ServiceSpec) -> str: ...

"""Register procward (or one program, or an SDK service) with the OS service manager.

``manager()`` picks the backend for this OS: ``windows`` (SCM via pywin32),
``systemd`` (Linux), ``launchd`` (macOS). Backends are imported lazily so the
CLI pays only for the one it uses.
"""

from __future__ import annotations

from procward.oshost._base import (
    ChecksReach,
    Describes,
    HostBody,
    HostReporter,
    NotPrivileged,
    OsHostError,
    ServiceManager,
    ServiceSpec,
    ServiceStatus,
    StartType,
    python_for_service,
    reach_warnings,
    stop_wait,
)
from procward.oshost._hosting import StderrReporter, call_body, stop_on_signals

__all__ = [
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
    "StderrReporter",
    "call_body",
    "manager",
    "python_for_service",
    "reach_warnings",
    "stop_on_signals",
    "stop_wait",
]


def manager(foreground: str = "procward run") -> ServiceManager:
    """The service manager of this OS; raises OsHostError where there is none.

    ``foreground`` runs the same thing without a manager: the advice where the
    manager is missing (systemd, launchd)."""
    import sys

    # The one platform switch of this layer: each backend is its own module.
    if sys.platform == "win32":
        from procward.oshost.windows import WindowsServiceManager

        return WindowsServiceManager()
    if sys.platform == "darwin":
        from procward.oshost.launchd import LaunchdManager

        return LaunchdManager(foreground)
    from procward.oshost.systemd import SystemdManager

    return SystemdManager(foreground)

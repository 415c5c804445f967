"""Register procward (or one program, or an SDK service) with the OS service manager.

``manager()`` picks the backend for this OS: ``windows`` (SCM via pywin32),
``systemd`` (Linux), ``launchd`` (macOS). Backends are imported lazily so the
CLI pays only for the one it uses.
"""

from __future__ import annotations

from procward.oshost._base import (
    HostBody,
    HostReporter,
    NotPrivileged,
    OsHostError,
    ServiceManager,
    ServiceSpec,
    ServiceStatus,
    StartType,
)

__all__ = [
    "HostBody",
    "HostReporter",
    "NotPrivileged",
    "OsHostError",
    "ServiceManager",
    "ServiceSpec",
    "ServiceStatus",
    "StartType",
    "manager",
    "python_for_service",
]


def manager() -> ServiceManager:
    """The service manager of this OS; raises OsHostError where there is none."""
    import sys

    # The one platform switch of this layer: each backend is its own module.
    if sys.platform == "win32":
        from procward.oshost.windows import WindowsServiceManager

        return WindowsServiceManager()
    if sys.platform == "darwin":
        from procward.oshost.launchd import LaunchdManager

        return LaunchdManager()
    from procward.oshost.systemd import SystemdManager

    return SystemdManager()


def python_for_service() -> tuple[str, dict[str, str]]:
    """The python the OS service should run (``argv[0]``), and what to add to its environment.

    A Windows venv's ``python.exe`` is a launcher the SCM cannot use; this gives
    the base interpreter and the variables that make it the venv's python.
    ``install()`` applies the same translation to a venv ``argv[0]`` itself.
    """
    import sys

    if sys.platform == "win32":
        from procward.oshost.windows import python_for_service as for_windows

        return for_windows()
    from procward.oshost._base import python_for_service as default

    return default()

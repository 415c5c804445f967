"""Who a Windows service runs as, and what that account can start and reach.

This module owns the account side of a Windows service: the names users
write for the built-in accounts, the (account, password) pair the SCM wants,
the "Log on as a service" right a user account needs, which python.exe the
service must run, and the warning when what it runs lies in a user's profile
folder that its account cannot read.

The interpreter matters because a venv's ``python.exe`` is a launcher that
starts the base interpreter as a *child*: the SCM did not start that child,
so its ``StartServiceCtrlDispatcher`` fails (error 1063).
"""

from __future__ import annotations

import sys

# Tells mypy --platform linux that nothing below applies there.
assert sys.platform == "win32"

import os
import winreg
from pathlib import Path
from typing import TYPE_CHECKING

import pywintypes
import win32security
import winerror

from procward.oshost._base import OsHostError, ServiceSpec
from procward.oshost._reach import service_paths

if TYPE_CHECKING:
    # Stub-only type: a security identifier.
    from _win32typing import PySID

__all__ = [
    "account_sid",
    "grant_service_logon",
    "is_user_account",
    "logon_account",
    "service_python",
    "unreachable",
]

# Built-in accounts, by every name users write them with. LocalSystem is the
# SCM's default, passed as None.
_BUILTIN_ACCOUNTS: dict[str, str | None] = {
    "localsystem": None,
    r".\localsystem": None,
    r"nt authority\system": None,
    "localservice": r"NT AUTHORITY\LocalService",
    r"nt authority\localservice": r"NT AUTHORITY\LocalService",
    "networkservice": r"NT AUTHORITY\NetworkService",
    r"nt authority\networkservice": r"NT AUTHORITY\NetworkService",
}

# The right an account needs to run a service (services.msc grants it when you
# pick an account there; CreateService does not, and the start then fails with 1069).
_SERVICE_LOGON_RIGHT = "SeServiceLogonRight"


def logon_account(spec: ServiceSpec) -> tuple[str | None, str | None]:
    """The (account, password) CreateService wants for ``spec.account``."""
    if spec.account is None:
        return None, None
    account = spec.account.strip()
    lowered = account.lower()
    if lowered in _BUILTIN_ACCOUNTS:
        # Built-in accounts have no password; the SCM rejects one.
        return _BUILTIN_ACCOUNTS[lowered], None
    if lowered.startswith("nt service\\"):
        # A virtual account is the service's own identity: it exists only under
        # its own service's name.
        if lowered != f"nt service\\{spec.name.lower()}":
            raise OsHostError(f'account "{account}": a virtual account must be '
                              f'"NT SERVICE\\{spec.name}", the name of the service itself')
        return account, None
    if "\\" not in account and "@" not in account:
        account = f".\\{account}"  # a bare user name is a local account
    if spec.password is None and not account.endswith("$"):
        # Only a group managed service account ("DOMAIN\name$") logs on without one.
        raise OsHostError(f'account "{account}" needs a password (pass one, or use '
                          "LocalService, NetworkService or NT SERVICE\\<name>)")
    return account, spec.password


def is_user_account(account: str) -> bool:
    """A user's account, not a built-in or virtual one (LocalSystem is None, not here)."""
    return not account.lower().startswith(("nt authority\\", "nt service\\"))


def account_sid(account: str) -> PySID:
    """The SID of a user account; OsHostError when there is no such account."""
    # LookupAccountName does not know "." as "this computer": a bare name is looked
    # up locally first, as the SCM does.
    lookup = account.removeprefix(".\\")
    try:
        sid, _, _ = win32security.LookupAccountName(None, lookup)
    except pywintypes.error as e:
        if e.winerror == winerror.ERROR_NONE_MAPPED:
            raise OsHostError(f'account "{account}": no such account') from None
        raise OsHostError(f'account "{account}": {e.strerror} (Windows error {e.winerror})') \
            from None
    return sid


def grant_service_logon(sid: PySID) -> None:
    """Give the account ``sid`` the "Log on as a service" right, as services.msc would.

    Raises pywintypes.error as the LSA does; the caller says which service it was for.
    """
    # None: this computer's policy (types-pywin32 insists on a name).
    policy = win32security.LsaOpenPolicy(
        None,  # type: ignore[arg-type]
        win32security.POLICY_CREATE_ACCOUNT | win32security.POLICY_LOOKUP_NAMES)
    try:
        win32security.LsaAddAccountRights(policy, sid, (_SERVICE_LOGON_RIGHT,))
    finally:
        # types-pywin32 types the handle as int; LsaClose takes the PyLSA_HANDLE it is.
        win32security.LsaClose(policy)  # type: ignore[arg-type]


def _venv_home(python: Path) -> Path | None:
    """The base interpreter's folder, when ``python`` is a venv's launcher; else None."""
    for folder in (python.parent, python.parent.parent):
        cfg = folder / "pyvenv.cfg"
        try:
            text = cfg.read_text(encoding="utf-8")
        except OSError:
            continue
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip().lower() == "home":
                return Path(value.strip())
    return None


def service_python(python: str) -> tuple[str, dict[str, str]]:
    """The interpreter the SCM should run for ``python``, and the environment it needs.

    A venv's ``python.exe`` is a launcher: it runs the base interpreter as a
    child, so the process the SCM started is not the one that calls
    ``StartServiceCtrlDispatcher`` (error 1063), and the SCM's stop or kill
    reaches only the launcher. The base interpreter is registered instead,
    with ``__PYVENV_LAUNCHER__`` naming the venv's launcher: that is exactly
    what the launcher itself passes to its child, and CPython's startup then
    takes the venv's ``pyvenv.cfg`` as its own, so ``site`` adds the venv's
    site-packages *and* runs their ``.pth`` files (pywin32's among them, which
    put its DLL folder on the search path). PYTHONPATH would skip those files.
    """
    path = Path(python)
    home = _venv_home(path)
    if home is None:
        return python, {}
    if os.path.normcase(os.path.abspath(python)) == os.path.normcase(sys.executable):
        base = getattr(sys, "_base_executable", "") or str(home / path.name)
    else:
        base = str(home / path.name)
    if os.path.normcase(os.path.abspath(base)) == os.path.normcase(os.path.abspath(python)):
        return python, {}
    return base, {"__PYVENV_LAUNCHER__": str(path)}


def _profiles_folder() -> str:
    """Where user profiles live (C:\\Users unless the machine moved them)."""
    try:
        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE,
                            r"SOFTWARE\Microsoft\Windows NT\CurrentVersion\ProfileList") as key:
            folder = str(winreg.QueryValueEx(key, "ProfilesDirectory")[0])
    except OSError:
        folder = ""
    return os.path.expandvars(folder) or os.environ.get("SYSTEMDRIVE", "C:") + "\\Users"


def _profile_holding(path: Path, profiles: str) -> str | None:
    """The user profile folder ``path`` lies in, if any."""
    try:
        inner = os.path.relpath(os.path.normcase(os.path.abspath(path)),
                                os.path.normcase(profiles))
    except ValueError:  # another drive
        return None
    if inner == "." or inner.startswith(".."):
        return None
    return os.path.join(profiles, inner.split(os.sep)[0])


def unreachable(spec: ServiceSpec) -> list[str]:
    """What the service needs that lies in a user's profile folder, which by default
    only that user, SYSTEM and Administrators may read.

    A python.org install for one user puts Python in its profile, and a venv
    made there is in it too: fine for LocalSystem, the default, out of reach
    for LocalService, NetworkService, NT SERVICE\\<name> or another user.
    Only the folder is looked at, not the ACLs: a warning, never a refusal.
    """
    if spec.account is None or not spec.argv:
        return []
    account = spec.account.strip()
    if _BUILTIN_ACCOUNTS.get(account.lower(), "") is None:  # LocalSystem
        return []
    profiles = _profiles_folder()
    own = account.rpartition("\\")[2].lower()
    # The interpreter the SCM will run (a venv's base python) as well as the venv's.
    argv = [service_python(spec.argv[0])[0], *spec.argv]
    problems = []
    for path in dict.fromkeys(path for path, _ in service_paths(argv, spec.working_dir)):
        holder = _profile_holding(path, profiles)
        if holder is not None and os.path.basename(holder).lower() not in (own, "public"):
            problems.append(
                f"the service runs as {account}, which cannot read {path}: it is in the "
                f"profile folder {holder}, which by default only its user, SYSTEM and "
                "Administrators may read")
    return problems

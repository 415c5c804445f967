"""Windows services: registering one with the Service Control Manager, and hosting it.

This module owns everything procward says to the SCM: creating a service (its
command line, start type, account, dependencies, recovery, environment),
starting, stopping, querying and deleting it, and, in the process the SCM
starts, being that service: python.exe itself calls
``StartServiceCtrlDispatcher`` through pywin32's ``servicemanager`` (no
``pythonservice.exe``), runs the body on the SCM's service thread and reports
START_PENDING / RUNNING / STOP_PENDING with checkpoints as the body asks.

It also knows which python.exe the SCM can run: a venv's ``python.exe`` is a
launcher that starts the base interpreter as a *child*, which the SCM did not
start, so the child's ``StartServiceCtrlDispatcher`` fails (error 1063).
"""

from __future__ import annotations

import sys

# Tells mypy --platform linux that nothing below applies there.
assert sys.platform == "win32"

import os
import subprocess
import threading
import time
import traceback
import winreg
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pywintypes
import servicemanager
import win32con
import win32evtlogutil
import win32security
import win32service
import win32serviceutil
import winerror

from procward.oshost._base import (
    HostBody,
    NotPrivileged,
    OsHostError,
    ServiceSpec,
    ServiceStatus,
)

if TYPE_CHECKING:
    # Stub-only types: the SCM's handles, and a security identifier.
    from _win32typing import PySC_HANDLE, PySID

__all__ = [
    "EVENT_SOURCE",
    "WindowsServiceManager",
    "failure_actions",
    "python_for_service",
    "service_python",
]

# The Event Log source every procward service writes under (Application log).
EVENT_SOURCE = "procward"

_SERVICES_KEY = r"SYSTEM\CurrentControlSet\Services"

_START_TYPES = {
    "auto": win32service.SERVICE_AUTO_START,
    "delayed": win32service.SERVICE_AUTO_START,  # plus the delayed flag, set afterwards
    "manual": win32service.SERVICE_DEMAND_START,
    "disabled": win32service.SERVICE_DISABLED,
}

_STATES = {
    win32service.SERVICE_STOPPED: "stopped",
    win32service.SERVICE_START_PENDING: "start_pending",
    win32service.SERVICE_STOP_PENDING: "stop_pending",
    win32service.SERVICE_RUNNING: "running",
    win32service.SERVICE_CONTINUE_PENDING: "continue_pending",
    win32service.SERVICE_PAUSE_PENDING: "pause_pending",
    win32service.SERVICE_PAUSED: "paused",
}

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

# Not in pywin32's win32service: the control a service accepting
# SERVICE_ACCEPT_PRESHUTDOWN receives before the system shutdown proper.
_SERVICE_CONTROL_PRESHUTDOWN = 0x0000000F
_SERVICE_ACCEPT_PRESHUTDOWN = 0x00000100
_ACCEPTED = (win32service.SERVICE_ACCEPT_STOP | win32service.SERVICE_ACCEPT_SHUTDOWN
             | _SERVICE_ACCEPT_PRESHUTDOWN)

# How long the SCM is told to wait at first, before the body says more.
_START_HINT = 30.0
_STOP_HINT = 30.0  # when install() recorded none

# How long start()/stop() wait without the service's checkpoint moving on, when
# it gave no longer wait hint.
_MIN_PATIENCE = 30.0

# ChangeServiceConfig2 levels an SCM may lack (Wine's does), and the value the
# Windows SCM itself keeps for each under the service's key, read when it starts.
_REGISTRY_FALLBACK = {
    win32service.SERVICE_CONFIG_DELAYED_AUTO_START_INFO: "DelayedAutostart",
    win32service.SERVICE_CONFIG_FAILURE_ACTIONS_FLAG: "FailureActionsOnNonCrashFailures",
}

# The right an account needs to run a service (services.msc grants it when you
# pick an account there; CreateService does not, and the start then fails with 1069).
_SERVICE_LOGON_RIGHT = "SeServiceLogonRight"

# Restart three times: the SCM applies the last action to every later failure.
_RESTART_ACTIONS = 3


def _fail(what: str, name: str, error: pywintypes.error) -> OsHostError:
    """The OsHostError for an SCM refusal, saying what to do about the usual ones."""
    code = error.winerror
    if code == winerror.ERROR_ACCESS_DENIED:
        return NotPrivileged(
            f'cannot {what} the service "{name}": access denied; run from an elevated '
            "prompt (Run as administrator)")
    if code == winerror.ERROR_SERVICE_DOES_NOT_EXIST:
        return OsHostError(f'cannot {what} the service "{name}": no such service is '
                           "installed; check the name")
    if code == winerror.ERROR_SERVICE_EXISTS:
        return OsHostError(f'cannot {what} the service "{name}": a service of that name '
                           "already exists; uninstall it first, or choose another name")
    if code == winerror.ERROR_SERVICE_MARKED_FOR_DELETE:
        return OsHostError(
            f'cannot {what} the service "{name}": it is marked for deletion and goes once '
            "every program holding it (services.msc, Event Viewer, a running instance) "
            "lets go; close them and try again")
    if code == winerror.ERROR_SERVICE_DISABLED:
        return OsHostError(f'cannot {what} the service "{name}": it is disabled; install it '
                           "again with another start type")
    if code == winerror.ERROR_INVALID_SERVICE_ACCOUNT:
        return OsHostError(f'cannot {what} the service "{name}": the account does not exist')
    if code == winerror.ERROR_SERVICE_LOGON_FAILED:
        return OsHostError(
            f'cannot {what} the service "{name}": its account could not log on (wrong '
            'password, or the account lacks the "Log on as a service" right)')
    return OsHostError(f'cannot {what} the service "{name}": {error.strerror} '
                       f"(Windows error {code})")


def _no_user_scope(user_scope: bool) -> None:
    if user_scope:
        # Windows' per-user services are templates the system instantiates per
        # logon session; nothing a program can register for itself.
        raise OsHostError("Windows has no per-user services: leave out the user scope "
                          "and run from an elevated prompt (Run as administrator)")


def _account(spec: ServiceSpec) -> tuple[str | None, str | None]:
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


def _account_sid(account: str) -> PySID:
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


def _is_user_account(account: str) -> bool:
    """A user's account, not a built-in or virtual one (LocalSystem is None, not here)."""
    return not account.lower().startswith(
        ("nt authority\\", "nt service\\"))


def _grant_service_logon(name: str, sid: PySID) -> None:
    """Give the account ``sid`` the "Log on as a service" right, as services.msc would."""
    try:
        # None: this computer's policy (types-pywin32 insists on a name).
        policy = win32security.LsaOpenPolicy(
            None,  # type: ignore[arg-type]
            win32security.POLICY_CREATE_ACCOUNT | win32security.POLICY_LOOKUP_NAMES)
    except pywintypes.error as e:
        raise _fail("grant the account of", name, e) from None
    try:
        win32security.LsaAddAccountRights(policy, sid, (_SERVICE_LOGON_RIGHT,))
    except pywintypes.error as e:
        raise _fail("grant the account of", name, e) from None
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


def python_for_service() -> tuple[str, dict[str, str]]:
    """This interpreter as the SCM must run it, and the environment it needs (see above)."""
    return service_python(sys.executable)


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


class WindowsServiceManager:
    """Install, control and host services through the Windows Service Control Manager."""

    # -- registering ---------------------------------------------------------------------

    def unreachable(self, spec: ServiceSpec) -> list[str]:
        """What the service needs that lies in a user's profile folder, which by default
        only that user, SYSTEM and Administrators may read (warned about at install).

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
        from procward.oshost._reach import service_paths

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

    def install(self, spec: ServiceSpec) -> None:
        """Create the service; on any failure after creation it is deleted again."""
        if not spec.argv:
            raise OsHostError(f'cannot install the service "{spec.name}": no command given')
        _no_user_scope(spec.user_scope)
        account, password = _account(spec)
        # A user account is checked before anything is created (Wine's SCM, unlike
        # Windows', accepts any name), and gets its right once the service exists.
        sid = _account_sid(account) if account is not None and _is_user_account(account) \
            else None
        python, env = service_python(spec.argv[0])
        # The SCM splits the command line as CreateProcess does: quote as the C
        # runtime expects, so paths with spaces survive.
        command = subprocess.list2cmdline([python, *spec.argv[1:]])
        env = {**env, **spec.env}
        scm = _open_scm(win32service.SC_MANAGER_CREATE_SERVICE, "install", spec.name)
        try:
            try:
                handle = win32service.CreateService(
                    scm, spec.name, spec.display_name or spec.name,
                    win32service.SERVICE_ALL_ACCESS, win32service.SERVICE_WIN32_OWN_PROCESS,
                    _START_TYPES[spec.start_type], win32service.SERVICE_ERROR_NORMAL,
                    command, None, False, list(spec.depends_on) or None, account, password,
                )
            except pywintypes.error as e:
                raise _fail("install", spec.name, e) from None
            try:
                self._configure(handle, spec, env, sid)
            except BaseException:
                # Nothing half-made stays behind: delete what was created.
                try:
                    win32service.DeleteService(handle)
                except pywintypes.error:
                    pass
                raise
            finally:
                win32service.CloseServiceHandle(handle)
        finally:
            win32service.CloseServiceHandle(scm)

    def _configure(self, handle: PySC_HANDLE, spec: ServiceSpec, env: dict[str, str],
                   sid: PySID | None) -> None:
        name = spec.name
        settings: list[tuple[int, object]] = []
        if spec.description:
            settings.append((win32service.SERVICE_CONFIG_DESCRIPTION, spec.description))
        if spec.start_type == "delayed":
            settings.append((win32service.SERVICE_CONFIG_DELAYED_AUTO_START_INFO, True))
        settings += [
            (win32service.SERVICE_CONFIG_FAILURE_ACTIONS, failure_actions(spec)),
            # Without it the SCM acts only when the process dies without saying
            # STOPPED; with it, also on STOPPED with a non-zero exit code (which
            # host() reports for a failed body). A clean stop reports 0: no restart.
            (win32service.SERVICE_CONFIG_FAILURE_ACTIONS_FLAG, True),
            # The SCM gives a plain SHUTDOWN a few seconds; PRESHUTDOWN waits as
            # long as a stop, so the programs stop as they would on `stop`.
            (win32service.SERVICE_CONFIG_PRESHUTDOWN_INFO, int(spec.stop_wait * 1000)),
        ]
        for level, value in settings:
            try:
                win32service.ChangeServiceConfig2(handle, level, value)
            except pywintypes.error as e:
                fallback = _REGISTRY_FALLBACK.get(level)
                if e.winerror != winerror.ERROR_INVALID_LEVEL or fallback is None:
                    raise _fail("configure", name, e) from None
                # This SCM lacks the level (Windows has had it since Vista; Wine
                # lacks it): write the value the Windows SCM keeps for it.
                _set_service_value(name, fallback, winreg.REG_DWORD, 1)
        values: list[tuple[str, int, int | str | list[str]]] = []
        if env:
            # The SCM adds these to the service's environment (REG_MULTI_SZ of NAME=value).
            values.append(("Environment", winreg.REG_MULTI_SZ,
                           [f"{k}={v}" for k, v in env.items()]))
        for value_name, kind, value in values:
            _set_service_value(name, value_name, kind, value)
        if sid is not None:
            _grant_service_logon(name, sid)
        if spec.working_dir is not None:
            # The SCM starts every service in System32; host() moves there first.
            _set_service_value(name, r"Parameters\WorkingDirectory", winreg.REG_SZ,
                               str(Path(spec.working_dir).resolve()))
        # The wait hint host() gives the SCM when asked to stop, before the body says more.
        _set_service_value(name, r"Parameters\StopWaitHint", winreg.REG_DWORD,
                           int(spec.stop_wait * 1000))
        try:
            # servicemanager.pyd holds the message resources Event Viewer needs to
            # show our entries' text; registering the source needs HKLM, so now.
            win32evtlogutil.AddSourceToRegistry(EVENT_SOURCE, servicemanager.__file__)
        except pywintypes.error as e:
            raise _fail("register the Event Log source for", name, e) from None

    def uninstall(self, name: str, *, user_scope: bool = False) -> None:
        """Stop the service if it runs, then delete it."""
        _no_user_scope(user_scope)
        handle = _open_service(name, win32service.SERVICE_STOP | win32con.DELETE
                               | win32service.SERVICE_QUERY_STATUS, "uninstall")
        try:
            _stop(handle, name)
            try:
                win32service.DeleteService(handle)
            except pywintypes.error as e:
                raise _fail("uninstall", name, e) from None
        finally:
            win32service.CloseServiceHandle(handle)

    # -- controlling ---------------------------------------------------------------------

    def start(self, name: str, *, user_scope: bool = False) -> None:
        """Start the service and wait until it says it runs (or has stopped again)."""
        _no_user_scope(user_scope)
        handle = _open_service(name, win32service.SERVICE_START
                               | win32service.SERVICE_QUERY_STATUS, "start")
        try:
            try:
                win32service.StartService(handle, None)
            except pywintypes.error as e:
                if e.winerror != winerror.ERROR_SERVICE_ALREADY_RUNNING:
                    raise _fail("start", name, e) from None
            status = _wait_while(handle, win32service.SERVICE_START_PENDING)
            if status["CurrentState"] == win32service.SERVICE_STOP_PENDING:
                # Its body ended as it started and it is on its way down (the host
                # reports STOP_PENDING, then STOPPED): that is no start.
                status = _wait_while(handle, win32service.SERVICE_STOP_PENDING)
            if status["CurrentState"] == win32service.SERVICE_START_PENDING:
                raise OsHostError(f'the service "{name}" is still starting after its wait '
                                  "hints ran out; see the Event Log (source procward)")
            if status["CurrentState"] == win32service.SERVICE_STOPPED:
                raise OsHostError(f'the service "{name}" stopped as it started '
                                  f"({_exit_detail(status)}); see the Event Log "
                                  "(source procward)")
            if status["CurrentState"] == win32service.SERVICE_STOP_PENDING:
                raise OsHostError(f'the service "{name}" began to stop as it started and '
                                  "is still stopping; see the Event Log (source procward)")
        finally:
            win32service.CloseServiceHandle(handle)

    def stop(self, name: str, *, user_scope: bool = False) -> None:
        """Ask the service to stop and wait until it has (each wait hint is honoured)."""
        _no_user_scope(user_scope)
        handle = _open_service(name, win32service.SERVICE_STOP
                               | win32service.SERVICE_QUERY_STATUS, "stop")
        try:
            _stop(handle, name)
        finally:
            win32service.CloseServiceHandle(handle)

    def status(self, name: str, *, user_scope: bool = False) -> ServiceStatus:
        _no_user_scope(user_scope)
        try:
            handle = _open_service(name, win32service.SERVICE_QUERY_STATUS, "query")
        except OsHostError as e:
            cause = e.__cause__
            if isinstance(cause, pywintypes.error) and \
                    cause.winerror == winerror.ERROR_SERVICE_DOES_NOT_EXIST:
                return ServiceStatus(name, installed=False, state="not installed")
            raise
        try:
            status = _query(handle)
        finally:
            win32service.CloseServiceHandle(handle)
        state = _STATES.get(status["CurrentState"], f"state {status['CurrentState']}")
        detail = ""
        if status["CurrentState"] == win32service.SERVICE_STOPPED:
            detail = _exit_detail(status)
        return ServiceStatus(name, installed=True, state=state,
                             pid=status["ProcessId"] or None, detail=detail)

    # -- being the service ---------------------------------------------------------------

    def host(self, name: str, body: HostBody) -> int:
        """Be the service ``name`` the SCM started: run ``body`` on the SCM's service thread.

        The body must call ``reporter.ready()`` once it runs (until then the
        SCM sees START_PENDING), and ``stopping(hint)`` while a stop takes long.
        Call this early, before slow imports or loading a configuration: the
        SCM gives a new process 30 s to get here, and the body's own pending
        reports are what keep it waiting after that.

        Returns the body's exit code once the SCM has been told the service
        stopped. Raises OsHostError when this process was not started by the
        SCM (error 1063): then it is a console, and the caller runs in the
        foreground instead.
        """
        outcome: list[int] = []
        parameters = _parameters(name)
        stop_hint = parameters.get("StopWaitHint")
        service_class = _service_class(
            name, body, outcome,
            stop_hint / 1000 if isinstance(stop_hint, int) else _STOP_HINT)
        folder = parameters.get("WorkingDirectory")
        if isinstance(folder, str):
            try:
                os.chdir(folder)
            except OSError:
                pass  # the body then runs in System32, and its own errors say what is missing
        servicemanager.Initialize(EVENT_SOURCE, servicemanager.__file__)
        servicemanager.PrepareToHostSingle(service_class)
        try:
            servicemanager.StartServiceCtrlDispatcher()  # type: ignore[no-untyped-call]
        except pywintypes.error as e:
            if e.winerror == winerror.ERROR_FAILED_SERVICE_CONTROLLER_CONNECT:
                raise OsHostError(
                    f'"{name}" can only be hosted by the Service Control Manager, and this '
                    "process was started from a console (Windows error 1063); start the "
                    "service with `sc start` or the service commands, or run it in the "
                    "foreground instead") from None
            raise OsHostError(f'hosting the service "{name}" failed: {e.strerror} '
                              f"(Windows error {e.winerror})") from None
        return outcome[0] if outcome else 1


def failure_actions(spec: ServiceSpec) -> dict[str, object]:
    """The SERVICE_CONFIG_FAILURE_ACTIONS value for ``spec``: restart after ``restart_delay``."""
    delay_ms = max(0, int(spec.restart_delay * 1000))
    return {
        # pywin32 wants all four keys; empty strings leave reboot message and command unset.
        "ResetPeriod": max(0, int(spec.reset_period)),
        "RebootMsg": "",
        "Command": "",
        "Actions": [(win32service.SC_ACTION_RESTART, delay_ms)] * _RESTART_ACTIONS,
    }


# -- the SCM's handles and waits ----------------------------------------------------------


def _open_scm(access: int, what: str, name: str) -> PySC_HANDLE:
    try:
        scm = win32service.OpenSCManager(None, None, access)
    except pywintypes.error as e:
        raise _fail(what, name, e) from None
    return scm


def _open_service(name: str, access: int, what: str) -> PySC_HANDLE:
    scm = _open_scm(win32service.SC_MANAGER_CONNECT, what, name)
    try:
        handle = win32service.OpenService(scm, name, access)
    except pywintypes.error as e:
        raise _fail(what, name, e) from e
    finally:
        win32service.CloseServiceHandle(scm)
    return handle


def _set_service_value(name: str, value_name: str, kind: int,
                       value: int | str | list[str]) -> None:
    """Write ``value_name`` (``sub\\name`` for a subkey) under the service's registry key."""
    subkey, _, leaf = value_name.rpartition("\\")
    path = f"{_SERVICES_KEY}\\{name}" + (f"\\{subkey}" if subkey else "")
    try:
        with winreg.CreateKeyEx(winreg.HKEY_LOCAL_MACHINE, path, 0,
                                winreg.KEY_SET_VALUE) as key:
            winreg.SetValueEx(key, leaf, 0, kind, value)
    except PermissionError:
        raise NotPrivileged(f'cannot configure the service "{name}": access denied to its '
                            "registry key; run from an elevated prompt (Run as "
                            "administrator)") from None
    except OSError as e:
        raise OsHostError(f'cannot configure the service "{name}": writing {value_name} '
                          f"failed: {e}") from None


def _parameters(name: str) -> dict[str, object]:
    """What install() recorded under the service's ``Parameters`` key."""
    found: dict[str, object] = {}
    try:
        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE,
                            f"{_SERVICES_KEY}\\{name}\\Parameters") as key:
            for value_name in ("WorkingDirectory", "StopWaitHint"):
                try:
                    found[value_name], _ = winreg.QueryValueEx(key, value_name)
                except OSError:
                    pass
    except OSError:
        pass
    return found


def _exit_detail(status: dict[str, int]) -> str:
    code = status["Win32ExitCode"]
    if code == winerror.ERROR_SERVICE_SPECIFIC_ERROR:
        return f"exit code {status['ServiceSpecificExitCode']:#x} (service-specific)"
    if code in (0, winerror.ERROR_SERVICE_NEVER_STARTED):
        return "exit code 0" if code == 0 else "never started"
    return f"Windows error {code}"


def _query(handle: PySC_HANDLE) -> dict[str, int]:
    # types-pywin32 calls it a SERVICE_STATUS tuple; QueryServiceStatusEx returns a dict.
    status: dict[str, int] = win32service.QueryServiceStatusEx(handle)  # type: ignore[assignment]
    return status


def _wait_while(handle: PySC_HANDLE, pending: int) -> dict[str, int]:
    """Poll until the service leaves ``pending``, as the SCM's own tools do.

    Patience is renewed whenever the checkpoint moves on and lasts the wait
    hint the service last gave (at least ``_MIN_PATIENCE``): a slow but
    progressing start or stop is waited for, a stuck one is not.
    """
    status = _query(handle)
    checkpoint = status["CheckPoint"]
    deadline = time.monotonic() + max(_MIN_PATIENCE, status["WaitHint"] / 1000)
    while status["CurrentState"] == pending:
        # The SCM offers no wait on a state change short of NotifyServiceStatusChange,
        # which needs an alertable thread of our own; polling is what sc.exe does.
        time.sleep(min(1.0, max(0.1, status["WaitHint"] / 10000)))
        status = _query(handle)
        if status["CheckPoint"] != checkpoint:
            checkpoint = status["CheckPoint"]
            deadline = time.monotonic() + max(_MIN_PATIENCE, status["WaitHint"] / 1000)
        elif time.monotonic() > deadline:
            break
    return status


def _stop(handle: PySC_HANDLE, name: str) -> None:
    try:
        win32service.ControlService(handle, win32service.SERVICE_CONTROL_STOP)
    except pywintypes.error as e:
        if e.winerror == winerror.ERROR_SERVICE_NOT_ACTIVE:
            return
        if e.winerror != winerror.ERROR_SERVICE_CANNOT_ACCEPT_CTRL:
            raise _fail("stop", name, e) from None
        # Already stopping (or still starting): wait for that to end below.
    status = _wait_while(handle, win32service.SERVICE_STOP_PENDING)
    if status["CurrentState"] == win32service.SERVICE_START_PENDING:
        raise OsHostError(f'the service "{name}" is still starting and cannot be stopped '
                          "yet; try again in a moment")
    if status["CurrentState"] != win32service.SERVICE_STOPPED:
        raise OsHostError(f'the service "{name}" did not stop in time (state '
                          f"{_STATES.get(status['CurrentState'], '?')}); see the Event Log")


# -- the hosted service --------------------------------------------------------------------


class _ScmReporter:
    """A HostReporter speaking to the SCM through the service's status handle."""

    def __init__(self, status_handle: int) -> None:
        self._handle = status_handle
        self._lock = threading.Lock()
        self._checkpoint = 0
        self._state = win32service.SERVICE_START_PENDING
        self._wait_hint = 0

    def _report(self, state: int | None, wait_hint: float) -> None:
        """Report ``state`` (None: the pending state we are in) to the SCM."""
        with self._lock:
            if state is None:
                state = (self._state if self._state == win32service.SERVICE_STOP_PENDING
                         else win32service.SERVICE_START_PENDING)
            if self._state == win32service.SERVICE_STOP_PENDING and \
                    state != win32service.SERVICE_STOP_PENDING:
                return  # once stopping, a late "ready" must not look like a restart
            # The checkpoint must rise with every pending report, or the SCM
            # concludes after the wait hint that the service hangs.
            pending = state in (win32service.SERVICE_START_PENDING,
                                win32service.SERVICE_STOP_PENDING)
            self._checkpoint = self._checkpoint + 1 if pending else 0
            self._state = state
            self._wait_hint = max(0, int(wait_hint * 1000))
            self._send()

    def _send(self) -> None:
        # Controls are refused while starting (as the SCM expects); then stop,
        # shutdown and preshutdown are accepted.
        accepted = 0 if self._state == win32service.SERVICE_START_PENDING else _ACCEPTED
        try:
            win32service.SetServiceStatus(self._handle, (
                win32service.SERVICE_WIN32_OWN_PROCESS, self._state, accepted, 0, 0,
                self._checkpoint, self._wait_hint))
        except pywintypes.error:
            pass  # the SCM has let go of us; the body still ends as it must

    def repeat(self) -> None:
        """Say again what was said last (the SCM's INTERROGATE control asks for it)."""
        with self._lock:
            self._send()

    def pending(self, wait_hint: float) -> None:
        self._report(None, wait_hint)

    def ready(self) -> None:
        self._report(win32service.SERVICE_RUNNING, 0)

    def stopping(self, wait_hint: float) -> None:
        self._report(win32service.SERVICE_STOP_PENDING, wait_hint)

    def alive(self) -> None:
        pass  # the SCM has no watchdog

    def log(self, level: Literal["info", "warning", "error"], message: str) -> None:
        write: Callable[[str], None] = {
            "info": servicemanager.LogInfoMsg,
            "warning": servicemanager.LogWarningMsg,
            "error": servicemanager.LogErrorMsg,
        }[level]
        try:
            write(message)
        except pywintypes.error:
            pass  # an Event Log that refuses must not end the service


class _BodyFailed(Exception):
    """Raised out of SvcRun so pywin32 reports STOPPED with a service-specific error."""


def _service_class(name: str, body: HostBody, outcome: list[int],
                   stop_hint: float) -> type[win32serviceutil.ServiceFramework]:
    """A ServiceFramework for ``name`` that runs ``body``; its exit code lands in ``outcome``."""

    class HostedService(win32serviceutil.ServiceFramework):
        _svc_name_ = name
        _svc_display_name_ = name

        def __init__(self, args: list[str]) -> None:
            super().__init__(args)
            # ServiceFramework names the service as the event source; ours is shared.
            servicemanager.SetEventSourceName(EVENT_SOURCE)
            self.stop_event = threading.Event()
            self.reporter = _ScmReporter(self.ssh)

        def GetAcceptedControls(self) -> int:
            return _ACCEPTED

        def SvcInterrogate(self) -> None:
            # pywin32's answer is "RUNNING", even while starting: repeat ours instead.
            self.reporter.repeat()

        def SvcStop(self) -> None:
            # On the SCM's control thread: answer at once, the body does the work.
            self.reporter.stopping(stop_hint)
            self.stop_event.set()

        def SvcShutdown(self) -> None:
            self.SvcStop()

        def SvcOtherEx(self, control: int, event_type: int, data: object) -> None:
            if control == _SERVICE_CONTROL_PRESHUTDOWN:
                self.SvcStop()

        def SvcRun(self) -> None:
            # pywin32's own SvcRun reports RUNNING before the body has done
            # anything; the body says when it is ready instead, and until then
            # START_PENDING with a rising checkpoint keeps the SCM waiting.
            self.reporter.pending(_START_HINT)
            try:
                code = body(self.stop_event, self.reporter)
            except SystemExit as e:
                # sys.exit() in the body means what it means in a script.
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except BaseException:
                self.reporter.log("error", f'service "{name}" failed:\n'
                                  f"{traceback.format_exc()}")
                code = 1
            outcome.append(code)
            self.reporter.stopping(stop_hint)
            if code != 0:
                # pywin32 then reports STOPPED with ERROR_SERVICE_SPECIFIC_ERROR,
                # which with the failure-actions flag sets recovery going. A clean
                # return reports STOPPED with 0: no recovery.
                raise _BodyFailed(f'service "{name}" ended with exit code {code}')

    HostedService.__name__ = HostedService.__qualname__ = f"HostedService_{name}"
    return HostedService

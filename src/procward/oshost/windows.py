"""Windows services: registering one with the Service Control Manager, and controlling it.

This module owns what procward says to the SCM: creating a service (its
command line, start type, account, dependencies, recovery, environment, and
the values the hosted service reads back under its registry key), starting,
stopping, querying and deleting it. ``WindowsServiceManager`` is the backend
``procward.oshost.manager()`` returns on Windows; being the service, in the
process the SCM starts, is ``_windows_host``'s, and who the service runs as
(accounts, the log-on right, which python.exe, what it can reach) is
``_windows_accounts``'.
"""

from __future__ import annotations

import sys

# Tells mypy --platform linux that nothing below applies there.
assert sys.platform == "win32"

import os
import subprocess
import time
import winreg
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pywintypes
import servicemanager
import win32con
import win32evtlogutil
import win32service
import winerror

from procward.oshost import _windows_accounts as accounts
from procward.oshost._base import (
    HostBody,
    NotPrivileged,
    OsHostError,
    ServiceSpec,
    ServiceStatus,
)
from procward.oshost._windows_host import EVENT_SOURCE, host

if TYPE_CHECKING:
    # Stub-only types: the SCM's handles, and a security identifier.
    from _win32typing import PySC_HANDLE, PySID

__all__ = ["EVENT_SOURCE", "WindowsServiceManager", "failure_actions"]

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

# How long start()/stop() wait without the service's checkpoint moving on, when
# it gave no longer wait hint.
_MIN_PATIENCE = 30.0

# ChangeServiceConfig2 levels an SCM may lack (Wine's does), and the value the
# Windows SCM itself keeps for each under the service's key, read when it starts.
_REGISTRY_FALLBACK = {
    win32service.SERVICE_CONFIG_DELAYED_AUTO_START_INFO: "DelayedAutostart",
    win32service.SERVICE_CONFIG_FAILURE_ACTIONS_FLAG: "FailureActionsOnNonCrashFailures",
}

# What install() records under the service's key for host() to read back.
_WORKING_DIRECTORY = "WorkingDirectory"
_STOP_WAIT_HINT = "StopWaitHint"

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


class WindowsServiceManager:
    """Install, control and host services through the Windows Service Control Manager."""

    # -- registering ---------------------------------------------------------------------

    def unreachable(self, spec: ServiceSpec) -> list[str]:
        """What the service's account cannot read (warned about at install)."""
        return accounts.unreachable(spec)

    def install(self, spec: ServiceSpec) -> None:
        """Create the service; on any failure after creation it is deleted again."""
        if not spec.argv:
            raise OsHostError(f'cannot install the service "{spec.name}": no command given')
        _no_user_scope(spec.user_scope)
        account, password = accounts.logon_account(spec)
        # A user account is checked before anything is created (Wine's SCM, unlike
        # Windows', accepts any name), and gets its right once the service exists.
        sid = accounts.account_sid(account) \
            if account is not None and accounts.is_user_account(account) else None
        python, env = accounts.service_python(spec.argv[0])
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
        if env:
            # The SCM adds these to the service's environment (REG_MULTI_SZ of NAME=value).
            _set_service_value(name, "Environment", winreg.REG_MULTI_SZ,
                               [f"{k}={v}" for k, v in env.items()])
        if sid is not None:
            try:
                accounts.grant_service_logon(sid)
            except pywintypes.error as e:
                raise _fail("grant the account of", name, e) from None
        if spec.working_dir is not None:
            # The SCM starts every service in System32; host() moves there first.
            _set_service_value(name, f"Parameters\\{_WORKING_DIRECTORY}", winreg.REG_SZ,
                               str(Path(spec.working_dir).resolve()))
        # The wait hint host() gives the SCM when asked to stop, before the body says more.
        _set_service_value(name, f"Parameters\\{_STOP_WAIT_HINT}", winreg.REG_DWORD,
                           int(spec.stop_wait * 1000))
        try:
            # servicemanager.pyd holds the message resources Event Viewer needs to
            # show our entries' text; registering the source needs HKLM, so now.
            win32evtlogutil.AddSourceToRegistry(EVENT_SOURCE, servicemanager.__file__)
        except pywintypes.error as e:
            raise _fail("register the Event Log source for", name, e) from None

    def uninstall(self, name: str, *, user_scope: bool = False) -> None:
        """Stop the service if it runs, then delete it."""
        with _opened(name, win32service.SERVICE_STOP | win32con.DELETE, "uninstall",
                     user_scope) as handle:
            _stop(handle, name)
            try:
                win32service.DeleteService(handle)
            except pywintypes.error as e:
                raise _fail("uninstall", name, e) from None

    def data_folder(self, *, user_scope: bool,
                    environ: Mapping[str, str] | None = None) -> Path:
        """``%ProgramData%\\procward`` (``%LOCALAPPDATA%\\procward`` for the user's own,
        though the SCM has no services of a user's own to install there)."""
        env = os.environ if environ is None else environ
        base = (env.get("LOCALAPPDATA") if user_scope else
                env.get("ProgramData") or env.get("PROGRAMDATA")) or r"C:\ProgramData"
        return Path(base) / "procward"

    def give_to(self, account: str, paths: Sequence[Path], *, check_only: bool = False) -> None:
        """Nothing: no ACL is set. The folder keeps what it inherits from its parent
        (C:\\ProgramData's by default); docs/windows-service.md says what to grant an
        account other than LocalSystem, with icacls."""

    # -- controlling ---------------------------------------------------------------------

    def start(self, name: str, *, user_scope: bool = False) -> None:
        """Start the service and wait until it says it runs (or has stopped again)."""
        with _opened(name, win32service.SERVICE_START, "start", user_scope) as handle:
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

    def stop(self, name: str, *, user_scope: bool = False) -> None:
        """Ask the service to stop and wait until it has (each wait hint is honoured)."""
        with _opened(name, win32service.SERVICE_STOP, "stop", user_scope) as handle:
            _stop(handle, name)

    def status(self, name: str, *, user_scope: bool = False) -> ServiceStatus:
        try:
            with _opened(name, 0, "query", user_scope) as handle:
                status = _query(handle)
        except OsHostError as e:
            cause = e.__cause__
            if isinstance(cause, pywintypes.error) and \
                    cause.winerror == winerror.ERROR_SERVICE_DOES_NOT_EXIST:
                return ServiceStatus(name, installed=False, state="not installed")
            raise
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
        parameters = _parameters(name)
        folder = parameters.get(_WORKING_DIRECTORY)
        hint = parameters.get(_STOP_WAIT_HINT)
        return host(name, body, working_dir=folder if isinstance(folder, str) else None,
                    stop_hint=hint / 1000 if isinstance(hint, int) else None)


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


@contextmanager
def _opened(name: str, access: int, what: str, user_scope: bool) -> Iterator[PySC_HANDLE]:
    """The service's handle, with ``access`` and the right to query it, closed after."""
    _no_user_scope(user_scope)
    handle = _open_service(name, access | win32service.SERVICE_QUERY_STATUS, what)
    try:
        yield handle
    finally:
        win32service.CloseServiceHandle(handle)


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
            for value_name in (_WORKING_DIRECTORY, _STOP_WAIT_HINT):
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

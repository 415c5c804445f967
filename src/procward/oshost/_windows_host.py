"""Being a Windows service: the process the SCM started, hosting a body.

python.exe itself calls ``StartServiceCtrlDispatcher`` through pywin32's
``servicemanager`` (no ``pythonservice.exe``), runs the body on the SCM's
service thread, and reports START_PENDING / RUNNING / STOP_PENDING with a
rising checkpoint and wait hints as the body asks. pywin32's own ``SvcRun``
would report RUNNING before the body has done anything; here the body says
when it is ready, so the SCM's 30 s start timeout never kills a slow start.
"""

from __future__ import annotations

import sys

# Tells mypy --platform linux that nothing below applies there.
assert sys.platform == "win32"

import os
import threading
import traceback
from collections.abc import Callable
from typing import Literal

import pywintypes
import servicemanager
import win32service
import win32serviceutil
import winerror

from procward.oshost._base import HostBody, OsHostError

__all__ = ["EVENT_SOURCE", "host"]

# The Event Log source every procward service writes under (Application log).
EVENT_SOURCE = "procward"

# Not in pywin32's win32service: the control a service accepting
# SERVICE_ACCEPT_PRESHUTDOWN receives before the system shutdown proper.
_SERVICE_CONTROL_PRESHUTDOWN = 0x0000000F
_SERVICE_ACCEPT_PRESHUTDOWN = 0x00000100
_ACCEPTED = (win32service.SERVICE_ACCEPT_STOP | win32service.SERVICE_ACCEPT_SHUTDOWN
             | _SERVICE_ACCEPT_PRESHUTDOWN)

# How long the SCM is told to wait at first, before the body says more.
_START_HINT = 30.0
_STOP_HINT = 30.0  # when install() recorded none


def host(name: str, body: HostBody, *, working_dir: str | None,
         stop_hint: float | None) -> int:
    """Be the service ``name`` the SCM started: run ``body`` on the SCM's service thread.

    ``working_dir`` and ``stop_hint`` are what install() recorded for the
    service (None: nothing). Returns the body's exit code once the SCM has been
    told the service stopped; OsHostError when this process was not started by
    the SCM (error 1063).
    """
    outcome: list[int] = []
    service_class = _service_class(name, body, outcome,
                                   _STOP_HINT if stop_hint is None else stop_hint)
    if working_dir is not None:
        try:
            os.chdir(working_dir)
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

"""Installing without administrator rights: ``python.exe install_denied.py CONFIG NAME``.

Wine's SCM grants every program every right, so this script refuses as Windows'
SCM refuses a process that is not elevated: ``OpenSCManager`` fails with
ERROR_ACCESS_DENIED when asked for more than connecting and enumerating. With
that in place it runs ``procward service install -c CONFIG --name NAME`` and an
SDK ``Service(NAME + "sdk").install`` command in this process; then, with the
real ``OpenSCManager`` back, asks the SCM whether either name exists.

Prints one JSON object: each command's exit code and stderr, the access masks
``OpenSCManager`` was asked for, and the Windows error ``OpenService`` gave for
each name (1060: no such service).
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import threading

import pywintypes
import win32service
import winerror

import procward
from procward.cli import main as procward_main

REAL_OPEN = win32service.OpenSCManager
# What an unelevated process may ask of the SCM (the rest needs an administrator).
ALLOWED = (win32service.SC_MANAGER_CONNECT | win32service.SC_MANAGER_ENUMERATE_SERVICE
           | win32service.SC_MANAGER_QUERY_LOCK_STATUS)
asked: list[int] = []


def denied_open(machine: str | None, database: str | None, access: int) -> object:
    asked.append(access)
    if access & ~ALLOWED:
        raise pywintypes.error(winerror.ERROR_ACCESS_DENIED, "OpenSCManager",
                               "Access is denied.")
    return REAL_OPEN(machine, database, access)


def run(command: list[str] | None, name: str) -> dict[str, object]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        if command is not None:
            code = procward_main(command)
        else:
            svc = procward.Service(name, description="never installed")

            @svc.main
            def body(stop: threading.Event) -> None:
                stop.wait()

            code = svc.command(["install"])
    return {"exit": code, "stderr": err.getvalue()}


def installed_error(name: str) -> int:
    """The Windows error OpenService gives for ``name`` (0: the service exists)."""
    scm = win32service.OpenSCManager(None, None, win32service.SC_MANAGER_CONNECT)
    try:
        handle = win32service.OpenService(scm, name, win32service.SERVICE_QUERY_STATUS)
    except pywintypes.error as e:
        return int(e.winerror)
    finally:
        win32service.CloseServiceHandle(scm)
    win32service.CloseServiceHandle(handle)
    return 0


def main() -> int:
    config, name = sys.argv[1], sys.argv[2]
    win32service.OpenSCManager = denied_open
    try:
        cli = run(["service", "install", "-c", config, "--name", name], name)
        sdk = run(None, name + "sdk")
    finally:
        win32service.OpenSCManager = REAL_OPEN
    print(json.dumps({"cli": cli, "sdk": sdk, "asked": asked,
                      "open_service": {n: installed_error(n) for n in (name, name + "sdk")}}),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

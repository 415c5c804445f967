"""Drives ``procward.oshost.windows`` under Wine: ``python.exe oshost_ctl.py ACTION ARG``.

Each action prints one JSON object, the result the Linux test asserts on:

- ``install SPEC_JSON`` (the fields of ServiceSpec), ``uninstall NAME``,
  ``start NAME``, ``stop NAME``, ``status NAME``: the manager's answer, or
  ``{"error": CLASS, "message": ...}`` when it raised;
- ``config NAME``: what the SCM holds for the service, read back three ways:
  QueryServiceConfig, QueryServiceConfig2 for each level (or the error the
  SCM gave), the values under the service's registry key, and the message
  file registered for the Event Log source;
- ``alive [PIDS, MARKER]``: which of the Windows pids still run a command line
  naming MARKER;
- ``failure_actions SPEC_JSON``: the recovery value install() gives the SCM;
- ``events``: the Application log's entries from the source ``procward``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import winreg
from pathlib import Path
from typing import Any

import psutil
import pywintypes
import win32evtlog
import win32evtlogutil
import win32service

from procward.oshost import OsHostError, ServiceSpec
from procward.oshost.windows import EVENT_SOURCE, WindowsServiceManager, failure_actions

LEVELS = {
    "description": win32service.SERVICE_CONFIG_DESCRIPTION,
    "failure_actions": win32service.SERVICE_CONFIG_FAILURE_ACTIONS,
    "delayed": win32service.SERVICE_CONFIG_DELAYED_AUTO_START_INFO,
    "failure_actions_flag": win32service.SERVICE_CONFIG_FAILURE_ACTIONS_FLAG,
    "preshutdown": win32service.SERVICE_CONFIG_PRESHUTDOWN_INFO,
}


def config(name: str) -> dict[str, Any]:
    scm = win32service.OpenSCManager(None, None, win32service.SC_MANAGER_CONNECT)
    handle = win32service.OpenService(scm, name, win32service.SERVICE_QUERY_CONFIG)
    _, start, _, binary, _, _, deps, account, display = win32service.QueryServiceConfig(handle)
    result: dict[str, Any] = {"start": start, "binary": binary, "dependencies": deps,
                              "account": account, "display": display, "config2": {}}
    for key, level in LEVELS.items():
        try:
            result["config2"][key] = win32service.QueryServiceConfig2(handle, level)
        except pywintypes.error as e:
            result["config2"][key] = {"winerror": e.winerror}
    win32service.CloseServiceHandle(handle)
    win32service.CloseServiceHandle(scm)
    registry: dict[str, Any] = {}
    path = rf"SYSTEM\CurrentControlSet\Services\{name}"
    for sub in ("", r"\Parameters"):
        try:
            with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, path + sub) as key:
                i = 0
                while True:
                    try:
                        value_name, value, _ = winreg.EnumValue(key, i)
                    except OSError:
                        break
                    registry[sub.strip("\\") + ("\\" if sub else "") + value_name] = (
                        value.hex() if isinstance(value, bytes) else value)
                    i += 1
        except OSError:
            pass
    result["registry"] = registry
    try:
        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, "SYSTEM\\CurrentControlSet\\Services\\"
                            f"EventLog\\Application\\{EVENT_SOURCE}") as key:
            result["event_source"], _ = winreg.QueryValueEx(key, "EventMessageFile")
    except OSError:
        result["event_source"] = None
    return result


def events() -> list[dict[str, Any]]:
    log = win32evtlog.OpenEventLog(None, "Application")
    found = []
    flags = win32evtlog.EVENTLOG_BACKWARDS_READ | win32evtlog.EVENTLOG_SEQUENTIAL_READ
    while True:
        records = win32evtlog.ReadEventLog(log, flags, 0)
        if not records:
            break
        for record in records:
            if record.SourceName == EVENT_SOURCE:
                found.append({"type": record.EventType, "inserts": list(record.StringInserts or ()),
                              "message": win32evtlogutil.SafeFormatMessage(record, "Application")})
    return found


def runs(pid: int, marker: str) -> bool:
    try:
        return any(marker in part for part in psutil.Process(pid).cmdline())
    except psutil.Error:
        return False


def main() -> int:
    action, arg = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""
    manager = WindowsServiceManager()
    try:
        if action == "install":
            fields = json.loads(arg)
            if fields.get("working_dir"):
                fields["working_dir"] = Path(fields["working_dir"])
            manager.install(ServiceSpec(**fields))
            result: Any = {"ok": True}
        elif action == "uninstall":
            manager.uninstall(arg)
            result = {"ok": True}
        elif action == "start":
            manager.start(arg)
            result = {"ok": True}
        elif action == "stop":
            manager.stop(arg)
            result = {"ok": True}
        elif action == "status":
            result = dataclasses.asdict(manager.status(arg))
        elif action == "alive":
            # Which of these Windows pids still run a command line that names the
            # marker: a pid Wine handed on to another process does not count.
            pids, marker = json.loads(arg)
            result = {"alive": [pid for pid in pids if runs(pid, marker)]}
        elif action == "config":
            result = config(arg)
        elif action == "events":
            result = {"events": events()}
        elif action == "failure_actions":
            # The value install() passes to ChangeServiceConfig2 (Wine drops it).
            result = failure_actions(ServiceSpec(**json.loads(arg)))
        else:
            raise SystemExit(f"unknown action {action}")
    except OsHostError as e:
        result = {"error": type(e).__name__, "message": str(e)}
    print(json.dumps(result, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

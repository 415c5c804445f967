"""The launchd backend (macOS): a property list, ``launchctl``, and SIGTERM to stop.

It owns the plist (``render_plist``, a pure function the golden tests pin),
where it lives (``/Library/LaunchDaemons`` for the system, ``~/Library/
LaunchAgents`` with ``--user``), and the ``launchctl`` command lines. launchd
has no readiness or watchdog protocol: hosting is running the body until
SIGTERM, with messages on stderr, which the plist sends to a log file.
"""

from __future__ import annotations

import os
import plistlib
import shutil
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from procward.oshost._base import HostBody, OsHostError, ServiceSpec, ServiceStatus
from procward.oshost._hosting import StderrReporter, call_body, stop_on_signals
from procward.oshost._posix import PosixManager, describe_install, run_manager_command

__all__ = ["LaunchdManager", "plist_path", "render_plist"]

_LABEL_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def _check_label(name: str) -> None:
    if not name or not set(name) <= _LABEL_OK:
        raise OsHostError(f"{name!r} cannot be a launchd label: use letters, digits, '_', "
                          "'.', '-' (reverse DNS such as com.example.web is customary)")


def _home() -> Path:
    return Path(os.path.expanduser("~"))


def plist_path(name: str, *, user_scope: bool) -> Path:
    folder = _home() / "Library" / "LaunchAgents" if user_scope else Path(
        "/Library/LaunchDaemons")
    return folder / f"{name}.plist"


def log_path(name: str, *, user_scope: bool) -> Path:
    folder = _home() / "Library" / "Logs" if user_scope else Path("/Library/Logs")
    return folder / "procward" / f"{name}.log"


def render_plist(spec: ServiceSpec, *, log_file: Path | None = None) -> bytes:
    """The launchd job for ``spec``: started at load (auto), kept alive after a failure."""
    _check_label(spec.name)
    if spec.depends_on:
        raise OsHostError("launchd has no service dependencies; leave out --depends-on")
    if spec.user_scope and spec.account:
        raise OsHostError("a --user agent runs as you; --account is for system daemons")
    if not spec.argv or not os.path.isabs(spec.argv[0]):
        raise OsHostError("the program must be an absolute path")
    log = log_file or log_path(spec.name, user_scope=spec.user_scope)
    job: dict[str, Any] = {
        "Label": spec.name,
        "ProgramArguments": list(spec.argv),
        "RunAtLoad": spec.start_type in ("auto", "delayed"),
        # Restart after a crash or a non-zero exit, never after a clean stop.
        "KeepAlive": {"SuccessfulExit": False},
        # launchd's minimum gap between starts: the restart delay.
        "ThrottleInterval": max(1, round(spec.restart_delay)),
        # SIGTERM, then this long, then SIGKILL.
        "ExitTimeOut": round(spec.stop_wait),
        "StandardOutPath": str(log),
        "StandardErrorPath": str(log),
    }
    if spec.start_type == "disabled":
        job["Disabled"] = True
    if spec.working_dir is not None:
        job["WorkingDirectory"] = str(spec.working_dir)
    if spec.env:
        job["EnvironmentVariables"] = dict(sorted(spec.env.items()))
    if spec.account:
        job["UserName"] = spec.account
    if spec.description:
        # launchd ignores unknown keys; this one keeps the description with the job.
        job["ServiceDescription"] = spec.description
    return plistlib.dumps(job, sort_keys=True)


def _domain(user_scope: bool) -> str:
    if user_scope and sys.platform != "win32":
        return f"gui/{os.getuid()}"
    return "system"


class LaunchdManager(PosixManager):
    """Install, control and host launchd jobs (a LaunchDaemon, or a LaunchAgent with --user)."""

    needs_root = ("a system daemon needs root: run the same command with sudo, or add --user "
                  "to install an agent of your own")

    def install_commands(self, spec: ServiceSpec) -> list[list[str]]:
        path = plist_path(spec.name, user_scope=spec.user_scope)
        return [["launchctl", "bootstrap", _domain(spec.user_scope), str(path)]]

    def describe(self, spec: ServiceSpec) -> str:
        return describe_install(plist_path(spec.name, user_scope=spec.user_scope),
                                render_plist(spec).decode(), self.install_commands(spec))

    def data_folder(self, *, user_scope: bool,
                    environ: Mapping[str, str] | None = None) -> Path:
        """``/Library/Application Support/procward``, or the same under ``~/Library``."""
        root = _home() / "Library" if user_scope else Path("/Library")
        return root / "Application Support" / "procward"

    def check_launchd(self) -> None:
        if shutil.which("launchctl") is None:
            raise OsHostError("launchctl is not installed: launchd is macOS's service manager. "
                              f"Run `{self.foreground}` from this system's own service "
                              "manager")

    def install(self, spec: ServiceSpec) -> None:
        data = render_plist(spec)
        self.check_privileges(spec.user_scope)
        self.check_launchd()
        path = plist_path(spec.name, user_scope=spec.user_scope)
        if path.exists():
            raise OsHostError(f"{path} exists: uninstall {spec.name} first")
        log_path(spec.name, user_scope=spec.user_scope).parent.mkdir(parents=True,
                                                                      exist_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(0o644)
        for command in self.install_commands(spec):
            run_manager_command(command)

    def uninstall(self, name: str, *, user_scope: bool = False) -> None:
        job = self._job(name, user_scope)
        path = plist_path(name, user_scope=user_scope)
        if not path.exists():
            raise OsHostError(f"{name} is not installed (no {path})")
        run_manager_command(["launchctl", "bootout", job], check=False)
        path.unlink()

    def start(self, name: str, *, user_scope: bool = False) -> None:
        run_manager_command(["launchctl", "kickstart", self._job(name, user_scope)])

    def stop(self, name: str, *, user_scope: bool = False) -> None:
        # A clean exit after SIGTERM is not restarted (KeepAlive SuccessfulExit=false).
        run_manager_command(["launchctl", "kill", "SIGTERM", self._job(name, user_scope)])

    def status(self, name: str, *, user_scope: bool = False) -> ServiceStatus:
        job = self._job(name, user_scope, privileged=False)
        done = run_manager_command(["launchctl", "print", job], check=False)
        if done.returncode != 0:
            return ServiceStatus(name, installed=False, state="not installed")
        return parse_print(name, done.stdout)

    def _job(self, name: str, user_scope: bool, *, privileged: bool = True) -> str:
        """The job as launchctl names it (``DOMAIN/LABEL``), once the label, the rights a
        change needs (unless not ``privileged``) and launchctl itself are checked."""
        _check_label(name)
        if privileged:
            self.check_privileges(user_scope)
        self.check_launchd()
        return f"{_domain(user_scope)}/{name}"

    def host(self, name: str, body: HostBody) -> int:
        stop = threading.Event()
        with stop_on_signals(stop):
            return call_body(body, stop, StderrReporter(f"{name}: "))


def parse_print(name: str, text: str) -> ServiceStatus:
    """A ServiceStatus from ``launchctl print DOMAIN/LABEL`` output."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition(" = ")
        if sep and key not in fields:
            fields[key] = value.strip()
    pid = int(fields["pid"]) if fields.get("pid", "").isdigit() else None
    state = fields.get("state", "unknown")
    detail = f"last exit code {fields['last exit code']}" if "last exit code" in fields else ""
    return ServiceStatus(name, installed=True,
                         state="running" if state == "running" else "stopped"
                         if state in ("not running", "waiting") else state,
                         pid=pid, detail=detail)

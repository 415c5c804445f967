"""Run Windows code for real under Wine: where the setup lives, and how to run python.exe.

``scripts/setup-wine`` prepares ``.cache/wine`` (Wine, a WINEPREFIX, a Windows
CPython 3.13 with procward's dependencies, importing procward from ``src``).
The ``wine_python`` fixture in ``conftest.py`` hands tests a ``WinePython``.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath
from typing import Any

import psutil

__all__ = ["CACHE", "REPO", "SCRIPTS", "SETUP", "WinePython", "windows_path"]

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache" / "wine"
SETUP = REPO / "scripts" / "setup-wine"
SCRIPTS = Path(__file__).resolve().parent / "scripts"


# Under load, Wine now and then fails a new process while its DLLs initialise:
# the process ends with STATUS_DLL_INIT_FAILED (0xC0000142, seen on Linux as exit
# code 0x42) before any of its code ran, and prints nothing. Such a run did
# nothing, so running it again is safe; our programs never exit 66 themselves.
_DLL_INIT_FAILED = 0xC0000142 & 0xFF
# Or Wine's launcher cannot create the process at all, and says only this
# ("Application could not be started, ... ShellExecuteEx failed: Internal
# error.", exit 1): seen for `wine sc` on a loaded machine.
_LAUNCH_FAILED = "ShellExecuteEx failed"
_START_ATTEMPTS = 3


def _failed_to_start(returncode: int, output: str) -> bool:
    """Whether a Wine program's run ended before any of its code ran."""
    if returncode == _DLL_INIT_FAILED and not output.strip():
        return True
    return returncode != 0 and _LAUNCH_FAILED in output


def windows_path(path: Path | str) -> str:
    """The path a Wine program sees for a Linux path: Wine maps ``/`` to drive ``Z:``."""
    return str(PureWindowsPath("Z:\\", *Path(path).resolve().parts[1:]))


@dataclass
class WinePython:
    """The Windows CPython, run under this session's Wine."""

    python: Path
    env: dict[str, str]
    tmp: Path

    def environ(self, display: bool) -> dict[str, str]:
        """The environment for a Wine program: with the X display only when it must have one.

        A console under Wine with a display gets a real window, which costs each
        run about two seconds: only tests that open windows ask for it.
        """
        if display:
            return self.env
        return {k: v for k, v in self.env.items() if k != "DISPLAY"}

    def run(self, *args: str, timeout: float = 60,
            display: bool = False) -> subprocess.CompletedProcess[str]:
        """Run ``python.exe ARGS``; its output comes back through pipes.

        python.exe needs pipes: with its stdout on a file it dies at start
        (``init_sys_streams``). The Wine system processes it might start were
        started at session start with /dev/null, so no pipe is held open.
        """
        for _ in range(_START_ATTEMPTS):
            done = subprocess.run(
                ["wine", str(self.python), *args], env=self.environ(display),
                stdin=subprocess.DEVNULL, capture_output=True, text=True, encoding="utf-8",
                errors="replace", timeout=timeout, check=False,
            )
            if not _failed_to_start(done.returncode, done.stdout + done.stderr):
                break
        return done

    def popen(self, *args: str) -> subprocess.Popen[str]:
        """Start ``python.exe ARGS`` and return at once; stdout and stderr are one pipe.

        The Linux pid is that of the Windows process itself (``wine`` execs it), so
        a SIGINT sent to it arrives as a Ctrl+C console event, and SIGKILL ends it
        the way a crash would.
        """
        return subprocess.Popen(
            ["wine", str(self.python), *args], env=self.environ(False), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, encoding="utf-8",
            errors="replace",
        )

    def script(self, name: str, *args: str, timeout: float = 60,
               display: bool = False) -> dict[str, Any]:
        """Run ``tests/windows/scripts/NAME`` and return the JSON object it printed last."""
        done = self.run(windows_path(SCRIPTS / name), *args, timeout=timeout, display=display)
        for line in reversed(done.stdout.splitlines()):
            if line.startswith("{"):
                result: dict[str, Any] = json.loads(line)
                return result
        raise AssertionError(
            f"{name} {' '.join(args)} printed no JSON result (exit {done.returncode})\n"
            f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
        )


# A program for a daemon to supervise: it starts a helper (a grandchild of the
# daemon), says both Windows pids, then prints a line every 0.2 s.
CHILD = """\
import os, subprocess, sys, time
if sys.argv[1:] == ["helper"]:
    time.sleep(300)
    sys.exit()
helper = subprocess.Popen([sys.executable, __file__, "helper"])
print(f"{sys.argv[1]} pid {os.getpid()} helper {helper.pid}", flush=True)
i = 0
while True:
    print(f"{sys.argv[1]} line {i}", flush=True)
    i += 1
    time.sleep(0.2)
"""


def wait_for(predicate: Callable[[], bool], what: str, timeout: float,
             every: float = 0.2) -> None:
    """Poll ``predicate``: another OS's processes write files and registry, and
    there is nothing else to await."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def processes_with(marker: str) -> list[psutil.Process]:
    """Running Linux processes (zombies are not) whose (Windows) command line
    mentions ``marker``."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if any(marker in part for part in proc.info["cmdline"] or ()) and _running(proc):
            found.append(proc)
    return found


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class ServiceHost:
    """What the service tests share: names they install, ``sc`` and ``oshost_ctl.py``
    under Wine, and a cleanup that uninstalls and kills what is left."""

    def __init__(self, wine: WinePython, folder: Path) -> None:
        self.wine = wine
        self.folder = folder
        self.names: list[str] = []

    def name(self, stem: str) -> str:
        name = f"pw{stem}{uuid.uuid4().hex[:6]}"
        self.names.append(name)
        return name

    def ctl(self, action: str, arg: str = "") -> Any:
        return self.wine.script("oshost_ctl.py", action, arg, timeout=120)

    def sc(self, *args: str) -> tuple[int, str]:
        # Files, not pipes: sc starts services, which would keep a pipe open for ever.
        out = self.folder / f"sc-{uuid.uuid4().hex[:8]}.txt"
        for _ in range(_START_ATTEMPTS):
            with out.open("wb") as f:
                done = subprocess.run(["wine", "sc", *args], env=self.wine.environ(False),
                                      stdin=subprocess.DEVNULL, stdout=f,
                                      stderr=subprocess.STDOUT, timeout=120, check=False)
            text = out.read_text(errors="replace")
            if not _failed_to_start(done.returncode, text):
                break
        return done.returncode, text

    def sc_start(self, name: str) -> tuple[int, str]:
        """``sc start NAME``, once more if Wine's SCM could not bring the process up.

        Now and then a service's python.exe dies while Wine initialises it (the
        DLL-initialisation failure described above) and the SCM gives up after
        its timeout; Wine's sc then exits 1 and prints nothing (its message goes
        to a debug channel). The service is stopped by then, and nothing of it
        ran, so starting it again is what a user would do.
        """
        code, output = self.sc("start", name)
        if code != 0 and not output.strip() and self.ctl("status", name).get("state") == "stopped":
            code, output = self.sc("start", name)
        return code, output

    def report(self) -> str:
        """What a failed test's output shows: each service's status, the Wine system
        processes, and the ends of the files its programs wrote (events, logs, errors)."""
        parts = []
        for name in self.names:
            try:
                parts.append(f"status of {name}: {json.dumps(self.ctl('status', name))}")
            except (AssertionError, subprocess.TimeoutExpired) as e:
                parts.append(f"status of {name}: not readable ({str(e)[:200]})")
        system = [" ".join(p.info["cmdline"] or ()) for p in psutil.process_iter(["cmdline"])
                  if any(word in " ".join(p.info["cmdline"] or ())
                         for word in ("wineserver", "services.exe"))]
        parts.append("Wine server and SCM processes: " + ("; ".join(system) or "none"))
        for path in sorted(self.folder.rglob("*")):
            if path.suffix in (".log", ".jsonl", ".txt") and path.is_file():
                tail = path.read_text(errors="replace").splitlines()[-15:]
                parts.append(f"--- {path.relative_to(self.folder)} (last lines)\n"
                             + "\n".join(line[:300] for line in tail))
        return "\n".join(parts)

    def cleanup(self) -> None:
        for name in self.names:
            try:
                self.ctl("uninstall", name)
            except (AssertionError, subprocess.TimeoutExpired):
                pass  # a stuck service: its processes are killed below
        for proc in processes_with(windows_path(self.folder)):
            try:
                proc.kill()
            except psutil.Error:
                pass

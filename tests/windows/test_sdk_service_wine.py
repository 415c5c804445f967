"""The SDK's console mode on Windows, under Wine: ``python.exe report_sync.py run``.

The example service runs in the foreground of a Windows python.exe; Ctrl+C
(a console control event, which Python turns into SIGINT on another thread)
must set ``stop`` even while the function waits on it, and an uncaught
exception must exit 1 with its traceback. Installing under the SCM is the
Windows backend's, tested with it.
"""

from __future__ import annotations

import os
import signal
import subprocess

import pytest
from wine import REPO, WinePython, windows_path

pytestmark = pytest.mark.wine

EXAMPLE = REPO / "examples" / "sdk-service" / "report_sync.py"


def _popen(wine_python: WinePython, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    # The example reads its interval (and the failure switch) from the environment.
    saved = dict(wine_python.env)
    wine_python.env.update(env)
    try:
        return wine_python.popen(*args)
    finally:
        wine_python.env.clear()
        wine_python.env.update(saved)


def test_ctrl_c_stops_the_foreground_run(wine_python: WinePython) -> None:
    """Ctrl+C sets stop while the function waits on it; it returns and the exit code is 0."""
    proc = _popen(wine_python, {"REPORT_SYNC_INTERVAL": "0.2"}, windows_path(EXAMPLE), "run")
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "synced" in line:
                break
        os.kill(proc.pid, signal.SIGINT)  # Wine delivers it as a Ctrl+C console event
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert "stopped cleanly" in output


def test_uncaught_exception_exits_1_with_traceback(wine_python: WinePython) -> None:
    """An exception escaping the function is printed with its traceback and exits 1."""
    proc = _popen(wine_python, {"REPORT_SYNC_FAIL": "1"}, windows_path(EXAMPLE), "run")
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, output
    assert "Traceback (most recent call last)" in output
    assert "RuntimeError: the report share is unreachable" in output

"""The whole daemon on Windows, under Wine: ``python.exe -m procward run -c FILE``.

One service (a python program that starts a helper of its own and prints a
line five times a second) is started by the daemon; its output must land in
its log file; then the daemon is stopped, by Ctrl+C or by being killed
outright, and no process of the service's tree may be left.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from wine import WinePython, processes_with, wait_for, windows_path

pytestmark = pytest.mark.wine

SERVICE = """\
import os, subprocess, sys, time
if sys.argv[1:] == ["helper"]:
    time.sleep(120)
    sys.exit()
helper = subprocess.Popen([sys.executable, __file__, "helper"])
print(f"service pid {os.getpid()} helper {helper.pid}", flush=True)
i = 0
while True:
    print(f"tick {i}", flush=True)
    i += 1
    time.sleep(0.2)
"""


@pytest.fixture
def daemon(wine_python: WinePython, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """A running daemon supervising one service whose output has reached its log."""
    script = tmp_path / "service.py"
    script.write_text(SERVICE)
    config = tmp_path / "procward.toml"
    config.write_text(
        '[procward]\nlog_dir = "logs"\nstate_dir = "state"\n\n'
        '[api]\nlisten = "127.0.0.1:0"\n\n'
        "[services.ticker]\n"
        f"command = ['{windows_path(wine_python.python)}', '{windows_path(script)}']\n"
        'stop_timeout = "3s"\n'
    )
    proc = wine_python.popen("-m", "procward", "run", "-c", windows_path(config))
    log = tmp_path / "logs" / "ticker.out.log"
    try:
        wait_for(lambda: log.exists() and "tick 2\n" in log.read_text(errors="replace"),
                 "three lines in logs/ticker.out.log", 60)
        yield proc, tmp_path
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


Daemon = tuple[subprocess.Popen[str], Path]


def test_ctrl_c_stops_the_daemon_and_its_service(daemon: Daemon) -> None:
    """Output reaches the log; Ctrl+C stops the service and the daemon exits 0, leaving nothing."""
    proc, folder = daemon
    marker = windows_path(folder / "service.py")
    log = (folder / "logs" / "ticker.out.log").read_text()
    assert log.startswith("service pid ")
    assert len(processes_with(marker)) == 2  # the service and its helper
    os.kill(proc.pid, signal.SIGINT)  # Wine delivers it as a Ctrl+C console event
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert "received INT: stopping all services" in output
    assert "procward stopped" in (folder / "logs" / "procward.events.jsonl").read_text()
    assert processes_with(marker) == []


def test_killing_the_daemon_leaves_no_service_process(daemon: Daemon) -> None:
    """A daemon killed outright takes its services with it: the Job Objects die with it."""
    proc, folder = daemon
    marker = windows_path(folder / "service.py")
    assert len(processes_with(marker)) == 2
    proc.kill()
    proc.communicate(timeout=30)
    wait_for(lambda: not processes_with(marker), "the service tree to end", 10)

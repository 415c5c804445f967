"""``procward.Service``: the SDK example run as a user runs it, in real child processes.

Foreground ``run`` with a real SIGINT, ``host`` against a datagram socket the
test listens on as systemd would, and the registration commands on a machine
where systemd is not running (their clear error; ``--dry-run`` for what they
would register).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import procward

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

EXAMPLE = Path(__file__).parents[1] / "examples" / "sdk-service" / "report_sync.py"


class Child:
    """The example script in a child process, its stdout read line by line."""

    def __init__(self, script: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(script), *args], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
            env={**os.environ, "REPORT_SYNC_INTERVAL": "0.2", **(env or {})},
        )

    def wait_line(self, needle: str) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if needle in line:
                return
        raise AssertionError(f"{needle!r} never printed")

    def finish(self) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, out, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def test_run_in_the_foreground_stops_on_ctrl_c() -> None:
    """`script.py run` runs the function; SIGINT (Ctrl+C) sets stop, the function
    returns, and the process exits 0."""
    child = Child(EXAMPLE, "run")
    try:
        child.wait_line("synced")
        child.proc.send_signal(signal.SIGINT)
        code, out, err = child.finish()
    finally:
        child.kill()
    assert code == 0, err
    assert "stopped cleanly" in out
    assert "Traceback" not in err


def test_sigterm_stops_the_foreground_run_too() -> None:
    """SIGTERM (what `kill` and container runtimes send) stops it the same way."""
    child = Child(EXAMPLE, "run")
    try:
        child.wait_line("synced")
        child.proc.send_signal(signal.SIGTERM)
        code, out, _ = child.finish()
    finally:
        child.kill()
    assert code == 0 and "stopped cleanly" in out


def test_uncaught_exception_exits_1_with_traceback() -> None:
    """An exception escaping the function is logged with its traceback and exits 1,
    so the OS manager's recovery applies."""
    child = Child(EXAMPLE, "run", env={"REPORT_SYNC_FAIL": "1"})
    try:
        code, _, err = child.finish()
    finally:
        child.kill()
    assert code == 1
    assert "Traceback (most recent call last)" in err
    assert "RuntimeError: the report share is unreachable" in err


def test_host_reports_ready_and_stopping_to_systemd(tmp_path: Path) -> None:
    """`script.py host` (what the installed unit runs) sends READY=1 once the function
    runs and STOPPING=1 when systemd's SIGTERM arrives, then exits 0."""
    address = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(address))
    listener.settimeout(20)
    child = Child(EXAMPLE, "host", env={"NOTIFY_SOCKET": str(address)})
    try:
        assert "READY=1" in listener.recv(4096).decode().splitlines()
        child.wait_line("synced")
        child.proc.send_signal(signal.SIGTERM)
        assert "STOPPING=1" in listener.recv(4096).decode().splitlines()
        code, out, _ = child.finish()
    finally:
        child.kill()
        listener.close()
    assert code == 0 and "stopped cleanly" in out


def test_help_lists_the_verbs() -> None:
    """The script's --help offers install, uninstall, start, stop, status and run."""
    done = subprocess.run([sys.executable, str(EXAMPLE), "--help"], capture_output=True,
                          text=True, timeout=30, check=False)
    assert done.returncode == 0
    assert "{install,uninstall,start,stop,status,run}" in done.stdout


@pytest.mark.skipif(sys.platform != "linux", reason="the systemd backend")
def test_install_dry_run_registers_python_script_host() -> None:
    """install --dry-run prints a unit running `python ABS_SCRIPT host` from the script's
    folder, and changes nothing."""
    done = subprocess.run([sys.executable, str(EXAMPLE), "install", "--dry-run"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert f"ExecStart={sys.executable} {EXAMPLE} host" in lines
    assert f"WorkingDirectory={EXAMPLE.parent}" in lines
    assert "Description=Copies the day's reports every few seconds (a procward SDK example)" \
        in lines
    # The note on its first line names the program's own uninstall, not procward's.
    assert f"`{EXAMPLE.name} uninstall` removes it." in done.stdout
    user = subprocess.run([sys.executable, str(EXAMPLE), "install", "--user", "--dry-run"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert f"`{EXAMPLE.name} uninstall --user` removes it." in user.stdout


@pytest.mark.skipif(sys.platform != "linux" or os.path.isdir("/run/systemd/system"),
                    reason="needs Linux without systemd running")
@pytest.mark.parametrize("verb", ["install --user", "status --user", "stop --user"])
def test_without_systemd_registration_is_a_clear_error(verb: str) -> None:
    """Where systemd is not running, install/status/stop say so (exit 1), no traceback."""
    done = subprocess.run([sys.executable, str(EXAMPLE), *verb.split()], capture_output=True,
                          text=True, timeout=30, check=False)
    assert done.returncode == 1
    assert "systemd is not the init system" in done.stderr or "systemctl" in done.stderr
    assert "Traceback" not in done.stderr
    # What runs it without systemd is the program's own `run`, not `procward run`.
    assert f"`{EXAMPLE.name} run`" in done.stderr and "procward run" not in done.stderr


@pytest.mark.skipif(sys.platform != "linux" or shutil.which("setpriv") is None
                    or os.geteuid() != 0, reason="drops root with setpriv")
def test_install_as_ordinary_user_says_sudo_or_user(tmp_path: Path) -> None:
    """An ordinary user installing a system service is told to use sudo or --user."""
    done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           sys.executable, str(EXAMPLE), "install"], cwd="/",
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 1
    assert "sudo" in done.stderr and "--user" in done.stderr
    assert "Nothing was changed" in done.stderr


def test_import_procward_stays_light() -> None:
    """`import procward` does not import the SDK, asyncio or pydantic until used."""
    probe = ("import sys, procward; heavy = [m for m in ('procward.service', 'asyncio', "
             "'pydantic') if m in sys.modules]; print(heavy)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=30, check=True)
    assert done.stdout.strip() == "[]"


def test_host_logs_an_uncaught_exception_for_the_journal(tmp_path: Path) -> None:
    """Under systemd, the traceback of an uncaught exception goes to stderr with journal
    error priority on every line, and the exit code is 1 (so Restart=on-failure applies)."""
    address = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(address))
    child = Child(EXAMPLE, "host", env={"NOTIFY_SOCKET": str(address),
                                        "REPORT_SYNC_FAIL": "1"})
    try:
        code, _, err = child.finish()
    finally:
        child.kill()
        listener.close()
    assert code == 1
    lines = [line for line in err.splitlines() if line]
    assert lines and all(line.startswith("<3>") for line in lines)
    assert "<3>RuntimeError: the report share is unreachable" in lines


def test_stop_on_signals_sets_stop_and_restores_handlers() -> None:
    """Within the block SIGTERM sets the event (no work in the handler); afterwards the
    previous handler is back."""
    import threading

    from procward.oshost._hosting import stop_on_signals

    before = signal.getsignal(signal.SIGTERM)
    stop = threading.Event()
    with stop_on_signals(stop):
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(10)
    assert signal.getsignal(signal.SIGTERM) is before


def test_cli_without_a_main_function_is_a_usage_error(tmp_path: Path) -> None:
    """Forgetting @svc.main is exit 2 with a message saying what to add, not a traceback."""
    script = tmp_path / "svc.py"
    script.write_text("import procward\nprocward.Service('Nothing').cli()\n")
    done = subprocess.run([sys.executable, str(script), "run"], capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 2
    assert "@svc.main" in done.stderr and "Traceback" not in done.stderr


def test_the_stopping_report_goes_out_before_the_function_returns() -> None:
    """A function that returns the moment `stop` is set must not beat the "stopping"
    report: the host closes its channel (systemd) or reports STOPPED (SCM) next.

    The reporter here is a recorder with a slow ``stopping`` (no manager is
    involved: the race is between two threads of this process).
    """
    said: list[str] = []

    class SlowReporter:
        def ready(self) -> None:
            said.append("ready")

        def stopping(self, wait_hint: float) -> None:
            time.sleep(0.3)
            said.append("stopping")

    svc = procward.Service("RaceTest")
    stop = threading.Event()

    @svc.main
    def run(stop: threading.Event) -> None:
        stop.set()  # as a signal would, then return at once

    assert svc._body(stop, SlowReporter()) == 0  # type: ignore[arg-type]
    assert said == ["ready", "stopping"]

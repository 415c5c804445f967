"""`procward run` as a user runs it: a real daemon process, real signals, real children."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from procward.testing import python

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def _toml_list(argv: list[str]) -> str:
    return json.dumps(argv)


class Daemon:
    """A `procward run` process whose output a test can wait on line by line."""

    def __init__(self, config: Path, *extra: str, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "procward", "run", "-c", str(config), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})}, cwd=cwd,
        )
        assert self.proc.stdout is not None
        self._fd = self.proc.stdout.fileno()
        self.lines: list[str] = []
        self._partial = b""

    def _read(self, timeout: float) -> bool:
        # Raw reads: a buffered reader would hide lines from select().
        with selectors.DefaultSelector() as sel:
            sel.register(self._fd, selectors.EVENT_READ)
            if not sel.select(timeout):
                return True
        data = os.read(self._fd, 65536)
        if not data:
            return False
        *complete, self._partial = (self._partial + data).split(b"\n")
        self.lines.extend(line.decode(errors="replace") for line in complete)
        return True

    def wait_line(self, needle: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines:
                if needle in line:
                    return line
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._read(remaining):
                raise AssertionError(f"no line with {needle!r}; output so far:\n"
                                     + "\n".join(self.lines))

    def finish(self, timeout: float = 15.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._read(deadline - time.monotonic()):
            pass
        return self.proc.wait(timeout=max(0.1, deadline - time.monotonic()))

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        assert self.proc.stdout is not None
        self.proc.stdout.close()


def _pid_of(line: str) -> int:
    return int(line.split("(pid ")[1].rstrip(")"))


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_gone(pids: list[int], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(_gone(p) for p in pids):
            return True
        time.sleep(0.02)
    return False


def _hold(pids: list[int]) -> list[psutil.Process]:
    """Handles on processes that live now: killing one later cannot reach a
    process that has taken its pid since (psutil checks the create time)."""
    held = []
    for pid in pids:
        try:
            held.append(psutil.Process(pid))
        except psutil.Error:
            pass
    return held


def _kill_all(processes: list[psutil.Process]) -> None:
    for process in processes:
        try:
            process.kill()
        except psutil.Error:
            pass


TREE = """
import subprocess, sys, time
g = subprocess.Popen([sys.executable, '-S', '-c', 'import time; time.sleep(600)'])
print('grandchild', g.pid, flush=True)
time.sleep(600)
"""


def _write_config(tmp_path: Path, body: str) -> Path:
    cfg = tmp_path / "procward.toml"
    # Port 0: the API takes any free port, so tests never collide on 9771.
    cfg.write_text('[api]\nlisten = "127.0.0.1:0"\n' + body)
    return cfg


def _tree_config(tmp_path: Path) -> Path:
    return _write_config(tmp_path, f"""
[services.db]
command = {_toml_list(python(TREE))}
start_seconds = 0.1

[services.web]
command = {_toml_list(python("import time; time.sleep(600)"))}
depends_on = ["db"]
start_seconds = 0.1
""")


def _grandchild(tmp_path: Path) -> int:
    log = tmp_path / "logs" / "db.out.log"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if log.exists() and "grandchild" in log.read_text():
            return int(log.read_text().split()[1])
        time.sleep(0.02)
    raise AssertionError("the service never wrote its grandchild's pid")


def test_sigterm_stops_services_in_reverse_order_and_exits_0(tmp_path: Path) -> None:
    """SIGTERM stops dependents before dependencies, leaves no process, and exits 0."""
    d = Daemon(_tree_config(tmp_path))
    try:
        db = _pid_of(d.wait_line("db            running"))
        web = _pid_of(d.wait_line("web           running"))
        grandchild = _grandchild(tmp_path)
        d.proc.send_signal(signal.SIGTERM)
        assert d.finish() == 0
        out = "\n".join(d.lines)
        assert out.index("web           stopped") < out.index("db            stopping")
        assert _wait_gone([db, web, grandchild], timeout=2)
        assert "\033[" not in out  # plain text when not a terminal
    finally:
        d.kill()


def test_services_run_in_their_folders_and_a_relative_config_path_still_reloads(
        tmp_path: Path) -> None:
    """The daemon moves to its configuration's folder (so that services there start
    through posix_spawn); a service elsewhere still runs there, output reaches
    the logs either way, and a reload after SIGHUP rereads the file given by a
    path relative to where the daemon was started."""
    conf = tmp_path / "conf"
    (conf / "work").mkdir(parents=True)
    cfg = _write_config(conf, """
[services.here]
command = ["sh", "-c", "pwd; exec sleep 600"]
start_seconds = 0.1

[services.there]
command = ["sh", "-c", "pwd; exec sleep 600"]
cwd = "work"
start_seconds = 0.1
""")
    d = Daemon(Path("conf") / cfg.name, cwd=tmp_path)
    try:
        pids = [_pid_of(d.wait_line("here          running")),
                _pid_of(d.wait_line("there         running"))]
        for name, folder in (("here", conf), ("there", conf / "work")):
            assert (conf / "logs" / f"{name}.out.log").read_text() == f"{folder}\n"
        cfg.write_text(cfg.read_text() + """
[services.later]
command = ["sh", "-c", "exec sleep 600"]
start_seconds = 0.1
""")
        d.proc.send_signal(signal.SIGHUP)
        pids.append(_pid_of(d.wait_line("later         running")))
        d.proc.send_signal(signal.SIGTERM)
        assert d.finish() == 0
        assert _wait_gone(pids)
    finally:
        d.kill()


def test_a_relative_alert_command_is_the_configuration_folders(tmp_path: Path) -> None:
    """An alert sink's command runs in the configuration's folder, so a relative
    path names a script beside the file, wherever the daemon was started."""
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "page.sh").write_text('#!/bin/sh\necho "$PROCWARD_ALERT_SERVICE" > paged.txt\n')
    (conf / "page.sh").chmod(0o755)
    cfg = _write_config(conf, """
[alerts.sinks.pager]
type = "command"
command = ["./page.sh"]

[services.noisy]
command = ["sh", "-c", "echo 'ERROR 42'; exec sleep 600"]
start_seconds = 0.1

[[services.noisy.alerts]]
pattern = 'ERROR \\d+'
actions = ["pager"]
""")
    d = Daemon(Path("conf") / cfg.name, cwd=tmp_path)
    try:
        pid = _pid_of(d.wait_line("noisy         running"))
        paged = conf / "paged.txt"
        deadline = time.monotonic() + 15
        while not (paged.exists() and paged.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert paged.read_text() == "noisy\n"
        d.proc.send_signal(signal.SIGTERM)
        assert d.finish() == 0
        assert _wait_gone([pid])
    finally:
        d.kill()


def test_second_ctrl_c_kills_at_once(tmp_path: Path) -> None:
    """A second SIGINT kills services that are still taking their time to stop."""
    stubborn = python("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
                      " print('up', flush=True); time.sleep(600)")
    cfg = _write_config(tmp_path, f"""
[services.stubborn]
command = {_toml_list(stubborn)}
start_seconds = 0.1
stop_timeout = "60s"
""")
    d = Daemon(cfg)
    try:
        pid = _pid_of(d.wait_line("stubborn      running"))
        d.proc.send_signal(signal.SIGINT)
        d.wait_line("stopping all services")
        d.wait_line("stubborn      stopping")
        assert not _gone(pid)
        d.proc.send_signal(signal.SIGINT)
        d.wait_line("killing all services now")
        assert d.finish(timeout=5) == 0
        assert _wait_gone([pid], timeout=2)
    finally:
        d.kill()


def test_children_die_with_a_sigkilled_daemon_on_linux(tmp_path: Path) -> None:
    """On Linux the guardian ends every child tree the moment the daemon is SIGKILLed."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the guardian reads /proc")
    d = Daemon(_tree_config(tmp_path))
    held: list[psutil.Process] = []
    try:
        pids = [_pid_of(d.wait_line("db            running")),
                _pid_of(d.wait_line("web           running")), _grandchild(tmp_path)]
        held = _hold(pids)
        d.proc.kill()
        d.proc.wait()
        assert _wait_gone(pids), "children outlived their daemon"
    finally:
        _kill_all(held)
        d.kill()


def test_sigkilled_daemons_children_are_reaped_at_next_start(tmp_path: Path) -> None:
    """Children left by a SIGKILLed daemon (guardian gone too) are ended by the next start."""
    cfg = _tree_config(tmp_path)
    d = Daemon(cfg)
    held: list[psutil.Process] = []
    try:
        pids = [_pid_of(d.wait_line("db            running")),
                _pid_of(d.wait_line("web           running")), _grandchild(tmp_path)]
        held = _hold(pids)
        guardians = [p for p in psutil.Process(d.proc.pid).children()
                     if any("_guardian" in part for part in p.cmdline())]
        # Take the guardian away first, as on a system without one.
        for g in guardians:
            g.kill()
        d.proc.kill()
        d.proc.wait()
        time.sleep(0.2)
        assert not any(_gone(p) for p in pids), "children should have survived for this test"
        second = Daemon(cfg)
        try:
            second.wait_line("left by a previous procward")
            assert _wait_gone(pids, timeout=5)
            second.wait_line("web           running")
            second.proc.send_signal(signal.SIGINT)
            assert second.finish() == 0
        finally:
            second.kill()
    finally:
        _kill_all(held)
        d.kill()


def test_open_files_limit_is_raised_to_the_hard_limit(tmp_path: Path) -> None:
    """The daemon raises its open-files soft limit to the hard limit at start."""
    import resource

    cfg = _write_config(tmp_path, f"""
[services.fd]
command = {_toml_list(python("import resource; print(resource.getrlimit(resource.RLIMIT_NOFILE))"))}
restart = "never"
start_seconds = 0
""")
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard < 512:
        pytest.skip("needs a finite hard limit above 512 to observe the raise")
    # Start the daemon with a low soft limit so that raising it is observable.
    proc = subprocess.Popen(
        [sys.executable, "-c",
         f"import resource; resource.setrlimit(resource.RLIMIT_NOFILE, (256, {hard}));"
         f" from procward.cli import main; raise SystemExit(main(['run', '-c', {str(cfg)!r}]))"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        log = tmp_path / "logs" / "fd.out.log"
        while not (log.exists() and log.read_text()) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert log.read_text().strip() == str((hard, hard))
        events = [json.loads(x) for x in (tmp_path / "logs" / "procward.events.jsonl")
                  .read_text().splitlines()]
        assert events[0]["open_files_limit"] == hard
        assert events[0]["open_files_limit_was"] == 256
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=15)


def test_second_daemon_on_the_same_state_dir_is_refused(tmp_path: Path) -> None:
    """Two daemons never share a state dir: the second says so and exits 1."""
    cfg = _write_config(tmp_path, f"""
[services.s]
command = {_toml_list(python("import time; time.sleep(600)"))}
""")
    d = Daemon(cfg)
    try:
        d.wait_line("s             starting")
        r = subprocess.run([sys.executable, "-m", "procward", "run", "-c", str(cfg)], check=False,
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 1
        assert "another procward is running" in r.stderr
        d.proc.send_signal(signal.SIGINT)
        assert d.finish() == 0
    finally:
        d.kill()


@pytest.mark.parametrize("problem", ["port in use", "bad TLS file"])
def test_an_api_that_cannot_start_fails_the_start_before_any_spawn(
        tmp_path: Path, problem: str) -> None:
    """The API binds and loads its TLS files before the first service starts: the
    daemon exits 1 saying why, and the service's program never ran."""
    import socket

    marker = tmp_path / "ran"
    service = f"""
[services.s]
command = {_toml_list(python(f"open({str(marker)!r}, 'w').close()"))}
"""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        if problem == "port in use":
            api = f'listen = "127.0.0.1:{taken.getsockname()[1]}"'
            expected = "cannot listen on"
        else:
            (tmp_path / "cert.pem").write_text("not a certificate\n")
            (tmp_path / "key.pem").write_text("not a key\n")
            api = 'listen = "127.0.0.1:0"\ntls_cert = "cert.pem"\ntls_key = "key.pem"'
            expected = "cannot load its TLS files"
        cfg = tmp_path / "procward.toml"
        cfg.write_text(f"[api]\n{api}\n{service}")
        r = subprocess.run([sys.executable, "-m", "procward", "run", "-c", str(cfg)],
                           check=False, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stdout + r.stderr
    assert expected in r.stderr
    assert not marker.exists()
    events = [json.loads(line) for line in
              (tmp_path / "logs" / "procward.events.jsonl").read_text().splitlines()]
    assert events and not [e for e in events if e.get("state") == "starting"]
    assert not (tmp_path / "state" / "api.json").exists()


def test_colour_only_when_asked_or_on_a_terminal(tmp_path: Path) -> None:
    """FORCE_COLOR gives coloured event lines; NO_COLOR and pipes give plain ones."""
    cfg = _write_config(tmp_path, f"""
[services.s]
command = {_toml_list(python("pass"))}
restart = "never"
start_seconds = 0
""")
    d = Daemon(cfg, env={"FORCE_COLOR": "1"})
    try:
        line = d.wait_line("exited")
        assert "\033[" in line
        d.proc.send_signal(signal.SIGINT)
        assert d.finish() == 0
    finally:
        d.kill()

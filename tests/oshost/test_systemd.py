"""The systemd backend: unit text (golden files and ``systemd-analyze verify``), the
sd_notify exchange with a real ``procward service host`` process, and the refusals.

systemd does not run on the test machines (no /run/systemd/system), so
``systemctl`` itself is never called: what would be run is tested as data
(``install_commands``), and the real command line's clear error is tested.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from procward.oshost import NotPrivileged, OsHostError, ServiceSpec
from procward.oshost.systemd import MARKER, NotifyChannel, SystemdManager, render_unit

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="systemd is Linux")

GOLDEN = Path(__file__).parent / "golden"
# Regenerate the golden files after a deliberate change with PROCWARD_UPDATE_GOLDEN=1.
UPDATE = os.environ.get("PROCWARD_UPDATE_GOLDEN") == "1"


def _specs(python: str) -> dict[str, ServiceSpec]:
    """The units the golden files pin; ``python`` is the program path (it must exist for
    ``systemd-analyze verify``, which checks that ExecStart is executable)."""
    daemon = [python, "-m", "procward", "service", "host", "--name", "procward",
              "-c", "/etc/procward/procward.toml"]
    return {
        "daemon-system": ServiceSpec(
            name="procward", argv=daemon, description="procward supervising /etc/procward",
            working_dir=Path("/etc/procward"), stop_budget=25.0, watchdog=30.0,
            reload_argv=[python, "-m", "procward", "reload", "-c", "/etc/procward/procward.toml"],
        ),
        "daemon-user": ServiceSpec(
            name="procward-dev", argv=daemon, user_scope=True, stop_budget=10.0,
            watchdog=30.0, working_dir=Path("/home/ann/project"), start_type="manual",
        ),
        "sdk-account-deps": ServiceSpec(
            name="ReportSync", argv=[python, "/opt/report sync/svc.py", "host"],
            display_name="Report sync", account="reports",
            depends_on=["systemd-journald", "network-online.target"],
            env={"TOKEN_FILE": "/etc/reports/token", "GREETING": 'say "hi" 100%'},
            working_dir=Path("/opt/report sync"), restart_delay=2.5,
        ),
        "quoting": ServiceSpec(
            name="web.api", argv=[python, "-c", "print('it''s $HOME at 50%')", "a;b", ""],
            description="quotes, $, % and ; in arguments",
        ),
    }


@pytest.mark.parametrize("key", sorted(_specs("/usr/bin/python3")))
def test_unit_matches_golden_file(key: str) -> None:
    """Each unit renders exactly as its reviewed golden file."""
    text = render_unit(_specs("/usr/bin/python3")[key])
    path = GOLDEN / f"{key}.service"
    if UPDATE:
        path.write_text(text)
    assert text == path.read_text()


def _analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        if os.environ.get("PROCWARD_REQUIRE_SYSTEMD_ANALYZE") == "1":
            pytest.fail("systemd-analyze is missing and PROCWARD_REQUIRE_SYSTEMD_ANALYZE=1 "
                        "(scripts/setup-systemd-analyze installs it)")
        pytest.skip("systemd-analyze is not installed (scripts/setup-systemd-analyze)")
    return found


def _verify(
    unit_text: str, name: str, folder: Path, *, user: bool
) -> subprocess.CompletedProcess[str]:
    path = folder / f"{name}.service"
    path.write_text(unit_text)
    runtime = folder / "runtime"
    runtime.mkdir(exist_ok=True, mode=0o700)
    # --user needs a runtime folder to set up its manager; a private one will do.
    env = {**os.environ, "SYSTEMD_LOG_COLOR": "0", "XDG_RUNTIME_DIR": str(runtime)}
    command = [_analyze(), *(["--user"] if user else []), "verify", str(path)]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=folder,
                          timeout=60, check=False)


@pytest.mark.parametrize("key", sorted(_specs("/usr/bin/python3")))
def test_unit_passes_systemd_analyze_verify(key: str, tmp_path: Path) -> None:
    """systemd-analyze verify accepts each unit with exit 0 and not one line of output
    (it exits 0 on settings it could not parse, printing only a warning)."""
    spec = _specs(sys.executable)[key]
    done = _verify(render_unit(spec), spec.name, tmp_path, user=spec.user_scope)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_verify_check_can_fail(tmp_path: Path) -> None:
    """A unit with a typo'd setting value does produce output, so the check above can fail."""
    spec = _specs(sys.executable)["daemon-system"]
    broken = render_unit(spec).replace("Type=notify", "Type=notifyy")
    done = _verify(broken, spec.name, tmp_path, user=False)
    assert "notifyy" in done.stdout + done.stderr


def test_unit_settings_the_design_requires() -> None:
    """The daemon's unit is Type=notify with a watchdog, restarts on failure, mixed kill,
    and gives the stop more time than the services' own stop timeouts."""
    text = render_unit(_specs("/usr/bin/python3")["daemon-system"])
    lines = set(text.splitlines())
    assert {"Type=notify", "WatchdogSec=30s", "Restart=on-failure", "KillMode=mixed",
            "WantedBy=multi-user.target"} <= lines
    stop = next(line for line in lines if line.startswith("TimeoutStopSec="))
    assert float(stop.removeprefix("TimeoutStopSec=").rstrip("s")) > 25.0
    assert text.startswith(MARKER)


@pytest.mark.parametrize(("change", "message"), [
    ({"argv": ["python3", "app.py"]}, "absolute path"),
    ({"name": "my service"}, "cannot be a systemd unit name"),
    ({"user_scope": True, "account": "bob"}, "--account is for system services"),
    ({"description": "two\nlines"}, "one line"),
    ({"working_dir": Path("relative")}, "must be absolute"),
    ({"account": "CORP\\svc-web"}, "is not a user name"),
])
def test_bad_specs_are_refused(change: dict[str, object], message: str) -> None:
    """A spec systemd would misread is refused with a message saying what to change."""
    fields: dict[str, object] = {"name": "ok", "argv": ["/usr/bin/python3"], **change}
    with pytest.raises(OsHostError, match=message):
        render_unit(ServiceSpec(**fields))  # type: ignore[arg-type]


def test_install_commands() -> None:
    """Install reloads systemd and enables with --now for auto start; manual only reloads;
    --user goes to the user's manager and unit folder."""
    mgr = SystemdManager()
    auto = ServiceSpec(name="a", argv=["/bin/true"])
    assert mgr.install_commands(auto) == [["systemctl", "daemon-reload"],
                                          ["systemctl", "enable", "--now", "a.service"]]
    manual = ServiceSpec(name="a", argv=["/bin/true"], start_type="manual", user_scope=True)
    assert mgr.install_commands(manual) == [["systemctl", "--user", "daemon-reload"]]
    assert mgr.uninstall_commands("a", user_scope=True)[0] == [
        "systemctl", "--user", "disable", "--now", "a.service"]
    assert mgr.unit_path("a") == Path("/etc/systemd/system/a.service")
    assert mgr.unit_path("a", user_scope=True).parts[-3:] == ("systemd", "user", "a.service")


@pytest.mark.skipif(os.path.isdir("/run/systemd/system"), reason="systemd runs here")
def test_no_systemd_is_a_clear_error() -> None:
    """Where systemd is not the init system, every operation says so and what to do."""
    with pytest.raises(OsHostError, match=r"systemd is not the init system|systemctl is not"):
        SystemdManager().check_systemd()
    with pytest.raises(OsHostError, match="procward run"):
        SystemdManager().status("procward")


@pytest.mark.skipif(os.geteuid() == 0, reason="runs as root")
def test_not_root_is_refused_for_a_system_unit() -> None:
    """Without root a system unit is refused, naming sudo and --user (a --user unit is not)."""
    with pytest.raises(NotPrivileged, match=r"sudo.*--user"):
        SystemdManager().check_privileges(user_scope=False)
    SystemdManager().check_privileges(user_scope=True)


def test_abstract_namespace_address() -> None:
    """An '@' address names a socket in the abstract namespace, as sd_notify(3) says."""
    channel = NotifyChannel("@procward-test")
    try:
        assert channel._target == "\0procward-test"
    finally:
        channel.close()


class _FakeSystemdSocket:
    """The datagram socket systemd would listen on for a unit's notifications."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "notify.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.messages: list[str] = []

    def index(self, assignment: str, after: int = -1) -> int | None:
        """Where the first message after ``after`` carrying ``assignment`` is, if any."""
        return next((i for i, m in enumerate(self.messages)
                     if i > after and assignment in m.splitlines()), None)

    def wait_for(self, assignment: str, after: int = -1, timeout: float = 20.0) -> int:
        deadline = time.monotonic() + timeout
        while self.index(assignment, after) is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {assignment}; got {self.messages}")
            self.sock.settimeout(remaining)
            self.messages.append(self.sock.recv(4096).decode())
        found = self.index(assignment, after)
        assert found is not None
        return found

    def close(self) -> None:
        self.sock.close()


def test_host_speaks_sd_notify_and_keeps_it_from_children(tmp_path: Path) -> None:
    """Run by systemd, `procward service host` sends READY=1, then WATCHDOG=1 pings, then
    STOPPING=1 on SIGTERM and exits 0; its children never see systemd's variables."""
    seen = tmp_path / "child-env.json"
    child = textwrap.dedent(f"""
        import json, os, time
        keys = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
        with open({str(seen)!r} + ".tmp", "w") as f:
            json.dump({{k: os.environ.get(k) for k in keys}}, f)
        os.replace({str(seen)!r} + ".tmp", {str(seen)!r})
        time.sleep(120)
    """)
    config = tmp_path / "procward.toml"
    # Port 0: the daemon's API takes any free port, never colliding with another test.
    config.write_text('[api]\nlisten = "127.0.0.1:0"\n'
                      f"[services.child]\ncommand = {json.dumps([sys.executable, '-c', child])}\n"
                      'stop_timeout = "5s"\n')
    systemd = _FakeSystemdSocket(tmp_path)
    env = {**os.environ, "NOTIFY_SOCKET": str(systemd.path), "WATCHDOG_USEC": "2000000"}
    log = (tmp_path / "host.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "procward", "service", "host", "--name", "t", "-c", str(config)],
        env=env, stdout=log, stderr=log,
    )
    try:
        ready = systemd.wait_for("READY=1")
        # Pings go on once running (they may also come while it starts).
        systemd.wait_for("WATCHDOG=1", after=ready)
        deadline = time.monotonic() + 20
        while not seen.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        stopping = systemd.wait_for("STOPPING=1")
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        systemd.close()
        log.close()
    assert ready < stopping
    leaked = json.loads(seen.read_text())
    assert leaked["NOTIFY_SOCKET"] != str(systemd.path)
    assert leaked["WATCHDOG_USEC"] is None and leaked["WATCHDOG_PID"] is None


def test_host_reports_a_bad_configuration_and_exits_2(tmp_path: Path) -> None:
    """A configuration that became invalid after install is logged at error priority for the
    journal, and the host exits 2 without ever reporting READY."""
    config = tmp_path / "procward.toml"
    config.write_text('[services.x]\ncommand = ["/bin/true"]\nrestart = "sometimes"\n')
    systemd = _FakeSystemdSocket(tmp_path)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "procward", "service", "host", "--name", "t",
             "-c", str(config)],
            env={**os.environ, "NOTIFY_SOCKET": str(systemd.path)},
            capture_output=True, text=True, timeout=60, check=False,
        )
        systemd.sock.setblocking(False)
        try:
            while True:
                systemd.messages.append(systemd.sock.recv(4096).decode())
        except BlockingIOError:
            pass
    finally:
        systemd.close()
    assert done.returncode == 2
    assert "<3>" in done.stderr and "restart" in done.stderr
    assert not any("READY=1" in m for m in systemd.messages)


def test_watchdog_holds_a_body_to_its_alive_calls(tmp_path: Path) -> None:
    """Once a body has called alive(), pings stop when its calls stop (so systemd restarts a
    hung daemon) and resume with the next call."""
    from procward.oshost.systemd import _NotifyReporter, _WatchdogFeeder

    systemd = _FakeSystemdSocket(tmp_path)
    channel = NotifyChannel(str(systemd.path), watchdog=0.2)
    reporter = _NotifyReporter(channel)
    reporter.last_alive = time.monotonic() - 100  # alive once, long ago: the body is stuck
    feeder = _WatchdogFeeder(channel, reporter)
    feeder.start()
    try:
        systemd.sock.settimeout(1.0)  # five half-periods: a ping would have come by now
        with pytest.raises(TimeoutError):
            systemd.sock.recv(4096)
        reporter.alive()
        systemd.wait_for("WATCHDOG=1")
    finally:
        feeder.stop()
        channel.close()
        systemd.close()

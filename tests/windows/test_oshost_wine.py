"""The Windows SCM backend against Wine's real Service Control Manager.

Services are installed through ``procward.oshost.windows`` by a Windows python
(``scripts/oshost_ctl.py``), started and stopped with Wine's ``sc.exe`` or the
manager, and hosted by python.exe itself (``scripts/oshost_service.py``).

What Wine 8 cannot show, and how it is covered instead (each test says so too):

- its ``sc.exe`` has no ``qc``: the configuration is read back with
  QueryServiceConfig/QueryServiceConfig2 and from the service's registry key,
  where Windows' SCM keeps it too (and where ``sc qc`` gets it from);
- its SCM lacks the QueryServiceConfig2/ChangeServiceConfig2 levels for the
  delayed-start and failure-actions flags, and accepts but drops the failure
  actions themselves: the flags are checked in the registry values the
  backend writes when a level is missing, the actions as the value passed to
  ChangeServiceConfig2; restarting after a failure is never executed;
- it ignores a service's ``Environment`` value and its account (every service
  runs as the Wine user): both are checked as recorded, not as applied;
- its Event Log records nothing (ReportEvent is a stub that writes to Wine's
  debug channel): a log entry is checked as the ReportEvent call Wine traces.
"""

from __future__ import annotations

import getpass
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path, PureWindowsPath
from typing import Any

import pytest
from wine import CHILD, SCRIPTS, ServiceHost, WinePython, processes_with, wait_for, windows_path

pytestmark = pytest.mark.wine

# The value pywin32 reports as the service-specific exit code when SvcRun raised.
SERVICE_SPECIFIC_FAILURE = 0x20000001


class Scm(ServiceHost):
    """Installs through the backend, runs ``sc``, and cleans up after the test."""

    def install(self, name: str, argv: list[str], **fields: Any) -> Any:
        return self.ctl("install", json.dumps({"name": name, "argv": argv, **fields}))

    def hosted(self, name: str, *args: str) -> list[str]:
        """The argv of a service python.exe hosts: ``oshost_service.py NAME ARGS``."""
        return [windows_path(self.wine.python), windows_path(SCRIPTS / "oshost_service.py"),
                name, *args]

    def status(self, name: str) -> dict[str, Any]:
        # Read-only, so asked again when a run printed nothing: once, on a loaded
        # machine, Wine ended one with exit 1 and no output at all (not the 0x42
        # of a failed DLL start that WinePython.run retries).
        for _ in range(2):
            try:
                result: dict[str, Any] = self.ctl("status", name)
                return result
            except AssertionError:
                pass
        result = self.ctl("status", name)
        return result


@pytest.fixture
def scm(wine_python: WinePython, tmp_path: Path) -> Iterator[Scm]:
    helper = Scm(wine_python, tmp_path)
    try:
        yield helper
    finally:
        helper.cleanup()


def test_install_records_command_start_type_account_dependencies_and_recovery(scm: Scm) -> None:
    """What ``sc qc`` would show is what the spec said; delayed start and recovery are set.

    Wine's sc has no ``qc``, so the configuration is read with QueryServiceConfig and
    from the service's registry key. Wine lacks the delayed-start and failure-actions
    flag levels (error 124, checked below), so the backend's registry values stand in
    for them; the failure actions are checked as the value passed to the SCM, which
    Wine accepts and drops. The account is recorded, never used, under Wine.
    """
    name = scm.name("cfg")
    folder = scm.folder / "with space"
    argv = [windows_path(scm.wine.python), "-m", "procward", "service", "host",
            "--name", name, "-c", windows_path(folder / "procward.toml")]
    answer = scm.install(name, argv, display_name="Config check", description="checks config",
                         start_type="delayed", account="NetworkService",
                         depends_on=["RpcSs", "Tcpip"], env={"GREETING": "hello world"},
                         working_dir=windows_path(folder), restart_delay=7.5,
                         reset_period=3600, stop_budget=20)
    assert answer == {"ok": True}
    config = scm.ctl("config", name)
    registry = config["registry"]
    # The binary path quoted as CreateProcess splits it: the folder with a space stays one.
    assert config["binary"] == subprocess.list2cmdline(argv)
    assert f'"{windows_path(folder / "procward.toml")}"' in config["binary"]
    assert config["start"] == 2  # SERVICE_AUTO_START, made delayed below
    assert config["account"] == r"NT AUTHORITY\NetworkService"
    assert config["display"] == "Config check"
    assert registry["DependOnService"] == ["RpcSs", "Tcpip"]
    assert config["config2"]["description"] == "checks config"
    assert registry["Environment"] == ["GREETING=hello world"]
    assert registry["Parameters\\WorkingDirectory"] == windows_path(folder)
    # The stop budget plus the one margin, STOP_MARGIN (15 s), in both.
    assert config["config2"]["preshutdown"] == 35_000
    assert registry["Parameters\\StopWaitHint"] == 35_000
    # The Event Log source, with pywin32's message file so entries show their text.
    assert config["event_source"].lower().endswith(".pyd")
    assert "servicemanager" in config["event_source"].lower()
    # Delayed start and "a non-zero exit counts as a failure": the SCM's answer where it
    # has the level, else the value the SCM keeps for it, written by the backend.
    for level, value in (("delayed", "DelayedAutostart"),
                         ("failure_actions_flag", "FailureActionsOnNonCrashFailures")):
        if config["config2"][level] == {"winerror": 124}:  # ERROR_INVALID_LEVEL: Wine
            assert registry[value] == 1
        else:
            assert config["config2"][level] is True
    actions = scm.ctl("failure_actions", json.dumps({"name": name, "argv": argv,
                                                      "restart_delay": 7.5,
                                                      "reset_period": 3600}))
    assert actions["ResetPeriod"] == 3600
    assert actions["Actions"] == [[1, 7500]] * 3  # SC_ACTION_RESTART after 7.5 s, thrice
    if isinstance(config["config2"]["failure_actions"], dict) and \
            "Actions" in config["config2"]["failure_actions"]:
        assert config["config2"]["failure_actions"]["Actions"] == [[1, 7500]] * 3

    again = scm.install(name, argv)
    assert again["error"] == "OsHostError"
    assert "already exists" in again["message"]


def test_accounts_are_recorded_as_the_scm_expects_them(scm: Scm) -> None:
    """LocalService, a virtual account and a user with a password; bad choices change nothing.

    Wine runs every service as its one user: only what is recorded can be checked.
    The user is Wine's own (named after the Unix user), the one account Wine knows;
    granting it "Log on as a service" succeeds, but Wine's LSA keeps no rights to
    read back.
    """
    argv = [windows_path(scm.wine.python), "-c", "pass"]
    expected = {}
    local = scm.name("acl")
    assert scm.install(local, argv, account="LocalService") == {"ok": True}
    expected[local] = r"NT AUTHORITY\LocalService"
    virtual = scm.name("acv")
    assert scm.install(virtual, argv, account=f"NT SERVICE\\{virtual}") == {"ok": True}
    expected[virtual] = f"NT SERVICE\\{virtual}"
    user = scm.name("acu")
    me = getpass.getuser()
    assert scm.install(user, argv, account=me, password="s3cret") == {"ok": True}
    expected[user] = f".\\{me}"
    for name, account in expected.items():
        assert scm.ctl("config", name)["account"] == account

    wrong_virtual = scm.name("acw")
    answer = scm.install(wrong_virtual, argv, account="NT SERVICE\\someone-else")
    assert "virtual account" in answer["message"]
    no_password = scm.name("acn")
    answer = scm.install(no_password, argv, account="svcuser")
    assert "needs a password" in answer["message"]
    nobody = scm.name("acx")
    answer = scm.install(nobody, argv, account="no-such-user", password="x")
    assert "no such account" in answer["message"]
    per_user = scm.name("acp")
    answer = scm.install(per_user, argv, user_scope=True)
    assert "no per-user services" in answer["message"]
    for name in (wrong_virtual, no_password, nobody, per_user):
        assert scm.status(name)["state"] == "not installed"


def test_controlling_a_missing_service_says_so(scm: Scm) -> None:
    """start, stop and uninstall of a name the SCM does not know raise OsHostError."""
    name = scm.name("gone")
    for action in ("start", "stop", "uninstall"):
        answer = scm.ctl(action, name)
        assert answer["error"] == "OsHostError", action
        assert "no such service is installed" in answer["message"], action


def _daemon_with_two_programs(scm: Scm, name: str, *host_args: str) -> list[Path]:
    """Install and ``sc start`` the hosted daemon on two programs (child.py alpha and
    beta, each with a helper); return their logs once each holds three lines."""
    folder = scm.folder
    script = folder / "child.py"
    script.write_text(CHILD)
    python = windows_path(scm.wine.python)
    (folder / "procward.toml").write_text(
        f"[procward]\nlog_dir = '{windows_path(folder / 'logs')}'\n"
        f"state_dir = '{windows_path(folder / 'state')}'\n\n"
        + "".join(f"[services.{svc}]\n"
                  f"command = ['{python}', '{windows_path(script)}', '{svc}']\n"
                  'stop_timeout = "3s"\n\n' for svc in ("alpha", "beta")))
    argv = scm.hosted(name, "daemon", windows_path(folder / "procward.toml"), *host_args)
    assert scm.install(name, argv, start_type="manual") == {"ok": True}
    code, output = scm.sc_start(name)
    assert code == 0, output
    logs = [folder / "logs" / f"{svc}.out.log" for svc in ("alpha", "beta")]
    for log in logs:
        wait_for(lambda log=log: log.exists() and " line 2\n" in log.read_text(errors="replace"),
                 f"three lines in {log.name}", 90)
    wait_for(lambda: scm.status(name)["state"] == "running", "the service to say RUNNING", 30)
    return logs


def test_sc_start_runs_the_daemon_and_sc_stop_leaves_no_process(scm: Scm) -> None:
    """The SCM hosts the real daemon: two services' lines reach their logs; stop ends all.

    After ``sc stop`` the service reports STOPPED with exit code 0, and no process of
    the daemon, its two services or their helpers is left; uninstall removes it.
    """
    folder, script = scm.folder, scm.folder / "child.py"
    name = scm.name("dmn")
    logs = _daemon_with_two_programs(scm, name)
    status = scm.status(name)
    assert status["pid"]
    code, output = scm.sc("query", name)
    assert "RUNNING" in output
    marker = windows_path(script)
    assert len(processes_with(marker)) == 4  # two services, a helper each
    # The Windows pids of each service and its helper, as they printed them.
    pids = [int(word) for log in logs
            for word in log.read_text().splitlines()[0].split()[2::2]]
    assert len(pids) == 4
    assert scm.ctl("alive", json.dumps([pids, marker])) == {"alive": pids}
    daemon = processes_with(windows_path(SCRIPTS / "oshost_service.py"))
    assert [p for p in daemon if name in p.cmdline()]

    code, output = scm.sc("stop", name)
    assert code == 0, output
    wait_for(lambda: scm.status(name)["state"] == "stopped", "the service to stop", 60)
    assert scm.status(name)["detail"] == "exit code 0"
    wait_for(lambda: not processes_with(marker), "the services' trees to end", 15)
    assert scm.ctl("alive", json.dumps([[*pids, status["pid"]], "oshost_service.py"])) == \
        {"alive": []}
    assert scm.ctl("alive", json.dumps([pids, marker])) == {"alive": []}
    wait_for(lambda: not [p for p in processes_with(name) if p.is_running()],
             "the daemon process to end", 15)
    events = (folder / "logs" / "procward.events.jsonl").read_text()
    assert "procward stopped" in events

    assert scm.ctl("uninstall", name) == {"ok": True}
    code, output = scm.sc("query", name)
    assert code != 0  # Wine's sc says nothing more; Windows adds "FAILED 1060"
    assert scm.status(name) == {"name": name, "installed": False, "state": "not installed",
                                "pid": None, "detail": ""}


@pytest.mark.parametrize("control", [5, 15], ids=["shutdown", "preshutdown"])
def test_system_shutdown_stops_the_daemon_and_its_programs_for_good(scm: Scm,
                                                                   control: int) -> None:
    """SHUTDOWN (5) and PRESHUTDOWN (15) stop the hosted daemon as ``sc stop`` does:
    STOPPED with exit code 0, both programs and their helpers ended, none started again.

    Tested at the level of the control handler: Wine's SCM never sends either control
    (there is no system shutdown to go through, and ControlService refuses both, as
    Windows' does), so ``oshost_service.py`` hands the control to the hosted service's
    ``ServiceCtrlHandlerEx``, as pywin32 does when the SCM sends one. What follows
    (SvcShutdown or SvcOtherEx, the daemon's stop, STOPPED reported) is the real path.
    """
    folder, script = scm.folder, scm.folder / "child.py"
    name = scm.name("shut")
    control_file = folder / "control"
    logs = _daemon_with_two_programs(scm, name, windows_path(control_file))
    daemon_pid = scm.status(name)["pid"]
    marker = windows_path(script)
    pids = [int(word) for log in logs for word in log.read_text().splitlines()[0].split()[2::2]]

    control_file.write_text(str(control))
    wait_for(lambda: scm.status(name)["state"] == "stopped", "the service to stop", 60)
    assert scm.status(name)["detail"] == "exit code 0"
    wait_for(lambda: not processes_with(marker), "the programs' trees to end", 15)
    assert scm.ctl("alive", json.dumps([[*pids, daemon_pid], "python"])) == {"alive": []}
    # Each program started once: the stop restarted nothing.
    for log in logs:
        starts = [line for line in log.read_text().splitlines() if " pid " in line]
        assert len(starts) == 1, log.read_text()[-500:]
    events = [json.loads(line) for line in
              (folder / "logs" / "procward.events.jsonl").read_text().splitlines()]
    assert not [e for e in events if e["message"].startswith("starting: restart")]
    assert events[-1]["message"] == "procward stopped"


def test_manager_start_waits_for_ready_and_stop_for_stopped(scm: Scm) -> None:
    """start() returns once the body said ready; the service runs in its working directory.

    The body records what it sees. Wine ignores the service's Environment value,
    so the recorded variable is not expected in the service, only in the registry.
    pywin32's DLLs (``pywin32_system32``) are not on the PATH the SCM gives the
    service, yet pywintypes loads from there: pywin32's .pth finds them at start.
    """
    out = scm.folder / "seen.json"
    name = scm.name("env")
    answer = scm.install(name, scm.hosted(name, "env", windows_path(out)), start_type="manual",
                         working_dir=windows_path(scm.folder), env={"GREETING": "hi"})
    assert answer == {"ok": True}
    assert scm.ctl("start", name) == {"ok": True}
    status = scm.status(name)
    assert status["state"] == "running"
    seen = json.loads(out.read_text())
    assert seen["cwd"] == windows_path(scm.folder)
    assert seen["pid"] == status["pid"]
    path = {k.upper(): v for k, v in seen["environ"].items()}["PATH"]
    assert "pywin32_system32" not in path.lower(), path
    assert PureWindowsPath(seen["pywintypes"].lower()).parent.name == "pywin32_system32", \
        seen["pywintypes"]
    assert scm.ctl("stop", name) == {"ok": True}
    assert scm.status(name)["state"] == "stopped"
    assert scm.status(name)["detail"] == "exit code 0"
    assert scm.ctl("stop", name) == {"ok": True}  # stopping a stopped service is no error

    # Uninstalling a running service stops it first.
    assert scm.ctl("start", name) == {"ok": True}
    pid = scm.status(name)["pid"]
    assert scm.ctl("uninstall", name) == {"ok": True}
    assert scm.status(name)["state"] == "not installed"
    wait_for(lambda: not [p for p in processes_with(name) if p.is_running()],
             f"the service process (Windows pid {pid}) to end", 15)


def sc_query(scm: Scm, name: str) -> dict[str, str]:
    """``sc query NAME`` as a dict: STATE, CHECKPOINT, WAIT_HINT, ... (first word of each)."""
    _, output = scm.sc("query", name)
    fields = {}
    for line in output.splitlines():
        key, sep, value = line.partition(":")
        if sep and value.split():
            fields[key.strip()] = value.split()[0]
    return fields


def test_slow_start_and_stop_are_pending_with_wait_hints(scm: Scm) -> None:
    """While the body starts, the SCM sees START_PENDING, its wait hint and a rising checkpoint.

    The body keeps reporting pending until the test opens its gate; only its ready()
    makes the service RUNNING (pywin32's own SvcRun would have said RUNNING at once).
    """
    gate = scm.folder / "gate"
    name = scm.name("slow")
    assert scm.install(name, scm.hosted(name, "gated", windows_path(gate)),
                       start_type="manual", stop_budget=12) == {"ok": True}
    code, output = scm.sc_start(name)
    assert code == 0, output
    # The body's own hint (45 s) follows host()'s first report (30 s) at once.
    wait_for(lambda: int(sc_query(scm, name)["WAIT_HINT"], 16) == 45_000,
             "the body's wait hint", 30)
    first = sc_query(scm, name)
    assert first["STATE"] == "2"  # START_PENDING
    wait_for(lambda: int(sc_query(scm, name)["CHECKPOINT"], 16) > int(first["CHECKPOINT"], 16),
             "the checkpoint to rise", 30)
    assert sc_query(scm, name)["STATE"] == "2"
    gate.write_text("")
    wait_for(lambda: sc_query(scm, name)["STATE"] == "4", "RUNNING after ready()", 30)
    assert sc_query(scm, name)["CHECKPOINT"] == "0x0"

    # Asked to stop, the SCM hears STOP_PENDING with the stop budget + 15 s as the wait
    # hint, until the body has ended.
    code, output = scm.sc("stop", name)
    assert code == 0, output
    stopping = sc_query(scm, name)
    assert stopping["STATE"] == "3"  # STOP_PENDING
    assert int(stopping["WAIT_HINT"], 16) == 27_000
    (scm.folder / "gate.stop").write_text("")
    wait_for(lambda: scm.status(name)["state"] == "stopped", "the service to stop", 30)
    assert scm.status(name)["detail"] == "exit code 0"


def test_a_body_that_raises_stops_the_service_with_a_service_specific_error(scm: Scm) -> None:
    """The service ends STOPPED with a non-zero service-specific exit code; start() says so.

    That exit code is what makes the failure actions apply (with the flag set at
    install). The traceback goes to the Event Log, which Wine does not record:
    see test_log_reaches_report_event for the call itself.
    """
    name = scm.name("err")
    assert scm.install(name, scm.hosted(name, "raise"), start_type="manual") == {"ok": True}
    answer = scm.ctl("start", name)
    assert answer["error"] == "OsHostError"
    assert "stopped as it started" in answer["message"]
    status = scm.status(name)
    assert status["state"] == "stopped"
    assert status["detail"] == f"exit code {SERVICE_SPECIFIC_FAILURE:#x} (service-specific)"
    wait_for(lambda: not processes_with(name), "the service process to end", 15)


def test_a_body_that_fails_slowly_as_it_starts_is_no_start(scm: Scm) -> None:
    """A body that says it is stopping while it starts, and ends in error later: start()
    must not take STOP_PENDING for "no longer starting, so started". It waits for the
    end and says the service stopped as it started (once, in a CI run under load, an
    install reported a start whose daemon had failed on a taken port)."""
    name = scm.name("slowerr")
    assert scm.install(name, scm.hosted(name, "raise-slowly"), start_type="manual") == {
        "ok": True}
    answer = scm.ctl("start", name)
    assert answer.get("error") == "OsHostError", answer
    assert "stopped as it started" in answer["message"]
    assert scm.status(name)["detail"] == \
        f"exit code {SERVICE_SPECIFIC_FAILURE:#x} (service-specific)"


def test_log_reaches_report_event(wine_python: WinePython) -> None:
    """log() writes to the Event Log as source "procward", errors as error events.

    Wine's ReportEvent records nothing but traces each call on its eventlog debug
    channel, which is what this test reads.
    """
    code = (
        "import servicemanager\n"
        "from procward.oshost._windows_host import EVENT_SOURCE, _ScmReporter\n"
        "servicemanager.Initialize(EVENT_SOURCE, servicemanager.__file__)\n"
        "reporter = _ScmReporter(None)\n"
        "reporter.log('error', 'Traceback (most recent call last):\\nRuntimeError: boom')\n"
        "reporter.log('info', 'all is well')\n"
    )
    env = dict(wine_python.environ(False), WINEDEBUG="-all,fixme+advapi,err+eventlog,"
                                                     "trace+eventlog")
    done = subprocess.run(["wine", str(wine_python.python), "-c", code], env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          errors="replace", timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    trace = done.stderr
    assert 'RegisterEventSourceW ((null),L"procward")' in trace
    # Type 0x0001 is EVENTLOG_ERROR_TYPE; Wine logs error events' text as errors.
    assert "ReportEventW (" in trace and ",0x0001," in trace
    assert 'err:eventlog:ReportEventW L"Traceback (most recent call last):\\nRuntimeError: boom"' \
        in trace
    assert 'trace:eventlog:ReportEventW L"all is well"' in trace


def test_host_from_a_console_says_to_run_in_the_foreground(wine_python: WinePython) -> None:
    """Not started by the SCM, host() fails with error 1063 turned into a clear message."""
    done = wine_python.run(windows_path(SCRIPTS / "oshost_service.py"), "pwconsole", "raise")
    assert done.returncode == 3, done.stdout + done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["error"] == "OsHostError"
    assert "1063" in answer["message"]
    assert "started from a console" in answer["message"]


def test_a_venv_python_is_registered_as_its_base_interpreter(scm: Scm) -> None:
    """Inside a venv the service runs the base python.exe, told which venv it belongs to.

    The venv is made by hand (pyvenv.cfg and a stand-in launcher) and "entered" the way
    the launcher does it, with __PYVENV_LAUNCHER__; the same variable, recorded in the
    service's environment, makes the base interpreter take up the venv's site-packages
    and .pth files, shown here on a console because Wine's SCM ignores the variable.
    """
    venv = scm.folder / "venv"
    (venv / "Scripts").mkdir(parents=True)
    extra = venv / "Lib" / "site-packages" / "extra"
    extra.mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text(f"home = {windows_path(scm.wine.python.parent)}\n")
    launcher = venv / "Scripts" / "python.exe"
    launcher.write_bytes(scm.wine.python.read_bytes())
    (venv / "Lib" / "site-packages" / "extra.pth").write_text(windows_path(extra) + "\n")
    (extra / "only_in_venv.py").write_text("HERE = True\n")

    env = dict(scm.wine.environ(False), __PYVENV_LAUNCHER__=windows_path(launcher))
    code = ("import json, sys, only_in_venv\n"
            "from procward.oshost._windows_accounts import service_python\n"
            "print(json.dumps({'python': service_python(sys.executable), "
            "'prefix': sys.prefix}))\n")
    done = subprocess.run(["wine", str(scm.wine.python), "-c", code], env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          errors="replace", timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["prefix"] == windows_path(venv)  # the venv's site-packages and .pth ran
    base, extra_env = seen["python"]
    assert base == windows_path(scm.wine.python)
    assert extra_env == {"__PYVENV_LAUNCHER__": windows_path(launcher)}

    # install() applies the same translation to a venv python it is given.
    name = scm.name("venv")
    assert scm.install(name, [windows_path(launcher), "app.py"],
                       env={"GREETING": "hi"}) == {"ok": True}
    config = scm.ctl("config", name)
    assert config["binary"] == subprocess.list2cmdline([windows_path(scm.wine.python),
                                                        "app.py"])
    assert config["registry"]["Environment"] == [
        f"__PYVENV_LAUNCHER__={windows_path(launcher)}", "GREETING=hi"]

"""``procward service``, ``procward wrap`` and an SDK ``Service`` under Wine's real SCM.

Everything is done the way a user does it on Windows: the commands run with
the Windows python.exe (``python.exe -m procward service install ...``), the
service is started and stopped with Wine's ``sc.exe``, and the SCM itself runs
the command the CLI registered. Only reading the registration back goes
through ``scripts/oshost_ctl.py``.

An auto (or delayed) service is started by ``install`` itself, as systemd's
``enable --now`` and launchd's RunAtLoad do; each test then stops it with
``sc stop`` and starts it again with ``sc start``.

What Wine 8 cannot show, and how it is covered instead (each test says so too):

- its ``sc.exe`` has no ``qc``: what ``sc qc`` would print is read with
  QueryServiceConfig and from the service's registry key, where Windows' SCM
  keeps it too; Wine's QueryServiceConfig leaves
  the dependencies out, so they are read as the key's ``DependOnService``;
- its SCM lacks the delayed-start level of QueryServiceConfig2: the flag is
  checked as the registry value ``DelayedAutostart`` the backend writes then
  (the value Windows' SCM reads for it); starting late after a boot is never
  exercised here;
- it records the account but runs every service as the Wine user: the account
  is checked as recorded (``LocalSystem``).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path, PureWindowsPath
from typing import Any

import pytest
from wine import CHILD, SCRIPTS, ServiceHost, WinePython, processes_with, wait_for, windows_path

pytestmark = pytest.mark.wine


def lines_in(log: Path) -> int:
    try:
        return log.read_text(errors="replace").count(" line ")
    except OSError:
        return 0


class Windows(ServiceHost):
    """Runs the Windows CLI and ``sc`` under Wine, and cleans up after the test."""

    @property
    def python(self) -> str:
        return windows_path(self.wine.python)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``python.exe ARGS``; its output comes back through pipes."""
        return self.wine.run(*args, timeout=120)

    def procward(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``python.exe -m procward ARGS``: the CLI as a Windows user runs it."""
        return self.run("-m", "procward", *args)

    def state(self, name: str) -> dict[str, Any]:
        """``procward service status --name NAME --json``, with its exit code."""
        done = self.procward("service", "status", "--name", name, "--json")
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        result["exit"] = done.returncode
        return result

    def alive(self, pids: list[int], marker: str) -> list[int]:
        """Which of these Windows pids still run a command line naming ``marker``."""
        result: list[int] = self.ctl("alive", json.dumps([pids, marker]))["alive"]
        return result


@pytest.fixture
def win(wine_python: WinePython, tmp_path: Path) -> Iterator[Windows]:
    helper = Windows(wine_python, tmp_path)
    try:
        yield helper
    finally:
        helper.cleanup()


def write_config(win: Windows, folder: Path) -> Path:
    """A configuration with two services, logs and state beside it (relative paths,
    so the Linux CLI finds the same state dir through the same file)."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "child.py"
    script.write_text(CHILD)
    config = folder / "procward.toml"
    config.write_text(
        "[procward]\nlog_dir = 'logs'\nstate_dir = 'state'\n\n"
        '[api]\nlisten = "127.0.0.1:0"\n\n'
        + "".join(
            f"[services.{svc}]\n"
            f"command = ['{win.python}', '{windows_path(script)}', '{svc}']\n"
            'stop_timeout = "3s"\n\n'
            for svc in ("alpha", "beta"))
    )
    return config


def child_pids(logs: list[Path]) -> list[int]:
    """The Windows pids of each supervised program and its helper, as they printed them."""
    pids = []
    for log in logs:
        first = log.read_text(errors="replace").splitlines()[0].split()
        pids += [int(first[2]), int(first[4])]
    return pids


def test_service_install_sc_start_stop_uninstall(win: Windows) -> None:
    """``procward service install`` registers what ``sc qc`` would show; sc runs it.

    Wine's sc has no ``qc``: the registration is read with QueryServiceConfig and
    from the service's registry key (the dependencies and the delayed flag, which
    Wine's QueryServiceConfig and QueryServiceConfig2 leave out, as the values
    ``DependOnService`` and ``DelayedAutostart``). The account is recorded, never
    used, under Wine. Started by ``sc start``, the daemon runs both programs (their
    lines reach their logs) and the Linux CLI sees them running through the API;
    ``sc stop`` ends the daemon, both programs and their helpers.
    """
    folder = win.folder / "daemon dir"
    config = write_config(win, folder)
    name = win.name("cli")
    done = win.procward("service", "install", "-c", windows_path(config), "--name", name,
                        "--start-type", "delayed", "--depends-on", "RpcSs",
                        "--description", "procward under test")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"installed the service {name} and started it" in done.stdout

    # What `sc qc` shows, read where Wine keeps it.
    registered = win.ctl("config", name)
    registry = registered["registry"]
    assert registered["binary"] == subprocess.list2cmdline(
        [win.python, "-m", "procward", "service", "host", "--name", name,
         "-c", windows_path(config)])
    assert registered["start"] == 2  # SERVICE_AUTO_START ...
    if registered["config2"]["delayed"] == {"winerror": 124}:  # ERROR_INVALID_LEVEL: Wine
        assert registry["DelayedAutostart"] == 1  # ... with the delayed flag
    else:
        assert registered["config2"]["delayed"] is True
    assert registered["account"] == "LocalSystem"
    # Wine's QueryServiceConfig leaves the dependencies out; the SCM keeps them here.
    assert registry["DependOnService"] == ["RpcSs"]
    assert registered["config2"]["description"] == "procward under test"
    assert registry["Parameters\\WorkingDirectory"] == windows_path(folder)

    # install started it (an auto service, delayed or not, starts now as well as at boot).
    assert win.state(name)["state"] == "running"
    code, output = win.sc("stop", name)
    assert code == 0, output
    wait_for(lambda: win.state(name)["state"] == "stopped", "the service to stop", 60)
    marker = windows_path(folder / "child.py")
    wait_for(lambda: not processes_with(marker), "the first run's programs to end", 15)
    for log in folder.glob("logs/*.out.log"):
        log.unlink()

    code, output = win.sc_start(name)
    assert code == 0, output
    logs = [folder / "logs" / f"{svc}.out.log" for svc in ("alpha", "beta")]
    wait_for(lambda: all(lines_in(log) >= 3 for log in logs), "lines in both logs", 60)
    wait_for(lambda: win.state(name)["state"] == "running", "the service to say running", 30)
    state = win.state(name)
    assert state["exit"] == 0 and state["pid"]
    done = win.procward("service", "status", "--name", name)
    assert done.stdout.startswith(f"{name}: running (pid {state['pid']})"), done.stdout
    # The Linux CLI reaches the Windows daemon's API through the same configuration:
    # its state dir (api.json, admin.token) is on the folder both systems see.
    linux = subprocess.run([sys.executable, "-m", "procward", "status", "-c", str(config),
                            "--json"], capture_output=True, text=True, timeout=60, check=False)
    assert linux.returncode == 0, linux.stdout + linux.stderr
    rows = {row["name"]: row for row in json.loads(linux.stdout)["services"]}
    assert sorted(rows) == ["alpha", "beta"]
    assert {row["state"] for row in rows.values()} == {"running"}
    pids = child_pids(logs)
    assert {rows["alpha"]["pid"], rows["beta"]["pid"]} <= set(pids)
    assert win.alive(pids, marker) == pids
    assert win.alive([state["pid"]], name) == [state["pid"]]
    # And the Windows CLI itself, which reads the same files as Windows sees them.
    done = win.procward("restart", "beta", "-c", windows_path(config))
    assert done.returncode == 0 and "restarted: beta" in done.stdout, done.stdout + done.stderr
    done = win.procward("status", "beta", "--json", "-c", windows_path(config))
    assert done.returncode == 0, done.stdout + done.stderr
    again = json.loads(done.stdout)["services"][0]
    assert again["name"] == "beta" and again["pid"] != rows["beta"]["pid"]

    code, output = win.sc("stop", name)
    assert code == 0, output
    wait_for(lambda: win.state(name)["state"] == "stopped", "the service to stop", 60)
    assert win.state(name)["detail"] == "exit code 0"
    code, output = win.sc("query", name)
    assert "STOPPED" in output
    # No process of the daemon, its two programs or their helpers is left.
    wait_for(lambda: not processes_with(marker), "the programs' trees to end", 15)
    assert win.alive([*pids, state["pid"]], "python") == []
    wait_for(lambda: not processes_with(name),
             "the daemon process to end", 15)
    assert "procward stopped" in (folder / "logs" / "procward.events.jsonl").read_text()

    done = win.procward("service", "uninstall", "--name", name)
    assert done.returncode == 0, done.stdout + done.stderr
    code, output = win.sc("query", name)
    assert code != 0  # Wine's sc says nothing more; Windows adds "FAILED 1060"
    state = win.state(name)
    assert (state["state"], state["exit"]) == ("not installed", 1)


def test_wrap_sc_start_stop_and_remove(win: Windows) -> None:
    """``procward wrap`` installs the daemon for one program; ``wrap --remove`` undoes it.

    The registration is read as in the test above (Wine's sc has no ``qc``).
    """
    folder = win.folder / "wrapped"
    script = win.folder / "child.py"
    script.write_text(CHILD)
    name = win.name("wrap")
    done = win.procward("wrap", name, "--folder", windows_path(folder), "--cwd",
                        windows_path(win.folder), "--stop-timeout", "3s", "--",
                        win.python, windows_path(script), "solo")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"installed the service {name} and started it" in done.stdout
    config = folder / "procward.toml"
    assert config.read_text().startswith("# Written by procward wrap")

    registered = win.ctl("config", name)
    assert registered["binary"] == subprocess.list2cmdline(
        [win.python, "-m", "procward", "service", "host", "--name", name,
         "-c", windows_path(config)])
    assert registered["start"] == 2  # SERVICE_AUTO_START, not delayed
    assert "DelayedAutostart" not in registered["registry"]
    assert registered["account"] == "LocalSystem"
    assert registered["config2"]["description"] == \
        f"{win.python} {windows_path(script)} solo (kept running by procward)"

    log = folder / "logs" / f"{name}.out.log"
    wait_for(lambda: lines_in(log) >= 3, "the program's lines in its log", 60)
    assert win.state(name)["state"] == "running"
    marker = windows_path(script)
    code, output = win.sc("stop", name)
    assert code == 0, output
    wait_for(lambda: win.state(name)["state"] == "stopped", "the service to stop", 60)
    assert win.state(name)["detail"] == "exit code 0"
    pids = child_pids([log])
    wait_for(lambda: not processes_with(marker), "the program's tree to end", 15)
    assert win.alive(pids, marker) == []

    log.unlink()
    code, output = win.sc_start(name)
    assert code == 0, output
    wait_for(lambda: lines_in(log) >= 3, "the program's lines after sc start", 60)
    wait_for(lambda: win.state(name)["state"] == "running", "the service to say running", 30)
    daemon = win.state(name)["pid"]
    pids = child_pids([log])
    assert win.alive(pids, marker) == pids

    # --remove stops the running service, uninstalls it and deletes the folder.
    done = win.procward("wrap", "--remove", name, "--folder", windows_path(folder))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"uninstalled the service {name}" in done.stdout
    assert not folder.exists()
    code, output = win.sc("query", name)
    assert code != 0
    assert win.state(name)["state"] == "not installed"
    wait_for(lambda: not processes_with(marker), "the program's tree to end", 15)
    assert win.alive([*pids, daemon], "python") == []


def test_wrap_keeps_its_folder_under_programdata(win: Windows) -> None:
    """Without ``--folder``, ``wrap`` keeps a service's files in
    ``%ProgramData%\\procward\\wrap\\NAME``; a dry run names it and creates nothing."""
    programdata = win.run("-c", "import os; print(os.environ['ProgramData'])").stdout.strip()
    name = win.name("wrapdry")
    done = win.procward("wrap", name, "--dry-run", "--", win.python, "-c", "pass")
    assert done.returncode == 0, done.stdout + done.stderr
    folder = PureWindowsPath(programdata, "procward", "wrap", name)
    assert f"# {folder / 'procward.toml'} (--dry-run: not written)" in done.stdout
    drive_c = Path(win.wine.env["WINEPREFIX"]) / "drive_c"
    assert not drive_c.joinpath(*folder.parts[1:]).exists()


def test_sdk_service_install_sc_start_stop_uninstall(win: Windows) -> None:
    """An SDK script registers ``python.exe SCRIPT host``; the SCM runs its function.

    ``sc stop`` sets ``stop``: the function returns and the service reports
    STOPPED with exit code 0. Wine ignores a service's Environment value, so the
    script takes its settings from a file beside it.
    """
    folder = win.folder / "sdk"
    folder.mkdir()
    script = folder / "service_cli_sdk.py"
    script.write_text((SCRIPTS / "service_cli_sdk.py").read_text())
    out = folder / "out.txt"
    name = win.name("sdk")
    script.with_suffix(".json").write_text(json.dumps({"name": name, "out": windows_path(out)}))

    def said(word: str) -> list[int]:
        text = out.read_text() if out.exists() else ""
        return [int(line.split()[1]) for line in text.splitlines() if line.startswith(word)]

    done = win.run(windows_path(script), "install")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"installed the service {name} and started it" in done.stdout
    registered = win.ctl("config", name)
    assert registered["binary"] == subprocess.list2cmdline(
        [win.python, windows_path(script), "host"])
    assert registered["start"] == 2
    assert registered["account"] == "LocalSystem"
    assert registered["display"] == "SDK under test"
    assert registered["config2"]["description"] == "an SDK service the Wine tests install"
    assert registered["registry"]["Parameters\\WorkingDirectory"] == windows_path(folder)
    # install started it: the function runs.
    wait_for(lambda: len(said("started")) == 1, "the function to start", 30)
    assert win.state(name)["state"] == "running"
    code, output = win.sc("stop", name)
    assert code == 0, output
    wait_for(lambda: win.state(name)["state"] == "stopped", "the service to stop", 60)

    code, output = win.sc_start(name)
    assert code == 0, output
    wait_for(lambda: len(said("started")) == 2, "the function to run again", 30)
    wait_for(lambda: win.state(name)["state"] == "running", "the service to say running", 30)
    pid = win.state(name)["pid"]
    assert said("started")[1] == pid  # python.exe itself is the service process
    wait_for(lambda: "tick" in out.read_text().split("started")[-1], "the function to loop", 30)
    done = win.run(windows_path(script), "status")
    assert done.stdout.startswith(f"{name}: running (pid {pid})"), done.stdout

    code, output = win.sc("stop", name)
    assert code == 0, output
    wait_for(lambda: win.state(name)["state"] == "stopped", "the service to stop", 60)
    # stop was set: the function returned (its last line), and the process exited 0.
    assert said("stopped") == said("started")
    assert out.read_text().splitlines()[-1] == f"stopped {pid}"
    assert win.state(name)["detail"] == "exit code 0"
    code, output = win.sc("query", name)
    assert "STOPPED" in output
    wait_for(lambda: not processes_with(windows_path(script)), "the service process to end", 15)
    assert win.alive([pid], "service_cli_sdk") == []

    done = win.run(windows_path(script), "uninstall")
    assert done.returncode == 0, done.stdout + done.stderr
    code, output = win.sc("query", name)
    assert code != 0
    done = win.run(windows_path(script), "status")
    assert done.returncode == 1
    assert "not installed" in done.stdout


def test_service_host_from_a_console_says_to_run_in_the_foreground(win: Windows) -> None:
    """``procward service host`` typed at a console says why it cannot run there and how
    to run in the foreground instead, and exits 1, without a traceback.

    The SCM did not start the process, so StartServiceCtrlDispatcher fails with error 1063.
    """
    config = write_config(win, win.folder / "console")
    done = win.procward("service", "host", "--name", "pwconsole", "-c", windows_path(config))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert "(Windows error 1063)" in done.stderr
    assert "run it in the foreground instead" in done.stderr
    assert f'procward run -c "{windows_path(config)}"' in done.stderr
    assert not (win.folder / "console" / "logs").exists()  # no daemon ran


def test_install_without_administrator_rights_says_so_and_registers_nothing(
        win: Windows) -> None:
    """Refused by the SCM (access denied), ``service install`` and an SDK ``install`` say
    to use an elevated prompt, exit 1, and leave no service behind.

    Wine grants every program every right, so ``scripts/install_denied.py`` makes
    ``OpenSCManager`` refuse as Windows' SCM refuses an unelevated process (anything
    beyond connecting), runs both commands in that process, and then asks the real
    SCM for both names.
    """
    config = write_config(win, win.folder / "denied")
    name = win.name("deny")
    win.names.append(name + "sdk")  # cleaned up too, should the refusal ever fail
    answer = win.wine.script("install_denied.py", windows_path(config), name, timeout=120)
    for command in ("cli", "sdk"):
        said = answer[command]["stderr"]
        assert answer[command]["exit"] == 1, said
        assert "access denied" in said and "elevated prompt (Run as administrator)" in said
        assert "Nothing was changed." in said
        assert "Traceback" not in said
    # Refused where install asks for SC_MANAGER_CREATE_SERVICE (0x2), once per command.
    assert [mask & 0x2 for mask in answer["asked"]] == [0x2, 0x2], answer["asked"]
    # ERROR_SERVICE_DOES_NOT_EXIST from the real SCM: nothing was registered.
    assert answer["open_service"] == {name: 1060, name + "sdk": 1060}


def test_install_as_another_account_warns_of_files_in_a_users_profile(win: Windows) -> None:
    """A configuration in a user's profile folder, which LocalService cannot read by
    default: ``service install --account "NT AUTHORITY\\LocalService"`` warns, naming
    the file and the profile; as LocalSystem (the default) it does not.

    Wine enforces no ACLs, so only the warning is checked, in dry runs.
    """
    profile = win.run("-c", "import os; print(os.environ['USERPROFILE'])").stdout.strip()
    drive_c = Path(win.wine.env["WINEPREFIX"]) / "drive_c"
    write_config(win, drive_c.joinpath(*PureWindowsPath(profile).parts[1:], "pwreach"))
    config = str(PureWindowsPath(profile, "pwreach", "procward.toml"))
    name = win.name("reach")
    done = win.procward("service", "install", "-c", config, "--name", name, "--account",
                        "NT AUTHORITY\\LocalService", "--dry-run")
    assert done.returncode == 0, done.stdout + done.stderr
    said = done.stderr.lower()
    assert (f"procward: warning: the service runs as nt authority\\localservice, which cannot "
            f"read {config.lower()}: it is in the profile folder {profile.lower()}") in said
    done = win.procward("service", "install", "-c", config, "--name", name, "--dry-run")
    # Only the account's reach is in question: the interpreter, in the clone's
    # .cache, is warned of as impermanent, which is another warning.
    assert done.returncode == 0 and "which cannot" not in done.stderr, done.stderr


def test_install_whose_start_fails_leaves_nothing_installed(win: Windows) -> None:
    """An auto service that stops as it starts (its API port is taken) is not left behind.

    ``install`` says why and exits 1, and the SCM no longer knows the name.
    """
    folder = win.folder / "taken"
    config = write_config(win, folder)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config.write_text(config.read_text().replace("127.0.0.1:0", f"127.0.0.1:{port}"))
        name = win.name("fail")
        done = win.procward("service", "install", "-c", windows_path(config), "--name", name)
        if "(Windows error 1053)" in done.stderr:
            # Wine's SCM timed out on a process that died as Wine set it up (see
            # ServiceHost.sc_start), before it could fail on the port: once more.
            done = win.procward("service", "install", "-c", windows_path(config), "--name", name)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "stopped as it started" in done.stderr
    assert "the service was not left installed" in done.stderr
    assert "installed the service" not in done.stdout
    assert win.state(name)["state"] == "not installed"
    wait_for(lambda: not processes_with(windows_path(folder)), "the programs to end", 15)

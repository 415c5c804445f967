"""`procward wrap` as a user types it, in real processes.

systemd does not run on the test machines: `--dry-run` shows what would be
registered and the configuration it would write (which the tests save where it
would go, load, and run with the same `service host` command the unit would
run); the real install and `--remove` stop with a clear error and leave
nothing behind.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from procward.cli._wrap import MARKER, render_config, wrap_folder
from procward.config import load
from procward.oshost import manager

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the systemd backend")

NO_SYSTEMD = not os.path.isdir("/run/systemd/system")


def procward(*args: str, cwd: Path | None = None,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "procward", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, **(env or {})})


def save_printed(done: subprocess.CompletedProcess[str], folder: Path) -> Path:
    """Write the configuration a dry run printed where it says a real wrap would."""
    header, _, rest = done.stdout.partition(" (--dry-run: not written)\n")
    path = Path(header.removeprefix("# "))
    assert path == folder / "procward.toml", done.stdout
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(rest.partition("\n# /etc/systemd/system/")[0])
    return path


def test_dry_run_prints_a_loadable_one_service_configuration(tmp_path: Path) -> None:
    """--dry-run prints the wrapped program's configuration (own logs, state, a loopback API
    port) and the unit that runs the daemon on it; saved where it would go, it loads."""
    folder = tmp_path / "wrap" / "web"
    done = procward("wrap", "web", "--folder", str(folder), "--env", "PORT=8000",
                    "--env", "GREETING=costs $5 ${not_a_var}", "--restart", "on-failure",
                    "--health-url", "http://127.0.0.1:8000/healthz",
                    "--dry-run", "--", "python3", "-m", "http.server", "8000", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    config_path = save_printed(done, folder)
    assert config_path.read_text().startswith(MARKER)
    config = load(config_path)
    web = config.services["web"]
    assert list(config.services) == ["web"]
    # Found on PATH now, registered by full path: the service's PATH may differ.
    assert os.path.isabs(web.command[0]) and web.command[1:] == ["-m", "http.server", "8000"]
    assert web.env == {"PORT": "8000", "GREETING": "costs $5 ${not_a_var}"}
    assert web.restart == "on-failure"
    assert web.health is not None and web.health.http == "http://127.0.0.1:8000/healthz"
    assert web.cwd == tmp_path
    assert config.procward.log_dir == folder / "logs"
    assert config.procward.state_dir == folder / "state"
    assert config.api.listen.startswith("127.0.0.1:")
    assert (f"ExecStart={sys.executable} -m procward service host --name web -c {config_path}"
            in done.stdout.splitlines())


def test_options_after_the_double_dash_belong_to_the_program(tmp_path: Path) -> None:
    """Everything after `--` is the program's, even words that look like wrap's options."""
    folder = tmp_path / "f"
    done = procward("wrap", "tool", "--folder", str(folder), "--dry-run", "--",
                    "/bin/echo", "--folder", "--remove", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    data = tomllib.loads(save_printed(done, folder).read_text())
    assert data["services"]["tool"]["command"] == ["/bin/echo", "--folder", "--remove"]


def test_the_wrapped_program_runs_under_the_hosted_daemon(tmp_path: Path) -> None:
    """The generated configuration, run by the very command the unit runs (`service host`),
    starts the program, reports READY=1 as systemd would see it, and stops on SIGTERM."""
    folder = tmp_path / "wrapped"
    marker = tmp_path / "ran"
    program = f"import pathlib, time; pathlib.Path({str(marker)!r}).touch(); time.sleep(60)"
    done = procward("wrap", "job", "--folder", str(folder), "--dry-run", "--",
                    sys.executable, "-c", program, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    save_printed(done, folder)
    address = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(address))
    listener.settimeout(20)
    proc = subprocess.Popen(
        [sys.executable, "-m", "procward", "service", "host", "--name", "job",
         "-c", str(folder / "procward.toml")],
        env={**os.environ, "NOTIFY_SOCKET": str(address)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        while "READY=1" not in listener.recv(4096).decode().splitlines():
            pass
        deadline = time.monotonic() + 20
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        listener.close()
    assert (folder / "logs" / "procward.events.jsonl").exists()


@pytest.mark.skipif(not NO_SYSTEMD, reason="systemd runs here")
def test_failed_install_leaves_nothing_behind(tmp_path: Path) -> None:
    """Where the service cannot be installed (no systemd), wrap says why, exits 1, and the
    folders it created are gone."""
    root = tmp_path / "state"
    done = procward("wrap", "web", "--folder", str(root / "wrap" / "web"), "--",
                    "/bin/sleep", "60")
    assert done.returncode == 1
    assert "systemd is not the init system" in done.stderr
    assert not root.exists()


@pytest.mark.skipif(not NO_SYSTEMD, reason="systemd runs here")
def test_dry_run_leaves_nothing_behind(tmp_path: Path) -> None:
    """--dry-run creates no file or folder under the state dir, so the real wrap of the
    same name afterwards is not refused as "already wrapped" (here it fails for want of
    systemd, and leaves nothing either)."""
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}
    folder = wrap_folder("web", user_scope=True, environ=env)
    done = procward("wrap", "web", "--user", "--dry-run", "--", "/bin/sleep", "60", env=env)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "state").exists()
    assert f"# {folder / 'procward.toml'} (--dry-run: not written)" in done.stdout
    done = procward("wrap", "web", "--user", "--", "/bin/sleep", "60", env=env)
    assert "already wrapped" not in done.stderr
    assert done.returncode == 1 and "systemd is not the init system" in done.stderr
    assert not (tmp_path / "state").exists()


def test_dry_run_of_a_name_already_wrapped_is_refused_as_the_wrap_would_be(
        tmp_path: Path) -> None:
    """A dry run says what the real wrap would do: refuse a name already wrapped
    (exit 1, naming the --remove to run), and leave its configuration as it was."""
    folder = tmp_path / "web"
    save_printed(procward("wrap", "web", "--folder", str(folder), "--dry-run", "--",
                          "/bin/sleep", "60"), folder)
    before = (folder / "procward.toml").read_bytes()
    done = procward("wrap", "web", "--folder", str(folder), "--dry-run", "--", "/bin/true")
    assert done.returncode == 1
    assert "already wrapped" in done.stderr and "procward wrap --remove web" in done.stderr
    assert (folder / "procward.toml").read_bytes() == before


@pytest.mark.skipif(not NO_SYSTEMD, reason="systemd runs here")
def test_remove_without_systemd_keeps_the_folder(tmp_path: Path) -> None:
    """--remove that cannot ask the service manager says so and deletes nothing."""
    folder = tmp_path / "web"
    save_printed(procward("wrap", "web", "--folder", str(folder), "--dry-run", "--",
                          "/bin/sleep", "60"), folder)
    done = procward("wrap", "--remove", "web", "--folder", str(folder))
    assert done.returncode == 1
    assert "was kept" in done.stderr
    assert (folder / "procward.toml").exists()


def test_remove_refuses_a_folder_wrap_did_not_write(tmp_path: Path) -> None:
    """--remove never deletes a folder whose configuration procward wrap did not write."""
    (tmp_path / "procward.toml").write_text("[services.x]\ncommand = ['x']\n")
    done = procward("wrap", "--remove", "x", "--folder", str(tmp_path))
    assert done.returncode == 1 and "not a procward wrap folder" in done.stderr
    assert (tmp_path / "procward.toml").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["web"], "give the program after --"),
    (["bad name", "--", "/bin/true"], "cannot be a service name"),
    (["web", "--env", "NOEQUALS", "--dry-run", "--", "/bin/true"], "--env expects K=V"),
])
def test_usage_errors_exit_2(args: list[str], message: str, tmp_path: Path) -> None:
    """Bad usage is exit 2 with a message saying what to write instead."""
    done = procward("wrap", *args, "--folder", str(tmp_path / "f"))
    assert done.returncode == 2
    assert message in done.stderr


def test_a_program_without_the_double_dash_is_shown_with_it(tmp_path: Path) -> None:
    """`wrap NAME python3 app.py` (no --) is exit 2 with wrap's usage and the same command
    with -- before the program, wrap's own options left before it; nothing is written."""
    folder = tmp_path / "f"
    done = procward("wrap", "web", "--folder", str(folder), "python3", "-u", "app.py")
    assert done.returncode == 2
    assert "usage: procward wrap NAME" in done.stderr
    assert (f"put -- before the program: procward wrap web --folder {folder} -- "
            "python3 -u app.py") in done.stderr
    assert not folder.exists()


def test_default_folders() -> None:
    """System wraps live under /var/lib/procward/wrap, --user ones under XDG_STATE_HOME."""
    assert wrap_folder("web", user_scope=False) == Path("/var/lib/procward/wrap/web")
    assert wrap_folder("web", user_scope=True, environ={"XDG_STATE_HOME": "/s"}) == Path(
        "/s/procward/wrap/web")


def test_render_config_escapes_toml_and_interpolation() -> None:
    """Quotes, backslashes, non-ASCII and `$` survive the trip through TOML and `${}`."""
    text = render_config("w", ["/bin/echo", 'a "b" \\c', "ünï", "$HOME"], cwd=Path("/tmp"),
                         port=1234, restart="always", env={"K": "${X}"}, stop_timeout="3s")
    data = tomllib.loads(text)
    assert data["services"]["w"]["command"] == ["/bin/echo", 'a "b" \\c', "ünï", "$$HOME"]
    assert json.dumps(data["services"]["w"]["env"]) == json.dumps({"K": "$${X}"})


def test_the_wrapped_web_example_answers(tmp_path: Path) -> None:
    """examples/wrapped-web, wrapped as its README says and run by `service host` as the
    OS would, answers HTTP on its port; SIGTERM stops it all with exit 0."""
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    repo = Path(__file__).parents[2]
    folder = tmp_path / "hello-web"
    done = procward("wrap", "hello-web", "--folder", str(folder), "--env", f"PORT={port}",
                    "--health-url", f"http://127.0.0.1:{port}/healthz", "--dry-run", "--",
                    sys.executable, "examples/wrapped-web/server.py", cwd=repo)
    assert done.returncode == 0, done.stderr
    save_printed(done, folder)
    proc = subprocess.Popen(
        [sys.executable, "-m", "procward", "service", "host", "--name", "hello-web",
         "-c", str(folder / "procward.toml")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    # No proxy from the environment may stand between the test and loopback.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with opener.open(f"http://127.0.0.1:{port}/", timeout=2) as answer:
                    assert answer.read().startswith(b"hello from pid")
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "listening on" in (folder / "logs" / "hello-web.out.log").read_text()


@pytest.mark.skipif(os.geteuid() != 0 or not Path("/usr/bin/setpriv").exists(),
                    reason="drops root with setpriv")
def test_ordinary_user_is_told_sudo_or_user(tmp_path: Path) -> None:
    """Run as an ordinary user (`nobody`), a system wrap is refused, naming sudo and --user,
    and nothing is created under the system state folder."""
    before = Path("/var/lib/procward").exists()
    done = subprocess.run(
        ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
         sys.executable, "-m", "procward", "wrap", "pw-test-wrap", "--", "/bin/sleep", "5"],
        cwd="/", capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 1
    assert "sudo" in done.stderr and "--user" in done.stderr
    assert Path("/var/lib/procward").exists() == before


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_account_owns_the_wrap_folder(tmp_path: Path) -> None:
    """With --account, the folder and its configuration belong to that user, who runs the
    daemon and writes the logs and state there; an unknown user is exit 2, nothing left."""
    import pwd

    folder = tmp_path / "web"
    done = procward("wrap", "web", "--folder", str(folder), "--account", "nobody", "--dry-run",
                    "--", "/bin/sleep", "60")
    assert done.returncode == 0, done.stderr
    assert "User=nobody" in done.stdout.splitlines()
    # What the real wrap does once it has written the folder the dry run printed.
    save_printed(done, folder)
    manager().give_to("nobody", [folder, folder / "procward.toml"])
    nobody = pwd.getpwnam("nobody").pw_uid
    assert folder.stat().st_uid == nobody
    assert (folder / "procward.toml").stat().st_uid == nobody
    other = tmp_path / "other"
    done = procward("wrap", "web", "--folder", str(other), "--account", "no-such-user-pw",
                    "--dry-run", "--", "/bin/sleep", "60")
    assert done.returncode == 2 and "no user" in done.stderr
    assert not other.exists()


@pytest.mark.parametrize(("command", "options", "said"), [
    (["no-such-server", "8000"], [], "'no-such-server' is not found on PATH"),
    (["python3", "-V"], ["--cwd", "no-such-folder"], "no-such-folder does not exist"),
], ids=["program", "cwd"])
def test_a_missing_program_or_folder_is_refused_before_anything_is_written(
        tmp_path: Path, command: list[str], options: list[str], said: str) -> None:
    folder = tmp_path / "wrap" / "web"
    done = procward("wrap", "web", "--folder", str(folder), *options, "--dry-run", "--",
                    *command, cwd=tmp_path)
    assert done.returncode == 2 and said in done.stderr, done.stderr
    assert "procward.toml:" not in done.stderr  # the user wrote no file
    assert not folder.exists()

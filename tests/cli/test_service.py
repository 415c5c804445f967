"""`procward service` as a user types it, in real processes.

systemd is not running on the test machines, so installing for real cannot
succeed here: the tests check what `--dry-run` would register, and that the
real commands stop with a clear error and change nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the systemd backend")

NO_SYSTEMD = not os.path.isdir("/run/systemd/system")


def procward(*args: str, cwd: Path | None = None, prefix: tuple[str, ...] = (),
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # Without a profile of the test runner's own: each test says which it wants.
    environ = {k: v for k, v in os.environ.items() if k != "PROCWARD_PROFILE"}
    return subprocess.run([*prefix, sys.executable, "-m", "procward", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**environ, **(env or {})})


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "procward.toml"
    path.write_text('[services.db]\ncommand = ["sleep", "60"]\nstop_timeout = "20s"\n'
                    '[services.web]\ncommand = ["sleep", "60"]\ndepends_on = ["db"]\n'
                    'stop_timeout = "8s"\n')
    return path


def test_help_lists_the_verbs() -> None:
    """`procward service --help` names every verb, and each verb has its own help."""
    done = procward("service", "--help")
    assert done.returncode == 0
    for verb in ("install", "uninstall", "start", "stop", "restart", "status"):
        assert verb in done.stdout
        assert procward("service", verb, "--help").returncode == 0


def test_dry_run_prints_the_unit_that_runs_the_daemon(config: Path) -> None:
    """--dry-run prints the unit: it runs `python -m procward service host --name N -c
    ABSOLUTE_CONFIG`, from the config's folder, and stops within the services' budget."""
    done = procward("service", "install", "-c", "procward.toml", "--name", "pw-test",
                    "--dry-run", cwd=config.parent)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "# /etc/systemd/system/pw-test.service"
    assert (f"ExecStart={sys.executable} -m procward service host --name pw-test -c {config}"
            in lines)
    assert f"WorkingDirectory={config.parent}" in lines
    # web stops (8 s) before db (20 s): 28 s, plus the margin.
    assert "TimeoutStopSec=43s" in lines
    assert lines[-2:] == ["systemctl daemon-reload", "systemctl enable --now pw-test.service"]
    assert not Path("/etc/systemd/system/pw-test.service").exists()
    assert f"ExecReload={sys.executable} -m procward reload -c {config}" in lines


@pytest.mark.parametrize("how", ["--profile", "$PROCWARD_PROFILE"])
def test_the_profile_reaches_start_and_reload(how: str, config: Path) -> None:
    """The profile install validated with (as --profile or $PROCWARD_PROFILE) is on both
    ExecStart and ExecReload, so reload finds the daemon that profile's state_dir and [api]
    put elsewhere."""
    with config.open("a") as f:
        f.write('[profiles.staging.procward]\nstate_dir = "staging-state"\n'
                '[profiles.staging.api]\nlisten = "127.0.0.1:9779"\n')
    chosen = ("--profile", "staging") if how == "--profile" else ()
    done = procward("service", "install", "-c", str(config), "--name", "pw-test", *chosen,
                    "--dry-run", env={"PROCWARD_PROFILE": "staging"} if not chosen else {})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert (f"ExecStart={sys.executable} -m procward service host --name pw-test -c {config}"
            " --profile staging" in lines)
    assert f"ExecReload={sys.executable} -m procward reload -c {config} --profile staging" \
        in lines



def test_bad_configuration_is_refused_before_installing(tmp_path: Path) -> None:
    """A configuration the daemon would refuse at every start is refused now, exit 2,
    with file, line and key."""
    path = tmp_path / "procward.toml"
    path.write_text('[services.x]\ncommand = ["x"]\nrestart = "sometimes"\n')
    done = procward("service", "install", "-c", str(path), "--dry-run")
    assert done.returncode == 2
    assert "procward.toml:3 services.x.restart" in done.stderr


def test_missing_configuration(tmp_path: Path) -> None:
    """No configuration: exit 2, saying how to get one."""
    done = procward("service", "install", "-c", str(tmp_path / "none.toml"))
    assert done.returncode == 2 and "procward init" in done.stderr


@pytest.mark.skipif(not NO_SYSTEMD or os.geteuid() != 0, reason="needs root without systemd")
def test_install_without_systemd_says_so_and_writes_nothing(config: Path) -> None:
    """As root where systemd is not the init system, install fails with exit 1 naming the
    problem and the way out, and no unit file is left behind."""
    done = procward("service", "install", "-c", str(config), "--name", "pw-test-nosd")
    assert done.returncode == 1
    assert "systemd is not the init system" in done.stderr and "procward run" in done.stderr
    assert not Path("/etc/systemd/system/pw-test-nosd.service").exists()


@pytest.mark.skipif(not NO_SYSTEMD, reason="systemd runs here")
@pytest.mark.parametrize("verb", ["status", "start", "stop", "uninstall"])
def test_control_without_systemd_is_a_clear_error(verb: str) -> None:
    """status, start, stop, uninstall say systemd is missing (exit 1) rather than fail oddly."""
    done = procward("service", verb, "--user", "--name", "pw-test-nosd")
    assert done.returncode == 1
    assert "systemd" in done.stderr and "Traceback" not in done.stderr


def _unprivileged() -> tuple[str, ...]:
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0:
        return ()
    if setpriv is None:
        pytest.skip("root, and no setpriv to drop privileges with")
    return (setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--")


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder an unprivileged user can read (pytest's own tmp folders are root-only)."""
    folder = Path(tempfile.mkdtemp(prefix="procward-test-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


def test_not_root_is_told_to_use_sudo_or_user(shared_folder: Path) -> None:
    """Run as an ordinary user (setpriv to `nobody` when the tests run as root), a system
    install is refused with exit 1, naming sudo and --user, and nothing is changed."""
    config = shared_folder / "procward.toml"
    config.write_text('[services.x]\ncommand = ["sleep", "1"]\n')
    config.chmod(0o644)
    done = procward("service", "install", "-c", str(config), "--name", "pw-test-priv",
                    prefix=_unprivileged(), cwd=shared_folder)
    assert done.returncode == 1, done.stderr
    assert "sudo" in done.stderr and "--user" in done.stderr
    assert "Nothing was changed" in done.stderr
    assert not Path("/etc/systemd/system/pw-test-priv.service").exists()


def test_install_refuses_a_service_whose_program_is_missing(tmp_path: Path) -> None:
    """What `check` finds missing, `service install` refuses, before registering anything."""
    path = tmp_path / "procward.toml"
    path.write_text('[services.web]\ncommand = ["no-such-server"]\n')
    done = procward("service", "install", "-c", str(path), "--dry-run")
    assert done.returncode == 2
    assert "procward.toml:2 services.web.command: the program 'no-such-server'" in done.stderr

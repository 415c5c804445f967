"""What a service's --account cannot reach, by real files' mode bits and a real account.

The checks run as root (the test machine's user) against the system's
"nobody", with folders made here; elsewhere they are skipped.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    sys.platform == "win32" or os.geteuid() != 0,
    reason="needs root, to make folders another account cannot enter")

from procward.oshost._reach import service_paths, unreachable  # noqa: E402

NEED = 4 | 1  # read and run


@pytest.fixture
def nobody() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no account named nobody here")


@pytest.fixture
def tmp(nobody: pwd.struct_passwd) -> Iterator[Path]:
    """A folder every account may enter (pytest's own sit in a root-only folder)."""
    path = Path(tempfile.mkdtemp(prefix="procward-reach-"))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def _program(folder: Path, mode: int) -> Path:
    folder.mkdir(mode=0o755)
    os.chmod(folder, mode)
    program = folder / "python3"
    program.write_text("#!/bin/sh\n")
    os.chmod(program, 0o755)
    return program


def test_a_program_in_a_closed_folder_is_named_with_the_folder_in_its_way(
        tmp: Path, nobody: pwd.struct_passwd) -> None:
    program = _program(tmp / "home", 0o700)
    problems = unreachable("nobody", [(program, NEED)])
    assert problems == [f"the service runs as nobody, which cannot reach {program}: the "
                        f"folder {tmp / 'home'} is drwx------ root:root"]


def test_open_folders_and_the_accounts_own_group_let_it_through(
        tmp: Path, nobody: pwd.struct_passwd) -> None:
    assert unreachable("nobody", [(_program(tmp / "opt", 0o755), NEED)]) == []
    shared = _program(tmp / "shared", 0o750)
    os.chown(tmp / "shared", 0, nobody.pw_gid)
    assert unreachable("nobody", [(shared, NEED)]) == []
    # root reaches everything; an unknown account is the install's to report.
    closed = _program(tmp / "closed", 0o700)
    assert unreachable("root", [(closed, NEED)]) == []
    assert unreachable("no-such-account-pw", [(closed, NEED)]) == []


def test_a_file_the_account_may_not_run_is_named(tmp: Path) -> None:
    program = _program(tmp / "bin", 0o755)
    os.chmod(program, 0o700)
    assert unreachable("nobody", [(program, NEED)]) == [
        f"the service runs as nobody, which cannot reach {program}: the file {program} "
        "is -rwx------ root:root"]


def test_a_link_is_followed_to_where_it_leads(tmp: Path) -> None:
    """A venv's python is a link to the base interpreter: both must be reachable."""
    real = _program(tmp / "home", 0o700)
    (tmp / "venv").mkdir(mode=0o755)
    link = tmp / "venv" / "python3"
    link.symlink_to(real)
    problems = unreachable("nobody", [(link, NEED)])
    assert problems == [f"the service runs as nobody, which cannot reach {link}: the "
                        f"folder {tmp / 'home'} is drwx------ root:root"]


def test_the_service_needs_its_program_procward_and_its_folder(tmp_path: Path) -> None:
    """The program the unit starts, the package it imports, the folder it runs in."""
    import procward

    paths = [p for p, _ in service_paths(["/usr/bin/python3", "-m", "procward"], tmp_path)]
    assert paths == [Path("/usr/bin/python3"), Path(procward.__file__).parent, tmp_path]


@pytest.mark.skipif(sys.platform != "linux", reason="the systemd backend")
def test_install_warns_of_a_folder_the_account_cannot_enter(
        tmp: Path) -> None:
    """`procward service install --account nobody` of a configuration in a folder only
    root may enter warns, naming the folder, and (as a dry run) still shows the unit."""
    folder = tmp / "private"
    folder.mkdir(mode=0o700)
    (folder / "procward.toml").write_text('[services.x]\ncommand = ["sleep", "60"]\n')
    environ = {k: v for k, v in os.environ.items() if k != "PROCWARD_PROFILE"}
    done = subprocess.run(
        [sys.executable, "-m", "procward", "service", "install", "-c",
         str(folder / "procward.toml"), "--name", "pw-reach", "--account", "nobody",
         "--dry-run"], capture_output=True, text=True, timeout=60, check=False, env=environ)
    assert done.returncode == 0, done.stderr
    assert "User=nobody" in done.stdout.splitlines()
    assert (f"procward: warning: the service runs as nobody, which cannot reach {folder}: "
            f"the folder {folder} is drwx------ root:root; the service would fail to start"
            ) in done.stderr


@pytest.mark.skipif(sys.platform != "linux", reason="the systemd backend")
def test_an_sdk_install_warns_of_a_script_the_account_cannot_read(tmp: Path) -> None:
    """A program made a service with the SDK warns the same way: here its script is
    readable by root alone."""
    script = tmp / "app.py"
    script.write_text("import procward\n"
                      "svc = procward.Service('pw-reach-sdk')\n"
                      "svc.main(lambda stop: stop.wait())\n"
                      "svc.cli()\n")
    os.chmod(script, 0o600)
    environ = {k: v for k, v in os.environ.items() if k != "PROCWARD_PROFILE"}
    done = subprocess.run([sys.executable, str(script), "install", "--account", "nobody",
                           "--dry-run"], capture_output=True, text=True, timeout=60,
                          check=False, env=environ)
    assert done.returncode == 0, done.stderr
    assert (f"pw-reach-sdk: warning: the service runs as nobody, which cannot reach {script}: "
            f"the file {script} is -rw------- root:root") in done.stderr

"""The install warns when the interpreter a service will start lives where it may not last:
a temporary folder, a git work tree (a clone's .venv), a user's home for a system service.

Real folders and a real ``git init``; the home and temp folders are passed in,
so each case is decided by where the program is, not by this machine's layout.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from procward.oshost import ServiceSpec, reach_warnings
from procward.oshost._reach import impermanent_home


def _python(folder: Path) -> Path:
    (folder / "bin").mkdir(parents=True)
    program = folder / "bin" / "python3"
    program.write_text("#!/bin/sh\n")
    return program


@pytest.fixture
def roots(tmp_path: Path) -> dict[str, Path]:
    """A temp folder, a home and a lasting system-like folder, side by side."""
    names = ("temp", "home", "opt")
    for name in names:
        (tmp_path / name).mkdir()
    return {name: tmp_path / name for name in names}


def _where(program: Path, roots: dict[str, Path], *, user_scope: bool = False) -> str | None:
    return impermanent_home(str(program), user_scope=user_scope, home=roots["home"],
                            temp=roots["temp"])


def test_an_interpreter_in_the_temp_folder_is_named_temporary(roots: dict[str, Path]) -> None:
    where = _where(_python(roots["temp"] / "venv"), roots)
    assert where is not None and "temporary folder" in where and str(roots["temp"]) in where


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_a_clones_venv_is_named_with_its_work_tree(roots: dict[str, Path]) -> None:
    clone = roots["opt"] / "clone"
    clone.mkdir()
    subprocess.run(["git", "init", "-q", str(clone)], check=True)
    where = _where(_python(clone / ".venv"), roots)
    assert where is not None and "git work tree" in where and str(clone) in where


@pytest.mark.parametrize(("user_scope", "warned"), [(False, True), (True, False)])
def test_a_home_folder_is_impermanent_for_a_system_service_only(
        roots: dict[str, Path], user_scope: bool, warned: bool) -> None:
    where = _where(_python(roots["home"] / "venvs" / "app"), roots, user_scope=user_scope)
    assert (where is not None and "home folder" in where) is warned


def test_a_lasting_system_folder_gives_no_warning(roots: dict[str, Path]) -> None:
    assert _where(_python(roots["opt"] / "procward"), roots) is None


def test_the_install_warning_names_the_program_and_how_to_fix_it(tmp_path: Path) -> None:
    """reach_warnings (what `service install`, `wrap` and the SDK print) says it in full."""
    program = _python(tmp_path / "venv")  # pytest's tmp_path is under the temp folder
    spec = ServiceSpec(name="svc", argv=[str(program), "-m", "procward"])
    warnings = reach_warnings(object(), spec)
    assert len(warnings) == 1
    assert str(program) in warnings[0] and "temporary folder" in warnings[0]
    assert "lasting system folder" in warnings[0]

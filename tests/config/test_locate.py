"""locate(): a file found and read as far as its daemon's state dir and API address."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from procward.config import locate
from procward.errors import ConfigError


def write(folder: Path, text: str) -> Path:
    path = folder / "procward.toml"
    path.write_text(textwrap.dedent(text).removeprefix("\n"), encoding="utf-8")
    return path


def test_state_dir_and_api_come_with_profile_and_variables(tmp_path: Path) -> None:
    """The state dir and [api] are read as the daemon reads them: the profile laid over
    the file, ${VAR} filled in, relative paths taken from the file's folder."""
    path = write(tmp_path, """
        [procward]
        state_dir = "state"

        [api]
        listen = "127.0.0.1:${PORT:-9771}"

        [profiles.dev.procward]
        state_dir = "${WHERE}/dev-state"
    """)
    plain = locate(path, environ={})
    assert plain.state_dir == tmp_path / "state"
    assert plain.api == {"listen": "127.0.0.1:9771"}
    dev = locate(path, profile="dev", environ={"WHERE": "run", "PORT": "1234"})
    assert dev.state_dir == tmp_path / "run" / "dev-state"
    assert dev.api["listen"] == "127.0.0.1:1234"
    assert locate(path, environ={"PROCWARD_PROFILE": "dev", "WHERE": "x"}).state_dir == (
        tmp_path / "x" / "dev-state")


def test_what_only_the_services_need_does_not_stop_locate(tmp_path: Path) -> None:
    """A service's unset variable or bad value is the loader's business: a client finding
    the daemon's state dir does not need it."""
    path = write(tmp_path, """
        [services.web]
        command = ["${APP}"]
        restart = "sometimes"
    """)
    found = locate(path, environ={})
    assert found.state_dir == tmp_path / "state"
    assert found.problems == []


@pytest.mark.parametrize(("text", "message"), [
    ("[services.web\n", "TOML syntax error: "),
    (b"\xff", "not UTF-8 text"),
])
def test_a_file_that_is_not_toml_is_refused(tmp_path: Path, text: str | bytes,
                                            message: str) -> None:
    """A file locate cannot read raises one ConfigError naming the file and what is wrong."""
    path = tmp_path / "procward.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        locate(path, environ={})
    [problem] = info.value.problems
    assert problem.file == path and problem.message.startswith(message)


def test_an_unknown_profile_is_kept_as_a_problem(tmp_path: Path) -> None:
    """A profile the file does not define is a problem at [profiles], with a suggestion."""
    path = write(tmp_path, """
        [profiles.prod.procward]
        log_level = "warning"
    """)
    [problem] = locate(path, profile="prd", environ={}).problems
    assert (problem.line, problem.key) == (1, "profiles")
    assert 'unknown profile "prd" (did you mean "prod"?)' in problem.message


def test_locate_leaves_the_validator_unimported(tmp_path: Path) -> None:
    """Finding a daemon never imports pydantic (or the engine): a client command pays only
    for reading the file."""
    path = write(tmp_path, '[services.web]\ncommand = ["x"]\n')
    probe = ("import sys; from procward.config import locate; "
             f"print(locate({str(path)!r}).state_dir); "
             "print(sorted(m for m in ('pydantic', 'asyncio', 'procward.engine') "
             "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out == [str(tmp_path / "state"), "[]"]

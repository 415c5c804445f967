"""load(present=True): a service's working folder and program must be there, each missing
one a problem with the file, line and key it is written at. Real files and folders."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from procward.config import load
from procward.errors import ConfigError


def _problems(path: Path) -> list[tuple[int | None, str, str]]:
    with pytest.raises(ConfigError) as caught:
        load(path, present=True)
    return [(p.line, p.key, p.message) for p in caught.value.problems]


def _write(tmp_path: Path, service: str) -> Path:
    path = tmp_path / "procward.toml"
    path.write_text("[procward]\nstate_dir = \"state\"\n\n[services.app]\n" + service,
                    encoding="utf-8")
    return path


def test_present_things_pass_and_the_daemons_load_does_not_look(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    ok = _write(tmp_path, f'command = [{sys.executable!r}, "-V"]\ncwd = "work"\n')
    assert list(load(ok, present=True).services) == ["app"]
    missing = _write(tmp_path, 'command = ["no-such-program-here"]\n')
    assert list(load(missing).services) == ["app"]  # as `run` loads: no check


@pytest.mark.parametrize(("service", "line", "key", "words"), [
    ('command = ["no-such-program-here", "x"]\n', 5, "services.app.command",
     ["'no-such-program-here' is not found on PATH"]),
    ('command = ["python3"]\ncwd = "nowhere"\n', 6, "services.app.cwd",
     ["working folder", "nowhere does not exist"]),
    ('command = ["./bin/tool"]\n', 5, "services.app.command",
     ["./bin/tool does not exist", "looked for"]),
], ids=["not-on-path", "cwd-missing", "relative-path-missing"])
def test_each_missing_thing_is_named_at_its_line(
        tmp_path: Path, service: str, line: int, key: str, words: list[str]) -> None:
    [(at, named, message)] = _problems(_write(tmp_path, service))
    assert (at, named) == (line, key)
    assert all(w in message for w in words), message


def test_a_missing_folder_is_not_also_called_a_missing_program(tmp_path: Path) -> None:
    """The relative program would be looked for in the folder that is not there."""
    problems = _problems(_write(tmp_path, 'command = ["./run.sh"]\ncwd = "gone"\n'))
    assert [key for _, key, _ in problems] == ["services.app.cwd"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX mode bits")
def test_a_program_without_execute_permission_is_named(tmp_path: Path) -> None:
    script = tmp_path / "run.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(stat.S_IRUSR | stat.S_IWUSR)
    if os.access(script, os.X_OK):
        pytest.skip("this account may execute anything")
    [(_, key, message)] = _problems(_write(tmp_path, 'command = ["./run.sh"]\n'))
    assert key == "services.app.command" and "not executable" in message


def test_the_services_own_path_is_searched(tmp_path: Path) -> None:
    """A program found only on the PATH the service sets is there; the caller's
    PATH is not used when the service has its own."""
    bin_dir = tmp_path / "tools"
    bin_dir.mkdir()
    tool = bin_dir / "mytool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    path = _write(tmp_path, f'command = ["mytool"]\nenv = {{ PATH = "{bin_dir}" }}\n')
    assert list(load(path, present=True).services) == ["app"]
    path = _write(tmp_path, 'command = ["mytool"]\n')
    [(_, key, _)] = _problems(path)
    assert key == "services.app.command"

"""``procward check`` run as a real command: exit codes, one line per problem, --json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path


def check(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m procward check ARGS`` in ``cwd`` with no PROCWARD_* variables inherited."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PROCWARD_")}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "procward", "check", *args],
        cwd=cwd, env=environ, capture_output=True, text=True, timeout=60, check=False,
    )


def write(folder: Path, text: str, name: str = "procward.toml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).removeprefix("\n"), encoding="utf-8")
    return path


BAD = """
    [services.web]
    command = ["python", "-m", "http.server"]
    restart = "sometimes"
    restrat = "always"
    depends_on = ["api"]

    [services.api]
    command = ["python", "${APP_MAIN}"]
    depends_on = ["web"]
"""


def test_bad_file_lists_every_problem_and_exits_2(tmp_path: Path) -> None:
    """Each problem is one stderr line "file:line key: message", and the exit code is 2."""
    write(tmp_path, BAD)
    result = check(cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        'procward.toml:3 services.web.restart: expected one of always, on-failure, never, '
        'got "sometimes"',
        'procward.toml:4 services.web.restrat: unknown key "restrat" (did you mean "restart"?)',
        "procward.toml:5 services.web.depends_on: dependency cycle: web -> api -> web",
        "procward.toml:8 services.api.command.1: environment variable APP_MAIN is not set "
        "(give a default with ${APP_MAIN:-value})",
    ]


def test_good_file_prints_a_summary_and_exits_0(tmp_path: Path) -> None:
    """A valid file prints one line naming its services and exits 0."""
    write(tmp_path, """
        [services.web]
        command = "python -m http.server"

        [services.worker]
        command = ["python", "-c", "pass"]
    """, name="site.toml")
    result = check("-c", "site.toml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "site.toml: ok, 2 services (web, worker)\n"


def test_profile_option_and_environment(tmp_path: Path) -> None:
    """--profile and $PROCWARD_PROFILE both overlay the profile that check validates."""
    write(tmp_path, """
        [services.web]
        command = ["python3"]

        [profiles.prod.services.web]
        restart = "sometimes"
    """)
    assert check(cwd=tmp_path).returncode == 0
    by_option = check("--profile", "prod", cwd=tmp_path)
    assert by_option.returncode == 2
    assert by_option.stderr.startswith("procward.toml:5 services.web.restart: ")
    by_env = check(cwd=tmp_path, env={"PROCWARD_PROFILE": "prod"})
    assert by_env.stderr == by_option.stderr
    unknown = check("--profile", "staging", cwd=tmp_path)
    assert unknown.returncode == 2
    assert 'unknown profile "staging"' in unknown.stderr


def test_config_from_environment_variable(tmp_path: Path) -> None:
    """$PROCWARD_CONFIG names the file when -c is not given."""
    sub = tmp_path / "etc"
    sub.mkdir()
    config = write(sub, """
        [services.only]
        command = ["python3"]
    """)
    result = check(cwd=tmp_path, env={"PROCWARD_CONFIG": str(config)})
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{config}: ok, 1 service (only)\n"


def test_missing_file_exits_2_and_suggests_init(tmp_path: Path) -> None:
    """A missing file exits 2, names the path and suggests procward init."""
    result = check("-c", "absent.toml", cwd=tmp_path)
    assert result.returncode == 2
    assert "absent.toml does not exist" in result.stderr
    assert "procward init" in result.stderr


def test_json_output(tmp_path: Path) -> None:
    """--json prints one object on stdout: ok and services, or ok false and each problem."""
    write(tmp_path, BAD)
    result = check("--json", cwd=tmp_path)
    assert result.returncode == 2
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["problems"][0] == {
        "file": "procward.toml",
        "line": 3,
        "key": "services.web.restart",
        "message": 'expected one of always, on-failure, never, got "sometimes"',
    }
    assert len(report["problems"]) == 4
    write(tmp_path, """
        [services.web]
        command = ["python3"]
    """)
    result = check("--json", cwd=tmp_path)
    assert result.returncode == 0
    assert json.loads(result.stdout) == {
        "ok": True, "file": "procward.toml", "profile": None, "services": ["web"],
    }


def test_syntax_error_is_one_line(tmp_path: Path) -> None:
    """A TOML syntax error is reported as a single line with the line tomllib found it on."""
    write(tmp_path, """
        [services.web]
        command = ["x"
        restart = "always"
    """)
    result = check(cwd=tmp_path)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("procward.toml:3: TOML syntax error: ")


def test_a_missing_program_or_folder_is_a_problem_at_its_line(tmp_path: Path) -> None:
    """check looks for each service's program and working folder as the service would:
    a missing folder is named as the folder, not as a missing program."""
    write(tmp_path, """
        [services.web]
        command = ["no-such-server", "--port", "80"]

        [services.job]
        command = ["./job.sh"]
        cwd = "jobs"
    """)
    result = check(cwd=tmp_path)
    assert result.returncode == 2
    web, job = result.stderr.splitlines()
    assert web.startswith("procward.toml:2 services.web.command: the program "
                          "'no-such-server' is not found on PATH")
    assert job.startswith("procward.toml:6 services.job.cwd: the working folder ")
    assert "jobs does not exist" in job and "job.sh" not in job

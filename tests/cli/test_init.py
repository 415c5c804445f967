"""``procward init``: a starter file that passes check, written only where nothing is."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from procward.config import load
from procward.config._starter import starter_config


def procward(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``python -m procward ARGS`` in ``cwd`` with no PROCWARD_* variables inherited."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PROCWARD_")}
    return subprocess.run(
        [sys.executable, "-m", "procward", *args],
        cwd=cwd, env=environ, capture_output=True, text=True, timeout=60, check=False,
    )


def test_init_then_check_round_trip(tmp_path: Path) -> None:
    """init writes ./procward.toml and check accepts it with its two example services."""
    made = procward("init", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "procward.toml").is_file()
    checked = procward("check", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout == "procward.toml: ok, 2 services (web, worker)\n"


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    """An existing file is left untouched and init exits 1 saying --force would overwrite."""
    target = tmp_path / "procward.toml"
    target.write_text("# mine\n", encoding="utf-8")
    result = procward("init", cwd=tmp_path)
    assert result.returncode == 1
    assert "already exists" in result.stderr and "--force" in result.stderr
    assert target.read_text(encoding="utf-8") == "# mine\n"


def test_init_force_overwrites(tmp_path: Path) -> None:
    """--force replaces an existing file with the starter."""
    target = tmp_path / "procward.toml"
    target.write_text("# mine\n", encoding="utf-8")
    result = procward("init", "--force", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "[services.web]" in target.read_text(encoding="utf-8")


def test_init_to_a_named_file(tmp_path: Path) -> None:
    """init FILE writes there and tells how to check it with -c."""
    result = procward("init", "site.toml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "procward check -c site.toml" in result.stdout
    assert procward("check", "-c", "site.toml", cwd=tmp_path).returncode == 0


def test_starter_services_use_the_given_python(tmp_path: Path) -> None:
    """The example services run the interpreter given, even a Windows path with backslashes."""
    python = r"C:\Program Files\Python312\python.exe"
    path = tmp_path / "procward.toml"
    path.write_text(starter_config(python), encoding="utf-8")
    config = load(path, environ={})
    assert config.services["web"].command[0] == python
    assert config.services["worker"].command[0] == python
    assert config.services["web"].depends_on == ["worker"]
    assert config.services["web"].env == {"PORT": "8000"}


def test_starter_example_runs(tmp_path: Path) -> None:
    """The worker example is a real program: it starts and prints its first line."""
    path = tmp_path / "procward.toml"
    path.write_text(starter_config(sys.executable), encoding="utf-8")
    worker = load(path, environ={}).services["worker"]
    with subprocess.Popen(worker.command, cwd=worker.cwd, stdout=subprocess.PIPE, text=True) as p:
        try:
            assert p.stdout is not None
            assert p.stdout.readline() == "working\n"
        finally:
            p.kill()


def test_commented_defaults_are_valid_when_uncommented(tmp_path: Path) -> None:
    """Every key the starter shows commented out is itself valid once uncommented."""
    (tmp_path / ".env").write_text("A=1\n", encoding="utf-8")
    text = starter_config()
    uncommented = re.sub(r"(?m)^# (\[|[A-Za-z_]+ = )", r"\1", text)
    assert uncommented.count("\n#") < text.count("\n#")
    path = tmp_path / "procward.toml"
    path.write_text(uncommented, encoding="utf-8")
    config = load(path, profile="dev", environ={})
    web = config.services["web"]
    assert web.alerts[0].actions == ["ops"]
    assert web.memory_max == 512 * 1024**2
    assert web.env == {"A": "1", "PORT": "8080"}
    assert config.api.client_ca == tmp_path / "certs" / "ca.pem"

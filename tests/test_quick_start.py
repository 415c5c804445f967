"""The README's quick start, followed as written on a fresh clone of this repository.

``scripts/demo`` from the quick start installs procward into the clone's
.venv and supervises the demo; then, as "Using it" says, a shell that
activates that .venv can run ``procward`` and the SDK example. Ctrl+C
(SIGINT) stops it all, leaving no process behind. The clone is of the last
commit, not of uncommitted changes. Needs git and a work tree
(a source archive has none: skipped there).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")

pytestmark = pytest.mark.skipif(
    sys.platform == "win32" or shutil.which("git") is None or not (ROOT / ".git").exists(),
    reason="needs git, a git work tree and a POSIX shell")


def _blocks(section: str) -> list[list[str]]:
    """The shell blocks of a README section, each as its commands (comments dropped)."""
    body = README.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return [[line.split("  #")[0].strip() for line in block.splitlines()
             if line.strip() and not line.startswith("#")]
            for block in re.findall(r"```sh\n(.*?)```", body, re.S)]


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    path = tmp_path / "procward"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(path)], check=True)
    return path


@pytest.fixture
def demo(clone: Path) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """The quick start's first command, running; its output lines as they come."""
    first = _blocks("Quick start")[0][0]
    assert first == "scripts/demo"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    proc = subprocess.Popen([first], cwd=clone, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[str] = []
    banner = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "press Ctrl+C" in line:
                banner.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert banner.wait(180), "".join(lines)
        yield proc, lines
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def _activated(clone: Path, command: str) -> subprocess.CompletedProcess[str]:
    """``command`` in a shell that first runs the activation line "Using it" shows."""
    activate = _blocks("Using it")[0][0]
    assert activate == ". .venv/bin/activate"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    return subprocess.run(["sh", "-c", f"{activate} && {command}"], check=False, cwd=clone,
                          env=env, capture_output=True, text=True, timeout=60)


def test_the_quick_start_works_as_written_and_ctrl_c_leaves_nothing(
        clone: Path, demo: tuple[subprocess.Popen[str], list[str]]) -> None:
    proc, lines = demo
    assert any(".venv/bin/activate" in line for line in lines), "".join(lines)
    children = psutil.Process(proc.pid).children(recursive=True)
    assert children, "the demo supervises nothing"

    # The command the banner says finds the daemon, run as printed.
    [command] = [m.group(1) for line in lines if (m := re.search(r"`(procward status[^`]*)`",
                                                                   line))]
    assert command == "procward status -c examples/demo/procward.toml", command
    status = _activated(clone, command)
    assert status.returncode == 0, status.stdout + status.stderr
    with (clone / "examples" / "demo" / "procward.toml").open("rb") as f:
        names = tomllib.load(f)["services"]
    listed = {line.split()[0].split(":")[0] for line in status.stdout.splitlines()[1:]}
    assert listed == set(names), status.stdout  # instances are NAME:N

    sdk = _activated(clone, "python examples/sdk-service/report_sync.py --help")
    assert sdk.returncode == 0, sdk.stdout + sdk.stderr
    assert "No module named" not in sdk.stderr

    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(60) == 0, "".join(lines)
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, [p.pid for p in alive]

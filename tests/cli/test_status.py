"""``procward status`` as a new user meets it: the demo and a file of their own, at once."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from procward.config._starter import starter_config

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "examples" / "demo"


def _environ(**extra: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PROCWARD_")}
    return {**environ, "PYTHON": sys.executable, **extra}


def procward(*args: str, cwd: Path, env: dict[str, str] | None = None,
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "procward", *args], cwd=cwd,
                          env=env or _environ(), capture_output=True, text=True,
                          timeout=60, check=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def daemon(config: Path, *, cwd: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """A `procward run -c config` process, stopped (and waited for) at the end."""
    log = open(config.parent / "daemon.out", "w+", encoding="utf-8")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "procward", "run", "-c", str(config)],
                            cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def wait_status(config: Path, *, cwd: Path, proc: subprocess.Popen[str],
                timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """`procward status -c config` once it answers (the daemon may still be starting)."""
    deadline = time.monotonic() + timeout
    while True:
        result = procward("status", "-c", str(config), cwd=cwd)
        if result.returncode == 0 or time.monotonic() > deadline or proc.poll() is not None:
            return result
        time.sleep(0.1)


def test_the_demo_and_a_starter_file_run_side_by_side(tmp_path: Path) -> None:
    """Two daemons of the demo's configuration and one of `procward init`'s, each in its
    own folder, all run at once: none fails on a taken API port, and `procward status
    -c FILE` reaches each one, finding its address in that daemon's state dir."""
    configs: list[Path] = []
    for name in ("demo1", "demo2"):
        shutil.copytree(DEMO, tmp_path / name, ignore=shutil.ignore_patterns("logs", "state"))
        configs.append(tmp_path / name / "procward.toml")
    (tmp_path / "mine").mkdir()
    configs.append(tmp_path / "mine" / "procward.toml")
    configs[-1].write_text(starter_config(sys.executable), encoding="utf-8")
    env = _environ(DEMO_PORT=str(_free_port()), PORT=str(_free_port()))
    with daemon(configs[0], cwd=tmp_path, env=env) as first, \
            daemon(configs[1], cwd=tmp_path, env={**env, "DEMO_PORT": str(_free_port())}) \
            as second, daemon(configs[2], cwd=tmp_path, env=env) as third:
        urls = set()
        for config, proc, service in ((configs[0], first, "flaky"),
                                      (configs[1], second, "flaky"),
                                      (configs[2], third, "worker")):
            result = wait_status(config, cwd=tmp_path, proc=proc)
            assert result.returncode == 0, (result.stderr, config.parent.joinpath(
                "daemon.out").read_text())
            assert service in result.stdout
            urls.add((config.parent / "state" / "api.json").read_text())
        assert len(urls) == 3  # three daemons, three addresses
        for proc in (first, second, third):
            assert proc.poll() is None

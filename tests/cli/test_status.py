"""``procward status`` as a new user meets it: the demo and a file of their own, at once."""

from __future__ import annotations

import json
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


def _environ(tmp_path: Path, **extra: str) -> dict[str, str]:
    """This environment without PROCWARD_*, with a folder of its own for the list of
    running daemons, and a missing file as the default configuration."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PROCWARD_")}
    return {**environ, "PYTHON": sys.executable, "XDG_RUNTIME_DIR": str(tmp_path / "run"),
            "LOCALAPPDATA": str(tmp_path / "run"), **extra}


def procward(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "procward", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


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


def wait_status(config: Path, *, cwd: Path, proc: subprocess.Popen[str], env: dict[str, str],
                timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """`procward status -c config` once it answers (the daemon may still be starting)."""
    deadline = time.monotonic() + timeout
    while True:
        result = procward("status", "-c", str(config), cwd=cwd, env=env)
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
    env = _environ(tmp_path, DEMO_PORT=str(_free_port()), PORT=str(_free_port()))
    with daemon(configs[0], cwd=tmp_path, env=env) as first, \
            daemon(configs[1], cwd=tmp_path, env={**env, "DEMO_PORT": str(_free_port())}) \
            as second, daemon(configs[2], cwd=tmp_path, env=env) as third:
        urls = set()
        for config, proc, service in ((configs[0], first, "flaky"),
                                      (configs[1], second, "flaky"),
                                      (configs[2], third, "worker")):
            result = wait_status(config, cwd=tmp_path, proc=proc, env=env)
            assert result.returncode == 0, (result.stderr, config.parent.joinpath(
                "daemon.out").read_text())
            assert service in result.stdout
            urls.add(json.loads((config.parent / "state" / "api.json").read_text())["url"])
        assert len(urls) == 3  # three daemons, three addresses
        for proc in (first, second, third):
            assert proc.poll() is None


def wait_line(path: Path, needle: str, proc: subprocess.Popen[str],
              timeout: float = 30.0) -> str:
    """The first line of the daemon's output holding ``needle``, once written."""
    deadline = time.monotonic() + timeout
    while True:
        for line in path.read_text(encoding="utf-8").splitlines():
            if needle in line:
                return line
        if time.monotonic() > deadline or proc.poll() is not None:
            raise AssertionError(f"no line with {needle!r}:\n{path.read_text()}")
        time.sleep(0.05)


def _banner_command(output: Path, proc: subprocess.Popen[str]) -> list[str]:
    """The command the banner says finds the daemon, as words after `procward`."""
    line = wait_line(output, "finds both", proc)
    words = line.split("`")[1].split()
    assert words[:2] == ["procward", "status"]
    return words[1:]


def test_the_banner_names_the_command_that_works_where_the_user_stands(
        tmp_path: Path) -> None:
    """From a folder above the configuration the banner says `-c` with the path from
    there; from the configuration's own folder it says plain `procward status`;
    from elsewhere it gives the absolute path. Each command, run there, answers."""
    shutil.copytree(DEMO, tmp_path / "repo" / "examples" / "demo",
                    ignore=shutil.ignore_patterns("logs", "state"))
    demo = tmp_path / "repo" / "examples" / "demo"
    config = demo / "procward.toml"
    (tmp_path / "elsewhere").mkdir()
    env = _environ(tmp_path, DEMO_PORT=str(_free_port()))
    for where, expected in ((tmp_path / "repo", ["-c", os.path.join("examples", "demo",
                                                                     "procward.toml")]),
                            (demo, []),
                            (tmp_path / "elsewhere", ["-c", str(config)])):
        with daemon(config, cwd=where, env=env) as proc:
            words = _banner_command(demo / "daemon.out", proc)
            assert words[1:] == expected
            result = procward(*words, cwd=where, env=env)
            assert result.returncode == 0, result.stderr
            assert "flaky" in result.stdout


def test_without_a_configuration_the_running_daemons_are_listed(tmp_path: Path) -> None:
    """Where no configuration is found, status names each daemon this user runs with
    the -c that reaches it from here, and that works; a daemon that stopped, or one
    killed whose note is left, is not listed."""
    demo = tmp_path / "demo"
    shutil.copytree(DEMO, demo, ignore=shutil.ignore_patterns("logs", "state"))
    (tmp_path / "empty").mkdir()
    env = _environ(tmp_path, DEMO_PORT=str(_free_port()),
                   PROCWARD_CONFIG=str(tmp_path / "empty" / "none.toml"))
    here = tmp_path / "empty"
    with daemon(demo / "procward.toml", cwd=tmp_path, env=env) as proc:
        wait_line(demo / "daemon.out", "finds both", proc)
        result = procward("status", cwd=here, env=env)
        assert result.returncode != 0
        assert "no configuration at" in result.stderr
        listed = [line.split() for line in result.stderr.splitlines() if "pid" in line]
        assert listed and listed[0][:2] == ["-c", str(demo / "procward.toml")]
        assert f"pid {proc.pid}," in result.stderr
        reached = procward("status", *listed[0][:2], cwd=here, env={
            k: v for k, v in env.items() if k != "PROCWARD_CONFIG"})
        assert reached.returncode == 0, reached.stderr
    gone = procward("status", cwd=here, env=env)
    assert "no configuration at" in gone.stderr and "pid" not in gone.stderr

    killed = subprocess.Popen([sys.executable, "-m", "procward", "run", "-c",
                               str(demo / "procward.toml")], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        folder = tmp_path / "run" / "procward" / "running"
        deadline = time.monotonic() + 30
        while not (folder / f"{killed.pid}.json").exists():
            assert time.monotonic() < deadline and killed.poll() is None
            time.sleep(0.05)
    finally:
        killed.kill()
        killed.wait()
    assert (folder / f"{killed.pid}.json").exists()  # no chance to remove its note
    stale = procward("status", cwd=here, env=env)
    assert "no configuration at" in stale.stderr and "pid" not in stale.stderr

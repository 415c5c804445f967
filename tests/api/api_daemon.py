"""A real `procward run` daemon on a loopback port, driven by the real CLI and HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

# Status states in which an instance's pid is its running program's.
_ALIVE = ("starting", "running", "stopping")


def toml_list(argv: list[str]) -> str:
    return json.dumps(argv)


class RunningDaemon:
    """`procward run -c procward.toml` in a temp folder; ends everything it started by pid."""

    def __init__(self, root: Path, body: str, api: str = 'listen = "127.0.0.1:0"') -> None:
        self.root = root
        self.config = root / "procward.toml"
        self.write(body, api)
        self.output = root / "daemon.out"
        self._out = open(self.output, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "procward", "run", "-c", str(self.config)],
            stdout=self._out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        # The services' processes, held from when status first shows them alive:
        # the handle knows the create time, so stop() cannot end a process
        # that has taken a dead one's pid since.
        self.processes: dict[int, psutil.Process] = {}
        deadline = time.monotonic() + 20
        while not (self.state / "api.json").exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError("the daemon did not start its API:\n"
                                     + self.output.read_text(errors="replace"))
            time.sleep(0.02)
        info = json.loads((self.state / "api.json").read_text())
        self.url: str = info["url"]
        self.token = (self.state / "admin.token").read_text().strip()

    def write(self, body: str, api: str = 'listen = "127.0.0.1:0"') -> None:
        self.config.write_text(f"[api]\n{api}\n\n{body}")

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def cli(self, *args: str, timeout: float = 30, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
        """The real `procward` command, finding this daemon through its configuration."""
        return subprocess.run([sys.executable, "-m", "procward", *args, "-c", str(self.config)],
                              check=False, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **(env or {})}, cwd=self.root)

    def http(self, method: str, path: str, *, token: str | None = "admin",
             body: object = None) -> tuple[int, Any]:
        """A real HTTP request (urllib); token "admin" means the local admin token."""
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {self.token if token == 'admin' else token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
                status = resp.status
                kind = resp.headers.get("content-type", "")
        except urllib.error.HTTPError as e:
            raw, status, kind = e.read(), e.code, e.headers.get("content-type", "")
        return status, json.loads(raw) if "json" in kind and raw else raw.decode()

    def status(self) -> dict[str, dict[str, Any]]:
        code, body = self.http("GET", "/v1/services")
        assert code == 200, body
        rows = {row["name"]: row for row in body["services"]}
        for row in rows.values():
            pid = row["pid"]
            if pid and row["state"] in _ALIVE and pid not in self.processes:
                try:
                    self.processes[pid] = psutil.Process(pid)
                except psutil.Error:
                    pass
        return rows

    def wait(self, predicate: Any, what: str, timeout: float = 15) -> dict[str, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            rows = self.status()
            if predicate(rows):
                return rows
            if time.monotonic() > deadline:
                raise AssertionError(f"never {what}; status: {rows}")
            time.sleep(0.05)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()
        for process in self.processes.values():
            try:
                process.kill()
            except psutil.Error:
                pass
        return self.proc.returncode


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[Any]:
    started: list[RunningDaemon] = []

    def start(body: str, api: str = 'listen = "127.0.0.1:0"',
              root: Path | None = None) -> RunningDaemon:
        folder = root or tmp_path
        folder.mkdir(parents=True, exist_ok=True)
        daemon = RunningDaemon(folder, body, api)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


needs_posix = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

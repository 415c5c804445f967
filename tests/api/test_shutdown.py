"""`procward shutdown` and POST /v1/shutdown: every service stops in order, then the daemon."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest
import schemathesis
from api_daemon import RunningDaemon, toml_list

from procward.testing import python

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="runs POSIX daemons")

SLEEPER = toml_list(python("import time; time.sleep(600)"))
# A program with a child of its own, whose pid it writes down: the whole tree must end.
PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
open(sys.argv[1], "w").write(str(child.pid))
time.sleep(600)
"""


def _body(root: Path) -> str:
    return f"""
[services.db]
command = {SLEEPER}
start_seconds = 0.1

[services.web]
command = {toml_list([*python(PARENT), str(root / "grandchild.pid")])}
start_seconds = 0.1
depends_on = ["db"]

[services.worker]
command = {SLEEPER}
start_seconds = 0.1
instances = 2
"""


def _all_running(d: RunningDaemon) -> dict[str, dict[str, Any]]:
    return d.wait(lambda rows: len(rows) == 4 and all(
        r["state"] == "running" for r in rows.values()), "all running")


def _events(d: RunningDaemon) -> list[dict[str, Any]]:
    return [json.loads(line) for line in
            (d.logs / "procward.events.jsonl").read_text().splitlines()]


def test_shutdown_stops_every_service_in_order_then_the_daemon(start_daemon: Any,
                                                               tmp_path: Path) -> None:
    """`procward shutdown` says what it stops, waits until the daemon is gone, exits 0; the
    daemon stopped dependents before what they depend on, left no process of any service's
    tree behind, removed api.json and exited 0."""
    d = start_daemon(_body(tmp_path))
    _all_running(d)
    pid_file = tmp_path / "grandchild.pid"
    d.wait(lambda rows: pid_file.exists() and pid_file.read_text() != "", "grandchild started")
    grandchild = psutil.Process(int(pid_file.read_text()))
    tree = [*d.processes.values(), grandchild]
    daemon_pid = d.proc.pid

    done = d.cli("shutdown")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"stopping web, worker, db, then procward (pid {daemon_pid})", "procward stopped"]
    assert d.proc.poll() == 0, "the daemon has exited, and cleanly"
    assert not (d.state / "api.json").exists()
    alive = [p.pid for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert alive == [], "no process of any service's tree survives the shutdown"

    events = _events(d)
    asked = [e for e in events if e["kind"] == "control" and e.get("action") == "shutdown"]
    assert [e["by"] for e in asked] == ["local-admin"]
    steps = [(e["service"], e["state"]) for e in events
             if e["kind"] == "state" and e["state"] in ("stopping", "stopped")]
    assert steps.index(("web", "stopped")) < steps.index(("db", "stopping")), \
        "web, which depends on db, stopped before db began to"


def test_shutdown_needs_an_admin_token(start_daemon: Any, tmp_path: Path) -> None:
    """A read token is refused with 403 (the CLI: exit 1, naming admin) and nothing stops."""
    d = start_daemon(_body(tmp_path))
    before = _all_running(d)
    reader = d.cli("token", "new", "grafana", "--role", "read").stdout.strip()
    code, body = d.http("POST", "/v1/shutdown", token=reader)
    assert code == 403 and "admin" in body["error"]
    denied = d.cli("shutdown", "--token", reader)
    assert denied.returncode == 1 and "needs admin" in denied.stderr
    assert d.http("POST", "/v1/shutdown", token=None)[0] == 401
    assert d.proc.poll() is None
    assert {n: r["pid"] for n, r in d.status().items()} == \
        {n: r["pid"] for n, r in before.items()}


def test_shutdown_json_and_the_document(start_daemon: Any, tmp_path: Path) -> None:
    """`--json` prints the daemon's answer and whether it is gone; the answer of
    POST /v1/shutdown matches the OpenAPI document the daemon serves."""
    d = start_daemon(_body(tmp_path))
    _all_running(d)
    operation = schemathesis.openapi.from_url(d.url + "/openapi.json")["/v1/shutdown"]["POST"]
    response = operation.Case().call(base_url=d.url,
                                     headers={"Authorization": f"Bearer {d.token}"})
    assert response.status_code == 200
    operation.validate_response(response)
    assert response.json()["stopping"] == ["web", "worker", "db"]
    d.proc.wait(timeout=60)
    assert d.proc.returncode == 0

    again = start_daemon(_body(tmp_path / "second"), root=tmp_path / "second")
    _all_running(again)
    done = again.cli("shutdown", "--json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer == {"action": "shutdown", "stopping": ["web", "worker", "db"],
                      "stop_budget": answer["stop_budget"], "pid": again.proc.pid,
                      "stopped": True}
    assert answer["stop_budget"] > 0
    assert again.proc.poll() == 0


def test_shutdown_without_a_daemon_says_it_is_not_running(tmp_path: Path) -> None:
    """With no daemon running, `procward shutdown` exits 3 and says how to start one."""
    cfg = tmp_path / "procward.toml"
    cfg.write_text('[services.a]\ncommand = "sleep 1"\n')
    out = subprocess.run([sys.executable, "-m", "procward", "shutdown", "-c", str(cfg)],
                         check=False, capture_output=True, text=True, timeout=30)
    assert out.returncode == 3
    assert "procward is not running" in out.stderr and "procward run" in out.stderr


def test_shutdown_help() -> None:
    """`procward shutdown --help` says what it does and that it needs an admin token."""
    out = subprocess.run([sys.executable, "-m", "procward", "shutdown", "--help"],
                         check=False, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    assert "then the daemon" in out.stdout and "admin token" in out.stdout


def test_shutdown_through_a_url_waits_until_the_api_closes(start_daemon: Any,
                                                           tmp_path: Path) -> None:
    """With --url and --token (no configuration, as from another machine) the command
    waits until the daemon's API has closed, says so, and exits 0; the daemon then exits 0."""
    d = start_daemon(_body(tmp_path))
    _all_running(d)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run([sys.executable, "-m", "procward", "shutdown", "--url", d.url,
                           "--token", d.token], check=False, capture_output=True, text=True,
                          cwd=elsewhere, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "procward's API has closed"
    assert d.proc.wait(timeout=60) == 0


def test_shutdown_names_at_most_twenty_services(start_daemon: Any) -> None:
    """With more than twenty services the line names the first twenty and counts the rest."""
    d = start_daemon("".join(f"\n[services.job{i:02}]\ncommand = {SLEEPER}\nstart_seconds = 0.1\n"
                             for i in range(22)))
    d.wait(lambda rows: len(rows) == 22 and all(r["state"] == "running" for r in rows.values()),
           "all running")
    done = d.cli("shutdown")
    assert done.returncode == 0, done.stderr
    names = ", ".join(f"job{i:02}" for i in range(20))
    assert done.stdout.splitlines()[0] == \
        f"stopping {names} and 2 more, then procward (pid {d.proc.pid})"
    assert d.proc.poll() == 0

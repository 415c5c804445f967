"""Health checks against real servers and programs: http, tcp, command and heartbeat probes."""

from __future__ import annotations

import socket
import sys
import textwrap
from pathlib import Path

import pytest

from procward.config import HealthSettings
from procward.engine import EventKind, Health, State
from procward.engine._health import HealthTracker
from procward.testing import make_config, python, supervised

# Probes often, and with a long start period: a server or interpreter slow to
# start (a busy machine) is not unhealthy before its first answer, which ends
# the period at once.
FAST = {"interval": "0.2s", "timeout": "1s", "start_period": "30s"}
NO_LIMIT = {"start_limit": {"burst": 50, "interval": "60s"}}

# An HTTP server whose answers the test steers with files: 500 while FAIL exists,
# a body of BODY's content if it exists. Each request is logged on stdout.
HTTP_SERVER = """
    import http.server, os, sys
    port, fail, body = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            code = 500 if os.path.exists(fail) else 200
            text = open(body).read() if os.path.exists(body) else "ok"
            print(f"GET {self.path} -> {code}", flush=True)
            self.send_response(code)
            self.end_headers()
            self.wfile.write(text.encode())
        def log_message(self, *a):
            pass
    http.server.HTTPServer.allow_reuse_address = True
    http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


H, U = Health.HEALTHY, Health.UNHEALTHY


@pytest.mark.parametrize(("settings", "results", "changes"), [
    # Failures inside start_period do not count; `failures` in a row turn it
    # unhealthy, one success healthy again.
    (HealthSettings(tcp="x:1", start_period=10, failures=3),
     [(False, 1), (False, 2), (False, 3), (False, 11), (False, 12), (False, 13), (True, 14),
      (False, 15), (True, 16), (False, 17), (False, 18), (False, 19)],
     [None, None, None, None, None, U, H, None, None, None, None, U]),
    # A success ends the start period at once.
    (HealthSettings(tcp="x:1", start_period=100, failures=1),
     [(True, 1), (False, 2)], [H, U]),
    # A heartbeat check's start period lasts at least one heartbeat period.
    (HealthSettings(heartbeat=5, start_period=1, failures=1),
     [(False, 1), (False, 2), (False, 4.9), (False, 5.1)], [None, None, None, U]),
])
def test_tracker_turns_probe_results_into_health_changes(
        settings: HealthSettings, results: list[tuple[bool, float]],
        changes: list[Health | None]) -> None:
    """Probe results at given times (the clock passed in) give exactly these changes."""
    tracker = HealthTracker(settings, now=0)
    assert tracker.status is Health.STARTING
    assert [tracker.record(ok, t) for ok, t in results] == changes


def test_http_probe_restarts_after_failures(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """A real HTTP server that starts answering 500 is restarted after `failures` probes."""
    port, fail, body = free_port(), tmp_path / "fail", tmp_path / "body"
    cfg = make_config(tmp_path, {"web": {
        "command": [*python(HTTP_SERVER), str(port), str(fail), str(body)],
        "start_seconds": 0.1, **NO_LIMIT,
        "health": {"http": f"http://127.0.0.1:{port}/healthz", "failures": 3, **FAST}}})

    async def scenario() -> None:
        async with supervised(cfg) as (sup, rec):
            await rec.wait(EventKind.HEALTH, health=Health.HEALTHY)
            first = sup.status(["web"])[0]
            assert first.health is Health.HEALTHY and first.to_dict()["health"] == "healthy"
            fail.touch()
            unhealthy = await rec.wait(EventKind.HEALTH, health=Health.UNHEALTHY)
            assert unhealthy[0].payload.failures == 3
            assert "HTTP 500, expected 2xx" in unhealthy[0].message
            stopping = await rec.wait_state("web", "stopping")
            assert stopping[0].message.startswith("stopping: restarting: unhealthy: HTTP 500")
            fail.unlink()
            # A new process, healthy again.
            await rec.wait_for(lambda e: e.kind is EventKind.HEALTH
                               and e.payload.health is Health.HEALTHY
                               and e.payload.pid != first.pid)
            again = sup.status(["web"])[0]
            assert again.pid != first.pid and again.restarts == 1
            assert again.state is State.RUNNING and again.health is Health.HEALTHY
        # The server saw exactly three failing probes before the restart.
        log = (tmp_path / "logs" / "web.out.log").read_text()
        served = log.splitlines()
        first_500 = next(i for i, line in enumerate(served) if line.endswith("500"))
        assert served[first_500:first_500 + 4].count("GET /healthz -> 500") == 3

    run(scenario())


def test_http_expect_status_and_body(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """expect_body must be in the body; with on_unhealthy = none nothing is restarted."""
    port, fail, body = free_port(), tmp_path / "fail", tmp_path / "body"
    body.write_text("status: ready")
    cfg = make_config(tmp_path, {"web": {
        "command": [*python(HTTP_SERVER), str(port), str(fail), str(body)],
        "health": {"http": f"http://127.0.0.1:{port}/", "expect_status": 200,
                   "expect_body": "ready", "failures": 2, "on_unhealthy": "none", **FAST}}})

    async def scenario() -> None:
        async with supervised(cfg) as (sup, rec):
            await rec.wait(EventKind.HEALTH, health=Health.HEALTHY)
            body.write_text("status: draining")
            bad = await rec.wait(EventKind.HEALTH, health=Health.UNHEALTHY)
            assert "lacks 'ready'" in bad[0].message
            body.write_text("status: ready")
            await rec.wait(EventKind.HEALTH, health=Health.HEALTHY, count=2)
            assert sup.status(["web"])[0].restarts == 0
            assert not rec.matching("web", EventKind.STATE, state="stopping")
            assert not rec.matching("web", EventKind.ALERT)

    run(scenario())


TCP_SERVER = """
    import os, socket, sys, time
    port, gate = int(sys.argv[1]), sys.argv[2]
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen()
    while not os.path.exists(gate):
        time.sleep(0.05)
    s.close()   # stops accepting connections, keeps running
    time.sleep(60)
"""


def test_tcp_probe_turns_unhealthy_when_the_port_closes(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """A TCP probe is healthy while the port accepts, unhealthy (and alerts) once it does not."""
    port, gate = free_port(), tmp_path / "gate"
    cfg = make_config(tmp_path, {"db": {
        "command": [*python(TCP_SERVER), str(port), str(gate)], "start_seconds": 0.1,
        "health": {"tcp": f"127.0.0.1:{port}", "failures": 2, "on_unhealthy": "alert", **FAST}}})

    async def scenario() -> None:
        async with supervised(cfg) as (sup, rec):
            await rec.wait_state("db", "running")
            await rec.wait(EventKind.HEALTH, health=Health.HEALTHY)
            gate.touch()
            await rec.wait(EventKind.HEALTH, health=Health.UNHEALTHY)
            alert = await rec.wait(EventKind.ALERT, "db")
            assert alert[0].fields["alert"] == "unhealthy"
            status = sup.status(["db"])[0]
            assert status.state is State.RUNNING and status.health is Health.UNHEALTHY
            assert status.restarts == 0

    run(scenario())


def test_command_probe_runs_in_the_services_environment(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """A command probe's exit code decides; it runs with the service's cwd and environment."""
    flag = tmp_path / "ok"
    probe = [sys.executable, "-c",
             "import os, sys; sys.exit(0 if os.path.exists('ok') and "
             "os.environ['PROCWARD_SERVICE'] == 'job' and os.environ['COLOR'] == 'blue' else 3)"]
    cfg = make_config(tmp_path, {"job": {
        "command": python("import time; time.sleep(60)"), "env": {"COLOR": "blue"},
        # No start period: the probe's first failures are what this test is about.
        "health": {"command": probe, "failures": 2, "on_unhealthy": "none", **FAST,
                   "start_period": "0s"}}})

    async def scenario() -> None:
        async with supervised(cfg) as (sup, rec):
            bad = await rec.wait(EventKind.HEALTH, health=Health.UNHEALTHY)
            assert "exit code 3" in bad[0].message
            flag.touch()
            await rec.wait(EventKind.HEALTH, health=Health.HEALTHY)
            assert sup.status(["job"])[0].health is Health.HEALTHY

    run(scenario())


def test_heartbeat_that_stops_turns_unhealthy(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """Heartbeats (the SDK) keep it healthy; when they stop it turns unhealthy and restarts."""
    gate = tmp_path / "gate"
    code = f"""
        import os, time
        from procward import notify
        while not os.path.exists({str(gate)!r}):
            notify.heartbeat()
            time.sleep(0.1)
        time.sleep(60)   # alive, but silent
    """
    cfg = make_config(tmp_path, {"beat": {
        # Not python(): that runs isolated, and this program imports the SDK.
        "command": [sys.executable, "-c", textwrap.dedent(code)], **NO_LIMIT,
        "start_seconds": 0.1,
        "health": {"heartbeat": "0.5s", "failures": 2, **FAST}}})

    async def scenario() -> None:
        async with supervised(cfg) as (sup, rec):
            healthy = await rec.wait(EventKind.HEALTH, health=Health.HEALTHY)
            gate.touch()
            bad = await rec.wait(EventKind.HEALTH, health=Health.UNHEALTHY)
            assert "no heartbeat for" in bad[0].message
            assert bad[0].payload.pid == healthy[0].payload.pid
            await rec.wait_state("beat", "stopping")
            gate.unlink()
            await rec.wait(EventKind.HEALTH, health=Health.HEALTHY, count=2)
            assert sup.status(["beat"])[0].restarts == 1

    run(scenario())


def test_no_heartbeat_at_all_is_never_healthy(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """A program that never sends a heartbeat is not healthy for a moment after it
    starts: it stays starting, then turns unhealthy, saying none ever came."""
    cfg = make_config(tmp_path, {"mute": {
        "command": python("import time; time.sleep(60)"), "start_seconds": 0.1,
        "health": {"heartbeat": "0.3s", "failures": 2, "interval": "0.1s", "timeout": "1s",
                   "start_period": "0s", "on_unhealthy": "none"}}})

    async def scenario() -> None:
        async with supervised(cfg) as (_, rec):
            bad = await rec.wait(EventKind.HEALTH, health=Health.UNHEALTHY)
            assert "no heartbeat yet" in bad[0].message
            assert rec.matching("mute", EventKind.HEALTH, health="healthy") == []

    run(scenario())


def test_a_notify_service_is_checked_from_ready_on(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """With notify = true the heartbeat check starts at READY, as systemd's watchdog
    does: a program that prepares for several heartbeat periods without sending
    one is not unhealthy (nor restarted) before it is ready."""
    code = """
        import time
        from procward import notify
        time.sleep(2.5)          # preparing: past a heartbeat period and two probes
        notify.ready()
        while True:
            notify.heartbeat()
            time.sleep(0.05)
    """
    cfg = make_config(tmp_path, {"slow": {
        "command": [sys.executable, "-c", textwrap.dedent(code)], "notify": True,
        # A second's grace after READY, so that a slow machine stalling the
        # program does not count; before the fix it was unhealthy 1.2 s after spawn.
        "health": {"heartbeat": "1s", "failures": 2, "interval": "0.1s", "timeout": "1s",
                   "start_period": "0s"}}})

    async def scenario() -> None:
        async with supervised(cfg) as (sup, rec):
            await rec.wait_state("slow", "starting")
            assert sup.status(["slow"])[0].health is Health.STARTING
            healthy = await rec.wait(EventKind.HEALTH, health=Health.HEALTHY)
            ready = rec.matching("slow", EventKind.NOTIFY, report="ready")
            assert ready and rec.events.index(ready[0]) < rec.events.index(healthy[0])
            assert rec.matching("slow", EventKind.HEALTH, health="unhealthy") == []
            assert sup.status(["slow"])[0].restarts == 0

    run(scenario())


@pytest.mark.skipif(not hasattr(socket, "SO_PASSCRED"),
                    reason="systemd's notify socket is Linux-only")
def test_systemd_watchdog_counts_as_heartbeat(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """WATCHDOG=1 on NOTIFY_SOCKET feeds the heartbeat check; WATCHDOG_USEC tells its period."""
    code = """
        import os, socket, time
        path = os.environ["NOTIFY_SOCKET"]
        path = "\\0" + path[1:] if path.startswith("@") else path
        period = int(os.environ["WATCHDOG_USEC"]) / 1e6
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        while True:
            s.sendto(b"WATCHDOG=1", path)
            time.sleep(period / 4)
    """
    cfg = make_config(tmp_path, {"wd": {"command": python(code),
                                        "health": {"heartbeat": "0.4s", **FAST}}})

    async def scenario() -> None:
        async with supervised(cfg) as (sup, rec):
            await rec.wait(EventKind.HEALTH, health=Health.HEALTHY)
            assert sup.status(["wd"])[0].health is Health.HEALTHY

    run(scenario())


def test_depends_on_waits_for_a_healthy_dependency(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """A dependent starts only once its dependency with a health check is healthy."""
    port, gate = free_port(), tmp_path / "gate"
    late_listener = """
        import os, socket, sys, time
        port, gate = int(sys.argv[1]), sys.argv[2]
        while not os.path.exists(gate):
            time.sleep(0.05)
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen()
        time.sleep(60)
    """
    cfg = make_config(tmp_path, {
        "db": {"command": [*python(late_listener), str(port), str(gate)], "start_seconds": 0.1,
               "health": {"tcp": f"127.0.0.1:{port}", **FAST}},
        "app": {"command": python("import time; time.sleep(60)"), "depends_on": ["db"],
                "start_seconds": 0.1},
    })

    async def scenario() -> None:
        async with supervised(cfg) as (sup, rec):
            await rec.wait_state("db", "running")
            # db runs but is not healthy yet: app waits.
            app = sup.status(["app"])[0]
            assert app.state is State.STARTING and app.pid is None
            assert app.reason == "waiting for db"
            gate.touch()
            await rec.wait_state("app", "running")
            healthy = rec.matching("db", EventKind.HEALTH, health="healthy")
            spawned = [e for e in rec.matching("app", EventKind.STATE, state="starting")
                       if e.payload.pid]
            assert healthy and spawned
            assert rec.events.index(healthy[0]) < rec.events.index(spawned[0])

    run(scenario())

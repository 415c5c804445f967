"""Alerts with real programs, a real webhook receiver and a real command sink."""

from __future__ import annotations

import asyncio
import json
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from procward.engine import (
    Event,
    EventKind,
    Exit,
    Health,
    HealthChange,
    Payload,
    State,
    StateChange,
)
from procward.engine.alerts import Alert
from procward.engine.alerts.builtin import BuiltinAlerts
from procward.testing import make_config, python, supervised


def program(code: str) -> list[str]:
    """``python(code)`` writing its output line by line (``-I`` ignores PYTHONUNBUFFERED)."""
    return python("import sys; sys.stdout.reconfigure(line_buffering=True)\n"
                  + textwrap.dedent(code))


class Receiver:
    """A webhook receiver on loopback: keeps each JSON body; answers as the test says."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.codes: list[int] = []      # answers to give, in order; then 200
        self.hold = threading.Event()   # while clear... set by default: answer at once
        self.hold.set()
        self._changed = threading.Condition()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with owner._changed:
                    owner.bodies.append(json.loads(body))
                    code = owner.codes.pop(0) if owner.codes else 200
                    owner._changed.notify_all()
                owner.hold.wait(30)
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    # Generous: once, on a machine busy with the Windows tests, not even the first
    # post came within 20 s (the daemon, its config child and the program all start first).
    def wait_for(self, count: int, timeout: float = 60) -> list[dict[str, Any]]:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.bodies) >= count, timeout):
                raise TimeoutError(f"received {len(self.bodies)} of {count} posts")
            return list(self.bodies)

    async def received(self, count: int) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.wait_for, count)

    def close(self) -> None:
        self.hold.set()
        self._server.shutdown()
        self._server.server_close()


async def until(predicate: Callable[[], bool], timeout: float = 15) -> None:
    # For effects outside the daemon (a file a sink wrote), which no event reports.
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.05)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_rule_fires_once_per_cooldown_with_the_matched_lines(tmp_path: Path, run,  # type: ignore[no-untyped-def]
                                                             receiver: Receiver) -> None:
    """30 matching lines within the cooldown make one alert, carrying the lines that matched."""
    code = """
        import time
        for i in range(30):
            print(f"ERROR disk {i} failed")
            print("all fine here")
            time.sleep(0.01)
        print("finished")
        time.sleep(60)
    """
    cfg = make_config(tmp_path, {"app": {
        "command": program(code),
        "alerts": [
            {"pattern": r"ERROR disk \d+", "stream": "stdout", "threshold": 3, "window": "10s",
             "cooldown": "5m", "actions": ["hook"]},
            {"pattern": "ERROR", "stream": "stderr", "actions": ["hook"]},
            {"pattern": "^finished$", "actions": ["hook"]},
        ]}}, alerts={"sinks": {"hook": {"type": "webhook", "url": receiver.url}}})

    async def scenario() -> None:
        async with supervised(cfg) as (sup, rec):
            bodies = await receiver.received(2)
            # "finished" comes after every ERROR line: all ERROR alerts have fired by now.
            await rec.wait_for(lambda e: e.kind is EventKind.ALERT, count=2)
            fired = rec.matching("app", EventKind.ALERT)
            assert [e.fields["rule"] for e in fired] == [r"ERROR disk \d+", "^finished$"]
            errors = next(b for b in bodies if b["rule"] == r"ERROR disk \d+")
            assert errors["lines"] == ["ERROR disk 0 failed", "ERROR disk 1 failed",
                                       "ERROR disk 2 failed"]
            assert errors["count"] == 3 and errors["threshold"] == 3
            assert errors["service"] == "app" and errors["instance"] == "app"
            assert errors["kind"] == "rule" and errors["host"]
            await until(lambda: sup.alerts.delivered == 2)
            assert len(receiver.bodies) == 2

    run(scenario())


def test_matches_in_cooldown_are_reported_as_suppressed(tmp_path: Path, run,  # type: ignore[no-untyped-def]
                                                        receiver: Receiver) -> None:
    """After the cooldown the rule fires again, saying how many matches it held back."""
    code = """
        import time
        for i in range(5):
            print(f"panic {i}")
        time.sleep(1.5)
        print("panic again")
        time.sleep(60)
    """
    cfg = make_config(tmp_path, {"app": {
        "command": program(code),
        "alerts": [{"pattern": "panic", "threshold": 1, "cooldown": "1s", "actions": ["hook"]}],
    }}, alerts={"sinks": {"hook": {"type": "webhook", "url": receiver.url}}})

    async def scenario() -> None:
        async with supervised(cfg):
            first, second = await receiver.received(2)
            assert first["lines"] == ["panic 0"] and first["suppressed"] == 0
            assert second["lines"] == ["panic again"] and second["suppressed"] == 4

    run(scenario())


def test_failing_webhook_is_retried_and_never_blocks_capture(tmp_path: Path, run,  # type: ignore[no-untyped-def]
                                                             receiver: Receiver) -> None:
    """A sink answering 500 is retried until it takes the alert; a hung one holds up no output."""
    gate = tmp_path / "gate"
    code = f"""
        import os, time
        print("FATAL one", flush=True)
        while not os.path.exists({str(gate)!r}):
            time.sleep(0.05)
        for i in range(2000):
            print(f"line {{i}}")
        print("done", flush=True)
        time.sleep(60)
    """
    cfg = make_config(tmp_path, {"app": {
        "command": program(code),
        "alerts": [{"pattern": "FATAL", "actions": ["hook"]},
                   {"pattern": "^done$"}],   # no sink: only its event tells us "done" was read
    }}, alerts={"sinks": {"hook": {"type": "webhook", "url": receiver.url}}})
    receiver.codes = [500, 503]

    async def scenario() -> None:
        async with supervised(cfg) as (sup, rec):
            sup.alerts.retry_initial = 0.2  # keep the test short; the default is 1 s
            bodies = await receiver.received(3)
            assert [b["lines"] for b in bodies] == [["FATAL one"]] * 3
            await rec.wait_for(lambda e: e.kind is EventKind.ALERT)
            # Now the receiver hangs on every request, and the program writes 2000 lines.
            receiver.hold.clear()
            sup.alerts.fire(Alert("rule", "app", "app", "manual", "a hung delivery",
                                  sinks=["hook"]))
            await receiver.received(4)
            gate.touch()
            log = tmp_path / "logs" / "app.out.log"
            await rec.wait_for(lambda e: e.kind is EventKind.ALERT and e.fields["rule"] == "^done$")
            assert log.read_text().count("\nline ") == 2000
            assert not receiver.hold.is_set()  # the 4th delivery is still unanswered
            assert sup.alerts.delivered == 1
            receiver.hold.set()
        assert not rec.matching("app", EventKind.ALERT_FAILED)

    run(scenario())


def test_sink_that_never_works_gives_up_with_an_event(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """A command sink that always fails is tried `attempts` times, then alert_failed says so."""
    cfg = make_config(tmp_path, {"app": {
        "command": program("print('boom'); import time; time.sleep(60)"),
        "alerts": [{"pattern": "boom", "actions": ["broken"]}],
    }}, alerts={"sinks": {"broken": {"type": "command", "command": python(
        "import sys; sys.stderr.write('no route'); sys.exit(4)")}}})

    async def scenario() -> None:
        async with supervised(cfg) as (sup, rec):
            sup.alerts.retry_initial = 0.05
            failed = await rec.wait_for(lambda e: e.kind is EventKind.ALERT_FAILED)
            assert failed[0].fields["attempts"] == 5 and failed[0].fields["sink"] == "broken"
            assert "exit code 4: no route" in failed[0].fields["error"]

    run(scenario())


def test_command_sink_gets_the_facts_in_its_environment(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """A command sink runs with PROCWARD_ALERT_* set; a rule with "restart" restarts the service."""
    out = tmp_path / "alert.json"
    sink = python(f"""
        import json, os
        facts = {{k: v for k, v in os.environ.items() if k.startswith("PROCWARD_ALERT_")}}
        with open({str(out)!r}, "w") as f:
            json.dump(facts, f)
    """)
    cfg = make_config(tmp_path, {"app": {
        "command": python("import sys, time; print('OOM killer', file=sys.stderr, flush=True);"
                          " time.sleep(60)"),
        "start_seconds": 0.1,
        "alerts": [{"pattern": "OOM", "stream": "stderr", "actions": ["run", "restart"],
                    "cooldown": "1m"}],
    }}, alerts={"sinks": {"run": {"type": "command", "command": sink}}})

    async def scenario() -> None:
        async with supervised(cfg) as (_, rec):
            stopping = await rec.wait_state("app", "stopping")
            assert "alert rule 'OOM' fired" in stopping[0].message
            await rec.wait_for(lambda e: e.kind is EventKind.STATE and e.fields["pid"]
                               and e.fields["state"] == "starting", count=2)
            await until(lambda: out.exists() and out.stat().st_size > 0)
        facts = json.loads(out.read_text())
        assert facts["PROCWARD_ALERT_SERVICE"] == "app"
        assert facts["PROCWARD_ALERT_RULE"] == "OOM"
        assert facts["PROCWARD_ALERT_LINES"] == "OOM killer"
        assert json.loads(facts["PROCWARD_ALERT_JSON"])["count"] == 1

    run(scenario())


def test_builtin_alerts_for_restart_storm_and_failed(tmp_path: Path, run,  # type: ignore[no-untyped-def]
                                                     receiver: Receiver) -> None:
    """A crash loop raises a restart-storm alert, then a failed alert, to every sink."""
    cfg = make_config(tmp_path, {"loop": {
        "command": python("import time, sys; time.sleep(0.15); sys.exit(1)"),
        "start_seconds": 0.1, "start_limit": {"burst": 8, "interval": "60s"}}},
        alerts={"sinks": {"hook": {"type": "webhook", "url": receiver.url}}})

    async def scenario() -> None:
        async with supervised(cfg) as (_, rec):
            await rec.wait_state("loop", "failed")
            storm, failed = await receiver.received(2)
            assert storm["kind"] == "restart_storm" and storm["count"] == 6
            assert failed["kind"] == "failed" and "giving up" in failed["message"]
            assert [e.fields["alert"] for e in rec.matching("loop", EventKind.ALERT)] == [
                "restart_storm", "failed"]

    run(scenario())


def test_system_log_sink_delivers(tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    """A syslog sink (the Event Log on Windows) takes an alert without error."""
    cfg = make_config(tmp_path, {"app": {
        "command": program("print('disk full'); import time; time.sleep(60)"),
        "alerts": [{"pattern": "disk full", "actions": ["log"]}],
    }}, alerts={"sinks": {"log": {"type": "syslog"}}})

    async def scenario() -> None:
        async with supervised(cfg) as (sup, rec):
            await rec.wait_for(lambda e: e.kind is EventKind.ALERT)
            await until(lambda: sup.alerts.delivered == 1)
            assert not rec.matching("app", EventKind.ALERT_FAILED)

    run(scenario())


def _health(health: Health, on_unhealthy: str) -> HealthChange:
    return HealthChange(health, "probe", 3, on_unhealthy, 7, "web")


@pytest.mark.parametrize(("payload", "alerts"), [
    (StateChange(State.FAILED, State.BACKOFF, None, 5), ["failed"]),
    (StateChange(State.RUNNING, State.STARTING, 7, 3), []),
    (_health(Health.UNHEALTHY, "restart"), ["unhealthy"]),
    (_health(Health.UNHEALTHY, "alert"), ["unhealthy"]),
    (_health(Health.UNHEALTHY, "none"), []),
    (_health(Health.HEALTHY, "alert"), []),
    (Exit(7, 1, None, 2.0), []),
])
def test_which_events_raise_a_builtin_alert(payload: Payload, alerts: list[str]) -> None:
    """failed and unhealthy (unless on_unhealthy is none) alert; other events do not."""
    fired: list[Alert] = []
    builtin = BuiltinAlerts(fired.append)
    builtin.on_event(Event.of(payload, "what happened", "web:1"))
    assert [(a.kind, a.service, a.instance, a.message) for a in fired] == [
        (k, "web", "web:1", "what happened") for k in alerts]


def test_a_restart_storm_alerts_once_per_window() -> None:
    """More than 5 restarts within the window alert once; the next window may alert again."""
    now = [0.0]
    fired: list[Alert] = []
    builtin = BuiltinAlerts(fired.append, storm_restarts=5, storm_window=300.0,
                            clock=lambda: now[0])

    def restarted(count: int, at: float) -> None:
        now[0] = at
        builtin.on_event(Event.of(StateChange(State.STARTING, State.RUNNING, None, count),
                                  "starting", "web"))

    for count in range(8):  # the first start, then 7 restarts within a minute
        restarted(count, count * 5.0)
    assert [(a.kind, a.count) for a in fired] == [("restart_storm", 6)]
    for count in range(8, 15):  # 7 more, still within the quiet window
        restarted(count, 100 + count)
    assert len(fired) == 1
    for count in range(15, 22):  # past it
        restarted(count, 400 + count)
    assert [(a.kind, a.count) for a in fired] == [("restart_storm", 6)] * 2

"""Events: each kind's payload, the event log's JSON keys, and how the console prints them."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from procward.cli._render import EventPrinter
from procward.engine import (
    AlertFailure,
    AlertFired,
    AuthFailure,
    Control,
    ControlAction,
    DaemonNote,
    Event,
    EventKind,
    Exit,
    Health,
    HealthChange,
    LogDropped,
    LogError,
    LogResumed,
    MemoryMax,
    NotifyRejection,
    NotifyReport,
    Payload,
    Reload,
    SpawnFailure,
    State,
    StateChange,
    Supervisor,
)
from procward.engine._events import PAYLOADS
from procward.testing import EventRecorder, make_config

# Each payload and the facts its line in procward.events.jsonl carries, as
# docs/running.md, docs/control.md and docs/api-reference.md describe them.
LINES: list[tuple[Payload, dict[str, Any]]] = [
    (DaemonNote(pid=7, config="/etc/p.toml", open_files_limit=4096, open_files_limit_was=1024),
     {"pid": 7, "config": "/etc/p.toml", "open_files_limit": 4096,
      "open_files_limit_was": 1024}),
    (DaemonNote(pid=7, ended=2), {"pid": 7, "ended": 2}),
    (DaemonNote(error="OSError()"), {"error": "OSError()"}),
    (StateChange(State.RUNNING, State.STARTING, 12, 0),
     {"state": "running", "from": "starting", "pid": 12, "restarts": 0}),
    (StateChange(State.BACKOFF, State.STARTING, None, 3, 0.25),
     {"state": "backoff", "from": "starting", "pid": None, "restarts": 3, "delay": 0.25}),
    (Exit(12, None, 9, 1.5), {"pid": 12, "exit_code": None, "signal": 9, "uptime": 1.5}),
    (SpawnFailure(("prog", "-v")), {"command": ["prog", "-v"]}),
    (HealthChange(Health.UNHEALTHY, "HTTP 500", 3, "restart", 12, "web"),
     {"health": "unhealthy", "detail": "HTTP 500", "failures": 3, "on_unhealthy": "restart",
      "pid": 12, "service_name": "web"}),
    (NotifyReport("mainpid", "sd_notify", 12, 13, None),
     {"report": "mainpid", "via": "sd_notify", "sender_pid": 12, "main_pid": 13,
      "status": None}),
    (NotifyRejection("bad CRC", "('127.0.0.1', 5000)", 4),
     {"reason": "bad CRC", "peer": "('127.0.0.1', 5000)", "rejected": 4}),
    (LogDropped("/l/web.out.log", "ENOSPC"), {"file": "/l/web.out.log", "error": "ENOSPC"}),
    (LogResumed("/l/web.out.log", 80), {"file": "/l/web.out.log", "dropped_bytes": 80}),
    (LogError("/l/web.out.log"), {"file": "/l/web.out.log"}),
    (ControlAction("restart", "ops", ("web", "db")),
     {"action": "restart", "names": ["web", "db"], "by": "ops"}),
    (ControlAction("reload", "ops"), {"action": "reload", "by": "ops"}),
    (Reload(True, ("new",), (), ("web",), ("db",), ("api",)),
     {"ok": True, "added": ["new"], "removed": [], "changed": ["web"], "unchanged": ["db"],
      "needs_restart": ["api"]}),
    (Reload(False, problems=("procward.toml:3 services: bad",)),
     {"ok": False, "problems": ["procward.toml:3 services: bad"]}),
    (AuthFailure("127.0.0.1", "/v1/services", 2),
     {"client": "127.0.0.1", "path": "/v1/services", "attempts": 2}),
    (MemoryMax(600, 500, 12), {"rss": 600, "memory_max": 500, "pid": 12}),
    (AlertFired("rule", "ERROR", ("ops",), 5, ("ERROR a", "ERROR b"), 1),
     {"alert": "rule", "rule": "ERROR", "sinks": ["ops"], "count": 5,
      "lines": ["ERROR a", "ERROR b"], "suppressed": 1}),
    (AlertFailure("ops", "failed", "failed", 5, "HTTP 502"),
     {"sink": "ops", "alert": "failed", "rule": "failed", "attempts": 5, "error": "HTTP 502"}),
]


@pytest.mark.parametrize(("payload", "facts"), LINES, ids=lambda p: type(p).__name__)
def test_an_event_log_line_keeps_its_documented_keys(payload: Payload,
                                                     facts: dict[str, Any]) -> None:
    """Each payload is written as the kind, the instance, the message and its facts
    under the keys the event log has always used, in that order."""
    event = Event.of(payload, "a message", "web:1")
    line = json.loads(event.to_json())
    assert list(line) == ["time", "kind", "service", "message", *facts]
    assert line == {"time": round(event.time, 6), "kind": str(payload.kind), "service": "web:1",
                    "message": "a message", **facts}


def test_every_kind_has_its_payload_and_every_payload_is_written() -> None:
    """No kind of event is without a payload class, and the examples cover each class."""
    assert set(PAYLOADS) == set(EventKind)
    assert all(cls.kind is kind for kind, cls in PAYLOADS.items())
    assert {type(p) for p, _ in LINES} == set(PAYLOADS.values())



def test_control_emit_builds_the_payload_of_the_kind(tmp_path: Path) -> None:
    """Control.emit(kind, message, **facts) gives the kind's payload; an unknown fact
    is refused rather than written."""
    supervisor = Supervisor(make_config(tmp_path, {}))
    recorder = EventRecorder(supervisor)
    control = Control(supervisor)
    control.emit(EventKind.AUTH_FAILED, "refused", client="::1", path="/v1/x", attempts=3)
    assert [e.payload for e in recorder.events] == [AuthFailure("::1", "/v1/x", 3)]
    with pytest.raises(TypeError):
        control.emit(EventKind.AUTH_FAILED, "refused", client="::1", path="/", attemps=1)


@pytest.mark.parametrize(("payload", "message", "colour", "printed"), [
    (StateChange(State.STARTING, State.STOPPED, 42, 0), "starting", False,
     "  starting (pid 42)"),
    (StateChange(State.STARTING, State.STOPPED, 42, 0), "starting", True,
     "  \033[36mstarting (pid 42)\033[0m"),
    (StateChange(State.STARTING, State.STOPPED, None, 0), "starting: waiting for db", False,
     "  starting: waiting for db"),
    (StateChange(State.FAILED, State.BACKOFF, 42, 5), "failed: giving up", True,
     "  \033[1;31mfailed: giving up\033[0m"),
    (Exit(42, 3, None, 1.0), "pid 42 exit code 3 after 1.00s", True,
     "  \033[33mpid 42 exit code 3 after 1.00s\033[0m"),
    (Exit(42, 3, None, 1.0), "pid 42 exit code 3 after 1.00s", False,
     "  pid 42 exit code 3 after 1.00s"),
])
def test_the_console_shows_a_pid_and_colours_by_state_or_kind(
        payload: Payload, message: str, colour: bool, printed: str) -> None:
    """A start names its pid; with colour a state change is coloured by its state,
    any other event by its kind; without colour the line is plain."""
    out = io.StringIO()
    EventPrinter(out, colour=colour)(Event.of(payload, message, "web"))
    line = out.getvalue()
    assert line.endswith(" web         " + printed + "\n")
    assert ("\033[" in line) is colour

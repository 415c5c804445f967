"""Notify, health probes and alerts on Windows, under Wine, with a real Supervisor."""

from __future__ import annotations

from typing import Any

import pytest
from wine import WinePython

pytestmark = pytest.mark.wine


@pytest.fixture(scope="module")
def result(wine_python: WinePython) -> dict[str, Any]:
    return wine_python.script("notify_windows.py", timeout=240)


def test_sdk_ready_gates_the_start_on_windows(result: dict[str, Any]) -> None:
    """notify = true: the service stays starting until the SDK's ready() arrives over TCP."""
    assert result["state_before_ready"] == "starting", result["sdk_exits"]
    # Wine may kill a copy before the gate (see the script); the live one that
    # waits then says why it was started again, before what it waits for.
    again = "retry after backoff; " if result["sdk_exits_before_gate"] else ""
    assert result["reason_before_ready"] == again + "waiting for READY", result["sdk_exits"]
    assert result["status_text_before_ready"] == "warming up"
    assert result["ready_via"] == "framed"
    assert result["ready_before_running"] is True
    assert result["state"] == "running" and result["status_text"] == "serving"


def test_sdk_heartbeats_keep_it_healthy_on_windows(result: dict[str, Any]) -> None:
    """heartbeat() over the framed protocol feeds a heartbeat health check."""
    assert result["health"] == "healthy"


def test_forged_frames_are_refused_on_windows(result: dict[str, Any]) -> None:
    """A wrong secret and a bad magic from another process are refused; no sd_notify socket."""
    assert result["rejected"] == 2
    assert result["has_notify_socket"] is False


def test_eventlog_sink_writes_to_the_event_log(result: dict[str, Any]) -> None:
    """The eventlog (and syslog) sink's platform call reports to the Windows Event Log."""
    assert result["eventlog"] == "ok"


def test_http_and_command_probes_on_windows(result: dict[str, Any]) -> None:
    """An http probe against a real server and a command probe both turn healthy."""
    assert result["web_health"] == "healthy"
    assert result["job_health"] == "healthy"


def test_alert_rule_runs_a_command_sink_on_windows(result: dict[str, Any]) -> None:
    """A matching output line fires the rule; the command sink gets the line in its env."""
    assert result["alert_lines"] == "job ERROR 42", result["alerts"]

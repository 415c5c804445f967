"""The Control facade: a shutdown's plan and that it is asked once; unknown names."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from procward.engine import Control, ControlAction, Supervisor
from procward.errors import UnknownService
from procward.testing import EventRecorder, make_config


def test_shutdown_plans_the_stop_and_begins_it_once(tmp_path: Path) -> None:
    """shutdown() records who asked and gives the stop order, budget and pid without
    stopping anything; begin() asks the daemon to stop once, however often it (or a later
    request's) is called."""
    sleep = ["sleep", "600"]
    supervisor = Supervisor(make_config(tmp_path, {
        "db": {"command": sleep, "stop_timeout": "4s"},
        "web": {"command": sleep, "depends_on": ["db"], "stop_timeout": "3s"},
        "cron": {"command": sleep, "stop_timeout": "1s"},
    }))
    recorder = EventRecorder(supervisor)
    asked: list[str] = []
    control = Control(supervisor, stop_daemon=asked.append)
    plan = control.shutdown("ops")
    assert plan.to_dict() == {"action": "shutdown", "stopping": ["web", "cron", "db"],
                              "stop_budget": 7.0, "pid": os.getpid()}
    assert asked == []
    assert [e.payload for e in recorder.events] == [ControlAction("shutdown", "ops")]
    plan.begin()
    plan.begin()
    control.shutdown("ops").begin()  # a second request while the first stops
    assert asked == ["a shutdown request (by ops)"]


def test_shutdown_needs_a_way_to_stop_the_daemon(tmp_path: Path) -> None:
    """A Control made without stop_daemon refuses to plan a shutdown it could not carry out."""
    with pytest.raises(RuntimeError):
        Control(Supervisor(make_config(tmp_path, {}))).shutdown("ops")


def test_an_unknown_name_is_told_the_names_there_are(tmp_path: Path) -> None:
    """An unknown name's error lists the services (the first 20, then how many more) and the
    nearest name; with no services it says so."""
    sleep = ["sleep", "600"]
    many = {f"job{i:02}": {"command": sleep} for i in range(25)}
    control = Control(Supervisor(make_config(tmp_path / "many", many)))
    with pytest.raises(UnknownService) as caught:
        control.status(["jbo24"])
    assert str(caught.value) == (
        "no service or instance named 'jbo24' (did you mean \"job24\"?); the services are: "
        + ", ".join(f"job{i:02}" for i in range(20)) + " and 5 more")
    with pytest.raises(UnknownService, match="this daemon runs no services"):
        Control(Supervisor(make_config(tmp_path / "none", {}))).status(["web"])

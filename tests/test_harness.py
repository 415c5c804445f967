"""The test harness: a stuck scenario fails saying where it waited, and the event
recorder finds and awaits the events a test expects."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from procward.engine import Event, EventKind, Exit, State, StateChange, Supervisor
from procward.testing import EventRecorder, make_config
from scenario import within


def test_a_stuck_scenario_fails_and_shows_where_its_tasks_wait() -> None:
    async def wait_forever() -> None:
        await asyncio.Event().wait()

    async def scenario() -> None:
        helper = asyncio.create_task(wait_forever())
        try:
            await asyncio.sleep(3600)
        finally:
            helper.cancel()

    with pytest.raises(TimeoutError, match=r"after 0.2s") as raised:
        asyncio.run(within(scenario(), 0.2))
    # Every task's stack, in no particular order.
    assert "in scenario\n    await asyncio.sleep(3600)" in str(raised.value)
    assert "in wait_forever\n    await asyncio.Event().wait()" in str(raised.value)


def test_a_scenario_that_ends_gives_its_result() -> None:
    async def scenario() -> int:
        await asyncio.sleep(0)
        return 7

    assert asyncio.run(within(scenario(), 5)) == 7


def _supervisor_and_recorder(tmp_path: Path) -> tuple[Supervisor, EventRecorder]:
    supervisor = Supervisor(make_config(tmp_path, {}))
    return supervisor, EventRecorder(supervisor)


def _state(service: str, state: State, previous: State, pid: int | None) -> Event:
    return Event.of(StateChange(state, previous, pid, 0), str(state), service)


def test_the_recorder_matches_by_service_kind_and_the_event_logs_keys(tmp_path: Path) -> None:
    """matching() selects by instance, kind and facts named as in the event log."""
    supervisor, rec = _supervisor_and_recorder(tmp_path)
    events = [_state("web", State.STARTING, State.STOPPED, 5),
              _state("web", State.RUNNING, State.STARTING, 5),
              _state("db", State.STARTING, State.STOPPED, 6),
              Event.of(Exit(5, 0, None, 1.0), "pid 5 exit code 0", "web")]
    for event in events:
        supervisor.emit(event)
    assert rec.matching("web", EventKind.STATE, state="running") == [events[1]]
    assert rec.matching(None, EventKind.STATE, **{"from": "stopped"}) == [events[0], events[2]]
    assert rec.matching("web", pid=5) == [events[0], events[1], events[3]]
    assert rec.matching("web", EventKind.EXIT, exit_code=1) == []


def test_the_recorder_waits_for_an_event_still_to_come(tmp_path: Path) -> None:
    """wait() returns once the event arrives, and names the last events when it does not."""
    supervisor, rec = _supervisor_and_recorder(tmp_path)

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        later = _state("web", State.RUNNING, State.STARTING, 5)
        loop.call_later(0.05, supervisor.emit, _state("web", State.STARTING, State.STOPPED, 5))
        loop.call_later(0.1, supervisor.emit, later)
        assert await rec.wait(EventKind.STATE, "web", state="running") == [later]
        with pytest.raises(TimeoutError,
                           match=r"saw 0 of 1 expected events; last: web: starting; web: running$"):
            await rec.wait(EventKind.EXIT, "web", timeout=0.1)

    asyncio.run(within(scenario(), 10))

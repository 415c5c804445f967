"""The test harness's own guard: a stuck scenario fails, saying where it waited."""

from __future__ import annotations

import asyncio

import pytest

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

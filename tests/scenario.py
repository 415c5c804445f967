"""A time limit for a scenario on an event loop that says, when it is hit,
where each of the loop's tasks was waiting."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def within(coro: Coroutine[Any, Any, T], limit: float) -> T:
    """``coro``'s result; if it has not ended within ``limit`` seconds, a
    TimeoutError that shows where each of the loop's tasks waits."""
    task = asyncio.ensure_future(coro)
    done, _ = await asyncio.wait({task}, timeout=limit)
    if not done:
        stacks = io.StringIO()
        for other in asyncio.all_tasks():
            if other is not asyncio.current_task():
                other.print_stack(file=stacks)
        task.cancel()
        await asyncio.wait({task}, timeout=30)
        raise TimeoutError(f"the scenario was still running after {limit:g}s; "
                           f"where its tasks waited:\n{stacks.getvalue()}")
    return task.result()

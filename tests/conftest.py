"""Shared fixtures: every test that starts processes gets its own folder, and
every scenario on an event loop a time limit that says where it was stuck."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

from scenario import within

T = TypeVar("T")

# Far above what any scenario needs (the slowest take ~10 s on a busy machine),
# and below pytest-timeout's limit in pyproject.toml, which ends the whole run:
# a stuck scenario fails alone, with its tasks' stacks, and the suite goes on.
SCENARIO_LIMIT = 240.0



@pytest.fixture
def run() -> Callable[[Coroutine[Any, Any, T]], T]:
    """Run one coroutine on a fresh event loop (the engine's loop is per test)."""
    return lambda coro: asyncio.run(within(coro, SCENARIO_LIMIT))

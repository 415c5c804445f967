"""Shared fixtures: every test that starts processes gets its own folder."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest


@pytest.fixture
def run() -> Callable[[Coroutine[Any, Any, Any]], Any]:
    """Run one coroutine on a fresh event loop (the engine's loop is per test)."""
    return asyncio.run

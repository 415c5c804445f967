"""The status time share: requests wait for their share only while output floods in.

A stand-in replaces the engine's byte counter here (``Control.bytes_captured``,
checked against real services in tests/engine/test_logs.py): the meter's
verdict depends only on how fast that number grows.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from procward.api import _time_share


class _Counter:
    def __init__(self) -> None:
        self.total = 0

    def bytes_captured(self) -> int:
        return self.total


def test_the_meter_calls_fast_output_busy_and_slow_output_quiet() -> None:
    """The capture meter calls output busy at its threshold rate and quiet below it."""
    counter = _Counter()
    meter = _time_share.CaptureMeter(counter)  # type: ignore[arg-type]
    time.sleep(_time_share._METER_INTERVAL * 2)
    counter.total += 1000  # a trickle
    assert meter.busy() is False
    time.sleep(_time_share._METER_INTERVAL * 2)
    counter.total += 100 * _time_share._BUSY_CAPTURE  # busy unless this took 100 s
    assert meter.busy() is True


def test_requests_wait_for_their_share_only_while_busy() -> None:
    """Requests beyond the share wait while capture is busy, never while it is quiet, and no debt
    outlives a flood."""
    busy = False
    share = _time_share.TimeShare(lambda: busy, share=0.1, burst=0.1)

    async def scenario() -> None:
        nonlocal busy
        for _ in range(200):  # far more than the share allows
            await asyncio.wait_for(share.wait(), timeout=1)
            share.spend(0.001)
        busy = True
        for _ in range(200):
            share.spend(0.001)
        with pytest.raises(TimeoutError):
            # 0.6 s of work over its share: at a tenth of the time, 6 s of waiting.
            await asyncio.wait_for(share.wait(), timeout=0.5)
        busy = False
        await asyncio.wait_for(share.wait(), timeout=1)  # the flood is over: no debt kept

    asyncio.run(scenario())

"""The status time share: while services flood their logs, status answers may use
only a share of the daemon's loop, so a flood of requests cannot slow log capture.

``TimeShare`` is a token bucket of seconds; ``CaptureMeter`` says whether
capture is busy enough for the share to apply. The routes apply both to the
status handlers with the ``time_shared`` decorator (in ``_app.py``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from procward.engine import Control

__all__ = ["CaptureMeter", "TimeShare"]

# Under a log flood, status answers may use this share of the daemon's time:
# about 50 cached answers a second, each waiting its turn asleep. The burst
# (20 ms of work, some ten answers) is small because it comes on top of the
# share each time a flood begins.
_STATUS_SHARE = 0.10
_STATUS_BURST = 0.02
# What one request costs the daemon besides its handler (accepting the
# connection, h11, Starlette's layers, the token check, sending, closing),
# charged to the bucket with each answer; docs/benchmarks.md says how it was
# measured.
_PER_REQUEST = 0.002
# Output arriving at this rate (bytes a second) or more makes the loop "busy"
# and the time share apply: a few percent of what one core can capture.
_BUSY_CAPTURE = 50_000_000
# The capture rate is measured over at least this long.
_METER_INTERVAL = 0.01


class TimeShare:
    """A token bucket of the loop's seconds, refilled at ``share`` seconds a second,
    holding at most ``burst``.

    Each answer spends the time its handler took plus ``_PER_REQUEST``; when
    the bucket is empty, the next request waits (asleep, costing nothing)
    until it has refilled. While ``busy()`` is false there is nothing to
    protect: requests pass at once and the bucket stays full.
    """

    def __init__(self, busy: Callable[[], bool], share: float = _STATUS_SHARE,
                 burst: float = _STATUS_BURST) -> None:
        self._rate = share
        self._cap = burst
        self._tokens = burst
        self._at = time.monotonic()
        self._busy = busy

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self._cap, self._tokens + (now - self._at) * self._rate)
        self._at = now

    async def wait(self) -> None:
        """Return once this request's turn has come."""
        self._refill()
        if not self._busy():
            self._tokens = self._cap
            return
        while self._tokens < 0:
            await asyncio.sleep(-self._tokens / self._rate)
            self._refill()

    def spend(self, seconds: float) -> None:
        """Charge an answer whose handler took ``seconds``."""
        self._tokens -= seconds + _PER_REQUEST


class CaptureMeter:
    """Whether the services' output is arriving fast enough that the loop is
    busy with it: the bytes all log files took, per second, between two looks."""

    def __init__(self, control: Control) -> None:
        self._control = control
        self._bytes = control.bytes_captured()
        self._at = time.monotonic()
        self._busy = False

    def busy(self) -> bool:
        now = time.monotonic()
        if now - self._at >= _METER_INTERVAL:
            total = self._control.bytes_captured()
            self._busy = (total - self._bytes) / (now - self._at) >= _BUSY_CAPTURE
            self._bytes, self._at = total, now
        return self._busy


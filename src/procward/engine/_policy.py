"""Restart decisions as pure functions: no clock, no randomness of their own.

The lifecycle asks three questions after a process ends: should it run again,
after how long, and has it restarted too often. Keeping the answers here, with
time and randomness passed in, lets the tests pin them exactly.
"""

from __future__ import annotations

import random
from collections import deque

from procward._os import ExitStatus
from procward.config import BackoffSettings, StartLimitSettings

__all__ = ["StartLimit", "backoff_delay", "is_success", "wants_restart"]


def is_success(status: ExitStatus | None, success_codes: list[int]) -> bool:
    """A clean end: a listed exit code, not a signal, not a failed spawn."""
    return status is not None and status.signal is None and status.code in success_codes


def wants_restart(policy: str, status: ExitStatus | None, success_codes: list[int]) -> bool:
    """Whether ``restart`` (always | on-failure | never) asks for another run."""
    if policy == "always":
        return True
    if policy == "never":
        return False
    return not is_success(status, success_codes)


def backoff_delay(settings: BackoffSettings, attempt: int, rng: random.Random) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based) of an early death.

    Grows by ``factor`` from ``initial`` up to ``max``; jitter spreads retries of
    many services that failed together so they do not retry in lockstep.
    """
    base = min(settings.max, settings.initial * settings.factor ** min(attempt, 64))
    return max(0.0, base * (1.0 + rng.uniform(-settings.jitter, settings.jitter)))


class StartLimit:
    """Counts automatic restarts in a sliding window; refuses once ``burst`` is used up."""

    def __init__(self, settings: StartLimitSettings) -> None:
        self._burst = settings.burst
        self._interval = settings.interval
        self._times: deque[float] = deque()

    def allow(self, now: float) -> bool:
        """Record a restart at ``now`` if the window has room; False when it has none."""
        while self._times and now - self._times[0] >= self._interval:
            self._times.popleft()
        if len(self._times) >= self._burst:
            return False
        self._times.append(now)
        return True

    def reset(self) -> None:
        self._times.clear()

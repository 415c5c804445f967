"""Restart decisions: no clock, no randomness of their own.

The lifecycle asks three questions after a process ends: should it run again,
has it restarted too often, and after how long. ``RestartPolicy`` answers
them for one instance, keeping the count of early deaths and the start limit's
window; time and randomness are passed in, so the tests pin every answer.
"""

from __future__ import annotations

import random
from collections import deque
from enum import Enum

from procward._os import ExitStatus
from procward.config import BackoffSettings, ServiceConfig, StartLimitSettings

__all__ = ["Next", "RestartPolicy", "StartLimit", "backoff_delay", "is_success", "wants_restart"]


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


class Next(Enum):
    """What follows the end of a process."""

    EXIT = "exit"        # the restart policy says it is not to run again
    FAIL = "fail"        # the start limit is used up: failed, until started by hand
    AT_ONCE = "at_once"  # it had started: run it again now
    BACKOFF = "backoff"  # it died before it had started: run it again after a delay


class RestartPolicy:
    """Decides, for one instance, what follows each end of its process."""

    def __init__(self, config: ServiceConfig, rng: random.Random) -> None:
        self._config = config
        self._rng = rng
        self._attempt = 0  # early deaths in a row: the backoff's exponent
        self._limit = StartLimit(config.start_limit)

    def reset(self) -> None:
        """A start by hand: the backoff and the start limit begin afresh."""
        self._attempt = 0
        self._limit.reset()

    def decide(self, status: ExitStatus | None, *, started: bool, forced: bool,
               uptime: float, now: float) -> tuple[Next, float]:
        """What to do after a process ended with ``status`` (None: it could not be
        started) after ``uptime`` seconds, and the delay for ``Next.BACKOFF``.

        ``forced``: the daemon stopped it to restart it (unhealthy, memory_max, an
        alert rule), which the restart policy does not overrule.
        """
        cfg = self._config
        if not forced and not wants_restart(cfg.restart, status, cfg.success_exit_codes):
            return Next.EXIT, 0.0
        if uptime >= cfg.backoff.reset_after:
            self._attempt = 0
        if not self._limit.allow(now):
            return Next.FAIL, 0.0
        if started:
            return Next.AT_ONCE, 0.0
        delay = backoff_delay(cfg.backoff, self._attempt, self._rng)
        self._attempt += 1
        return Next.BACKOFF, delay

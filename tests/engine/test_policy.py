"""Restart decisions and the state table, pinned exactly (pure functions, no processes)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from procward._os import ExitStatus
from procward.config import BackoffSettings, ServiceConfig, StartLimitSettings
from procward.engine._policy import (
    Next,
    RestartPolicy,
    StartLimit,
    backoff_delay,
    is_success,
    wants_restart,
)
from procward.engine._state import TRANSITIONS, State
from procward.errors import IllegalTransition

NO_JITTER = BackoffSettings(initial=1, factor=2, max=60, jitter=0, reset_after=30)
ROOMY = StartLimitSettings(burst=100, interval=60)


def _policy(**settings: Any) -> RestartPolicy:
    settings = {"backoff": NO_JITTER, "start_limit": ROOMY, **settings}
    return RestartPolicy(ServiceConfig(command=["prog"], **settings), random.Random(0))


@pytest.mark.parametrize(
    ("policy", "status", "expected"),
    [
        ("always", ExitStatus(0), True),
        ("never", ExitStatus(1), False),
        ("on-failure", ExitStatus(0), False),
        ("on-failure", ExitStatus(3), True),
        ("on-failure", ExitStatus(None, 9), True),
        ("on-failure", None, True),
    ],
)
def test_wants_restart(policy: str, status: ExitStatus | None, expected: bool) -> None:
    """on-failure restarts on a code outside success_exit_codes, a signal, or a failed spawn."""
    assert wants_restart(policy, status, [0]) is expected


def test_a_signal_is_never_a_success_even_with_a_listed_code() -> None:
    """Death by signal is a failure whatever success_exit_codes lists."""
    assert not is_success(ExitStatus(None, 15), [0, 15])
    assert is_success(ExitStatus(15), [0, 15])


def test_backoff_grows_by_factor_up_to_max() -> None:
    """Delays are initial * factor**n, capped at max."""
    s = BackoffSettings(initial=0.5, factor=3, max=5, jitter=0)
    rng = random.Random(1)
    assert [backoff_delay(s, n, rng) for n in range(5)] == [0.5, 1.5, 4.5, 5.0, 5.0]


def test_backoff_jitter_stays_within_its_fraction() -> None:
    """Jitter moves each delay by at most +/- jitter of it, and does move it."""
    s = BackoffSettings(initial=1, factor=2, max=60, jitter=0.2)
    rng = random.Random(7)
    delays = [backoff_delay(s, 2, rng) for _ in range(200)]
    assert all(3.2 <= d <= 4.8 for d in delays)
    assert len(set(delays)) > 100


def test_start_limit_slides_its_window() -> None:
    """burst restarts fit in any interval; the next is refused until the oldest ages out."""
    limit = StartLimit(StartLimitSettings(burst=3, interval=10))
    assert [limit.allow(t) for t in (0, 1, 2)] == [True, True, True]
    assert limit.allow(5) is False
    assert limit.allow(10.5) is True   # the restart at 0 has left the window
    limit.reset()
    assert all(limit.allow(11) for _ in range(3))


@pytest.mark.parametrize(
    ("restart", "status", "started", "forced", "expected"),
    [
        ("on-failure", ExitStatus(0), True, False, Next.EXIT),
        ("on-failure", ExitStatus(1), True, False, Next.AT_ONCE),
        ("on-failure", ExitStatus(1), False, False, Next.BACKOFF),
        ("on-failure", None, False, False, Next.BACKOFF),
        ("always", ExitStatus(0), True, False, Next.AT_ONCE),
        ("never", ExitStatus(1), True, False, Next.EXIT),
        # A restart the daemon decided on is not overruled by restart = never.
        ("never", ExitStatus(None, 15), True, True, Next.AT_ONCE),
        ("never", ExitStatus(None, 15), False, True, Next.BACKOFF),
    ],
)
def test_what_follows_an_end(restart: str, status: ExitStatus | None, started: bool,
                             forced: bool, expected: Next) -> None:
    """The restart policy decides whether; whether it had started decides how soon."""
    step, _ = _policy(restart=restart).decide(status, started=started, forced=forced,
                                              uptime=1.0, now=0.0)
    assert step is expected


def test_early_deaths_back_off_longer_until_a_run_lasts_reset_after() -> None:
    """Each early death waits initial * factor**n; a run of reset_after starts n at 0."""
    policy = _policy()
    died = ExitStatus(1)
    delays = [policy.decide(died, started=False, forced=False, uptime=u, now=t)
              for t, u in enumerate([0.1, 0.1, 0.1, 31.0, 0.1])]
    assert delays == [(Next.BACKOFF, d) for d in (1.0, 2.0, 4.0, 1.0, 2.0)]


def test_more_restarts_than_burst_within_interval_fail() -> None:
    """The restart past start_limit.burst within its interval fails; ends that are not
    restarted do not count, and once the window has moved on restarts are allowed again."""
    policy = _policy(start_limit=StartLimitSettings(burst=2, interval=10), restart="on-failure")

    def end(code: int, now: float) -> Next:
        return policy.decide(ExitStatus(code), started=True, forced=False, uptime=5, now=now)[0]

    assert [end(1, 0), end(0, 1), end(1, 2), end(1, 3)] == [
        Next.AT_ONCE, Next.EXIT, Next.AT_ONCE, Next.FAIL]
    assert end(1, 10.5) is Next.AT_ONCE


def test_a_start_by_hand_clears_the_backoff_and_the_start_limit() -> None:
    """reset() (a manual start) gives a failed service its full burst and initial delay."""
    policy = _policy(start_limit=StartLimitSettings(burst=1, interval=60))
    died = ExitStatus(1)
    assert policy.decide(died, started=False, forced=False, uptime=0, now=0) == (
        Next.BACKOFF, 1.0)
    assert policy.decide(died, started=False, forced=False, uptime=0, now=1)[0] is Next.FAIL
    policy.reset()
    assert policy.decide(died, started=False, forced=False, uptime=0, now=2) == (
        Next.BACKOFF, 1.0)


def test_every_state_can_be_reached_from_stopped_and_left() -> None:
    """The transition table has no state nobody can enter and none that cannot be left."""
    reached, todo = {State.STOPPED}, [State.STOPPED]
    while todo:
        for nxt in TRANSITIONS[todo.pop()] - reached:
            reached.add(nxt)
            todo.append(nxt)
    assert reached == set(State)
    assert all(TRANSITIONS[s] - {s} for s in State)


def test_an_illegal_move_names_the_instance_and_both_states() -> None:
    """The error of an illegal state change says who, from what and to what."""
    assert str(IllegalTransition("web", State.STOPPED, State.RUNNING)) == (
        "web: illegal state change stopped -> running")

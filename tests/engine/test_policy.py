"""Restart decisions and the state table, pinned exactly (pure functions, no processes)."""

from __future__ import annotations

import random

import pytest

from procward._os import ExitStatus
from procward.config import BackoffSettings, StartLimitSettings
from procward.engine._policy import StartLimit, backoff_delay, is_success, wants_restart
from procward.engine._state import TRANSITIONS, State
from procward.errors import IllegalTransition


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


def test_every_state_can_be_left_and_failed_is_entered_only_from_live_states() -> None:
    """The transition table has no dead ends, and only a start leaves exited or failed."""
    assert all(TRANSITIONS[s] for s in State)
    assert TRANSITIONS[State.FAILED] == {State.STARTING}
    assert TRANSITIONS[State.EXITED] == {State.STARTING}
    assert State.FAILED not in TRANSITIONS[State.STOPPED]
    assert str(IllegalTransition("web", State.STOPPED, State.RUNNING)) == (
        "web: illegal state change stopped -> running")

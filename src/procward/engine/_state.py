"""The states a service instance moves through, which moves are legal, and its health.

    stopped ──► starting ──► running ──► stopping ──► stopped
                   │  ▲          │
                   ▼  │          ▼
                 backoff ◄───────┘ (died)          exited: ended, not to restart
                   │                               failed: start limit hit
                   ▼
                 failed

A restart the daemon decides on (unhealthy, memory_max, an alert rule) goes
running ──► stopping ──► starting (or backoff / failed, as after a death).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["TRANSITIONS", "Health", "State"]


class State(StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"
    STOPPING = "stopping"
    EXITED = "exited"
    FAILED = "failed"


_S = State
TRANSITIONS: dict[State, frozenset[State]] = {
    _S.STOPPED: frozenset({_S.STARTING}),
    # starting -> starting: a crashed program restarted at once, without backoff.
    _S.STARTING: frozenset({_S.STARTING, _S.RUNNING, _S.BACKOFF, _S.STOPPING, _S.STOPPED,
                            _S.EXITED, _S.FAILED}),
    _S.RUNNING: frozenset({_S.STARTING, _S.BACKOFF, _S.STOPPING, _S.STOPPED, _S.EXITED,
                           _S.FAILED}),
    _S.BACKOFF: frozenset({_S.STARTING, _S.STOPPED, _S.FAILED}),
    # stopping -> starting/backoff/failed: a restart the daemon decided on (unhealthy,
    # memory_max, an alert rule), at once if it had started, else after backoff.
    _S.STOPPING: frozenset({_S.STOPPED, _S.STARTING, _S.BACKOFF, _S.FAILED}),
    _S.EXITED: frozenset({_S.STARTING}),
    _S.FAILED: frozenset({_S.STARTING}),
}


class Health(StrEnum):
    """What the health check of the running process says (an instance without one has none).

    starting ──► healthy ⇄ unhealthy; each process begins at starting again.
    """

    STARTING = "starting"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"

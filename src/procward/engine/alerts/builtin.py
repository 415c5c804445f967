"""The built-in alerts, raised from the engine's events: failed, unhealthy, restart storm.

An instance that enters ``failed``, or turns unhealthy while its
``on_unhealthy`` is not ``none``, raises an alert at once. One that restarts
more than ``storm_restarts`` times within ``storm_window`` seconds raises a
``restart_storm`` alert, and then none for another window.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from procward.engine._events import Event, HealthChange, StateChange
from procward.engine._state import Health, State
from procward.engine.alerts.alert import Alert

__all__ = ["BuiltinAlerts"]


@dataclass(frozen=True)
class _Seen:
    """What the built-in alerts need to know of one event."""

    service: str
    instance: str
    message: str
    failed: bool = False
    unhealthy: bool = False
    restarts: int | None = None  # when (re)starting: how many restarts so far


def _seen(event: Event) -> _Seen | None:
    """The facts of a state or health event that the built-in alerts act on."""
    payload, instance = event.payload, event.service
    if instance is None:
        return None
    if isinstance(payload, HealthChange):
        unhealthy = payload.health is Health.UNHEALTHY and payload.on_unhealthy != "none"
        return _Seen(payload.service_name, instance, event.message, unhealthy=unhealthy)
    if isinstance(payload, StateChange):
        return _Seen(instance.split(":")[0], instance, event.message,
                     failed=payload.state is State.FAILED,
                     restarts=payload.restarts if payload.state is State.STARTING else None)
    return None


class BuiltinAlerts:
    """Turns the engine's events into built-in alerts, handed to ``fire`` without sinks."""

    def __init__(self, fire: Callable[[Alert], None], *, storm_restarts: int = 5,
                 storm_window: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._fire = fire
        self._storm_restarts = storm_restarts
        self._storm_window = storm_window
        self._clock = clock
        # Per instance: the restart count last seen, recent restart times, quiet until.
        self._restarts: dict[str, tuple[int, deque[float], float]] = {}

    def on_event(self, event: Event) -> None:
        """Raise the alerts ``event`` calls for (an EventBus subscriber)."""
        seen = _seen(event)
        if seen is None:
            return
        if seen.unhealthy or seen.failed:
            kind = "unhealthy" if seen.unhealthy else "failed"
            self._fire(Alert(kind, seen.service, seen.instance, kind, seen.message))
        elif seen.restarts is not None:
            self._count_restart(seen.service, seen.instance, seen.restarts)

    def _count_restart(self, service: str, instance: str, restarts: int) -> None:
        now = self._clock()
        last, times, quiet_until = self._restarts.get(instance, (restarts, deque(), 0.0))
        if restarts > last:
            times.append(now)
        while times and now - times[0] > self._storm_window:
            times.popleft()
        if len(times) > self._storm_restarts and now >= quiet_until:
            self._fire(Alert("restart_storm", service, instance, "restart_storm",
                             f"{len(times)} restarts within {self._storm_window:g}s",
                             count=len(times), threshold=self._storm_restarts,
                             window=self._storm_window))
            times.clear()
            quiet_until = now + self._storm_window
        self._restarts[instance] = (restarts, times, quiet_until)

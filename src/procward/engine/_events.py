"""Typed events: what happened in the daemon, for the event log, console and API."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["Event", "EventBus", "EventKind"]


class EventKind(StrEnum):
    DAEMON = "daemon"            # the daemon started, stopped, reaped leftovers
    STATE = "state"              # an instance changed state
    EXIT = "exit"                # a process ended: pid, exit code or signal, uptime
    SPAWN_FAILED = "spawn_failed"  # the OS refused to start the program
    LOG_DROPPED = "log_dropped"  # output could not be written; bytes are being counted
    LOG_RESUMED = "log_resumed"  # writing works again; how much was lost
    LOG_ERROR = "log_error"      # rotation or compression went wrong
    CONTROL = "control"          # someone started/stopped/restarted/reloaded, and who
    RELOAD = "reload"            # a reload was applied, or refused with the reasons
    AUTH_FAILED = "auth_failed"  # a control request with a missing or unknown token
    HEALTH = "health"            # an instance became healthy or unhealthy
    NOTIFY = "notify"            # a program reported READY, STOPPING, MAINPID or a status
    NOTIFY_REJECTED = "notify_rejected"  # a report was refused: bad frame, no secret, stranger
    MEMORY_MAX = "memory_max"    # a process tree stayed above memory_max; it is restarted
    ALERT = "alert"              # an alert fired (a log rule or a built-in one) to its sinks
    ALERT_FAILED = "alert_failed"  # a sink could not take an alert, after its retries


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened, with the facts a person or a script needs."""

    kind: EventKind
    message: str
    service: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.time)

    def to_json(self) -> str:
        record: dict[str, Any] = {
            "time": round(self.time, 6),
            "kind": str(self.kind),
            "service": self.service,
            "message": self.message,
        }
        record.update(self.fields)
        return json.dumps(record, separators=(",", ":"), default=str)


class EventBus:
    """Hands each event to every subscriber, in the order they subscribed."""

    def __init__(self) -> None:
        self._subscribers: list[Callable[[Event], None]] = []

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def emit(self, event: Event) -> None:
        for callback in list(self._subscribers):
            callback(event)

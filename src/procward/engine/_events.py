"""Typed events: what happened in the daemon, for the event log, the console and the API.

An ``Event`` is a kind, a message for people, the instance it concerns, and a
payload: one small frozen dataclass per kind whose attributes are the facts
(``StateChange.state``, ``Exit.exit_code``), so consumers read attributes,
never string keys. ``Event.to_json()`` writes one line of the event log with
each payload's facts under its documented keys; users and the API read those
lines, so ``to_fields`` keeps the keys and values they always had.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from procward.engine._state import Health, State

__all__ = [
    "PAYLOADS",
    "AlertFailure",
    "AlertFired",
    "AuthFailure",
    "ControlAction",
    "DaemonNote",
    "Event",
    "EventBus",
    "EventKind",
    "Exit",
    "HealthChange",
    "LogDropped",
    "LogError",
    "LogResumed",
    "MemoryMax",
    "NotifyRejection",
    "NotifyReport",
    "Payload",
    "Reload",
    "SpawnFailure",
    "StateChange",
]


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
class Payload:
    """The facts of one kind of event (each kind has its own subclass)."""

    kind: ClassVar[EventKind]

    def to_fields(self) -> dict[str, Any]:
        """The facts under the event log's keys: by default, the attribute names."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def _without_none(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


@dataclass(frozen=True, slots=True)
class DaemonNote(Payload):
    """The daemon started or stopped, ended leftovers, or says something of its own.

    Only the facts given are written: a start has ``pid``, ``config`` and the
    open-files limits; ending leftovers ``pid`` and ``ended``; trouble ``error``.
    """

    kind: ClassVar[EventKind] = EventKind.DAEMON
    pid: int | None = None
    config: str | None = None
    open_files_limit: int | None = None
    open_files_limit_was: int | None = None
    ended: int | None = None
    error: str | None = None

    def to_fields(self) -> dict[str, Any]:
        return _without_none(Payload.to_fields(self))


@dataclass(frozen=True, slots=True)
class StateChange(Payload):
    """An instance moved from ``previous`` to ``state``; ``delay`` only for backoff."""

    kind: ClassVar[EventKind] = EventKind.STATE
    state: State
    previous: State
    pid: int | None
    restarts: int
    delay: float | None = None

    def to_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"state": self.state, "from": self.previous, "pid": self.pid,
                                  "restarts": self.restarts}
        if self.delay is not None:
            fields["delay"] = self.delay
        return fields


@dataclass(frozen=True, slots=True)
class Exit(Payload):
    """A process ended: its exit code, or (POSIX) the signal that ended it."""

    kind: ClassVar[EventKind] = EventKind.EXIT
    pid: int
    exit_code: int | None
    signal: int | None
    uptime: float


@dataclass(frozen=True, slots=True)
class SpawnFailure(Payload):
    """The OS refused to start ``command``."""

    kind: ClassVar[EventKind] = EventKind.SPAWN_FAILED
    command: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class HealthChange(Payload):
    """A process's health changed; ``service_name`` is the service of the instance."""

    kind: ClassVar[EventKind] = EventKind.HEALTH
    health: Health
    detail: str
    failures: int
    on_unhealthy: str
    pid: int | None
    service_name: str


@dataclass(frozen=True, slots=True)
class NotifyReport(Payload):
    """A program reported ``report`` (ready, stopping, mainpid) through ``via``.

    ``sender_pid`` is what the report says of its sender (a framed report's
    pid is only a claim); ``main_pid`` is MAINPID's value.
    """

    kind: ClassVar[EventKind] = EventKind.NOTIFY
    report: str
    via: str
    sender_pid: int
    main_pid: int | None
    status: str | None


@dataclass(frozen=True, slots=True)
class NotifyRejection(Payload):
    """A report was refused; ``rejected`` counts every refusal so far."""

    kind: ClassVar[EventKind] = EventKind.NOTIFY_REJECTED
    reason: str
    peer: str
    rejected: int


@dataclass(frozen=True, slots=True)
class LogDropped(Payload):
    """``file`` cannot be written (``error``: the errno name); output is dropped."""

    kind: ClassVar[EventKind] = EventKind.LOG_DROPPED
    file: str
    error: str


@dataclass(frozen=True, slots=True)
class LogResumed(Payload):
    """``file`` is written again; ``dropped_bytes`` were lost meanwhile."""

    kind: ClassVar[EventKind] = EventKind.LOG_RESUMED
    file: str
    dropped_bytes: int


@dataclass(frozen=True, slots=True)
class LogError(Payload):
    """Rotating ``file`` went wrong."""

    kind: ClassVar[EventKind] = EventKind.LOG_ERROR
    file: str


@dataclass(frozen=True, slots=True)
class ControlAction(Payload):
    """Someone (the token ``by``) asked for ``action``; ``names`` for start/stop/restart."""

    kind: ClassVar[EventKind] = EventKind.CONTROL
    action: str
    by: str
    names: tuple[str, ...] | None = None

    def to_fields(self) -> dict[str, Any]:
        return _without_none({"action": self.action, "names": self.names, "by": self.by})


@dataclass(frozen=True, slots=True)
class Reload(Payload):
    """A reload was applied (what it did, service by service) or refused (``problems``)."""

    kind: ClassVar[EventKind] = EventKind.RELOAD
    ok: bool
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    needs_restart: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    def to_fields(self) -> dict[str, Any]:
        if not self.ok:
            return {"ok": False, "problems": self.problems}
        fields = Payload.to_fields(self)
        del fields["problems"]
        return fields


@dataclass(frozen=True, slots=True)
class AuthFailure(Payload):
    """A control request from ``client`` for ``path`` had no valid token."""

    kind: ClassVar[EventKind] = EventKind.AUTH_FAILED
    client: str
    path: str
    attempts: int


@dataclass(frozen=True, slots=True)
class MemoryMax(Payload):
    """The process tree of ``pid`` stayed at ``rss`` bytes, over ``memory_max``."""

    kind: ClassVar[EventKind] = EventKind.MEMORY_MAX
    rss: int
    memory_max: int
    pid: int | None


@dataclass(frozen=True, slots=True)
class AlertFired(Payload):
    """An alert (``alert``: rule, failed, unhealthy, restart_storm) went to ``sinks``."""

    kind: ClassVar[EventKind] = EventKind.ALERT
    alert: str
    rule: str
    sinks: tuple[str, ...]
    count: int
    lines: tuple[str, ...]
    suppressed: int


@dataclass(frozen=True, slots=True)
class AlertFailure(Payload):
    """``sink`` did not take an alert after ``attempts`` tries; the last ``error``."""

    kind: ClassVar[EventKind] = EventKind.ALERT_FAILED
    sink: str
    alert: str
    rule: str
    attempts: int
    error: str


# The payload class of each kind, for callers that give a kind and its facts by name.
PAYLOADS: dict[EventKind, type[Payload]] = {cls.kind: cls for cls in (
    DaemonNote, StateChange, Exit, SpawnFailure, LogDropped, LogResumed, LogError,
    ControlAction, Reload, AuthFailure, HealthChange, NotifyReport, NotifyRejection,
    MemoryMax, AlertFired, AlertFailure)}


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened, with the facts a person or a script needs.

    ``payload`` is an instance of the kind's payload class (``Event.of`` picks
    the kind from the payload).
    """

    kind: EventKind
    message: str
    service: str | None
    payload: Payload
    time: float = field(default_factory=time.time)

    @classmethod
    def of(cls, payload: Payload, message: str, service: str | None = None) -> Event:
        """The event of ``payload``'s kind."""
        return cls(payload.kind, message, service, payload)

    @property
    def fields(self) -> dict[str, Any]:
        """The facts under the keys the event log writes them with."""
        return self.payload.to_fields()

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

"""The narrow facade the control API talks to: look, act, reload, shut down, with who did it.

The API never touches instances or log writers; it calls these methods, each
of which records control actions as events naming the token that asked.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from procward._logfiles import LogFile, instance_log_files
from procward.config import Config, stop_budget, stop_order
from procward.engine._events import PAYLOADS, ControlAction, Event, EventKind, Reload
from procward.engine._instance import InstanceStatus
from procward.engine._supervisor import ReloadResult, Supervisor
from procward.errors import ConfigError

__all__ = ["Control", "LogFile", "ReloadOutcome", "Shutdown"]

# Loads the configuration file again; raises ConfigError when it is bad.
ConfigLoader = Callable[[], Awaitable[Config]]
# Asks the daemon for its graceful stop (what SIGTERM does), with the reason it says.
StopDaemon = Callable[[str], None]


@dataclass(frozen=True)
class ReloadOutcome:
    ok: bool
    result: ReloadResult | None = None
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"ok": self.ok, "problems": self.problems}
        body.update((self.result or ReloadResult()).to_dict())
        return body


@dataclass(frozen=True)
class Shutdown:
    """What a shutdown request will do: stop ``stopping`` in that order (dependents
    first), taking at most ``stop_budget`` seconds, then end the daemon ``pid``.
    Nothing stops until ``begin()``, which the API calls once its answer is sent."""

    stopping: list[str]
    stop_budget: float
    pid: int
    begin: Callable[[], None] = field(repr=False, compare=False)

    def to_dict(self) -> dict[str, object]:
        return {"action": "shutdown", "stopping": self.stopping,
                "stop_budget": self.stop_budget, "pid": self.pid}


class Control:
    """What a remote caller may ask of a running Supervisor."""

    def __init__(self, supervisor: Supervisor, loader: ConfigLoader | None = None,
                 stop_daemon: StopDaemon | None = None) -> None:
        self.supervisor = supervisor
        self._loader = loader
        self._stop_daemon = stop_daemon
        self._stop_asked = False
        self._reload_lock = asyncio.Lock()

    @property
    def config(self) -> Config:
        return self.supervisor.config

    # -- look -----------------------------------------------------------------

    def status(self, names: list[str] | None = None) -> list[InstanceStatus]:
        """Raises UnknownService for a name that is neither a service nor an instance."""
        return self.supervisor.status(names)

    def service_names(self) -> list[str]:
        return list(self.supervisor.config.services)

    def log_files(self, name: str, stream: str) -> list[LogFile]:
        """The current log files of each instance ``name`` selects, for ``stream``
        (stdout, stderr or both; with merged streams all three are the one file)."""
        sup = self.supervisor
        return [f for inst in sup.select([name]) for f in instance_log_files(
            sup.log_dir, inst.name, stream, merged=inst.setup.stderr_log is None)]

    def log_counters(self) -> list[tuple[str, str, str, int, int]]:
        """(service, instance, stream, bytes written, bytes dropped) for every log file."""
        rows = []
        for inst in self.supervisor.instances():
            for stream, writer in (("stdout", inst.setup.stdout_log),
                                   ("stderr", inst.setup.stderr_log)):
                if writer is not None:
                    rows.append((inst.service, inst.name, stream,
                                 writer.bytes_written, writer.bytes_dropped))
        return rows

    def bytes_captured(self) -> int:
        """Bytes the services' output brought so far (written or dropped), all logs together."""
        return sum(written + dropped for *_, written, dropped in self.log_counters())

    @property
    def events_path(self) -> Path:
        return self.supervisor.events_path

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        return self.supervisor.subscribe(callback)

    def emit(self, kind: EventKind, message: str, **fields: Any) -> None:
        """Record an event of the daemon's own: ``fields`` are the attributes of the
        kind's payload (``AuthFailure(client, path, attempts)`` for ``auth_failed``)."""
        self.supervisor.emit(Event.of(PAYLOADS[kind](**fields), message))

    # -- act ------------------------------------------------------------------

    async def act(self, action: str, names: list[str] | None, who: str) -> list[str]:
        """start / stop / restart the named services (None: every service)."""
        sup = self.supervisor
        chosen = self.service_names() if names is None else names
        sup.select(chosen)  # raises UnknownService before anything is done
        label = "all services" if names is None else ", ".join(chosen)
        sup.emit(Event.of(ControlAction(action, who, tuple(chosen)),
                          f"{action} {label} (by {who})"))
        if action == "start":
            return await sup.start_services(chosen)
        if action == "stop":
            return await sup.stop_services(chosen)
        if action == "restart":
            return await sup.restart_services(chosen)
        raise ValueError(f"unknown action {action!r}")

    async def reload(self, who: str) -> ReloadOutcome:
        """Read the file again and apply only the difference; a bad file changes nothing."""
        async with self._reload_lock:
            sup = self.supervisor
            sup.emit(Event.of(ControlAction("reload", who), f"reload (by {who})"))
            if self._loader is None:
                return self._refused(["this daemon was started without a configuration file "
                                      "to reload"])
            try:
                new = await self._loader()
            except ConfigError as e:
                return self._refused([str(p) for p in e.problems])
            except OSError as e:
                return self._refused([f"{self.config.source}: {e}"])
            result = await sup.apply(new)
            sup.emit(Event.of(Reload(True, tuple(result.added), tuple(result.removed),
                                     tuple(result.changed), tuple(result.unchanged),
                                     tuple(result.needs_restart)), "reload applied"))
            return ReloadOutcome(True, result)

    def shutdown(self, who: str) -> Shutdown:
        """Record that ``who`` asks the daemon itself to stop, and say how it will.

        ``begin()`` takes the daemon's graceful stop, the one SIGTERM takes; asking
        again while it stops changes nothing (a second Ctrl+C kills, a second
        request does not).
        """
        if self._stop_daemon is None:
            raise RuntimeError("this Control was made without stop_daemon")
        stop = self._stop_daemon
        self.supervisor.emit(Event.of(ControlAction("shutdown", who),
                                      f"shutdown of the daemon (by {who})"))

        def begin() -> None:
            if not self._stop_asked:
                self._stop_asked = True
                stop(f"a shutdown request (by {who})")

        services = self.config.services
        return Shutdown([name for level in stop_order(services) for name in level],
                        stop_budget(services), os.getpid(), begin)

    def _refused(self, problems: list[str]) -> ReloadOutcome:
        self.supervisor.emit(Event.of(
            Reload(False, problems=tuple(problems)),
            "reload refused: the running configuration is unchanged"))
        return ReloadOutcome(False, None, problems)

"""The Supervisor: the engine's one public face.

It owns every instance, the event bus, the daemon's event log and the state
dir. Callers (the CLI's ``run``, the control API, tests) use only the methods
here; they never reach into instances or log writers.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from procward._logfiles import EVENTS_FILE
from procward._os import PLATFORM, Platform
from procward.config import Config, LogSettings, did_you_mean, stop_order
from procward.engine._events import DaemonNote, Event, EventBus, Payload
from procward.engine._instance import Instance, InstanceStatus
from procward.engine._journal import ChildJournal
from procward.engine._logs import LogWriter, RotationWorker
from procward.engine._memory import MemoryWatch
from procward.engine._notify import NotifyHub
from procward.engine._state import Health, State
from procward.engine.alerts import AlertManager
from procward.errors import UnknownService

__all__ = ["EVENTS_FILE", "ReloadResult", "Supervisor"]

_EVENT_LOG = LogSettings(max_size=10 * 1024 * 1024, keep=5)
# A log file without output for this long gives its descriptor back, so
# hundreds of quiet services do not hold two files open each.
_IDLE_CLOSE = 5.0
# An unknown name's message lists at most this many of the service names.
_NAMES_SHOWN = 20


@dataclass(frozen=True)
class ReloadResult:
    """What a reload did, service by service."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    # Settings outside [services] that only a restart of the daemon applies.
    needs_restart: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, list[str]]:
        return {"added": self.added, "removed": self.removed, "changed": self.changed,
                "unchanged": self.unchanged, "needs_restart": self.needs_restart}


class Supervisor:
    """Starts, watches and stops every service of one configuration."""

    def __init__(
        self,
        config: Config,
        *,
        platform: Platform = PLATFORM,
        rng: random.Random | None = None,
        environ: dict[str, str] | None = None,
    ) -> None:
        self.config = config
        self.platform = platform
        self.log_dir = config.procward.log_dir
        self.state_dir = config.procward.state_dir
        self.rng = rng or random.Random()
        self.bus = EventBus()
        self.rotation = RotationWorker()
        self.journal = ChildJournal(self.state_dir)
        self.events_path = self.log_dir / EVENTS_FILE
        self._environ = dict(os.environ if environ is None else environ)
        self._instances: dict[str, list[Instance]] = {}
        self._order: list[str] = list(config.services)
        self._changed: asyncio.Event | None = None
        self._lock: object | None = None
        self._event_log: LogWriter | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._running = False
        self._release_guard: Callable[[], None] | None = None
        self.notify_hub = NotifyHub(platform, self.state_dir, self.emit)
        self.alerts = AlertManager(config.alerts, platform, self.emit)
        self._memory: MemoryWatch | None = None

    # -- start and stop the whole daemon --------------------------------------

    async def start(self, before_services: Callable[[], Awaitable[None]] | None = None) -> None:
        """Lock the state dir, end leftovers of a previous run, start autostart services.

        ``before_services`` runs once the state dir is ours and before any
        service starts (the daemon binds its API there, so a port in use
        fails the start before a single child is spawned).
        """
        loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        self._lock = self.platform.lock_state_dir(self.state_dir)
        self._event_log = LogWriter(self.events_path, _EVENT_LOG,
                                    on_problem=self._event_log_problem)
        self.bus.subscribe(self._write_event)
        self.bus.subscribe(self.alerts.on_event)
        self._running = True
        old, new = self.platform.raise_open_files_limit()
        self.emit(Event.of(DaemonNote(pid=os.getpid(), config=str(self.config.source),
                                      open_files_limit=new, open_files_limit_was=old),
                           f"procward started (pid {os.getpid()})"))
        self._reap_leftovers()
        self.journal.open()
        self._release_guard = self.platform.guard_children(self.journal.path)
        # Before the instances: their environment names the listener's port.
        await self.notify_hub.start()
        if before_services is not None:
            await before_services()
        for name, cfg in self.config.services.items():
            self._instances[name] = [
                Instance(self, name, i, cfg, self._environ) for i in range(cfg.instances)
            ]
        for name, cfg in self.config.services.items():
            if cfg.autostart:
                for inst in self._instances[name]:
                    inst.start()
        if any(cfg.memory_max is not None for cfg in self.config.services.values()):
            self._memory = MemoryWatch(self.instances)
            self._memory.start()
        self._sweeper = loop.call_later(_IDLE_CLOSE, self._sweep)

    def _reap_leftovers(self) -> None:
        for leftover in self.journal.leftovers():
            ended = self.platform.reap_leftover(leftover)
            if ended:
                self.emit(Event.of(DaemonNote(pid=leftover.pid, ended=ended),
                                   f"ended {ended} process(es) left by a previous procward "
                                   f"(pid {leftover.pid})", leftover.name))

    async def stop(self) -> None:
        """Stop every service, dependents before their dependencies, then close up."""
        if not self._running:
            return
        # Before the first await: a program that dies from here on (a dependency
        # still running while its dependents stop, or any at a system shutdown) stays down.
        for inst in self.instances():
            inst.wind_down()
        for level in stop_order(self.config.services):
            await asyncio.gather(*(inst.stop() for name in level for inst in self._instances[name]))
        self._running = False
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._memory is not None:
            await self._memory.close()
        await self.notify_hub.close()
        await self.alerts.close()
        for inst in self.instances():
            inst.close()
        await asyncio.get_running_loop().run_in_executor(None, self.rotation.close)
        self.journal.close()
        if self._release_guard is not None:
            self._release_guard()
        self.emit(Event.of(DaemonNote(pid=os.getpid()), "procward stopped"))
        if self._event_log is not None:
            self._event_log.close()
        release = getattr(self._lock, "release", None)
        if release is not None:
            release()

    def kill(self) -> None:
        """End every process tree at once (a second Ctrl+C)."""
        for inst in self.instances():
            inst.kill()

    # -- services -------------------------------------------------------------

    def instances(self) -> list[Instance]:
        return [inst for name in self._order for inst in self._instances.get(name, [])]

    def select(self, names: Iterable[str]) -> list[Instance]:
        """Instances named by service name (all copies) or instance name (``web:1``)."""
        chosen: list[Instance] = []
        for name in names:
            if name in self._instances:
                found = self._instances[name]
            else:
                found = [i for i in self.instances() if i.name == name]
            if not found:
                raise UnknownService(self._unknown(name))
            chosen.extend(i for i in found if i not in chosen)
        return chosen

    def _unknown(self, name: str) -> str:
        """Why ``name`` selects nothing: the names there are, and the nearest one."""
        services = list(self.config.services)
        if not services:
            return f"no service or instance named {name!r}: this daemon runs no services"
        shown = ", ".join(services[:_NAMES_SHOWN])
        if len(services) > _NAMES_SHOWN:
            shown += f" and {len(services) - _NAMES_SHOWN} more"
        # The nearest of the service names and, for `web:3`, of the instance names.
        nearest = did_you_mean(name, services + [i.name for i in self.instances()
                                                 if i.name not in services])
        return f"no service or instance named {name!r}{nearest}; the services are: {shown}"

    def status(self, names: Iterable[str] | None = None) -> list[InstanceStatus]:
        chosen = self.instances() if names is None else self.select(names)
        return [inst.status() for inst in chosen]

    async def start_services(self, names: Iterable[str]) -> list[str]:
        """Start the named services; return the instances that were not already running."""
        return [inst.name for inst in self.select(names) if inst.start()]

    async def stop_services(self, names: Iterable[str]) -> list[str]:
        chosen = self.select(names)
        await asyncio.gather(*(inst.stop() for inst in chosen))
        return [inst.name for inst in chosen]

    async def restart_services(self, names: Iterable[str]) -> list[str]:
        chosen = self.select(names)
        await asyncio.gather(*(inst.stop() for inst in chosen))
        for inst in chosen:
            inst.start()
        return [inst.name for inst in chosen]

    async def apply(self, new: Config) -> ReloadResult:
        """Move to ``new``: start added services, stop removed ones, restart changed ones.

        A service whose settings are equal in both keeps its processes (and pids).
        A change to ``instances`` restarts every copy: the simplest rule a user
        can predict, and the one systemd applies to a changed unit.
        """
        old = self.config
        added = [n for n in new.services if n not in old.services]
        removed = [n for n in old.services if n not in new.services]
        changed = [n for n in new.services
                   if n in old.services and new.services[n] != old.services[n]]
        unchanged = [n for n in new.services
                     if n in old.services and new.services[n] == old.services[n]]
        needs_restart = [section for section in ("procward", "api", "fleet")
                         if getattr(old, section) != getattr(new, section)]
        going = [inst for n in removed + changed for inst in self._instances.get(n, [])]
        await asyncio.gather(*(inst.stop() for inst in going))
        for inst in going:
            inst.close()
        for n in removed:
            self._instances.pop(n, None)
        self.config = new
        self._order = list(new.services)
        # Sinks are looked up when an alert fires: new ones apply to the next alert.
        self.alerts.update(new.alerts)
        if self._memory is None and any(
                cfg.memory_max is not None for cfg in new.services.values()):
            self._memory = MemoryWatch(self.instances)
            self._memory.start()
        for n in added + changed:
            cfg = new.services[n]
            self._instances[n] = [Instance(self, n, i, cfg, self._environ)
                                  for i in range(cfg.instances)]
        for n in added + changed:
            if new.services[n].autostart:
                for inst in self._instances[n]:
                    inst.start()
        self.state_changed()
        return ReloadResult(added, removed, changed, unchanged, needs_restart)

    # -- what instances need from their owner ----------------------------------

    def emit(self, event: Event) -> None:
        self.bus.emit(event)

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        return self.bus.subscribe(callback)

    def state_changed(self) -> None:
        # Wake every waiter once; the next change needs a fresh event.
        if self._changed is not None:
            self._changed.set()
            self._changed = asyncio.Event()

    def dependencies_ready(self, instance: Instance) -> bool:
        for dep in instance.config.depends_on:
            for other in self._instances.get(dep, []):
                # A dependency with a health check must also be healthy.
                running = other.state is State.RUNNING and (
                    other.config.health is None or other.health is Health.HEALTHY)
                ready = running or (
                    other.state is State.EXITED and other.last_exit is not None
                    and other.last_exit.code in other.config.success_exit_codes
                )
                if not ready:
                    return False
        return True

    async def wait_dependencies(self, instance: Instance) -> None:
        while not self.dependencies_ready(instance):
            assert self._changed is not None
            await self._changed.wait()

    # -- housekeeping ---------------------------------------------------------

    def _sweep(self) -> None:
        now = time.time()
        for inst in self.instances():
            for writer in inst.setup.log_writers:
                writer.close_if_idle(now, _IDLE_CLOSE)
        if self._event_log is not None:
            self._event_log.close_if_idle(now, _IDLE_CLOSE)
        if self._running:
            self._sweeper = asyncio.get_running_loop().call_later(_IDLE_CLOSE, self._sweep)

    def _write_event(self, event: Event) -> None:
        if self._event_log is not None:
            self._event_log.feed((event.to_json() + "\n").encode())

    def _event_log_problem(self, payload: Payload, message: str) -> None:
        # The event log cannot report its own trouble into itself.
        print(f"procward: {message}", file=sys.stderr)

"""Helpers for testing code that runs under procward, and procward itself.

Real processes only: ``python(code)`` builds a command running a snippet in
this interpreter, ``supervised(config)`` runs a real Supervisor for the length
of a ``with`` block and afterwards ends, by pid, anything it ever started, and
``EventRecorder`` lets a test await the events it expects instead of sleeping.
"""

from __future__ import annotations

import asyncio
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import psutil

from procward.config import Config, validate_config
from procward.engine import Event, EventKind, Supervisor

__all__ = ["EventRecorder", "make_config", "python", "supervised"]


def python(code: str) -> list[str]:
    """A command running ``code`` in this Python, isolated and without site-packages."""
    return [sys.executable, "-I", "-S", "-c", textwrap.dedent(code)]


def make_config(root: Path, services: dict[str, dict[str, Any]], **sections: Any) -> Config:
    """A validated Config whose logs and state live under ``root``."""
    daemon = {"log_dir": root / "logs", "state_dir": root / "state"}
    daemon.update(sections.pop("procward", {}))
    services = {name: {"cwd": root, **svc} for name, svc in services.items()}
    return validate_config(
        {"source": root / "procward.toml", "procward": daemon, "services": services, **sections}
    )


class EventRecorder:
    """Keeps every event of a Supervisor and lets a test await the ones it expects."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.events: list[Event] = []
        # Each process the services ran, held from its first event on (its
        # spawn, while it lives): a handle made then knows its create time, so
        # ending it afterwards cannot reach a process that took a dead one's pid.
        self.processes: dict[int, psutil.Process] = {}
        self._waiters: list[asyncio.Future[None]] = []
        supervisor.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        self.events.append(event)
        pid = getattr(event.payload, "pid", None)
        if isinstance(pid, int) and event.service is not None and pid not in self.processes:
            with suppress(psutil.Error):
                self.processes[pid] = psutil.Process(pid)
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    def matching(self, service: str | None = None, kind: EventKind | None = None,
                 **fields: Any) -> list[Event]:
        """The events so far of ``service`` and ``kind`` (None: any) whose facts
        include ``fields``, by the keys of the event log (``state="running"``)."""
        return [e for e in self.events if _matches(e, service, kind, fields)]

    async def wait_for(self, predicate: Callable[[Event], bool], *, count: int = 1,
                       timeout: float = 15.0) -> list[Event]:
        """The first ``count`` events matching ``predicate``, waiting for them if needed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = [e for e in self.events if predicate(e)]
            if len(found) >= count:
                return found[:count]
            remaining = deadline - loop.time()
            if remaining <= 0:
                recent = "; ".join(f"{e.service}: {e.message}" for e in self.events[-8:])
                raise TimeoutError(f"saw {len(found)} of {count} expected events; last: {recent}")
            waiter = loop.create_future()
            self._waiters.append(waiter)
            with suppress(TimeoutError):
                await asyncio.wait_for(waiter, remaining)

    async def wait(self, kind: EventKind, service: str | None = None, *, count: int = 1,
                   timeout: float = 15.0, **fields: Any) -> list[Event]:
        """The first ``count`` events ``matching(service, kind, **fields)``, waiting
        for them if needed: ``await recorder.wait(EventKind.HEALTH, health="healthy")``."""
        return await self.wait_for(lambda e: _matches(e, service, kind, fields),
                                   count=count, timeout=timeout)

    async def wait_state(self, service: str, state: str, *, count: int = 1,
                         timeout: float = 15.0) -> list[Event]:
        """The first ``count`` times ``service`` entered ``state``, waiting if needed."""
        return await self.wait(EventKind.STATE, service, count=count, timeout=timeout,
                               state=state)


def _matches(event: Event, service: str | None, kind: EventKind | None,
             fields: dict[str, Any]) -> bool:
    if (service is not None and event.service != service) or (
            kind is not None and event.kind is not kind):
        return False
    facts = event.fields if fields else {}
    return all(facts.get(k) == v for k, v in fields.items())


@asynccontextmanager
async def supervised(
    config: Config, **kwargs: Any
) -> AsyncIterator[tuple[Supervisor, EventRecorder]]:
    """Run a Supervisor for the block; afterwards stop it and end, by pid, all it started."""
    supervisor = Supervisor(config, **kwargs)
    recorder = EventRecorder(supervisor)
    await supervisor.start()
    try:
        yield supervisor, recorder
    finally:
        try:
            await asyncio.wait_for(supervisor.stop(), 30)
        finally:
            for process in recorder.processes.values():
                with suppress(psutil.Error):
                    for proc in [*process.children(recursive=True), process]:
                        proc.kill()

"""One process run of an instance: from its spawn until it has ended.

What lives exactly as long as one process: the child with its pid and start
time, the futures the lifecycle waits on besides the exit (READY, a restart
the daemon asked for), its health check with the heartbeats it counts, and
what the program said of itself (STATUS=, MAINPID=). When the process ends all
of that ends with it; its pid and start time stay, for the instance's status.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from procward._os import Child, SpawnSpec
from procward.config import HealthSettings
from procward.engine._health import HealthCheck, make_probe
from procward.engine._notify import Report
from procward.engine._state import Health

__all__ = ["Run"]


class Run:
    """One process of an instance, and what it reported or showed while it ran."""

    def __init__(self, child: Child, spec: SpawnSpec, *, notify: bool,
                 health: HealthSettings | None,
                 on_health: Callable[[Health, str, int], None]) -> None:
        loop = asyncio.get_running_loop()
        self.child = child
        self.pid = child.pid
        self.started_at = time.time()
        # notify = true: the program is started when it says READY, not before.
        self.ready: asyncio.Future[None] | None = loop.create_future() if notify else None
        self.restart_request: asyncio.Future[str] = loop.create_future()
        self.health: Health | None = None if health is None else Health.STARTING
        self.status_text: str | None = None
        self.main_pid: int | None = None
        self.ended = False
        self._spec = spec
        self._settings = health
        self._on_health = on_health
        # None until this process's first heartbeat: a check must not count one
        # it never got (it would call the service healthy at once).
        self._last_heartbeat: float | None = None
        self._check: asyncio.Task[None] | None = None
        if not notify:
            self._start_check()

    def take(self, report: Report) -> None:
        """Note what the program reported of itself (nothing, once it has ended)."""
        if self.ended:
            return
        if report.status is not None:
            self.status_text = report.status
        if report.kind == "heartbeat":
            self._last_heartbeat = asyncio.get_running_loop().time()
        elif report.kind == "ready" and self.ready is not None and not self.ready.done():
            self.ready.set_result(None)
            # As systemd arms WatchdogSec: a notify service is checked once
            # it says it is ready, not while it prepares.
            self._start_check()
        elif report.kind == "mainpid":
            self.main_pid = report.main_pid

    def request_restart(self, why: str) -> None:
        """Ask the lifecycle to restart this process (the first reason asked wins)."""
        if not self.ended and not self.restart_request.done():
            self.restart_request.set_result(why)

    def end(self) -> None:
        """The process has ended: its check stops, and what it said of itself goes with it."""
        self.ended = True
        if self._check is not None:
            self._check.cancel()
            self._check = None
        self.health = self.status_text = self.main_pid = None

    def _start_check(self) -> None:
        if self._settings is None:
            return
        loop = asyncio.get_running_loop()
        probe = make_probe(self._settings, cwd=self._spec.cwd, env=self._spec.env,
                           last_heartbeat=lambda: self._last_heartbeat, clock=loop.time)
        check = HealthCheck(self._settings, probe, self._health_changed)
        self._check = loop.create_task(check.run(), name=f"procward:health:{self.pid}")

    def _health_changed(self, health: Health, detail: str, failures: int) -> None:
        self.health = health
        self._on_health(health, detail, failures)

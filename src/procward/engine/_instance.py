"""One copy of a service: its lifecycle across process runs, by its restart policy.

The lifecycle is one coroutine per instance that loops spawn → wait → decide.
Everything it waits on is a future (the child's exit, the stop request, a
timer, READY, a restart asked for), so a death wakes it on the next loop pass
and a program that had started runs again within milliseconds.

What is built once (logs, environment, spawn spec) is the instance's
``InstanceSetup``; what lives as long as one process is a ``Run``; what to do
after a process ends is its ``RestartPolicy``. The instance owns the state
machine and the stop requests.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from procward._os import ExitStatus, Platform
from procward.config import ServiceConfig
from procward.engine._events import (
    DaemonNote,
    Event,
    Exit,
    HealthChange,
    MemoryMax,
    NotifyReport,
    SpawnFailure,
    StateChange,
)
from procward.engine._journal import ChildJournal
from procward.engine._notify import Report
from procward.engine._policy import Next, RestartPolicy, is_success
from procward.engine._run import Run
from procward.engine._setup import InstanceSetup, SetupHost
from procward.engine._state import TRANSITIONS, Health, State
from procward.errors import IllegalTransition, SpawnError

if TYPE_CHECKING:
    import random

__all__ = ["Instance", "InstanceStatus"]


class _Host(SetupHost, Protocol):
    """What an instance needs from the supervisor that owns it."""

    platform: Platform
    journal: ChildJournal
    rng: random.Random

    def state_changed(self) -> None: ...

    def dependencies_ready(self, instance: Instance) -> bool: ...

    async def wait_dependencies(self, instance: Instance) -> None: ...


@dataclass(frozen=True)
class InstanceStatus:
    """A snapshot of one instance, for the CLI, the API and tests."""

    name: str
    service: str
    index: int
    state: State
    pid: int | None
    started_at: float | None
    restarts: int
    exit_code: int | None
    exit_signal: int | None
    reason: str
    health: Health | None = None  # None without a check, and while no process runs
    status_text: str | None = None  # the program's own STATUS= / notify.status() line

    def uptime(self, now: float | None = None) -> float | None:
        if self.started_at is None or self.state is not State.RUNNING:
            return None
        return (time.time() if now is None else now) - self.started_at

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "service": self.service,
            "index": self.index,
            "state": str(self.state),
            "pid": self.pid,
            "started_at": self.started_at,
            "uptime": self.uptime(),
            "restarts": self.restarts,
            "exit_code": self.exit_code,
            "exit_signal": self.exit_signal,
            "reason": self.reason,
            "health": None if self.health is None else str(self.health),
            "status_text": self.status_text,
        }


class _StoppedOnRequest(Exception):
    """The process was stopped because someone asked; the lifecycle ends."""


class _Ended(NamedTuple):
    """How one process run ended."""

    status: ExitStatus | None  # None: it could not be started
    started: bool  # it was up start_seconds, or had reported READY
    forced: str | None  # why the daemon stopped it to restart it, if it did


def _describe(status: ExitStatus | None) -> str:
    return "could not be started" if status is None else status.describe()


class Instance:
    """Keeps one copy of a service running according to its configuration."""

    def __init__(
        self, host: _Host, service: str, index: int, config: ServiceConfig, base_env: dict[str, str]
    ) -> None:
        self._host = host
        self.service = service
        self.index = index
        self.config = config
        self.memory_max = config.memory_max
        # The latest process run; it stays after the process ended (the status
        # shows its pid), and is None before the first and after a failed spawn.
        self._run: Run | None = None
        self.setup = InstanceSetup(host, service, index, config, base_env, reporter=self,
                                   restart=self.request_restart)
        self.name = self.setup.name
        self.state = State.STOPPED
        self.reason = ""
        self.restarts = 0
        self.last_exit: ExitStatus | None = None
        self._policy = RestartPolicy(config, host.rng)
        self._task: asyncio.Task[None] | None = None
        self._stop: asyncio.Future[None] | None = None
        # Set by wind_down(): the daemon is stopping, nothing is started again.
        self._winding_down = False

    # -- what the process shows ------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The pid of the latest process (also after it ended: the status shows it)."""
        return None if self._run is None else self._run.pid

    @property
    def health(self) -> Health | None:
        return None if self._run is None else self._run.health

    def _live(self) -> Run | None:
        """The process run now, if one is."""
        run = self._run
        return run if run is not None and not run.ended else None

    # -- control --------------------------------------------------------------

    @property
    def is_active(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> bool:
        """Begin supervising; False if it already is. Clears ``failed`` and the backoff."""
        if self.is_active:
            return False
        loop = asyncio.get_running_loop()
        self._policy.reset()
        self._stop = loop.create_future()
        self._task = loop.create_task(self._guarded_lifecycle(), name=f"procward:{self.name}")
        return True

    async def stop(self) -> None:
        """Stop the process tree (stop_signal, then kill after stop_timeout) and stay stopped."""
        self._request_stop()
        if self._task is not None:
            await asyncio.shield(self._task)

    def wind_down(self) -> None:
        """The daemon is stopping: from now on no process of this instance is started again.

        Its own stop may come later (dependencies stop after their dependents),
        but a process that dies meanwhile stays down, a restart asked for is
        ignored, and one waiting (in backoff, or for its dependencies) stops now.
        """
        self._winding_down = True
        if self._live() is None:
            # No process runs: stopping it now changes nothing the stop order protects.
            self._request_stop()

    def kill(self) -> None:
        """End the whole process tree now, without waiting for it to stop by itself."""
        self._request_stop()
        run = self._live()
        if run is not None:
            run.child.kill_tree()

    def close(self) -> None:
        """The instance is gone (removed, replaced, or the daemon stops): let go of its files."""
        self.setup.close()

    def status(self) -> InstanceStatus:
        run, last = self._run, self.last_exit
        return InstanceStatus(
            name=self.name, service=self.service, index=self.index, state=self.state,
            pid=self.pid, started_at=None if run is None else run.started_at,
            restarts=self.restarts, exit_code=last.code if last else None,
            exit_signal=last.signal if last else None, reason=self.reason,
            health=self.health, status_text=None if run is None else run.status_text,
        )

    def request_restart(self, why: str) -> None:
        """Restart the running process (stop_signal, then kill) for ``why``; ignored when
        idle, and once the daemon is stopping."""
        run = self._live()
        if run is not None and not self._winding_down:
            run.request_restart(why)

    def _request_stop(self) -> None:
        if self._stop is not None and not self._stop.done():
            self._stop.set_result(None)

    # -- reports from the program, its health and its memory -------------------

    def notified(self, report: Report) -> None:
        """A report from one of this instance's processes (via the notify hub)."""
        if self._run is not None:
            self._run.take(report)
        if report.kind in ("ready", "stopping", "mainpid"):
            what = report.kind.upper() + (f" {report.main_pid}" if report.main_pid else "")
            # sender_pid, not pid: a framed report's pid is only what the sender claims.
            self._host.emit(Event.of(
                NotifyReport(report.kind, report.via, report.pid, report.main_pid, report.status),
                f"reported {what}", self.name))

    def memory_exceeded(self, rss: int) -> None:
        limit = self.memory_max or 0
        self._host.emit(Event.of(MemoryMax(rss, limit, self.pid),
                                 f"process tree uses {rss} bytes, over memory_max {limit}; "
                                 "restarting", self.name))
        self.request_restart(f"memory {rss} bytes over memory_max {limit}")

    def _health_changed(self, health: Health, detail: str, failures: int) -> None:
        settings = self.config.health
        assert settings is not None
        self._host.emit(Event.of(
            HealthChange(health, detail, failures, settings.on_unhealthy, self.pid, self.service),
            f"{health}: {detail}", self.name))
        self._host.state_changed()
        if health is Health.UNHEALTHY and settings.on_unhealthy == "restart":
            self.request_restart(f"unhealthy: {detail}")

    # -- the lifecycle --------------------------------------------------------

    def _set(self, state: State, reason: str = "", delay: float | None = None) -> None:
        if state not in TRANSITIONS[self.state]:
            raise IllegalTransition(self.name, self.state, state)
        old, self.state, self.reason = self.state, state, reason
        message = f"{state}: {reason}" if reason else str(state)
        self._host.emit(Event.of(StateChange(state, old, self.pid, self.restarts, delay),
                                 message, self.name))
        self._host.state_changed()

    def _stop_requested(self) -> bool:
        return self._stop is not None and self._stop.done()

    async def _wait(self, fut: asyncio.Future[Any] | None, timeout: float | None,
                    *more: asyncio.Future[Any] | None) -> None:
        """Wait for ``fut`` (or any of ``more``), the stop request, or ``timeout``."""
        assert self._stop is not None
        waits: set[asyncio.Future[Any]] = {self._stop}
        waits.update(f for f in (fut, *more) if f is not None)
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)

    async def _guarded_lifecycle(self) -> None:
        try:
            await self._lifecycle()
        except Exception as e:
            # A bug in one instance's lifecycle must not take the daemon down.
            run = self._live()
            if run is not None:
                run.child.kill_tree()
            self._host.emit(Event.of(DaemonNote(error=repr(e)),
                                     f"internal error supervising: {e!r}", self.name))
            self.state, self.reason = State.FAILED, f"internal error: {e!r}"
            self._host.state_changed()

    async def _lifecycle(self) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        reason = ""
        while True:
            if cfg.depends_on and not self._host.dependencies_ready(self):
                self._set(State.STARTING, f"waiting for {', '.join(cfg.depends_on)}")
                waiter = loop.create_task(self._host.wait_dependencies(self))
                await self._wait(waiter, None)
                waiter.cancel()
                if self._stop_requested():
                    self._set(State.STOPPED, "stopped while waiting for dependencies")
                    return
            began = loop.time()
            try:
                status, started, forced = await self._run_once(reason)
            except _StoppedOnRequest:
                return
            uptime = loop.time() - began
            if self._stop_requested():
                self._set(State.STOPPED, _describe(status))
                return
            if self._winding_down:
                self._set(State.STOPPED, f"{_describe(status)}; not restarted: procward is "
                          "stopping")
                return
            step, delay = self._policy.decide(status, started=started, forced=forced is not None,
                                              uptime=uptime, now=loop.time())
            if step is Next.EXIT:
                how = "finished" if is_success(status, cfg.success_exit_codes) else "ended"
                self._set(State.EXITED, f"{how}: {_describe(status)}; restart = {cfg.restart}")
                return
            if step is Next.FAIL:
                self._set(State.FAILED,
                          f"{_describe(status)}; more than {cfg.start_limit.burst} restarts within "
                          f"{cfg.start_limit.interval:g}s, giving up (start it again by hand)")
                return
            self.restarts += 1
            if step is Next.AT_ONCE:
                reason = f"restart: {forced}" if forced else f"restart after {_describe(status)}"
                continue
            self._set(State.BACKOFF,
                      f"{_describe(status)} after {uptime:.2f}s, before start_seconds; "
                      f"retry in {delay:.2f}s", delay=round(delay, 3))
            await self._wait(None, delay)
            if self._stop_requested():
                self._set(State.STOPPED, "stopped during backoff")
                return
            reason = "retry after backoff"

    async def _run_once(self, reason: str) -> _Ended:
        """Spawn and watch one process. Raises _StoppedOnRequest if stopped meanwhile."""
        host, cfg, setup = self._host, self.config, self.setup
        try:
            child = host.platform.spawn(asyncio.get_running_loop(), setup.spec,
                                        setup.stdout_sink, setup.stderr_sink)
        except SpawnError as e:
            self._run = None
            self.last_exit = None
            if self.state is not State.STARTING:
                self._set(State.STARTING, reason)
            host.emit(Event.of(SpawnFailure(tuple(setup.spec.argv)), str(e), self.name))
            return _Ended(None, False, None)
        run = self._run = Run(child, setup.spec, notify=cfg.notify, health=cfg.health,
                              on_health=self._health_changed)
        host.journal.add(child.pid, child.create_time, self.name)
        if cfg.notify:
            reason = f"{reason}; waiting for READY" if reason else "waiting for READY"
        self._set(State.STARTING, reason)
        try:
            return await self._watch(run)
        finally:
            run.end()

    async def _watch(self, run: Run) -> _Ended:
        cfg, child = self.config, run.child
        started = False
        if run.ready is not None:
            # notify = true: started means READY, however long it takes.
            await self._wait(child.exited, None, run.ready, run.restart_request)
        elif cfg.start_seconds > 0:
            await self._wait(child.exited, cfg.start_seconds, run.restart_request)
        if not (child.exited.done() or run.restart_request.done() or self._stop_requested()):
            started = True
            self._set(State.RUNNING)
            await self._wait(child.exited, None, run.restart_request)
        if child.exited.done():
            status = child.exited.result()
            self._ended(run, status)
            return _Ended(status, started, None)
        if self._stop_requested():
            status = await self._stop_tree(run, f"sending {cfg.stop_signal}")
            self._set(State.STOPPED, status.describe())
            raise _StoppedOnRequest
        why = run.restart_request.result()
        return _Ended(await self._stop_tree(run, f"restarting: {why}"), started, why)

    async def _stop_tree(self, run: Run, reason: str) -> ExitStatus:
        """Stop the process tree: stop_signal, then kill it once stop_timeout has passed.

        The one way a process is stopped, whether on request or for a restart
        the daemon decided on (unhealthy, memory_max, an alert rule).
        """
        cfg, child = self.config, run.child
        self._set(State.STOPPING, reason)
        child.stop(cfg.stop_signal)
        await asyncio.wait({child.exited}, timeout=cfg.stop_timeout)
        if not child.exited.done():
            self._host.emit(Event.of(DaemonNote(pid=child.pid),
                                     f"did not stop within {cfg.stop_timeout:g}s; killing its "
                                     "process tree", self.name))
            child.kill_tree()
            await child.exited
        status = child.exited.result()
        self._ended(run, status)
        return status

    def _ended(self, run: Run, status: ExitStatus) -> None:
        """Record the end of ``run``'s process: the journal, the last exit, an event."""
        self._host.journal.remove(run.pid)
        self.last_exit = status
        # What the program said of itself (STATUS=, MAINPID=) ends with it: a
        # service waiting out its backoff has no process to describe.
        run.end()
        uptime = time.time() - run.started_at
        self._host.emit(Event.of(Exit(run.pid, status.code, status.signal, round(uptime, 3)),
                                 f"pid {run.pid} {status.describe()} after {uptime:.2f}s",
                                 self.name))
